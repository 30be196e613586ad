//! The systems idgraph takes snapshots of, behind one trait.
//!
//! # Layout
//! - [`Source`]: the trait every source implements, typed by role ([`IdpRole`],
//!   [`IdentityCenterRole`], [`TargetRole`]), [`SourceError`] and [`Deadline`].
//! - [`file`](mod@file): sources that read exports from disk: a SCIM `/Users` dump, the output of
//!   `aws identitystore list-users`, and a `psql --csv` dump of `pg_user`.
//! - [`scim`]: a live SCIM 2.0 `/Users` endpoint.
//! - [`postgres`]: reading `pg_user` over SQL from Redshift or PostgreSQL.
//! - [`logins`]: reading who logged in and the sessions open now, on both.
//! - [`ownership`]: what database users own and where they hold privileges, read-only,
//!   for remediation plans.
//! - [`secret`]: [`Secret`], a string that never prints.
//! - [`progress`]: [`Progress`], how a long fetch reports pages and users.
//! - [`primary_value`]: which of a user's emails is theirs, for the SCIM and Identity
//!   Center sources here and the Identity Center API source in `idgraph-aws`.

pub mod file;
mod json_stream;
pub mod logins;
pub mod ownership;
pub mod postgres;
pub mod progress;
pub mod scim;
pub mod secret;

use std::path::PathBuf;
use std::time::Duration;

pub use progress::{NoProgress, Progress};
pub use secret::{scrub, Scrubbing, Secret};

use chrono::{DateTime, Utc};
use idgraph_model::focus::IcLookup;
use idgraph_model::{AsSnapshot, IcUser, IdpUser, Login, TargetSnapshot};

/// `text` cut to at most `max` bytes (on a character boundary), saying how long it was.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (cut; {} bytes in all)", &text[..end], text.len())
}

/// The value of the entry marked primary, else of the first entry with a value: the email
/// a user is known by, from a SCIM or Identity Center list of emails. `split` gives an
/// entry's value and whether it is marked primary.
pub fn primary_value<E>(
    entries: impl IntoIterator<Item = E>,
    split: impl Fn(E) -> (Option<String>, bool),
) -> Option<String> {
    let mut first = None;
    for entry in entries {
        match split(entry) {
            (Some(value), true) => return Some(value),
            (Some(value), false) => {
                first.get_or_insert(value);
            }
            (None, _) => {}
        }
    }
    first
}

/// A system we take a complete snapshot of on every run.
///
/// `fetch` either returns everything the system holds or an error: a snapshot with a
/// page missing would make present users look deleted. What a snapshot is depends on the
/// source's role, and the type says which: an IdP delivers `Vec<IdpUser>`
/// ([`IdpRole`]), Identity Center `Vec<IcUser>` ([`IdentityCenterRole`]), a database
/// target a [`TargetSnapshot`] ([`TargetRole`]).
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// What one fetch delivers.
    type Snapshot: AsSnapshot + Send + 'static;
    /// Stable, low-cardinality name used in metric labels and history rows:
    /// `idp`, `identity_center`, or the target's name.
    fn name(&self) -> &str;
    /// The configured kind (`file`, `scim`, `aws`, `provisioned`, ...).
    fn kind(&self) -> &str;
    /// Fetches a full snapshot. Safe to retry.
    async fn fetch(&self) -> Result<Self::Snapshot, SourceError>;

    /// Fetches what a watched run re-checks: at least the identities `wanted` names, as
    /// they are now, and complete for them (one it lacks does not exist). The default
    /// fetches everything, which is how a file answers; the caller keeps what it asked for.
    async fn fetch_wanted(&self, wanted: &Wanted<'_>) -> Result<Self::Snapshot, SourceError> {
        let _ = wanted;
        self.fetch().await
    }

    /// A token that changes whenever [`fetch`](Source::fetch) could answer differently,
    /// read without fetching; `None` when the source cannot tell that (a live system). A
    /// watched run answers its lookups from the last full run while the token is the one
    /// that run saw, instead of fetching again.
    async fn revision(&self) -> Option<String> {
        None
    }

    /// The database cluster a target is one database of, as a plan names it (`postgres
    /// db.example.com:5432`, `provisioned cluster analytics in eu-west-1`): targets of the
    /// same cluster share their users, which are cluster-wide, while objects are per
    /// database. `None` for a source that is no database (the IdP, Identity Center, an
    /// export).
    fn cluster(&self) -> Option<String> {
        None
    }

    /// Where a database target's catalog is read, for what its users own (remediation
    /// plans). A source that is no database (the IdP, Identity Center, an export) fails
    /// with [`SourceError::NoCatalog`] saying why.
    async fn catalog(&self) -> Result<CatalogAccess, SourceError> {
        Err(SourceError::NoCatalog {
            origin: self.name().to_owned(),
            detail: format!("a {} source has no database catalog", self.kind()),
        })
    }

    /// A database target's logins since `since` (what its log still holds when `None`)
    /// and the sessions open now, read-only. `Ok(None)` for a source that has no logins
    /// to read: the IdP, Identity Center, an export.
    async fn logins(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<Vec<Login>>, SourceError> {
        let _ = since;
        Ok(None)
    }
}

