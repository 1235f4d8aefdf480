//! Relay layers (docs/wire.md §12G): [`Sealer`] wraps a signed message in one layer per node of
//! a path, innermost for the destination; [`Opener`] peels the one layer sealed to this node and
//! says what to do with what is inside — forward it to the next node, or deliver it.
//!
//! A layer is `u8 version || ephemeral X25519 key [32] || u64 counter || ciphertext || tag [16]`,
//! ChaCha20-Poly1305 (ring) under a key derived from the X25519 agreement between the sender's
//! ephemeral key and the hop's node key. The sender keeps one ephemeral key per hop for an
//! epoch ([`SealerLimits`]), so the agreement is made once per epoch, not per message; the
//! counter is the AEAD nonce and the position in the hop's replay window for that key.
//!
//! Opening checks, in this order, each failure a [`DropReason`] and nothing committed:
//! size and version → the session (known key, or a new agreement if the table has room) →
//! the replay window → the tag → expiry (passed, or further ahead than `max_lifetime`) → kind
//! and depth (≤ [`MAX_RELAY_DEPTH`]) → for a delivery, the source proof. Only then is the
//! counter recorded and a new session kept. A session is forgotten once idle for
//! `max_lifetime`: every layer it protects has expired by then, so forgetting it cannot let a
//! replay in; for the same reason a full table refuses new sessions rather than evicting one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

use super::keys::{x25519_public, DhSecret};
use super::receipt::{layer_id, receipt_token, LayerId, Receipt, ReceiptToken};
use super::MAX_RELAY_DEPTH;
use crate::identity::{Keypair, NodeIdentity};
use crate::mail::DropReason;
use crate::runtime::replay_window::ReplayWindow;
use crate::time::{Now, Timestamp};

/// The layer format version.
pub const VERSION: u8 = 1;
/// Bytes before the ciphertext: version, ephemeral key, counter (also the AEAD's associated
/// data).
pub const HEADER_LEN: usize = 1 + 32 + 8;
/// Bytes of the AEAD tag.
pub const TAG_LEN: usize = 16;
/// Plaintext kind: forward the rest to the next node.
pub const KIND_FORWARD: u8 = 1;
/// Plaintext kind: deliver the message inside here.
pub const KIND_DELIVER: u8 = 2;
/// Plaintext bytes common to both kinds: kind, expiry (u64 ms), depth.
const PREFIX_LEN: usize = 1 + 8 + 1;
/// Bytes a forward layer adds around the layer inside it.
pub const FORWARD_OVERHEAD: usize = HEADER_LEN + PREFIX_LEN + 32 + TAG_LEN;
/// Plaintext bytes of a delivery before the message: prefix, source node, source proof, length.
const DELIVER_FIXED: usize = PREFIX_LEN + 32 + 32 + 4;

const LAYER_KEY_CONTEXT: &str = "netmachine relay v1 layer key";
const SOURCE_KEY_CONTEXT: &str = "netmachine relay v1 source key";
const EPHEMERAL_CONTEXT: &str = "netmachine relay v1 ephemeral";

/// The size a delivery's plaintext is padded to: the smallest class of 256 B, 1 KiB, 4 KiB,
/// 16 KiB, 64 KiB, 256 KiB and 1 MiB that holds `len` bytes, then whole MiB.
pub fn padded_len(len: usize) -> usize {
    let mut class = 256;
    while class < (1 << 20) {
        if len <= class {
            return class;
        }
        class *= 4;
    }
    len.div_ceil(1 << 20) * (1 << 20)
}

/// The length of the layers sealed for a path of `hops` nodes around a message of `message`
/// bytes (what the first hop receives).
pub fn sealed_len(hops: usize, message: usize) -> usize {
    let inner = padded_len(DELIVER_FIXED + message) + HEADER_LEN + TAG_LEN;
    inner + hops.saturating_sub(1) * FORWARD_OVERHEAD
}

