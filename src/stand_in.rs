//! A cheap stand-in for Ed25519, for simulations of thousands of nodes, where real signatures
//! would take most of the run.
//!
//! While it is enabled on a thread ([`enable`]), every signature made on that thread is a keyed
//! hash — SHA-512 of the signer's 32-byte secret seed followed by the signed bytes — and every
//! verification looks the public key up in a table of the secrets of the keys that signed on
//! that thread, recomputes the hash and compares. Forgeries are still rejected: a signature made
//! with one key does not verify under another, and a key that never signed verifies nothing.
//! What it does not model is an attacker who learns the table: it exists only inside one
//! simulation run.
//!
//! It is off unless a simulation turns it on (a real node never does), and it is per thread, so
//! tests running in parallel do not see each other's. Every simulation report says which scheme
//! ran.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::identity::KEY_LEN;

/// The name simulation reports give this scheme.
pub const NAME: &str = "stand-in:keyed-sha512";

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static SECRETS: RefCell<HashMap<[u8; KEY_LEN], [u8; KEY_LEN]>> = RefCell::new(HashMap::new());
}

/// Keeps the stand-in on for the current thread until dropped.
pub struct Enabled {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for Enabled {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(false));
        SECRETS.with(|s| s.borrow_mut().clear());
    }
}

/// Turns the stand-in on for the current thread (with an empty table) until the returned guard
/// is dropped.
pub fn enable() -> Enabled {
    SECRETS.with(|s| s.borrow_mut().clear());
    ACTIVE.with(|a| a.set(true));
    Enabled {
        _not_send: std::marker::PhantomData,
    }
}

/// Whether the stand-in is on for the current thread.
pub fn is_active() -> bool {
    ACTIVE.with(|a| a.get())
}

fn digest(seed: &[u8; KEY_LEN], message: &[u8]) -> [u8; 64] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
    ctx.update(seed);
    ctx.update(message);
    let d = ctx.finish();
    let mut out = [0u8; 64];
    out.copy_from_slice(d.as_ref());
    out
}

/// The stand-in signature of `message` by the key with `seed` and `public` (which it remembers,
/// so that verifiers on this thread can check it).
pub(crate) fn sign(seed: &[u8; KEY_LEN], public: &[u8; KEY_LEN], message: &[u8]) -> [u8; 64] {
    SECRETS.with(|s| {
        s.borrow_mut().entry(*public).or_insert(*seed);
    });
    digest(seed, message)
}

/// Whether `sig` is the stand-in signature of `message` by `public`.
pub(crate) fn verify(public: &[u8; KEY_LEN], message: &[u8], sig: &[u8; 64]) -> bool {
    let seed = SECRETS.with(|s| s.borrow().get(public).copied());
    seed.is_some_and(|seed| &digest(&seed, message) == sig)
}

#[cfg(test)]
mod tests {
    use crate::identity::{CheckedKey, Keypair};

    #[test]
    fn stand_in_signatures_verify_only_under_their_own_key() {
        let _on = super::enable();
        let a = Keypair::from_seed(&[1; 32]);
        let b = Keypair::from_seed(&[2; 32]);
        let mut scratch = Vec::new();
        let sig = a.sign_with_context(b"ctx", b"hello", &mut scratch);
        let ka = CheckedKey::parse(&a.public()).unwrap();
        let kb = CheckedKey::parse(&b.public()).unwrap();
        assert!(ka.verify_strict(b"ctx", b"hello", &sig, &mut scratch));
        assert!(!ka.verify_strict(b"ctx", b"hellp", &sig, &mut scratch));
        assert!(
            !kb.verify_strict(b"ctx", b"hello", &sig, &mut scratch),
            "b never signed"
        );
        let _ = b.sign_with_context(b"ctx", b"other", &mut scratch);
        assert!(
            !kb.verify_strict(b"ctx", b"hello", &sig, &mut scratch),
            "a's signature"
        );
        // Not Ed25519: a real verifier refuses it once the stand-in is off.
        drop(_on);
        assert!(!ka.verify_strict(b"ctx", b"hello", &sig, &mut scratch));
    }
}
