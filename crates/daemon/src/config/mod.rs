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
    load_with_env(path, None)
}

/// [`load`] with the environment given as a map instead of read from the process, for tests.
///
/// # Errors
///
/// As [`load`].
pub fn load_with_env(
    path: &Path,
    env: Option<config::Map<String, String>>,
) -> Result<Settings, ConfigError> {
    load_inner(path, env, true)
}

/// [`load`] for commands that only read the store (`findings`, `history`, `verify`,
/// `export`): no token or password is read, so none needs to be set. The settings it
/// returns must not be used to build sources.
///
/// # Errors
///
/// As [`load`].
pub fn load_without_secrets(path: &Path) -> Result<Settings, ConfigError> {
    load_inner(path, None, false)
}

fn load_inner(
    path: &Path,
    env: Option<config::Map<String, String>>,
    secrets: bool,
) -> Result<Settings, ConfigError> {
    let overrides = env.clone();
    let load_error = |message: String| ConfigError::Load {
        path: path.to_owned(),
        message,
    };
    if !path.is_file() {
        return Err(load_error("no such configuration file".to_owned()));
    }
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
    if !secrets {
        raw.idp.token_env = None;
        raw.idp.token_file = None;
    }
    let lookup = |name: &str| match &env {
        _ if !secrets => Some("unresolved".to_owned()),
        Some(map) => map.get(name).cloned(),
        None => std::env::var(name).ok(),
    };
    validate::validate(raw, base, &lookup).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

#[cfg(test)]
mod tests;
