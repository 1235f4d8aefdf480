//! The node's inter-domain engines (spec notes §5.6, §9) as the node builder registers them —
//! PeerSampling (TAPS with URPS, or the CYCLON baseline), Clustering (TAC, fingers, PSI) and
//! DomainRouting — and the node's handles onto them: a domain request, counters, probes.
//!
//! The three engines share one [`NeighbourBoard`] (PeerSampling and Clustering publish their
//! views on it, DomainRouting forwards over it), one [`DomainRoutes`] cache (DomainRouting
//! learns members of foreign domains into it; the Router reads it to send
//! `Destination::Domain` messages straight to a known member) and the node's
//! [`DomainDirectory`] (its memberships: the membership filter PeerSampling advertises, the
//! domains DomainRouting delivers to). PeerSampling's explicit view is the node's configured
//! peers (`[[peers]]`, [`NodeBuilder::peer`]) with their trust (`trust / 255`; banned peers are
//! left out).
//!
//! A node with a Transport runs the three engines unless
//! [`NodeBuilder::without_interdomain`] opts out (`[interdomain] enabled = false`): then the
//! node neither gossips descriptors, nor clusters, nor forwards or answers other nodes' domain
//! requests, and its own `Destination::Domain` messages reach only known members.
//!
//! [`Node::request_domain`] asks DomainRouting as an application would: local
//! [`RoutingMail::Request`] from a short-lived [`Client`](super::client::Client) to the node
//! itself (`Protocol::DOMAIN_ROUTING`, scope `Local`), waiting for the one `Answer`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{EngineSpec, Node, NodeBuilder, NodeError};
use crate::clustering::{ClusteringEngine, ClusteringProbe, ClusteringSettings, ClusteringStats};
use crate::domain_routing::{DomainRoutingEngine, RoutingProbe, RoutingSettings, RoutingStats};
use crate::identity::{DomainIdentity, Keypair, NodeIdentity};
use crate::mail::domain::DomainDirectory;
use crate::mail::identity::DEFAULT_TRUST;
use crate::mail::interdomain::{
    DomainRoutes, NeighbourBoard, RoutingMail, CLUSTERING_ENGINE_NAME, DOMAIN_ROUTING_ENGINE_NAME,
    SAMPLING_ENGINE_NAME,
};
use crate::mail::{Input, Origin};
use crate::rng::SplitMix64;
use crate::runtime::{Engine, SendOptions};
use crate::sampling::{SamplingEngine, SamplingProbe, SamplingSettings, SamplingStats};
use crate::wire::{Destination, NodeAdvert, Protocol};

/// Mixed into the node's seed for the inter-domain engines' generators, so they draw other
/// numbers than the Domain and Topology engines seeded from the same node seed.
const SEED_TWEAK: u64 = 0x1d15_7a9c_0e15_0015;

/// Mailbox depth of each inter-domain engine: a burst of exchanges and forwarded requests from
/// every neighbour at once (≈ 100 neighbours × a few messages) fits many times over.
pub const INTERDOMAIN_MAILBOX_DEPTH: usize = 8192;

/// The three inter-domain engines' settings (`[interdomain]`); the defaults are each engine's.
#[derive(Clone, Debug, Default)]
pub struct InterdomainSettings {
    /// PeerSampling: mode (TAPS or CYCLON), view, exchange, period, trust, URPS and BLIP.
    pub sampling: SamplingSettings,
    /// Clustering: cluster view, fingers, exchange, period, trust weight, PSI.
    pub clustering: ClusteringSettings,
    /// DomainRouting: hop limit, timeout, whether to forward other nodes' requests.
    pub routing: RoutingSettings,
}

/// What a node keeps of its inter-domain engines.
pub(super) struct InterdomainHandles {
    pub(super) board: NeighbourBoard,
    pub(super) routes: DomainRoutes,
    pub(super) sampling_stats: Arc<SamplingStats>,
    pub(super) sampling_probe: SamplingProbe,
    pub(super) clustering_stats: Arc<ClusteringStats>,
    pub(super) clustering_probe: ClusteringProbe,
    pub(super) routing_stats: Arc<RoutingStats>,
    pub(super) routing_probe: RoutingProbe,
    /// How long DomainRouting waits for an answer (the node's own requests wait a little
    /// longer).
    pub(super) timeout: Duration,
}

impl NodeBuilder {
    /// Runs the inter-domain engines with `settings` (nodes with a Transport run them with the
    /// defaults unless [`NodeBuilder::without_interdomain`] left them out).
    pub fn interdomain(mut self, settings: InterdomainSettings) -> NodeBuilder {
        self.interdomain = Some(settings);
        self
    }

    /// Leaves out the PeerSampling, Clustering and DomainRouting engines: the node opts out of
    /// the inter-domain protocols (it neither gossips nor forwards).
    pub fn without_interdomain(mut self) -> NodeBuilder {
        self.interdomain = None;
        self
    }

