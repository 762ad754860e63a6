//! The synchronisation facade: `std::sync` normally, [loom]'s model types under
//! `cfg(booking_loom)`.
//!
//! Modelled on tokio's `src/loom` facade: every lock and `Arc` of this crate is named through
//! this module, so the loom models in `tests/loom.rs` explore the very lock protocol that
//! production code runs. Nothing else in the crate may name `std::sync` directly.
//!
//! # Lock poisoning
//!
//! The helpers [`lock`], [`read`] and [`write`] **recover** a poisoned lock with
//! [`PoisonError::into_inner`] instead of failing. That is sound here because every critical
//! section of the store is written "plan, then commit": all checks that can fail (state
//! machine planning, conflict scan, uniqueness checks) run before the first write, and the
//! writes that follow are plain collection updates that cannot panic short of an allocation
//! failure (which aborts the process rather than unwinding). A panic can therefore only
//! happen while the protected data is still unchanged, and the data behind a poisoned lock
//! is consistent. Turning poison into `Error::Internal` instead would wedge a professional's
//! shard (or the whole outbox) until restart for no gain.
//!
//! [loom]: https://docs.rs/loom

#[cfg(booking_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
#[cfg(not(booking_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

// loom re-exports std's `LockResult`, so std's `PoisonError` fits both.
use std::sync::PoisonError;

/// Locks `m`, recovering from poisoning (see the module docs for why that is sound).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `l`, recovering from poisoning.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `l`, recovering from poisoning.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(all(test, not(booking_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered() {
        let m = Arc::new(Mutex::new(1));
        let m2 = Arc::clone(&m);
        let joined = std::thread::spawn(move || {
            let _g = lock(&m2);
            panic!("poison it");
        })
        .join();
        assert!(joined.is_err());
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), 1);
        let l = RwLock::new(2);
        assert_eq!(*read(&l), 2);
        *write(&l) = 3;
        assert_eq!(*read(&l), 3);
    }
}
