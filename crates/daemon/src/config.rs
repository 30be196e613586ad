//! The configuration file (TOML, SPEC §4), its environment overrides, and its validation
//! into [`Settings`] before any socket or file of a source is opened.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use std::time::Duration;

use idgraph_aws::{
    IdentityCenterOptions, ProvisionedCredentials, ProvisionedOptions, ServerlessCredentials,
    ServerlessOptions, TargetOptions,
};
use idgraph_model::{Mapping, ShrinkGuard};
use idgraph_sources::postgres::{Connection, SslMode};
use idgraph_sources::scim::{parse_base_url, Paging, ScimOptions};
use idgraph_sources::Secret;
use serde::Deserialize;

/// Environment variables starting with this (then `__SECTION__KEY`) override the file.
pub const ENV_PREFIX: &str = "IDGRAPH";

/// Source names reserved for the IdP and Identity Center; no target may take them.
const RESERVED_NAMES: [&str; 2] = ["idp", "identity_center"];

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

/// The file as written: every kind's fields are optional here and checked in [`validate`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    schedule: ScheduleSection,
    #[serde(default)]
    http: HttpSection,
    idp: IdpSection,
    identity_center: IdentityCenterSection,
    #[serde(default)]
    targets: Vec<TargetSection>,
    #[serde(default)]
    mapping: Mapping,
    #[serde(default)]
    remediation: RemediationSection,
    #[serde(default)]
    reconcile: ReconcileSection,
}

/// `[reconcile]`: how a run fetches its sources.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ReconcileSection {
    /// How many database targets are fetched at once.
    target_concurrency: usize,
    /// A source whose object count falls by more than this percentage of its last complete
    /// snapshot (and by at least `max_shrink_count`) fails as suspicious (default 20).
    max_shrink_percent: u8,
    /// The fewest objects a shrink must remove to be suspicious (default 25), so that a
    /// few users dropped from a small target never trip the guard.
    max_shrink_count: u64,
}

impl Default for ReconcileSection {
    fn default() -> Self {
        let guard = ShrinkGuard::default();
        Self {
            target_concurrency: 4,
            max_shrink_percent: guard.max_percent,
            max_shrink_count: guard.max_count,
        }
    }
}

/// How long a whole fetch of one source may take unless `deadline_seconds` says otherwise:
/// a 200,000-user Identity Center at 20 pages of 100 a second takes under two minutes, and
/// a SCIM IdP of that size a few minutes more.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1800);

/// `[store]`: where the drift history lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct StoreSection {
    /// The SQLite file, created and migrated on start; relative to the config file.
    path: PathBuf,
    /// Runs older than this many days are pruned after each run (keeping the chain
    /// verifiable); unset keeps everything.
    retention_days: Option<u32>,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            path: PathBuf::from("idgraph.db"),
            retention_days: None,
        }
    }
}

/// `[schedule]`: when the daemon reconciles.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ScheduleSection {
    /// A 6-field cron expression (sec min hour dom mon dow).
    cron: String,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            cron: "0 */15 * * * *".to_owned(),
        }
    }
}

/// `[http]`: where the daemon serves /metrics, /healthz and /readyz.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct HttpSection {
    /// Address (or host name) and port to listen on.
    listen: String,
    /// Seconds a client has to send a whole request head, counted from when the
    /// connection opens or its previous response ends; so also how long an idle
    /// keep-alive connection stays open.
    header_timeout_seconds: u64,
    /// Connections served at once; more wait in the listen backlog.
    max_connections: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9187".to_owned(),
            header_timeout_seconds: 10,
            max_connections: 128,
        }
    }
}

/// `[idp]`: the identity provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdpSection {
    /// `scim` or `file`.
    kind: String,
    /// scim: the base URL; users are read from `{url}/Users`. No user info
    /// (`user:password@`): the token comes from `token_env` or `token_file`.
    url: Option<String>,
    /// scim: the environment variable holding the bearer token.
    token_env: Option<String>,
    /// scim: a file holding the bearer token.
    token_file: Option<PathBuf>,
    /// scim: users per page (`count`).
    page_size: Option<u32>,
    /// scim: `auto` (read /ServiceProviderConfig), `index` or `cursor`.
    paging: Option<String>,
    /// scim: pages in flight at once once the total is known (default 4).
    concurrency: Option<usize>,
    /// scim: seconds one request may take, at least 1 (default 30).
    timeout_seconds: Option<u64>,
    /// scim: the largest response body read, in bytes (default 64 MiB); a larger answer
    /// fails the fetch as soon as it passes this, without a retry.
    max_response_bytes: Option<u64>,
    /// scim: the most users the listing may hold (default 1,000,000): a larger
    /// `totalResults` fails the fetch at once, and paging stops with an error once more
    /// users, or more pages than they can need, arrive.
    max_users: Option<u64>,
    /// file: a SCIM ListResponse, an array of them, or an array of User resources.
    path: Option<PathBuf>,
    /// How long the whole fetch may take, in seconds (default 1800).
    deadline_seconds: Option<u64>,
}

