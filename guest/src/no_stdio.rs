//! The component has no standard input, output, error, environment or exit:
//! this crate never uses them, but the standard library's panic path reaches
//! wasi-libc's stdio, `getenv` and `exit`, which import 19 functions of
//! `wasi:cli/*`, `wasi:io/streams`, `wasi:io/poll` and `wasi:io/error`.
//! Every import costs each tenant at instantiation (wasmtime links a
//! trampoline per lowered function), and every host (jco too) has to
//! provide them.
//!
//! wasm-ld turns an undefined function into an import only if nothing in the
//! link defines it, so defining wasi-libc's import symbols here links these
//! calls to the functions below instead. They answer as the wasmtime host
//! always did for this component (it never gave it stdio): stdin, stdout and
//! stderr are streams that take every byte and drop it, none is a terminal,
//! the environment is empty, and `exit` traps (the call fails, as an exit
//! during a call did).
//!
//! wasi-libc also reaches these stream and pollable functions from its file
//! I/O (`write` on a file descriptor, `sleep`), which this crate does not
//! use: it calls `wasi:filesystem` itself, and a host test pins the
//! filesystem functions the component imports (`write-via-stream` would
//! fail it). Should such a call come anyway, it carries a handle the host
//! gave, not one of those handed out here, and it traps instead of
//! dropping data.
//!
//! The signatures are the canonical ABI's lowering of each WIT function, as
//! wasi-libc declares them; `ret` points to the caller's return area.

use core::arch::wasm32::unreachable;
use core::ptr;

/// Handles of the streams and the pollable handed out here: far above any
/// handle a host gives (hosts number them from small integers up), so a
/// real handle reaching a function below is recognised and trapped.
const STDIN: i32 = i32::MAX - 3;
const STDOUT: i32 = i32::MAX - 2;
const STDERR: i32 = i32::MAX - 1;
const POLLABLE: i32 = i32::MAX;
/// What `check-write` grants per call.
const WRITE_PERMIT: u64 = 1 << 16;

/// Traps unless `stream` is one of the three above.
fn ours(stream: i32) {
    if !(STDIN..=STDERR).contains(&stream) {
        unreachable()
    }
}

/// Traps unless `pollable` is the one above.
fn our_pollable(pollable: i32) {
    if pollable != POLLABLE {
        unreachable()
    }
}

#[unsafe(no_mangle)]
extern "C" fn __wasm_import_stdin_get_stdin() -> i32 {
    STDIN
}

#[unsafe(no_mangle)]
extern "C" fn __wasm_import_stdout_get_stdout() -> i32 {
    STDOUT
}

#[unsafe(no_mangle)]
extern "C" fn __wasm_import_stderr_get_stderr() -> i32 {
    STDERR
}

/// `get-terminal-*: func() -> option<terminal-*>`: none (not a terminal).
#[unsafe(no_mangle)]
unsafe extern "C" fn __wasm_import_terminal_stdin_get_terminal_stdin(ret: *mut u8) {
    unsafe { ret.write(0) }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn __wasm_import_terminal_stdout_get_terminal_stdout(ret: *mut u8) {
    unsafe { ret.write(0) }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn __wasm_import_terminal_stderr_get_terminal_stderr(ret: *mut u8) {
    unsafe { ret.write(0) }
}

/// `get-environment: func() -> list<tuple<string, string>>`: empty.
#[unsafe(no_mangle)]
unsafe extern "C" fn __wasm_import_environment_get_environment(ret: *mut u8) {
    // list = (pointer: u32, length: u32)
    unsafe { ptr::write_bytes(ret, 0, 8) }
}

/// `exit: func(status: result)`: the call ends with a trap.
#[unsafe(no_mangle)]
extern "C" fn __wasm_import_exit_exit(_status: i32) {
    unreachable()
}

/// `check-write: func() -> result<u64, stream-error>`: always room.
#[unsafe(no_mangle)]
unsafe extern "C" fn __wasm_import_streams_method_output_stream_check_write(stream: i32, ret: *mut u8) {
    ours(stream);
    // result: discriminant byte at 0, the u64 payload at 8 (its alignment).
    unsafe {
        ret.write(0);
        ret.add(8).cast::<u64>().write(WRITE_PERMIT);
    }
}

/// `write: func(contents: list<u8>) -> result<_, stream-error>`: dropped.
#[unsafe(no_mangle)]
unsafe extern "C" fn __wasm_import_streams_method_output_stream_write(
    stream: i32,
    _data: i32,
    _len: i32,
    ret: *mut u8,
) {
    ours(stream);
    unsafe { ret.write(0) }
}

/// `blocking-flush: func() -> result<_, stream-error>`: nothing to flush.
#[unsafe(no_mangle)]
unsafe extern "C" fn __wasm_import_streams_method_output_stream_blocking_flush(stream: i32, ret: *mut u8) {
    ours(stream);
    unsafe { ret.write(0) }
}

#[unsafe(no_mangle)]
extern "C" fn __wasm_import_streams_method_output_stream_subscribe(stream: i32) -> i32 {
    ours(stream);
    POLLABLE
}

/// `pollable.block`: a sink is always ready.
#[unsafe(no_mangle)]
extern "C" fn __wasm_import_poll_method_pollable_block(pollable: i32) {
    our_pollable(pollable)
}

#[unsafe(no_mangle)]
extern "C" fn __wasm_import_poll_pollable_drop(pollable: i32) {
    our_pollable(pollable)
}

#[unsafe(no_mangle)]
extern "C" fn __wasm_import_streams_input_stream_drop(stream: i32) {
    ours(stream)
}

#[unsafe(no_mangle)]
extern "C" fn __wasm_import_streams_output_stream_drop(stream: i32) {
    ours(stream)
}

/// No terminal is ever handed out (see `get-terminal-*`), so any terminal
/// handle is a real one.
#[unsafe(no_mangle)]
extern "C" fn __wasm_import_terminal_input_terminal_input_drop(_terminal: i32) {
    unreachable()
}

#[unsafe(no_mangle)]
extern "C" fn __wasm_import_terminal_output_terminal_output_drop(_terminal: i32) {
    unreachable()
}

/// The streams above never fail, so any error handle is a real one.
#[unsafe(no_mangle)]
extern "C" fn __wasm_import_io_error_error_drop(_error: i32) {
    unreachable()
}
