//! A hash map split into independently locked stripes, for the global maps that sit on hot
//! paths (professional -> shard, booking -> professional, client -> bookings).
//!
//! Every access goes through a closure that runs with exactly one stripe locked, so a
//! stripe lock is always a *leaf*: the closures never take another lock.

use std::hash::Hash;

use booking_core::{BookingId, ClientId, ProfessionalId};

use crate::idhash::IdMap;
use crate::sync::{RwLock, read, write};

/// Number of stripes. Under loom a single stripe keeps the explored state small; the lock
/// protocol is the same either way.
#[cfg(not(booking_loom))]
const STRIPES: usize = 32;
#[cfg(booking_loom)]
const STRIPES: usize = 1;

/// Keys that pick their stripe cheaply. Our ids are UUID v7s whose low bits are random.
pub(crate) trait StripeKey: Hash + Eq + Copy {
    /// Any well-mixed number derived from the key.
    fn spread(&self) -> u64;
}

macro_rules! uuid_stripe_key {
    ($($t:ty),*) => {$(
        impl StripeKey for $t {
            fn spread(&self) -> u64 {
                // Truncation intended: the low 64 bits hold most of a v7's random part.
                let v = self.as_uuid().as_u128();
                (v as u64) ^ ((v >> 64) as u64)
            }
        }
    )*};
}

uuid_stripe_key!(ProfessionalId, BookingId, ClientId);

/// A `IdMap<K, V>` split into [`STRIPES`] read-write locked parts.
pub(crate) struct Striped<K, V> {
    stripes: Box<[RwLock<IdMap<K, V>>]>,
}

impl<K: StripeKey, V> Striped<K, V> {
    /// An empty map.
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES)
                .map(|_| RwLock::new(IdMap::default()))
                .collect(),
        }
    }

    fn stripe(&self, key: &K) -> &RwLock<IdMap<K, V>> {
        // STRIPES is tiny, so the modulo always fits in usize.
        let i = (key.spread() % STRIPES as u64) as usize;
        &self.stripes[i]
    }

    /// Runs `f` on the stripe holding `key`, read-locked.
    pub(crate) fn read<R>(&self, key: &K, f: impl FnOnce(&IdMap<K, V>) -> R) -> R {
        f(&read(self.stripe(key)))
    }

    /// Runs `f` on the stripe holding `key`, write-locked.
    pub(crate) fn write<R>(&self, key: &K, f: impl FnOnce(&mut IdMap<K, V>) -> R) -> R {
        f(&mut write(self.stripe(key)))
    }

    /// Runs `f` on every stripe in turn, each read-locked only while `f` runs on it.
    pub(crate) fn for_each_stripe(&self, mut f: impl FnMut(&IdMap<K, V>)) {
        for s in self.stripes.iter() {
            f(&read(s));
        }
    }
}
