//! The node's domains: the built-in Domain and Topology engines as the node builder registers
//! them (one [`DomainDirectory`] shared by the Domain engine, the Router and PubSub), and the
//! node's handles onto them — join, leave, list the members, counters and the overlay view.
//!
//! A node with a Transport runs both engines whether or not it has domains configured, so it
//! can join a domain later ([`Node::join_domain`] with the advert) and answer a domain's
//! external requests; with no domain they hold no state and set no timer
//! ([`NodeBuilder::without_domains`](super::NodeBuilder::without_domains) leaves them out).
//!
//! The handles talk to the Domain engine as an application would: local [`DomainMail`] sent
//! from a short-lived [`Client`](super::client::Client) to the node itself
//! (`Protocol::DOMAIN`, scope `Local`), waiting for the one answer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{EngineSpec, Node, NodeBuilder, NodeError};
use crate::domain::{DomainEngine, DomainLimits, DomainProbe, DomainSettings, DomainStats};
use crate::identity::{DomainIdentity, Keypair, NodeIdentity};
use crate::mail::domain::{
    DomainDirectory, DomainMail, JoinRefusal, MemberInfo, DOMAIN_ENGINE_NAME, TOPOLOGY_ENGINE_NAME,
};
use crate::mail::{Input, Origin};
use crate::rng::SplitMix64;
use crate::runtime::{Engine, SendOptions};
use crate::topology::{TopologyEngine, TopologyLimits, TopologyProbe, TopologyStats};
use crate::wire::{encode_to_vec, Destination, DomainAdvert, Protocol};

/// What a node keeps of its domain engines.
pub(super) struct DomainHandles {
    /// The domains configured at start.
    pub(super) configured: Vec<DomainIdentity>,
    pub(super) domain_stats: Arc<DomainStats>,
    pub(super) domain_probe: DomainProbe,
    pub(super) topology_stats: Arc<TopologyStats>,
    pub(super) topology_probe: TopologyProbe,
}

/// The domains a node is given and its two domain engines' limits.
#[derive(Default)]
pub(super) struct DomainConfig {
    pub(super) settings: Vec<DomainSettings>,
    pub(super) limits: DomainLimits,
    pub(super) topology: TopologyLimits,
}

impl NodeBuilder {
    /// Adds a domain: its advert, its pre-shared key if it uses one, and whether to ask to
    /// join at start. Runs the Domain and Topology engines again if
    /// [`NodeBuilder::without_domains`] had left them out.
    pub fn domain(mut self, settings: DomainSettings) -> NodeBuilder {
        self.domain_config().settings.push(settings);
        self
    }

    /// Sets the Domain engine's limits.
    pub fn domain_limits(mut self, limits: DomainLimits) -> NodeBuilder {
        self.domain_config().limits = limits;
        self
    }

    /// Sets the Topology engine's limits (view sizes, periods).
    pub fn topology_limits(mut self, limits: TopologyLimits) -> NodeBuilder {
        self.domain_config().topology = limits;
        self
    }

    /// Leaves out the Domain and Topology engines (nodes with a Transport run them by
    /// default, with or without domains, so they can join one later).
    pub fn without_domains(mut self) -> NodeBuilder {
        self.domains = None;
        self
    }

    /// Seeds the node's random choices (its engines' generators) instead of drawing a seed
    /// from the operating system: the same seed, the same choices.
    pub fn seed(mut self, seed: u64) -> NodeBuilder {
        self.seed = Some(seed);
        self
    }

    /// Registers the Domain and Topology engines first among the engines (if the node runs
    /// them: it has a Transport and they were not left out), with seeds from the node's seed.
    pub(super) fn add_domain_engines(
        &mut self,
        directory: &DomainDirectory,
    ) -> Option<DomainHandles> {
        let mut rng = match self.seed {
            Some(seed) => SplitMix64::new(seed),
            None => SplitMix64::from_os(),
        };
        let d = self.domains.take()?;
        self.transport.as_ref()?;
        let (list, handles) = engines(
            &self.key,
            d.settings,
            directory,
            (d.limits, d.topology),
            &mut rng,
        );
        for (i, e) in list.into_iter().enumerate() {
            self.engines.insert(i, e);
        }
        Some(handles)
    }

