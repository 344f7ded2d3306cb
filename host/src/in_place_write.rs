//! A `wasi:filesystem` `descriptor.write` that writes straight from guest
//! memory.
//!
//! wasmtime-wasi lifts the `list<u8>` argument into a fresh host `Vec`
//! (one copy of every byte) before `pwrite`. This version takes the list as a
//! [`WasmList`] and hands the kernel a slice of the guest's linear memory, so
//! the state bytes are copied once fewer on their way to disk. Semantics are
//! wasmtime-wasi's: the descriptor must be a file of this tenant's table, its
//! preopen must allow writes, and errors map to the same WASI error codes.
//! Everything else of `wasi:filesystem` stays wasmtime-wasi's own.

use crate::tenant::TenantState;
use std::os::unix::fs::FileExt;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, WasmList};
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode as IoErrorCode;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::ErrorCode;

/// The `wasi:filesystem/types` instance wasmtime-wasi 48 defines (guests
/// importing an older 0.2.x version are matched to it by semver).
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";
const WRITE: &str = "[method]descriptor.write";

/// Replaces wasmtime-wasi's `descriptor.write` in `linker` (which must
/// already hold wasmtime-wasi's p2 interfaces).
///
/// Fails, rather than slowing down silently, if wasmtime-wasi does not
/// define [`FILESYSTEM_TYPES`]'s `descriptor.write`: with another instance
/// name the override would be a second, unused definition and every write
/// would take wasmtime-wasi's copying path.
pub(crate) fn add_to_linker(linker: &mut Linker<TenantState>) -> wasmtime::Result<()> {
    if !defines(linker, FILESYSTEM_TYPES, WRITE) {
        wasmtime::bail!(
            "wasmtime-wasi does not define `{WRITE}` in `{FILESYSTEM_TYPES}`; the in-place write \
             cannot replace it (update FILESYSTEM_TYPES in in_place_write.rs to wasmtime-wasi's version)"
        );
    }
    linker.allow_shadowing(true);
    let result = linker.instance(FILESYSTEM_TYPES).and_then(|mut types| {
        types.func_wrap(
            WRITE,
            |store: StoreContextMut<'_, TenantState>, (fd, data, offset): (Resource<Descriptor>, WasmList<u8>, u64)| {
                Ok((write(store, &fd, &data, offset)?,))
            },
        )
    });
    linker.allow_shadowing(false);
    result
}

