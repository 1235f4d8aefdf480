//! Bad input: forged, replayed, stale, conflicting, oversized and repeated descriptors, and
//! messages of the wrong origin or rate — each refused, counted, and never replacing what is
//! held.

use std::time::Duration;

use super::super::wire::SamplingMessage;
use super::*;
use crate::interdomain::blip::encode;
use crate::mail::Message;
use crate::wire::{EngineMessage, MessageId, Signed};

/// An engine holding `victim`'s descriptor of version 2 (through the explicit friend).
fn holding(victim: &Keypair, friend: &Keypair) -> One {
    let mut one = One::new(SamplerMode::Taps, &[(friend, 0.9)]);
    let now = one.now.wall;
    one.exchange(friend, vec![descriptor_for(victim, 2, now)]);
    assert_eq!(held_version(&one, victim), Some(2));
    one
}

fn held_version(one: &One, k: &Keypair) -> Option<u64> {
    let p = one.engine.probe();
    p.view()
        .into_iter()
        .find(|e| e.node == k.node_identity())
        .map(|e| e.version)
}

/// `d` signed by `key` whoever it names.
fn signed_by(mut d: NodeDescriptor, key: &Keypair) -> NodeDescriptor {
    let sig = key.sign_with_context(NodeDescriptor::CONTEXT, &d.signed_fields(), &mut Vec::new());
    d.set_signature(sig);
    d
}

#[test]
fn forged_descriptors_are_refused_and_never_replace_the_held_one() {
    let ks = keys(20, 3);
    let (victim, friend, attacker) = (&ks[0], &ks[1], &ks[2]);
    let mut one = holding(victim, friend);
    let now = one.now.wall;
    // A bit changed after signing.
    let mut tampered = descriptor_for(victim, 3, now);
    tampered.version = 4;
    // Another node's descriptor "for" the victim with a newer version, signed by the attacker.
    let mut claim = descriptor_for(victim, 9, now);
    claim = signed_by(claim, attacker);
    // The victim's descriptor re-signed by it, but over an advert altered after its signature.
    let mut bad_advert = descriptor_for(victim, 10, now);
    bad_advert.advert.version += 1;
    let bad_advert = signed_by(bad_advert, victim);
    for (i, d) in [tampered, claim, bad_advert].into_iter().enumerate() {
        one.tick();
        one.exchange(attacker, vec![d]);
        assert_eq!(one.stat(|s| &s.invalid), i as u64 + 1);
        assert_eq!(held_version(&one, victim), Some(2));
    }
    assert!(one.engine.probe().invalid_by_reason().values().sum::<u64>() == 3);
}

#[test]
fn descriptors_from_the_future_or_with_other_filter_parameters_are_refused() {
    let ks = keys(21, 3);
    let (victim, friend) = (&ks[0], &ks[1]);
    let mut one = holding(victim, friend);
    let now = one.now.wall;
    let future = make_descriptor(
        victim,
        advert(victim, now),
        encode(&BlipParams::default(), std::iter::empty::<&DomainIdentity>()),
        5,
        now.after(Duration::from_secs(7 * 86_400)),
    );
    let other = BlipParams {
        bits: 2048,
        ..BlipParams::default()
    };
    let wide = make_descriptor(
        victim,
        advert(victim, now),
        encode(&other, std::iter::empty::<&DomainIdentity>()),
        6,
        now,
    );
    one.exchange(friend, vec![future]);
    one.tick();
    one.exchange(friend, vec![wide]);
    assert_eq!(one.stat(|s| &s.invalid), 2);
    assert_eq!(held_version(&one, victim), Some(2));
}

#[test]
fn replayed_and_conflicting_versions_are_refused_without_a_signature_check() {
    let ks = keys(22, 3);
    let (victim, friend, other) = (&ks[0], &ks[1], &ks[2]);
    let mut one = holding(victim, friend);
    let now = one.now.wall;
    let verified = one.stat(|s| &s.descriptors_verified);
    one.exchange(other, vec![descriptor_for(victim, 1, now)]);
    assert_eq!(one.stat(|s| &s.stale_version), 1);
    let d = DomainIdentity([1; 32]);
    let filter = encode(&BlipParams::default(), [&d]);
    let twin = make_descriptor(victim, advert(victim, now), filter, 2, now);
    one.tick();
    one.exchange(other, vec![twin]);
    assert_eq!(one.stat(|s| &s.conflicting), 1);
    assert_eq!(one.stat(|s| &s.descriptors_verified), verified, "no signature checked");
    assert_eq!(held_version(&one, victim), Some(2));
}

