//! A provisioned Redshift cluster (API `redshift`, 2012-12-01): the endpoint and master
//! user from `DescribeClusters`, temporary credentials from `GetClusterCredentials` or
//! `GetClusterCredentialsWithIAM`, the users from `pg_user`.

use aws_sdk_redshift::types::Cluster;
use aws_sdk_redshift::Client;
use idgraph_sources::{Secret, SourceError};

use crate::config::SdkConfig;
use crate::error::sdk_error;
use crate::target::{
    credentials_error, login, required, Login, RedshiftTarget, Resolved, TargetApi, TargetOptions,
    CREDENTIALS_DURATION_SECONDS,
};

/// How idgraph obtains its database login on a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisionedCredentials {
    /// `GetClusterCredentials` for the database user `db_user` (`AutoCreate` false): the
    /// login is the returned `DbUser`, `IAM:<db_user>`.
    GetClusterCredentials {
        /// The database user, without prefix.
        db_user: String,
    },
    /// `GetClusterCredentialsWithIAM`: the login is the caller's IAM identity
    /// (`IAM:user-name`, `IAMR:role-name`), as returned.
    GetClusterCredentialsWithIam,
    /// A fixed user and password (from the environment).
    Static {
        /// The login name.
        user: String,
        /// The password.
        password: Secret,
    },
}

/// A provisioned cluster as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedOptions {
    /// Name, database, region, endpoint and SQL connection settings.
    pub target: TargetOptions,
    /// `ClusterIdentifier`.
    pub cluster_identifier: String,
    /// How to obtain the database login.
    pub credentials: ProvisionedCredentials,
}

/// A provisioned cluster's database users (kind `provisioned`): `DescribeClusters` says
/// where to connect and who the master user is; `GetClusterCredentials[WithIAM]` gives a
/// login (valid 900 s) unless it is static.
pub type ProvisionedTarget = RedshiftTarget<ClusterApi>;

/// The `redshift` API side of a [`ProvisionedTarget`].
#[derive(Debug)]
pub struct ClusterApi {
    client: Client,
    cluster_identifier: String,
    credentials: ProvisionedCredentials,
}

impl ProvisionedTarget {
    /// A target with AWS credentials and, unless the options set it, the region from the
    /// standard AWS chain ([`crate::sdk_config`]). Async because it loads that chain's
    /// configuration; it does not call AWS and cannot fail.
    pub async fn new(options: ProvisionedOptions) -> Self {
        let config = options.target.sdk_config().await;
        Self::from_sdk_config(options, &config)
    }

    /// A target using `config` (its credentials, HTTP client, retries and timeouts), with
    /// the region and endpoint of `options` where they are set.
    pub fn from_sdk_config(options: ProvisionedOptions, config: &SdkConfig) -> Self {
        Self {
            api: ClusterApi {
                client: Client::new(&options.target.client_config(config)),
                cluster_identifier: options.cluster_identifier,
                credentials: options.credentials,
            },
            options: options.target,
        }
    }
}

#[async_trait::async_trait]
impl TargetApi for ClusterApi {
    const KIND: &'static str = "provisioned";

    fn origin(&self) -> String {
        format!("redshift DescribeClusters {}", self.cluster_identifier)
    }

    fn cluster(&self) -> String {
        let region = self.client.config().region().map(|r| r.to_string());
        crate::target::cluster_name(
            "provisioned cluster",
            &self.cluster_identifier,
            region.as_deref(),
        )
    }

    /// Asks the API where to connect, who the master user is, and for a login.
    async fn resolve(&self, options: &TargetOptions) -> Result<Resolved, SourceError> {
        let origin = self.origin();
        let output = self
            .client
            .describe_clusters()
            .cluster_identifier(&self.cluster_identifier)
            .send()
            .await
            .map_err(|e| sdk_error(origin.clone(), e))?;
        let cluster =
            find_cluster(output.clusters(), &self.cluster_identifier).ok_or_else(|| {
                SourceError::InvalidResponse {
                    origin: origin.clone(),
                    detail: "the answer does not hold the cluster".to_owned(),
                }
            })?;
        let master_user = required(&origin, "MasterUsername", cluster.master_username())?;
        let endpoint = cluster.endpoint();
        Ok(Resolved {
            host: endpoint.and_then(|e| e.address()).map(str::to_owned),
            port: endpoint.and_then(|e| e.port()),
            status: cluster.cluster_status().map(str::to_owned),
            master_user,
            login: self.login(&options.database).await?,
        })
    }
}

