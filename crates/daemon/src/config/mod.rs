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

/// The keys whose values are lists: from the environment, each takes comma-separated
/// values (`IDGRAPH__MAPPING__LOCAL_ALLOWLIST=etl_bot,report_bot`).
const LIST_KEYS: [&str; 5] = [
    "mapping.prefixes",
    "mapping.role_prefixes",
    "mapping.match_on",
    "mapping.system_users",
    "mapping.local_allowlist",
];

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
    /// An `IDGRAPH__…` variable holds a value of the wrong type or names an unknown key;
    /// the file alone is fine.
    #[error("environment variable {}: {message}", variables.join(", "))]
    Environment {
        /// The variables the error comes from.
        variables: Vec<String>,
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

/// Loads `path`, applies `IDGRAPH__SECTION__KEY` overrides from the process environment
/// (a list as comma-separated values), and validates the result.
///
/// # Errors
///
/// [`ConfigError::Load`] when the file cannot be read or parsed, names unknown keys, or
/// lacks required ones; [`ConfigError::Environment`] when an override does, naming the
/// variable; [`ConfigError::Invalid`] listing every inconsistent value.
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
    /// Nowhere: every variable reads as a placeholder and no token or password file is read,
    /// so the settings must not leave this module.
    Skip,
}

/// An `IDGRAPH__SECTION__KEY` variable and the key it sets.
struct Override {
    /// The variable's name, as set.
    variable: String,
    /// `section.key`, lowercase, as the `config` crate reads it.
    key: String,
    /// The variable's value.
    value: String,
}

impl Override {
    /// Whether this variable set `key` (`section`, `section.key`, `section.key[1]`).
    fn sets(&self, key: &str) -> bool {
        within(key, &self.key, &['.']) || within(&self.key, key, &['.', '['])
    }

    /// Whether `problem` (which starts with the key it is about) is about this variable's
    /// key.
    fn caused(&self, problem: &str) -> bool {
        within(&self.key, problem, &[' ', ':', '.', '['])
    }
}

/// Whether `text` is `key` or starts with `key` and then one of `next`.
fn within(key: &str, text: &str, next: &[char]) -> bool {
    text.strip_prefix(key)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(next))
}

/// The `IDGRAPH__…` variables of `env`, or of the process when `None`.
fn overrides(env: Option<&config::Map<String, String>>) -> Vec<Override> {
    let prefix = format!("{ENV_PREFIX}__");
    let vars: Vec<(String, String)> = match env {
        Some(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        None => std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
    };
    let mut overrides: Vec<Override> = vars
        .into_iter()
        .filter_map(|(variable, value)| {
            let key = match variable.split_at_checked(prefix.len()) {
                Some((head, key)) if head.eq_ignore_ascii_case(&prefix) => key,
                _ => return None,
            };
            Some(Override {
                key: key.to_lowercase().replace("__", "."),
                variable,
                value,
            })
        })
        .collect();
    overrides.sort_by(|a, b| a.variable.cmp(&b.variable));
    overrides
}

/// The file at `path` under `overrides`: lists split at commas, other values parsed as
/// the `config` crate does (numbers, booleans, strings).
fn build(path: &Path, overrides: &[Override]) -> Result<RawConfig, config::ConfigError> {
    let (lists, scalars): (Vec<&Override>, Vec<&Override>) = overrides
        .iter()
        .partition(|o| LIST_KEYS.contains(&o.key.as_str()));
    let scalars = scalars
        .iter()
        .map(|o| (o.variable.clone(), o.value.clone()))
        .collect();
    let mut builder = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(scalars)),
        );
    for list in lists {
        let values: Vec<String> = list
            .value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        builder = builder.set_override(&list.key, values)?;
    }
    builder.build()?.try_deserialize()
}

/// The key a `config` error is about, when it says.
fn error_key(error: &config::ConfigError) -> Option<&str> {
    match error {
        config::ConfigError::Type { key, .. } | config::ConfigError::At { key, .. } => {
            key.as_deref()
        }
        _ => None,
    }
}

fn load_inner(path: &Path, secrets: Secrets) -> Result<Settings, ConfigError> {
    let load_error = |message: String| ConfigError::Load {
        path: path.to_owned(),
        message,
    };
    if !path.is_file() {
        return Err(load_error("no such configuration file".to_owned()));
    }
    let overrides = overrides(match &secrets {
        Secrets::Map(map) => Some(map),
        Secrets::Process | Secrets::Skip => None,
    });
    let mut raw = build(path, &overrides).map_err(|e| {
        // Blame the environment only when the file alone is fine.
        if overrides.is_empty() || build(path, &[]).is_err() {
            return load_error(e.to_string());
        }
        let mut variables: Vec<String> = overrides
            .iter()
            .filter(|o| error_key(&e).is_some_and(|key| o.sets(key)))
            .map(|o| o.variable.clone())
            .collect();
        if variables.is_empty() {
            variables = overrides.iter().map(|o| o.variable.clone()).collect();
        }
        ConfigError::Environment {
            variables,
            message: e.to_string(),
        }
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Secrets::Skip = secrets {
        raw.idp.remove("token_env");
        raw.idp.remove("token_file");
        // A password file alone reads as the placeholder every variable reads as here.
        for target in &mut raw.targets {
            if !target.contains_key("password_env") && target.remove("password_file").is_some() {
                target.insert("password_env".into(), "IDGRAPH_WITHHELD".into());
            }
        }
    }
    let lookup = |name: &str| match &secrets {
        Secrets::Process => std::env::var(name).ok(),
        Secrets::Map(map) => map.get(name).cloned(),
        Secrets::Skip => Some("withheld".to_owned()),
    };
    validate::validate(raw, base, &lookup).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems: problems
            .into_iter()
            .map(
                |problem| match overrides.iter().find(|o| o.caused(&problem)) {
                    Some(o) => format!("{problem} (set by {})", o.variable),
                    None => problem,
                },
            )
            .collect(),
    })
}

#[cfg(test)]
mod tests;
