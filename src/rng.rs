//! The seeded random source every engine core is given: randomness is an input, so a run is
//! determined by its seed (the simulator, the chaos proxy, tests), while a real node seeds its
//! generators from the operating system once, in the wiring layer.
//!
//! [`SplitMix64`] (Steele, Lea and Flood) is tiny and fast, and is enough for what the cores
//! draw: backoff jitter, instance numbers, fault decisions, peer choices. It is not for
//! secrets: keys come from the operating system ([`crate::identity::Keypair::generate`]) or, in a
//! simulation, from a seed ([`crate::identity::Keypair::from_rng`]).

use rand_core::RngCore;

/// SplitMix64: a seedable generator; every seed, 0 included, is fine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator seeded from the operating system (for real nodes; the seed is lost).
    pub fn from_os() -> SplitMix64 {
        SplitMix64::new(rand_core::OsRng.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in [0, 1) with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform value in `[0, n)` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: bias below 2^-64 · n, irrelevant here.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// An independent generator for `lane` (a node, a link, a client), derived from `seed`.
    pub fn derive(seed: u64, lane: u64) -> SplitMix64 {
        let mut g = SplitMix64::new(seed ^ lane.wrapping_mul(0xd1b5_4a32_d192_ed03));
        SplitMix64::new(g.next_u64())
    }
}

impl RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (SplitMix64::next_u64(self) >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        SplitMix64::next_u64(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream_and_lanes_differ() {
        let a: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(SplitMix64::new(7), |g, _: u64| Some(g.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(SplitMix64::new(7), |g, _: u64| Some(g.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(
            SplitMix64::derive(7, 1).next_u64(),
            SplitMix64::derive(7, 2).next_u64()
        );
        let mut g = SplitMix64::new(1);
        assert!((0..1000).all(|_| g.below(10) < 10));
        assert!((0..1000).all(|_| (0.0..1.0).contains(&g.next_f64())));
        assert_eq!(g.below(0), 0);
    }
}
