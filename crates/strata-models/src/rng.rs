//! A tiny, dependency-free, seeded pseudo-random generator (SplitMix64).
//!
//! Used for bin-construction sampling, row subsampling and bootstrap resampling. Every stream is
//! derived from `(seed, stream id)` so results never depend on thread scheduling.

/// SplitMix64 generator (Steele, Lea & Flood 2014): fast, full-period 2^64, good enough for
/// sampling and bootstrapping (not for cryptography).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for sub-stream `stream` of `seed` (e.g. bootstrap resample number `stream`),
    /// decorrelated from the other streams by hashing both numbers.
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut g = Self::new(seed ^ 0x9E37_79B9_7F4A_7C15);
        let a = g.next_u64();
        let mut h = Self::new(a ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        h.next_u64();
        h
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform double in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) (Lemire's multiply-shift on 64 bits; bias < n / 2^64).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}
