//! Per-tenant limits: what a tenant may use, how use is counted, and the
//! typed error when a limit is exceeded.
//!
//! Memory and execution time are enforced by wasmtime (a store limiter and
//! epoch interruption): exceeding them traps, and the tenant's instance is
//! discarded. Open streams and bytes written are counted by the host's typed
//! API: exceeding them refuses the one call and the tenant goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::ResourceLimiter;

/// Default cap of each of a tenant's linear memories: 64 MiB (the memory
/// backend keeps up to 5 MiB per stream in guest memory by default).
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 64 << 20;
/// Default wall-clock bound of one call into a tenant. Generous: time spent in
/// host I/O (e.g. fsync of a large file) counts too.
pub const DEFAULT_MAX_CALL_TIME: Duration = Duration::from_secs(30);
/// Default bound of a tenant's live streams (output, metadata and input).
pub const DEFAULT_MAX_OPEN_STREAMS: u32 = 1024;
/// Default bound of the bytes `Tenant::read_state` collects in host memory
/// for one state: 1 GiB. Larger states are read in pieces through
/// `Tenant::open_input_stream`.
pub const DEFAULT_MAX_READ_STATE_BYTES: u64 = 1 << 30;

/// A tenant limit that was exceeded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// A linear memory would grow beyond `TenantConfig::max_memory_bytes`.
    /// The instance is discarded.
    #[error(
        "memory limit of {limit} bytes exceeded (a linear memory asked for {requested} bytes); the tenant's instance was discarded"
    )]
    Memory {
        /// The cap, in bytes (`TenantConfig::max_memory_bytes`).
        limit: usize,
        /// The size the memory was asked to grow to, in bytes.
        requested: usize,
    },
    /// One call ran longer than `TenantConfig::max_call_time`. The instance
    /// is discarded.
    #[error("execution time limit of {limit:?} per call exceeded; the tenant's instance was discarded")]
    ExecutionTime {
        /// The bound (`TenantConfig::max_call_time`).
        limit: Duration,
    },
    /// `TenantConfig::max_open_streams` streams are already open; close or
    /// drop one first. The tenant goes on.
    #[error(
        "at most {limit} streams (state output, metadata output and state input) may be open at once in this tenant; drop one first"
    )]
    OpenStreams {
        /// The bound (`TenantConfig::max_open_streams`).
        limit: u32,
    },
    /// The write would take the tenant beyond
    /// `TenantConfig::max_bytes_written`. Nothing of it was written; the
    /// tenant goes on.
    #[error("at most {limit} bytes may be written by this tenant: {written} written, {requested} more refused")]
    BytesWritten {
        /// The bound (`TenantConfig::max_bytes_written`).
        limit: u64,
        /// Bytes accepted before this write.
        written: u64,
        /// Bytes this write asked for.
        requested: u64,
    },
    /// `Tenant::read_state` was asked for a state larger than
    /// `TenantConfig::max_read_state_bytes`. Nothing was collected; the
    /// tenant goes on.
    #[error(
        "the state is {size} bytes, more than the {limit} bytes read_state collects in memory; read it in pieces with open_input_stream"
    )]
    StateTooLarge {
        /// The bound (`TenantConfig::max_read_state_bytes`).
        limit: u64,
        /// The state's size.
        size: u64,
    },
}

impl LimitExceeded {
    /// Whether exceeding this limit discarded the tenant's instance.
    pub fn discards_instance(&self) -> bool {
        matches!(self, LimitExceeded::Memory { .. } | LimitExceeded::ExecutionTime { .. })
    }
}

/// The store's resource limiter: caps each linear memory and remembers a
/// refusal, so that the resulting trap can be reported as a limit. Each
/// instance of a tenant has one memory, so each instance gets the whole
/// cap: a tenant that added the full component beside its task side (a
/// coordinator view or a file-merging manager) may hold up to twice the
/// cap. Capping them together would let the worker side's growth, which a
/// linear memory never gives back, make a later coordinator call discard
/// the tenant with its open streams.
pub(crate) struct MemoryLimiter {
    max_memory_bytes: usize,
    exceeded: Option<LimitExceeded>,
}

impl MemoryLimiter {
    pub(crate) fn new(max_memory_bytes: usize) -> Self {
        MemoryLimiter {
            max_memory_bytes,
            exceeded: None,
        }
    }