/// `[identity_center]`: the IAM Identity Center identity store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityCenterSection {
    /// `aws` or `file`.
    kind: String,
    /// aws: the identity store id (`d-1234567890`).
    identity_store_id: Option<String>,
    /// aws: the region.
    region: Option<String>,
    /// aws: an endpoint override (VPC endpoint, local emulator).
    endpoint_url: Option<String>,
    /// aws: client-side limit of `ListUsers` calls a second (default 20, the service quota).
    requests_per_second: Option<u32>,
    /// file: the output of `aws identitystore list-users`.
    path: Option<PathBuf>,
    /// How long the whole fetch may take, in seconds (default 1800).
    deadline_seconds: Option<u64>,
}

/// `[[targets]]`: one Redshift cluster, serverless workgroup, PostgreSQL database or export.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSection {
    /// Unique name, used in findings, metric labels and history.
    name: String,
    /// `provisioned`, `serverless`, `postgres` or `file`.
    kind: String,
    /// provisioned: the `ClusterIdentifier`.
    cluster_identifier: Option<String>,
    /// serverless: the `WorkgroupName`.
    workgroup_name: Option<String>,
    /// The database to connect to.
    database: Option<String>,
    /// The AWS region of the cluster or workgroup.
    region: Option<String>,
    /// An endpoint override for the redshift / redshift-serverless API.
    endpoint_url: Option<String>,
    /// How idgraph gets credentials for its SQL connection.
    credentials: Option<String>,
    /// get_cluster_credentials: the database user to get credentials for.
    db_user: Option<String>,
    /// static: the environment variable holding the user name.
    user_env: Option<String>,
    /// static: the environment variable holding the password.
    password_env: Option<String>,
    /// Overrides the endpoint address the API reports.
    host: Option<String>,
    /// Overrides the endpoint port the API reports.
    port: Option<u16>,
    /// `disable`, `prefer`, `require` or `verify-full`.
    sslmode: Option<String>,
    /// file: a CSV of `pg_user` as `psql --csv -c 'select * from pg_user'` prints it.
    path: Option<PathBuf>,
    /// file, postgres: the master/admin user, which is never a finding (the APIs report it
    /// for provisioned and serverless targets).
    master_user: Option<String>,
    /// How long connecting and each query may take, in seconds, at least 1 (default 60).
    timeout_seconds: Option<u64>,
    /// How long the whole fetch may take, in seconds (default 1800).
    deadline_seconds: Option<u64>,
}

/// `[remediation]`: how remediation plans are written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemediationSection {
    /// The user that receives the objects of users a plan drops.
    new_owner: Option<String>,
}

/// A validated configuration: every path absolute, every kind supported.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SQLite store.
    pub store_path: PathBuf,
    /// How long runs are kept; `None` keeps them forever.
    pub retention: Option<chrono::Duration>,
    /// The 6-field cron schedule of the daemon.
    pub cron: String,
    /// Where and how the daemon serves HTTP.
    pub http: HttpSettings,
    /// The identity provider.
    pub idp: IdpSettings,
    /// IAM Identity Center.
    pub identity_center: IdentityCenterSettings,
    /// The database targets, in config order.
    pub targets: Vec<TargetSettings>,
    /// How database user names map to identities.
    pub mapping: Mapping,
    /// The owner that receives a dropped user's objects.
    pub new_owner: Option<String>,
    /// How many targets a run fetches at once.
    pub target_concurrency: usize,
    /// How far a source may shrink before its snapshot is suspicious.
    pub shrink_guard: ShrinkGuard,
    /// How long the whole fetch of the IdP may take.
    pub idp_deadline: Duration,
    /// How long the whole fetch of Identity Center may take.
    pub identity_center_deadline: Duration,
}

impl Settings {
    /// The name of every source: `idp`, `identity_center`, then the targets in config order.
    pub fn source_names(&self) -> Vec<&str> {
        ["idp", "identity_center"]
            .into_iter()
            .chain(self.targets.iter().map(|t| t.name.as_str()))
            .collect()
    }
}

/// How the daemon serves /metrics, /healthz and /readyz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// `http.listen` as written, for messages.
    pub listen: String,
    /// What `listen` resolved to when the configuration was validated; never empty. The
    /// daemon binds the first of them it can.
    pub addresses: Vec<SocketAddr>,
    /// How long a client may take to send a request head, or stay idle between requests.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Where the IdP's users come from.
#[derive(Debug, Clone)]
pub enum IdpSettings {
    /// A SCIM export on disk.
    File {
        /// The export.
        path: PathBuf,
    },
    /// A live SCIM 2.0 service provider.
    Scim(ScimOptions),
}

/// Where the Identity Center users come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityCenterSettings {
    /// An `aws identitystore list-users` export on disk.
    File {
        /// The export.
        path: PathBuf,
    },
    /// The identitystore API.
    Aws(IdentityCenterOptions),
}

/// One database target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSettings {
    /// The target's unique name.
    pub name: String,
    /// How long the whole fetch of the target may take.
    pub deadline: Duration,
    /// Where its users come from.
    pub source: TargetSource,
}

