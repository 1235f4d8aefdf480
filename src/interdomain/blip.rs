//! BLIP, Bloom-then-flIP (spec notes §9.6; Alaggan, Gambs and Kermarrec): a node puts the
//! domains it is a member of into an `m`-bit Bloom filter with `k` hash functions
//! ([`encode`], indices from [`indices`], docs/wire.md §12C), then flips every bit
//! independently with probability `p = 1 / (1 + e^(ε/k))` ([`flip`]), which gives
//! ε-differential privacy for each membership.
//!
//! * [`cosine`] is the reference's raw similarity of two flipped filters.
//! * [`similarity`] is the spec's **\[proposal\]**: each received bit `b'` is corrected to
//!   `b̂ = (b' − p)/(1 − 2p)` (since `E[b'] = p + (1 − 2p)·b`), with each filter's own `p`;
//!   `Σ â·b̂` is then an unbiased estimate of the number of bits set in both unflipped filters
//!   and `Σ â`, `Σ b̂` of the bits set in each, and the similarity is the cosine of those
//!   estimates, clamped to [0, 1].
//! * [`domain_score`] estimates whether a filter's owner is a member of a domain (the mean of the
//!   corrected bits at the domain's `k` indices); [`noise_floor`] is the score a non-member's
//!   filter is expected to stay below.
//! * [`OwnFilter`] flips once per membership set (the spec's **\[proposal\]**): re-flipping per
//!   exchange would let an observer average the noise away.
//!
//! The ε on the wire is `epsilon_milli` (ε × 1000, rounded); both sides compute `p` from that
//! rounded value, so the receiver corrects with exactly the sender's `p`.

use std::collections::BTreeSet;

use crate::identity::DomainIdentity;
use crate::rng::SplitMix64;
use crate::wire::descriptor::{MAX_FILTER_BITS, MAX_FILTER_HASHES};
use crate::wire::MembershipFilter;

/// The domain-separation prefix of the BLIP index hash (docs/wire.md §12C).
pub const INDEX_CONTEXT: &[u8] = b"netmachine/v2/blip\0";

/// The filter parameters a node uses and expects of others' filters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlipParams {
    /// Bits in the filter, `m` (a multiple of 8, at most [`MAX_FILTER_BITS`]). Default 1024
    /// (128 bytes per descriptor).
    pub bits: u32,
    /// Hash functions, `k` (1 to [`MAX_FILTER_HASHES`]). Default 3.
    pub hashes: u8,
    /// The differential-privacy parameter ε (> 0; smaller is more private and less useful; the
    /// reference gives ε ≤ 10 as the bound that still stops profile reconstruction). Default 5.
    pub epsilon: f64,
}

impl Default for BlipParams {
    fn default() -> BlipParams {
        BlipParams {
            bits: 1024,
            hashes: 3,
            epsilon: 5.0,
        }
    }
}

impl BlipParams {
    /// Checks the parameters are ones a filter on the wire can have (for configuration).
    pub fn check(&self) -> Result<(), String> {
        if self.bits == 0 || self.bits % 8 != 0 || self.bits > MAX_FILTER_BITS {
            return Err(format!(
                "BLIP bits must be a positive multiple of 8 at most {MAX_FILTER_BITS}, not {}",
                self.bits
            ));
        }
        if self.hashes == 0 || self.hashes > MAX_FILTER_HASHES {
            return Err(format!(
                "BLIP hashes must be 1 to {MAX_FILTER_HASHES}, not {}",
                self.hashes
            ));
        }
        if !(self.epsilon.is_finite() && self.epsilon >= 0.001) {
            return Err(format!(
                "BLIP epsilon must be a finite number of at least 0.001, not {}",
                self.epsilon
            ));
        }
        Ok(())
    }
}

/// The probability with which BLIP flips each bit: `1 / (1 + e^(ε/k))` (½ at ε = 0, towards 0
/// as ε grows).
pub fn flip_probability(epsilon: f64, hashes: u8) -> f64 {
    1.0 / (1.0 + (epsilon / hashes.max(1) as f64).exp())
}

/// The flip probability a received filter was made with (0 for an unflipped one), from its
/// `epsilon_milli` and `hashes`.
pub fn filter_flip_probability(filter: &MembershipFilter) -> f64 {
    if filter.epsilon_milli == 0 {
        0.0
    } else {
        flip_probability(filter.epsilon_milli as f64 / 1000.0, filter.hashes)
    }
}

/// The `hashes` bit indices of `domain` in a filter of `bits` bits: index `i` is the first four
/// bytes, little-endian, of SHA-256(`"netmachine/v2/blip\0"` ‖ domain ‖ `i` as u32
/// little-endian), modulo `bits` (docs/wire.md §12C). Empty when `bits` is 0.
pub fn indices(bits: u32, hashes: u8, domain: &DomainIdentity) -> Vec<u32> {
    if bits == 0 {
        return Vec::new();
    }
    (0..hashes as u32)
        .map(|i| {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            ctx.update(INDEX_CONTEXT);
            ctx.update(domain.as_bytes());
            ctx.update(&i.to_le_bytes());
            let digest = ctx.finish();
            let mut first = [0u8; 4];
            first.copy_from_slice(&digest.as_ref()[..4]);
            u32::from_le_bytes(first) % bits
        })
        .collect()
}

