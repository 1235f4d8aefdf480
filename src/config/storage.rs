//! The `[storage]` table: whether the node runs the Storage engine, where its block store lives
//! and how large it may grow, the remote-put policy, searches and fetches, and the convergence
//! secret for encrypted puts; checked into a [`StorageConfig`] (`None` when `enabled = false`:
//! the other keys are still checked, but the secret file is not read).
//! Every key is optional; the defaults are the store's ([`StoreLimits`]) and the engine's
//! ([`StorageSettings`]), and the store file defaults to `<name>.storage.redb` beside the
//! configuration file `<name>.toml` — one per configuration, so nodes whose files sit side by
//! side never share a store (relative paths are resolved against that directory, as `key_file`
//! is).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::storage::block::MAX_ENCODED_BLOCK;
use crate::storage::crypt::ConvergenceSecret;
use crate::storage::engine::StorageSettings;
use crate::storage::store::StoreLimits;

use super::raw::RawStorage;
use super::ConfigError;

/// What the default store file's name ends with: `node1.toml`'s store is
/// `node1.storage.redb` beside it.
pub const DEFAULT_STORE_SUFFIX: &str = ".storage.redb";

/// The store file when `storage.path` is not set: the configuration file's name without its
/// extension, with [`DEFAULT_STORE_SUFFIX`], in the same directory.
pub fn default_store_file(config: &Path) -> PathBuf {
    beside_config(config, DEFAULT_STORE_SUFFIX)
}

/// The file named after `config` (its name without the extension, then `suffix`) in the same
/// directory: one per configuration, so nodes whose files sit side by side never share one.
pub fn beside_config(config: &Path, suffix: &str) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "node".to_string());
    let dir = config.parent().unwrap_or_else(|| Path::new(""));
    dir.join(format!("{stem}{suffix}"))
}
/// Smallest `storage.max_bytes`: one block of the largest size must fit.
pub const MIN_STORE_BYTES: u64 = MAX_ENCODED_BLOCK as u64;
/// Largest `storage.max_bytes`: 1 PiB (a guard against a unit typo, not a redb limit).
pub const MAX_STORE_BYTES: u64 = 1 << 50;
/// Largest `storage.max_blocks`: 2^32 blocks (the index takes about 100 bytes per block on
/// disk: 400 GiB at this bound).
pub const MAX_STORE_BLOCKS: u64 = 1 << 32;
/// Largest `storage.max_lifetime_s`: ten years of 365 days.
pub const MAX_LIFETIME_S: u64 = 10 * 365 * 24 * 3600;
/// Largest `storage.cache_mib`: the cache of blocks passing through is memory (4 GiB).
pub const MAX_CACHE_MIB: usize = 4096;
/// Largest `storage.fanout`: a lookup sends at most `fanout × hop_limit` search messages.
pub const MAX_FANOUT: usize = 64;
/// Largest `storage.hop_limit`: a search carries its path, one node per hop, and the wire
/// refuses longer ones ([`MAX_PATH`](crate::storage::wire::MAX_PATH)).
pub const MAX_STORAGE_HOP_LIMIT: usize = crate::storage::wire::MAX_PATH;
/// Largest `storage.max_in_flight`: blocks requested at once by one fetch (each up to 1 MiB
/// in transit).
pub const MAX_IN_FLIGHT: usize = 1024;
/// Largest convergence secret file read (it holds 32 bytes, or 64 hex characters).
const MAX_SECRET_FILE_BYTES: u64 = 1024;

/// The checked `[storage]` table: what the node needs to open its store and run the Storage
/// engine.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    /// The store's redb file (`storage.path`, resolved against the configuration file's
    /// directory; default [`default_store_file`]).
    pub path: PathBuf,
    /// The store's quotas (`storage.max_bytes`, `storage.max_blocks`).
    pub store: StoreLimits,
    /// The engine's settings (put policy, searches, fetches, cache).
    pub engine: StorageSettings,
    /// Where the convergence secret was read from (`storage.convergence_secret_file`,
    /// resolved), if set.
    pub convergence_secret_file: Option<PathBuf>,
    /// The convergence secret for encrypted puts, read and checked at load.
    pub convergence_secret: Option<ConvergenceSecret>,
}