    fn domain_config(&mut self) -> &mut DomainConfig {
        self.domains.get_or_insert_with(DomainConfig::default)
    }
}

/// An engine ready to register, with its spec.
type Registration = (EngineSpec, Box<dyn Engine>);

/// The two engines and their specs, ready to register, with the handles the node keeps.
pub(super) fn engines(
    key: &Keypair,
    settings: Vec<DomainSettings>,
    directory: &DomainDirectory,
    limits: (DomainLimits, TopologyLimits),
    rng: &mut SplitMix64,
) -> (Vec<Registration>, DomainHandles) {
    let configured = settings.iter().map(|s| s.advert.id).collect();
    let domain_stats = Arc::new(DomainStats::default());
    let topology_stats = Arc::new(TopologyStats::default());
    let domain = DomainEngine::new(
        key.clone(),
        settings,
        directory.clone(),
        limits.0,
        Arc::clone(&domain_stats),
        rng.next_u64(),
    );
    let topology = TopologyEngine::new(limits.1, Arc::clone(&topology_stats), rng.next_u64());
    let handles = DomainHandles {
        configured,
        domain_stats,
        domain_probe: domain.probe(),
        topology_stats,
        topology_probe: topology.probe(),
    };
    // Deep mailboxes: a membership burst (a hundred joins gossiped at once) must not be
    // refused at the mailbox.
    let spec = |name: &str, protocol| EngineSpec {
        mailbox_depth: 16_384,
        ..EngineSpec::named(name).serving(protocol)
    };
    let list: Vec<Registration> = vec![
        (spec(DOMAIN_ENGINE_NAME, Protocol::DOMAIN), Box::new(domain)),
        (
            spec(TOPOLOGY_ENGINE_NAME, Protocol::TOPOLOGY),
            Box::new(topology),
        ),
    ];
    (list, handles)
}

/// The answer to a join: accepted from an epoch, or refused, and the member that answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinAnswer {
    /// The epoch from which the membership holds, or why the join was refused.
    pub result: Result<u64, JoinRefusal>,
    /// The member that answered, if any did.
    pub approver: Option<NodeIdentity>,
}

impl Node {
    /// The node's directory of domain memberships (shared with its Router and PubSub).
    pub fn domain_directory(&self) -> &DomainDirectory {
        &self.domain_directory
    }

    /// The Domain engine's counters, if the node runs one.
    pub fn domain_stats(&self) -> Option<&DomainStats> {
        self.domains.as_ref().map(|d| &*d.domain_stats)
    }

    /// The Topology engine's counters, if the node runs one.
    pub fn topology_stats(&self) -> Option<&TopologyStats> {
        self.domains.as_ref().map(|d| &*d.topology_stats)
    }

    /// The Domain engine's probe (per domain: members, whether this node is one), if it runs.
    pub fn domain_probe(&self) -> Option<&DomainProbe> {
        self.domains.as_ref().map(|d| &d.domain_probe)
    }

    /// The Topology engine's probe (per domain: the active view, the passive view's size).
    pub fn topology_probe(&self) -> Option<&TopologyProbe> {
        self.domains.as_ref().map(|d| &d.topology_probe)
    }

    /// Asks to join `domain` and waits up to `timeout` for the answer. The Domain engine must
    /// know the domain's advert: configured (`[[domains]]`, [`NodeBuilder::domain`]) or given
    /// as `advert` (then only for a domain whose auth needs no pre-shared key).
    ///
    /// [`NodeBuilder::domain`]: super::NodeBuilder::domain
    pub fn join_domain(
        &self,
        domain: DomainIdentity,
        advert: Option<&DomainAdvert>,
        timeout: Duration,
    ) -> Result<JoinAnswer, NodeError> {
        let mail = DomainMail::Join {
            domain,
            advert: advert.map(encode_to_vec),
        };
        self.ask_domain(mail, timeout, |m| match m {
            DomainMail::JoinResult {
                domain: d,
                result,
                approver,
            } if d == domain => Some(JoinAnswer { result, approver }),
            _ => None,
        })
    }