fn aead_key(
    secret: &DhSecret,
    peer_eph: &[u8; 32],
    eph_pub: &[u8; 32],
    hop: &NodeIdentity,
) -> Option<LessSafeKey> {
    let shared = secret.agree(peer_eph)?;
    let mut material = [0u8; 96];
    material[..32].copy_from_slice(&shared);
    material[32..64].copy_from_slice(eph_pub);
    material[64..].copy_from_slice(&hop.0);
    let key = blake3::derive_key(LAYER_KEY_CONTEXT, &material);
    Some(LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte ChaCha20-Poly1305 key"),
    ))
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// A layer: the header for `eph_pub` and `counter`, then `plain` sealed under `key` with the
/// header as associated data, then the tag.
fn seal_with(key: &LessSafeKey, eph_pub: &[u8; 32], counter: u64, mut plain: Vec<u8>) -> Vec<u8> {
    let mut header = [0u8; HEADER_LEN];
    header[0] = VERSION;
    header[1..33].copy_from_slice(eph_pub);
    header[33..].copy_from_slice(&counter.to_le_bytes());
    let tag = key
        .seal_in_place_separate_tag(nonce(counter), Aad::from(header), &mut plain)
        .expect("ChaCha20-Poly1305 seals any length below 256 GiB");
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(&plain);
    out.extend_from_slice(tag.as_ref());
    out
}

/// The key of the source proof between `src` and `dst`: only they can compute it (static
/// X25519 agreement of their node keys).
fn source_key(
    own: &DhSecret,
    own_id: &NodeIdentity,
    other: &NodeIdentity,
    src_is_own: bool,
) -> Option<[u8; 32]> {
    let other_x = x25519_public(other)?;
    let shared = own.agree(&other_x)?;
    let (src, dst) = if src_is_own {
        (own_id, other)
    } else {
        (other, own_id)
    };
    let mut material = [0u8; 96];
    material[..32].copy_from_slice(&shared);
    material[32..64].copy_from_slice(&src.0);
    material[64..].copy_from_slice(&dst.0);
    Some(blake3::derive_key(SOURCE_KEY_CONTEXT, &material))
}

/// Why a path could not be sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealError {
    /// The path has no relay (at least one relay and the destination are needed).
    TooShort,
    /// The path has more than [`MAX_RELAY_DEPTH`] nodes.
    TooDeep,
    /// A node on the path has no usable X25519 key (its identity is of small order or not a
    /// point).
    BadKey(NodeIdentity),
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::TooShort => write!(f, "a relay path needs a relay and a destination"),
            SealError::TooDeep => write!(f, "a relay path has at most {MAX_RELAY_DEPTH} nodes"),
            SealError::BadKey(n) => write!(f, "node {} has no usable relay key", n.short()),
        }
    }
}

impl std::error::Error for SealError {}

/// Limits of a [`Sealer`].
#[derive(Clone, Copy, Debug)]
pub struct SealerLimits {
    /// Most hops with a live ephemeral key (default 4,096; about 600 bytes each).
    pub max_sessions: usize,
    /// A hop's ephemeral key is replaced after this many layers (default 2^20)…
    pub renew_after_layers: u64,
    /// …or this long (default 5 min), whichever comes first.
    pub renew_after: Duration,
}

impl Default for SealerLimits {
    fn default() -> Self {
        SealerLimits {
            max_sessions: 4096,
            renew_after_layers: 1 << 20,
            renew_after: Duration::from_secs(300),
        }
    }
}

struct SendSession {
    eph_pub: [u8; 32],
    key: LessSafeKey,
    next: u64,
    created: Instant,
}

/// Seals messages into layers for relay paths. One per node; sans-IO (time is passed in, the
/// ephemeral keys come from a seed given at construction).
pub struct Sealer {
    node: NodeIdentity,
    secret: DhSecret,
    limits: SealerLimits,
    sessions: HashMap<NodeIdentity, SendSession>,
    source_keys: HashMap<NodeIdentity, [u8; 32]>,
    entropy: [u8; 32],
    drawn: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sealer({}, {} sessions)",
            self.node.short(),
            self.sessions.len()
        )
    }
}