impl ClusterApi {
    /// A login on `database`: temporary credentials, or the static ones.
    async fn login(&self, database: &str) -> Result<Login, SourceError> {
        match &self.credentials {
            ProvisionedCredentials::GetClusterCredentials { db_user } => {
                let origin = format!("redshift GetClusterCredentials {}", self.cluster_identifier);
                let output = self
                    .client
                    .get_cluster_credentials()
                    .cluster_identifier(&self.cluster_identifier)
                    .db_user(db_user)
                    .db_name(database)
                    .duration_seconds(CREDENTIALS_DURATION_SECONDS)
                    // Never create the user: idgraph reads the catalog and must not add to it.
                    .auto_create(false)
                    .send()
                    .await
                    .map_err(|e| credentials_error(sdk_error(origin.clone(), e)))?;
                login(&origin, output.db_user(), output.db_password())
            }
            ProvisionedCredentials::GetClusterCredentialsWithIam => {
                let origin = format!(
                    "redshift GetClusterCredentialsWithIAM {}",
                    self.cluster_identifier
                );
                let output = self
                    .client
                    .get_cluster_credentials_with_iam()
                    .cluster_identifier(&self.cluster_identifier)
                    .db_name(database)
                    .duration_seconds(CREDENTIALS_DURATION_SECONDS)
                    .send()
                    .await
                    .map_err(|e| credentials_error(sdk_error(origin.clone(), e)))?;
                login(&origin, output.db_user(), output.db_password())
            }
            ProvisionedCredentials::Static { user, password } => Ok(Login {
                user: user.clone(),
                password: password.clone(),
            }),
        }
    }
}