    /// The limit that made the last trap, if any (cleared).
    pub(crate) fn take_exceeded(&mut self) -> Option<LimitExceeded> {
        self.exceeded.take()
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            let e = LimitExceeded::Memory {
                limit: self.max_memory_bytes,
                requested: desired,
            };
            self.exceeded = Some(e.clone());
            // An error (not `false`) traps at the growth itself: a Rust guest
            // would abort on the failed allocation anyway, and this way the
            // trap names the cause.
            return Err(wasmtime::Error::new(e));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables stay within the maximum declared by the component (checked
        // by wasmtime); ours never grow them at run time.
        Ok(true)
    }
}

/// What a tenant has in use, shared by the tenant and its streams.
#[derive(Debug)]
pub(crate) struct Usage {
    max_open_streams: u32,
    max_bytes_written: Option<u64>,
    open_streams: AtomicU32,
    bytes_written: AtomicU64,
}

impl Usage {
    pub(crate) fn new(max_open_streams: u32, max_bytes_written: Option<u64>) -> Arc<Self> {
        Arc::new(Usage {
            max_open_streams,
            max_bytes_written,
            open_streams: AtomicU32::new(0),
            bytes_written: AtomicU64::new(0),
        })
    }

    pub(crate) fn open_streams(&self) -> u32 {
        self.open_streams.load(Ordering::Acquire)
    }

    pub(crate) fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Acquire)
    }

    /// Takes a stream slot, released when the permit is dropped.
    pub(crate) fn acquire_stream(self: &Arc<Self>) -> Result<StreamPermit, LimitExceeded> {
        let limit = self.max_open_streams;
        self.open_streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .map_err(|_| LimitExceeded::OpenStreams { limit })?;
        Ok(StreamPermit { usage: self.clone() })
    }
}

/// One open stream's slot in its tenant's [`Usage`].
#[derive(Debug)]
pub(crate) struct StreamPermit {
    usage: Arc<Usage>,
}

impl StreamPermit {
    /// Runs a write of `len` bytes, counted against the tenant's byte limit:
    /// refused before it reaches the guest if it would exceed the limit, and
    /// not counted if the guest refuses it.
    pub(crate) fn metered_write<T, E: From<LimitExceeded>>(
        &self,
        len: usize,
        write: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.reserve(len)?;
        let result = write();
        if result.is_err() {
            self.release(len);
        }
        result
    }

    /// Counts `len` bytes against the tenant's byte limit, or refuses them
    /// (nothing counted) if they would exceed it. For writes the host holds
    /// back before the guest sees them: [`release`](Self::release) what the
    /// guest later refuses.
    pub(crate) fn reserve(&self, len: usize) -> Result<(), LimitExceeded> {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let counter = &self.usage.bytes_written;
        if let Some(limit) = self.usage.max_bytes_written {
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    n.checked_add(len).filter(|&total| total <= limit)
                })
                .map_err(|written| LimitExceeded::BytesWritten {
                    limit,
                    written,
                    requested: len,
                })?;
        } else {
            counter.fetch_add(len, Ordering::AcqRel);
        }
        Ok(())
    }

    /// For a write the host holds back in a stream's batch: with a byte
    /// limit, [`reserve`](Self::reserve) (every write is counted or refused
    /// when it is made); without one, nothing yet: the batch is counted
    /// when it leaves the host ([`count_handed`](Self::count_handed)).
    pub(crate) fn reserve_held(&self, len: usize) -> Result<(), LimitExceeded> {
        if self.usage.max_bytes_written.is_some() {
            self.reserve(len)?;
        }
        Ok(())
    }

    /// Takes back what [`reserve_held`](Self::reserve_held) counted.
    pub(crate) fn release_held(&self, len: usize) {
        if self.usage.max_bytes_written.is_some() {
            self.release(len);
        }
    }

    /// Counts held-back bytes that left the host (or were dropped with
    /// their stream) if [`reserve_held`](Self::reserve_held) did not.
    pub(crate) fn count_handed(&self, len: usize) {
        if self.usage.max_bytes_written.is_none() && len > 0 {
            let len = u64::try_from(len).unwrap_or(u64::MAX);
            self.usage.bytes_written.fetch_add(len, Ordering::AcqRel);
        }
    }

    /// Takes back bytes [`reserve`](Self::reserve) counted that the guest
    /// did not accept.
    pub(crate) fn release(&self, len: usize) {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        self.usage.bytes_written.fetch_sub(len, Ordering::AcqRel);
    }
}

