//! Keys and the identity newtypes; signing, strict verification and key files.
//!
//! Every identity in netmachine is an Ed25519 public key. The four kinds — nodes, engines,
//! topics and domains — are distinct newtypes so that one can never be passed where another is
//! expected. They print and parse as 64 lowercase hex characters.
//!
//! A node has one secret key, kept in a key file (PKCS#8 v1 in PEM, the same format
//! `openssl genpkey -algorithm ed25519` writes). The node key is also the key of the node's
//! Router. Every other engine's key is derived from the node key and the engine's name with
//! HKDF-SHA256, so engine identities stay the same across restarts with one key file per node.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// Length of every public key and identity, in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a signature, in bytes.
pub const SIGNATURE_LEN: usize = 64;

macro_rules! identity_type {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, bincode::Encode, bincode::Decode)]
        pub struct $name(pub [u8; KEY_LEN]);

        impl $name {
            /// The raw 32 bytes of the public key.
            pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }

            /// The first eight hex characters, for log lines.
            pub fn short(&self) -> String {
                to_hex(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&to_hex(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($label, "({})"), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdentityError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_key_hex(s).map($name)
            }
        }
    };
}

identity_type!(
    /// A node: the public key of the node key, which is also its Router's key.
    NodeIdentity,
    "Node"
);
identity_type!(
    /// An engine instance: the public key of the engine's own key.
    EngineIdentity,
    "Engine"
);
identity_type!(
    /// A pub/sub topic: the public key of the topic key, which signs the topic's adverts.
    TopicIdentity,
    "Topic"
);
identity_type!(
    /// A domain: the public key of the domain key, which signs the domain's adverts.
    DomainIdentity,
    "Domain"
);

impl NodeIdentity {
    /// The node's Router is an engine whose identity is the node identity.
    pub fn router(self) -> EngineIdentity {
        EngineIdentity(self.0)
    }
}

/// An identity string that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIdentityError(String);

impl fmt::Display for ParseIdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an identity (64 hex characters): {}", self.0)
    }
}

impl std::error::Error for ParseIdentityError {}

fn parse_key_hex(s: &str) -> Result<[u8; KEY_LEN], ParseIdentityError> {
    let bytes = from_hex(s.trim()).ok_or_else(|| ParseIdentityError(s.to_string()))?;
    bytes
        .try_into()
        .map_err(|_| ParseIdentityError(s.to_string()))
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// Bytes from hex (either case); `None` if `s` is not an even number of hex digits.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// A 64-byte Ed25519 signature as it appears on the wire.
#[derive(Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", to_hex(&self.0[..4]))
    }
}

impl Signature {
    /// The dalek form of this signature.
    pub fn to_dalek(&self) -> ed25519_dalek::Signature {
        ed25519_dalek::Signature::from_bytes(&self.0)
    }
}

/// An Ed25519 key pair: a node key, an engine key, a topic key or a domain key.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", to_hex(&self.public()[..4]))
    }
}

