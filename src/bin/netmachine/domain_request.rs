//! `netmachine domain request`: start the node a configuration file describes, let its
//! inter-domain overlay form, send one request to some member of a domain (which this node
//! need not know anything about but its identity) through DomainRouting, and print which member
//! answered, after how many hops, and the answer.
//!
//! Like `domain join`, it runs the node itself, so the configuration must not be in use by a
//! running `netmachine run`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use netmachine::config::Settings;
use netmachine::domain::DomainInfo;
use netmachine::node::DomainAnswer;
use netmachine::{DomainIdentity, Node, NodeError, NodeIdentity, Protocol};

use crate::domain_cmd::{parse_domain, parse_seconds};
use crate::signals;

/// Options of `netmachine domain request`.
#[derive(Args)]
pub struct RequestArgs {
    /// The node's configuration file (TOML); it must not be running.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The domain (its identity); this node need not be a member nor know any member.
    #[arg(long, value_name = "DOMAIN_ID", value_parser = parse_domain)]
    pub domain: DomainIdentity,
    /// What the member is asked: `probe` (its DomainRouting engine answers `member`),
    /// `domain` (its Domain engine; body `info` gives the member count and advert version) or
    /// a protocol number served by an engine on the member.
    #[arg(long, value_name = "P", default_value = "probe", value_parser = parse_protocol)]
    pub protocol: RequestProtocol,
    /// The request body, as text (default: `probe` for `probe`, `info` for `domain`, empty
    /// otherwise).
    #[arg(long, value_name = "B")]
    pub body: Option<String>,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
    /// Give up after this many seconds: the overlay forming (a fresh node knows only its
    /// configured peers) and the request, retried while no member answers.
    #[arg(long = "timeout-s", value_name = "S", default_value_t = 30,
          value_parser = parse_seconds)]
    pub timeout_s: u64,
}

/// The protocol a request is for, as `--protocol` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestProtocol {
    /// `probe`: `Protocol::DOMAIN_ROUTING`, answered by the member's DomainRouting engine.
    Probe,
    /// `domain`: `Protocol::DOMAIN`, answered by the member's Domain engine.
    Domain,
    /// A protocol number.
    Number(u32),
}

impl RequestProtocol {
    /// The protocol on the wire.
    pub fn protocol(self) -> Protocol {
        match self {
            RequestProtocol::Probe => Protocol::DOMAIN_ROUTING,
            RequestProtocol::Domain => Protocol::DOMAIN,
            RequestProtocol::Number(n) => Protocol(n),
        }
    }

    /// The body sent when `--body` is not given.
    pub fn default_body(self) -> &'static [u8] {
        match self {
            RequestProtocol::Probe => b"probe",
            RequestProtocol::Domain => netmachine::domain::INFO_REQUEST,
            RequestProtocol::Number(_) => b"",
        }
    }
}

/// Parses `--protocol`: `probe`, `domain` or a number.
pub fn parse_protocol(s: &str) -> Result<RequestProtocol, String> {
    match s {
        "probe" => Ok(RequestProtocol::Probe),
        "domain" => Ok(RequestProtocol::Domain),
        _ => s
            .parse::<u32>()
            .map(|n| match Protocol(n) {
                p if p == Protocol::DOMAIN_ROUTING => RequestProtocol::Probe,
                p if p == Protocol::DOMAIN => RequestProtocol::Domain,
                _ => RequestProtocol::Number(n),
            })
            .map_err(|_| format!("{s:?} is not `probe`, `domain` or a protocol number")),
    }
}

/// What one `domain request` came to.
pub struct Outcome {
    /// The domain asked.
    pub domain: DomainIdentity,
    /// This node.
    pub node: NodeIdentity,
    /// The protocol asked.
    pub protocol: RequestProtocol,
    /// The last answer (the successful one, or the last failure).
    pub answer: DomainAnswer,
    /// Requests sent.
    pub attempts: u32,
    /// From the start of the node to the answer.
    pub elapsed: Duration,
}

/// Pause between attempts while no member answers.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Runs `domain request`; `Ok(false)` if no member answered.
pub fn run(args: &RequestArgs) -> Result<bool, String> {
    let outcome = request(args)?;
    if args.json {
        println!("{}", outcome_json(&outcome));
    } else {
        println!("{}", outcome_line(&outcome));
    }
    Ok(outcome.answer.result.is_ok())
}

