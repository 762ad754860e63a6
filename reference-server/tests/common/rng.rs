//! A seeded random source for the abuse tests (torture, crash and restart), and their
//! scale knob.
//!
//! SplitMix64: tiny, fast and good enough to pick operations; a run is reproduced by its
//! seed (`BOOKING_TORTURE_SEED`), which every test prints.

use std::time::{SystemTime, UNIX_EPOCH};

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An independent generator derived from this one (one per client task).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// The run's seed: `BOOKING_TORTURE_SEED` if set, otherwise the clock's nanoseconds.
pub fn seed() -> u64 {
    if let Some(seed) = std::env::var("BOOKING_TORTURE_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return seed;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5EED)
}

/// The long mode's multiplier: `BOOKING_TORTURE_SCALE` (default 1, the CI size).
pub fn scale() -> usize {
    std::env::var("BOOKING_TORTURE_SCALE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n: &usize| n >= 1)
        .unwrap_or(1)
}
