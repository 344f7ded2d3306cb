//! Small state: whole streams per second for 100-byte states, which end as
//! inline handles (no file), through the component and natively. Here the
//! cost is the calls per stream (create, write, close, drop), not bytes; so
//! the one-call `write_state` is measured too, and `write_states`, which
//! writes many states in one call.

use super::native::NativeStream;
use super::{BenchError, Workspace, io_error};
use checkpoint_storage_host::StateScope;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Size of one small state.
pub const STATE_BYTES: usize = 100;

/// Streams per batch; batches of both sides take turns.
const BATCH: u64 = 1000;

/// States per `write_states` call (a task snapshotting this many small
/// states at once).
pub const STATES_PER_CALL: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmallStateResult {
    pub state_bytes: usize,
    pub streams: u64,
    pub native_per_s: f64,
    /// Stream calls: create, write, close-and-get-handle, drop.
    pub component_per_s: f64,
    /// One `write_state` call per state.
    #[serde(default)]
    pub one_call_per_s: f64,
    /// `write_states` calls of [`STATES_PER_CALL`] states.
    #[serde(default)]
    pub batched_per_s: f64,
}

/// Measures `streams` small states on each side; one progress step per batch.
pub fn measure(ws: &Workspace, streams: u64, progress: &ProgressBar) -> Result<SmallStateResult, BenchError> {
    let data = [0x5a_u8; STATE_BYTES];
    let states = vec![data.to_vec(); STATES_PER_CALL];
    let (mut native, mut component, mut one_call, mut batched) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    // Warm-up: no side is timed cold.
    native_batch(ws, &data, 10)?;
    component_batch(ws, &data, 10)?;
    one_call_batch(ws, &data, 10)?;
    batched_batch(ws, &states, 10)?;
    let mut done = 0;
    while done < streams {
        let n = BATCH.min(streams - done);
        native += native_batch(ws, &data, n)?;
        component += component_batch(ws, &data, n)?;
        one_call += one_call_batch(ws, &data, n)?;
        batched += batched_batch(ws, &states, n)?;
        done += n;
        progress.inc(1);
    }
    Ok(SmallStateResult {
        state_bytes: STATE_BYTES,
        streams,
        native_per_s: streams as f64 / native.as_secs_f64().max(1e-9),
        component_per_s: streams as f64 / component.as_secs_f64().max(1e-9),
        one_call_per_s: streams as f64 / one_call.as_secs_f64().max(1e-9),
        batched_per_s: streams as f64 / batched.as_secs_f64().max(1e-9),
    })
}

/// Number of progress steps `measure` makes.
pub fn steps(streams: u64) -> u64 {
    streams.div_ceil(BATCH)
}

fn native_batch(ws: &Workspace, data: &[u8], n: u64) -> Result<Duration, BenchError> {
    let started = Instant::now();
    for _ in 0..n {
        let mut s = NativeStream::new(&ws.native_dir, ws.threshold, ws.buffer_size);
        s.write(data).map_err(io_error("native small state write"))?;
        let handle = s.close_and_get_handle().map_err(io_error("native small state close"))?;
        std::hint::black_box(handle);
    }
    Ok(started.elapsed())
}

fn component_batch(ws: &Workspace, data: &[u8], n: u64) -> Result<Duration, BenchError> {
    let started = Instant::now();
    for _ in 0..n {
        let mut s = ws
            .factory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)?;
        s.write(data)?;
        let handle = s.close_and_get_handle()?;

        std::hint::black_box(handle);
    }
    Ok(started.elapsed())
}

fn one_call_batch(ws: &Workspace, data: &[u8], n: u64) -> Result<Duration, BenchError> {
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(ws.factory.write_state(StateScope::Exclusive, data)?);
    }
    Ok(started.elapsed())
}

/// `n` states through `write_states`, in calls of `states.len()` (the last
/// call takes what is left).
fn batched_batch(ws: &Workspace, states: &[Vec<u8>], n: u64) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let mut left = n as usize;
    while left > 0 {
        let call = &states[..states.len().min(left)];
        for handle in ws.factory.write_states(StateScope::Exclusive, call) {
            std::hint::black_box(handle?);
        }
        left -= call.len();
    }
    Ok(started.elapsed())
}
