//! The configuration file as written: one serde type per section and one per source
//! kind, unknown keys refused (so a key of another kind too). The doc comment on each
//! field is the key's documentation.

use std::path::PathBuf;

use idgraph_model::{Mapping, ShrinkGuard};
use idgraph_sources::postgres::SslMode;
use idgraph_sources::scim::Paging;
use serde::Deserialize;

/// The file as written. A source's table is typed once its `kind` is read, in
/// [`validate`](super::validate), so that its problems join the one list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) store: StoreSection,
    #[serde(default)]
    pub(super) schedule: ScheduleSection,
    #[serde(default)]
    pub(super) http: HttpSection,
    pub(super) idp: Table,
    pub(super) identity_center: Table,
    #[serde(default)]
    pub(super) targets: Vec<Table>,
    #[serde(default)]
    pub(super) mapping: Mapping,
    #[serde(default)]
    pub(super) remediation: RemediationSection,
    #[serde(default)]
    pub(super) reconcile: ReconcileSection,
    #[serde(default)]
    pub(super) watch: WatchSection,
}

/// `[watch]`: how often the daemon asks a SCIM IdP which users changed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WatchSection {
    /// Seconds between two looks for users changed since the last one
    /// (`meta.lastModified`); a change starts a run at once. 0 turns the watcher off;
    /// only a `scim` IdP is watched.
    pub(super) interval_seconds: u64,
}

impl Default for WatchSection {
    fn default() -> Self {
        Self {
            interval_seconds: 30,
        }
    }
}

/// `[reconcile]`: how a run fetches its sources.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ReconcileSection {
    /// How many database targets are fetched at once.
    pub(super) target_concurrency: usize,
    /// A source whose object count falls by more than this percentage of its last complete
    /// snapshot (and by at least `max_shrink_count`) fails as suspicious (default 20).
    pub(super) max_shrink_percent: u8,
    /// The fewest objects a shrink must remove to be suspicious (default 25), so that a
    /// few users dropped from a small target never trip the guard.
    pub(super) max_shrink_count: u64,
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

/// `[store]`: where the drift history lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct StoreSection {
    /// The SQLite file, created and migrated on start; relative to the config file.
    pub(super) path: PathBuf,
    /// Runs older than this many days are pruned after each run (keeping the chain
    /// verifiable); unset keeps everything.
    pub(super) retention_days: Option<u32>,
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
pub(super) struct ScheduleSection {
    /// A 6-field cron expression (sec min hour dom mon dow).
    pub(super) cron: String,
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
pub(super) struct HttpSection {
    /// Address (or host name) and port to listen on.
    pub(super) listen: String,
    /// Seconds a client has to send a whole request head, counted from when the
    /// connection opens or its previous response ends; so also how long an idle
    /// keep-alive connection stays open.
    pub(super) header_timeout_seconds: u64,
    /// Connections served at once; more wait in the listen backlog.
    pub(super) max_connections: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:10187".to_owned(),
            header_timeout_seconds: 10,
            max_connections: 128,
        }
    }
}

/// A source's table before its `kind` is known: `[idp]`, `[identity_center]` or one of
/// `[[targets]]`. Validation reads `kind` and deserializes the rest into that kind's table
/// below, which refuses the keys of every other kind.
pub(super) type Table = serde_json::Map<String, serde_json::Value>;

/// The kinds of `[idp]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum IdpKind {
    /// A live SCIM 2.0 service provider: [`ScimIdpTable`].
    Scim,
    /// A SCIM export on disk: [`FileTable`].
    File,
}

