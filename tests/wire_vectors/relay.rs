//! The vectors of relaying (docs/wire.md §12G, §16.17): node A sends through relay C to node B
//! — B's relay key, the source key, the layers, their ids, B's receipt token and the receipt
//! record — as the crate makes them and as the document's rules build them by hand.

use super::*;

const NODE_C_SEED: [u8; 32] = [0x03; 32];
/// The ephemeral secrets of the two layers.
const RELAY_EPH_DELIVER: [u8; 32] = [0x11; 32];
const RELAY_EPH_FORWARD: [u8; 32] = [0x22; 32];
/// Stands in for the `EngineMessage` wire form a deliver layer carries (opaque to the layer).
const RELAY_MESSAGE: &[u8] = b"an EngineMessage wire form";
const RELAY_EXPIRY: Timestamp = Timestamp(1_700_000_060_000);

/// The relay vectors: node A sends through relay C to node B.
fn relay_fixture() -> Vec<(&'static str, Vec<u8>)> {
    use netmachine::relay::keys::x25519_public;
    use netmachine::relay::layer::testing::{
        deliver_plain, forward_plain, layer_key, seal_raw, source_proof_key,
    };
    use netmachine::relay::receipt::{encode_record, layer_id, receipt_token, Receipt};
    let a = Keypair::from_seed(&NODE_A_SEED);
    let b = Keypair::from_seed(&NODE_B_SEED).node_identity();
    let c = Keypair::from_seed(&NODE_C_SEED).node_identity();
    let plain = deliver_plain(&a, &b, RELAY_EPH_DELIVER, RELAY_MESSAGE, RELAY_EXPIRY);
    let deliver = seal_raw(RELAY_EPH_DELIVER, 5, &b, plain.clone());
    let forward = seal_raw(
        RELAY_EPH_FORWARD,
        0,
        &c,
        forward_plain(&b, 2, &deliver, RELAY_EXPIRY),
    );
    vec![
        ("relay-node-b-x25519", x25519_public(&b).unwrap().to_vec()),
        ("relay-source-key-a-b", source_proof_key(&a, &b).to_vec()),
        (
            "relay-deliver-key",
            layer_key(RELAY_EPH_DELIVER, &b).to_vec(),
        ),
        ("relay-deliver-plaintext", plain),
        ("relay-deliver-layer", deliver.clone()),
        ("relay-forward-layer", forward.clone()),
        ("relay-forward-layer-id", layer_id(&forward[..41]).to_vec()),
        ("relay-deliver-layer-id", layer_id(&deliver[..41]).to_vec()),
        (
            "relay-receipt-token",
            receipt_token(&source_proof_key(&a, &b), &deliver[..41]).to_vec(),
        ),
        (
            "relay-receipt-record",
            encode_record(&[Receipt {
                id: layer_id(&deliver[..41]),
                token: receipt_token(&source_proof_key(&a, &b), &deliver[..41]),
            }]),
        ),
    ]
}

