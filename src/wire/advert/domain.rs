//! The domain advert (format 2): a domain's signed statement of its introducers, how joiners
//! authenticate, which members answer external requests and how many members it admits
//! (docs/wire.md §6.5, docs/domains.md).

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use super::{line_bytes, AdvertError, Signed, TransportAddress, MAX_ADDRS};
use crate::identity::{to_hex, DomainIdentity, Keypair, NodeIdentity, Signature};
use crate::time::Timestamp;
use crate::wire::{context, decode_list, encode_list};

/// Most introducers in one domain advert.
pub const MAX_INTRODUCERS: usize = 64;
/// Most nodes on a domain advert's allow-list.
pub const MAX_ALLOW_LIST: usize = 1024;
/// Most member nodes listed in one domain advert as accepting external requests.
pub const MAX_DOMAIN_NODES: usize = 256;
/// The prefix of a domain advert's one-line text form.
pub const DOMAIN_ADVERT_LINE_PREFIX: &str = "nmdomain1:";

/// One of a domain's introducers: a genesis member (a member from epoch 0 by the domain key's
/// signature) that approves joins and alone may expel, with the addresses a joiner dials.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Introducer {
    /// The introducer node.
    pub node: NodeIdentity,
    /// Where to reach it (may be empty: then the joiner must learn a node advert elsewhere).
    pub addrs: Vec<TransportAddress>,
}

struct IntroducerWire<'a>(&'a Introducer);

impl Encode for IntroducerWire<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.0.node.encode(e)?;
        encode_list(&self.0.addrs, e)
    }
}

fn decode_introducer<D: Decoder<Context = ()>>(d: &mut D) -> Result<Introducer, DecodeError> {
    Ok(Introducer {
        node: Decode::decode(d)?,
        addrs: decode_list(d, "introducer addresses", MAX_ADDRS)?,
    })
}

/// How a domain authenticates the nodes that ask to join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainAuth {
    /// Any node may join (wire tag 0).
    None,
    /// A node must prove it holds the domain's pre-shared key (HMAC-SHA256 over its join
    /// request; wire tag 1).
    Psk,
    /// Only the nodes listed (at most [`MAX_ALLOW_LIST`]) may join (wire tag 2).
    AllowList(Vec<NodeIdentity>),
}

impl DomainAuth {
    /// The method as the command line prints it: `none`, `psk` or `allow-list`.
    pub fn label(&self) -> &'static str {
        match self {
            DomainAuth::None => "none",
            DomainAuth::Psk => "psk",
            DomainAuth::AllowList(_) => "allow-list",
        }
    }
}

impl Encode for DomainAuth {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        match self {
            DomainAuth::None => 0u32.encode(e),
            DomainAuth::Psk => 1u32.encode(e),
            DomainAuth::AllowList(list) => {
                2u32.encode(e)?;
                encode_list(list, e)
            }
        }
    }
}

impl Decode<()> for DomainAuth {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        match u32::decode(d)? {
            0 => Ok(DomainAuth::None),
            1 => Ok(DomainAuth::Psk),
            2 => Ok(DomainAuth::AllowList(decode_list(
                d,
                "allow-list",
                MAX_ALLOW_LIST,
            )?)),
            other => Err(DecodeError::UnexpectedVariant {
                type_name: "DomainAuth",
                allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 2 },
                found: other,
            }),
        }
    }
}

/// A domain's signed statement of who introduces it, how joiners authenticate, which members
/// answer requests from non-members, and how many members it admits (advert format 2 of
/// domain adverts, context `netmachine/v2/domain-advert\0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainAdvert {
    /// The domain.
    pub id: DomainIdentity,
    /// The genesis members, which approve joins and alone may expel (at most
    /// [`MAX_INTRODUCERS`]).
    pub introducers: Vec<Introducer>,
    /// How joiners authenticate.
    pub auth: DomainAuth,
    /// Members that answer external requests from non-members (at most [`MAX_DOMAIN_NODES`];
    /// empty: the domain accepts none).
    pub external: Vec<NodeIdentity>,
    /// Most members the domain admits (0: no bound but the engine's own limit).
    pub max_members: u64,
    /// Increases with every change.
    pub version: u64,
    /// When this version was made.
    pub created: Timestamp,
    /// The domain key's signature.
    pub sig: Signature,
}

struct DomainAdvertFields<'a>(&'a DomainAdvert);

impl Encode for DomainAdvertFields<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let a = self.0;
        a.id.encode(e)?;
        (a.introducers.len() as u64).encode(e)?;
        for i in &a.introducers {
            IntroducerWire(i).encode(e)?;
        }
        a.auth.encode(e)?;
        encode_list(&a.external, e)?;
        a.max_members.encode(e)?;
        a.version.encode(e)?;
        a.created.encode(e)
    }
}

impl Encode for DomainAdvert {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        DomainAdvertFields(self).encode(e)?;
        self.sig.encode(e)
    }
}

/// An introducer on the wire, for decoding lists of introducers.
struct IntroducerItem(Introducer);

impl Decode<()> for IntroducerItem {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(IntroducerItem(decode_introducer(d)?))
    }
}

