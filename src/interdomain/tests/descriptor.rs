//! Descriptor checks: a good descriptor passes and round-trips the wire; forged, altered,
//! expired, future-dated and wrong-parameter descriptors are each refused with their own
//! error.

use std::time::Duration;

use crate::identity::{Keypair, Signature};
use crate::interdomain::blip::{self, BlipParams};
use crate::interdomain::descriptor::*;
use crate::rng::SplitMix64;
use crate::time::Timestamp;
use crate::wire::{
    decode_exact, encode_to_vec, NodeAdvert, NodeDescriptor, Signed, TransportAddress,
};

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn advert(key: &Keypair) -> NodeAdvert {
    NodeAdvert::new_signed(
        key,
        vec![(
            TransportAddress::quic("127.0.0.1:7000".parse().expect("addr")),
            100,
        )],
        1,
        NOW,
        NOW.after(Duration::from_secs(3600)),
        None,
    )
}

fn good(key: &Keypair, rng: &mut SplitMix64) -> NodeDescriptor {
    let params = BlipParams::default();
    let filter = blip::flip(&blip::encode(&params, &[]), params.epsilon, rng);
    make_descriptor(key, advert(key), filter, 7, NOW)
}

#[test]
fn a_good_descriptor_passes_and_round_trips() {
    let mut rng = SplitMix64::new(1);
    let key = Keypair::from_rng(&mut rng);
    let d = good(&key, &mut rng);
    let wire = encode_to_vec(&d);
    let back: NodeDescriptor = decode_exact(&wire).expect("decodes");
    assert_eq!(back, d);
    let ok = check_descriptor(back, NOW, &BlipParams::default()).expect("valid");
    assert_eq!(ok.node(), key.node_identity());
    assert_eq!(ok.version, 7);
    // Up to MAX_CREATED_AHEAD of clock difference is fine.
    let early = NOW.after(Duration::from_secs(1)).0 - MAX_CREATED_AHEAD.as_millis() as u64;
    assert!(check_descriptor(d, Timestamp(early), &BlipParams::default()).is_ok());
}

#[test]
fn bad_descriptors_are_refused_each_for_its_reason() {
    let mut rng = SplitMix64::new(2);
    let key = Keypair::from_rng(&mut rng);
    let other = Keypair::from_rng(&mut rng);
    let params = BlipParams::default();
    let d = good(&key, &mut rng);
    let check = |d: NodeDescriptor| check_descriptor(d, NOW, &params).map(|_| ());

    // Forged: someone else's valid advert, signed by another key.
    let mut forged = d.clone();
    forged.advert = advert(&other);
    assert_eq!(check(forged.clone()), Err(DescriptorError::BadSignature));
    // The advert names the signer, so a descriptor signed by `key` over `other`'s advert fails
    // too.
    let resigned = forged.sign_unchecked(&key);
    assert_eq!(check(resigned), Err(DescriptorError::BadSignature));
    // Altered on the way: a flipped filter bit, a raised version.
    let mut altered = d.clone();
    let bit = altered.filter.get(5);
    altered.filter.set(5, !bit);
    assert_eq!(check(altered), Err(DescriptorError::BadSignature));
    let mut bumped = d.clone();
    bumped.version += 1;
    assert_eq!(check(bumped), Err(DescriptorError::BadSignature));
    // A descriptor signature over a tampered advert: the advert's own signature fails first.
    let mut bad_advert = d.advert.clone();
    bad_advert.addrs.clear();
    let tampered = make_descriptor(&key, bad_advert, d.filter.clone(), 8, NOW);
    assert_eq!(check(tampered), Err(DescriptorError::BadAdvertSignature));
    // A garbage signature.
    let mut garbage = d.clone();
    garbage.sig = Signature([0xff; 64]);
    assert_eq!(check(garbage), Err(DescriptorError::BadSignature));
    // Expired: the advert's expiry has passed (valid until, not at, `expires`).
    let at_expiry = d.advert.expires;
    assert_eq!(
        check_descriptor(d.clone(), at_expiry, &params).map(|_| ()),
        Err(DescriptorError::Expired)
    );
    // From the future.
    let ahead = NOW.after(MAX_CREATED_AHEAD + Duration::from_secs(1));
    let future = make_descriptor(&key, d.advert.clone(), d.filter.clone(), 9, ahead);
    assert_eq!(check(future), Err(DescriptorError::FromTheFuture));
    // Wrong parameters: other bits, other hashes.
    for wrong in [
        BlipParams {
            bits: 2048,
            ..params
        },
        BlipParams {
            hashes: 4,
            ..params
        },
    ] {
        let filter = blip::encode(&wrong, &[]);
        let w = make_descriptor(&key, d.advert.clone(), filter, 10, NOW);
        assert_eq!(
            check(w),
            Err(DescriptorError::WrongParams {
                bits: wrong.bits,
                hashes: wrong.hashes
            })
        );
    }
    // Malformed filter bytes (only a local caller can make one; decoding refuses it).
    let mut short = d.filter.clone();
    short.bytes.pop();
    let m = make_descriptor(&key, d.advert.clone(), short, 11, NOW);
    assert!(decode_exact::<NodeDescriptor>(&encode_to_vec(&m)).is_err());
    assert_eq!(check(m), Err(DescriptorError::MalformedFilter));
    // A node identity that is not a valid key (the all-zero point is weak).
    let mut weak = d.clone();
    weak.advert.id = crate::identity::NodeIdentity([0; 32]);
    assert_eq!(check(weak), Err(DescriptorError::BadKey));
    // Labels are distinct.
    let labels = [
        DescriptorError::WrongParams { bits: 0, hashes: 0 },
        DescriptorError::MalformedFilter,
        DescriptorError::Expired,
        DescriptorError::FromTheFuture,
        DescriptorError::BadKey,
        DescriptorError::BadAdvertSignature,
        DescriptorError::BadSignature,
    ]
    .map(|e| e.label());
    let unique: std::collections::BTreeSet<_> = labels.iter().collect();
    assert_eq!(unique.len(), labels.len());
}

trait SignUnchecked {
    fn sign_unchecked(self, key: &Keypair) -> Self;
}

impl SignUnchecked for NodeDescriptor {
    /// Signs with `key` whatever the advert says (what a forger does; `Signed::sign` asserts
    /// the key matches in debug builds).
    fn sign_unchecked(mut self, key: &Keypair) -> Self {
        let sig = key.sign_with_context(Self::CONTEXT, &self.signed_fields(), &mut Vec::new());
        self.sig = sig;
        self
    }
}
