//! A slow consumer engine on a node flooded over QUIC: the mailbox-full policy drops (counted)
//! instead of queueing without bound, so resident memory stops growing with the volume sent.
//! (Its own test binary, so the process's RSS is this test's alone.)

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netmachine::identity::Keypair;
use netmachine::wire::{NodeAdvert, Protocol};
use netmachine::{Context, DropReason, Engine, EngineSpec, Input, NodeBuilder};

use common::wait_until;

/// Handles one message per millisecond.
struct Slow(Arc<AtomicU64>);

impl Engine for Slow {
    fn handle(&mut self, _ctx: &mut Context, input: Input) {
        if let Input::Message(_) = input {
            self.0.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Current resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_slow_consumer_keeps_memory_bounded() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (pa, pb) = (common::free_port(), common::free_port());
    let handled = Arc::new(AtomicU64::new(0));
    let b = NodeBuilder::new(kb.clone())
        .listen(pb)
        .peer(NodeAdvert::for_listen(&ka, &[pa], None))
        .engine_with(
            EngineSpec {
                mailbox_depth: 64,
                ..EngineSpec::named("slow")
            },
            Slow(Arc::clone(&handled)),
        )
        .start()
        .unwrap();
    let slow = b.engine_identity("slow").unwrap();
    let a = NodeBuilder::new(ka)
        .listen(pa)
        .peer(NodeAdvert::for_listen(&kb, &[pb], None))
        .engine_location(slow, b.identity())
        .start()
        .unwrap();
    let mut client = a.client("flood").unwrap();
    let opts = netmachine::SendOptions {
        notify_undeliverable: false,
        ..Default::default()
    };
    let bs = b.stats_handle();
    let mut flood = |total: u64| {
        let start = handled.load(Ordering::Relaxed) + bs.drops(DropReason::MailboxFull);
        for i in 0..total {
            client.send_with(
                slow,
                Protocol(Protocol::APP_BASE + 3),
                vec![i as u8; 1024],
                opts,
            );
        }
        // Everything sent is either handled or dropped at the full mailbox (or still in it).
        wait_until(Duration::from_secs(120), || {
            handled.load(Ordering::Relaxed) + bs.drops(DropReason::MailboxFull) + 64
                >= start + total
        })
    };
    assert!(flood(40_000), "{}\n{}", a.status(), b.status());
    let after_first = rss_kib();
    // Three times the volume again: if anything queued without bound, memory would follow.
    assert!(flood(120_000), "{}\n{}", a.status(), b.status());
    let after_second = rss_kib();
    let s = b.stats();
    eprintln!(
        "handled {}, mailbox_full {}, rss after 40k: {after_first} KiB, after 160k: {after_second} KiB; {s}",
        handled.load(Ordering::Relaxed),
        s.drops(DropReason::MailboxFull),
    );
    assert!(
        s.drops(DropReason::MailboxFull) > 100_000,
        "the policy dropped, visibly"
    );
    assert_eq!(s.total_drops(), s.drops(DropReason::MailboxFull), "{s}");
    assert!(
        after_second < after_first + 48 * 1024,
        "RSS kept growing: {after_first} -> {after_second} KiB"
    );
}