#[test]
fn relay_vectors() {
    use curve25519_dalek::montgomery::MontgomeryPoint;
    use netmachine::relay::{Opened, Opener, OpenerLimits};
    for (name, bytes) in relay_fixture() {
        assert_vector(name, &bytes);
    }
    // The document's rules, applied by hand to the documented bytes.
    let b_key = Keypair::from_seed(&NODE_B_SEED);
    let b_x = ed25519_dalek::VerifyingKey::from_bytes(&b_key.public())
        .unwrap()
        .to_montgomery();
    assert_eq!(b_x.0.to_vec(), hex("relay-node-b-x25519"));
    let layer = hex("relay-deliver-layer");
    let e = MontgomeryPoint::mul_base_clamped(RELAY_EPH_DELIVER);
    assert_eq!(&layer[1..33], &e.0[..], "the header carries E");
    let shared = b_x.mul_clamped(RELAY_EPH_DELIVER);
    let mut material = shared.0.to_vec();
    material.extend_from_slice(&e.0);
    material.extend_from_slice(&b_key.public());
    let key = blake3::derive_key("netmachine relay v1 layer key", &material);
    assert_eq!(key.to_vec(), hex("relay-deliver-key"));
    let aead = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &key).unwrap(),
    );
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&layer[33..41]);
    let mut body = layer[41..].to_vec();
    let plain = aead
        .open_in_place(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(&layer[..41]),
            &mut body,
        )
        .expect("the documented layer opens under the documented key");
    assert_eq!(plain.to_vec(), hex("relay-deliver-plaintext"));
    assert_eq!(plain.len(), 256, "padded to the first size class");
    assert_eq!(&plain[78..78 + RELAY_MESSAGE.len()], RELAY_MESSAGE);
    // The source proof: keyed hash of E under the documented source key.
    let proof = blake3::keyed_hash(&hex("relay-source-key-a-b").try_into().unwrap(), &e.0);
    assert_eq!(&plain[42..74], proof.as_bytes());
    // And the crate opens both layers: C forwards to B, B delivers A's message.
    let now = Now {
        instant: Instant::now(),
        wall: T0,
    };
    let c_key = Keypair::from_seed(&NODE_C_SEED);
    let opened = Opener::new(&c_key, OpenerLimits::default())
        .open(now, hex("relay-forward-layer"))
        .unwrap();
    assert_eq!(
        opened,
        Opened::Forward {
            next: b_key.node_identity(),
            layer: hex("relay-deliver-layer"),
            expiry: RELAY_EXPIRY,
            id: id16("relay-forward-layer-id"),
            next_id: id16("relay-deliver-layer-id"),
        }
    );
    let opened = Opener::new(&b_key, OpenerLimits::default())
        .open(now, hex("relay-deliver-layer"))
        .unwrap();
    assert_eq!(
        opened,
        Opened::Deliver {
            src: Keypair::from_seed(&NODE_A_SEED).node_identity(),
            message: RELAY_MESSAGE.to_vec(),
            expiry: RELAY_EXPIRY,
            receipt: netmachine::relay::receipt::Receipt {
                id: id16("relay-deliver-layer-id"),
                token: id16("relay-receipt-token"),
            },
        }
    );
    // Receipts (§12G.5), by hand: a layer id is BLAKE3 of the 41-byte header, cut to 16; the
    // token is keyed by the source key; a record is 81 · count · (id · token)….
    for (layer, id) in [
        ("relay-forward-layer", "relay-forward-layer-id"),
        ("relay-deliver-layer", "relay-deliver-layer-id"),
    ] {
        assert_eq!(
            &blake3::hash(&hex(layer)[..41]).as_bytes()[..16],
            &hex(id)[..]
        );
    }
    let mut keyed = blake3::Hasher::new_keyed(&hex("relay-source-key-a-b").try_into().unwrap());
    keyed.update(b"netmachine relay v1 receipt");
    keyed.update(&hex("relay-deliver-layer")[..41]);
    assert_eq!(
        &keyed.finalize().as_bytes()[..16],
        &hex("relay-receipt-token")[..]
    );
    let mut record = vec![0x81, 1];
    record.extend(hex("relay-deliver-layer-id"));
    record.extend(hex("relay-receipt-token"));
    assert_eq!(record, hex("relay-receipt-record"));
    // …which the crate decodes back.
    assert_eq!(
        netmachine::relay::receipt::decode_record(&record).unwrap(),
        vec![netmachine::relay::receipt::Receipt {
            id: id16("relay-deliver-layer-id"),
            token: id16("relay-receipt-token"),
        }]
    );
}

fn id16(name: &str) -> [u8; 16] {
    hex(name).try_into().expect("16 bytes")
}

pub(super) fn print_relay_vectors() {
    println!("### 16.17 Relay layers\n");
    para(
        "Node A (§16.2) sends through relay C (seed `03` × 32) to node B. The deliver layer is \
         sealed to B under the ephemeral secret `11` × 32 with counter 5; the forward layer to C \
         under `22` × 32 with counter 0; both expire at 1,700,000,060,000 ms. The deliver layer \
         carries 26 stand-in bytes (`an EngineMessage wire form`) where a real one carries a \
         signed `EngineMessage` (§5.3). In order: node B's X25519 key (§12G.1), the source key \
         of A and B, the deliver layer's AEAD key, its plaintext (padded to 256 bytes), the \
         deliver layer, and the forward layer that carries it; then the two layers' ids, the \
         token of B's receipt for the deliver layer, and the receipt record B sends C for it \
         (§12G.5):",
    );
    for (name, bytes) in relay_fixture() {
        print_hex_vector(name, &bytes);
    }
}