impl Sealer {
    /// A sealer for the node with key pair `node_key`. Ephemeral keys are drawn from `seed`
    /// and the node's secret (BLAKE3 in keyed mode over a counter): a real node seeds it from
    /// the operating system, a simulation from its seed.
    pub fn new(node_key: &Keypair, seed: [u8; 32], limits: SealerLimits) -> Sealer {
        // The node's secret goes in too: two nodes given the same seed still draw different
        // ephemeral keys.
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&seed);
        material[32..].copy_from_slice(&node_key.x25519_scalar_bytes());
        Sealer {
            node: node_key.node_identity(),
            secret: DhSecret::of_node(node_key),
            limits,
            sessions: HashMap::new(),
            source_keys: HashMap::new(),
            entropy: blake3::derive_key(EPHEMERAL_CONTEXT, &material),
            drawn: 0,
        }
    }

    /// Hops with a live ephemeral key.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Seals `message` (an `EngineMessage` in wire form, signed by its source engine) for
    /// `path`: the relays in order, then the destination. The result goes to `path[0]`.
    pub fn seal(
        &mut self,
        now: Now,
        path: &[NodeIdentity],
        message: &[u8],
        expiry: Timestamp,
    ) -> Result<Vec<u8>, SealError> {
        self.seal_tracked(now, path, message, expiry)
            .map(|s| s.layer)
    }

    /// Seals like [`Sealer::seal`], and says how the destination's receipt will come back:
    /// the id of the layer for `path[0]` and the token the receipt must carry.
    pub fn seal_tracked(
        &mut self,
        now: Now,
        path: &[NodeIdentity],
        message: &[u8],
        expiry: Timestamp,
    ) -> Result<Sealed, SealError> {
        if path.len() < 2 {
            return Err(SealError::TooShort);
        }
        if path.len() > MAX_RELAY_DEPTH as usize {
            return Err(SealError::TooDeep);
        }
        let dst = path[path.len() - 1];
        let proof_key = match self.source_keys.get(&dst) {
            Some(k) => *k,
            None => {
                let k = source_key(&self.secret, &self.node, &dst, true)
                    .ok_or(SealError::BadKey(dst))?;
                if self.source_keys.len() >= self.limits.max_sessions {
                    self.source_keys.clear();
                }
                self.source_keys.insert(dst, k);
                k
            }
        };
        let eph = self.session(now, &dst)?.eph_pub;
        let proof = blake3::keyed_hash(&proof_key, &eph);
        let total = padded_len(DELIVER_FIXED + message.len());
        let mut plain = Vec::with_capacity(sealed_len(path.len(), message.len()));
        plain.push(KIND_DELIVER);
        plain.extend_from_slice(&expiry.0.to_le_bytes());
        plain.push(1);
        plain.extend_from_slice(&self.node.0);
        plain.extend_from_slice(proof.as_bytes());
        plain.extend_from_slice(&(message.len() as u32).to_le_bytes());
        plain.extend_from_slice(message);
        plain.resize(total, 0);
        let mut layer = self.seal_layer(now, &dst, plain)?;
        let token = receipt_token(&proof_key, &layer[..HEADER_LEN]);
        for i in (0..path.len() - 1).rev() {
            let mut plain = Vec::with_capacity(layer.len() + FORWARD_OVERHEAD);
            plain.push(KIND_FORWARD);
            plain.extend_from_slice(&expiry.0.to_le_bytes());
            plain.push((path.len() - i) as u8);
            plain.extend_from_slice(&path[i + 1].0);
            plain.extend_from_slice(&layer);
            layer = self.seal_layer(now, &path[i], plain)?;
        }
        Ok(Sealed {
            id: layer_id(&layer[..HEADER_LEN]),
            layer,
            token,
        })
    }

    fn session(&mut self, now: Now, hop: &NodeIdentity) -> Result<&mut SendSession, SealError> {
        let stale = self.sessions.get(hop).is_none_or(|s| {
            s.next >= self.limits.renew_after_layers
                || now.instant.saturating_duration_since(s.created) >= self.limits.renew_after
        });
        if stale {
            let hop_x = x25519_public(hop).ok_or(SealError::BadKey(*hop))?;
            let mut input = [0u8; 8];
            input.copy_from_slice(&self.drawn.to_le_bytes());
            self.drawn += 1;
            let scalar = *blake3::keyed_hash(&self.entropy, &input).as_bytes();
            let eph = DhSecret::from_scalar(scalar);
            let eph_pub = eph.public();
            let key = aead_key(&eph, &hop_x, &eph_pub, hop).ok_or(SealError::BadKey(*hop))?;
            if !self.sessions.contains_key(hop) && self.sessions.len() >= self.limits.max_sessions {
                if let Some(oldest) = self
                    .sessions
                    .iter()
                    .min_by_key(|(_, s)| s.created)
                    .map(|(n, _)| *n)
                {
                    self.sessions.remove(&oldest);
                }
            }
            self.sessions.insert(
                *hop,
                SendSession {
                    eph_pub,
                    key,
                    next: 0,
                    created: now.instant,
                },
            );
        }
        Ok(self.sessions.get_mut(hop).expect("session just made"))
    }

    fn seal_layer(
        &mut self,
        now: Now,
        hop: &NodeIdentity,
        plain: Vec<u8>,
    ) -> Result<Vec<u8>, SealError> {
        let s = self.session(now, hop)?;
        let counter = s.next;
        s.next += 1;
        Ok(seal_with(&s.key, &s.eph_pub, counter, plain))
    }
}

