//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod domains;
pub mod topics;

use std::time::{Duration, Instant};

use netmachine::identity::Keypair;
use netmachine::time::wall_clock;
use netmachine::wire::{Destination, EngineMessage, MessageId, Protocol};
use netmachine::Input;

/// Polls `cond` every millisecond until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// A message from engine `key` on node `node` to `dst`, signed, in wire form.
pub fn signed_wire(
    key: &Keypair,
    node: &Keypair,
    dst: Destination,
    id: u64,
    body: &[u8],
) -> Vec<u8> {
    let mut m = unsigned(key, node, dst, id, body);
    let mut wire = Vec::new();
    m.sign_into_wire(key, &mut wire, &mut Vec::new());
    wire
}

/// The same message, unsigned.
pub fn unsigned(
    key: &Keypair,
    node: &Keypair,
    dst: Destination,
    id: u64,
    body: &[u8],
) -> EngineMessage {
    EngineMessage {
        src: key.engine_identity(),
        src_node: node.node_identity(),
        dst,
        id: MessageId(id),
        reply_to: None,
        expiry: Some(wall_clock().after(Duration::from_secs(60))),
        rprefs: None,
        tprefs: None,
        protocol: Protocol(Protocol::APP_BASE + 1),
        body: body.to_vec(),
        sig: None,
    }
}

/// Collects the bodies of messages a client receives within `timeout`.
pub fn drain_bodies(client: &mut netmachine::Client, timeout: Duration) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while let Some(input) = client.recv(deadline.saturating_duration_since(Instant::now())) {
        if let Input::Message(m) = input {
            out.push(m.into_body());
        }
    }
    out
}

/// A UDP port on 127.0.0.1 that is free now, chosen outside the kernel's ephemeral range
/// (32768–60999 by default) and never handed out twice by this process, so a node that binds
/// it a moment later does not race sockets bound to port 0 by other tests.
pub fn free_port() -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 97) * 120;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (base + n % 12_000) as u16;
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        if std::net::UdpSocket::bind(addr).is_ok() {
            return addr;
        }
    }
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A fresh directory named after the test binary's `prefix` and `tag`.
    pub fn new(prefix: &str, tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "netmachine-{prefix}-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// That path as a command-line argument.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
