//! The tenant count of a pooling plugin. The pool is sized in component
//! instances, and a tenant holds one or two (the task side, and the full
//! component beside it once it opens a coordinator view or a file-merging
//! manager), so wasmtime's own refusal would come at a count that depends
//! on what tenants did. Counting tenants keeps
//! `PluginOptions::pooling(max_tenants)` meaning tenants, and gives the
//! refusal a clear message.

use crate::error::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Up to `max` live tenants.
#[derive(Debug)]
pub(crate) struct TenantSlots {
    max: u32,
    live: AtomicU32,
}

/// One live tenant's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct TenantSlot(Arc<TenantSlots>);

impl TenantSlots {
    pub(crate) fn new(max: u32) -> Arc<Self> {
        Arc::new(TenantSlots {
            max,
            live: AtomicU32::new(0),
        })
    }

    /// A place for one more tenant, or a setup error when all are taken.
    pub(crate) fn take(self: &Arc<Self>) -> Result<TenantSlot> {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < self.max).then_some(live + 1)
            })
            .map(|_| TenantSlot(self.clone()))
            .map_err(|_| {
                Error::Setup(wasmtime::format_err!(
                    "all {} tenant slots of the pooling allocator are in use: drop a tenant (with its views and streams) first, or load the plugin with a larger PluginOptions::pooling",
                    self.max
                ))
            })
    }

    /// Tenants alive now.
    #[cfg(test)]
    pub(crate) fn live(&self) -> u32 {
        self.live.load(Ordering::Acquire)
    }
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_up_to_the_maximum_and_given_back_when_dropped() {
        let slots = TenantSlots::new(2);
        let a = slots.take().unwrap();
        let b = slots.take().unwrap();
        let e = slots.take().unwrap_err();
        assert!(matches!(e, Error::Setup(_)), "{e}");
        assert!(e.to_string().contains("all 2 tenant slots"), "{e}");
        assert_eq!(slots.live(), 2);
        drop(a);
        assert_eq!(slots.live(), 1);
        let c = slots.take().unwrap();
        drop((b, c));
        assert_eq!(slots.live(), 0);
    }
}
