//! A Redshift Serverless workgroup (API `redshift-serverless`, 2021-01-01): the endpoint and
//! namespace from `GetWorkgroup`, the admin user from `GetNamespace`, temporary
//! credentials from `GetCredentials`, the users from `pg_user`.

use aws_sdk_redshiftserverless::Client;
use idgraph_sources::{Secret, SourceError};

use crate::config::SdkConfig;
use crate::error::sdk_error;
use crate::target::{
    credentials_error, login, required, Login, RedshiftTarget, Resolved, TargetApi, TargetOptions,
    CREDENTIALS_DURATION_SECONDS,
};

/// How idgraph obtains its database login on a workgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerlessCredentials {
    /// `GetCredentials`: the login is the caller's IAM identity (`IAM:user-name`,
    /// `IAMR:role-name`), as returned.
    GetCredentials,
    /// A fixed user and password (from the environment).
    Static {
        /// The login name.
        user: String,
        /// The password.
        password: Secret,
    },
}

/// A serverless workgroup as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerlessOptions {
    /// Name, database, region, endpoint and SQL connection settings.
    pub target: TargetOptions,
    /// `workgroupName`.
    pub workgroup_name: String,
    /// How to obtain the database login.
    pub credentials: ServerlessCredentials,
}

/// A serverless workgroup's database users (kind `serverless`): `GetWorkgroup` says where
/// to connect, `GetNamespace` who the admin user is; `GetCredentials` gives a login (valid
/// 900 s) unless it is static.
pub type ServerlessTarget = RedshiftTarget<WorkgroupApi>;

/// The `redshift-serverless` API side of a [`ServerlessTarget`].
#[derive(Debug)]
pub struct WorkgroupApi {
    client: Client,
    workgroup_name: String,
    credentials: ServerlessCredentials,
}

impl ServerlessTarget {
    /// A target with AWS credentials and, unless the options set it, the region from the
    /// standard AWS chain ([`crate::sdk_config`]). Async because it loads that chain's
    /// configuration; it does not call AWS and cannot fail.
    pub async fn new(options: ServerlessOptions) -> Self {
        let config = options.target.sdk_config().await;
        Self::from_sdk_config(options, &config)
    }

    /// A target using `config` (its credentials, HTTP client, retries and timeouts), with
    /// the region and endpoint of `options` where they are set.
    pub fn from_sdk_config(options: ServerlessOptions, config: &SdkConfig) -> Self {
        Self {
            api: WorkgroupApi {
                client: Client::new(&options.target.client_config(config)),
                workgroup_name: options.workgroup_name,
                credentials: options.credentials,
            },
            options: options.target,
        }
    }
}

#[async_trait::async_trait]
impl TargetApi for WorkgroupApi {
    const KIND: &'static str = "serverless";

    fn origin(&self) -> String {
        format!("redshift-serverless GetWorkgroup {}", self.workgroup_name)
    }

    fn cluster(&self) -> String {
        let region = self.client.config().region().map(|r| r.to_string());
        crate::target::cluster_name(
            "serverless workgroup",
            &self.workgroup_name,
            region.as_deref(),
        )
    }

    /// Asks the API where to connect, who the admin user is, and for a login.
    async fn resolve(&self, options: &TargetOptions) -> Result<Resolved, SourceError> {
        let origin = self.origin();
        let output = self
            .client
            .get_workgroup()
            .workgroup_name(&self.workgroup_name)
            .send()
            .await
            .map_err(|e| sdk_error(origin.clone(), e))?;
        let workgroup = output
            .workgroup()
            .ok_or_else(|| SourceError::InvalidResponse {
                origin: origin.clone(),
                detail: "the answer has no workgroup".to_owned(),
            })?;
        let namespace = required(&origin, "namespaceName", workgroup.namespace_name())?;
        let endpoint = workgroup.endpoint();
        let host = endpoint.and_then(|e| e.address()).map(str::to_owned);
        // The endpoint's port, else the workgroup's own.
        let port = endpoint.and_then(|e| e.port()).or(workgroup.port());
        let status = workgroup.status().map(|s| s.as_str().to_owned());

        let origin = format!("redshift-serverless GetNamespace {namespace}");
        let output = self
            .client
            .get_namespace()
            .namespace_name(&namespace)
            .send()
            .await
            .map_err(|e| sdk_error(origin.clone(), e))?;
        let admin = required(
            &origin,
            "adminUsername",
            output.namespace().and_then(|n| n.admin_username()),
        )?;

        Ok(Resolved {
            host,
            port,
            status,
            master_user: admin,
            login: self.login(&options.database).await?,
        })
    }
}

