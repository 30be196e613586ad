//! What provisioned clusters and serverless workgroups share once their API has said where
//! to connect, who the master or admin user is, and which credentials to use: the SQL
//! connection and the snapshot. The two APIs differ only in how they answer that
//! ([`crate::provisioned`], [`crate::serverless`]); this is where they meet.

use std::fmt;
use std::time::Duration;

use idgraph_model::TargetSnapshot;
use idgraph_sources::postgres::{read_catalog, read_users_named, Connection, SslMode};
use idgraph_sources::{Secret, Source, SourceError, Wanted};
use tracing::debug;

use crate::config::{sdk_config, with_overrides, SdkConfig};

/// `DurationSeconds` of every temporary-credentials call: the minimum AWS allows. idgraph
/// connects once, right away, and a password that expires sooner is worth less to anyone
/// who might get hold of it.
pub const CREDENTIALS_DURATION_SECONDS: i32 = 900;

/// How long connecting to a target's database, and each catalog query, may take.
pub const SQL_TIMEOUT: Duration = Duration::from_secs(30);

/// How idgraph logs in to a target's database.
#[derive(Debug)]
pub struct Login {
    /// The login name exactly as the catalog holds it (`IAM:idgraph_reader`).
    pub(crate) user: String,
    pub(crate) password: Secret,
}

/// What a target's API says about it.
#[derive(Debug)]
pub struct Resolved {
    /// The endpoint address, when the API reports one (a paused cluster has none).
    pub(crate) host: Option<String>,
    /// The endpoint port, when the API reports one.
    pub(crate) port: Option<i32>,
    /// Why there may be no endpoint (`paused`, `creating`), for the error.
    pub(crate) status: Option<String>,
    /// The master user of the cluster or the admin user of the namespace.
    pub(crate) master_user: String,
    pub(crate) login: Login,
}

/// What both kinds of Redshift target are configured with, besides how to find the
/// cluster or workgroup and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOptions {
    /// The target's configured name.
    pub name: String,
    /// The database to connect to (`DbName` / `dbName`).
    pub database: String,
    /// The cluster's or workgroup's region; `None` takes the standard region chain.
    pub region: Option<String>,
    /// Sends the target's API requests (`redshift` or `redshift-serverless`) here instead
    /// of the public endpoint.
    pub endpoint_url: Option<String>,
    /// Connects here instead of the endpoint address the API reports (an SSH tunnel, a
    /// VPC endpoint, a test database).
    pub host: Option<String>,
    /// Connects to this port instead of the one the API reports.
    pub port: Option<u16>,
    /// TLS mode of the SQL connection.
    pub sslmode: SslMode,
    /// How long connecting and each catalog query may take ([`SQL_TIMEOUT`] by default).
    pub timeout: Duration,
}

impl TargetOptions {
    /// The AWS configuration of the standard chain, with this target's region and
    /// endpoint where they are set.
    pub(crate) async fn sdk_config(&self) -> SdkConfig {
        sdk_config(self.region.as_deref(), self.endpoint_url.as_deref(), None).await
    }

    /// `config` with this target's region and endpoint where they are set.
    pub(crate) fn client_config(&self, config: &SdkConfig) -> SdkConfig {
        with_overrides(config, self.region.as_deref(), self.endpoint_url.as_deref())
    }

    /// Where to connect: the configured host and port where set, else the endpoint the
    /// API reported. `origin` is the API call that reported it.
    pub(crate) fn connection(
        &self,
        origin: &str,
        resolved: &Resolved,
    ) -> Result<Connection, SourceError> {
        let no_endpoint = |what: &str| SourceError::Unreachable {
            origin: origin.to_owned(),
            detail: format!(
                "no endpoint {what} reported (status: {}); set host and port to connect anyway",
                resolved.status.as_deref().unwrap_or("unknown")
            ),
        };
        let host = match (&self.host, &resolved.host) {
            (Some(host), _) => host.clone(),
            (None, Some(host)) if !host.is_empty() => host.clone(),
            (None, _) => return Err(no_endpoint("address")),
        };
        let port = match (self.port, resolved.port) {
            (Some(port), _) => port,
            (None, Some(port)) => {
                u16::try_from(port).map_err(|_| SourceError::InvalidResponse {
                    origin: origin.to_owned(),
                    detail: format!("endpoint port {port} is not a TCP port"),
                })?
            }
            (None, None) => return Err(no_endpoint("port")),
        };
        Ok(Connection {
            host,
            port,
            database: self.database.clone(),
            user: resolved.login.user.clone(),
            password: Some(resolved.login.password.clone()),
            sslmode: self.sslmode,
        })
    }

