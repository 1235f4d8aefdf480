//! The QUIC driver of the Transport, in the wiring layer: non-blocking UDP sockets with
//! segmentation offload (`udp`), the node-key TLS identity and quiche configuration (`tls`), the
//! mio loop that moves bytes between sockets, quiche connections and the sans-IO Transport core
//! (`driver`), and a raw quiche baseline for benchmarks (`raw`). Every quiche call of the crate
//! is in this module.

pub(crate) mod driver;
mod raw;
pub(crate) mod tls;
pub(crate) mod udp;

pub use raw::raw_bulk_transfer;