impl WorkgroupApi {
    /// A login on `database`: temporary credentials, or the static ones.
    async fn login(&self, database: &str) -> Result<Login, SourceError> {
        match &self.credentials {
            ServerlessCredentials::GetCredentials => {
                let origin = format!("redshift-serverless GetCredentials {}", self.workgroup_name);
                let output = self
                    .client
                    .get_credentials()
                    .workgroup_name(&self.workgroup_name)
                    .db_name(database)
                    .duration_seconds(CREDENTIALS_DURATION_SECONDS)
                    .send()
                    .await
                    .map_err(|e| credentials_error(sdk_error(origin.clone(), e)))?;
                login(&origin, output.db_user(), output.db_password())
            }
            ServerlessCredentials::Static { user, password } => Ok(Login {
                user: user.clone(),
                password: password.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fake_config, target_options, Reply};
    use idgraph_sources::Source;

    fn options(credentials: ServerlessCredentials) -> ServerlessOptions {
        ServerlessOptions {
            target: target_options("finance"),
            workgroup_name: "finance-wg".into(),
            credentials,
        }
    }

    fn api(action: &str, body: &str) -> Reply {
        match action {
            "GetWorkgroup" if body.contains(r#""workgroupName":"finance-wg""#) => Reply::ok(
                r#"{"workgroup":{"workgroupName":"finance-wg","namespaceName":"finance-ns",
                    "status":"AVAILABLE","port":5439,
                    "endpoint":{"address":"finance-wg.1.us-east-1.redshift-serverless.amazonaws.com","port":5439}}}"#,
            ),
            "GetNamespace" if body.contains(r#""namespaceName":"finance-ns""#) => {
                Reply::ok(r#"{"namespace":{"namespaceName":"finance-ns","adminUsername":"admin"}}"#)
            }
            "GetCredentials" => Reply::ok(
                r#"{"dbUser":"IAMR:idgraph-reader","dbPassword":"sls-pw","expiration":1.7E9}"#,
            ),
            _ => Reply::error(400, "ResourceNotFoundException", "no such thing"),
        }
    }

    #[tokio::test]
    async fn reads_endpoint_admin_and_login() {
        let (config, requests) = fake_config(api).await;
        let target = ServerlessTarget::from_sdk_config(
            options(ServerlessCredentials::GetCredentials),
            &config,
        );
        assert_eq!((target.name(), target.kind()), ("finance", "serverless"));
        let resolved = target.api.resolve(&target.options).await.unwrap();
        assert_eq!(
            resolved.host.as_deref(),
            Some("finance-wg.1.us-east-1.redshift-serverless.amazonaws.com")
        );
        assert_eq!(resolved.port, Some(5439));
        assert_eq!(resolved.master_user, "admin");
        assert_eq!(resolved.login.user, "IAMR:idgraph-reader");
        assert_eq!(resolved.login.password.expose(), "sls-pw");
        let requests = requests.lock().unwrap();
        assert!(
            requests[2].contains(r#""durationSeconds":900"#),
            "{requests:?}"
        );
        assert!(requests[2].contains(r#""dbName":"dev""#), "{requests:?}");
    }

    #[tokio::test]
    async fn an_unknown_workgroup_is_a_remote_error_naming_it() {
        let (config, _) = fake_config(api).await;
        let mut options = options(ServerlessCredentials::GetCredentials);
        options.workgroup_name = "nope".into();
        let target = ServerlessTarget::from_sdk_config(options, &config);
        let error = target.fetch().await.unwrap_err();
        assert_eq!(error.kind(), "remote");
        assert_eq!(
            error.to_string(),
            "redshift-serverless GetWorkgroup nope: ResourceNotFoundException: no such thing"
        );
    }
}