impl Keypair {
    /// A new random key pair from the operating system's random source (for real nodes; a
    /// simulation or a test draws its keys from a seed with [`Keypair::from_rng`]).
    pub fn generate() -> Keypair {
        Keypair {
            signing: SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// A key pair drawn from `rng`: the same seeded generator gives the same keys.
    pub fn from_rng(rng: &mut impl rand_core::RngCore) -> Keypair {
        let mut seed = [0u8; KEY_LEN];
        rng.fill_bytes(&mut seed);
        Keypair::from_seed(&seed)
    }

    /// The key pair whose secret is the 32-byte Ed25519 seed `seed`.
    pub fn from_seed(seed: &[u8; KEY_LEN]) -> Keypair {
        Keypair {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The scalar bytes behind the signing key, for X25519 with the same key (relay layers are
    /// sealed to a node's key this way: docs/wire.md §12G.1). Handle with care.
    pub fn x25519_scalar_bytes(&self) -> [u8; KEY_LEN] {
        self.signing.to_scalar_bytes()
    }

    /// The 32-byte secret seed. Handle with care.
    pub fn seed(&self) -> [u8; KEY_LEN] {
        self.signing.to_bytes()
    }

    /// The public key bytes.
    pub fn public(&self) -> [u8; KEY_LEN] {
        self.signing.verifying_key().to_bytes()
    }

    /// This key as a node identity.
    pub fn node_identity(&self) -> NodeIdentity {
        NodeIdentity(self.public())
    }

    /// This key as an engine identity.
    pub fn engine_identity(&self) -> EngineIdentity {
        EngineIdentity(self.public())
    }

    /// This key as a topic identity.
    pub fn topic_identity(&self) -> TopicIdentity {
        TopicIdentity(self.public())
    }

    /// This key as a domain identity.
    pub fn domain_identity(&self) -> DomainIdentity {
        DomainIdentity(self.public())
    }

    /// Signs `context || message`. `context` is the domain-separation tag of the structure being
    /// signed (see [`crate::wire`]); `scratch` is reused to avoid an allocation per signature.
    pub fn sign_with_context(
        &self,
        context: &[u8],
        message: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Signature {
        scratch.clear();
        scratch.extend_from_slice(context);
        scratch.extend_from_slice(message);
        if crate::stand_in::is_active() {
            return Signature(crate::stand_in::sign(&self.seed(), &self.public(), scratch));
        }
        Signature(self.signing.sign(scratch).to_bytes())
    }

    /// The key of the engine called `name` on the node whose key this is.
    ///
    /// HKDF-SHA256 with salt `"netmachine engine key v1"`, the node seed as input key material and
    /// the engine name as info; the 32-byte output is the engine's Ed25519 seed. The engine named
    /// `"router"` is the node itself and gets the node key.
    pub fn derive_engine(&self, name: &str) -> Keypair {
        if name == ROUTER_ENGINE_NAME {
            return self.clone();
        }
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"netmachine engine key v1");
        let prk = salt.extract(&self.seed());
        let info = [name.as_bytes()];
        let okm = prk
            .expand(&info, SeedLen)
            .expect("HKDF-SHA256 can always produce 32 bytes");
        let mut seed = [0u8; KEY_LEN];
        okm.fill(&mut seed)
            .expect("HKDF-SHA256 can always produce 32 bytes");
        Keypair::from_seed(&seed)
    }
}

/// The name of the Router engine, whose key is the node key.
pub const ROUTER_ENGINE_NAME: &str = "router";

struct SeedLen;

impl ring::hkdf::KeyType for SeedLen {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

/// Why a public key or signature was refused before or during verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The bytes are not a point on the curve.
    NotAPoint,
    /// The encoding is not canonical (y ≥ p, or a negative zero x).
    NonCanonical,
    /// The key is of small order: anyone can forge signatures that verify under it.
    Weak,
}

/// A public key parsed and checked once, ready to verify many signatures.
///
/// Parsing decompresses the curve point, which costs about as much as a tenth of a verification;
/// the Router caches these per source.
#[derive(Clone, Debug)]
pub struct CheckedKey {
    key: VerifyingKey,
}

impl CheckedKey {
    /// Parses `bytes`, refusing non-canonical encodings and weak (small-order) keys.
    pub fn parse(bytes: &[u8; KEY_LEN]) -> Result<CheckedKey, KeyError> {
        if !is_canonical_point_encoding(bytes) {
            return Err(KeyError::NonCanonical);
        }
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotAPoint)?;
        if key.is_weak() {
            return Err(KeyError::Weak);
        }
        Ok(CheckedKey { key })
    }

    /// The key's 32 bytes: the identity of whoever holds its secret.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.key.as_bytes()
    }

    /// Whether this is the key of the identity whose bytes are `id`.
    pub fn is_key_of(&self, id: &[u8; KEY_LEN]) -> bool {
        self.key.as_bytes() == id
    }

    /// The dalek verifying key.
    pub fn dalek(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verifies `sig` over `context || message` with `verify_strict`.
    pub fn verify_strict(
        &self,
        context: &[u8],
        message: &[u8],
        sig: &Signature,
        scratch: &mut Vec<u8>,
    ) -> bool {
        scratch.clear();
        scratch.extend_from_slice(context);
        scratch.extend_from_slice(message);
        if crate::stand_in::is_active() {
            return crate::stand_in::verify(self.key.as_bytes(), scratch, &sig.0);
        }
        self.key.verify_strict(scratch, &sig.to_dalek()).is_ok()
    }
}

/// Cheap checks on a signature's `R` that `verify_strict` makes and batch verification does not:
/// `R` must be a canonical encoding and must not be one of the eight small-order points.
///
/// With these checks and [`CheckedKey`] (canonical, non-weak `A`), a batch accepts what
/// `verify_strict` accepts, except that a key's owner could craft a signature with a torsion
/// component that a batch accepts with probability 1/8; that forges nothing (it needs the secret
/// key) and is documented in docs/wire.md.
pub fn signature_r_is_acceptable(sig: &Signature) -> bool {
    let r: &[u8; 32] = sig.0[..32].try_into().expect("64-byte signature");
    is_canonical_point_encoding(r) && !small_order_encodings().contains(r)
}

/// Whether `bytes` is the canonical encoding of a y coordinate (y < p, and no negative zero x).
fn is_canonical_point_encoding(bytes: &[u8; 32]) -> bool {
    let mut y = *bytes;
    let sign = y[31] >> 7;
    y[31] &= 0x7f;
    // p = 2^255 - 19: little-endian bytes ed ff .. ff 7f.
    let ge_p = y[0] >= 0xed && y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f;
    if ge_p {
        return false;
    }
    // x = 0 exactly when y = 1 or y = -1 (p - 1); the sign bit must then be clear.
    let is_one = y[0] == 1 && y[1..].iter().all(|&b| b == 0);
    let is_minus_one = y[0] == 0xec && y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f;
    !(sign == 1 && (is_one || is_minus_one))
}

/// The canonical encodings of the eight points of small order, computed once.
///
/// For a point P, `[l]P` (with l the prime group order) is P's torsion component; taking it from
/// enough points yields the whole torsion subgroup.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static TABLE: OnceLock<[[u8; 32]; 8]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let l_minus_one = Scalar::ZERO - Scalar::ONE;
        let mut found: Vec<[u8; 32]> = Vec::with_capacity(8);
        let mut candidate = [0u8; 32];
        let mut counter: u32 = 0;
        while found.len() < 8 {
            counter += 1;
            candidate[..4].copy_from_slice(&counter.to_le_bytes());
            let Some(p) = CompressedEdwardsY(candidate).decompress() else {
                continue;
            };
            let torsion = p * l_minus_one + p;
            let enc = torsion.compress().to_bytes();
            if !found.contains(&enc) {
                found.push(enc);
            }
        }
        found.try_into().expect("eight entries")
    })
}

// ---------------------------------------------------------------------------------------------
// Key files.

/// The DER prefix of a PKCS#8 v1 Ed25519 private key (RFC 8410); the 32-byte seed follows.
pub const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A key file that could not be read or written.
#[derive(Debug)]
pub enum KeyFileError {
    /// The file could not be read or written.
    Io(io::Error),
    /// The file is not a PEM `PRIVATE KEY` holding a PKCS#8 Ed25519 key.
    Format(String),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Io(e) => write!(f, "{e}"),
            KeyFileError::Format(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for KeyFileError {}

impl Keypair {
    /// The key in PKCS#8 v1 DER.
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&self.seed());
        der
    }

