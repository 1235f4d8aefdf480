//! BFPSI, the Bloom-filter private set intersection of "Do I know you?" (eprint 2013/620; spec
//! notes §9.7), as pure state machines: two nodes learn the exact set of domains they are both
//! members of. HMAC-SHA256 and HKDF-SHA256 come from `ring`; the caller supplies every random
//! value (so a seed gives one run), and the Clustering engine carries the three messages.
//!
//! ```text
//!  initiator I (set X)                                   responder R (set Y)
//!  salt ← random
//!  BF_I = Bloom(X) under salt   ── Offer{salt, BF_I} ──►  iset_R = {y ∈ Y : y ∈ BF_I}
//!                                                         ckey, rrand ← random
//!                               ◄── Challenge{rrand,      cset = {HMAC(ckey, y‖salt) : y ∈ iset_R}
//!                                     ckey, cset} ──
//!  iset_I = {x ∈ X : HMAC(ckey, x‖salt) ∈ cset}   (I's result: X ∩ Y)
//!  irand ← random; rkey = HKDF-Extract(salt, irand‖rrand)
//!  rset = {HMAC(rkey, x‖salt) : x ∈ iset_I}  ── Proof{irand, rset} ──►
//!                                                         R's result: {y ∈ iset_R : HMAC(rkey, y‖salt) ∈ rset}
//! ```
//!
//! **What each side learns.** Both results are exactly X ∩ Y: the HMAC comparisons of steps 2
//! and 3 are exact, the Bloom filter only preselects. From `cset` and `ckey`, I can test any
//! domain it can name against R's *preselected* elements: those are X ∩ Y plus R's Bloom false
//! positives, so the filter is sized for a false-positive rate of 2^−[`PsiParams::fp_log2`] (2^−32
//! by default) per element — a non-shared domain of R reaches I with that probability. From
//! `rset` and `rkey`, R learns only elements of `iset_I` ⊆ X ∩ Y. **The limit of BFPSI:** `BF_I`
//! itself is a Bloom filter of I's domains under a salt R knows, so R *can* test any domain it
//! can name against it (domain identities are public keys, not secrets as the paper's
//! capabilities are). The engine therefore runs PSI only with its cluster neighbours, once per
//! pair of membership versions, and caps what an offer may claim; docs/clustering.md discusses
//! it. A filter fuller than [`PsiParams::max_fill`] (an initiator claiming many domains to learn
//! R's) is refused, as are lists longer than [`PsiParams::max_elements`].
//!
//! Element encodings: the Bloom indices of a domain `d` are read from
//! `HMAC-SHA256(key = salt, "netmachine/v2/psi-bloom\0" ‖ d ‖ u32-le block)` for blocks 0, 1, …,
//! eight little-endian `u32` per block, each mod the filter's bits; tags are
//! `HMAC-SHA256(key, d ‖ salt)` as in the paper; `rkey` is `HKDF-Extract(salt, irand ‖ rrand)`
//! expanded with info `"netmachine/v2/psi-rkey\0"` into an HMAC-SHA256 key.

use std::collections::BTreeSet;

use ring::{hkdf, hmac};

use crate::identity::DomainIdentity;

/// Domain separation of the Bloom index hash.
pub const BLOOM_CONTEXT: &[u8] = b"netmachine/v2/psi-bloom\0";
/// The HKDF info string of the response key.
pub const RKEY_INFO: &[u8] = b"netmachine/v2/psi-rkey\0";
/// Most elements any PSI message may carry on the wire, whatever the receiver's parameters.
pub const MAX_WIRE_ELEMENTS: usize = 256;
/// Most bytes of an offer's Bloom filter on the wire (32 Kib of filter).
pub const MAX_WIRE_FILTER_BYTES: usize = 4096;

/// A 32-byte random value, key or tag.
pub type Bytes32 = [u8; 32];

/// The parameters both sides of a PSI must share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PsiParams {
    /// Most domains one side may put in (an offer's filter is sized for this many; longer
    /// `cset`/`rset` lists are refused): default 32. A node with more memberships uses the 32
    /// smallest identities (so two nodes pick consistently) and says so in its counters.
    pub max_elements: usize,
    /// The Bloom filter's false-positive rate is 2^−`fp_log2` per element at `max_elements`
    /// (this many hash functions; ⌈max_elements · fp_log2 / ln 2⌉ bits, rounded up to a byte):
    /// default 32, which makes a 185-byte filter with 32 hashes.
    pub fp_log2: u8,
}

impl Default for PsiParams {
    fn default() -> PsiParams {
        PsiParams {
            max_elements: 32,
            fp_log2: 32,
        }
    }
}

impl PsiParams {
    /// Bits of the offer's Bloom filter (a multiple of 8).
    pub fn filter_bits(&self) -> u32 {
        let n = self.max_elements.max(1) as f64;
        let bits = (n * self.fp_log2.max(1) as f64 / std::f64::consts::LN_2).ceil() as u32;
        bits.div_ceil(8) * 8
    }

    /// Hash functions of the offer's Bloom filter.
    pub fn hashes(&self) -> u8 {
        self.fp_log2.max(1)
    }