    /// The explicit view PeerSampling starts from: the configured peers with their trust in
    /// [0, 1], banned peers (trust 0) left out.
    pub(super) fn explicit_view(&self) -> Vec<(NodeAdvert, f64)> {
        self.peers
            .iter()
            .filter_map(|a| {
                let trust = self
                    .trust
                    .iter()
                    .find(|(n, _)| *n == a.id)
                    .map_or(DEFAULT_TRUST, |(_, t)| *t);
                (trust > 0).then(|| (a.clone(), f64::from(trust) / 255.0))
            })
            .collect()
    }
}

/// An engine ready to register, with its spec.
type Registration = (EngineSpec, Box<dyn Engine>);

/// The three engines and their specs, ready to register, with the handles the node keeps.
/// `advert` is the node's own advert (carried in its descriptor), `seed` the node's seed if it
/// has one.
pub(super) fn engines(
    key: &Keypair,
    advert: &NodeAdvert,
    settings: InterdomainSettings,
    explicit: Vec<(NodeAdvert, f64)>,
    directory: &DomainDirectory,
    seed: Option<u64>,
) -> (Vec<Registration>, InterdomainHandles) {
    let mut rng = match seed {
        Some(s) => SplitMix64::new(s ^ SEED_TWEAK),
        None => SplitMix64::from_os(),
    };
    let board = NeighbourBoard::new();
    let routes = DomainRoutes::new();
    let sampling_stats = Arc::new(SamplingStats::default());
    let clustering_stats = Arc::new(ClusteringStats::default());
    let routing_stats = Arc::new(RoutingStats::default());
    let timeout = settings.routing.timeout;
    let sampling = SamplingEngine::new(
        key.clone(),
        advert.clone(),
        settings.sampling,
        explicit,
        directory.clone(),
        board.clone(),
        Arc::clone(&sampling_stats),
        rng.next_u64(),
    );
    let clustering = ClusteringEngine::new(
        key.clone(),
        settings.clustering,
        directory.clone(),
        board.clone(),
        Arc::clone(&clustering_stats),
        rng.next_u64(),
    );
    let routing = DomainRoutingEngine::new(
        key.clone(),
        advert.clone(),
        settings.routing,
        directory.clone(),
        board.clone(),
        routes.clone(),
        Arc::clone(&routing_stats),
        rng.next_u64(),
    );
    let handles = InterdomainHandles {
        board,
        routes,
        sampling_probe: sampling.probe(),
        sampling_stats,
        clustering_probe: clustering.probe(),
        clustering_stats,
        routing_probe: routing.probe(),
        routing_stats,
        timeout,
    };
    let spec = |name: &str, protocol| EngineSpec {
        mailbox_depth: INTERDOMAIN_MAILBOX_DEPTH,
        ..EngineSpec::named(name).serving(protocol)
    };
    let list: Vec<Registration> = vec![
        (
            spec(SAMPLING_ENGINE_NAME, Protocol::SAMPLING),
            Box::new(sampling),
        ),
        (
            spec(CLUSTERING_ENGINE_NAME, Protocol::CLUSTERING),
            Box::new(clustering),
        ),
        (
            spec(DOMAIN_ROUTING_ENGINE_NAME, Protocol::DOMAIN_ROUTING),
            Box::new(routing),
        ),
    ];
    (list, handles)
}

/// The answer to a domain request ([`Node::request_domain`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainAnswer {
    /// The member's answer, or why there is none (no route, timed out, refused, …).
    pub result: Result<Vec<u8>, String>,
    /// The member that answered, if one did.
    pub member: Option<NodeIdentity>,
    /// How many hops the request took to reach it (1: a neighbour or an already known member).
    pub hops: u32,
    /// The domain's advert in wire form, if the member sent it.
    pub advert: Option<Vec<u8>>,
}

/// How much longer than DomainRouting's own timeout [`Node::request_domain`] waits by
/// default, so that DomainRouting's timeout answer arrives first.
const ANSWER_SLACK: Duration = Duration::from_secs(1);

impl Node {
    /// Whether the node runs the inter-domain engines.
    pub fn runs_interdomain(&self) -> bool {
        self.interdomain.is_some()
    }

    /// The inter-domain neighbours (PeerSampling's and Clustering's views), if the node runs
    /// the engines.
    pub fn neighbour_board(&self) -> Option<&NeighbourBoard> {
        self.interdomain.as_ref().map(|h| &h.board)
    }

    /// The members of foreign domains DomainRouting has learnt, if the node runs it.
    pub fn domain_routes(&self) -> Option<&DomainRoutes> {
        self.interdomain.as_ref().map(|h| &h.routes)
    }

