//! The `netmachine` binary driven as a person would: keys, configuration files, adverts, a node
//! run in one process and pinged from another, and a clean stop on SIGTERM.
//!
//! `ping_reaches_a_node_run_in_another_process` needs the QUIC Transport; the other tests only
//! need configuration loading and the command line.

mod common;

use common::TempDir;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netmachine::wire::{DomainAdvert, EngineAdvert, NodeAdvert};

const BIN: &str = env!("CARGO_BIN_EXE_netmachine");

/// A child process that is killed if the test ends before it exits.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

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

/// Runs `keygen --out <dir>/<name>` and returns the printed identity, checking the output and
/// the file's mode.
fn keygen(dir: &TempDir, name: &str) -> String {
    let path = dir.path(name);
    let out = netmachine(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    let id = lines[0];
    assert_eq!(id.len(), 64, "{id:?}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{id:?}"
    );
    assert_eq!(stdout, format!("{id}\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    id.to_string()
}

fn write_config(path: &Path, key_file: &str, port: u16, peers: &[&str], extra: &str) {
    let mut toml = format!("key_file = \"{key_file}\"\nlisten = [\"127.0.0.1:{port}\"]\n{extra}");
    for advert in peers {
        toml.push_str(&format!("\n[[peers]]\nadvert = \"{advert}\"\n"));
    }
    std::fs::write(path, toml).unwrap();
}

/// Runs `advert --config <path>` and returns its single stdout line.
fn advert(path: &Path) -> String {
    let out = netmachine(&["advert", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    lines[0].to_string()
}

/// Two nodes A and B in `dir`, each listing the other as a peer: (config A, config B, id B).
fn two_nodes(dir: &TempDir) -> (PathBuf, PathBuf, String) {
    let _id_a = keygen(dir, "a.key");
    let id_b = keygen(dir, "b.key");
    let (conf_a, conf_b) = (dir.path("a.toml"), dir.path("b.toml"));
    let (port_a, port_b) = (free_port(), free_port());
    write_config(&conf_a, "a.key", port_a, &[], "name = \"a\"\n");
    write_config(&conf_b, "b.key", port_b, &[], "name = \"b\"\n");
    let (advert_a, advert_b) = (advert(&conf_a), advert(&conf_b));
    write_config(&conf_a, "a.key", port_a, &[&advert_b], "name = \"a\"\n");
    write_config(&conf_b, "b.key", port_b, &[&advert_a], "name = \"b\"\n");
    (conf_a, conf_b, id_b)
}

#[test]
fn keygen_writes_a_private_key_and_prints_its_identity() {
    let dir = TempDir::new("cli", "keygen");
    let id = keygen(&dir, "k.key");
    // Never overwrites.
    let out = netmachine(&["keygen", "--out", dir.path("k.key").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let key = netmachine::Keypair::read_file(&dir.path("k.key")).unwrap();
    assert_eq!(key.node_identity().to_string(), id);
}

#[test]
fn advert_prints_one_verifiable_line() {
    let dir = TempDir::new("cli", "advert");
    let id = keygen(&dir, "n.key");
    let conf = dir.path("n.toml");
    write_config(&conf, "n.key", 7001, &[], "name = \"alpha\"\n");
    let line = advert(&conf);
    let parsed = NodeAdvert::from_line(&line).expect("advert line verifies");
    assert_eq!(parsed.id.to_string(), id);
    assert_eq!(parsed.name.as_deref(), Some("alpha"));
    assert_eq!(
        parsed.addrs[0].0.socket_addr(),
        "127.0.0.1:7001".parse().unwrap()
    );
    // The line is accepted as a peer by another node's configuration.
    keygen(&dir, "m.key");
    let other = dir.path("m.toml");
    write_config(&other, "m.key", 7002, &[&line], "");
    advert(&other);

    // An engine's advert, for other nodes' [[engines]] tables.
    let out = netmachine(&[
        "advert",
        "--config",
        conf.to_str().unwrap(),
        "--engine",
        "echo",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let engine_line = text(&out.stdout).trim().to_string();
    let engine = EngineAdvert::from_line(&engine_line).expect("engine advert line verifies");
    assert_eq!(engine.node.to_string(), id);
    assert_eq!(engine.name, "echo");
    write_config(
        &other,
        "m.key",
        7002,
        &[&line],
        &format!("\n[[engines]]\nadvert = \"{engine_line}\"\n"),
    );
    advert(&other);
}

#[test]
fn run_refuses_an_unknown_config_key() {
    let dir = TempDir::new("cli", "unknown-key");
    keygen(&dir, "n.key");
    let conf = dir.path("n.toml");
    write_config(&conf, "n.key", free_port(), &[], "listen_backlog = 5\n");
    let out = netmachine(&["run", "--config", conf.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("listen_backlog"), "{stderr}");
    assert!(stderr.contains(conf.to_str().unwrap()), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn ping_refuses_a_node_that_is_not_a_peer() {
    let dir = TempDir::new("cli", "not-a-peer");
    let (conf_a, _conf_b, _id_b) = two_nodes(&dir);
    let stranger = "ab".repeat(32);
    let out = netmachine(&[
        "ping",
        "--config",
        conf_a.to_str().unwrap(),
        "--node",
        &stranger,
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("not a peer") && stderr.contains(&stranger),
        "{stderr}"
    );
    let out = netmachine(&[
        "ping",
        "--config",
        conf_a.to_str().unwrap(),
        "--node",
        "xyz",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("64 hex"));
}

/// Needs the QUIC Transport.
#[test]
fn ping_reaches_a_node_run_in_another_process() {
    let dir = TempDir::new("cli", "ping");
    let (conf_a, conf_b, id_b) = two_nodes(&dir);

    let mut child = Command::new(BIN)
        .args(["run", "--config", conf_b.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut b = ChildGuard(child);
    let stderr_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("node B printed its listening line");
    assert!(
        first.starts_with(&format!("node {id_b} listening on 127.0.0.1:")),
        "{first}"
    );

    let out = netmachine(&[
        "ping",
        "--config",
        conf_a.to_str().unwrap(),
        "--node",
        &id_b,
        "--count",
        "5",
    ]);
    let ping_out = text(&out.stdout);
    let replies = ping_out
        .lines()
        .filter(|l| l.starts_with("reply from "))
        .count();
    assert!(
        out.status.success() && replies == 5,
        "ping failed ({:?}):\n{ping_out}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        ping_out.contains("5 sent, 5 answered, 0 lost"),
        "{ping_out}"
    );

    // SIGTERM stops B cleanly within 10 s.
    let pid = b.0.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = b.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "node B did not exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let b_log = stderr_thread.join().unwrap_or_default();
    assert!(status.success(), "node B exited with {status:?}:\n{b_log}");
}

/// Runs `domain keygen --out <dir>/<name>` and returns the printed domain identity.
fn domain_keygen(dir: &TempDir, name: &str) -> String {
    let out = netmachine(&["domain", "keygen", "--out", &dir.arg(name)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 64, "{id:?}");
    id
}

/// Runs `domain advert` with `args` after the key, returning its single stdout line.
fn domain_advert_line(dir: &TempDir, args: &[&str]) -> String {
    let key = dir.arg("domain.key");
    let mut all = vec!["domain", "advert", "--key", &key];
    all.extend_from_slice(args);
    let out = netmachine(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    stdout.trim().to_string()
}

#[test]
fn domain_keygen_and_advert_make_a_line_the_configuration_accepts() {
    let dir = TempDir::new("cli", "domain-advert");
    let domain = domain_keygen(&dir, "domain.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path("domain.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let out = netmachine(&["domain", "keygen", "--out", &dir.arg("domain.key")]);
    assert!(!out.status.success(), "never overwrites");
    let node = keygen(&dir, "n.key");
    let other = "ab".repeat(32);
    let line = domain_advert_line(
        &dir,
        &[
            "--introducer",
            &format!("{node}@127.0.0.1:7001"),
            "--auth",
            "allow-list",
            "--allow",
            &other,
            "--external",
            &node,
            "--max-members",
            "10",
            "--version",
            "3",
        ],
    );
    let parsed = DomainAdvert::from_line(&line).expect("the line verifies");
    assert_eq!(parsed.id.to_string(), domain);
    assert_eq!(parsed.introducers[0].node.to_string(), node);
    assert_eq!(
        parsed.introducers[0].addrs[0].socket_addr(),
        "127.0.0.1:7001".parse().unwrap()
    );
    assert_eq!(parsed.auth.label(), "allow-list");
    assert_eq!((parsed.max_members, parsed.version), (10, 3));

    // A PSK domain's line in a [[domains]] table, with the key in a file only its owner reads.
    let psk_line = domain_advert_line(&dir, &["--introducer", &node, "--auth", "psk"]);
    std::fs::write(dir.path("domain.psk"), "0123456789abcdef0123456789abcdef\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path("domain.psk"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let conf = dir.path("n.toml");
    write_config(
        &conf,
        "n.key",
        7001,
        &[],
        &format!("\n[[domains]]\nadvert = \"{psk_line}\"\npsk_file = \"domain.psk\"\n"),
    );
    advert(&conf);

    // Refusals: --allow without an allow-list (status 1), a malformed introducer (status 2).
    let key = dir.arg("domain.key");
    let out = netmachine(&[
        "domain",
        "advert",
        "--key",
        &key,
        "--introducer",
        &node,
        "--auth",
        "none",
        "--allow",
        &other,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--allow"),
        "{}",
        text(&out.stderr)
    );
    let out = netmachine(&[
        "domain",
        "advert",
        "--key",
        &key,
        "--introducer",
        &format!("{node}@nowhere"),
        "--auth",
        "none",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// Needs the QUIC Transport (it binds a port, with no peer).
#[test]
fn domain_members_lists_an_introducer_and_refuses_an_unknown_domain() {
    let dir = TempDir::new("cli", "domain-members");
    domain_keygen(&dir, "domain.key");
    let node = keygen(&dir, "n.key");
    let line = domain_advert_line(&dir, &["--introducer", &node, "--auth", "none"]);
    let domain = DomainAdvert::from_line(&line).unwrap().id.to_string();
    let conf = dir.path("n.toml");
    write_config(
        &conf,
        "n.key",
        free_port(),
        &[],
        &format!("\n[[domains]]\nadvert = \"{line}\"\n"),
    );
    let c = conf.to_str().unwrap();
    let out = netmachine(&[
        "domain", "members", "--config", c, "--domain", &domain, "--json", "--wait-s", "5",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("\"member\":true")
            && stdout.contains("\"count\":1")
            && stdout.contains(&format!("\"node\":\"{node}\",\"epoch\":0"))
            && stdout.contains("\"introducer\":true"),
        "{stdout}"
    );
    let out = netmachine(&["domain", "members", "--config", c, "--domain", &domain]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        table.contains("1 members") && table.contains("self"),
        "{table}"
    );
    let out = netmachine(&[
        "domain",
        "members",
        "--config",
        c,
        "--domain",
        &"cd".repeat(32),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not in the [[domains]]"),
        "{}",
        text(&out.stderr)
    );
}

/// Needs the QUIC Transport: an introducer run in another process, a joiner asking it.
#[test]
fn domain_join_is_answered_by_an_introducer_run_in_another_process() {
    let dir = TempDir::new("cli", "domain-join");
    let (conf_a, conf_b, _id_b) = two_nodes(&dir);
    domain_keygen(&dir, "domain.key");
    let id_a = netmachine::Keypair::read_file(&dir.path("a.key"))
        .unwrap()
        .node_identity()
        .to_string();
    let line = domain_advert_line(&dir, &["--introducer", &id_a, "--auth", "none"]);
    let domain = DomainAdvert::from_line(&line).unwrap().id.to_string();
    for conf in [&conf_a, &conf_b] {
        let mut text = std::fs::read_to_string(conf).unwrap();
        text.push_str(&format!("\n[[domains]]\nadvert = \"{line}\"\n"));
        std::fs::write(conf, text).unwrap();
    }
    let child = Command::new(BIN)
        .args(["run", "--config", conf_a.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut a = ChildGuard(child);
    let mut lines = BufReader::new(a.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("listening on"), "{first}");
    let out = netmachine(&[
        "domain",
        "join",
        "--config",
        conf_b.to_str().unwrap(),
        "--domain",
        &domain,
        "--timeout-s",
        "15",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("accepted into domain") && stdout.contains(&id_a),
        "{stdout}{}",
        text(&out.stderr)
    );
    // The introducer printed the change: two members now.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(l)) if l.contains("member, 2 members") => {
                seen = true;
                break;
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    assert!(seen, "the introducer did not print the new membership");
}
