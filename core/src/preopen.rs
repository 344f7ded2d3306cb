//! The sandbox of a component instance is made from the directories its
//! host preopened. It is read at the first call and kept for the instance's
//! life, except when there is none: a host may instantiate before it
//! preopens (jco's preopens are process-wide and may be set later), so an
//! empty result is not kept and the next call reads the preopens again.
//! Until then every call that needs files fails with [`no_preopen_error`]
//! instead of a misleading "outside this tenant's directory".

use crate::error::{ErrorCode, StorageError};
use crate::layout::GUEST_MOUNT;
use std::cell::RefCell;
use std::rc::Rc;

/// The sandbox once a preopen was found; empty before.
pub struct SandboxSlot<S>(RefCell<Option<Rc<S>>>);

impl<S> SandboxSlot<S> {
    pub const fn new() -> Self {
        SandboxSlot(RefCell::new(None))
    }

    /// The kept sandbox, or a new one from `open`, which returns `None`
    /// when the host preopened no usable directory (then nothing is kept).
    pub fn get_or_open(&self, open: impl FnOnce() -> Option<S>) -> Result<Rc<S>, StorageError> {
        if let Some(sandbox) = &*self.0.borrow() {
            return Ok(Rc::clone(sandbox));
        }
        let sandbox = Rc::new(open().ok_or_else(no_preopen_error)?);
        *self.0.borrow_mut() = Some(Rc::clone(&sandbox));
        Ok(sandbox)
    }
}

impl<S> Default for SandboxSlot<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// What a call answers while the host has preopened no directory.
pub fn no_preopen_error() -> StorageError {
    StorageError::new(
        ErrorCode::NotFound,
        format!(
            "no directory was preopened for this component; the host must preopen the tenant's directory \
             (at an absolute guest path, e.g. {GUEST_MOUNT}) before the first call"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn no_preopen_is_a_clear_not_found_and_is_not_kept() {
        let slot = SandboxSlot::<u32>::new();
        let opens = Cell::new(0);
        for _ in 0..2 {
            let e = slot
                .get_or_open(|| {
                    opens.set(opens.get() + 1);
                    None
                })
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::NotFound);
            assert!(e.message.contains("no directory was preopened"), "{}", e.message);
            assert!(e.message.contains(GUEST_MOUNT), "{}", e.message);
        }
        assert_eq!(opens.get(), 2, "an empty preopen list is read again at every call");

        // Once the host has preopened a directory, the next call finds it.
        assert_eq!(*slot.get_or_open(|| Some(7)).unwrap(), 7);
    }

    #[test]
    fn a_found_sandbox_is_kept_for_the_instance() {
        let slot = SandboxSlot::new();
        let first = slot.get_or_open(|| Some(String::from("preopens"))).unwrap();
        let again = slot.get_or_open(|| panic!("the preopens are read only once")).unwrap();
        assert!(Rc::ptr_eq(&first, &again));
    }
}
