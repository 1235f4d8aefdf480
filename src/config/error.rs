//! Why a configuration file was refused ([`ConfigError`]): each variant names the file and,
//! when one is at fault, the key.

use std::fmt;
use std::io;
use std::net::{AddrParseError, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::identity::{DomainIdentity, KeyFileError, NodeIdentity, ParseIdentityError};
use crate::wire::advert::{AdvertError, MAX_NAME_BYTES};

/// Why a configuration file was refused. The message always names the file, and the key when
/// one is at fault (`listen[1]`, `peers[0].advert`, `limits.mailbox_depth`, …).
#[derive(Debug)]
pub enum ConfigError {
    /// The configuration file could not be read.
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The file is not valid TOML, a key is unknown or missing, or a value has the wrong type.
    /// The message is the TOML parser's; it names the key and shows the line.
    Syntax {
        /// The file.
        file: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The key file could not be read or is not an Ed25519 key.
    KeyFile {
        /// The configuration file.
        file: PathBuf,
        /// The key file, resolved against the configuration file's directory.
        path: PathBuf,
        /// Why.
        error: KeyFileError,
    },
    /// A listen address is not `ip:port`.
    BadAddress {
        /// The file.
        file: PathBuf,
        /// The key, `listen[i]`.
        key: String,
        /// The text given.
        value: String,
        /// Why it does not parse.
        error: AddrParseError,
    },
    /// A listen address appears twice.
    DuplicateAddress {
        /// The file.
        file: PathBuf,
        /// The key of the second occurrence, `listen[i]`.
        key: String,
        /// The address.
        addr: SocketAddr,
    },
    /// The node name is empty or longer than [`MAX_NAME_BYTES`].
    BadName {
        /// The file.
        file: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// A peer advert does not parse or its signature does not verify.
    BadAdvert {
        /// The file.
        file: PathBuf,
        /// The key, `peers[i].advert`.
        key: String,
        /// Why.
        error: AdvertError,
    },
    /// A peer advert is this node's own.
    OwnAdvert {
        /// The file.
        file: PathBuf,
        /// The key, `peers[i].advert`.
        key: String,
    },
    /// Two peer entries are for the same node.
    DuplicatePeer {
        /// The file.
        file: PathBuf,
        /// The key of the second entry.
        key: String,
        /// The key of the first entry.
        first: String,
        /// The node.
        node: NodeIdentity,
    },
    /// An identity is not 64 hex characters.
    BadIdentity {
        /// The file.
        file: PathBuf,
        /// The key, such as `engines[0].engine`.
        key: String,
        /// Why.
        error: ParseIdentityError,
    },
    /// An `[[engines]]` entry is incomplete (neither an advert nor both identities) or its
    /// identities are not the ones its advert names.
    BadEngine {
        /// The file.
        file: PathBuf,
        /// The key, `engines[i]`.
        key: String,
        /// What is wrong.
        what: &'static str,
    },
    /// A peer marked permanent has no address to dial.
    PermanentWithoutAddress {
        /// The file.
        file: PathBuf,
        /// The key, `peers[i].permanent`.
        key: String,
        /// The node.
        node: NodeIdentity,
    },
    /// A limit or duration is zero.
    Zero {
        /// The file.
        file: PathBuf,
        /// The key, such as `limits.mailbox_depth`.
        key: String,
    },
    /// A limit is above what the node can honour.
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The key.
        key: String,
        /// The largest accepted value.
        max: u64,
    },
    /// `transport.backoff_initial_ms` is above `transport.backoff_max_ms`.
    BackoffOrder {
        /// The file.
        file: PathBuf,
        /// The first redial delay.
        initial: Duration,
        /// The longest redial delay.
        max: Duration,
    },
    /// `limits.max_partial_frame_bytes` is below `limits.max_frame_bytes` (a single frame of the
    /// largest size could not be received).
    PartialFrameLimit {
        /// The file.
        file: PathBuf,
        /// `limits.max_partial_frame_bytes`.
        partial: usize,
        /// `limits.max_frame_bytes`.
        frame: usize,
    },
    /// A `[[domains]]` table is incomplete or contradicts its advert (both or neither of
    /// `advert` and `advert_file`, a pre-shared key for a domain that uses none or missing for
    /// one that does, a key of the wrong length, a node that is not on the allow-list asking to
    /// join).
    BadDomain {
        /// The file.
        file: PathBuf,
        /// The key, `domains[i]` or `domains[i].psk`.
        key: String,
        /// What is wrong.
        what: String,
    },
    /// A file a `[[domains]]` table names could not be read.
    DomainFile {
        /// The configuration file.
        file: PathBuf,
        /// The key, `domains[i].advert_file` or `domains[i].psk_file`.
        key: String,
        /// The file named, resolved against the configuration file's directory.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// A file holding a secret (`domains[i].psk_file`) may be read by others than its owner.
    SecretFileMode {
        /// The configuration file.
        file: PathBuf,
        /// The key.
        key: String,
        /// The secret's file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Two `[[domains]]` tables are for the same domain.
    DuplicateDomain {
        /// The file.
        file: PathBuf,
        /// The key of the second table's advert.
        key: String,
        /// The first table, `domains[i]`.
        first: String,
        /// The domain.
        domain: DomainIdentity,
    },
    /// A value is outside its range or contradicts another one (`[interdomain]`, `[transport]`).
    BadValue {
        /// The file.
        file: PathBuf,
        /// The key, such as `interdomain.trust_weight`.
        key: String,
        /// What is wrong and what is accepted.
        what: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, error } => {
                write!(f, "{}: cannot read configuration: {error}", file.display())
            }
            ConfigError::Syntax { file, message } => {
                write!(f, "{}: {}", file.display(), message.trim_end())
            }
            ConfigError::KeyFile { file, path, error } => write!(
                f,
                "{}: key `key_file`: cannot read key file {}: {error}",
                file.display(),
                path.display()
            ),
            ConfigError::BadAddress {
                file,
                key,
                value,
                error,
            } => write!(
                f,
                "{}: key `{key}`: {value:?} is not a socket address like \
                 \"127.0.0.1:7001\" ({error})",
                file.display()
            ),
            ConfigError::DuplicateAddress { file, key, addr } => write!(
                f,
                "{}: key `{key}`: address {addr} is listed twice",
                file.display()
            ),
            ConfigError::BadName { file, len } => write!(
                f,
                "{}: key `name`: must be 1 to {MAX_NAME_BYTES} bytes, not {len}",
                file.display()
            ),
            ConfigError::BadAdvert { file, key, error } => {
                write!(f, "{}: key `{key}`: {error}", file.display())
            }
            ConfigError::OwnAdvert { file, key } => write!(
                f,
                "{}: key `{key}`: this is the advert of this node itself, not of a peer",
                file.display()
            ),
            ConfigError::DuplicatePeer {
                file,
                key,
                first,
                node,
            } => write!(
                f,
                "{}: key `{key}`: node {} is already listed at `{first}`",
                file.display(),
                node.short()
            ),
            ConfigError::PermanentWithoutAddress { file, key, node } => write!(
                f,
                "{}: key `{key}`: node {} is permanent but its advert has no address",
                file.display(),
                node.short()
            ),
            ConfigError::BadIdentity { file, key, error } => {
                write!(f, "{}: key `{key}`: {error}", file.display())
            }
            ConfigError::BadEngine { file, key, what } => {
                write!(f, "{}: key `{key}`: {what}", file.display())
            }
            ConfigError::Zero { file, key } => {
                write!(f, "{}: key `{key}`: must not be zero", file.display())
            }
            ConfigError::TooLarge { file, key, max } => {
                write!(f, "{}: key `{key}`: must be at most {max}", file.display())
            }
            ConfigError::BackoffOrder { file, initial, max } => write!(
                f,
                "{}: key `transport.backoff_initial_ms`: {} ms is above \
                 `transport.backoff_max_ms` ({} ms)",
                file.display(),
                initial.as_millis(),
                max.as_millis()
            ),
            ConfigError::PartialFrameLimit {
                file,
                partial,
                frame,
            } => write!(
                f,
                "{}: key `limits.max_partial_frame_bytes`: {partial} is below \
                 `limits.max_frame_bytes` ({frame})",
                file.display()
            ),
            ConfigError::BadDomain { file, key, what }
            | ConfigError::BadValue { file, key, what } => {
                write!(f, "{}: key `{key}`: {what}", file.display())
            }
            ConfigError::DomainFile {
                file,
                key,
                path,
                error,
            } => write!(
                f,
                "{}: key `{key}`: cannot read {}: {error}",
                file.display(),
                path.display()
            ),
            ConfigError::SecretFileMode {
                file,
                key,
                path,
                mode,
            } => write!(
                f,
                "{}: key `{key}`: {} holds a secret but may be read by others (mode {mode:03o}); \
                 `chmod 600 {}`",
                file.display(),
                path.display(),
                path.display()
            ),
            ConfigError::DuplicateDomain {
                file,
                key,
                first,
                domain,
            } => write!(
                f,
                "{}: key `{key}`: domain {} is already configured at `{first}`",
                file.display(),
                domain.short()
            ),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { error, .. } => Some(error),
            ConfigError::KeyFile { error, .. } => Some(error),
            ConfigError::BadAddress { error, .. } => Some(error),
            ConfigError::BadAdvert { error, .. } => Some(error),
            ConfigError::BadIdentity { error, .. } => Some(error),
            ConfigError::DomainFile { error, .. } => Some(error),
            _ => None,
        }
    }
}
