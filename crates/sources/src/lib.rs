//! The systems idgraph takes snapshots of, behind one trait.
//!
//! # Layout
//! - [`Source`]: the trait every source implements, and [`SourceError`].
//! - [`file`]: sources that read exports from disk: a SCIM `/Users` dump, the output of
//!   `aws identitystore list-users`, and a `psql --csv` dump of `pg_user`.

pub mod file;

use std::path::PathBuf;

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
    /// An export says it holds more than it does: using it would make users look deleted.
    #[error("{}: incomplete export: {detail}", path.display())]
    Incomplete {
        /// The file.
        path: PathBuf,
        /// What is missing.
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
        }
    }
}
