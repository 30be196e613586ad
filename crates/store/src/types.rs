//! The values the store takes and returns: a run to record ([`NewRun`], [`SourceRecord`]),
//! what recording it changed ([`RecordedRun`]), and the history read back ([`Episode`],
//! [`RunRow`], [`OpenCount`]).

use chrono::{DateTime, Utc};
use idgraph_model::{Finding, FindingKind, Resolution, Severity, Subject};
use serde::{Deserialize, Serialize};

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Every source was fetched.
    Complete,
    /// At least one source failed: findings depending on it neither opened nor resolved.
    Partial,
}

idgraph_model::str_enum!(RunStatus {
    Complete => "complete",
    Partial => "partial",
});

/// How fetching one source went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceStatus {
    /// The snapshot was fetched completely.
    Ok,
    /// The source failed; see [`SourceRecord::error`].
    Failed,
}

idgraph_model::str_enum!(SourceStatus {
    Ok => "ok",
    Failed => "failed",
});

/// What one run read from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// The source's configured name, unique within a run.
    pub name: String,
    /// What the source is, e.g. `okta`, `identity_center`, `redshift`.
    pub kind: String,
    /// Whether the source was fetched.
    pub status: SourceStatus,
    /// How many objects its snapshot held, if known. At most `i64::MAX`.
    pub objects: Option<u64>,
    /// The digest of its snapshot, if there is one.
    pub digest: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// How long fetching took. At most `i64::MAX`.
    pub duration_ms: u64,
}

/// A run to record.
///
/// Times are kept to the millisecond: sub-millisecond digits are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it finished: the `opened_at`/`resolved_at` of the episodes it opens/resolves.
    pub finished_at: DateTime<Utc>,
    /// Whether every source was fetched.
    pub status: RunStatus,
    /// Every source the run read; names must be unique.
    pub sources: Vec<SourceRecord>,
    /// What a watched run evaluated; `None` for a full run. A scoped run opens, updates and
    /// resolves only the graph's findings about its subjects
    /// ([`idgraph_model::diff_within`]).
    pub scope: Option<RunScope>,
}

/// What a watched run (a targeted re-check of the IdP users that changed) evaluated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunScope {
    /// The changed IdP users' ids, sorted.
    pub idp_users: Vec<String>,
    /// The identities whose findings the run evaluated, sorted: database users (with their
    /// target) and Identity Center users (target empty).
    pub subjects: Vec<Subject>,
}

/// What [`Store::record_run`](crate::Store::record_run) recorded. Every list is ordered like
/// [`Store::open_episodes`](crate::Store::open_episodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRun {
    /// The id of the new run.
    pub run_id: i64,
    /// The run's hash: the head of the run chain, to keep outside the store so that
    /// `verify --expect-head` can tell if the newest runs were later deleted.
    pub chain_head: String,
    /// Episodes the run opened.
    pub opened: Vec<Episode>,
    /// Still-open episodes whose finding details (reason, severity, …) the run changed.
    pub updated: Vec<Episode>,
    /// Episodes the run resolved.
    pub resolved: Vec<Episode>,
    /// The episodes open after the run, including those it opened: every one after a full
    /// run; after a scoped run, only those about its subjects that it could have changed.
    pub open: Vec<Episode>,
    /// How many findings are open after the run, every one, whatever its scope.
    pub open_counts: Vec<OpenCount>,
}

/// How many findings of one kind and severity on one target are open, and since when the
/// oldest of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCount {
    /// The finding kind.
    pub kind: FindingKind,
    /// The findings' severity.
    pub severity: Severity,
    /// The target; `None` for Identity Center findings.
    pub target: Option<String>,
    /// How many are open (at least one).
    pub count: u64,
    /// When the oldest of them opened: the `finished_at` of the earliest run that opened
    /// one (runs in the order they were recorded, whatever the clock did).
    pub oldest_opened_at: DateTime<Utc>,
}

/// One episode of a finding: from the run that opened it to the run that resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// The episode id, never reused.
    pub id: i64,
    /// The finding, as last seen while the episode was open.
    pub finding: Finding,
    /// The run that opened the episode.
    pub opened_run: i64,
    /// The `finished_at` of the opening run.
    pub opened_at: DateTime<Utc>,
    /// The run that resolved the episode; `None` while it is open.
    pub resolved_run: Option<i64>,
    /// The `finished_at` of the resolving run.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Why the episode ended; `None` while it is open.
    pub resolution: Option<Resolution>,
}

/// An episode stands for its finding where findings are compared ([`idgraph_model::diff()`]).
impl std::borrow::Borrow<Finding> for Episode {
    fn borrow(&self) -> &Finding {
        &self.finding
    }
}

impl Episode {
    /// Whether the episode is still open.
    pub fn is_open(&self) -> bool {
        self.resolved_run.is_none()
    }
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// The run id, never reused.
    pub id: i64,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// Whether every source was fetched.
    pub status: RunStatus,
    /// Its sources, ordered by name.
    pub sources: Vec<SourceRecord>,
    /// What a watched run evaluated; `None` for a full run.
    pub scope: Option<RunScope>,
    /// How many episodes the run opened.
    pub opened: u64,
    /// How many episodes the run resolved.
    pub resolved: u64,
    /// `SHA-256(previous run's hash ‖ canonical run record)`, hex.
    pub hash: Option<String>,
}