/// Checks the `[storage]` table of `file`, whose directory is `base`.
pub(super) fn storage(
    raw: RawStorage,
    file: &Path,
    base: &Path,
) -> Result<Option<StorageConfig>, ConfigError> {
    let bad = |key: &str, what: String| ConfigError::BadValue {
        file: file.to_path_buf(),
        key: format!("storage.{key}"),
        what,
    };
    let range = |key: &str, v: Option<u64>, default: u64, min: u64, max: u64| match v {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(v) => Err(bad(key, format!("{v} is not in {min}..={max}"))),
    };
    let count = |key: &str, v: Option<usize>, default: usize, min: usize, max: usize| {
        range(
            key,
            v.map(|v| v as u64),
            default as u64,
            min as u64,
            max as u64,
        )
        .map(|v| v as usize)
    };

    let store_defaults = StoreLimits::default();
    let store = StoreLimits {
        max_bytes: range(
            "max_bytes",
            raw.max_bytes,
            store_defaults.max_bytes,
            MIN_STORE_BYTES,
            MAX_STORE_BYTES,
        )?,
        max_blocks: range(
            "max_blocks",
            raw.max_blocks,
            store_defaults.max_blocks,
            1,
            MAX_STORE_BLOCKS,
        )?,
    };

    let mut engine = StorageSettings::default();
    let puts = &mut engine.puts;
    if let Some(a) = raw.accept_puts {
        puts.accept = a;
    }
    puts.min_trust = range(
        "put_min_trust",
        raw.put_min_trust,
        puts.min_trust.into(),
        0,
        u8::MAX.into(),
    )? as u8;
    puts.max_bytes_per_node = range(
        "max_put_bytes_per_node",
        raw.max_put_bytes_per_node,
        puts.max_bytes_per_node.min(store.max_bytes),
        0,
        store.max_bytes,
    )?;
    puts.max_lifetime = Duration::from_secs(range(
        "max_lifetime_s",
        raw.max_lifetime_s,
        puts.max_lifetime.as_secs(),
        1,
        MAX_LIFETIME_S,
    )?);
    engine.limits.cache_bytes = count(
        "cache_mib",
        raw.cache_mib,
        engine.limits.cache_bytes >> 20,
        0,
        MAX_CACHE_MIB,
    )? << 20;
    engine.fanout = count("fanout", raw.fanout, engine.fanout, 1, MAX_FANOUT)?;
    engine.hop_limit = count(
        "hop_limit",
        raw.hop_limit,
        engine.hop_limit,
        1,
        MAX_STORAGE_HOP_LIMIT,
    )?;
    engine.max_in_flight = count(
        "max_in_flight",
        raw.max_in_flight,
        engine.max_in_flight,
        1,
        MAX_IN_FLIGHT,
    )?;
    // One holder never gets more than the whole fetch may have in flight.
    engine.max_in_flight_per_holder = engine.max_in_flight_per_holder.min(engine.max_in_flight);

    let path = match raw.path {
        None => base.join(
            default_store_file(file)
                .file_name()
                .expect("a file name was just made"),
        ),
        Some(p) if p.as_os_str().is_empty() => {
            return Err(bad(
                "path",
                "an empty path; omit the key for the default".into(),
            ))
        }
        Some(p) => base.join(p),
    };
    if !raw.enabled.unwrap_or(true) {
        // Every value is checked, but a node without storage reads no secret.
        return Ok(None);
    }
    let (secret_file, secret) = match raw.convergence_secret_file {
        None => (None, None),
        Some(p) => {
            let p = base.join(p);
            let s = read_secret(file, &p)?;
            (Some(p), Some(s))
        }
    };
    Ok(Some(StorageConfig {
        path,
        store,
        engine,
        convergence_secret_file: secret_file,
        convergence_secret: secret,
    }))
}

/// Reads the convergence secret at `path`: owner-only permissions (on Unix), at most
/// [`MAX_SECRET_FILE_BYTES`], 32 bytes or 64 hex characters.
fn read_secret(file: &Path, path: &Path) -> Result<ConvergenceSecret, ConfigError> {
    const KEY: &str = "storage.convergence_secret_file";
    let io_err = |error| ConfigError::DomainFile {
        file: file.to_path_buf(),
        key: KEY.to_string(),
        path: path.to_path_buf(),
        error,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            file: file.to_path_buf(),
            key: KEY.to_string(),
            max: MAX_SECRET_FILE_BYTES,
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::SecretFileMode {
                file: file.to_path_buf(),
                key: KEY.to_string(),
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let bytes = std::fs::read(path).map_err(io_err)?;
    ConvergenceSecret::parse(&bytes).map_err(|what| ConfigError::BadValue {
        file: file.to_path_buf(),
        key: KEY.to_string(),
        what: format!("{}: {what}", path.display()),
    })
}
