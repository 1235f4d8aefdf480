//! The QUIC driver of the Transport, in the wiring layer: non-blocking UDP sockets with
//! segmentation offload (`udp`), the node-key TLS identity, quiche configuration and TCP TLS
//! contexts (`tls`), TLS-over-TCP connections (`tcp`), the mio loop that moves bytes between
//! sockets, connections and the sans-IO Transport core (`driver`), and a raw quiche baseline
//! for benchmarks (`raw`). Every quiche and BoringSSL call of the crate is in this module.

pub(crate) mod driver;
mod raw;
mod tcp;
pub(crate) mod tls;
pub(crate) mod udp;

pub use raw::raw_bulk_transfer;

use crate::identity::Keypair;

/// The self-signed X.509 certificate (DER) that a node with key `key` presents in TLS
/// (docs/wire.md §7.3). It depends on the key alone — fixed name, validity and extensions, a
/// serial number derived from the public key, a deterministic Ed25519 signature — so the same key
/// always gives the same bytes. An error (rcgen refusing the key) is described in words.
pub fn node_certificate_der(key: &Keypair) -> Result<Vec<u8>, String> {
    tls::certificate_der(key).map_err(|e| e.to_string())
}