    /// The key as a PEM `PRIVATE KEY` document.
    pub fn to_pem(&self) -> String {
        let body = base64_encode(&self.to_pkcs8_der());
        let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END PRIVATE KEY-----\n");
        out
    }

    /// Parses a PEM `PRIVATE KEY` document holding a PKCS#8 v1 Ed25519 key.
    pub fn from_pem(text: &str) -> Result<Keypair, KeyFileError> {
        let begin = "-----BEGIN PRIVATE KEY-----";
        let end = "-----END PRIVATE KEY-----";
        let start = text
            .find(begin)
            .ok_or_else(|| KeyFileError::Format(format!("no '{begin}' line")))?;
        let rest = &text[start + begin.len()..];
        let stop = rest
            .find(end)
            .ok_or_else(|| KeyFileError::Format(format!("no '{end}' line")))?;
        let b64: String = rest[..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64_decode(&b64)
            .ok_or_else(|| KeyFileError::Format("the PEM body is not base64".into()))?;
        if der.len() != 48 || der[..16] != PKCS8_ED25519_PREFIX {
            return Err(KeyFileError::Format(
                "not a PKCS#8 v1 Ed25519 private key (expected 48 bytes of DER)".into(),
            ));
        }
        let seed: [u8; 32] = der[16..].try_into().expect("32 bytes");
        Ok(Keypair::from_seed(&seed))
    }

    /// Reads a key file.
    pub fn read_file(path: &Path) -> Result<Keypair, KeyFileError> {
        let text = fs::read_to_string(path).map_err(KeyFileError::Io)?;
        Keypair::from_pem(&text)
            .map_err(|e| KeyFileError::Format(format!("{}: {e}", path.display())))
    }

    /// Writes a key file readable only by its owner (mode 0600). Refuses to overwrite.
    pub fn write_file(&self, path: &Path) -> Result<(), KeyFileError> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(KeyFileError::Io)?;
        file.write_all(self.to_pem().as_bytes())
            .map_err(KeyFileError::Io)?;
        file.sync_all().map_err(KeyFileError::Io)
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_input() {
        let k = Keypair::generate();
        let id = k.node_identity();
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<NodeIdentity>().unwrap(), id);
        assert!("abc".parse::<NodeIdentity>().is_err());
        assert!(format!("{text}00").parse::<NodeIdentity>().is_err());
        assert!(text.replace('a', "g").parse::<NodeIdentity>().is_err() || !text.contains('a'));
    }