/// What a watched run asks a source for ([`Source::fetch_wanted`]).
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    /// The Identity Center users a re-check's lookup asks about.
    IcUsers(&'a IcLookup),
    /// Database users by name, folded to lower case: a target answers with the rows of
    /// `pg_user` whose lower-cased `usename` is one of them.
    DbUsers(&'a [String]),
}

/// An identity provider: its users.
pub type IdpRole = dyn Source<Snapshot = Vec<IdpUser>>;
/// IAM Identity Center: its users.
pub type IdentityCenterRole = dyn Source<Snapshot = Vec<IcUser>>;
/// A database target: its catalog's users.
pub type TargetRole = dyn Source<Snapshot = TargetSnapshot>;

/// How to reach a target's catalog: the connection and how long each query may take.
#[derive(Debug, Clone)]
pub struct CatalogAccess {
    /// Where and as whom to connect.
    pub connection: postgres::Connection,
    /// How long connecting and each query may take.
    pub timeout: Duration,
}

/// A source whose whole fetch must finish within a deadline, however its peer behaves: a
/// read that blocks forever or paging that never ends fails the source instead of the run.
pub struct Deadline<T> {
    source: Box<dyn Source<Snapshot = T>>,
    limit: Duration,
}

impl<T: AsSnapshot + Send + 'static> Deadline<T> {
    /// `source`, failing with [`SourceError::Deadline`] when a fetch takes longer than `limit`.
    pub fn new(source: Box<dyn Source<Snapshot = T>>, limit: Duration) -> Self {
        Self { source, limit }
    }

    /// `call` of the source, or [`SourceError::Deadline`] once `limit` has passed. A call
    /// blocked in a thread (a read of a stalled mount) stays blocked there, but the run
    /// goes on without it.
    async fn bounded<R>(
        &self,
        call: impl std::future::Future<Output = Result<R, SourceError>>,
    ) -> Result<R, SourceError> {
        tokio::time::timeout(self.limit, call)
            .await
            .unwrap_or_else(|_| {
                Err(SourceError::Deadline {
                    origin: self.source.name().to_owned(),
                    seconds: self.limit.as_secs(),
                })
            })
    }
}

#[async_trait::async_trait]
impl<T: AsSnapshot + Send + 'static> Source for Deadline<T> {
    type Snapshot = T;

    fn name(&self) -> &str {
        self.source.name()
    }

    fn kind(&self) -> &str {
        self.source.kind()
    }

    fn cluster(&self) -> Option<String> {
        self.source.cluster()
    }

    async fn catalog(&self) -> Result<CatalogAccess, SourceError> {
        self.bounded(self.source.catalog()).await
    }

    async fn fetch(&self) -> Result<T, SourceError> {
        self.bounded(self.source.fetch()).await
    }

    async fn fetch_wanted(&self, wanted: &Wanted<'_>) -> Result<T, SourceError> {
        self.bounded(self.source.fetch_wanted(wanted)).await
    }

    /// `None` (so, fetch) when the source does not tell within the deadline.
    async fn revision(&self) -> Option<String> {
        tokio::time::timeout(self.limit, self.source.revision())
            .await
            .ok()
            .flatten()
    }

    async fn logins(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<Vec<Login>>, SourceError> {
        self.bounded(self.source.logins(since)).await
    }
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
    /// The source answered, but its snapshot is not to be trusted: it shrank far more than
    /// the last complete one, became empty, repeats an id, or a catalog lacks its master
    /// user (SPEC §3). Using it would make users look deleted or present.
    #[error("{origin}: suspicious snapshot: {detail}")]
    Suspicious {
        /// The source.
        origin: String,
        /// What is suspicious, with the numbers.
        detail: String,
    },
    /// The whole fetch did not finish within the source's `deadline_seconds`: a server
    /// paging without end, a stalled mount, a FIFO.
    #[error("{origin}: the fetch did not finish within deadline_seconds = {seconds}")]
    Deadline {
        /// The source.
        origin: String,
        /// The deadline.
        seconds: u64,
    },
    /// The source has no database catalog to read (it is no database, or an export of one).
    #[error("{detail}")]
    NoCatalog {
        /// The source.
        origin: String,
        /// Why not, e.g. "it is a file target: its export (...) lists users, not what they own".
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

/// How much of an error's text is stored, logged or printed: enough for any real message,
/// little enough that a 20 MB value quoted by a parser is not kept on every run.
pub const MAX_ERROR_BYTES: usize = 2048;

impl SourceError {
    /// The error as the history, logs and reports keep it: every secret idgraph holds
    /// scrubbed out (a peer may echo one), and at most [`MAX_ERROR_BYTES`] long.
    pub fn to_report(&self) -> String {
        bounded(&scrub(&self.to_string()), MAX_ERROR_BYTES)
    }

    /// A fixed, low-cardinality name of the error for metric labels and history rows.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Read { .. } => "read",
            SourceError::Malformed { .. } => "malformed",
            SourceError::Incomplete { .. } => "incomplete",
            SourceError::Remote { .. } => "remote",
            SourceError::Unreachable { .. } => "unreachable",
            SourceError::InvalidResponse { .. } => "invalid_response",
            SourceError::Suspicious { .. } => "suspicious",
            SourceError::Deadline { .. } => "deadline",
            SourceError::NoCatalog { .. } => "no_catalog",
            SourceError::Credentials { .. } => "credentials",
        }
    }
}
