//! The validated configuration: every path absolute, every kind a typed variant.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use idgraph_aws::{IdentityCenterOptions, ProvisionedOptions, ServerlessOptions};
use idgraph_model::{Mapping, ShrinkGuard};
use idgraph_sources::postgres::Connection;
use idgraph_sources::scim::ScimOptions;

/// How long a whole fetch of one source may take unless `deadline_seconds` says otherwise:
/// a 200,000-user Identity Center at 20 pages of 100 a second takes under two minutes, and
/// a SCIM IdP of that size a few minutes more.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1800);

/// How long connecting to a database target and each catalog query may take unless its
/// `timeout_seconds` says otherwise.
pub const DEFAULT_SQL_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// How often the daemon asks a SCIM IdP which users changed; `None` when
    /// `watch.interval_seconds` is 0.
    pub watch_interval: Option<Duration>,
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