/// Whether `linker` already defines function `func` of `instance`: a second
/// definition without shadowing is refused exactly when it does.
fn defines(linker: &Linker<TenantState>, instance: &str, func: &str) -> bool {
    let mut probe = linker.clone();
    probe.allow_shadowing(false);
    let defined_again = probe
        .instance(instance)
        .and_then(|mut i| i.func_wrap(func, |_: StoreContextMut<'_, TenantState>, (): ()| Ok(())));
    defined_again.is_err()
}

/// One positional write, as `pwrite`: may write fewer bytes than given.
fn write(
    store: StoreContextMut<'_, TenantState>,
    fd: &Resource<Descriptor>,
    data: &WasmList<u8>,
    offset: u64,
) -> wasmtime::Result<Result<u64, ErrorCode>> {
    #[cfg(test)]
    let mut store = store;
    #[cfg(test)]
    {
        store.data_mut().in_place_writes += 1;
    }
    // A descriptor that is not in the table is the guest's mistake, as in
    // wasmtime-wasi: an error value, not a trap.
    let descriptor = store.data().table().get(fd).ok();
    let window = store.data().writeback_window;
    Ok(write_at(descriptor, data.as_le_slice(&store), offset, window))
}

/// The checks and the write of `descriptor.write`, on plain values; then
/// the writeback of what the write completed (`window`, see
/// [`crate::writeback`]).
fn write_at(descriptor: Option<&Descriptor>, bytes: &[u8], offset: u64, window: u64) -> Result<u64, ErrorCode> {
    let file = match descriptor {
        Some(Descriptor::File(f)) => f,
        Some(Descriptor::Dir(_)) | None => return Err(ErrorCode::BadDescriptor),
    };
    if file.perms.write_not_permitted() {
        return Err(ErrorCode::NotPermitted);
    }
    match file.file.write_at(bytes, offset) {
        Ok(n) => {
            crate::writeback::after_write(&file.file, window, offset, n as u64);
            Ok(n as u64)
        }
        // wasmtime-wasi's own errno mapping, through its async type.
        Err(e) => Err(ErrorCode::from(IoErrorCode::from(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorCode, FILESYSTEM_TYPES, WRITE, add_to_linker, defines, write_at};
    use crate::tenant::TenantState;
    use crate::{LocationReference, Plugin, StateHandle, StateScope, StorageConfig, TenantConfig};
    use wasmtime::component::Linker;
    use wasmtime_wasi::filesystem::{Descriptor, Dir, File, FsPerms, OpenMode};

    fn file_descriptor(file: std::fs::File, perms: FsPerms) -> Descriptor {
        Descriptor::File(File::new(file, perms, OpenMode::READ | OpenMode::WRITE, true))
    }

    #[test]
    fn writes_at_the_offset_and_refuses_what_wasmtime_wasi_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let rw = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .unwrap();
        let d = file_descriptor(rw, FsPerms::ReadWrite);
        crate::writeback::take_asked();
        assert_eq!(write_at(Some(&d), b"hello", 0, 4), Ok(5));
        assert_eq!(write_at(Some(&d), b"!", 5, 4), Ok(1));
        assert_eq!(write_at(Some(&d), b"!", 6, 0), Ok(1));
        // The window the first write completed went to the disk at once.
        assert_eq!(crate::writeback::take_asked(), vec![0..4]);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello!!");

        // Not in the table, or a directory: bad descriptor, nothing written.
        assert_eq!(write_at(None, b"x", 0, 1), Err(ErrorCode::BadDescriptor));
        let dir_file = std::fs::File::open(dir.path()).unwrap();
        let as_dir = Descriptor::Dir(Dir::new(dir_file, FsPerms::ReadWrite, OpenMode::all(), true));
        assert_eq!(write_at(Some(&as_dir), b"x", 0, 1), Err(ErrorCode::BadDescriptor));
        // A preopen without write permission.
        let rw = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let read_only = file_descriptor(rw, FsPerms::ReadOnly);
        assert_eq!(write_at(Some(&read_only), b"x", 0, 1), Err(ErrorCode::NotPermitted));
        // The OS refuses (the file was opened for reading only): its errno, mapped.
        let ro = std::fs::File::open(&path).unwrap();
        let d = file_descriptor(ro, FsPerms::ReadWrite);
        assert_eq!(write_at(Some(&d), b"x", 0, 1), Err(ErrorCode::BadDescriptor));
        assert_eq!(std::fs::read(&path).unwrap(), b"hello!!", "nothing refused was written");
        assert!(
            crate::writeback::take_asked().is_empty(),
            "nothing refused is written back"
        );
    }

    #[test]
    fn the_override_is_checked_against_wasmtime_wasis_instance_name() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::<TenantState>::new(&engine);
        // Without wasmtime-wasi's definitions there is nothing to replace:
        // loading fails instead of silently using a second definition.
        assert!(!defines(&linker, FILESYSTEM_TYPES, WRITE));
        let e = add_to_linker(&mut linker).unwrap_err();
        assert!(e.to_string().contains("does not define"), "{e}");
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
        assert!(
            defines(&linker, FILESYSTEM_TYPES, WRITE),
            "wasmtime-wasi's name is {FILESYSTEM_TYPES}"
        );
        assert!(!defines(&linker, "wasi:filesystem/types@0.3.0", WRITE));
        add_to_linker(&mut linker).unwrap();
    }

    const JOB: &str = "0123456789abcdef0123456789abcdef";

    /// A tenant of a fresh directory with writeback `window` and the
    /// factory of its checkpoint 1 (`<JOB>/chk-1` made).
    fn checkpoint_1(window: u64) -> (tempfile::TempDir, crate::Tenant, crate::StreamFactory) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(JOB).join("chk-1")).unwrap();
        let config = TenantConfig::new(dir.path()).with_writeback_window(window);
        let tenant = Plugin::load().unwrap().tenant(config).unwrap();
        let factory = tenant
            .open_worker_view(&StorageConfig::filesystem(JOB))
            .unwrap()
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap();
        (dir, tenant, factory)
    }

    /// The ranges this thread asked to write back, checked to follow each
    /// other from the start of the file: how far they reach.
    fn written_back_up_to() -> u64 {
        let asked = crate::writeback::take_asked();
        asked.iter().fold(0, |end, range| {
            assert_eq!(range.start, end, "{asked:?}");
            range.end
        })
    }

    #[test]
    fn the_guests_file_writes_take_the_in_place_path_and_start_writeback() {
        let (dir, tenant, factory) = checkpoint_1(64 * 1024);
        crate::writeback::take_asked();
        // Unbatched writes too small for direct writes by the host: the
        // guest writes them, from its buffer.
        let mut stream = factory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap()
            .with_batch_size(0);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(10_000) {
            stream.write(chunk).unwrap();
        }
        let handle = stream.close_and_get_handle().unwrap().unwrap();
        assert!(tenant.in_place_writes() >= 5, "{}", tenant.in_place_writes());
        assert_eq!(written_back_up_to(), 4 * 64 * 1024, "every completed window");
        let StateHandle::RelativeFile(file) = &handle else {
            panic!("expected a file, got {handle:?}");
        };
        let on_disk = std::fs::read(dir.path().join(JOB).join("chk-1").join(&file.relative_path)).unwrap();
        assert_eq!(on_disk, data);
    }

    #[test]
    fn large_writes_reach_the_file_without_the_guest_writing_them() {
        let (dir, tenant, factory) = checkpoint_1(crate::writeback::DEFAULT_WINDOW);
        crate::writeback::take_asked();
        let mut stream = factory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap();
        let data: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 253) as u8).collect();
        for chunk in data.chunks(1 << 20) {
            stream.write(chunk).unwrap();
        }
        assert_eq!(stream.get_pos().unwrap(), data.len() as u64);
        let handle = stream.close_and_get_handle().unwrap().unwrap();
        assert_eq!(tenant.in_place_writes(), 0, "the host wrote every byte itself");
        assert_eq!(written_back_up_to(), 4 << 20, "the host's writes start writeback too");
        let StateHandle::RelativeFile(file) = &handle else {
            panic!("expected a file, got {handle:?}");
        };
        assert_eq!(file.size, data.len() as u64);
        let on_disk = std::fs::read(dir.path().join(JOB).join("chk-1").join(&file.relative_path)).unwrap();
        assert_eq!(on_disk, data);
    }

    #[test]
    fn window_zero_leaves_the_writing_to_the_close() {
        let (dir, _tenant, factory) = checkpoint_1(0);
        crate::writeback::take_asked();
        let mut stream = factory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap();
        let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 247) as u8).collect();
        for chunk in data.chunks(4096) {
            stream.write(chunk).unwrap();
        }
        let handle = stream.close_and_get_handle().unwrap().unwrap();
        assert!(crate::writeback::take_asked().is_empty());
        let StateHandle::RelativeFile(file) = &handle else {
            panic!("expected a file, got {handle:?}");
        };
        let on_disk = std::fs::read(dir.path().join(JOB).join("chk-1").join(&file.relative_path)).unwrap();
        assert_eq!(on_disk, data);
    }
}
