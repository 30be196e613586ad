//! From a validated source to the component that fetches it: the second half of deciding
//! a source's kind once (validation is the first). Nothing here opens a connection: AWS
//! credentials and endpoints resolve lazily, on the first fetch.

use std::sync::Arc;

use idgraph_aws::{IdentityCenterSource, ProvisionedTarget, ServerlessTarget};
use idgraph_sources::file::{FileIdentityCenter, FileIdp, FileTarget};
use idgraph_sources::postgres::PostgresTarget;
use idgraph_sources::scim::ScimSource;
use idgraph_sources::{IdentityCenterRole, IdpRole, Progress, SourceError, TargetRole};

use super::settings::{IdentityCenterSettings, IdpSettings, TargetSettings, TargetSource};

impl IdpSettings {
    /// The source that fetches the IdP's users; a live one reports long fetches to
    /// `progress`.
    ///
    /// # Errors
    ///
    /// When the source cannot be set up from these settings (an unusable SCIM URL).
    pub fn build(&self, progress: Arc<dyn Progress>) -> Result<Box<IdpRole>, SourceError> {
        Ok(match self {
            Self::File { path } => Box::new(FileIdp::new(path.clone())),
            Self::Scim(options) => Box::new(ScimSource::new(options.clone(), progress)?),
        })
    }
}

impl IdentityCenterSettings {
    /// The source that fetches the Identity Center users; the API one reports long fetches
    /// to `progress`.
    pub async fn build(&self, progress: Arc<dyn Progress>) -> Box<IdentityCenterRole> {
        match self {
            Self::File { path } => Box::new(FileIdentityCenter::new(path.clone())),
            Self::Aws(options) => {
                Box::new(IdentityCenterSource::new(options.clone(), progress).await)
            }
        }
    }
}

impl TargetSettings {
    /// The source that fetches this target's users, under the target's name.
    pub async fn build(&self) -> Box<TargetRole> {
        match &self.source {
            TargetSource::Provisioned(options) => {
                Box::new(ProvisionedTarget::new(options.clone()).await)
            }
            TargetSource::Serverless(options) => {
                Box::new(ServerlessTarget::new(options.clone()).await)
            }
            TargetSource::File { path, master_user } => {
                let mut source = FileTarget::new(self.name.clone(), path.clone());
                source.master_user = master_user.clone();
                Box::new(source)
            }
            TargetSource::Postgres {
                connection,
                master_user,
                timeout,
            } => Box::new(PostgresTarget {
                name: self.name.clone(),
                connection: connection.clone(),
                master_user: master_user.clone(),
                timeout: *timeout,
            }),
        }
    }
}