fn start(config: &Path) -> Result<Node, String> {
    signals::install()?;
    let settings = Settings::load(config).map_err(|e| e.to_string())?;
    if settings.interdomain.is_none() {
        return Err(format!(
            "{} opts out of the inter-domain protocols (`[interdomain] enabled = false`): \
             this node runs no DomainRouting engine and cannot send domain requests",
            config.display()
        ));
    }
    settings.node_builder().start().map_err(|e| {
        let hint = match e {
            NodeError::Transport(_) => {
                " (this command runs the node itself: is `netmachine run` using the same file?)"
            }
            _ => "",
        };
        format!("cannot start the node of {}: {e}{hint}", config.display())
    })
}

fn request(args: &RequestArgs) -> Result<Outcome, String> {
    let begin = Instant::now();
    let deadline = begin + Duration::from_secs(args.timeout_s);
    let node = start(&args.config)?;
    let body = args.body.as_ref().map_or_else(
        || args.protocol.default_body().to_vec(),
        |b| b.clone().into_bytes(),
    );
    // A fresh node knows its configured peers only: wait for a first inter-domain neighbour
    // (its descriptor learnt) or a route to the domain before the first attempt.
    let mut attempts = 0;
    let board = node.neighbour_board().cloned();
    while Instant::now() < deadline && !signals::stop_requested() {
        let ready = board.as_ref().is_some_and(|b| !b.neighbours().is_empty())
            || node.domain_directory().member_here(&args.domain);
        if ready {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let answer =
            match node.request_domain(args.domain, args.protocol.protocol(), body.clone(), None) {
                Ok(a) => a,
                Err(NodeError::NoAnswer(why)) => DomainAnswer {
                    result: Err(why.to_string()),
                    member: None,
                    hops: 0,
                    advert: None,
                },
                Err(e) => {
                    node.shutdown();
                    return Err(format!("cannot ask the DomainRouting engine: {e}"));
                }
            };
        // Retry only a failure to reach a member while time remains: a member's own refusal
        // (it answered) is final.
        let retry = answer.result.is_err()
            && answer.member.is_none()
            && left > RETRY_PAUSE
            && !signals::stop_requested();
        if !retry {
            break answer;
        }
        log::info!(
            "attempt {attempts}: {}; retrying",
            answer.result.as_ref().err().map_or("", |s| s.as_str())
        );
        std::thread::sleep(RETRY_PAUSE);
        if Instant::now() >= deadline {
            break answer;
        }
    };
    let outcome = Outcome {
        domain: args.domain,
        node: node.identity(),
        protocol: args.protocol,
        answer,
        attempts,
        elapsed: begin.elapsed(),
    };
    let report = node.shutdown();
    if !report.hung.is_empty() {
        eprintln!(
            "netmachine: engines did not stop in time: {}",
            report.hung.join(", ")
        );
    }
    Ok(outcome)
}

/// The answer body for a person: a `DomainInfo` spelt out, text as text, anything else hex.
pub fn describe_body(protocol: RequestProtocol, body: &[u8]) -> String {
    if protocol == RequestProtocol::Domain {
        if let Ok(i) = DomainInfo::from_bytes(body) {
            return format!(
                "members={} advert_version={} ops={}",
                i.members, i.advert_version, i.ops
            );
        }
    }
    match std::str::from_utf8(body) {
        Ok(t) if !t.chars().any(char::is_control) => format!("{t:?}"),
        _ => format!("0x{}", hex(body)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The line a person reads.
pub fn outcome_line(o: &Outcome) -> String {
    let a = &o.answer;
    let hops = |h: u32| format!("{h} hop{}", if h == 1 { "" } else { "s" });
    match (&a.result, a.member) {
        (Ok(body), Some(m)) => format!(
            "member {m} of domain {} answered after {} ({} ms, {} attempt{}): {}",
            o.domain.short(),
            hops(a.hops),
            o.elapsed.as_millis(),
            o.attempts,
            if o.attempts == 1 { "" } else { "s" },
            describe_body(o.protocol, body)
        ),
        (Ok(body), None) => format!(
            "domain {} answered after {}: {}",
            o.domain.short(),
            hops(a.hops),
            describe_body(o.protocol, body)
        ),
        (Err(why), Some(m)) => format!(
            "member {m} of domain {} refused after {}: {why}",
            o.domain.short(),
            hops(a.hops)
        ),
        (Err(why), None) => format!(
            "no member of domain {} answered ({} attempt{}, {} ms): {why}",
            o.domain.short(),
            o.attempts,
            if o.attempts == 1 { "" } else { "s" },
            o.elapsed.as_millis()
        ),
    }
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The outcome as one JSON object: `ok`, `member` (or null), `hops`, `answer` (text or
/// null), `answer_hex`, `error` (or null), `attempts`, `elapsed_ms`.
pub fn outcome_json(o: &Outcome) -> String {
    let a = &o.answer;
    let member = a
        .member
        .map_or("null".to_string(), |m| json_str(&m.to_string()));
    let (answer, answer_hex, error) = match &a.result {
        Ok(body) => (
            json_str(&describe_body(o.protocol, body)),
            json_str(&hex(body)),
            "null".to_string(),
        ),
        Err(why) => ("null".into(), "null".into(), json_str(why)),
    };
    format!(
        "{{\"domain\":\"{}\",\"node\":\"{}\",\"protocol\":{},\"ok\":{},\"member\":{member},\
         \"hops\":{},\"answer\":{answer},\"answer_hex\":{answer_hex},\"error\":{error},\
         \"advert\":{},\"attempts\":{},\"elapsed_ms\":{}}}",
        o.domain,
        o.node,
        o.protocol.protocol().0,
        a.result.is_ok(),
        a.hops,
        a.advert.is_some(),
        o.attempts,
        o.elapsed.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(result: Result<Vec<u8>, String>, member: Option<NodeIdentity>) -> Outcome {
        Outcome {
            domain: DomainIdentity([9; 32]),
            node: NodeIdentity([1; 32]),
            protocol: RequestProtocol::Probe,
            answer: DomainAnswer {
                result,
                member,
                hops: 2,
                advert: None,
            },
            attempts: 1,
            elapsed: Duration::from_millis(1500),
        }
    }

    #[test]
    fn protocols_parse_by_name_and_number() {
        assert_eq!(parse_protocol("probe"), Ok(RequestProtocol::Probe));
        assert_eq!(parse_protocol("domain"), Ok(RequestProtocol::Domain));
        assert_eq!(
            parse_protocol(&Protocol::DOMAIN.0.to_string()),
            Ok(RequestProtocol::Domain)
        );
        assert_eq!(parse_protocol("4242"), Ok(RequestProtocol::Number(4242)));
        assert!(parse_protocol("pong")
            .unwrap_err()
            .contains("protocol number"));
        assert!(parse_protocol("4294967296").is_err());
        assert_eq!(RequestProtocol::Probe.default_body(), b"probe");
        assert_eq!(RequestProtocol::Domain.default_body(), b"info");
    }

    #[test]
    fn bodies_are_described_for_a_person() {
        let info = DomainInfo {
            members: 3,
            advert_version: 1,
            ops: 3,
        };
        assert_eq!(
            describe_body(RequestProtocol::Domain, &info.to_bytes()),
            "members=3 advert_version=1 ops=3"
        );
        assert_eq!(
            describe_body(RequestProtocol::Probe, b"member"),
            "\"member\""
        );
        assert_eq!(
            describe_body(RequestProtocol::Number(9), &[0, 1, 0xff]),
            "0x0001ff"
        );
    }

    #[test]
    fn the_line_and_json_name_the_member_and_hops() {
        let m = NodeIdentity([7; 32]);
        let ok = outcome(Ok(b"member".to_vec()), Some(m));
        let line = outcome_line(&ok);
        assert!(
            line.contains(&m.to_string()) && line.contains("after 2 hops"),
            "{line}"
        );
        let j = outcome_json(&ok);
        assert!(j.starts_with('{') && j.ends_with('}'), "{j}");
        assert!(
            j.contains("\"ok\":true")
                && j.contains("\"hops\":2")
                && j.contains(&format!("\"member\":\"{m}\""))
                && j.contains("\"answer\":\"\\\"member\\\"\"")
                && j.contains("\"error\":null"),
            "{j}"
        );
        let failed = outcome(Err("no route \"x\"".into()), None);
        let line = outcome_line(&failed);
        assert!(
            line.starts_with("no member") && line.contains("no route"),
            "{line}"
        );
        let j = outcome_json(&failed);
        assert!(
            j.contains("\"ok\":false")
                && j.contains("\"member\":null")
                && j.contains("\"error\":\"no route \\\"x\\\"\""),
            "{j}"
        );
    }
}
