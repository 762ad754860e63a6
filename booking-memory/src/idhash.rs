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

    /// A fixed stream of well-mixed words (splitmix64), so the test is deterministic.
    fn words(seed: u64) -> impl Iterator<Item = u64> {
        let mut x = seed;
        std::iter::repeat_with(move || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    fn hash_of(write: impl FnOnce(&mut IdHasher)) -> u64 {
        let mut h = IdHasher::default();
        write(&mut h);
        h.finish()
    }

    #[test]
    fn every_input_bit_flips_every_output_bit_about_half_the_time() {
        // The strict avalanche criterion over 16-byte keys (what a UUID writes): for each
        // input bit and each output bit, flipping the input bit flips the output bit in
        // 45-55 % of 2,000 random keys. A weak mix (`|` for `^`, `<<` for `>>`) breaks it.
        const SAMPLES: u32 = 2_000;
        let mut flips = vec![[0u32; 64]; 128];
        let mut stream = words(7);
        for _ in 0..SAMPLES {
            let key: u128 = (u128::from(stream.next().unwrap_or(0)) << 64)
                | u128::from(stream.next().unwrap_or(0));
            let base = hash_of(|h| h.write(&key.to_le_bytes()));
            for (bit, counts) in flips.iter_mut().enumerate() {
                let flipped = hash_of(|h| h.write(&(key ^ (1u128 << bit)).to_le_bytes()));
                let diff = base ^ flipped;
                for (out, count) in counts.iter_mut().enumerate() {
                    *count += u32::from(diff >> out & 1 == 1);
                }
            }
        }
        for (bit, counts) in flips.iter().enumerate() {
            for (out, &count) in counts.iter().enumerate() {
                assert!(
                    (SAMPLES * 9 / 20..=SAMPLES * 11 / 20).contains(&count),
                    "input bit {bit} flips output bit {out} {count} times in {SAMPLES}"
                );
            }
        }
    }

    #[test]
    fn sixteen_bytes_hash_as_their_two_little_endian_words() {
        // No padding word for inputs that fill whole words (UUIDs fill two).
        let key = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128;
        let bytes = key.to_le_bytes();
        let by_bytes = hash_of(|h| h.write(&bytes));
        let by_words = hash_of(|h| {
            h.mix(key as u64);
            h.mix((key >> 64) as u64);
        });
        assert_eq!(by_bytes, by_words);
        // A short tail is padded with zeros to a word.
        assert_eq!(
            hash_of(|h| h.write(&[1, 2, 3])),
            hash_of(|h| h.mix(0x03_02_01))
        );
    }

    #[test]
    fn integer_keys_hash_by_their_value() {
        let b = IdBuildHasher::default();
        let u64s: std::collections::HashSet<u64> = (0u64..256).map(|n| b.hash_one(n)).collect();
        let usizes: std::collections::HashSet<u64> = (0usize..256).map(|n| b.hash_one(n)).collect();
        assert_eq!(u64s.len(), 256);
        assert_eq!(usizes.len(), 256);
    }
}