/// `[idp]` of kind `scim`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScimIdpTable {
    /// The base URL; users are read from `{url}/Users`. No user info (`user:password@`):
    /// the token comes from `token_env` or `token_file`.
    pub(super) url: Option<String>,
    /// The environment variable holding the bearer token.
    pub(super) token_env: Option<String>,
    /// A file holding the bearer token.
    pub(super) token_file: Option<PathBuf>,
    /// Users per page (`count`).
    pub(super) page_size: Option<u32>,
    /// `auto` (read /ServiceProviderConfig), `index` or `cursor`.
    pub(super) paging: Option<Paging>,
    /// Pages in flight at once once the total is known (default 4).
    pub(super) concurrency: Option<usize>,
    /// Seconds one request may take, at least 1 (default 30).
    pub(super) timeout_seconds: Option<u64>,
    /// The largest response body read, in bytes (default 64 MiB); a larger answer fails
    /// the fetch as soon as it passes this, without a retry.
    pub(super) max_response_bytes: Option<u64>,
    /// The most users the listing may hold (default 1,000,000): a larger `totalResults`
    /// fails the fetch at once, and paging stops with an error once more users, or more
    /// pages than they can need, arrive.
    pub(super) max_users: Option<u64>,
    /// How long the whole fetch may take, in seconds (default 1800).
    pub(super) deadline_seconds: Option<u64>,
}

/// `[idp]` or `[identity_center]` of kind `file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTable {
    /// idp: a SCIM ListResponse, an array of them, or an array of User resources;
    /// identity_center: the output of `aws identitystore list-users`.
    pub(super) path: Option<PathBuf>,
    /// How long the whole fetch may take, in seconds (default 1800).
    pub(super) deadline_seconds: Option<u64>,
}

/// The kinds of `[identity_center]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum IdentityCenterKind {
    /// The identitystore API: [`AwsIdentityCenterTable`].
    Aws,
    /// An export on disk: [`FileTable`].
    File,
}

/// `[identity_center]` of kind `aws`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AwsIdentityCenterTable {
    /// The identity store id (`d-1234567890`).
    pub(super) identity_store_id: Option<String>,
    /// The region.
    pub(super) region: Option<String>,
    /// An endpoint override (VPC endpoint, local emulator).
    pub(super) endpoint_url: Option<String>,
    /// Client-side limit of `ListUsers` calls a second (default 20, the service quota).
    pub(super) requests_per_second: Option<u32>,
    /// How long the whole fetch may take, in seconds (default 1800).
    pub(super) deadline_seconds: Option<u64>,
}

/// The kinds of `[[targets]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum TargetKind {
    /// A provisioned Redshift cluster: [`ProvisionedTable`].
    Provisioned,
    /// A Redshift Serverless workgroup: [`ServerlessTable`].
    Serverless,
    /// A PostgreSQL-protocol endpoint with static credentials: [`PostgresTable`].
    Postgres,
    /// A `pg_user` export on disk: [`FileTargetTable`].
    File,
}

/// `credentials` of a provisioned target.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ProvisionedLogin {
    /// `GetClusterCredentials` for `db_user`.
    #[default]
    GetClusterCredentials,
    /// `GetClusterCredentialsWithIAM` for the caller's IAM identity.
    GetClusterCredentialsWithIam,
    /// `user_env` and `password_env` or `password_file`.
    Static,
}

/// `credentials` of a serverless target.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ServerlessLogin {
    /// `GetCredentials` for the caller's IAM identity.
    #[default]
    ServerlessGetCredentials,
    /// `user_env` and `password_env` or `password_file`.
    Static,
}

/// `credentials` of a postgres target: only `static` applies.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum PostgresLogin {
    /// `user_env` and `password_env` or `password_file`.
    Static,
}

/// `[[targets]]` of kind `provisioned`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProvisionedTable {
    /// Unique name, used in findings, metric labels and history.
    pub(super) name: String,
    /// The `ClusterIdentifier`.
    pub(super) cluster_identifier: Option<String>,
    /// How idgraph gets credentials for its SQL connection (default
    /// `get_cluster_credentials`).
    pub(super) credentials: Option<ProvisionedLogin>,
    /// get_cluster_credentials: the database user to get credentials for.
    pub(super) db_user: Option<String>,
    /// The database to connect to.
    pub(super) database: Option<String>,
    /// The AWS region of the cluster.
    pub(super) region: Option<String>,
    /// An endpoint override for the redshift API.
    pub(super) endpoint_url: Option<String>,
    /// static: the environment variable holding the user name.
    pub(super) user_env: Option<String>,
    /// static: the environment variable holding the password; or `password_file`.
    pub(super) password_env: Option<String>,
    /// static: a file holding the password (a mounted Kubernetes secret), trimmed; or
    /// `password_env`.
    pub(super) password_file: Option<PathBuf>,
    /// Overrides the endpoint address the redshift API reports.
    pub(super) host: Option<String>,
    /// Overrides the endpoint port the redshift API reports.
    pub(super) port: Option<u16>,
    /// `disable`, `prefer`, `require` (default) or `verify-full`.
    pub(super) sslmode: Option<SslMode>,
    /// How long connecting and each query may take, in seconds, at least 1 (default 60).
    pub(super) timeout_seconds: Option<u64>,
    /// How long the whole fetch may take, in seconds (default 1800).
    pub(super) deadline_seconds: Option<u64>,
}

