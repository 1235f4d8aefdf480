//! Why a node could not start or an operation on it failed ([`NodeError`]).

use std::fmt;

/// Why a node could not start or an operation on it failed.
#[derive(Debug)]
pub enum NodeError {
    /// Two engines share a name.
    DuplicateEngine(String),
    /// The name is reserved (`router`) or empty.
    BadEngineName(String),
    /// A peer advert does not verify (or has expired).
    BadPeerAdvert(String),
    /// An engine advert does not verify (or has expired).
    BadEngineAdvert(String),
    /// More addresses than an advert carries.
    TooManyAddresses(usize),
    /// A thread could not be started.
    Spawn(std::io::Error),
    /// The node has stopped.
    Stopped,
    /// Anything the Transport reports at start.
    Transport(String),
    /// An engine of the node gave no answer (why, for a person).
    NoAnswer(&'static str),
    /// The identity store's file could not be opened or read.
    IdentityFile(super::identity_file::IdentityFileError),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::DuplicateEngine(n) => write!(f, "two engines are named '{n}'"),
            NodeError::BadEngineName(n) => write!(f, "engine name '{n}' is reserved or empty"),
            NodeError::BadPeerAdvert(e) => write!(f, "peer advert refused: {e}"),
            NodeError::BadEngineAdvert(e) => write!(f, "engine advert refused: {e}"),
            NodeError::TooManyAddresses(n) => write!(
                f,
                "{n} addresses; an advert carries at most {}",
                crate::wire::advert::MAX_ADDRS
            ),
            NodeError::Spawn(e) => write!(f, "could not start a thread: {e}"),
            NodeError::Stopped => write!(f, "the node has stopped"),
            NodeError::Transport(e) => write!(f, "transport: {e}"),
            NodeError::NoAnswer(why) => f.write_str(why),
            NodeError::IdentityFile(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for NodeError {}
