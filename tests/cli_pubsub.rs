//! `netmachine publish` and `netmachine subscribe` driven through the binary, one node per
//! process: a publisher and a subscriber that know only a relay node, so every advert,
//! subscription, event and acknowledgement passes through the relay.
//!
//! `bad_options_exit_2` only needs the command line; the other tests need the QUIC Transport.

mod common;

use common::TempDir;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netmachine");

/// Events published in the relay test.
const EVENTS: u64 = 20;

/// What `subscribe` logs (at `info`) once a parent has confirmed that it left the topic.
const LEFT: &str = "a parent confirmed the unsubscription";

fn netmachine(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn free_port() -> u16 {
    common::free_port().port()
}

/// Runs `keygen --out <dir>/<name>` and returns the printed identity.
fn keygen(dir: &TempDir, name: &str) -> String {
    let out = netmachine(&["keygen", "--out", &dir.arg(name)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 64, "{id:?}");
    id
}

fn write_config(path: &Path, key_file: &str, port: u16, peers: &[&str]) {
    let mut toml = format!("key_file = \"{key_file}\"\nlisten = [\"127.0.0.1:{port}\"]\n");
    for advert in peers {
        toml.push_str(&format!("\n[[peers]]\nadvert = \"{advert}\"\n"));
    }
    std::fs::write(path, toml).unwrap();
}

/// Runs `advert --config <path>` and returns its single stdout line.
fn advert(path: &Path) -> String {
    let out = netmachine(&["advert", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// A running `netmachine` process: its stdout line by line, its stderr collected; killed if the
/// test ends before it exits.
struct Proc {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Proc {
    fn spawn(name: &'static str, args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name,
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next stdout line, waiting until `deadline`.
    fn line(&mut self, deadline: Instant) -> String {
        match self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) => line,
            Err(e) => {
                let name = self.name;
                panic!("{name}: no line ({e:?}); stderr:\n{}", self.log())
            }
        }
    }

    /// Every stdout line still to come, until the process closes its stdout.
    fn rest(&mut self) -> Vec<String> {
        self.lines.iter().collect()
    }

    /// Waits for the process to exit, at most until `deadline`.
    fn wait(&mut self, deadline: Instant) -> ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let name = self.name;
                panic!("{name}: still running; stderr:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its stderr (complete once it has exited or been killed).
    fn log(&mut self) -> String {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    fn sigterm(&self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: sending a signal to our own child process, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The sequence number at the start of an event line's hex (8 bytes, little-endian).
fn event_seq(line: &str) -> u64 {
    let hex = line
        .rsplit(' ')
        .next()
        .unwrap_or_else(|| panic!("no hex in {line:?}"));
    assert!(hex.len() >= 16, "{line:?}");
    let bytes: Vec<u8> = (0..8)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    u64::from_le_bytes(bytes.try_into().unwrap())
}

/// Needs the QUIC Transport.
#[test]
fn publish_reaches_a_subscriber_through_a_relay() {
    let dir = TempDir::new("cli-pubsub", "relay");
    let id_b = keygen(&dir, "b.key");
    let id_p = keygen(&dir, "p.key");
    let id_s = keygen(&dir, "s.key");
    let topic = keygen(&dir, "topic.key");
    let (port_b, port_p, port_s) = (free_port(), free_port(), free_port());
    // The relay lists no peers: P and S dial it, and it answers over their connections.
    write_config(&dir.path("b.toml"), "b.key", port_b, &[]);
    let advert_b = advert(&dir.path("b.toml"));
    write_config(&dir.path("p.toml"), "p.key", port_p, &[&advert_b]);
    write_config(&dir.path("s.toml"), "s.key", port_s, &[&advert_b]);

    let mut b = Proc::spawn("relay", &["run", "--config", &dir.arg("b.toml")]);
    let first = b.line(Instant::now() + Duration::from_secs(10));
    assert!(
        first.starts_with(&format!("node {id_b} listening on 127.0.0.1:")),
        "{first}"
    );

    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let count = EVENTS.to_string();
    let mut s = Proc::spawn(
        "subscriber",
        &[
            "subscribe",
            "--config",
            &dir.arg("s.toml"),
            "--topic",
            &topic,
            "--count",
            &count,
            "--timeout-s",
            "60",
        ],
    );
    // The subscription waits for the topic's advert, which only the publisher can send.
    let mut p = Proc::spawn(
        "publisher",
        &[
            "publish",
            "--config",
            &dir.arg("p.toml"),
            "--topic-key",
            &dir.arg("topic.key"),
            "--count",
            &count,
            "--wait-subscribers",
            "1",
        ],
    );

    let subscribed = s.line(deadline);
    assert_eq!(
        subscribed,
        format!("subscribed to {topic} on node {id_s}"),
        "subscriber's first line"
    );
    for i in 0..EVENTS {
        let line = s.line(deadline);
        let prefix = format!("event {} from ", i + 1);
        assert!(line.starts_with(&prefix), "{line:?}");
        assert!(
            line.contains(&format!(" via {}: 64 bytes ", &id_b[..8])),
            "{line:?}"
        );
        assert_eq!(event_seq(&line), i, "{line:?}");
    }

    let s_status = s.wait(deadline);
    let s_rest = s.rest();
    let s_log = s.log();
    assert!(
        s_status.success(),
        "subscriber exited with {s_status:?}:\n{s_log}"
    );
    assert!(
        s_rest.is_empty(),
        "subscriber printed more than {EVENTS} events: {s_rest:?}"
    );
    // On exit it left the topic: its final EventAck and Unsubscribe reached the relay, which
    // answered UnsubscribeAck before the subscriber shut its node down.
    assert!(s_log.contains(LEFT), "subscriber did not leave:\n{s_log}");

    let p_status = p.wait(deadline);
    let p_out = p.rest();
    let p_log = p.log();
    assert!(
        p_status.success(),
        "publisher exited with {p_status:?}:\n{}\n{p_log}",
        p_out.join("\n")
    );
    assert_eq!(
        p_out.first().map(String::as_str),
        Some(format!("advertised {topic} from node {id_p}").as_str()),
        "{p_out:?}"
    );
    assert!(
        p_out.contains(&"1 subscribing peers attached".to_string()),
        "{p_out:?}"
    );
    assert!(
        p_out.contains(&format!("published {EVENTS} events of 64 bytes")),
        "{p_out:?}"
    );
    // The relay acknowledges what it forwarded, unless the subscriber's exit makes it unsubscribe
    // first: then it no longer counts, and the publisher says so.
    let acked = format!("all 1 subscribing peers acknowledged {EVENTS} events");
    let left = [
        format!("peer {id_b} left after acknowledging "),
        format!("all 0 subscribing peers acknowledged {EVENTS} events (1 left before acknowledging all)"),
    ];
    let last = p_out.last().cloned().unwrap_or_default();
    let before = p_out
        .len()
        .checked_sub(2)
        .map(|i| p_out[i].clone())
        .unwrap_or_default();
    assert!(
        last == acked || (before.starts_with(&left[0]) && last == left[1]),
        "{p_out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));

    // SIGTERM stops the relay cleanly.
    b.sigterm();
    let b_status = b.wait(Instant::now() + Duration::from_secs(10));
    let b_log = b.log();
    assert!(
        b_status.success(),
        "relay exited with {b_status:?}:\n{b_log}"
    );
}

/// Needs the QUIC Transport.
#[test]
fn publish_waits_until_a_subscribing_peer_acknowledged_everything() {
    let dir = TempDir::new("cli-pubsub", "acks");
    keygen(&dir, "b.key");
    keygen(&dir, "p.key");
    keygen(&dir, "s.key");
    let topic = keygen(&dir, "topic.key");
    let (port_b, port_p, port_s) = (free_port(), free_port(), free_port());
    write_config(&dir.path("b.toml"), "b.key", port_b, &[]);
    let advert_b = advert(&dir.path("b.toml"));
    write_config(&dir.path("p.toml"), "p.key", port_p, &[&advert_b]);
    write_config(&dir.path("s.toml"), "s.key", port_s, &[&advert_b]);

    let mut b = Proc::spawn("relay", &["run", "--config", &dir.arg("b.toml")]);
    b.line(Instant::now() + Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(60);
    // Without --count the subscriber stays until SIGTERM, so the relay stays subscribed.
    let mut s = Proc::spawn(
        "subscriber",
        &[
            "subscribe",
            "--config",
            &dir.arg("s.toml"),
            "--topic",
            &topic,
        ],
    );
    // Large events: the publisher has to pace itself to the relay's acknowledgements.
    let (count, size) = (300u64, 100_000usize);
    let mut p = Proc::spawn(
        "publisher",
        &[
            "publish",
            "--config",
            &dir.arg("p.toml"),
            "--topic-key",
            &dir.arg("topic.key"),
            "--count",
            &count.to_string(),
            "--size",
            &size.to_string(),
            "--timeout-s",
            "60",
        ],
    );
    assert!(s.line(deadline).starts_with("subscribed to "));
    for i in 0..count {
        let line = s.line(deadline);
        assert!(
            line.starts_with(&format!("event {} from ", i + 1))
                && line.contains(&format!(": {size} bytes ")),
            "{line:?}"
        );
        assert_eq!(event_seq(&line), i, "{line:?}");
    }
    let p_status = p.wait(deadline);
    let p_out = p.rest();
    let p_log = p.log();
    assert!(
        p_status.success(),
        "publisher exited with {p_status:?}:\n{}\n{p_log}",
        p_out.join("\n")
    );
    assert_eq!(
        p_out.last().cloned().unwrap_or_default(),
        format!("all 1 subscribing peers acknowledged {count} events"),
        "{p_out:?}"
    );

    // Nothing more arrives; SIGTERM ends the subscriber (status 0), then the relay.
    s.sigterm();
    let s_status = s.wait(Instant::now() + Duration::from_secs(10));
    let s_rest = s.rest();
    let s_log = s.log();
    assert!(
        s_status.success(),
        "subscriber exited with {s_status:?}:\n{s_log}"
    );
    assert!(s_rest.is_empty(), "{s_rest:?}");
    assert!(s_log.contains(LEFT), "subscriber did not leave:\n{s_log}");
    b.sigterm();
    let b_status = b.wait(Instant::now() + Duration::from_secs(10));
    let b_log = b.log();
    assert!(
        b_status.success(),
        "relay exited with {b_status:?}:\n{b_log}"
    );
}

#[test]
fn bad_options_exit_2() {
    let dir = TempDir::new("cli-pubsub", "options");
    let conf = dir.arg("absent.toml");
    let key = dir.arg("absent.key");
    let topic = "ab".repeat(32);
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "publish",
                "--config",
                &conf,
                "--topic-key",
                &key,
                "--size",
                "0",
            ],
            "--size",
        ),
        (
            &[
                "publish",
                "--config",
                &conf,
                "--topic-key",
                &key,
                "--size",
                "1048577",
            ],
            "1 MiB",
        ),
        (
            &[
                "publish",
                "--config",
                &conf,
                "--topic-key",
                &key,
                "--count",
                "0",
            ],
            "--count",
        ),
        (
            &[
                "publish",
                "--config",
                &conf,
                "--topic-key",
                &key,
                "--wait-subscribers",
                "x",
            ],
            "--wait-subscribers",
        ),
        (
            &["subscribe", "--config", &conf, "--topic", "xyz"],
            "64 hex",
        ),
        (
            &["subscribe", "--config", &conf, "--topic", &topic[..62]],
            "64 hex",
        ),
        (
            &[
                "subscribe",
                "--config",
                &conf,
                "--topic",
                &topic,
                "--timeout-s",
                "5",
            ],
            "--count",
        ),
    ];
    for (args, expected) in cases {
        let out = netmachine(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
    // Well-formed options naming a missing file fail with status 1, saying which file.
    let out = netmachine(&["publish", "--config", &conf, "--topic-key", &key]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("absent.key"), "{stderr}");
}