/// `[[targets]]` of kind `serverless`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerlessTable {
    /// Unique name, used in findings, metric labels and history.
    pub(super) name: String,
    /// The `WorkgroupName`.
    pub(super) workgroup_name: Option<String>,
    /// How idgraph gets credentials for its SQL connection (default
    /// `serverless_get_credentials`).
    pub(super) credentials: Option<ServerlessLogin>,
    /// The database to connect to.
    pub(super) database: Option<String>,
    /// The AWS region of the workgroup.
    pub(super) region: Option<String>,
    /// An endpoint override for the redshift-serverless API.
    pub(super) endpoint_url: Option<String>,
    /// static: the environment variable holding the user name.
    pub(super) user_env: Option<String>,
    /// static: the environment variable holding the password; or `password_file`.
    pub(super) password_env: Option<String>,
    /// static: a file holding the password (a mounted Kubernetes secret), trimmed; or
    /// `password_env`.
    pub(super) password_file: Option<PathBuf>,
    /// Overrides the endpoint address the redshift-serverless API reports.
    pub(super) host: Option<String>,
    /// Overrides the endpoint port the redshift-serverless API reports.
    pub(super) port: Option<u16>,
    /// `disable`, `prefer`, `require` (default) or `verify-full`.
    pub(super) sslmode: Option<SslMode>,
    /// How long connecting and each query may take, in seconds, at least 1 (default 60).
    pub(super) timeout_seconds: Option<u64>,
    /// How long the whole fetch may take, in seconds (default 1800).
    pub(super) deadline_seconds: Option<u64>,
}
/// `[[targets]]` of kind `postgres`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PostgresTable {
    /// Unique name, used in findings, metric labels and history.
    pub(super) name: String,
    /// The server's address.
    pub(super) host: Option<String>,
    /// The server's port (default 5432).
    pub(super) port: Option<u16>,
    /// The database to connect to.
    pub(super) database: Option<String>,
    /// Only `static`, the default.
    pub(super) credentials: Option<PostgresLogin>,
    /// The environment variable holding the user name.
    pub(super) user_env: Option<String>,
    /// The environment variable holding the password, if the server asks for one; or
    /// `password_file`.
    pub(super) password_env: Option<String>,
    /// A file holding the password (a mounted Kubernetes secret), trimmed; or
    /// `password_env`.
    pub(super) password_file: Option<PathBuf>,
    /// `disable`, `prefer`, `require` (default) or `verify-full`.
    pub(super) sslmode: Option<SslMode>,
    /// The admin user of the database, which is never a finding.
    pub(super) master_user: Option<String>,
    /// How long connecting and each query may take, in seconds, at least 1 (default 60).
    pub(super) timeout_seconds: Option<u64>,
    /// How long the whole fetch may take, in seconds (default 1800).
    pub(super) deadline_seconds: Option<u64>,
}

/// `[[targets]]` of kind `file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTargetTable {
    /// Unique name, used in findings, metric labels and history.
    pub(super) name: String,
    /// A CSV of `pg_user` as `psql --csv -c 'select * from pg_user'` prints it.
    pub(super) path: Option<PathBuf>,
    /// The master/admin user of the exported target, which is never a finding.
    pub(super) master_user: Option<String>,
    /// How long the whole fetch may take, in seconds (default 1800).
    pub(super) deadline_seconds: Option<u64>,
}

/// `[remediation]`: how remediation plans are written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RemediationSection {
    /// The user that receives the objects of users a plan drops.
    pub(super) new_owner: Option<String>,
}