impl StreamPermit {
    /// Counts against the tenant's byte limit the longest prefix of writes
    /// of `lens` bytes that fits (all of them without a limit) and says how
    /// many that is. If not even the first fits, nothing is counted and the
    /// error is the one a write of the first alone gets.
    pub(crate) fn admit_prefix(&self, lens: &[usize]) -> Result<usize, LimitExceeded> {
        let lens = lens.iter().map(|&l| u64::try_from(l).unwrap_or(u64::MAX));
        let counter = &self.usage.bytes_written;
        let Some(limit) = self.usage.max_bytes_written else {
            counter.fetch_add(lens.clone().fold(0, u64::saturating_add), Ordering::AcqRel);
            return Ok(lens.count());
        };
        let mut admitted = 0;
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |written| {
                let (mut total, mut count) = (written, 0);
                for len in lens.clone() {
                    match total.checked_add(len).filter(|&t| t <= limit) {
                        Some(t) => (total, count) = (t, count + 1),
                        None => break,
                    }
                }
                admitted = count;
                (count > 0).then_some(total)
            })
            .map_err(|written| LimitExceeded::BytesWritten {
                limit,
                written,
                requested: lens.clone().next().unwrap_or(0),
            })?;
        Ok(admitted)
    }

    /// Takes back `len` bytes [`admit_prefix`](Self::admit_prefix) counted
    /// for a write the guest refused (refused writes are not counted).
    pub(crate) fn refund(&self, len: usize) {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        self.usage.bytes_written.fetch_sub(len, Ordering::AcqRel);
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.usage.open_streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Advances the engine's epoch every `tick` on its own thread, so that a
/// call's epoch deadline is wall-clock time. Shared by the plugin and its
/// tenants; the thread stops when the last of them is dropped.
pub(crate) struct EpochTicker {
    tick: Duration,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &wasmtime::Engine, tick: Duration) -> std::io::Result<Arc<Self>> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::sync_channel::<()>(1);
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("cs-epoch-ticker".into()) // at most 15 bytes: the OS thread name limit
            .spawn(move || {
                let _ = ready.send(());
                // Ends when the sender is dropped (Disconnected).
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })?;
        // Return only once the thread runs (and carries its name), so that a
        // plugin that loaded has a live ticker, not one about to start.
        is_ready
            .recv()
            .map_err(|_| std::io::Error::other("the epoch ticker thread ended before it started"))?;
        Ok(Arc::new(EpochTicker {
            tick,
            stop: Some(stop),
            thread: Some(thread),
        }))
    }

    /// The epoch deadline (in ticks) of a call that may run for `limit`. The
    /// first tick comes anywhere within one tick interval, so one tick is
    /// added: a call gets at least `limit`, at most `limit` plus two ticks.
    pub(crate) fn ticks_for(&self, limit: Duration) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        // Clamped far below u64::MAX: wasmtime adds the deadline to the
        // current epoch, which must not overflow.
        u64::try_from(limit.as_nanos().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .saturating_add(1)
            .min(u64::MAX >> 2)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only sleeps and increments; it cannot panic.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EpochTicker, LimitExceeded, MemoryLimiter};
    use std::time::Duration;
    use wasmtime::ResourceLimiter;

    #[test]
    fn each_memory_has_the_whole_cap() {
        let mut limiter = MemoryLimiter::new(100);
        // The task side's memory, created and grown to the cap.
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert!(limiter.memory_growing(40, 100, None).unwrap());
        // The full component's memory beside it has a cap of its own.
        assert!(limiter.memory_growing(0, 90, None).unwrap());
        assert_eq!(limiter.take_exceeded(), None);
        let e = limiter.memory_growing(90, 101, None).unwrap_err();
        let expected = LimitExceeded::Memory {
            limit: 100,
            requested: 101,
        };
        assert_eq!(e.downcast_ref::<LimitExceeded>(), Some(&expected));
        assert_eq!(limiter.take_exceeded(), Some(expected));
    }

    #[test]
    fn a_huge_call_time_gives_a_deadline_wasmtime_can_add_to_the_epoch() {
        let engine = wasmtime::Engine::default();
        let ticker = EpochTicker::start(&engine, Duration::from_millis(10)).unwrap();
        assert_eq!(ticker.ticks_for(Duration::from_millis(25)), 4);
        let ticks = ticker.ticks_for(Duration::MAX);
        assert!(ticks.checked_add(u64::MAX >> 1).is_some(), "{ticks}");
    }
}