    /// Reads the catalog over SQL and builds the target's snapshot.
    pub(crate) async fn snapshot(
        &self,
        origin: &str,
        resolved: Resolved,
    ) -> Result<TargetSnapshot, SourceError> {
        let connection = self.connection(origin, &resolved)?;
        let catalog = read_catalog(&self.name, &connection, self.timeout).await?;
        if catalog.current_user != resolved.login.user {
            // Not an error: the login user is what the credentials call returned, and both
            // spellings are never findings. Worth knowing when matching looks off.
            debug!(
                target_name = %self.name,
                login_user = %resolved.login.user,
                current_user = %catalog.current_user,
                "The database knows the login user under another name."
            );
        }
        Ok(TargetSnapshot {
            name: self.name.clone(),
            users: catalog.users,
            master_user: Some(resolved.master_user),
            login_user: Some(resolved.login.user),
            namespaces: catalog.namespaces,
        })
    }
}

/// How one kind of Redshift target answers where to connect, who its master or admin
/// user is, and how idgraph logs in: the one thing provisioned clusters
/// ([`ClusterApi`](crate::provisioned::ClusterApi)) and serverless workgroups
/// ([`WorkgroupApi`](crate::serverless::WorkgroupApi)) do differently. Implemented only
/// by those two.
#[async_trait::async_trait]
pub trait TargetApi: Send + Sync + fmt::Debug {
    /// The target kind, as [`Source::kind`] reports it.
    const KIND: &'static str;

    /// The call whose answer says where to connect, as error messages name it.
    fn origin(&self) -> String;

    /// The cluster or workgroup, as [`Source::cluster`] names it.
    fn cluster(&self) -> String;

    /// Asks the API where to connect to the database `options` names, and for a login.
    async fn resolve(&self, options: &TargetOptions) -> Result<Resolved, SourceError>;
}

/// How [`Source::cluster`] names a cluster or workgroup: `what` and `name`, and the region
/// when one is configured, since the same name in two regions is two clusters.
pub(crate) fn cluster_name(what: &str, name: &str, region: Option<&str>) -> String {
    match region {
        Some(region) => format!("{what} {name} in {region}"),
        None => format!("{what} {name}"),
    }
}

/// The database users of a Redshift target: its API says where to connect and how to
/// log in ([`TargetApi`]), then `fetch` connects and reads `pg_user`. The snapshot's
/// `master_user` is the cluster's master or the namespace's admin user, its `login_user`
/// the login name idgraph used (`IAM:idgraph_reader`).
#[derive(Debug)]
pub struct RedshiftTarget<A> {
    pub(crate) api: A,
    pub(crate) options: TargetOptions,
}

impl<A: TargetApi> RedshiftTarget<A> {
    /// Where and as whom to connect to the target's database, as `fetch` would: asks the
    /// API for the endpoint and obtains a login (temporary credentials, valid 900 s,
    /// unless they are static). For callers that read more of the catalog than
    /// `pg_user`, such as a remediation plan's ownership discovery.
    ///
    /// # Errors
    ///
    /// As [`Source::fetch`] for this target, short of reading the catalog:
    /// [`SourceError::Remote`], [`SourceError::Credentials`], [`SourceError::Unreachable`]
    /// (no endpoint), [`SourceError::InvalidResponse`].
    pub async fn connection(&self) -> Result<Connection, SourceError> {
        let resolved = self.api.resolve(&self.options).await?;
        self.options.connection(&self.api.origin(), &resolved)
    }
}

#[async_trait::async_trait]
impl<A: TargetApi> Source for RedshiftTarget<A> {
    type Snapshot = TargetSnapshot;

    fn name(&self) -> &str {
        &self.options.name
    }

    fn kind(&self) -> &str {
        A::KIND
    }

    fn cluster(&self) -> Option<String> {
        Some(self.api.cluster())
    }

    async fn catalog(&self) -> Result<idgraph_sources::CatalogAccess, SourceError> {
        Ok(idgraph_sources::CatalogAccess {
            connection: self.connection().await?,
            timeout: self.options.timeout,
        })
    }