    /// PeerSampling's counters, if the node runs it.
    pub fn sampling_stats(&self) -> Option<&SamplingStats> {
        self.interdomain.as_ref().map(|h| &*h.sampling_stats)
    }

    /// Clustering's counters, if the node runs it.
    pub fn clustering_stats(&self) -> Option<&ClusteringStats> {
        self.interdomain.as_ref().map(|h| &*h.clustering_stats)
    }

    /// DomainRouting's counters, if the node runs it.
    pub fn routing_stats(&self) -> Option<&RoutingStats> {
        self.interdomain.as_ref().map(|h| &*h.routing_stats)
    }

    /// PeerSampling's probe (its views), if the node runs it.
    pub fn sampling_probe(&self) -> Option<&SamplingProbe> {
        self.interdomain.as_ref().map(|h| &h.sampling_probe)
    }

    /// Clustering's probe (its view, fingers, PSI results), if the node runs it.
    pub fn clustering_probe(&self) -> Option<&ClusteringProbe> {
        self.interdomain.as_ref().map(|h| &h.clustering_probe)
    }

    /// DomainRouting's probe, if the node runs it.
    pub fn routing_probe(&self) -> Option<&RoutingProbe> {
        self.interdomain.as_ref().map(|h| &h.routing_probe)
    }

    /// Sends `body` for `protocol` to some member of `domain` that accepts external requests,
    /// through DomainRouting, and waits up to `timeout` (`None`: DomainRouting's own timeout
    /// and a second) for the answer. `Protocol::DOMAIN_ROUTING` with body `probe` is answered
    /// by the member's DomainRouting engine (`member`); `Protocol::DOMAIN` with body `info` by
    /// its Domain engine (a [`DomainInfo`](crate::domain::DomainInfo)).
    ///
    /// `Err` if the node runs no DomainRouting engine or it did not answer in time;
    /// `Ok` with `result: Err(why)` if it answered that no member could be reached.
    pub fn request_domain(
        &self,
        domain: DomainIdentity,
        protocol: Protocol,
        body: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<DomainAnswer, NodeError> {
        let Some(h) = &self.interdomain else {
            return Err(NodeError::NoAnswer(
                "the node runs no DomainRouting engine (inter-domain protocols disabled)",
            ));
        };
        let timeout = timeout.unwrap_or(h.timeout + ANSWER_SLACK);
        let n = self.client_seq.fetch_add(1, Ordering::Relaxed);
        let mut client = self.client(&format!("domain-request-{n}"))?;
        let own = self.identity;
        client.send_with(
            Destination::Node(own),
            Protocol::DOMAIN_ROUTING,
            RoutingMail::Request {
                domain,
                protocol,
                body,
            }
            .encode(),
            SendOptions::local_only(),
        );
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NodeError::NoAnswer(
                    "the DomainRouting engine did not answer in time",
                ));
            }
            match client.recv(left) {
                Some(Input::Message(m))
                    if m.origin() == Origin::Local && m.protocol() == Protocol::DOMAIN_ROUTING =>
                {
                    if let Ok(RoutingMail::Answer {
                        domain: d,
                        result,
                        member,
                        hops,
                        advert,
                    }) = RoutingMail::decode(m.body())
                    {
                        if d == domain {
                            return Ok(DomainAnswer {
                                result,
                                member,
                                hops,
                                advert,
                            });
                        }
                    }
                }
                Some(Input::Undeliverable(u)) => {
                    log::debug!("routing mail undeliverable: {}", u.reason.label());
                    return Err(NodeError::NoAnswer(
                        "the DomainRouting engine is not running",
                    ));
                }
                Some(_) => {}
                None if client.is_closed() => return Err(NodeError::Stopped),
                None => {}
            }
        }
    }

    /// The inter-domain block of the status view: the neighbour count per kind, the known
    /// foreign domains, then the three engines' counters.
    pub(super) fn interdomain_status(&self) -> String {
        let Some(h) = &self.interdomain else {
            return "interdomain: disabled\n".into();
        };
        let neighbours = h.board.neighbours();
        let count = |k| neighbours.iter().filter(|n| n.kind == k).count();
        use crate::mail::interdomain::LinkKind;
        let mut out = format!(
            "interdomain: neighbours={} explicit={} random={} cluster={} finger={} \
             known_domains={} own_descriptor={}\n",
            neighbours.len(),
            count(LinkKind::Explicit),
            count(LinkKind::Random),
            count(LinkKind::Cluster),
            count(LinkKind::Finger),
            h.routes.len(),
            if h.board.own().is_some() { "yes" } else { "no" },
        );
        for (label, counters) in [
            ("sampling", h.sampling_stats.nonzero()),
            ("clustering", h.clustering_stats.nonzero()),
            ("domain_routing", h.routing_stats.nonzero()),
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
