//! A fast hasher for maps keyed by our own ids.
//!
//! Booking, professional, client and event ids are UUIDs the engine generates itself (v7:
//! a timestamp plus random bits), never keys an outsider chooses for insertion, so the
//! DoS-resistant (and comparatively slow) SipHash buys nothing for them. This hasher folds
//! the bytes into 64 bits and finishes with the murmur3 `fmix64` mixer so both the low
//! bits (bucket index) and the high bits (hashbrown's tag) are well spread, even for
//! sequential test ids. Maps keyed by strings a client can pick (idempotency keys) keep
//! the standard hasher.

use std::hash::{BuildHasherDefault, Hasher};

/// Hasher state; see the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

/// `BuildHasher` for [`IdHasher`].
pub(crate) type IdBuildHasher = BuildHasherDefault<IdHasher>;

/// A `HashMap` keyed by ids.
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, IdBuildHasher>;

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl IdHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        // murmur3 fmix64
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(all(test, not(booking_loom)))]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn sequential_ids_spread_over_buckets_and_tags() {
        let b = IdBuildHasher::default();
        let hashes: Vec<u64> = (0u128..4096)
            .map(|i| b.hash_one(uuid::Uuid::from_u128(i)))
            .collect();
        let low: std::collections::HashSet<_> = hashes.iter().map(|h| h & 0xfff).collect();
        let tags: std::collections::HashSet<_> = hashes.iter().map(|h| h >> 57).collect();
        assert!(low.len() > 2500, "low bits collide: {}", low.len());
        assert_eq!(tags.len(), 128, "every 7-bit tag is used");
    }
}