/// The unflipped Bloom filter of `domains` (`epsilon_milli` 0).
pub fn encode<'a>(
    params: &BlipParams,
    domains: impl IntoIterator<Item = &'a DomainIdentity>,
) -> MembershipFilter {
    let mut filter = MembershipFilter::empty(params.bits, params.hashes);
    for domain in domains {
        for i in indices(params.bits, params.hashes, domain) {
            filter.set(i, true);
        }
    }
    filter
}

/// The wire form of ε: ε × 1000 rounded, at least 1 (0 means "unflipped"); NaN counts as the
/// most private value.
pub fn epsilon_milli(epsilon: f64) -> u32 {
    if epsilon.is_nan() {
        return 1;
    }
    (epsilon * 1000.0).round().clamp(1.0, u32::MAX as f64) as u32
}

/// `filter` with every bit flipped independently with probability
/// [`flip_probability`]`(ε, hashes)`, where ε is first rounded to its wire form
/// ([`epsilon_milli`], which the result carries). `filter` should be unflipped; an already
/// flipped filter is returned unchanged (flipping twice would misstate its `p`).
pub fn flip(filter: &MembershipFilter, epsilon: f64, rng: &mut SplitMix64) -> MembershipFilter {
    if filter.epsilon_milli != 0 {
        return filter.clone();
    }
    let milli = epsilon_milli(epsilon);
    let p = flip_probability(milli as f64 / 1000.0, filter.hashes);
    let mut out = filter.clone();
    out.epsilon_milli = milli;
    for i in 0..filter.bits {
        if rng.next_f64() < p {
            out.set(i, !filter.get(i));
        }
    }
    out
}

/// The reference's similarity: `popcount(a ∧ b) / √(popcount(a) · popcount(b))` on the bits as
/// received, uncorrected (0 when either is empty or their sizes differ).
pub fn cosine(a: &MembershipFilter, b: &MembershipFilter) -> f64 {
    if a.bits != b.bits || a.bytes.len() != b.bytes.len() {
        return 0.0;
    }
    let both: u32 = a
        .bytes
        .iter()
        .zip(&b.bytes)
        .map(|(x, y)| (x & y).count_ones())
        .sum();
    let (pa, pb) = (a.popcount(), b.popcount());
    if pa == 0 || pb == 0 {
        return 0.0;
    }
    both as f64 / ((pa as f64) * (pb as f64)).sqrt()
}

/// The two values a received bit corrects to: `(for 0, for 1)` = `(−p/(1−2p), (1−p)/(1−2p))`.
fn corrected_values(filter: &MembershipFilter) -> (f64, f64) {
    let p = filter_flip_probability(filter);
    let scale = 1.0 - 2.0 * p;
    if scale <= f64::EPSILON {
        // p = ½ carries no information: every bit estimates ½.
        return (0.5, 0.5);
    }
    (-p / scale, (1.0 - p) / scale)
}

/// An unbiased estimate of the number of bits set in the unflipped filter (`Σ b̂`).
pub fn popcount_estimate(filter: &MembershipFilter) -> f64 {
    let (zero, one) = corrected_values(filter);
    let ones = filter.popcount() as f64;
    ones * one + (filter.bits as f64 - ones) * zero
}

/// An unbiased estimate of the number of bits set in both unflipped filters (`Σ â·b̂`, the
/// flips of the two filters being independent); 0 when their parameters differ.
pub fn overlap_estimate(a: &MembershipFilter, b: &MembershipFilter) -> f64 {
    if !comparable(a, b) {
        return 0.0;
    }
    let (a0, a1) = corrected_values(a);
    let (b0, b1) = corrected_values(b);
    // Count the four combinations of received bits.
    let mut n11 = 0u32;
    let (pa, pb) = (a.popcount(), b.popcount());
    for (x, y) in a.bytes.iter().zip(&b.bytes) {
        n11 += (x & y).count_ones();
    }
    let n10 = pa - n11;
    let n01 = pb - n11;
    let n00 = a.bits - n11 - n10 - n01;
    n11 as f64 * a1 * b1 + n10 as f64 * a1 * b0 + n01 as f64 * a0 * b1 + n00 as f64 * a0 * b0
}

fn comparable(a: &MembershipFilter, b: &MembershipFilter) -> bool {
    a.bits == b.bits
        && a.hashes == b.hashes
        && a.bytes.len() == b.bytes.len()
        && a.bytes.len() == (a.bits / 8) as usize
}

