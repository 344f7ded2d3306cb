//! The allowed range of every `TenantConfig` setting, checked once when a
//! tenant is created, so that no value reaches wasmtime or the limit
//! arithmetic out of range.

use crate::tenant::TenantConfig;
use std::time::Duration;

/// Longest `TenantConfig::max_call_time`: a day. A call that needs longer is
/// a hung tenant, and far larger values would overflow the epoch deadline.
pub const MAX_CALL_TIME: Duration = Duration::from_secs(24 * 3600);
/// Smallest `TenantConfig::max_memory_bytes`: one WebAssembly page.
pub const MIN_MEMORY_BYTES: usize = 64 << 10;
/// Largest `TenantConfig::max_memory_bytes`: all a 32-bit linear memory can
/// address (a pooling plugin allows less, see `Plugin::tenant`).
pub const MAX_MEMORY_BYTES: usize = 4 << 30;

/// A `TenantConfig` setting outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant configuration: {field} is {value}; allowed: {allowed}")]
pub struct ConfigError {
    /// The field of `TenantConfig`, e.g. `max_call_time`.
    pub field: &'static str,
    /// The value given, in words.
    pub value: String,
    /// The allowed range, in words.
    pub allowed: String,
}

fn out_of_range(field: &'static str, value: impl std::fmt::Debug, allowed: String) -> ConfigError {
    ConfigError {
        field,
        value: format!("{value:?}"),
        allowed,
    }
}

/// Checks every setting of `config`; `max_memory` is the largest memory cap
/// the plugin's allocator can give, `allocator` names that allocator.
pub(crate) fn check(config: &TenantConfig, max_memory: usize, allocator: &str) -> Result<(), ConfigError> {
    let time = config.max_call_time;
    if time.is_zero() || time > MAX_CALL_TIME {
        return Err(out_of_range(
            "max_call_time",
            time,
            format!(
                "longer than zero (instantiation runs guest code too) and at most {}s",
                MAX_CALL_TIME.as_secs()
            ),
        ));
    }
    let memory = config.max_memory_bytes;
    if !(MIN_MEMORY_BYTES..=max_memory).contains(&memory) {
        return Err(out_of_range(
            "max_memory_bytes",
            memory,
            format!("{MIN_MEMORY_BYTES} to {max_memory} bytes with the {allocator} allocator"),
        ));
    }
    if config.max_open_streams == 0 {
        return Err(out_of_range(
            "max_open_streams",
            config.max_open_streams,
            format!("1 to {}", u32::MAX),
        ));
    }
    // read_state collects the state in one Vec, which holds at most isize::MAX bytes.
    let max_read = isize::MAX as u64;
    if config.max_read_state_bytes > max_read {
        return Err(out_of_range(
            "max_read_state_bytes",
            config.max_read_state_bytes,
            format!("0 to {max_read} bytes"),
        ));
    }
    Ok(())
}