    #[test]
    fn pem_round_trip() {
        let k = Keypair::generate();
        let back = Keypair::from_pem(&k.to_pem()).unwrap();
        assert_eq!(back.public(), k.public());
        assert!(
            Keypair::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
    }

    #[test]
    fn key_file_is_private_and_not_overwritten() {
        let dir = std::env::temp_dir().join(format!("nm-key-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.key");
        let k = Keypair::generate();
        k.write_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(Keypair::read_file(&path).unwrap().public(), k.public());
        assert!(k.write_file(&path).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn engine_keys_are_stable_and_distinct() {
        let node = Keypair::from_seed(&[7; 32]);
        let a1 = node.derive_engine("echo").public();
        let a2 = node.derive_engine("echo").public();
        let b = node.derive_engine("ping").public();
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_ne!(a1, node.public());
        assert_eq!(
            node.derive_engine(ROUTER_ENGINE_NAME).public(),
            node.public()
        );
        let other = Keypair::from_seed(&[8; 32]);
        assert_ne!(other.derive_engine("echo").public(), a1);
    }

    #[test]
    fn small_order_table_is_the_torsion_subgroup() {
        let table = small_order_encodings();
        for enc in table {
            let p = CompressedEdwardsY(*enc).decompress().unwrap();
            assert!(p.is_small_order());
        }
        let mut sorted = table.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 8);
        // The identity (y = 1) is one of them.
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(table.contains(&one));
    }

    #[test]
    fn weak_and_non_canonical_keys_are_refused() {
        for enc in small_order_encodings() {
            assert_eq!(CheckedKey::parse(enc).unwrap_err(), KeyError::Weak);
        }
        // y = p is a non-canonical encoding of y = 0.
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert_eq!(CheckedKey::parse(&p).unwrap_err(), KeyError::NonCanonical);
        let good = Keypair::generate();
        assert!(CheckedKey::parse(&good.public()).is_ok());
    }

    #[test]
    fn sign_and_verify_with_context() {
        let k = Keypair::generate();
        let key = CheckedKey::parse(&k.public()).unwrap();
        let mut scratch = Vec::new();
        let sig = k.sign_with_context(b"ctx", b"hello", &mut scratch);
        assert!(key.verify_strict(b"ctx", b"hello", &sig, &mut scratch));
        assert!(!key.verify_strict(b"ctx2", b"hello", &sig, &mut scratch));
        assert!(!key.verify_strict(b"ctx", b"hellp", &sig, &mut scratch));
        assert!(signature_r_is_acceptable(&sig));
        let mut bad = sig;
        bad.0[..32].copy_from_slice(&small_order_encodings()[0]);
        assert!(!signature_r_is_acceptable(&bad));
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
        assert_eq!(base64_decode("Zm9vYg==").unwrap(), b"foob");
    }
}