/// The flip-corrected similarity of two filters, in [0, 1]: [`overlap_estimate`]`(a, b)` /
/// √([`popcount_estimate`]`(a)` · [`popcount_estimate`]`(b)`), clamped. 0 when their
/// parameters (bits, hashes) differ or either looks empty.
pub fn similarity(a: &MembershipFilter, b: &MembershipFilter) -> f64 {
    if !comparable(a, b) {
        return 0.0;
    }
    let (na, nb) = (popcount_estimate(a), popcount_estimate(b));
    // Fewer than one estimated bit: nothing to compare (and no division by ~0).
    if na < 1.0 || nb < 1.0 {
        return 0.0;
    }
    (overlap_estimate(a, b) / (na * nb).sqrt()).clamp(0.0, 1.0)
}

/// The estimate that `filter`'s owner is a member of `domain`, in [0, 1]: the mean of the
/// corrected bits at the domain's indices, clamped (the spec's
/// `|{i ∈ H_k(D) : bit[i] = 1}| / k`, corrected for flips). A member's filter scores 1 before
/// flipping; a non-member's scores the Bloom filter's false-positive share.
pub fn domain_score(filter: &MembershipFilter, domain: &DomainIdentity) -> f64 {
    let idx = indices(filter.bits, filter.hashes, domain);
    if idx.is_empty() {
        return 0.0;
    }
    let (zero, one) = corrected_values(filter);
    let sum: f64 = idx
        .iter()
        .map(|&i| if filter.get(i) { one } else { zero })
        .sum();
    (sum / idx.len() as f64).clamp(0.0, 1.0)
}

/// The score a non-member of a domain is expected to stay below, for this filter: the mean plus
/// one standard deviation of [`domain_score`] for a domain the owner is not in. A non-member's
/// index bit is truly set with the filter's false-positive share `q` (estimated from the
/// filter itself: [`popcount_estimate`] / bits), so it is received set with probability
/// `r = p + (1 − 2p)·q`, and the number of received set bits among the `k` indices is
/// binomial(k, r); the floor is computed from that distribution exactly. With the defaults
/// (1024 bits, k = 3, ε = 5, a few domains) it is about 0.34, while a member scores 1 with
/// probability 0.6 and 0.75 with probability 0.34.
pub fn noise_floor(filter: &MembershipFilter) -> f64 {
    let k = filter.hashes.max(1) as u32;
    if filter.bits == 0 {
        return 1.0;
    }
    let p = filter_flip_probability(filter);
    let q = (popcount_estimate(filter) / filter.bits as f64).clamp(0.0, 1.0);
    let r = p + (1.0 - 2.0 * p) * q;
    let (zero, one) = corrected_values(filter);
    let (mut mean, mut square) = (0.0, 0.0);
    for j in 0..=k {
        let prob = binomial(k, j) * r.powi(j as i32) * (1.0 - r).powi((k - j) as i32);
        let score = ((j as f64 * one + (k - j) as f64 * zero) / k as f64).clamp(0.0, 1.0);
        mean += prob * score;
        square += prob * score * score;
    }
    let sd = (square - mean * mean).max(0.0).sqrt();
    (mean + sd).min(1.0)
}

fn binomial(n: u32, k: u32) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// This node's flipped filter, made once per membership set: [`OwnFilter::current`] re-flips
/// only when the set differs from the one it last flipped for, and then increases the version.
#[derive(Clone, Debug)]
pub struct OwnFilter {
    params: BlipParams,
    version: u64,
    last: Option<(BTreeSet<DomainIdentity>, MembershipFilter)>,
}

impl OwnFilter {
    /// No filter yet; the first [`OwnFilter::current`] makes version 1.
    pub fn new(params: BlipParams) -> OwnFilter {
        OwnFilter::with_base_version(params, 0)
    }

    /// No filter yet; the first [`OwnFilter::current`] makes version `base + 1`. A node that
    /// restarts can pass, say, its wall clock in milliseconds, so its versions keep increasing
    /// across restarts.
    pub fn with_base_version(params: BlipParams, base: u64) -> OwnFilter {
        OwnFilter {
            params,
            version: base,
            last: None,
        }
    }

    /// The filter's parameters.
    pub fn params(&self) -> &BlipParams {
        &self.params
    }

    /// The version and flipped filter for `memberships`: the cached one if the set is the one
    /// last flipped for, else a new flip of a new encoding under the next version.
    pub fn current(
        &mut self,
        memberships: &BTreeSet<DomainIdentity>,
        rng: &mut SplitMix64,
    ) -> (u64, &MembershipFilter) {
        let same = self
            .last
            .as_ref()
            .is_some_and(|(set, _)| set == memberships);
        if !same {
            let plain = encode(&self.params, memberships);
            let flipped = flip(&plain, self.params.epsilon, rng);
            self.version += 1;
            self.last = Some((memberships.clone(), flipped));
        }
        let filter = &self.last.as_ref().expect("made above").1;
        (self.version, filter)
    }
}
