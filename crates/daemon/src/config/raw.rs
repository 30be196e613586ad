//! The configuration file as written: one serde type per section, every kind's keys
//! optional, unknown keys refused. The doc comment on each field is the key's
//! documentation.

use std::path::PathBuf;

use idgraph_model::{Mapping, ShrinkGuard};
use serde::Deserialize;

/// The file as written: every kind's fields are optional here and checked in
/// [`validate`](super::validate).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) store: StoreSection,
    #[serde(default)]
    pub(super) schedule: ScheduleSection,
    #[serde(default)]
    pub(super) http: HttpSection,
    pub(super) idp: IdpSection,
    pub(super) identity_center: IdentityCenterSection,
    #[serde(default)]
    pub(super) targets: Vec<TargetSection>,
    #[serde(default)]
    pub(super) mapping: Mapping,
    #[serde(default)]
    pub(super) remediation: RemediationSection,
    #[serde(default)]
    pub(super) reconcile: ReconcileSection,
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
            listen: "127.0.0.1:9187".to_owned(),
            header_timeout_seconds: 10,
            max_connections: 128,
        }
    }
}

/// `[idp]`: the identity provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IdpSection {
    /// `scim` or `file`.
    pub(super) kind: String,
    /// scim: the base URL; users are read from `{url}/Users`. No user info
    /// (`user:password@`): the token comes from `token_env` or `token_file`.
    pub(super) url: Option<String>,
    /// scim: the environment variable holding the bearer token.
    pub(super) token_env: Option<String>,
    /// scim: a file holding the bearer token.
    pub(super) token_file: Option<PathBuf>,
    /// scim: users per page (`count`).
    pub(super) page_size: Option<u32>,
    /// scim: `auto` (read /ServiceProviderConfig), `index` or `cursor`.
    pub(super) paging: Option<String>,
    /// scim: pages in flight at once once the total is known (default 4).
    pub(super) concurrency: Option<usize>,
    /// scim: seconds one request may take, at least 1 (default 30).
    pub(super) timeout_seconds: Option<u64>,
    /// scim: the largest response body read, in bytes (default 64 MiB); a larger answer
    /// fails the fetch as soon as it passes this, without a retry.
    pub(super) max_response_bytes: Option<u64>,
    /// scim: the most users the listing may hold (default 1,000,000): a larger
    /// `totalResults` fails the fetch at once, and paging stops with an error once more
    /// users, or more pages than they can need, arrive.
    pub(super) max_users: Option<u64>,
    /// file: a SCIM ListResponse, an array of them, or an array of User resources.
    pub(super) path: Option<PathBuf>,
    /// How long the whole fetch may take, in seconds (default 1800).
    pub(super) deadline_seconds: Option<u64>,
}

/// `[identity_center]`: the IAM Identity Center identity store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IdentityCenterSection {
    /// `aws` or `file`.
    pub(super) kind: String,
    /// aws: the identity store id (`d-1234567890`).
    pub(super) identity_store_id: Option<String>,
    /// aws: the region.
    pub(super) region: Option<String>,
    /// aws: an endpoint override (VPC endpoint, local emulator).
    pub(super) endpoint_url: Option<String>,
    /// aws: client-side limit of `ListUsers` calls a second (default 20, the service quota).
    pub(super) requests_per_second: Option<u32>,
    /// file: the output of `aws identitystore list-users`.
    pub(super) path: Option<PathBuf>,
    /// How long the whole fetch may take, in seconds (default 1800).
    pub(super) deadline_seconds: Option<u64>,
}

/// `[[targets]]`: one Redshift cluster, serverless workgroup, PostgreSQL database or export.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetSection {
    /// Unique name, used in findings, metric labels and history.
    pub(super) name: String,
    /// `provisioned`, `serverless`, `postgres` or `file`.
    pub(super) kind: String,
    /// provisioned: the `ClusterIdentifier`.
    pub(super) cluster_identifier: Option<String>,
    /// serverless: the `WorkgroupName`.
    pub(super) workgroup_name: Option<String>,
    /// The database to connect to.
    pub(super) database: Option<String>,
    /// The AWS region of the cluster or workgroup.
    pub(super) region: Option<String>,
    /// An endpoint override for the redshift / redshift-serverless API.
    pub(super) endpoint_url: Option<String>,
    /// How idgraph gets credentials for its SQL connection.
    pub(super) credentials: Option<String>,
    /// get_cluster_credentials: the database user to get credentials for.
    pub(super) db_user: Option<String>,
    /// static: the environment variable holding the user name.
    pub(super) user_env: Option<String>,
    /// static: the environment variable holding the password.
    pub(super) password_env: Option<String>,
    /// Overrides the endpoint address the API reports.
    pub(super) host: Option<String>,
    /// Overrides the endpoint port the API reports.
    pub(super) port: Option<u16>,
    /// `disable`, `prefer`, `require` or `verify-full`.
    pub(super) sslmode: Option<String>,
    /// file: a CSV of `pg_user` as `psql --csv -c 'select * from pg_user'` prints it.
    pub(super) path: Option<PathBuf>,
    /// file, postgres: the master/admin user, which is never a finding (the APIs report it
    /// for provisioned and serverless targets).
    pub(super) master_user: Option<String>,
    /// How long connecting and each query may take, in seconds, at least 1 (default 60).
    pub(super) timeout_seconds: Option<u64>,
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