/// A sealed message and what identifies its receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The layer for the first hop.
    pub layer: Vec<u8>,
    /// Its id: a receipt for the message comes back from the first hop under this id.
    pub id: LayerId,
    /// The token the destination's receipt carries.
    pub token: ReceiptToken,
}

/// What was inside a layer sealed to this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// Send `layer` on to `next` as a relay message.
    Forward {
        /// The next node of the path.
        next: NodeIdentity,
        /// The layer sealed to it.
        layer: Vec<u8>,
        /// When the message expires (the same on every layer).
        expiry: Timestamp,
        /// The id of the layer opened (as the previous hop knows it).
        id: LayerId,
        /// The id of `layer` (as `next` will know it).
        next_id: LayerId,
    },
    /// The message is for this node: `message` is an `EngineMessage` in wire form, sent by the
    /// node `src` (proven by the source proof; its engine's signature is still to be checked).
    Deliver {
        /// The source node.
        src: NodeIdentity,
        /// The message's wire form.
        message: Vec<u8>,
        /// When it expires.
        expiry: Timestamp,
        /// The receipt to send back to the previous hop.
        receipt: Receipt,
    },
}

/// Limits of an [`Opener`].
#[derive(Clone, Copy, Debug)]
pub struct OpenerLimits {
    /// Most sessions (senders' ephemeral keys) remembered (default 65,536; about 350 bytes
    /// each with map overhead, 23 MiB at most).
    pub max_sessions: usize,
    /// Most source keys cached, one per node that delivered to this one through relays
    /// (default 4,096; 64 bytes each). Over it the cache starts again.
    pub max_source_keys: usize,
    /// Furthest ahead a layer's expiry may be; also how long an idle session is remembered
    /// (default 10 min).
    pub max_lifetime: Duration,
}

impl Default for OpenerLimits {
    fn default() -> Self {
        OpenerLimits {
            max_sessions: 65_536,
            max_source_keys: 4096,
            max_lifetime: Duration::from_secs(600),
        }
    }
}

struct RecvSession {
    key: LessSafeKey,
    window: ReplayWindow,
    source: Option<NodeIdentity>,
}

/// Opens the layers sealed to this node. One per node; sans-IO.
pub struct Opener {
    node: NodeIdentity,
    secret: DhSecret,
    limits: OpenerLimits,
    sessions: HashMap<[u8; 32], RecvSession>,
    source_keys: HashMap<NodeIdentity, [u8; 32]>,
    last_sweep: Option<Instant>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Opener({}, {} sessions)",
            self.node.short(),
            self.sessions.len()
        )
    }
}