#[test]
fn a_descriptor_is_verified_once_per_node_and_version() {
    let ks = keys(23, 3);
    let (weak, x) = (&ks[0], &ks[1]);
    // Entries through the weak friend are not merged, so only the memory can save the check.
    let mut one = One::new(SamplerMode::Taps, &[(weak, 0.1)]);
    let now = one.now.wall;
    let d = descriptor_for(x, 1, now);
    for _ in 0..3 {
        one.tick();
        one.exchange(weak, vec![d.clone()]);
    }
    assert_eq!(one.stat(|s| &s.descriptors_verified), 1);
    assert_eq!(one.stat(|s| &s.descriptors_cached), 2);
    // A newer version is checked again.
    one.tick();
    one.exchange(weak, vec![descriptor_for(x, 2, now)]);
    assert_eq!(one.stat(|s| &s.descriptors_verified), 2);
    assert_eq!(one.engine.known.len(), 1);
}

#[test]
fn expired_repeated_and_own_descriptors_are_left_out() {
    let ks = keys(24, 3);
    let (friend, x) = (&ks[0], &ks[1]);
    let mut one = One::new(SamplerMode::Taps, &[(friend, 0.9)]);
    let now = one.now.wall;
    let short = NodeAdvert::new_signed(x, vec![], 1, now, now.after(Duration::from_secs(1)), None);
    let filter = encode(&BlipParams::default(), std::iter::empty::<&DomainIdentity>());
    let expiring = make_descriptor(x, short, filter, 1, now);
    one.advance(Duration::from_secs(2));
    one.exchange(friend, vec![expiring]);
    assert_eq!(one.stat(|s| &s.expired), 1);
    let now = one.now.wall;
    let dup = descriptor_for(&ks[2], 1, now);
    one.tick();
    one.exchange(friend, vec![dup.clone(), dup]);
    assert_eq!(one.stat(|s| &s.duplicate), 1);
    // One claiming this node's identity (forged or not) is never merged.
    let me_key = one.key.clone();
    let mine = signed_by(descriptor_for(&me_key, 99, now), friend);
    one.tick();
    one.exchange(friend, vec![mine]);
    assert_eq!(one.stat(|s| &s.own_entries), 1);
    assert!(!one.engine.view_nodes().contains(&one.me()));
}

#[test]
fn oversized_malformed_and_unknown_version_bodies_are_refused() {
    let ks = keys(25, 20);
    let mut one = One::new(SamplerMode::Taps, &[(&ks[0], 0.9)]);
    let now = one.now.wall;
    let many: Vec<_> = ks[1..18].iter().map(|k| descriptor_for(k, 1, now)).collect();
    one.exchange(&ks[0], many);
    assert_eq!(one.stat(|s| &s.oversized), 1);
    assert_eq!(one.stat(|s| &s.descriptors_received), 0, "nothing decoded");
    one.remote_bytes(ks[0].node_identity(), b"\x01\x00\x00\x00garbage");
    assert_eq!(one.stat(|s| &s.malformed), 1);
    let mut body = SamplingMessage::Exchange {
        descriptors: vec![],
    }
    .to_bytes();
    body[..4].copy_from_slice(&7u32.to_le_bytes());
    one.remote_bytes(ks[0].node_identity(), &body);
    assert_eq!(one.stat(|s| &s.unknown_version), 1);
    assert!(one.seen().sent.is_empty(), "nothing answered");
}

#[test]
fn exchanges_past_the_rates_are_refused() {
    let ks = keys(26, 2);
    let settings = SamplingSettings {
        limits: SamplingLimits {
            max_exchanges_per_period: 6,
            ..SamplingLimits::default()
        },
        ..SamplingSettings::default()
    };
    let mut one = One::with_settings(settings, &[(&ks[0], 0.9)]);
    one.seen();
    for _ in 0..5 {
        one.exchange(&ks[0], vec![]);
    }
    assert_eq!(one.stat(|s| &s.received_exchange), 4);
    assert_eq!(one.stat(|s| &s.rate_limited), 1);
    for _ in 0..3 {
        one.exchange(&ks[1], vec![]);
    }
    assert_eq!(one.stat(|s| &s.busy), 1);
    assert_eq!(one.seen().sent.len(), 6, "one reply per accepted exchange");
    one.tick();
    one.exchange(&ks[1], vec![]);
    assert_eq!(one.stat(|s| &s.received_exchange), 7, "a new period");
}

#[test]
fn local_mail_and_messages_not_from_their_node_are_refused() {
    let ks = keys(27, 1);
    let mut one = One::new(SamplerMode::Taps, &[(&ks[0], 0.9)]);
    let m = EngineMessage {
        src: EngineIdentity([5; 32]),
        src_node: one.me(),
        dst: Destination::Node(one.me()),
        id: MessageId(1),
        reply_to: None,
        expiry: None,
        rprefs: None,
        tprefs: None,
        protocol: Protocol::SAMPLING,
        body: SamplingMessage::Exchange {
            descriptors: vec![],
        }
        .to_bytes(),
        sig: None,
    };
    one.engine
        .handle(&mut one.ctx, Input::Message(Message::local(m)));
    assert_eq!(one.stat(|s| &s.bad_origin), 1);
    assert_eq!(one.stat(|s| &s.received_exchange), 0);
}