    /// Reads the connection log since `since` and the sessions open now over a
    /// connection of its own (the fetch's credentials are not kept).
    async fn logins(
        &self,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<Vec<idgraph_model::Login>>, SourceError> {
        let connection = self.connection().await?;
        let read = idgraph_sources::logins::read_logins(
            &self.options.name,
            &connection,
            self.options.timeout,
            since,
        )
        .await?;
        Ok(Some(read.logins))
    }

    /// # Errors
    ///
    /// [`SourceError::Remote`] when the API refuses (`ClusterNotFound`,
    /// `ResourceNotFoundException`), [`SourceError::Credentials`] when the credentials
    /// call is refused or the database refuses the login, [`SourceError::Unreachable`]
    /// when the API or the database cannot be reached or the target has no endpoint,
    /// [`SourceError::InvalidResponse`] when an answer lacks a field, and the errors of
    /// [`read_catalog`].
    async fn fetch(&self) -> Result<TargetSnapshot, SourceError> {
        let resolved = self.api.resolve(&self.options).await?;
        self.options.snapshot(&self.api.origin(), resolved).await
    }

    /// Only the named database users, over one connection (with fresh temporary
    /// credentials, as for `fetch`).
    async fn fetch_wanted(&self, wanted: &Wanted<'_>) -> Result<TargetSnapshot, SourceError> {
        let Wanted::DbUsers(names) = wanted else {
            return self.fetch().await;
        };
        let connection = self.connection().await?;
        let users =
            read_users_named(&self.options.name, &connection, self.options.timeout, names).await?;
        Ok(TargetSnapshot {
            login_user: Some(connection.user.clone()),
            ..TargetSnapshot::new(self.options.name.clone(), users)
        })
    }
}

/// A non-empty string field of an API answer, or an error naming it.
pub(crate) fn required(
    origin: &str,
    field: &str,
    value: Option<&str>,
) -> Result<String, SourceError> {
    match value {
        Some(value) if !value.is_empty() => Ok(value.to_owned()),
        _ => Err(SourceError::InvalidResponse {
            origin: origin.to_owned(),
            detail: format!("the answer has no {field}"),
        }),
    }
}

/// The login of a temporary-credentials answer (`DbUser`, `DbPassword`). The password goes
/// straight into a [`Secret`].
pub(crate) fn login(
    origin: &str,
    db_user: Option<&str>,
    db_password: Option<&str>,
) -> Result<Login, SourceError> {
    let user = required(origin, "DbUser", db_user)?;
    let password = match db_password {
        Some(password) if !password.is_empty() => Secret::new(password),
        _ => {
            return Err(SourceError::InvalidResponse {
                origin: origin.to_owned(),
                detail: "the answer has no DbPassword".to_owned(),
            })
        }
    };
    Ok(Login { user, password })
}

/// An error of a temporary-credentials call: a refusal is a credentials failure, and an
/// answer that does not parse is reported without its parser's words, which could quote
/// the password.
pub(crate) fn credentials_error(error: SourceError) -> SourceError {
    match error {
        SourceError::Remote { origin, detail, .. } => SourceError::Credentials { origin, detail },
        SourceError::InvalidResponse { origin, .. } => SourceError::InvalidResponse {
            origin,
            detail: "the credentials answer does not parse".to_owned(),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(host: Option<&str>, port: Option<u16>) -> TargetOptions {
        TargetOptions {
            name: "analytics".into(),
            database: "dev".into(),
            region: None,
            endpoint_url: None,
            host: host.map(str::to_owned),
            port,
            sslmode: SslMode::Require,
            timeout: SQL_TIMEOUT,
        }
    }

    fn resolved(host: Option<&str>, port: Option<i32>) -> Resolved {
        Resolved {
            host: host.map(str::to_owned),
            port,
            status: Some("paused".into()),
            master_user: "awsuser".into(),
            login: Login {
                user: "IAM:reader".into(),
                password: Secret::new("s3cr3t-pw"),
            },
        }
    }

    #[test]
    fn configured_host_and_port_override_the_api() {
        let c = common(Some("127.0.0.1"), Some(6543))
            .connection("o", &resolved(Some("x.redshift.amazonaws.com"), Some(5439)))
            .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 6543));
        assert_eq!(c.user, "IAM:reader");
        assert_eq!(c.database, "dev");
        let c = common(None, None)
            .connection("o", &resolved(Some("x.redshift.amazonaws.com"), Some(5439)))
            .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port),
            ("x.redshift.amazonaws.com", 5439)
        );
    }

    #[test]
    fn no_endpoint_is_unreachable_and_says_why() {
        let error = common(None, None)
            .connection("redshift DescribeClusters c1", &resolved(None, None))
            .unwrap_err();
        assert_eq!(error.kind(), "unreachable");
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("status: paused"), "{shown}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        let error = common(None, None)
            .connection("o", &resolved(Some("h"), Some(70000)))
            .unwrap_err();
        assert_eq!(error.kind(), "invalid_response");
    }

    #[test]
    fn credentials_errors() {
        let error = credentials_error(SourceError::Remote {
            origin: "redshift GetClusterCredentials c1".into(),
            status: Some(400),
            detail: "UnauthorizedOperation: no".into(),
        });
        assert_eq!(error.kind(), "credentials");
        assert!(login("o", Some("IAM:x"), None).is_err());
        assert!(login("o", None, Some("pw")).is_err());
        let login = login("o", Some("IAM:x"), Some("pw")).unwrap();
        assert_eq!(
            format!("{login:?}"),
            r#"Login { user: "IAM:x", password: [redacted] }"#
        );
    }
}
