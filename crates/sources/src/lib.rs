//! The systems idgraph takes snapshots of, behind one trait.
//!
//! # Layout
//! - [`Source`]: the trait every source implements, and [`SourceError`].
//! - [`file`]: sources that read exports from disk: a SCIM `/Users` dump, the output of
//!   `aws identitystore list-users`, and a `psql --csv` dump of `pg_user`.
//! - [`scim`]: a live SCIM 2.0 `/Users` endpoint.
//! - [`postgres`]: reading `pg_user` over SQL from Redshift or PostgreSQL.
//! - [`ownership`]: what database users own and where they hold privileges, read-only,
//!   for remediation plans.
//! - [`secret`]: [`Secret`], a string that never prints.
//! - [`progress`]: [`Progress`], how a long fetch reports pages and users.

pub mod file;
mod json_stream;
pub mod ownership;
pub mod postgres;
pub mod progress;
pub mod scim;
pub mod secret;

use std::path::PathBuf;

pub use progress::{NoProgress, Progress};
pub use secret::Secret;

use idgraph_model::Snapshot;

/// A system we take a complete snapshot of on every run.
///
/// `fetch` either returns everything the system holds or an error: a snapshot with a
/// page missing would make present users look deleted.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// Stable, low-cardinality name used in metric labels and history rows:
    /// `idp`, `identity_center`, or the target's name.
    fn name(&self) -> &str;
    /// The configured kind (`file`, `scim`, `aws`, `provisioned`, ...).
    fn kind(&self) -> &str;
    /// Fetches a full snapshot. Safe to retry.
    async fn fetch(&self) -> Result<Snapshot, SourceError>;
}

/// Why a source could not deliver a complete snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An export file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An export file is not in the expected format; `detail` says where and why.
    #[error("{}: {detail}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where in the file and what is wrong, e.g. `line 3, column 7: expected ...`.
        detail: String,
    },
    /// A source says it holds more than it delivered (a short export, a missing page):
    /// using it would make users look deleted.
    #[error("{origin}: incomplete: {detail}")]
    Incomplete {
        /// The file or endpoint.
        origin: String,
        /// What is missing.
        detail: String,
    },
    /// A remote system answered with an error: an HTTP error status, an AWS service
    /// error, a failed SQL query.
    #[error("{origin}: {detail}")]
    Remote {
        /// The endpoint or target and the request, never with credentials.
        origin: String,
        /// The HTTP status, when there is one.
        status: Option<u16>,
        /// What the system said (a SCIM `detail`, an AWS error message, a SQLSTATE).
        detail: String,
    },
    /// A remote system could not be reached or did not answer in time.
    #[error("{origin}: unreachable: {detail}")]
    Unreachable {
        /// The endpoint or target.
        origin: String,
        /// Why: connection refused, timeout, TLS failure.
        detail: String,
    },
    /// A remote system answered with something that is not what its protocol promises.
    #[error("{origin}: unexpected response: {detail}")]
    InvalidResponse {
        /// The endpoint and request.
        origin: String,
        /// What was wrong with the answer.
        detail: String,
    },
    /// Credentials could not be found or obtained (a token variable not set, a failed
    /// `GetClusterCredentials`). The message never holds a secret.
    #[error("{origin}: credentials: {detail}")]
    Credentials {
        /// Where credentials were sought.
        origin: String,
        /// What is missing or what failed.
        detail: String,
    },
}

impl SourceError {
    /// A fixed, low-cardinality name of the error for metric labels and history rows.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Read { .. } => "read",
            SourceError::Malformed { .. } => "malformed",
            SourceError::Incomplete { .. } => "incomplete",
            SourceError::Remote { .. } => "remote",
            SourceError::Unreachable { .. } => "unreachable",
            SourceError::InvalidResponse { .. } => "invalid_response",
            SourceError::Credentials { .. } => "credentials",
        }
    }
}
