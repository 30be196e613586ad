//! The configuration file (TOML, SPEC §4), its environment overrides, and its validation
//! into [`Settings`] before any socket or file of a source is opened; then, from each
//! validated source, the component that fetches it.
//!
//! A source's kind is decided once: validation turns its `kind` string into a typed
//! variant ([`IdpSettings`], [`IdentityCenterSettings`], [`TargetSource`]), and that
//! variant's `build` method turns it into a running [`Source`](idgraph_sources::Source).
//!
//! # Layout
//! - `raw`: the file as written, serde sections with `deny_unknown_fields`.
//! - `settings`: the validated [`Settings`] and the typed settings of each source.
//! - `validate`: the one validation pass, a function per section, and the checks every
//!   kind shares (required keys, secrets from the environment, timeouts).
//! - `targets`: validating `[[targets]]`, a function per kind.
//! - `build`: [`IdpSettings::build`], [`IdentityCenterSettings::build`] and
//!   [`TargetSettings::build`].

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

mod build;
mod raw;
mod settings;
mod targets;
mod validate;

pub use settings::{
    HttpSettings, IdentityCenterSettings, IdpSettings, Settings, TargetSettings, TargetSource,
    DEFAULT_DEADLINE, DEFAULT_SQL_TIMEOUT,
};

use raw::RawConfig;

/// Environment variables starting with this (then `__SECTION__KEY`) override the file.
pub const ENV_PREFIX: &str = "IDGRAPH";

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is missing, unreadable, not TOML, or has unknown keys or wrong types.
    #[error("{}: {message}", path.display())]
    Load {
        /// The configuration file.
        path: PathBuf,
        /// What the parser said, naming the key.
        message: String,
    },
    /// The file parses but its values are inconsistent; each problem names its key.
    #[error("{}: invalid configuration:\n  - {}", path.display(), problems.join("\n  - "))]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// One line per problem.
        problems: Vec<String>,
    },
}

/// Loads `path`, applies `IDGRAPH__SECTION__KEY` overrides from the process environment,
/// and validates the result.
///
/// # Errors
///
/// [`ConfigError::Load`] when the file cannot be read or parsed, names unknown keys, or
/// lacks required ones; [`ConfigError::Invalid`] listing every inconsistent value.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    load_inner(path, Secrets::Process)
}

/// [`load`] with the environment given as a map instead of read from the process, for
/// tests; `None` reads the process's.
///
/// # Errors
///
/// As [`load`].
pub fn load_with_env(
    path: &Path,
    env: Option<config::Map<String, String>>,
) -> Result<Settings, ConfigError> {
    load_inner(path, env.map_or(Secrets::Process, Secrets::Map))
}

/// What the commands that only read the store (`findings`, `history`, `verify`, `export`)
/// need of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The SQLite store.
    pub store_path: PathBuf,
    /// SHA-256 (hex) of the validated settings as they print, secrets shown as
    /// `[redacted]`: it identifies the configuration in evidence without holding or
    /// revealing any secret.
    pub digest: String,
}

/// The configuration at `path` for commands that only read the store. The whole
/// configuration is validated, as [`load`] does, but no token or password is read: none
/// needs to be set.
///
/// # Errors
///
/// As [`load`], but for secrets.
pub fn for_store(path: &Path) -> Result<StoreConfig, ConfigError> {
    let settings = load_inner(path, Secrets::Skip)?;
    Ok(StoreConfig {
        digest: hex::encode(Sha256::digest(format!("{settings:?}").as_bytes())),
        store_path: settings.store_path,
    })
}

/// Where validation reads the secrets a configuration names.
enum Secrets {
    /// From the process environment.
    Process,
    /// From a map standing for the environment (tests).
    Map(config::Map<String, String>),
    /// Nowhere: every variable reads as a placeholder and no token file is read, so the
    /// settings must not leave this module.
    Skip,
}

fn load_inner(path: &Path, secrets: Secrets) -> Result<Settings, ConfigError> {
    let load_error = |message: String| ConfigError::Load {
        path: path.to_owned(),
        message,
    };
    if !path.is_file() {
        return Err(load_error("no such configuration file".to_owned()));
    }
    let overrides = match &secrets {
        Secrets::Map(map) => Some(map.clone()),
        Secrets::Process | Secrets::Skip => None,
    };
    let mut raw: RawConfig = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(overrides),
        )
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| load_error(e.to_string()))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Secrets::Skip = secrets {
        raw.idp.remove("token_env");
        raw.idp.remove("token_file");
    }
    let lookup = |name: &str| match &secrets {
        Secrets::Process => std::env::var(name).ok(),
        Secrets::Map(map) => map.get(name).cloned(),
        Secrets::Skip => Some("withheld".to_owned()),
    };
    validate::validate(raw, base, &lookup).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

#[cfg(test)]
mod tests;
