//! `netmachine ping`: starts the node a configuration file describes and measures round trips to
//! one of its peers through that peer's built-in `ping` engine.
//!
//! Pings go one after another: each is sent once the previous one was answered, refused or timed
//! out. A ping counts as answered only if the reply echoes its body exactly.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use netmachine::config::Settings;
use netmachine::wire::Protocol;
use netmachine::{Input, NodeError, NodeIdentity};

use crate::signals;

/// Largest ping body: what the ping engine echoes in full (64 KiB).
pub const MAX_SIZE: usize = netmachine::engines::ping::MAX_ECHO_BYTES;

/// The name of the client engine the pings are sent from.
const CLIENT_NAME: &str = "ping-cli";

/// Longest single wait, so a stop signal is noticed promptly.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Options of `netmachine ping`, already checked by the argument parser.
pub struct PingOptions {
    /// The node configuration file.
    pub config: PathBuf,
    /// The peer to ping.
    pub node: NodeIdentity,
    /// Pings to send (at least 1).
    pub count: u32,
    /// How long to wait for each reply.
    pub timeout: Duration,
    /// Bytes in each ping body (at most [`MAX_SIZE`]).
    pub size: usize,
}

/// How one ping ended.
enum Outcome {
    /// Answered with the body sent, after this long.
    Answered(Duration),
    /// Not answered; why, for a person.
    Failed(String),
    /// A stop signal arrived while waiting.
    Interrupted,
}

/// Parses `--count`: a whole number, at least 1.
pub fn parse_count(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a whole number from 1 to {}", u32::MAX)),
    }
}

/// Parses `--size`: bytes, at most [`MAX_SIZE`].
pub fn parse_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_SIZE => Ok(n),
        _ => Err(format!("expected a number of bytes from 0 to {MAX_SIZE}")),
    }
}

/// Parses `--timeout-ms`: milliseconds, at least 1.
pub fn parse_timeout_ms(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1 ms".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of milliseconds".into()),
    }
}

/// Parses `--node`: a node identity in hex.
pub fn parse_node(s: &str) -> Result<NodeIdentity, String> {
    s.parse::<NodeIdentity>().map_err(|_| {
        format!(
            "{s:?} is not a node identity (64 hex characters, as `netmachine keygen` and \
             `netmachine run` print)"
        )
    })
}