/// The cluster asked for; AWS keeps identifiers in lower case and matches them so.
fn find_cluster<'a>(clusters: &'a [Cluster], identifier: &str) -> Option<&'a Cluster> {
    clusters.iter().find(|c| {
        c.cluster_identifier()
            .is_some_and(|id| id.eq_ignore_ascii_case(identifier))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{fake_config, target_options, Reply};
    use idgraph_sources::Source;

    fn options(credentials: ProvisionedCredentials) -> ProvisionedOptions {
        ProvisionedOptions {
            target: target_options("analytics"),
            cluster_identifier: "analytics-1".into(),
            credentials,
        }
    }

    const DESCRIBE: &str = r#"<DescribeClustersResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/">
  <DescribeClustersResult><Clusters><Cluster>
    <ClusterIdentifier>analytics-1</ClusterIdentifier>
    <ClusterStatus>available</ClusterStatus>
    <MasterUsername>awsuser</MasterUsername>
    <Endpoint><Address>analytics-1.abc.us-east-1.redshift.amazonaws.com</Address><Port>5439</Port></Endpoint>
  </Cluster></Clusters></DescribeClustersResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</DescribeClustersResponse>"#;

    #[tokio::test]
    async fn with_iam_logs_in_as_the_returned_identity() {
        let (config, requests) = fake_config(|action, _body| match action {
            "DescribeClusters" => Reply::ok(DESCRIBE),
            "GetClusterCredentialsWithIAM" => Reply::ok(
                r#"<GetClusterCredentialsWithIAMResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/">
  <GetClusterCredentialsWithIAMResult><DbUser>IAMR:idgraph-reader</DbUser><DbPassword>pw-from-iam</DbPassword></GetClusterCredentialsWithIAMResult>
</GetClusterCredentialsWithIAMResponse>"#,
            ),
            _ => Reply::error(400, "InvalidAction", "unexpected"),
        })
        .await;
        let target = ProvisionedTarget::from_sdk_config(
            options(ProvisionedCredentials::GetClusterCredentialsWithIam),
            &config,
        );
        let resolved = target.api.resolve(&target.options).await.unwrap();
        assert_eq!(resolved.master_user, "awsuser");
        assert_eq!(resolved.login.user, "IAMR:idgraph-reader");
        assert_eq!(resolved.login.password.expose(), "pw-from-iam");
        assert_eq!(
            resolved.host.as_deref(),
            Some("analytics-1.abc.us-east-1.redshift.amazonaws.com")
        );
        assert_eq!(resolved.port, Some(5439));
        let requests = requests.lock().unwrap();
        assert_eq!(requests.len(), 2);
        assert!(
            requests[1].contains("ClusterIdentifier=analytics-1"),
            "{requests:?}"
        );
        assert!(requests[1].contains("DbName=dev"), "{requests:?}");
        assert!(requests[1].contains("DurationSeconds=900"), "{requests:?}");
    }

    #[tokio::test]
    async fn get_cluster_credentials_never_auto_creates() {
        let (config, requests) = fake_config(|action, _body| match action {
            "DescribeClusters" => Reply::ok(DESCRIBE),
            "GetClusterCredentials" => Reply::ok(
                r#"<GetClusterCredentialsResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/">
  <GetClusterCredentialsResult><DbUser>IAM:reader</DbUser><DbPassword>pw</DbPassword></GetClusterCredentialsResult>
</GetClusterCredentialsResponse>"#,
            ),
            _ => Reply::error(400, "InvalidAction", "unexpected"),
        })
        .await;
        let target = ProvisionedTarget::from_sdk_config(
            options(ProvisionedCredentials::GetClusterCredentials {
                db_user: "reader".into(),
            }),
            &config,
        );
        let resolved = target.api.resolve(&target.options).await.unwrap();
        assert_eq!(resolved.login.user, "IAM:reader");
        let requests = requests.lock().unwrap();
        assert!(requests[1].contains("AutoCreate=false"), "{requests:?}");
        assert!(requests[1].contains("DbUser=reader"), "{requests:?}");
    }

    #[tokio::test]
    async fn a_refused_credentials_call_is_a_credentials_error() {
        let (config, _) = fake_config(|action, _body| match action {
            "DescribeClusters" => Reply::ok(DESCRIBE),
            _ => Reply::error(
                403,
                "UnsupportedOperation",
                "User arn:aws:iam::1:user/x is not authorized",
            ),
        })
        .await;
        let target = ProvisionedTarget::from_sdk_config(
            options(ProvisionedCredentials::GetClusterCredentials {
                db_user: "reader".into(),
            }),
            &config,
        );
        let error = target.fetch().await.unwrap_err();
        assert_eq!(error.kind(), "credentials", "{error}");
        let shown = error.to_string();
        assert!(
            shown.starts_with(
                "redshift GetClusterCredentials analytics-1: credentials: UnsupportedOperation"
            ),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn static_credentials_call_only_describe_clusters() {
        let (config, requests) = fake_config(|action, _body| match action {
            "DescribeClusters" => Reply::ok(DESCRIBE),
            _ => Reply::error(400, "InvalidAction", "unexpected"),
        })
        .await;
        let target = ProvisionedTarget::from_sdk_config(
            options(ProvisionedCredentials::Static {
                user: "etl".into(),
                password: Secret::new("static-pw"),
            }),
            &config,
        );
        let resolved = target.api.resolve(&target.options).await.unwrap();
        assert_eq!(resolved.login.user, "etl");
        assert_eq!(requests.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_password_never_shows_when_the_database_is_unreachable() {
        let (config, _) = fake_config(|action, _body| match action {
            "DescribeClusters" => Reply::ok(DESCRIBE),
            _ => Reply::ok(
                r#"<GetClusterCredentialsResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/">
  <GetClusterCredentialsResult><DbUser>IAM:reader</DbUser><DbPassword>Pw-7f3a9c-secret</DbPassword></GetClusterCredentialsResult>
</GetClusterCredentialsResponse>"#,
            ),
        })
        .await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut options = options(ProvisionedCredentials::GetClusterCredentials {
            db_user: "reader".into(),
        });
        options.target.host = Some("127.0.0.1".into());
        options.target.port = Some(closed);
        let target = ProvisionedTarget::from_sdk_config(options, &config);
        let error = target.fetch().await.unwrap_err();
        assert_eq!(error.kind(), "unreachable", "{error}");
        let shown = format!("{error} {error:?} {target:?}");
        assert!(!shown.contains("Pw-7f3a9c-secret"), "{shown}");
    }
}