    /// Most set bits an offer's filter may have: the expected fill of a filter holding
    /// `max_elements` elements (`m·(1 − e^(−k·n/m))`, about half the bits) plus four standard
    /// deviations. A fuller filter would match more of the responder's domains than any honest
    /// set of `max_elements` does.
    pub fn max_fill(&self) -> u32 {
        let m = self.filter_bits() as f64;
        let kn = self.hashes() as f64 * self.max_elements.max(1) as f64;
        let fill = 1.0 - (-kn / m).exp();
        let sd = (m * fill * (1.0 - fill)).sqrt();
        ((m * fill + 4.0 * sd).ceil() as u32).min(self.filter_bits())
    }

    /// The elements this side uses of `set`: at most `max_elements`, the smallest first.
    pub fn clip(&self, set: &BTreeSet<DomainIdentity>) -> BTreeSet<DomainIdentity> {
        set.iter().take(self.max_elements).copied().collect()
    }
}

/// Step 0, initiator → responder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The session's salt, drawn by the initiator.
    pub salt: Bytes32,
    /// The Bloom filter of the initiator's salted elements, `filter_bits / 8` bytes.
    pub filter: Vec<u8>,
}

/// Step 1, responder → initiator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The responder's contribution to the response key.
    pub rrand: Bytes32,
    /// The key of `cset`'s tags.
    pub ckey: Bytes32,
    /// `HMAC(ckey, y ‖ salt)` for the responder's elements that the offer's filter contains,
    /// sorted.
    pub cset: Vec<Bytes32>,
}

/// Step 2, initiator → responder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The initiator's contribution to the response key.
    pub irand: Bytes32,
    /// `HMAC(rkey, x ‖ salt)` for the initiator's elements of the intersection, sorted.
    pub rset: Vec<Bytes32>,
}

/// Why a PSI message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsiError {
    /// The offer's filter is not `filter_bits / 8` bytes.
    FilterSize,
    /// The offer's filter has more than `max_fill` bits set.
    FilterTooFull,
    /// `cset` or `rset` lists more than `max_elements` tags.
    TooManyTags,
    /// `cset` or `rset` lists a tag twice, or is not sorted.
    NotCanonical,
    /// `rset` holds a tag of no element the responder offered in `cset` (a lying initiator).
    UnknownTag,
}

impl PsiError {
    /// A short name for counters and logs.
    pub fn label(self) -> &'static str {
        match self {
            PsiError::FilterSize => "filter_size",
            PsiError::FilterTooFull => "filter_too_full",
            PsiError::TooManyTags => "too_many_tags",
            PsiError::NotCanonical => "not_canonical",
            PsiError::UnknownTag => "unknown_tag",
        }
    }
}

impl std::fmt::Display for PsiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl std::error::Error for PsiError {}

/// The initiator between its offer and the challenge.
#[derive(Clone, Debug)]
pub struct Initiator {
    params: PsiParams,
    salt: Bytes32,
    elements: BTreeSet<DomainIdentity>,
}

impl Initiator {
    /// Starts a session over `elements` (clipped to `max_elements`) with a fresh random `salt`.
    pub fn start(
        params: PsiParams,
        elements: &BTreeSet<DomainIdentity>,
        salt: Bytes32,
    ) -> (Initiator, Offer) {
        let elements = params.clip(elements);
        let filter = bloom(&params, &salt, &elements);
        let offer = Offer { salt, filter };
        (
            Initiator {
                params,
                salt,
                elements,
            },
            offer,
        )
    }

    /// Step 2: the intersection, and the proof that lets the responder learn it too.
    pub fn on_challenge(
        self,
        challenge: &Challenge,
        irand: Bytes32,
    ) -> Result<(BTreeSet<DomainIdentity>, Proof), PsiError> {
        check_tags(&self.params, &challenge.cset)?;
        let ckey = hmac::Key::new(hmac::HMAC_SHA256, &challenge.ckey);
        let shared: BTreeSet<DomainIdentity> = self
            .elements
            .iter()
            .filter(|x| {
                challenge
                    .cset
                    .binary_search(&tag(&ckey, x, &self.salt))
                    .is_ok()
            })
            .copied()
            .collect();
        let rkey = response_key(&self.salt, &irand, &challenge.rrand);
        let mut rset: Vec<Bytes32> = shared.iter().map(|x| tag(&rkey, x, &self.salt)).collect();
        rset.sort_unstable();
        Ok((shared, Proof { irand, rset }))
    }
}

/// The responder between its challenge and the proof.
#[derive(Clone, Debug)]
pub struct Responder {
    params: PsiParams,
    salt: Bytes32,
    rrand: Bytes32,
    /// The responder's elements that the offer's filter contains.
    candidates: BTreeSet<DomainIdentity>,
}