impl Opener {
    /// An opener for the node with key pair `node_key`.
    pub fn new(node_key: &Keypair, limits: OpenerLimits) -> Opener {
        Opener {
            node: node_key.node_identity(),
            secret: DhSecret::of_node(node_key),
            limits,
            sessions: HashMap::new(),
            source_keys: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Sessions remembered.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Opens `layer`, sealed to this node (see the module doc for the order of the checks).
    pub fn open(&mut self, now: Now, mut layer: Vec<u8>) -> Result<Opened, DropReason> {
        if layer.len() < HEADER_LEN + PREFIX_LEN + TAG_LEN || layer[0] != VERSION {
            return Err(DropReason::RelayMalformed);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&layer[..HEADER_LEN]);
        let eph: [u8; 32] = header[1..33].try_into().expect("32 bytes");
        let counter = u64::from_le_bytes(header[33..].try_into().expect("8 bytes"));
        self.sweep(now.instant, false);
        let fresh = if let Some(s) = self.sessions.get(&eph) {
            s.window
                .check(counter)
                .map_err(|_| DropReason::RelayReplayed)?;
            None
        } else {
            if self.sessions.len() >= self.limits.max_sessions {
                self.sweep(now.instant, true);
                if self.sessions.len() >= self.limits.max_sessions {
                    return Err(DropReason::RelaySessionsFull);
                }
            }
            let key =
                aead_key(&self.secret, &eph, &eph, &self.node).ok_or(DropReason::RelayMalformed)?;
            Some(key)
        };
        let key = match &fresh {
            Some(k) => k,
            None => &self.sessions[&eph].key,
        };
        let plain_len = key
            .open_in_place(nonce(counter), Aad::from(header), &mut layer[HEADER_LEN..])
            .map_err(|_| DropReason::RelayBadMac)?
            .len();
        let plain = &layer[HEADER_LEN..HEADER_LEN + plain_len];
        let kind = plain[0];
        let expiry = Timestamp(u64::from_le_bytes(plain[1..9].try_into().expect("8 bytes")));
        let depth = plain[9];
        if expiry <= now.wall || expiry > now.wall.after(self.limits.max_lifetime) {
            return Err(DropReason::RelayExpired);
        }
        if depth > MAX_RELAY_DEPTH {
            return Err(DropReason::RelayTooDeep);
        }
        let body = &plain[PREFIX_LEN..];
        let (opened, source) = match kind {
            KIND_FORWARD if depth >= 2 && body.len() >= 32 + HEADER_LEN + PREFIX_LEN + TAG_LEN => {
                let next = NodeIdentity(body[..32].try_into().expect("32 bytes"));
                if next == self.node {
                    return Err(DropReason::RelayMalformed);
                }
                let start = HEADER_LEN + PREFIX_LEN + 32;
                let layer = layer[start..HEADER_LEN + plain_len].to_vec();
                let next_id = layer_id(&layer[..HEADER_LEN]);
                (
                    Opened::Forward {
                        next,
                        layer,
                        expiry,
                        id: layer_id(&header),
                        next_id,
                    },
                    None,
                )
            }
            KIND_DELIVER if depth == 1 && body.len() >= 68 => {
                let src = NodeIdentity(body[..32].try_into().expect("32 bytes"));
                let proof: [u8; 32] = body[32..64].try_into().expect("32 bytes");
                let len = u32::from_le_bytes(body[64..68].try_into().expect("4 bytes")) as usize;
                if len > body.len() - 68 {
                    return Err(DropReason::RelayMalformed);
                }
                let known = self.sessions.get(&eph).and_then(|s| s.source);
                if known.is_some_and(|s| s != src) {
                    return Err(DropReason::RelayBadSource);
                }
                let k = self.source_key(&src).ok_or(DropReason::RelayBadSource)?;
                if known.is_none()
                    && blake3::keyed_hash(&k, &eph) != blake3::Hash::from_bytes(proof)
                {
                    return Err(DropReason::RelayBadSource);
                }
                let receipt = Receipt {
                    id: layer_id(&header),
                    token: receipt_token(&k, &header),
                };
                let start = HEADER_LEN + PREFIX_LEN + 68;
                let message = layer[start..start + len].to_vec();
                (
                    Opened::Deliver {
                        src,
                        message,
                        expiry,
                        receipt,
                    },
                    Some(src),
                )
            }
            KIND_FORWARD | KIND_DELIVER => return Err(DropReason::RelayMalformed),
            _ => return Err(DropReason::RelayMalformed),
        };
        match fresh {
            Some(key) => {
                self.sessions.insert(
                    eph,
                    RecvSession {
                        key,
                        window: ReplayWindow::new(counter, now.instant),
                        source,
                    },
                );
            }
            None => {
                let s = self
                    .sessions
                    .get_mut(&eph)
                    .expect("session looked up above");
                s.window.record(counter, now.instant);
                if s.source.is_none() {
                    s.source = source;
                }
            }
        }
        Ok(opened)
    }

    fn source_key(&mut self, src: &NodeIdentity) -> Option<[u8; 32]> {
        if let Some(k) = self.source_keys.get(src) {
            return Some(*k);
        }
        let k = source_key(&self.secret, &self.node, src, false)?;
        if self.source_keys.len() >= self.limits.max_source_keys {
            self.source_keys.clear();
        }
        self.source_keys.insert(*src, k);
        Some(k)
    }

    /// Forgets sessions idle for `max_lifetime` (at most once a second unless `force`).
    fn sweep(&mut self, now: Instant, force: bool) {
        if !force
            && self
                .last_sweep
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        let idle = self.limits.max_lifetime;
        self.sessions
            .retain(|_, s| now.saturating_duration_since(s.window.last_used()) <= idle);
    }
}

/// Building layers by hand, for tests and test vectors: fixed ephemeral keys and counters.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use super::*;

    /// Seals `plain` (a layer's plaintext, built by the caller) to `hop` with the ephemeral
    /// secret `eph_scalar` and `counter`.
    pub fn seal_raw(
        eph_scalar: [u8; 32],
        counter: u64,
        hop: &NodeIdentity,
        plain: Vec<u8>,
    ) -> Vec<u8> {
        let eph = DhSecret::from_scalar(eph_scalar);
        let eph_pub = eph.public();
        let hop_x = x25519_public(hop).expect("a valid hop key");
        let key = aead_key(&eph, &hop_x, &eph_pub, hop).expect("a valid agreement");
        seal_with(&key, &eph_pub, counter, plain)
    }

    /// The plaintext of a delivery from `src` (key pair, for its proof) to `dst`, for a layer
    /// under the ephemeral key of `eph_scalar`, padded to its size class.
    pub fn deliver_plain(
        src: &Keypair,
        dst: &NodeIdentity,
        eph_scalar: [u8; 32],
        message: &[u8],
        expiry: Timestamp,
    ) -> Vec<u8> {
        let secret = DhSecret::of_node(src);
        let k = source_key(&secret, &src.node_identity(), dst, true).expect("valid keys");
        let eph_pub = DhSecret::from_scalar(eph_scalar).public();
        let proof = blake3::keyed_hash(&k, &eph_pub);
        let mut plain = vec![KIND_DELIVER];
        plain.extend_from_slice(&expiry.0.to_le_bytes());
        plain.push(1);
        plain.extend_from_slice(&src.node_identity().0);
        plain.extend_from_slice(proof.as_bytes());
        plain.extend_from_slice(&(message.len() as u32).to_le_bytes());
        plain.extend_from_slice(message);
        plain.resize(padded_len(DELIVER_FIXED + message.len()), 0);
        plain
    }

    /// The AEAD key of a layer to `hop` under the ephemeral secret `eph_scalar`.
    pub fn layer_key(eph_scalar: [u8; 32], hop: &NodeIdentity) -> [u8; 32] {
        let eph = DhSecret::from_scalar(eph_scalar);
        let shared = eph
            .agree(&x25519_public(hop).expect("a valid hop key"))
            .expect("agrees");
        let mut material = [0u8; 96];
        material[..32].copy_from_slice(&shared);
        material[32..64].copy_from_slice(&eph.public());
        material[64..].copy_from_slice(&hop.0);
        blake3::derive_key(LAYER_KEY_CONTEXT, &material)
    }

    /// The key of the source proof from `src` to `dst`.
    pub fn source_proof_key(src: &Keypair, dst: &NodeIdentity) -> [u8; 32] {
        source_key(&DhSecret::of_node(src), &src.node_identity(), dst, true).expect("valid keys")
    }

    /// The plaintext of a forward layer: `next`, then `inner` (the layer sealed to it).
    pub fn forward_plain(
        next: &NodeIdentity,
        depth: u8,
        inner: &[u8],
        expiry: Timestamp,
    ) -> Vec<u8> {
        let mut plain = vec![KIND_FORWARD];
        plain.extend_from_slice(&expiry.0.to_le_bytes());
        plain.push(depth);
        plain.extend_from_slice(&next.0);
        plain.extend_from_slice(inner);
        plain
    }
}