/// Runs the pings; returns whether every one was answered.
pub fn run(opts: &PingOptions) -> Result<bool, String> {
    signals::install()?;
    let settings = Settings::load(&opts.config).map_err(|e| e.to_string())?;
    if opts.node == settings.node_identity() {
        return Err(format!(
            "--node {} is the node of {} itself; name one of its peers",
            opts.node,
            opts.config.display()
        ));
    }
    let Some((advert, _)) = settings.peer(opts.node) else {
        let known = if settings.peers.is_empty() {
            "It lists no peers.".to_string()
        } else {
            let ids: Vec<String> = settings
                .peers
                .iter()
                .map(|(a, _)| match &a.name {
                    Some(name) => format!("{} ({name})", a.id),
                    None => a.id.to_string(),
                })
                .collect();
            format!("Its peers are:\n  {}", ids.join("\n  "))
        };
        return Err(format!(
            "--node {} is not a peer in {}; add its advert under [[peers]]. {known}",
            opts.node,
            opts.config.display()
        ));
    };
    let target = advert.id;
    let addrs: Vec<String> = advert
        .addrs
        .iter()
        .map(|(a, _)| a.socket_addr().to_string())
        .collect();

    let node = settings.node_builder().start().map_err(|e| {
        let hint = match e {
            NodeError::Transport(_) => {
                " (ping runs this node itself: is `netmachine run` using the same file?)"
            }
            _ => "",
        };
        format!(
            "cannot start the node of {}: {e}{hint}",
            opts.config.display()
        )
    })?;
    let mut client = node
        .client(CLIENT_NAME)
        .map_err(|e| format!("cannot register the ping client: {e}"))?;
    println!(
        "PING {} ({}): {} pings of {} bytes",
        target.short(),
        if addrs.is_empty() {
            "no address".to_string()
        } else {
            addrs.join(", ")
        },
        opts.count,
        opts.size
    );

    let mut rtts = Vec::with_capacity(opts.count as usize);
    let mut sent = 0u32;
    for seq in 0..opts.count {
        if signals::stop_requested() {
            break;
        }
        let body = ping_body(seq, opts.size);
        let started = Instant::now();
        let id = client.send(target, Protocol::PING, body.clone());
        sent += 1;
        let deadline = started + opts.timeout;
        let outcome = loop {
            if signals::stop_requested() {
                break Outcome::Interrupted;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Outcome::Failed(format!("no reply within {} ms", opts.timeout.as_millis()));
            }
            match client.recv(left.min(WAIT_SLICE)) {
                Some(Input::Message(m)) if m.reply_to() == Some(id) => {
                    let rtt = started.elapsed();
                    if m.body() == body.as_slice() {
                        break Outcome::Answered(rtt);
                    }
                    break Outcome::Failed(format!(
                        "reply from {} does not echo the {} bytes sent ({} bytes)",
                        m.sender().named_node().short(),
                        body.len(),
                        m.body().len()
                    ));
                }
                Some(Input::Undeliverable(u)) if u.id == id => {
                    break Outcome::Failed(format!("undeliverable: {}", u.reason.label()));
                }
                Some(_) => {}
                None if client.is_closed() => {
                    break Outcome::Failed("the local node stopped".into());
                }
                None => {}
            }
        };
        match outcome {
            Outcome::Answered(rtt) => {
                println!(
                    "reply from {}: seq={seq} time={:.3} ms",
                    target.short(),
                    millis(rtt)
                );
                rtts.push(rtt);
            }
            Outcome::Failed(why) => println!("no reply from {}: seq={seq} {why}", target.short()),
            Outcome::Interrupted => {
                println!("interrupted: seq={seq}");
                break;
            }
        }
    }

    println!("{}", summary(target, opts.count, sent, &mut rtts));
    drop(client);
    let report = node.shutdown();
    if !report.hung.is_empty() {
        eprintln!(
            "netmachine: engines did not stop in time: {}",
            report.hung.join(", ")
        );
    }
    Ok(rtts.len() == opts.count as usize)
}

/// A body of `size` bytes: the sequence number (little-endian) repeated, so a reply can be
/// checked byte for byte.
fn ping_body(seq: u32, size: usize) -> Vec<u8> {
    seq.to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The nearest-rank percentile `p` (0 < p ≤ 1) of `sorted`, which must not be empty.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The summary line: counts, then round-trip times if any ping was answered.
fn summary(target: NodeIdentity, count: u32, sent: u32, rtts: &mut [Duration]) -> String {
    let answered = rtts.len();
    let lost = sent as usize - answered;
    let mut line = format!(
        "--- {}: {sent} sent, {answered} answered, {lost} lost",
        target.short()
    );
    if sent < count {
        line.push_str(&format!(" ({} not sent)", count - sent));
    }
    if !rtts.is_empty() {
        rtts.sort_unstable();
        line.push_str(&format!(
            "; rtt min/p50/p99/max = {:.3}/{:.3}/{:.3}/{:.3} ms",
            millis(rtts[0]),
            millis(percentile(rtts, 0.50)),
            millis(percentile(rtts, 0.99)),
            millis(rtts[rtts.len() - 1])
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        assert_eq!(parse_count("3"), Ok(3));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-1").is_err());
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("65537").is_err());
        assert!(parse_timeout_ms("0").is_err());
        assert!(parse_node("abc").unwrap_err().contains("64 hex"));
        let id = NodeIdentity([7; 32]);
        assert_eq!(parse_node(&id.to_string()), Ok(id));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let ms: Vec<Duration> = (1..=5).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 0.5), Duration::from_millis(3));
        assert_eq!(percentile(&ms, 0.99), Duration::from_millis(5));
        let mut one = [Duration::from_millis(2)];
        let line = summary(NodeIdentity([1; 32]), 3, 2, &mut one);
        assert!(
            line.contains("2 sent, 1 answered, 1 lost (1 not sent)"),
            "{line}"
        );
        assert!(line.contains("2.000/2.000/2.000/2.000 ms"), "{line}");
    }

    #[test]
    fn bodies_carry_the_sequence_number() {
        assert_eq!(ping_body(1, 6), vec![1, 0, 0, 0, 1, 0]);
        assert!(ping_body(1, 0).is_empty());
    }
}