impl Decode<()> for DomainAdvert {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(DomainAdvert {
            id: Decode::decode(d)?,
            introducers: decode_list::<_, IntroducerItem>(d, "introducers", MAX_INTRODUCERS)?
                .into_iter()
                .map(|i| i.0)
                .collect(),
            auth: Decode::decode(d)?,
            external: decode_list(d, "external nodes", MAX_DOMAIN_NODES)?,
            max_members: Decode::decode(d)?,
            version: Decode::decode(d)?,
            created: Decode::decode(d)?,
            sig: Decode::decode(d)?,
        })
    }
}

impl Signed for DomainAdvert {
    const CONTEXT: &'static [u8] = context::DOMAIN_ADVERT;

    fn signer(&self) -> [u8; 32] {
        self.id.0
    }

    fn signed_fields(&self) -> Vec<u8> {
        crate::wire::encode_to_vec(&DomainAdvertFields(self))
    }

    fn signature(&self) -> &Signature {
        &self.sig
    }

    fn set_signature(&mut self, sig: Signature) {
        self.sig = sig;
    }

    fn freshness(&self) -> (u64, Timestamp) {
        (self.version, self.created)
    }
}

impl DomainAdvert {
    /// A new advert of the domain whose key is `key`, signed. Lists longer than their wire
    /// limits would make an advert no receiver decodes: the caller keeps them in bounds.
    pub fn new_signed(
        key: &Keypair,
        introducers: Vec<Introducer>,
        auth: DomainAuth,
        external: Vec<NodeIdentity>,
        max_members: u64,
        version: u64,
        created: Timestamp,
    ) -> DomainAdvert {
        DomainAdvert {
            id: key.domain_identity(),
            introducers,
            auth,
            external,
            max_members,
            version,
            created,
            sig: Signature([0; 64]),
        }
        .sign(key)
    }

    /// Whether `node` is one of the introducers.
    pub fn is_introducer(&self, node: &NodeIdentity) -> bool {
        self.introducers.iter().any(|i| i.node == *node)
    }

    /// The introducer nodes, in advert order.
    pub fn introducer_nodes(&self) -> Vec<NodeIdentity> {
        self.introducers.iter().map(|i| i.node).collect()
    }

    /// Whether `node` answers external requests for the domain.
    pub fn accepts_external(&self, node: &NodeIdentity) -> bool {
        self.external.contains(node)
    }

    /// Whether the auth method admits `node` at all (only an allow-list excludes anyone).
    pub fn admits(&self, node: &NodeIdentity) -> bool {
        match &self.auth {
            DomainAuth::AllowList(list) => list.contains(node) || self.is_introducer(node),
            _ => true,
        }
    }

    /// Whether the lists are within their wire limits (an advert that is not cannot be sent).
    pub fn within_limits(&self) -> bool {
        self.introducers.len() <= MAX_INTRODUCERS
            && self.introducers.iter().all(|i| i.addrs.len() <= MAX_ADDRS)
            && self.external.len() <= MAX_DOMAIN_NODES
            && match &self.auth {
                DomainAuth::AllowList(l) => l.len() <= MAX_ALLOW_LIST,
                _ => true,
            }
    }

    /// One line of text: `nmdomain1:` then the hex of the advert's wire encoding.
    pub fn to_line(&self) -> String {
        format!(
            "{DOMAIN_ADVERT_LINE_PREFIX}{}",
            to_hex(&crate::wire::encode_to_vec(self))
        )
    }

    /// Parses and verifies the one-line text form.
    pub fn from_line(line: &str) -> Result<crate::wire::Verified<DomainAdvert>, AdvertError> {
        let bytes = line_bytes(line, DOMAIN_ADVERT_LINE_PREFIX)?;
        let advert: DomainAdvert =
            crate::wire::decode_exact(&bytes).map_err(AdvertError::Decode)?;
        advert.verify()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::WireError;

    #[test]
    fn domain_advert_line_round_trip_and_limits() {
        let domain = Keypair::generate();
        let a = DomainAdvert::new_signed(
            &domain,
            vec![Introducer {
                node: NodeIdentity([1; 32]),
                addrs: vec![TransportAddress::quic("127.0.0.1:7001".parse().unwrap())],
            }],
            DomainAuth::AllowList(vec![NodeIdentity([2; 32])]),
            vec![NodeIdentity([1; 32])],
            10,
            1,
            Timestamp(5),
        );
        let line = a.to_line();
        assert!(line.starts_with(DOMAIN_ADVERT_LINE_PREFIX));
        let back = DomainAdvert::from_line(&line).unwrap();
        assert_eq!(*back, a);
        assert!(a.is_introducer(&NodeIdentity([1; 32])));
        assert!(a.admits(&NodeIdentity([2; 32])) && !a.admits(&NodeIdentity([3; 32])));
        assert!(a.accepts_external(&NodeIdentity([1; 32])));
        let mut forged = a.clone();
        forged.max_members = 11;
        assert_eq!(forged.verify().unwrap_err(), AdvertError::BadSignature);
        assert_eq!(
            DomainAdvert::from_line("nmadvert2:00").unwrap_err(),
            AdvertError::NotAnAdvert
        );
        // An allow-list longer than the limit is refused before it is read.
        let mut long = a.clone();
        long.auth = DomainAuth::AllowList(vec![NodeIdentity([2; 32]); MAX_ALLOW_LIST + 1]);
        assert!(!long.within_limits());
        let bytes = crate::wire::encode_to_vec(&long);
        assert!(matches!(
            crate::wire::decode_exact::<DomainAdvert>(&bytes).unwrap_err(),
            WireError::TooLarge {
                what: "allow-list",
                ..
            }
        ));
    }
}