/// Where a target's users come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSource {
    /// A `pg_user` CSV export on disk.
    File {
        /// The export.
        path: PathBuf,
        /// The master/admin user of the target, if known.
        master_user: Option<String>,
    },
    /// A provisioned Redshift cluster.
    Provisioned(ProvisionedOptions),
    /// A Redshift Serverless workgroup.
    Serverless(ServerlessOptions),
    /// A PostgreSQL-protocol endpoint with static credentials.
    Postgres {
        /// Where and as whom to connect.
        connection: Connection,
        /// The admin user of the database, if any.
        master_user: Option<String>,
        /// How long connecting and each query may take.
        timeout: Duration,
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
    validate(raw, base, &lookup).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// `[idp]` of kind `scim`.
fn scim_options(
    section: IdpSection,
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
    problems: &mut Vec<String>,
) -> Option<ScimOptions> {
    let url = required("idp.url", "scim", section.url, problems)?;
    // The source's own check, so that what validates also connects. Its message leaves
    // the URL out, and so does this one: it may hold a password as user info.
    if let Err(e) = parse_base_url(&url) {
        problems.push(format!("idp.url is not usable: {e}"));
    }
    let mut options = ScimOptions::new(url);
    options.token = match (section.token_env, section.token_file) {
        (Some(_), Some(_)) => {
            problems.push("idp.token_env and idp.token_file are both set; set one".into());
            None
        }
        (Some(var), None) => from_env("idp.token_env", Some(&var), env, problems).map(Secret::new),
        (None, Some(file)) => {
            let file = base.join(file);
            match std::fs::read_to_string(&file) {
                Ok(token) if !token.trim().is_empty() => Some(Secret::new(token.trim())),
                Ok(_) => {
                    problems.push(format!("idp.token_file {} is empty", file.display()));
                    None
                }
                Err(e) => {
                    problems.push(format!(
                        "idp.token_file {} cannot be read: {e}",
                        file.display()
                    ));
                    None
                }
            }
        }
        (None, None) => None,
    };
    if let Some(page_size) = section.page_size {
        options.page_size = page_size;
    }
    options.paging = match section.paging.as_deref() {
        None | Some("auto") => Paging::Auto,
        Some("index") => Paging::Index,
        Some("cursor") => Paging::Cursor,
        Some(other) => {
            problems.push(format!(
                "idp.paging = \"{other}\" is unknown: expected \"auto\", \"index\" or \"cursor\""
            ));
            Paging::Auto
        }
    };
    if let Some(concurrency) = section.concurrency {
        if concurrency == 0 {
            problems.push("idp.concurrency must be at least 1".into());
        }
        options.concurrency = concurrency;
    }
    if let Some(seconds) = section.timeout_seconds {
        options.timeout = timeout_seconds("idp", Some(seconds), problems);
    }
    if let Some(bytes) = section.max_response_bytes {
        if bytes == 0 {
            problems.push("idp.max_response_bytes must be at least 1".into());
        }
        options.max_response_bytes = bytes;
    }
    if let Some(users) = section.max_users {
        if users == 0 {
            problems.push("idp.max_users must be at least 1".into());
        }
        options.max_users = users;
    }
    Some(options)
}

/// The user and password of static credentials, read from the variables `user_env` and
/// `password_env` name; the password may be optional (trust authentication).
fn static_credentials(
    key: &str,
    target: &TargetSection,
    password_required: bool,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<(String, Option<Secret>)> {
    let user_key = format!("{key}.user_env");
    let password_key = format!("{key}.password_env");
    let kind = "static credentials";
    let user_env = required(&user_key, kind, target.user_env.clone(), problems);
    let password_env = match password_required {
        true => required(&password_key, kind, target.password_env.clone(), problems),
        false => target.password_env.clone(),
    };
    let user = from_env(&user_key, user_env.as_deref(), env, problems);
    let password = from_env(&password_key, password_env.as_deref(), env, problems).map(Secret::new);
    if password_required && password.is_none() {
        return None;
    }
    Some((user?, password))
}

/// A `[[targets]]` table of kind `postgres`: a PostgreSQL-protocol endpoint with static
/// credentials.
fn postgres_target(
    key: &str,
    target: TargetSection,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<TargetSource> {
    let kind = "postgres";
    let host = required(&format!("{key}.host"), kind, target.host.clone(), problems);
    let database = required(
        &format!("{key}.database"),
        kind,
        target.database.clone(),
        problems,
    );
    if let Some(other) = target.credentials.as_deref().filter(|c| *c != "static") {
        problems.push(format!(
            "{key}.credentials = \"{other}\" does not apply: a postgres target uses \"static\" credentials from user_env and password_env"
        ));
    }
    let login = static_credentials(key, &target, false, env, problems);
    let sslmode = sslmode(
        &format!("{key}.sslmode"),
        target.sslmode.as_deref(),
        problems,
    );
    let timeout = timeout_seconds(key, target.timeout_seconds, problems);
    let (user, password) = login?;
    Some(TargetSource::Postgres {
        connection: Connection {
            host: host?,
            port: target.port.unwrap_or(5432),
            database: database?,
            user,
            password,
            sslmode,
        },
        master_user: target.master_user,
        timeout,
    })
}

/// A `[[targets]]` table of kind `provisioned` or `serverless`.
fn redshift_target(
    key: &str,
    target: TargetSection,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<TargetSource> {
    let kind = target.kind.as_str();
    let database = required(
        &format!("{key}.database"),
        kind,
        target.database.clone(),
        problems,
    );
    let sslmode = sslmode(
        &format!("{key}.sslmode"),
        target.sslmode.as_deref(),
        problems,
    );
    let timeout = timeout_seconds(key, target.timeout_seconds, problems);
    let options = database.map(|database| TargetOptions {
        name: target.name.clone(),
        database,
        region: target.region.clone(),
        endpoint_url: target.endpoint_url.clone(),
        host: target.host.clone(),
        port: target.port,
        sslmode,
        timeout,
    });
    let default_credentials = if kind == "provisioned" {
        "get_cluster_credentials"
    } else {
        "serverless_get_credentials"
    };
    let credentials = target.credentials.as_deref().unwrap_or(default_credentials);
    let static_login =
        |problems: &mut Vec<String>| match static_credentials(key, &target, true, env, problems) {
            Some((user, Some(password))) => Some((user, password)),
            _ => None,
        };
    if kind == "provisioned" {
        let cluster_identifier = required(
            &format!("{key}.cluster_identifier"),
            kind,
            target.cluster_identifier.clone(),
            problems,
        );
        let credentials = match credentials {
            "get_cluster_credentials" => required(
                &format!("{key}.db_user"),
                "get_cluster_credentials",
                target.db_user.clone(),
                problems,
            )
            .map(|db_user| ProvisionedCredentials::GetClusterCredentials { db_user }),
            "get_cluster_credentials_with_iam" => {
                Some(ProvisionedCredentials::GetClusterCredentialsWithIam)
            }
            "static" => static_login(problems)
                .map(|(user, password)| ProvisionedCredentials::Static { user, password }),
            other => {
                problems.push(format!(
                    "{key}.credentials = \"{other}\" does not apply to a provisioned target: expected \"get_cluster_credentials\", \"get_cluster_credentials_with_iam\" or \"static\""
                ));
                None
            }
        };
        Some(TargetSource::Provisioned(ProvisionedOptions {
            cluster_identifier: cluster_identifier?,
            credentials: credentials?,
            target: options?,
        }))
    } else {
        let workgroup_name = required(
            &format!("{key}.workgroup_name"),
            kind,
            target.workgroup_name.clone(),
            problems,
        );
        let credentials = match credentials {
            "serverless_get_credentials" => Some(ServerlessCredentials::GetCredentials),
            "static" => static_login(problems)
                .map(|(user, password)| ServerlessCredentials::Static { user, password }),
            other => {
                problems.push(format!(
                    "{key}.credentials = \"{other}\" does not apply to a serverless target: expected \"serverless_get_credentials\" or \"static\""
                ));
                None
            }
        };
        Some(TargetSource::Serverless(ServerlessOptions {
            workgroup_name: workgroup_name?,
            credentials: credentials?,
            target: options?,
        }))
    }
}

/// Reads the environment variable that `key` names. A missing variable is a problem that
/// names the variable only when `var` looks like a variable's name: anything else may be
/// the secret itself, written where its variable's name belongs.
fn from_env(
    key: &str,
    var: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<String> {
    let var = var?;
    match env(var) {
        Some(value) if !value.is_empty() => Some(value),
        _ if looks_like_env_var(var) => {
            problems.push(format!(
                "{key} names the environment variable {var}, which is not set"
            ));
            None
        }
        _ => {
            problems.push(format!(
                "{key} does not name an environment variable (it should hold a variable's \
                 name, not the secret itself)"
            ));
            None
        }
    }
}

/// Whether `name` has the shape environment variables are given, `[A-Z_][A-Z0-9_]*` of
/// at most 128 characters; tokens and passwords rarely do.
fn looks_like_env_var(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// `{table}.timeout_seconds`, 60 when absent. 0 is a problem: every request would time
/// out at once.
fn timeout_seconds(table: &str, seconds: Option<u64>, problems: &mut Vec<String>) -> Duration {
    let seconds = seconds.unwrap_or(60);
    if seconds == 0 {
        problems.push(format!("{table}.timeout_seconds must be at least 1"));
    }
    Duration::from_secs(seconds)
}

/// A required key of a kind: `None` and a problem naming it when absent.
fn required<T>(key: &str, kind: &str, value: Option<T>, problems: &mut Vec<String>) -> Option<T> {
    if value.is_none() {
        problems.push(format!("{key} is required for kind \"{kind}\""));
    }
    value
}

/// A whole-fetch deadline of `seconds` (default [`DEFAULT_DEADLINE`]); 0 is a problem.
fn deadline(key: &str, seconds: Option<u64>, problems: &mut Vec<String>) -> Duration {
    match seconds {
        None => DEFAULT_DEADLINE,
        Some(0) => {
            problems.push(format!("{key} must be at least 1"));
            DEFAULT_DEADLINE
        }
        Some(seconds) => Duration::from_secs(seconds),
    }
}

/// Parses `sslmode`, defaulting to `require`.
fn sslmode(key: &str, value: Option<&str>, problems: &mut Vec<String>) -> SslMode {
    match value {
        None => SslMode::default(),
        Some(s) => SslMode::parse(s).unwrap_or_else(|| {
            problems.push(format!(
                "{key} = \"{s}\" is unknown: expected \"disable\", \"prefer\", \"require\" or \"verify-full\""
            ));
            SslMode::default()
        }),
    }
}

/// `[http]`: `listen` is an address and port, or a host name and port that resolves
/// (`localhost:9187`); the limits are positive.
fn http_settings(section: HttpSection, problems: &mut Vec<String>) -> Option<HttpSettings> {
    if section.header_timeout_seconds == 0 {
        problems.push("http.header_timeout_seconds must be at least 1".into());
    }
    if section.max_connections == 0 {
        problems.push("http.max_connections must be at least 1".into());
    }
    let listen = section.listen;
    // An address needs no lookup; `ToSocketAddrs` also takes `host:port`.
    let addresses =
        match listen.parse::<SocketAddr>() {
            Ok(address) => Ok(vec![address]),
            Err(_) => listen
                .to_socket_addrs()
                .map(Vec::from_iter)
                .and_then(|addresses| match addresses.is_empty() {
                    true => Err(std::io::Error::other("the name has no addresses")),
                    false => Ok(addresses),
                }),
        };
    match addresses {
        Ok(addresses) => Some(HttpSettings {
            listen,
            addresses,
            header_timeout: Duration::from_secs(section.header_timeout_seconds),
            max_connections: section.max_connections,
        }),
        Err(e) => {
            problems.push(format!(
                "http.listen = \"{listen}\" is neither an address and port nor a host name and port that resolves: {e}"
            ));
            None
        }
    }
}

/// Checks everything that can be checked without network I/O (but for looking up a host
/// name in `http.listen`), reads the secrets the config names from the environment
/// (`env`), and resolves relative paths against `base`, the directory of the config file.
fn validate(
    raw: RawConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, Vec<String>> {
    let mut problems = Vec::new();
    let resolve = |p: &Path| base.join(p);
    let required_path = |key: &str, path: Option<PathBuf>, problems: &mut Vec<String>| match path {
        Some(p) if !p.as_os_str().is_empty() => Some(resolve(&p)),
        _ => {
            problems.push(format!("{key} is required for kind \"file\""));
            None
        }
    };

    let idp_deadline = deadline(
        "idp.deadline_seconds",
        raw.idp.deadline_seconds,
        &mut problems,
    );
    let identity_center_deadline = deadline(
        "identity_center.deadline_seconds",
        raw.identity_center.deadline_seconds,
        &mut problems,
    );
    let idp = match raw.idp.kind.as_str() {
        "file" => required_path("idp.path", raw.idp.path, &mut problems)
            .map(|path| IdpSettings::File { path }),
        "scim" => scim_options(raw.idp, env, base, &mut problems).map(IdpSettings::Scim),
        other => {
            problems.push(format!(
                "idp.kind = \"{other}\" is unknown: expected \"scim\" or \"file\""
            ));
            None
        }
    };

    let identity_center = match raw.identity_center.kind.as_str() {
        "file" => required_path(
            "identity_center.path",
            raw.identity_center.path,
            &mut problems,
        )
        .map(|path| IdentityCenterSettings::File { path }),
        "aws" => {
            let section = raw.identity_center;
            required(
                "identity_center.identity_store_id",
                "aws",
                section.identity_store_id,
                &mut problems,
            )
            .map(|identity_store_id| {
                let mut options = IdentityCenterOptions::new(identity_store_id);
                options.region = section.region;
                options.endpoint_url = section.endpoint_url;
                if let Some(rate) = section.requests_per_second {
                    options.requests_per_second = rate;
                }
                IdentityCenterSettings::Aws(options)
            })
        }
        other => {
            problems.push(format!(
                "identity_center.kind = \"{other}\" is unknown: expected \"aws\" or \"file\""
            ));
            None
        }
    };

    let mut names = HashSet::new();
    let mut targets = Vec::with_capacity(raw.targets.len());
    for (i, target) in raw.targets.into_iter().enumerate() {
        let key = format!("targets[{i}]");
        let name = target.name.clone();
        if target.name.trim().is_empty() {
            problems.push(format!("{key}.name must not be empty"));
        } else if RESERVED_NAMES.contains(&target.name.as_str()) {
            problems.push(format!(
                "{key}.name = \"{}\" is reserved for a source; choose another name",
                target.name
            ));
        } else if !names.insert(target.name.clone()) {
            problems.push(format!(
                "{key}.name = \"{}\" is used by another target",
                target.name
            ));
        }
        let deadline = deadline(
            &format!("{key}.deadline_seconds"),
            target.deadline_seconds,
            &mut problems,
        );
        let source = match target.kind.as_str() {
            "file" => {
                required_path(&format!("{key}.path"), target.path, &mut problems).map(|path| {
                    TargetSource::File {
                        path,
                        master_user: target.master_user,
                    }
                })
            }
            "postgres" => postgres_target(&key, target, env, &mut problems),
            "provisioned" | "serverless" => redshift_target(&key, target, env, &mut problems),
            other => {
                problems.push(format!(
                    "{key}.kind = \"{other}\" is unknown: expected \"provisioned\", \"serverless\", \"postgres\" or \"file\""
                ));
                None
            }
        };
        if let Some(source) = source {
            targets.push(TargetSettings {
                name,
                source,
                deadline,
            });
        }
    }

    let mapping = raw.mapping;
    if mapping.match_on.is_empty() {
        problems.push("mapping.match_on must name at least one of \"user_name\", \"email\"".into());
    }
    if mapping.prefixes.iter().any(|p| p.is_empty()) {
        problems.push("mapping.prefixes must not contain an empty prefix".into());
    }

    let http = http_settings(raw.http, &mut problems);

    if raw.reconcile.target_concurrency == 0 {
        problems.push("reconcile.target_concurrency must be at least 1".into());
    }
    if raw.reconcile.max_shrink_percent > 100 {
        problems.push(format!(
            "reconcile.max_shrink_percent = {} must be between 0 and 100",
            raw.reconcile.max_shrink_percent
        ));
    }

    // Parsed by the scheduler's own parser, so that what validates also schedules.
    let cron_ok = raw.schedule.cron.split_whitespace().count() == 6
        && tokio_cron_scheduler::Job::new_async(raw.schedule.cron.as_str(), |_, _| {
            Box::pin(async {})
        })
        .is_ok();
    if !cron_ok {
        problems.push(format!(
            "schedule.cron = \"{}\" is not a 6-field cron expression (sec min hour day-of-month month day-of-week)",
            raw.schedule.cron
        ));
    }

    match (idp, identity_center, http) {
        (Some(idp), Some(identity_center), Some(http)) if problems.is_empty() => Ok(Settings {
            store_path: resolve(&raw.store.path),
            retention: raw
                .store
                .retention_days
                .map(|days| chrono::Duration::days(i64::from(days))),
            cron: raw.schedule.cron,
            http,
            idp,
            identity_center,
            targets,
            mapping,
            new_owner: raw.remediation.new_owner,
            target_concurrency: raw.reconcile.target_concurrency,
            shrink_guard: ShrinkGuard {
                max_percent: raw.reconcile.max_shrink_percent,
                max_count: raw.reconcile.max_shrink_count,
            },
            idp_deadline,
            identity_center_deadline,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[idp]
kind = "file"
path = "exports/scim.json"

[identity_center]
kind = "file"
path = "/abs/ic.json"

[[targets]]
name = "analytics"
kind = "file"
path = "exports/analytics.csv"
master_user = "awsuser"
"#;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("idgraph.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load_text(text: &str) -> (tempfile::TempDir, Result<Settings, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), text);
        let result = load_with_env(&path, Some(Default::default()));
        (dir, result)
    }

    #[test]
    fn minimal_file_config_resolves_paths_against_the_config_directory() {
        let (dir, settings) = load_text(MINIMAL);
        let settings = settings.unwrap();
        assert!(
            matches!(&settings.idp, IdpSettings::File { path } if *path == dir.path().join("exports/scim.json")),
            "{:?}",
            settings.idp
        );
        assert_eq!(
            settings.identity_center,
            IdentityCenterSettings::File {
                path: PathBuf::from("/abs/ic.json")
            }
        );
        assert_eq!(settings.store_path, dir.path().join("idgraph.db"));
        assert_eq!(settings.cron, "0 */15 * * * *");
        assert_eq!(settings.mapping, Mapping::default());
        assert_eq!(
            settings.targets[0].source,
            TargetSource::File {
                path: dir.path().join("exports/analytics.csv"),
                master_user: Some("awsuser".into())
            }
        );
    }

    #[test]
    fn target_concurrency_defaults_to_4_and_must_be_positive() {
        let (_dir, settings) = load_text(MINIMAL);
        assert_eq!(settings.unwrap().target_concurrency, 4);
        let (_dir, settings) = load_text(&format!(
            "{MINIMAL}\n[reconcile]\ntarget_concurrency = 16\n"
        ));
        assert_eq!(settings.unwrap().target_concurrency, 16);
        let (_dir, err) = load_text(&format!("{MINIMAL}\n[reconcile]\ntarget_concurrency = 0\n"));
        let message = err.unwrap_err().to_string();
        assert!(
            message.contains("reconcile.target_concurrency must be at least 1"),
            "{message}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let (_dir, err) = load_text(&format!("{MINIMAL}\n[mapping]\nprefixs = [\"IAM:\"]\n"));
        let message = err.unwrap_err().to_string();
        assert!(message.contains("prefixs"), "{message}");
    }

    #[test]
    fn missing_section_is_named() {
        let (_dir, err) = load_text("[idp]\nkind = \"file\"\npath = \"x\"\n");
        let message = err.unwrap_err().to_string();
        assert!(message.contains("identity_center"), "{message}");
    }

    #[test]
    fn unsupported_and_inconsistent_values_are_all_listed() {
        let text = r#"
[idp]
kind = "scim"
url = "https://idp.example.com/scim/v2"
token_env = "NOT_SET_ANYWHERE"
paging = "pages"

[identity_center]
kind = "file"

[[targets]]
name = "idp"
kind = "provisioned"
sslmode = "verify_full"

[[targets]]
name = "wg"
kind = "serverless"
workgroup_name = "finance"
database = "dev"
credentials = "get_cluster_credentials"

[[targets]]
name = "a"
kind = "file"
path = "a.csv"

[[targets]]
name = "a"
kind = "redshift"
"#;
        let (_dir, err) = load_text(text);
        let message = err.unwrap_err().to_string();
        for expected in [
            "idp.token_env names the environment variable NOT_SET_ANYWHERE, which is not set",
            "idp.paging = \"pages\" is unknown",
            "identity_center.path is required",
            "targets[0].name = \"idp\" is reserved",
            "targets[0].cluster_identifier is required for kind \"provisioned\"",
            "targets[0].database is required for kind \"provisioned\"",
            "targets[0].db_user is required for kind \"get_cluster_credentials\"",
            "targets[0].sslmode = \"verify_full\" is unknown",
            "targets[1].credentials = \"get_cluster_credentials\" does not apply to a serverless target",
            "targets[3].name = \"a\" is used by another target",
            "targets[3].kind = \"redshift\" is unknown",
        ] {
            assert!(
                message.contains(expected),
                "missing {expected:?} in {message}"
            );
        }
    }

    #[test]
    fn live_sources_read_their_secrets_from_the_environment() {
        let text = r#"
[idp]
kind = "scim"
url = "https://idp.example.com/scim/v2"
token_env = "SCIM_TOKEN"
page_size = 50

[identity_center]
kind = "aws"
identity_store_id = "d-1234567890"
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:5000"

[[targets]]
name = "analytics"
kind = "provisioned"
cluster_identifier = "analytics"
database = "dev"
db_user = "idgraph_reader"
host = "127.0.0.1"
port = 5439

[[targets]]
name = "finance"
kind = "serverless"
workgroup_name = "finance-wg"
database = "dev"
credentials = "static"
user_env = "FIN_USER"
password_env = "FIN_PASSWORD"
"#;
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), text);
        let env = config::Map::from([
            ("SCIM_TOKEN".to_owned(), "tok-123".to_owned()),
            ("FIN_USER".to_owned(), "reader".to_owned()),
            ("FIN_PASSWORD".to_owned(), "pw-456".to_owned()),
        ]);
        let settings = load_with_env(&path, Some(env)).unwrap();
        let IdpSettings::Scim(scim) = &settings.idp else {
            panic!("{:?}", settings.idp)
        };
        assert_eq!(scim.token.as_ref().map(Secret::expose), Some("tok-123"));
        assert_eq!(scim.page_size, 50);
        assert!(matches!(
            &settings.identity_center,
            IdentityCenterSettings::Aws(o) if o.identity_store_id == "d-1234567890" && o.region.as_deref() == Some("eu-west-1")
        ));
        assert!(matches!(
            &settings.targets[0].source,
            TargetSource::Provisioned(o) if o.credentials == ProvisionedCredentials::GetClusterCredentials { db_user: "idgraph_reader".into() } && o.target.port == Some(5439) && o.target.sslmode == SslMode::Require
        ));
        assert!(matches!(
            &settings.targets[1].source,
            TargetSource::Serverless(o) if o.credentials == ServerlessCredentials::Static { user: "reader".into(), password: Secret::new("pw-456") }
        ));
        // Secrets never show in the settings' Debug form.
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("tok-123") && !shown.contains("pw-456"),
            "{shown}"
        );
    }

    const SCIM: &str = r#"
[idp]
kind = "scim"
url = "https://idp.example.com/scim/v2"

[identity_center]
kind = "file"
path = "ic.json"
"#;

    /// [`SCIM`] with `lines` added to its `[idp]` table.
    fn load_scim(lines: &str) -> (tempfile::TempDir, Result<Settings, ConfigError>) {
        load_text(&SCIM.replace(
            "[identity_center]",
            &format!("{lines}\n\n[identity_center]"),
        ))
    }

    fn scim(settings: &Settings) -> &ScimOptions {
        match &settings.idp {
            IdpSettings::Scim(options) => options,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_scim_response_limit_defaults_to_64_mib_and_must_be_positive() {
        let (_dir, settings) = load_scim("");
        assert_eq!(
            scim(&settings.unwrap()).max_response_bytes,
            64 * 1024 * 1024
        );
        let (_dir, settings) = load_scim("max_response_bytes = 1000");
        assert_eq!(scim(&settings.unwrap()).max_response_bytes, 1000);
        let (_dir, err) = load_scim("max_response_bytes = 0");
        let message = err.unwrap_err().to_string();
        assert!(
            message.contains("idp.max_response_bytes must be at least 1"),
            "{message}"
        );
    }

    #[test]
    fn the_scim_user_limit_defaults_to_a_million_and_must_be_positive() {
        let (_dir, settings) = load_scim("");
        assert_eq!(scim(&settings.unwrap()).max_users, 1_000_000);
        let (_dir, settings) = load_scim("max_users = 300000");
        assert_eq!(scim(&settings.unwrap()).max_users, 300_000);
        let (_dir, err) = load_scim("max_users = 0");
        let message = err.unwrap_err().to_string();
        assert!(
            message.contains("idp.max_users must be at least 1"),
            "{message}"
        );
    }

    #[test]
    fn credentials_in_the_scim_url_are_refused_without_being_shown() {
        // Regression: user info replaced the bearer token with Basic auth, and errors
        // showed it.
        let (_dir, err) = load_text(&SCIM.replace(
            "https://idp.example.com",
            "https://admin:hunter2@idp.example.com",
        ));
        let message = err.unwrap_err().to_string();
        assert!(
            message.contains("idp.url is not usable: it holds credentials"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_scim_url_is_checked_as_the_source_parses_it() {
        // Regression: `idgraph check` said "config ok" for a URL the source then refused.
        for url in [
            "http://exa mple.com/scim/v2",
            "idp.example.com/scim/v2",
            "https://idp.example.com/scim/v2?tenant=1",
            "ftp://idp.example.com/scim/v2",
        ] {
            let (_dir, err) = load_text(&SCIM.replace("https://idp.example.com/scim/v2", url));
            let message = err.expect_err(url).to_string();
            assert!(message.contains("idp.url is not usable: "), "{message}");
        }
    }

    #[test]
    fn a_secret_where_a_variable_name_belongs_is_not_shown() {
        // Regression: `token_env = "<the token>"` echoed the token in the error.
        let (_dir, err) = load_scim("token_env = \"eyJhbGciOiJIUzI1NiJ9.s3cr3t-t0ken\"");
        let message = err.unwrap_err().to_string();
        assert!(
            message.contains(
                "idp.token_env does not name an environment variable (it should hold a \
                 variable's name, not the secret itself)"
            ),
            "{message}"
        );
        assert!(!message.contains("s3cr3t-t0ken"), "{message}");

        let text = format!(
            "{MINIMAL}\n[[targets]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"h\"\n\
             database = \"d\"\nuser_env = \"DB_USER\"\npassword_env = \"hunter2!\"\n"
        );
        let (_dir, err) = load_text(&text);
        let message = err.unwrap_err().to_string();
        assert!(
            message.contains("targets[1].user_env names the environment variable DB_USER"),
            "{message}"
        );
        assert!(
            message.contains("targets[1].password_env does not name an environment variable"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_timeout_of_zero_is_refused() {
        // Regression: timeout_seconds = 0 was accepted, and then every request timed out.
        let text = format!(
            "{MINIMAL}\n[[targets]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"h\"\n\
             database = \"d\"\nuser_env = \"DB_USER\"\ntimeout_seconds = 0\n\n\
             [[targets]]\nname = \"rs\"\nkind = \"provisioned\"\ncluster_identifier = \"c\"\n\
             database = \"d\"\ndb_user = \"u\"\ntimeout_seconds = 0\n"
        );
        let (_dir, err) = load_text(&text);
        let message = err.unwrap_err().to_string();
        for key in ["targets[1]", "targets[2]"] {
            assert!(
                message.contains(&format!("{key}.timeout_seconds must be at least 1")),
                "{message}"
            );
        }
        let (_dir, err) = load_scim("timeout_seconds = 0");
        let message = err.unwrap_err().to_string();
        assert!(
            message.contains("idp.timeout_seconds must be at least 1"),
            "{message}"
        );
        let (_dir, settings) = load_scim("timeout_seconds = 1");
        assert_eq!(scim(&settings.unwrap()).timeout, Duration::from_secs(1));
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), MINIMAL);
        let env = config::Map::from([
            (
                "IDGRAPH__STORE__PATH".to_owned(),
                "/var/lib/idgraph/x.db".to_owned(),
            ),
            (
                "IDGRAPH__HTTP__LISTEN".to_owned(),
                "0.0.0.0:9999".to_owned(),
            ),
        ]);
        let settings = load_with_env(&path, Some(env)).unwrap();
        assert_eq!(settings.store_path, PathBuf::from("/var/lib/idgraph/x.db"));
        assert_eq!(settings.http.addresses[0].port(), 9999);
    }

    #[test]
    fn http_defaults_bound_slow_clients() {
        let (_dir, settings) = load_text(MINIMAL);
        let http = settings.unwrap().http;
        assert_eq!(http.addresses, vec!["127.0.0.1:9187".parse().unwrap()]);
        assert_eq!(http.header_timeout, Duration::from_secs(10));
        assert_eq!(http.max_connections, 128);
    }

    // Regression: `listen = "localhost:9187"` was rejected as not an address.
    #[test]
    fn listen_takes_a_host_name() {
        let (_dir, settings) = load_text(&format!(
            "[http]\nlisten = \"localhost:9187\"\nheader_timeout_seconds = 2\nmax_connections = 8\n{MINIMAL}"
        ));
        let http = settings.unwrap().http;
        assert_eq!(http.listen, "localhost:9187");
        assert!(!http.addresses.is_empty());
        assert!(
            http.addresses
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 9187),
            "{:?}",
            http.addresses
        );
        assert_eq!(http.header_timeout, Duration::from_secs(2));
        assert_eq!(http.max_connections, 8);
    }

    #[test]
    fn a_listen_that_is_no_address_and_zero_limits_are_named() {
        for listen in ["nonsense", "localhost", "localhost:http", "127.0.0.1:99999"] {
            let (_dir, err) = load_text(&format!("[http]\nlisten = \"{listen}\"\n{MINIMAL}"));
            let message = err.unwrap_err().to_string();
            assert!(
                message.contains(&format!("http.listen = \"{listen}\" is neither an address")),
                "{message}"
            );
        }
        let (_dir, err) = load_text(&format!(
            "[http]\nheader_timeout_seconds = 0\nmax_connections = 0\n{MINIMAL}"
        ));
        let message = err.unwrap_err().to_string();
        assert!(
            message.contains("http.header_timeout_seconds must be at least 1")
                && message.contains("http.max_connections must be at least 1"),
            "{message}"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let err = load_with_env(Path::new("/nonexistent/idgraph.toml"), None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/idgraph.toml"));
    }
}
