//! The `[[domains]]` tables: each domain's signed advert (inline or from a file), its
//! pre-shared key (inline or from a file that only its owner may read) and whether the node asks
//! to join at start — checked into [`DomainSettings`] for the node builder; and the `[domain]`
//! and `[topology]` tables of the two engines' limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::{DomainLimits, DomainSettings};
use crate::identity::{DomainIdentity, NodeIdentity};
use crate::wire::advert::DomainAuth;
use crate::wire::DomainAdvert;

use crate::topology::TopologyLimits;

use super::raw::{RawDomain, RawDomainLimits, RawTopology};
use super::ConfigError;

/// Shortest pre-shared key accepted, in bytes: shorter ones are guessable offline from one
/// join request.
pub const MIN_PSK_BYTES: usize = 16;
/// Longest pre-shared key accepted, in bytes.
pub const MAX_PSK_BYTES: usize = 1024;
/// Longest advert or PSK file read, in bytes (an advert line with every list full is ~110 KB).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Checks the `[[domains]]` tables of `file` (whose directory is `base`) for node `me`.
pub(super) fn domains(
    raw: Vec<RawDomain>,
    file: &Path,
    base: &Path,
    me: NodeIdentity,
) -> Result<Vec<DomainSettings>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut seen: BTreeMap<DomainIdentity, usize> = BTreeMap::new();
    for (i, d) in raw.into_iter().enumerate() {
        let bad = |what: String| ConfigError::BadDomain {
            file: file.to_path_buf(),
            key: format!("domains[{i}]"),
            what,
        };
        let (key, line) = match (d.advert, d.advert_file) {
            (Some(line), None) => (format!("domains[{i}].advert"), line),
            (None, Some(path)) => {
                let key = format!("domains[{i}].advert_file");
                let text = read_small(file, &key, &base.join(path), false)?;
                (key, text.trim().to_string())
            }
            (Some(_), Some(_)) => {
                return Err(bad("set `advert` or `advert_file`, not both".into()));
            }
            (None, None) => {
                return Err(bad(
                    "needs `advert` (the line `netmachine domain advert` prints) or \
                     `advert_file`"
                        .into(),
                ));
            }
        };
        let advert: DomainAdvert = DomainAdvert::from_line(&line)
            .map_err(|error| ConfigError::BadAdvert {
                file: file.to_path_buf(),
                key: key.clone(),
                error,
            })?
            .into_inner();
        if let Some(first) = seen.insert(advert.id, i) {
            return Err(ConfigError::DuplicateDomain {
                file: file.to_path_buf(),
                key,
                first: format!("domains[{first}]"),
                domain: advert.id,
            });
        }
        let psk = match (d.psk, d.psk_file) {
            (Some(text), None) => Some((format!("domains[{i}].psk"), text.into_bytes())),
            (None, Some(path)) => {
                let key = format!("domains[{i}].psk_file");
                let text = read_small(file, &key, &base.join(path), true)?;
                // A trailing newline (from `echo` or an editor) is not part of the key.
                let text = text.trim_end_matches(['\n', '\r']).to_string();
                Some((key, text.into_bytes()))
            }
            (Some(_), Some(_)) => return Err(bad("set `psk` or `psk_file`, not both".into())),
            (None, None) => None,
        };
        if let Some((key, bytes)) = &psk {
            if !(MIN_PSK_BYTES..=MAX_PSK_BYTES).contains(&bytes.len()) {
                return Err(ConfigError::BadDomain {
                    file: file.to_path_buf(),
                    key: key.clone(),
                    what: format!(
                        "a pre-shared key must be {MIN_PSK_BYTES} to {MAX_PSK_BYTES} bytes, not \
                         {} (for example `python3 -c 'import secrets; print(secrets.token_hex(32))'`)",
                        bytes.len()
                    ),
                });
            }
            if advert.auth != DomainAuth::Psk {
                return Err(ConfigError::BadDomain {
                    file: file.to_path_buf(),
                    key: key.clone(),
                    what: format!(
                        "the domain's advert authenticates joiners by `{}`, not by a \
                         pre-shared key; remove the key",
                        advert.auth.label()
                    ),
                });
            }
        }
        let introducer = advert.is_introducer(&me);
        if advert.auth == DomainAuth::Psk && psk.is_none() && (d.join || introducer) {
            return Err(bad(format!(
                "the domain authenticates joiners by a pre-shared key: set `psk` or \
                 `psk_file`{}",
                if introducer {
                    " (this node is an introducer: it checks joiners' keys)"
                } else {
                    ", or `join = false`"
                }
            )));
        }
        if d.join && !introducer && !advert.admits(&me) {
            return Err(bad(format!(
                "node {} is not on the domain's allow-list: it would be refused; set \
                 `join = false` or add it to the list",
                me.short()
            )));
        }
        out.push(DomainSettings {
            advert,
            psk: psk.map(|(_, b)| b),
            join_at_start: d.join,
        });
    }
    Ok(out)
}