impl Responder {
    /// Step 1: answers `offer` over `elements` (clipped to `max_elements`) with the fresh random
    /// `rrand` and `ckey`.
    pub fn on_offer(
        params: PsiParams,
        elements: &BTreeSet<DomainIdentity>,
        offer: &Offer,
        rrand: Bytes32,
        ckey: Bytes32,
    ) -> Result<(Responder, Challenge), PsiError> {
        if offer.filter.len() != (params.filter_bits() / 8) as usize {
            return Err(PsiError::FilterSize);
        }
        let fill: u32 = offer.filter.iter().map(|b| b.count_ones()).sum();
        if fill > params.max_fill() {
            return Err(PsiError::FilterTooFull);
        }
        let candidates: BTreeSet<DomainIdentity> = params
            .clip(elements)
            .into_iter()
            .filter(|y| bloom_contains(&params, &offer.salt, &offer.filter, y))
            .collect();
        let key = hmac::Key::new(hmac::HMAC_SHA256, &ckey);
        let mut cset: Vec<Bytes32> = candidates
            .iter()
            .map(|y| tag(&key, y, &offer.salt))
            .collect();
        cset.sort_unstable();
        Ok((
            Responder {
                params,
                salt: offer.salt,
                rrand,
                candidates,
            },
            Challenge { rrand, ckey, cset },
        ))
    }

    /// Step 3: the intersection.
    pub fn on_proof(self, proof: &Proof) -> Result<BTreeSet<DomainIdentity>, PsiError> {
        check_tags(&self.params, &proof.rset)?;
        let rkey = response_key(&self.salt, &proof.irand, &self.rrand);
        let tags: Vec<(Bytes32, DomainIdentity)> = self
            .candidates
            .iter()
            .map(|y| (tag(&rkey, y, &self.salt), *y))
            .collect();
        let mut shared = BTreeSet::new();
        for t in &proof.rset {
            match tags.iter().find(|(u, _)| u == t) {
                Some((_, y)) => {
                    shared.insert(*y);
                }
                None => return Err(PsiError::UnknownTag),
            }
        }
        Ok(shared)
    }
}

/// The Bloom filter of `elements` under `salt` (for tests and the offer).
pub fn bloom(params: &PsiParams, salt: &Bytes32, elements: &BTreeSet<DomainIdentity>) -> Vec<u8> {
    let bits = params.filter_bits();
    let mut filter = vec![0u8; (bits / 8) as usize];
    for e in elements {
        for i in bloom_indices(params, salt, e) {
            filter[(i / 8) as usize] |= 1 << (i % 8);
        }
    }
    filter
}

/// Whether `filter` (an offer's) contains `element` under `salt`: what a responder — or anyone
/// holding the offer — can test for any domain it can name.
pub fn bloom_contains(
    params: &PsiParams,
    salt: &Bytes32,
    filter: &[u8],
    element: &DomainIdentity,
) -> bool {
    bloom_indices(params, salt, element).into_iter().all(|i| {
        filter
            .get((i / 8) as usize)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    })
}

/// The tag `HMAC(key, element ‖ salt)` (what `cset` and `rset` hold).
pub fn tag_with(key: &Bytes32, element: &DomainIdentity, salt: &Bytes32) -> Bytes32 {
    tag(&hmac::Key::new(hmac::HMAC_SHA256, key), element, salt)
}

/// The response key's tag of `element`, as both sides derive it from the two random values
/// (for tests: what a holder of the whole transcript can compute).
pub fn response_tag(
    salt: &Bytes32,
    irand: &Bytes32,
    rrand: &Bytes32,
    element: &DomainIdentity,
) -> Bytes32 {
    tag(&response_key(salt, irand, rrand), element, salt)
}

fn bloom_indices(params: &PsiParams, salt: &Bytes32, element: &DomainIdentity) -> Vec<u32> {
    let bits = params.filter_bits();
    let k = params.hashes() as usize;
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut out = Vec::with_capacity(k);
    let mut block = 0u32;
    while out.len() < k {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(BLOOM_CONTEXT);
        ctx.update(&element.0);
        ctx.update(&block.to_le_bytes());
        let digest = ctx.sign();
        for c in digest.as_ref().chunks_exact(4) {
            if out.len() == k {
                break;
            }
            let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            out.push(v % bits);
        }
        block += 1;
    }
    out
}

fn tag(key: &hmac::Key, element: &DomainIdentity, salt: &Bytes32) -> Bytes32 {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(&element.0);
    ctx.update(salt);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

fn response_key(salt: &Bytes32, irand: &Bytes32, rrand: &Bytes32) -> hmac::Key {
    let mut ikm = [0u8; 64];
    ikm[..32].copy_from_slice(irand);
    ikm[32..].copy_from_slice(rrand);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&ikm);
    let mut key = [0u8; 32];
    prk.expand(&[RKEY_INFO], KeyLen)
        .and_then(|okm| okm.fill(&mut key))
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    hmac::Key::new(hmac::HMAC_SHA256, &key)
}

fn check_tags(params: &PsiParams, tags: &[Bytes32]) -> Result<(), PsiError> {
    if tags.len() > params.max_elements {
        return Err(PsiError::TooManyTags);
    }
    if tags.windows(2).any(|w| w[0] >= w[1]) {
        return Err(PsiError::NotCanonical);
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests/psi.rs"]
mod tests;