    /// Leaves `domain`; `Ok(Err(why))` if the Domain engine did not (not a member, …).
    pub fn leave_domain(
        &self,
        domain: DomainIdentity,
        timeout: Duration,
    ) -> Result<Result<(), String>, NodeError> {
        self.ask_domain(DomainMail::Leave { domain }, timeout, |m| match m {
            DomainMail::Done { domain: d, result } if d == domain => Some(result),
            _ => None,
        })
    }

    /// The members of `domain` as this node's replica has them (empty for a domain it does
    /// not know), each with its epoch, approver and whether it is in this node's view.
    pub fn domain_members(
        &self,
        domain: DomainIdentity,
        timeout: Duration,
    ) -> Result<Vec<MemberInfo>, NodeError> {
        self.ask_domain(DomainMail::Members { domain }, timeout, |m| match m {
            DomainMail::MembersAre { domain: d, members } if d == domain => Some(members),
            _ => None,
        })
    }

    /// Sends `mail` to the Domain engine from a fresh client and waits for the answer `pick`
    /// accepts.
    fn ask_domain<T>(
        &self,
        mail: DomainMail,
        timeout: Duration,
        pick: impl Fn(DomainMail) -> Option<T>,
    ) -> Result<T, NodeError> {
        if self.domains.is_none() {
            return Err(NodeError::NoAnswer("the node runs no Domain engine"));
        }
        let n = self.client_seq.fetch_add(1, Ordering::Relaxed);
        let mut client = self.client(&format!("domain-ask-{n}"))?;
        let own = self.identity;
        client.send_with(
            Destination::Node(own),
            Protocol::DOMAIN,
            mail.encode(),
            SendOptions::local_only(),
        );
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NodeError::NoAnswer(
                    "the Domain engine did not answer in time",
                ));
            }
            match client.recv(left) {
                Some(Input::Message(m))
                    if m.origin() == Origin::Local && m.protocol() == Protocol::DOMAIN =>
                {
                    if let Some(answer) = DomainMail::decode(m.body()).ok().and_then(&pick) {
                        return Ok(answer);
                    }
                }
                Some(Input::Undeliverable(u)) => {
                    log::debug!("domain mail undeliverable: {}", u.reason.label());
                    return Err(NodeError::NoAnswer("the Domain engine is not running"));
                }
                Some(_) => {}
                None if client.is_closed() => return Err(NodeError::Stopped),
                None => {}
            }
        }
    }

    /// The domains block of the status view: per domain whether this node is a member, the
    /// member count and the active view's size; then the two engines' counters.
    pub(super) fn domain_status(&self) -> String {
        let Some(h) = &self.domains else {
            return String::new();
        };
        let mut out = String::new();
        let mut domains = self.domain_directory.memberships();
        domains.extend(h.configured.iter().copied());
        domains.sort();
        domains.dedup();
        if !domains.is_empty() {
            out.push_str("domains:\n");
        }
        for d in domains {
            let entry = self.domain_directory.entry(&d).unwrap_or_default();
            let view = h.topology_probe.view(&d).unwrap_or_default();
            out.push_str(&format!(
                "  {d} {} members={} view={} passive={}\n",
                if entry.member_here {
                    "member"
                } else {
                    "not-member"
                },
                entry.members.len(),
                view.active.len(),
                view.passive_len
            ));
        }
        for (label, counters) in [
            ("domain", h.domain_stats.nonzero()),
            ("topology", h.topology_stats.nonzero()),
        ] {
            if !counters.is_empty() {
                out.push_str(&format!("{label}:"));
                for (name, v) in counters {
                    out.push_str(&format!(" {name}={v}"));
                }
                out.push('\n');
            }
        }
        out
    }
}