/// Reads a small text file named by `key`; with `secret`, refuses a file that others than its
/// owner may read (on Unix).
fn read_small(file: &Path, key: &str, path: &PathBuf, secret: bool) -> Result<String, ConfigError> {
    let io_err = |error| ConfigError::DomainFile {
        file: file.to_path_buf(),
        key: key.to_string(),
        path: path.clone(),
        error,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            file: file.to_path_buf(),
            key: key.to_string(),
            max: MAX_FILE_BYTES,
        });
    }
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::SecretFileMode {
                file: file.to_path_buf(),
                key: key.to_string(),
                path: path.clone(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = secret;
    std::fs::read_to_string(path).map_err(io_err)
}

/// Largest `topology.active_view`: every active peer is a connection kept up.
pub const MAX_ACTIVE_VIEW: usize = 64;
/// Largest `topology.passive_view`.
pub const MAX_PASSIVE_VIEW: usize = 4096;

/// Checks the `[topology]` table of `file`.
pub(super) fn topology_limits(t: RawTopology, file: &Path) -> Result<TopologyLimits, ConfigError> {
    let zero = |key: &str| ConfigError::Zero {
        file: file.to_path_buf(),
        key: format!("topology.{key}"),
    };
    let too_large = |key: &str, max: usize| ConfigError::TooLarge {
        file: file.to_path_buf(),
        key: format!("topology.{key}"),
        max: max as u64,
    };
    let ms = |key: &str, v: Option<u64>, default: Duration| match v {
        Some(0) => Err(zero(key)),
        Some(v) => Ok(Duration::from_millis(v)),
        None => Ok(default),
    };
    let mut l = TopologyLimits::default();
    if let Some(v) = t.active_view {
        if v == 0 {
            return Err(zero("active_view"));
        }
        if v > MAX_ACTIVE_VIEW {
            return Err(too_large("active_view", MAX_ACTIVE_VIEW));
        }
        l.active_view = v;
    }
    if let Some(v) = t.passive_view {
        if v == 0 {
            return Err(zero("passive_view"));
        }
        if v > MAX_PASSIVE_VIEW {
            return Err(too_large("passive_view", MAX_PASSIVE_VIEW));
        }
        l.passive_view = v;
    }
    l.shuffle_interval = ms(
        "shuffle_interval_ms",
        t.shuffle_interval_ms,
        l.shuffle_interval,
    )?;
    l.keepalive_interval = ms(
        "keepalive_interval_ms",
        t.keepalive_interval_ms,
        l.keepalive_interval,
    )?;
    l.failure_timeout = ms(
        "failure_timeout_ms",
        t.failure_timeout_ms,
        l.failure_timeout,
    )?;
    if l.failure_timeout <= l.keepalive_interval {
        return Err(ConfigError::BadDomain {
            file: file.to_path_buf(),
            key: "topology.failure_timeout_ms".into(),
            what: format!(
                "{} ms is not above `topology.keepalive_interval_ms` ({} ms): every quiet peer \
                 would be taken as failed",
                l.failure_timeout.as_millis(),
                l.keepalive_interval.as_millis()
            ),
        });
    }
    if let Some(s) = t.explore_interval_s {
        // Zero disables exploring.
        l.explore_interval = Duration::from_secs(s);
    }
    if let Some(v) = t.max_domains {
        if v == 0 {
            return Err(zero("max_domains"));
        }
        l.max_domains = v;
    }
    if let Some(v) = t.max_members {
        if v == 0 {
            return Err(zero("max_members"));
        }
        l.max_members = v;
    }
    Ok(l)
}

/// Checks the `[domain]` table of `file`.
pub(super) fn domain_limits(d: RawDomainLimits, file: &Path) -> Result<DomainLimits, ConfigError> {
    let zero = |key: &str| ConfigError::Zero {
        file: file.to_path_buf(),
        key: format!("domain.{key}"),
    };
    let count = |key: &str, v: Option<usize>, default: usize| match v {
        Some(0) => Err(zero(key)),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    let ms = |key: &str, v: Option<u64>, default: Duration| match v {
        Some(0) => Err(zero(key)),
        Some(v) => Ok(Duration::from_millis(v)),
        None => Ok(default),
    };
    let mut l = DomainLimits::default();
    l.max_domains = count("max_domains", d.max_domains, l.max_domains)?;
    l.max_members = count("max_members", d.max_members, l.max_members)?;
    l.max_ops = count("max_ops", d.max_ops, l.max_ops)?;
    if l.max_ops < l.max_members {
        return Err(ConfigError::BadDomain {
            file: file.to_path_buf(),
            key: "domain.max_ops".into(),
            what: format!(
                "{} is below `domain.max_members` ({}): every member is one operation at least",
                l.max_ops, l.max_members
            ),
        });
    }
    l.join_timeout = ms("join_timeout_ms", d.join_timeout_ms, l.join_timeout)?;
    l.join_tries = count(
        "join_tries",
        d.join_tries.map(|v| v as usize),
        l.join_tries as usize,
    )? as u32;
    match d.join_window_s {
        Some(0) => return Err(zero("join_window_s")),
        Some(s) => l.join_window = Duration::from_secs(s),
        None => {}
    }
    l.digest_interval = ms(
        "digest_interval_ms",
        d.digest_interval_ms,
        l.digest_interval,
    )?;
    l.ext_timeout = ms("ext_timeout_ms", d.ext_timeout_ms, l.ext_timeout)?;
    Ok(l)
}
