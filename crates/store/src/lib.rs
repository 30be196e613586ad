//! The drift history of idgraph, kept in one SQLite file: every run, the sources it read,
//! and the episodes of every finding — opened in one run, resolved in a later one.
//!
//! [`Store::record_run`] records a run and its findings in one transaction. Which findings
//! open, change or resolve is decided by [`idgraph_model::diff()`]: only findings of evaluated
//! scopes open or resolve, so a failed source leaves the findings that depend on it as they
//! were. A finding that comes back after being resolved opens a new episode; one whose
//! details change keeps its episode, updated in place.
//!
//! History grows with drift, not with the size of the organisation: a run in which nothing
//! changed adds one run row and one small row per source, never a row per user or per open
//! finding.
//!
//! # Layout
//! The schema lives in `/migrations` (embedded at build time, applied by [`Store::open`]):
//! - `runs`: one row per run — `started_at`, `finished_at` (RFC 3339 text in UTC with
//!   millisecond precision) and `status` (`complete` or `partial`).
//! - `run_sources` (`WITHOUT ROWID`, keyed by run and source name): per source its kind,
//!   status (`ok` or `failed`), object count, snapshot digest, error text and duration.
//! - `episodes`: one row per finding episode — the columns of [`Finding`], `opened_run` and
//!   `resolved_run` (NULL while open). A partial unique index on the finding key
//!   `(kind, target or '', subject)` of open episodes keeps one open episode per key and
//!   makes the open-episode lookup of each run an index scan.
//!
//! An episode's `opened_at`/`resolved_at` is the `finished_at` of its run; a run's counts of
//! opened and resolved episodes are derived from `episodes`. Values are always bound, never
//! formatted into SQL.

mod chain;

pub use chain::{ChainReport, PruneReport};

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use idgraph_model::{
    Finding, FindingKey, FindingKind, MatchRule, Reason, Resolution, Scope, Severity,
};
use sqlx::query_builder::Separated;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

/// The schema migrations, embedded from `/migrations`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool: SQLite in WAL mode serves readers concurrently with one writer.
const MAX_CONNECTIONS: u32 = 4;

/// SQLite's primary result code for "file is not a database" (`SQLITE_NOTADB`).
const SQLITE_NOTADB: &str = "26";

/// The columns of a finding in the `episodes` table, in the order
/// [`Store::push_finding`] binds them.
const FINDING_COLUMNS: &str = "kind, target, db_user, ic_user_id, idp_user_id, user_name, \
    reason, severity, superuser, matched_by, candidates";

/// Episodes written by one statement: 12 parameters a row stay under SQLite's limit of
/// 32,766 parameters, and 10,000 findings take ten statements rather than 10,000.
const WRITE_BATCH: usize = 1_000;

/// The episodes matching `$condition` (on `e`, the episodes) with ids above `?1`, at most
/// `?2` of them, as one JSON array of [`EpisodeRow`] objects (`json()` because a subquery's
/// column is text to the aggregate), with their count and last id:
/// SQLite hands over one value per page instead of a row per episode, which for tens of
/// thousands of open findings is most of the cost of reading them.
macro_rules! select_episodes {
    ($condition:literal) => {
        concat!(
            "SELECT json_group_array(json(j)), count(*), max(id) FROM (\
                SELECT json_object(\
                    'id', e.id, 'kind', e.kind, 'target', e.target, 'db_user', e.db_user, \
                    'ic_user_id', e.ic_user_id, 'idp_user_id', e.idp_user_id, \
                    'user_name', e.user_name, 'reason', e.reason, 'severity', e.severity, \
                    'superuser', e.superuser, 'matched_by', e.matched_by, \
                    'candidates', e.candidates, 'opened_run', e.opened_run, \
                    'opened_at', o.finished_at, 'resolved_run', e.resolved_run, \
                    'resolved_at', r.finished_at, 'resolution', e.resolution) AS j, \
                    e.id AS id \
                FROM episodes AS e \
                JOIN runs AS o ON o.id = e.opened_run \
                LEFT JOIN runs AS r ON r.id = e.resolved_run \
                WHERE e.id > ?1 AND (",
            $condition,
            ") ORDER BY e.id LIMIT ?2)"
        )
    };
}

/// Episodes per page of [`select_episodes!`]: a JSON value of about 25 MB, keys included,
/// far below SQLite's limit on the length of a value however large the history grows.
/// Unit tests use small pages so that a few thousand episodes cross several.
#[cfg(not(test))]
const READ_PAGE: i64 = 50_000;
#[cfg(test)]
const READ_PAGE: i64 = 1_000;

/// Which episodes to read.
#[derive(Clone, Copy)]
enum Which<'a> {
    /// Those still open.
    Open,
    /// All, or those of the database user of exactly this name.
    All(Option<&'a str>),
}

/// An element of [`select_episodes!`]: the columns of an episode and the finish times of
/// its runs, read by name so that the order of the SQL does not matter.
#[derive(serde::Deserialize)]
struct EpisodeRow {
    id: i64,
    kind: String,
    target: Option<String>,
    db_user: Option<String>,
    ic_user_id: Option<String>,
    idp_user_id: Option<String>,
    user_name: Option<String>,
    reason: String,
    severity: String,
    superuser: i64,
    matched_by: Option<String>,
    candidates: Option<String>,
    opened_run: i64,
    /// The `finished_at` of the opening run.
    opened_at: String,
    resolved_run: Option<i64>,
    /// The `finished_at` of the resolving run.
    resolved_at: Option<String>,
    resolution: Option<String>,
}

/// Everything that can go wrong opening, reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory that should hold the store file does not exist; the store creates its
    /// file but never directories.
    #[error("cannot open store {}: directory {} does not exist", path.display(), dir.display())]
    MissingDirectory {
        /// The store file.
        path: PathBuf,
        /// Its missing directory.
        dir: PathBuf,
    },
    /// A command that only reads found no store at the path; it creates none.
    #[error("no store at {}: nothing has been recorded there yet (run `idgraph reconcile` or the daemon first)", path.display())]
    Missing {
        /// The store file.
        path: PathBuf,
    },
    /// A newer idgraph wrote the store: its schema has migrations this idgraph does not know.
    #[error("store {} was written by a newer idgraph (schema version {version}; this idgraph knows up to {known}): upgrade idgraph", path.display())]
    Newer {
        /// The store file.
        path: PathBuf,
        /// The newest schema version in the store.
        version: i64,
        /// The newest schema version this idgraph knows.
        known: i64,
    },
    /// A command that only reads found a store an older idgraph wrote; only a writing
    /// command migrates it.
    #[error("store {} was written by an older idgraph (schema version {version}, now {known}): run `idgraph reconcile` or the daemon once to migrate it", path.display())]
    Older {
        /// The store file.
        path: PathBuf,
        /// The newest schema version in the store.
        version: i64,
        /// The newest schema version this idgraph knows.
        known: i64,
    },
    /// The file exists but is not an SQLite database.
    #[error("cannot open store {}: the file is not an SQLite database", path.display())]
    NotSqlite {
        /// The store file.
        path: PathBuf,
        /// SQLite's complaint.
        #[source]
        source: sqlx::Error,
    },
    /// SQLite could not open or configure the file (permissions, a directory, locking).
    #[error("cannot open store {}", path.display())]
    Open {
        /// The store file.
        path: PathBuf,
        /// What SQLite reported.
        #[source]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date, e.g. because a newer idgraph wrote the
    /// store or a released migration was changed.
    #[error("cannot migrate store {}", path.display())]
    Migrate {
        /// The store file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A write failed because the disk holding the store is full (or failing: SQLite
    /// reports a full disk as an I/O error where the WAL's shared memory cannot grow).
    /// Nothing of the statement's transaction was kept.
    #[error("store {}: cannot {action}: {what}; free space on the disk that holds it", path.display())]
    Disk {
        /// The store file.
        path: PathBuf,
        /// What the store was doing.
        action: &'static str,
        /// "the disk is full", or "the disk is full or failing (disk I/O error)".
        what: &'static str,
    },
    /// A statement failed.
    #[error("store {}: cannot {action}", path.display())]
    Query {
        /// The store file.
        path: PathBuf,
        /// What the store was doing, e.g. "insert an episode".
        action: &'static str,
        /// What SQLite reported.
        #[source]
        source: sqlx::Error,
    },
    /// A stored row holds a value the store cannot read back, e.g. an unknown finding kind.
    #[error("store {} is corrupt: {row}: {detail}", path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// The row, e.g. `episodes row 17`.
        row: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The run handed to [`Store::record_run`] cannot be recorded; nothing was written.
    #[error("store {}: invalid run: {detail}", path.display())]
    InvalidRun {
        /// The store file.
        path: PathBuf,
        /// What is wrong with the run.
        detail: String,
    },
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Every source was fetched.
    Complete,
    /// At least one source failed: findings depending on it neither opened nor resolved.
    Partial,
}

impl RunStatus {
    /// The name the store keeps: `complete` or `partial`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Complete => "complete",
            RunStatus::Partial => "partial",
        }
    }

    /// Parses the name [`Self::as_str`] returns.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "complete" => Some(RunStatus::Complete),
            "partial" => Some(RunStatus::Partial),
            _ => None,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How fetching one source went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceStatus {
    /// The snapshot was fetched completely.
    Ok,
    /// The source failed; see [`SourceRecord::error`].
    Failed,
}

impl SourceStatus {
    /// The name the store keeps: `ok` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Ok => "ok",
            SourceStatus::Failed => "failed",
        }
    }

    /// Parses the name [`Self::as_str`] returns.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(SourceStatus::Ok),
            "failed" => Some(SourceStatus::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for SourceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
}

/// What [`Store::record_run`] recorded. Every list is ordered like [`Store::open_episodes`].
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
    /// Every episode open after the run, including those it opened.
    pub open: Vec<Episode>,
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

/// An episode stands for its finding where findings are compared ([`idgraph_model::diff`]).
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
    /// How many episodes the run opened.
    pub opened: u64,
    /// How many episodes the run resolved.
    pub resolved: u64,
    /// `SHA-256(previous run's hash ‖ canonical run record)`, hex.
    pub hash: Option<String>,
}

/// The drift history in one SQLite file. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    /// Opened by [`Store::open_read_only`]: nothing is ever written, not even a checkpoint.
    read_only: bool,
}

impl Store {
    /// Opens the store at `path` and migrates it to the current schema, creating the file
    /// (but never its directory) if it is missing.
    ///
    /// SQLite runs in WAL mode with foreign keys on, a busy timeout of 5 s and
    /// `synchronous = NORMAL`.
    ///
    /// # Errors
    /// - [`StoreError::MissingDirectory`] if the directory of `path` does not exist.
    /// - [`StoreError::NotSqlite`] if the file is not an SQLite database; it is left as is.
    /// - [`StoreError::Open`] if SQLite cannot open the file otherwise.
    /// - [`StoreError::Migrate`] if the schema cannot be migrated, e.g. a newer idgraph
    ///   wrote the store.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(StoreError::MissingDirectory {
                path: path.to_owned(),
                dir: dir.to_owned(),
            });
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| open_error(path, source))?;
        let store = Store {
            pool,
            path: path.to_owned(),
            read_only: false,
        };
        if let Err(source) = MIGRATOR.run(&store.pool).await {
            let newer = store
                .schema_versions()
                .await
                .ok()
                .and_then(|(newest, _)| (newest > known_version()).then_some(newest));
            store.pool.close().await;
            return Err(match source {
                _ if newer.is_some() => StoreError::Newer {
                    path: path.to_owned(),
                    version: newer.unwrap_or_default(),
                    known: known_version(),
                },
                sqlx::migrate::MigrateError::Execute(source)
                    if is_not_a_database(&source) || disk_trouble(&source).is_some() =>
                {
                    open_error(path, source)
                }
                source => StoreError::Migrate {
                    path: path.to_owned(),
                    source,
                },
            });
        }
        store.backfill_chain().await?;
        tracing::debug!(path = %path.display(), "store open");
        Ok(store)
    }

    /// Opens the store at `path` for reading only: nothing is created, migrated or sealed,
    /// and a store on a read-only mount works. What `verify`, `findings`, `history`,
    /// `export` and `plan` use.
    ///
    /// # Errors
    /// - [`StoreError::Missing`] if there is no file at `path`.
    /// - [`StoreError::NotSqlite`] if the file is not an SQLite database.
    /// - [`StoreError::Newer`] or [`StoreError::Older`] if its schema is not this idgraph's.
    /// - [`StoreError::Open`] if SQLite cannot open the file otherwise.
    pub async fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing {
                path: path.to_owned(),
            });
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT);
        let connect = |options: SqliteConnectOptions| async move {
            let pool = SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .connect_with(options)
                .await?;
            // Reading proves the file can be read, WAL included.
            sqlx::query("SELECT count(*) FROM sqlite_master")
                .execute(&pool)
                .await?;
            Ok::<_, sqlx::Error>(pool)
        };
        let pool = match connect(options.clone()).await {
            Ok(pool) => pool,
            // A WAL store in a directory nobody may write to (a read-only mount) cannot get
            // its shared-memory file: read it as an immutable file instead.
            Err(error) if !is_not_a_database(&error) => connect(options.immutable(true))
                .await
                .map_err(|_| open_error(path, error))?,
            Err(error) => return Err(open_error(path, error)),
        };
        let store = Store {
            pool,
            path: path.to_owned(),
            read_only: true,
        };
        let (newest, complete) = match store.schema_versions().await {
            Ok(versions) => versions,
            Err(source) => {
                store.pool.close().await;
                return Err(open_error(path, source));
            }
        };
        let known = known_version();
        let mismatch = if newest > known {
            Some(StoreError::Newer {
                path: path.to_owned(),
                version: newest,
                known,
            })
        } else if !complete {
            Some(StoreError::Older {
                path: path.to_owned(),
                version: newest,
                known,
            })
        } else {
            None
        };
        if let Some(error) = mismatch {
            store.pool.close().await;
            return Err(error);
        }
        Ok(store)
    }

    /// The newest schema version applied to the store, and whether every migration this
    /// idgraph knows is applied.
    async fn schema_versions(&self) -> Result<(i64, bool), sqlx::Error> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.pool)
                .await
            {
                Ok(applied) => applied,
                // No migration table: nothing applied yet (an empty file).
                Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => {
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
        let applied: HashSet<i64> = applied.into_iter().collect();
        let complete = MIGRATOR.iter().all(|m| applied.contains(&m.version));
        Ok((applied.iter().copied().max().unwrap_or(0), complete))
    }

    /// Seals the runs of a store created before the run chain existed, oldest first, in
    /// one transaction.
    async fn backfill_chain(&self) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query("begin a transaction"))?;
        let sealed = chain::backfill(&mut tx)
            .await
            .map_err(self.query("compute the run chain of earlier runs"))?;
        tx.commit()
            .await
            .map_err(self.query("commit the run chain"))?;
        if sealed > 0 {
            tracing::info!(path = %self.path.display(), runs = sealed, "Computed the run chain of runs recorded before it existed.");
        }
        Ok(())
    }

    /// Recomputes the run chain from the recorded runs and compares it with the hashes
    /// stored in each run row: the first run that does not match is where the history was
    /// changed.
    ///
    /// # Errors
    /// [`StoreError::Query`] if reading fails.
    pub async fn verify(&self) -> Result<ChainReport, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(self.query("connect to verify the chain"))?;
        chain::verify(&mut conn)
            .await
            .map_err(self.query("verify the run chain"))
    }

    /// Removes the oldest runs that finished before `cutoff`, with the episodes that
    /// opened and resolved within them, keeping a checkpoint so that [`Store::verify`]
    /// still passes. A run that opened a finding still open, or resolved after the cut,
    /// stays, and so does every run after it: the history of what is open is never cut.
    ///
    /// # Errors
    /// [`StoreError::Query`] if the deletion fails; nothing is removed then.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<PruneReport, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query("begin a transaction"))?;
        let report = chain::prune(&mut tx, &format_time(cutoff))
            .await
            .map_err(self.query("prune old runs"))?;
        tx.commit().await.map_err(self.query("commit the prune"))?;
        Ok(report)
    }

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records one run and its findings in one transaction and returns what changed.
    ///
    /// `findings` are every finding of the run; `evaluated` the scopes whose sources were
    /// fetched completely. Only findings of evaluated scopes open or resolve (see
    /// [`idgraph_model::diff()`]): open findings of other scopes stay open as they are, and
    /// when `evaluated` is empty nothing opens or resolves. A still-open finding whose
    /// details changed keeps its episode, updated in place.
    ///
    /// # Errors
    /// - [`StoreError::InvalidRun`] if two sources share a name, two findings share a key,
    ///   or a count exceeds `i64::MAX`; nothing is written.
    /// - [`StoreError::Query`] if a statement fails, [`StoreError::Corrupt`] if an open
    ///   episode cannot be read back; the transaction is rolled back and nothing is written.
    pub async fn record_run(
        &self,
        run: &NewRun,
        findings: &[Finding],
        evaluated: &HashSet<Scope>,
    ) -> Result<RecordedRun, StoreError> {
        let sources = self.validate(run, findings)?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query("begin a transaction"))?;

        let run_id =
            sqlx::query("INSERT INTO runs (started_at, finished_at, status) VALUES (?, ?, ?)")
                .bind(format_time(run.started_at))
                .bind(format_time(run.finished_at))
                .bind(run.status.as_str())
                .execute(&mut *tx)
                .await
                .map_err(self.query("insert the run"))?
                .last_insert_rowid();
        for SourceRow {
            source,
            objects,
            duration_ms,
        } in sources
        {
            sqlx::query(
                "INSERT INTO run_sources \
                 (run_id, name, kind, status, objects, digest, error, duration_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(run_id)
            .bind(&source.name)
            .bind(&source.kind)
            .bind(source.status.as_str())
            .bind(objects)
            .bind(&source.digest)
            .bind(&source.error)
            .bind(duration_ms)
            .execute(&mut *tx)
            .await
            .map_err(self.query("insert a run source"))?;
        }

        // The open episodes before the run, by key; after the writes below they become the
        // episodes open after it, so nothing written is read back.
        let mut episodes: HashMap<FindingKey, Episode> = self
            .open_in(&mut tx)
            .await?
            .into_iter()
            .map(|episode| (episode.finding.key(), episode))
            .collect();
        let mut changes = idgraph_model::diff(&episodes, findings, evaluated);
        // Insert in key order, so episode ids do not depend on the order of `findings`.
        changes.opened.sort_by_key(|finding| finding.key());
        // As stored: the store keeps milliseconds.
        let finished_at = run.finished_at.trunc_subsecs(3);

        let mut opened = Vec::with_capacity(changes.opened.len());
        for batch in changes.opened.chunks(WRITE_BATCH) {
            let first_id = self.insert_episodes(&mut tx, batch, run_id).await?;
            opened.extend(batch.iter().zip(first_id..).map(|(finding, id)| Episode {
                id,
                finding: (*finding).clone(),
                opened_run: run_id,
                opened_at: finished_at,
                resolved_run: None,
                resolved_at: None,
                resolution: None,
            }));
        }
        let mut updated = Vec::with_capacity(changes.updated.len());
        for batch in changes.updated.chunks(WRITE_BATCH) {
            let ids: Vec<i64> = batch
                .iter()
                .map(|finding| episodes[&finding.key()].id)
                .collect();
            self.update_episodes(&mut tx, batch, &ids).await?;
            for finding in batch {
                let episode = episodes
                    .get_mut(&finding.key())
                    .expect("diff only updates open findings");
                episode.finding = (*finding).clone();
                updated.push(episode.clone());
            }
        }
        let mut resolved = Vec::with_capacity(changes.resolved.len() + changes.retired.len());
        for (keys, resolution) in [
            (&changes.resolved, Resolution::NotSeen),
            (&changes.retired, Resolution::TargetRemoved),
        ] {
            for batch in keys.chunks(WRITE_BATCH) {
                let mut ended: Vec<Episode> = batch
                    .iter()
                    .map(|key| {
                        episodes
                            .remove(key)
                            .expect("diff only resolves open findings")
                    })
                    .collect();
                let mut resolve =
                    QueryBuilder::<Sqlite>::new("UPDATE episodes SET resolved_run = ");
                resolve.push_bind(run_id);
                resolve.push(", resolution = ");
                // NULL is how every store has recorded "no longer seen".
                resolve.push_bind(
                    (resolution == Resolution::TargetRemoved).then_some(resolution.as_str()),
                );
                resolve.push(" WHERE resolved_run IS NULL AND id IN (");
                let mut list = resolve.separated(", ");
                for episode in &ended {
                    list.push_bind(episode.id);
                }
                resolve.push(")");
                let done = resolve
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(self.query("resolve episodes"))?;
                let ids: Vec<i64> = ended.iter().map(|episode| episode.id).collect();
                self.expect_rows(done.rows_affected(), &ids)?;
                for episode in &mut ended {
                    episode.resolved_run = Some(run_id);
                    episode.resolved_at = Some(finished_at);
                    episode.resolution = Some(resolution);
                }
                resolved.append(&mut ended);
            }
        }
        self.insert_versions(&mut tx, run_id, &updated).await?;
        let chain_head = chain::seal(&mut tx, run_id)
            .await
            .map_err(self.query("seal the run into the chain"))?;
        tx.commit().await.map_err(self.query("commit the run"))?;

        let mut open: Vec<Episode> = episodes
            .into_values()
            .chain(opened.iter().cloned())
            .collect();
        for list in [&mut open, &mut opened, &mut updated, &mut resolved] {
            sort_by_urgency(list);
        }
        tracing::debug!(
            run_id,
            status = run.status.as_str(),
            opened = opened.len(),
            updated = updated.len(),
            resolved = resolved.len(),
            open = open.len(),
            "run recorded"
        );
        Ok(RecordedRun {
            run_id,
            chain_head,
            opened,
            updated,
            resolved,
            open,
        })
    }

    /// The targets that open episodes name, sorted.
    ///
    /// # Errors
    /// [`StoreError::Query`] if reading fails.
    pub async fn open_targets(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT DISTINCT target FROM episodes \
             WHERE resolved_run IS NULL AND target IS NOT NULL ORDER BY target",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.query("read the targets of open episodes"))
    }

    /// The object count of each source's last complete snapshot: the newest run in which
    /// the source named in `names` was fetched (`ok`). Sources never fetched completely are
    /// absent.
    ///
    /// # Errors
    /// [`StoreError::Query`] if reading fails, [`StoreError::Corrupt`] if a count is
    /// negative.
    pub async fn last_complete_objects(
        &self,
        names: &[&str],
    ) -> Result<HashMap<String, u64>, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(self.query("read the last complete snapshots"))?;
        let mut counts = HashMap::with_capacity(names.len());
        for &name in names {
            let objects: Option<Option<i64>> = sqlx::query_scalar(
                "SELECT objects FROM run_sources WHERE name = ? AND status = 'ok' \
                 ORDER BY run_id DESC LIMIT 1",
            )
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(self.query("read the last complete snapshots"))?;
            if let Some(Some(objects)) = objects {
                let objects = u64::try_from(objects).map_err(|_| {
                    self.corrupt(
                        format!("run_sources row of source {name:?}"),
                        format!("negative object count {objects}"),
                    )
                })?;
                counts.insert(name.to_owned(), objects);
            }
        }
        Ok(counts)
    }

    /// Episodes still open, most urgent first: by severity (critical first), then kind,
    /// target and subject (database user or Identity Center user id).
    ///
    /// # Errors
    /// [`StoreError::Query`] if reading fails, [`StoreError::Corrupt`] if a row cannot be
    /// read back.
    pub async fn open_episodes(&self) -> Result<Vec<Episode>, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(self.query("read open episodes"))?;
        self.open_in(&mut conn).await
    }

    /// All episodes, oldest first; with `db_user`, only the episodes of the database user
    /// of exactly that name (on any target).
    ///
    /// # Errors
    /// [`StoreError::Query`] if reading fails, [`StoreError::Corrupt`] if a row cannot be
    /// read back.
    pub async fn episodes(&self, db_user: Option<&str>) -> Result<Vec<Episode>, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(self.query("read episodes"))?;
        self.read_episodes(&mut conn, Which::All(db_user)).await
    }

    /// All runs with their sources, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Query`] if reading fails, [`StoreError::Corrupt`] if a row cannot be
    /// read back.
    pub async fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(self.query("begin a transaction"))?;
        let run_rows = sqlx::query(
            "SELECT r.id, r.started_at, r.finished_at, r.status, r.hash, \
                    (SELECT count(*) FROM episodes AS e WHERE e.opened_run = r.id) AS opened, \
                    (SELECT count(*) FROM episodes AS e WHERE e.resolved_run = r.id) AS resolved \
             FROM runs AS r ORDER BY r.id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(self.query("read runs"))?;
        let source_rows = sqlx::query(
            "SELECT run_id, name, kind, status, objects, digest, error, duration_ms \
             FROM run_sources ORDER BY run_id, name",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(self.query("read run sources"))?;
        tx.commit().await.map_err(self.query("read runs"))?;

        let mut sources: HashMap<i64, Vec<SourceRecord>> = HashMap::new();
        for row in &source_rows {
            let run_id: i64 =
                self.get(row, "run_sources", "run_id", || "run_sources row".into())?;
            let name: String = self.get(row, "run_sources", "name", || {
                format!("run_sources row of run {run_id}")
            })?;
            let which = || format!("run_sources row (run {run_id}, source {name:?})");
            let status: String = self.get(row, "run_sources", "status", which)?;
            let objects: Option<i64> = self.get(row, "run_sources", "objects", which)?;
            let duration_ms: i64 = self.get(row, "run_sources", "duration_ms", which)?;
            let record = SourceRecord {
                kind: self.get(row, "run_sources", "kind", which)?,
                status: SourceStatus::parse(&status).ok_or_else(|| {
                    self.corrupt(which(), format!("unknown source status {status:?}"))
                })?,
                objects: objects
                    .map(|n| {
                        u64::try_from(n).map_err(|_| {
                            self.corrupt(which(), format!("negative object count {n}"))
                        })
                    })
                    .transpose()?,
                digest: self.get(row, "run_sources", "digest", which)?,
                error: self.get(row, "run_sources", "error", which)?,
                duration_ms: u64::try_from(duration_ms).map_err(|_| {
                    self.corrupt(which(), format!("negative duration {duration_ms}"))
                })?,
                name,
            };
            sources.entry(run_id).or_default().push(record);
        }

        run_rows
            .iter()
            .map(|row| {
                let id: i64 = self.get(row, "runs", "id", || "runs row".into())?;
                let which = || format!("runs row {id}");
                let status: String = self.get(row, "runs", "status", which)?;
                let opened: i64 = self.get(row, "runs", "opened", which)?;
                let resolved: i64 = self.get(row, "runs", "resolved", which)?;
                Ok(RunRow {
                    id,
                    started_at: self.time(row, "runs", "started_at", which)?,
                    finished_at: self.time(row, "runs", "finished_at", which)?,
                    status: RunStatus::parse(&status).ok_or_else(|| {
                        self.corrupt(which(), format!("unknown run status {status:?}"))
                    })?,
                    sources: sources.remove(&id).unwrap_or_default(),
                    // count(*) is never negative.
                    opened: opened.unsigned_abs(),
                    resolved: resolved.unsigned_abs(),
                    hash: self.get(row, "runs", "hash", which)?,
                })
            })
            .collect()
    }

    /// Checkpoints the WAL into the database file (truncating the WAL) and closes every
    /// connection, of this store and its clones, so that the file on disk holds everything.
    ///
    /// A failed checkpoint is logged, not returned: SQLite checkpoints again when the last
    /// connection closes, and the WAL keeps every committed run either way.
    pub async fn close(self) {
        if self.read_only {
            self.pool.close().await;
            return;
        }
        // One row: (1 if a reader or writer kept the checkpoint from finishing, WAL frames,
        // frames checkpointed).
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.pool)
            .await
        {
            Ok((0, _, _)) => {}
            Ok((_, frames, done)) => tracing::warn!(
                path = %self.path.display(),
                frames,
                done,
                "store checkpoint incomplete: the database is busy"
            ),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "store checkpoint failed")
            }
        }
        self.pool.close().await;
        tracing::debug!(path = %self.path.display(), "store closed");
    }

    /// Checks what SQLite constraints would otherwise reject mid-transaction, and converts
    /// the counts of each source to SQLite integers.
    fn validate<'r>(
        &self,
        run: &'r NewRun,
        findings: &[Finding],
    ) -> Result<Vec<SourceRow<'r>>, StoreError> {
        let invalid = |detail: String| StoreError::InvalidRun {
            path: self.path.clone(),
            detail,
        };
        let mut names = HashSet::with_capacity(run.sources.len());
        let mut sources = Vec::with_capacity(run.sources.len());
        for source in &run.sources {
            if !names.insert(source.name.as_str()) {
                return Err(invalid(format!("source {:?} appears twice", source.name)));
            }
            let objects = source
                .objects
                .map(|n| {
                    i64::try_from(n).map_err(|_| {
                        invalid(format!(
                            "source {:?}: object count {n} too large",
                            source.name
                        ))
                    })
                })
                .transpose()?;
            let duration_ms = i64::try_from(source.duration_ms).map_err(|_| {
                invalid(format!(
                    "source {:?}: duration {} ms too large",
                    source.name, source.duration_ms
                ))
            })?;
            sources.push(SourceRow {
                source,
                objects,
                duration_ms,
            });
        }
        let mut keys = HashSet::with_capacity(findings.len());
        for finding in findings {
            let key = finding.key();
            if !keys.insert(key) {
                let key = finding.key();
                return Err(invalid(format!(
                    "two findings share the key ({}, target {:?}, subject {:?})",
                    key.kind, key.target, key.subject
                )));
            }
        }
        Ok(sources)
    }

    /// Binds the [`FINDING_COLUMNS`] of `finding` into a row of a `VALUES` list.
    fn push_finding<'q>(
        &self,
        row: &mut Separated<'_, 'q, Sqlite, &'static str>,
        finding: &'q Finding,
    ) -> Result<(), StoreError> {
        let candidates = if finding.candidates.is_empty() {
            None
        } else {
            // Serialising strings cannot fail.
            Some(serde_json::to_string(&finding.candidates).map_err(|error| {
                StoreError::InvalidRun {
                    path: self.path.clone(),
                    detail: format!("cannot encode candidates: {error}"),
                }
            })?)
        };
        row.push_bind(finding.kind.as_str())
            .push_bind(finding.target.as_deref())
            .push_bind(finding.db_user.as_deref())
            .push_bind(finding.ic_user_id.as_deref())
            .push_bind(finding.idp_user_id.as_deref())
            .push_bind(finding.user_name.as_deref())
            .push_bind(finding.reason.as_str())
            .push_bind(finding.severity.as_str())
            .push_bind(finding.superuser)
            .push_bind(finding.matched_by.map(MatchRule::as_str))
            .push_bind(candidates);
        Ok(())
    }

    /// A `VALUES` list of `findings`, each row ending with its entry of `last`.
    fn values<'q>(
        &self,
        query: &mut QueryBuilder<'q, Sqlite>,
        findings: &[&'q Finding],
        last: impl Iterator<Item = i64>,
    ) -> Result<(), StoreError> {
        query.push("VALUES ");
        for (n, (finding, last)) in findings.iter().zip(last).enumerate() {
            query.push(if n == 0 { "(" } else { ", (" });
            let mut row = query.separated(", ");
            self.push_finding(&mut row, finding)?;
            row.push_bind(last);
            query.push(")");
        }
        Ok(())
    }

    /// Inserts episodes of run `run_id` opening `findings` with one statement and returns
    /// the id of the first; the others follow it in order.
    async fn insert_episodes(
        &self,
        tx: &mut sqlx::SqliteConnection,
        findings: &[&Finding],
        run_id: i64,
    ) -> Result<i64, StoreError> {
        let mut insert = QueryBuilder::<Sqlite>::new(format!(
            "INSERT INTO episodes ({FINDING_COLUMNS}, opened_run) "
        ));
        self.values(&mut insert, findings, std::iter::repeat(run_id))?;
        let last = insert
            .build()
            .execute(&mut *tx)
            .await
            .map_err(self.query("insert episodes"))?
            .last_insert_rowid();
        // One statement takes consecutive AUTOINCREMENT ids in VALUES order; check that
        // the range holds exactly these rows, first and last where expected, rather than
        // trust it.
        let first = last - findings.len() as i64 + 1;
        let (count, first_key, last_key): (i64, Option<String>, Option<String>) = sqlx::query_as(
            "SELECT count(*), \
                    max(CASE WHEN id = ?1 THEN kind || '/' || coalesce(target, '') || '/' || coalesce(db_user, ic_user_id, '') END), \
                    max(CASE WHEN id = ?2 THEN kind || '/' || coalesce(target, '') || '/' || coalesce(db_user, ic_user_id, '') END) \
             FROM episodes WHERE id BETWEEN ?1 AND ?2 AND opened_run = ?3",
        )
        .bind(first)
        .bind(last)
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(self.query("check inserted episodes"))?;
        let key = |finding: &Finding| {
            let key = finding.key();
            format!("{}/{}/{}", key.kind.as_str(), key.target, key.subject)
        };
        let expected = (
            findings.len() as i64,
            findings.first().map(|f| key(f)),
            findings.last().map(|f| key(f)),
        );
        if (count, first_key, last_key) != expected {
            return Err(self.corrupt(
                format!("episodes rows {first} to {last}"),
                "the inserted episodes did not take consecutive ids".to_owned(),
            ));
        }
        Ok(first)
    }

    /// Records, as versions of run `run_id`, the details of every episode it opened and of
    /// the `updated` ones as they are now: what the run's link in the chain covers.
    async fn insert_versions(
        &self,
        tx: &mut sqlx::SqliteConnection,
        run_id: i64,
        updated: &[Episode],
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO episode_versions (episode_id, run_id, {FINDING_COLUMNS}) \
             SELECT id, opened_run, {FINDING_COLUMNS} FROM episodes WHERE opened_run = ?"
        ))
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(self.query("record the versions of opened episodes"))?;
        for batch in updated.chunks(WRITE_BATCH) {
            let mut insert = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO episode_versions (episode_id, run_id, {FINDING_COLUMNS}) SELECT id, "
            ));
            insert.push_bind(run_id);
            insert.push(format!(", {FINDING_COLUMNS} FROM episodes WHERE id IN ("));
            let mut ids = insert.separated(", ");
            for episode in batch {
                ids.push_bind(episode.id);
            }
            insert.push(")");
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(self.query("record the versions of updated episodes"))?;
        }
        Ok(())
    }

    /// Updates the open episodes `ids` in place to `findings`, one statement for all.
    async fn update_episodes(
        &self,
        tx: &mut sqlx::SqliteConnection,
        findings: &[&Finding],
        ids: &[i64],
    ) -> Result<(), StoreError> {
        let mut update =
            QueryBuilder::<Sqlite>::new(format!("WITH v ({FINDING_COLUMNS}, id) AS ("));
        self.values(&mut update, findings, ids.iter().copied())?;
        update.push(
            ") UPDATE episodes SET kind = v.kind, target = v.target, db_user = v.db_user, \
             ic_user_id = v.ic_user_id, idp_user_id = v.idp_user_id, user_name = v.user_name, \
             reason = v.reason, severity = v.severity, superuser = v.superuser, \
             matched_by = v.matched_by, candidates = v.candidates \
             FROM v WHERE episodes.id = v.id AND episodes.resolved_run IS NULL",
        );
        let done = update
            .build()
            .execute(&mut *tx)
            .await
            .map_err(self.query("update episodes"))?;
        self.expect_rows(done.rows_affected(), ids)
    }

    /// The open episodes, most urgent first, read on `conn`.
    async fn open_in(&self, conn: &mut sqlx::SqliteConnection) -> Result<Vec<Episode>, StoreError> {
        let mut episodes = self.read_episodes(conn, Which::Open).await?;
        sort_by_urgency(&mut episodes);
        Ok(episodes)
    }

    /// Reads `which` episodes on `conn` a page at a time, in id order.
    async fn read_episodes(
        &self,
        conn: &mut sqlx::SqliteConnection,
        which: Which<'_>,
    ) -> Result<Vec<Episode>, StoreError> {
        let mut episodes = Vec::new();
        let mut after = 0;
        loop {
            let page = match which {
                Which::Open => sqlx::query_as(select_episodes!("e.resolved_run IS NULL")),
                Which::All(_) => sqlx::query_as(select_episodes!("?3 IS NULL OR e.db_user = ?3")),
            }
            .bind(after)
            .bind(READ_PAGE);
            let page = match which {
                Which::Open => page,
                Which::All(db_user) => page.bind(db_user),
            };
            let (json, count, last): (String, i64, Option<i64>) = page
                .fetch_one(&mut *conn)
                .await
                .map_err(self.query("read episodes"))?;
            let mut rows = self.episodes_from(&json)?;
            rows.sort_unstable_by_key(|episode| episode.id);
            episodes.append(&mut rows);
            match last {
                Some(last) if count == READ_PAGE => after = last,
                _ => return Ok(episodes),
            }
        }
    }

    /// Reads the JSON array of [`select_episodes!`].
    fn episodes_from(&self, json: &str) -> Result<Vec<Episode>, StoreError> {
        let rows: Vec<EpisodeRow> = serde_json::from_str(json).map_err(|error| {
            self.corrupt(
                "episodes".to_owned(),
                format!("a column holds a value of the wrong type: {error}"),
            )
        })?;
        rows.into_iter().map(|row| self.episode_from(row)).collect()
    }

    /// Checks and converts one element of [`select_episodes!`].
    fn episode_from(&self, row: EpisodeRow) -> Result<Episode, StoreError> {
        let EpisodeRow {
            id,
            kind,
            target,
            db_user,
            ic_user_id,
            idp_user_id,
            user_name,
            reason,
            severity,
            superuser,
            matched_by,
            candidates,
            opened_run,
            opened_at,
            resolved_run,
            resolved_at,
            resolution,
        } = row;
        let which = || format!("episodes row {id}");
        let finding = Finding {
            kind: self.vocabulary(&kind, FindingKind::parse, "finding kind", which)?,
            reason: self.vocabulary(&reason, Reason::parse, "reason", which)?,
            severity: self.vocabulary(&severity, Severity::parse, "severity", which)?,
            target,
            db_user,
            ic_user_id,
            idp_user_id,
            user_name,
            superuser: match superuser {
                0 => false,
                1 => true,
                other => {
                    return Err(self.corrupt(which(), format!("superuser is {other}, not 0 or 1")))
                }
            },
            matched_by: matched_by
                .map(|rule| self.vocabulary(&rule, MatchRule::parse, "match rule", which))
                .transpose()?,
            candidates: match candidates.as_deref() {
                None | Some("") => Vec::new(),
                Some(json) => serde_json::from_str(json).map_err(|error| {
                    self.corrupt(
                        which(),
                        format!("candidates are not a JSON string array: {error}"),
                    )
                })?,
            },
        };
        let resolved_at = match (resolved_run, resolved_at) {
            (None, _) => None,
            (Some(_), Some(text)) => Some(self.parse_time(&text, "resolved_at", which)?),
            (Some(run), None) => {
                return Err(self.corrupt(which(), format!("its resolving run {run} is missing")))
            }
        };
        let resolution = match (resolved_run, resolution) {
            (None, _) => None,
            (Some(_), None) => Some(Resolution::NotSeen),
            (Some(_), Some(name)) => {
                Some(self.vocabulary(&name, Resolution::parse, "resolution", which)?)
            }
        };
        Ok(Episode {
            id,
            finding,
            opened_run,
            opened_at: self.parse_time(&opened_at, "opened_at", which)?,
            resolved_run,
            resolved_at,
            resolution,
        })
    }

    /// Reads column `column` of `row`, reporting a value of the wrong type as corruption.
    fn get<'r, V>(
        &self,
        row: &'r SqliteRow,
        table: &str,
        column: &str,
        which: impl FnOnce() -> String,
    ) -> Result<V, StoreError>
    where
        V: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        row.try_get(column).map_err(|error| {
            self.corrupt(which(), format!("cannot read {table}.{column}: {error}"))
        })
    }

    /// Reads a time column written by [`format_time`].
    fn time(
        &self,
        row: &SqliteRow,
        table: &str,
        column: &str,
        which: impl Fn() -> String,
    ) -> Result<DateTime<Utc>, StoreError> {
        let text: String = self.get(row, table, column, &which)?;
        self.parse_time(&text, column, which)
    }

    /// Parses a time written by [`format_time`] that column `column` holds.
    fn parse_time(
        &self,
        text: &str,
        column: &str,
        which: impl Fn() -> String,
    ) -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|error| {
                self.corrupt(
                    which(),
                    format!("{column} {text:?} is not an RFC 3339 time: {error}"),
                )
            })
    }

    /// Parses a vocabulary name the model knows.
    fn vocabulary<V>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<V>,
        what: &str,
        which: impl FnOnce() -> String,
    ) -> Result<V, StoreError> {
        parse(name).ok_or_else(|| self.corrupt(which(), format!("unknown {what} {name:?}")))
    }

    /// A [`StoreError::Corrupt`] about `row`.
    fn corrupt(&self, row: String, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            row,
            detail,
        }
    }

    /// Maps a failed statement to a [`StoreError::Query`] doing `action`, or to a
    /// [`StoreError::Disk`] when the disk is full.
    fn query(&self, action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| match disk_trouble(&source) {
            Some(what) => StoreError::Disk {
                path: self.path.clone(),
                action,
                what,
            },
            None => StoreError::Query {
                path: self.path.clone(),
                action,
                source,
            },
        }
    }

    /// Checks that a write to the open `episodes` changed each of them once: the unique
    /// index and the transaction make anything else impossible unless the store is corrupt.
    fn expect_rows(&self, rows: u64, episodes: &[i64]) -> Result<(), StoreError> {
        if rows == episodes.len() as u64 {
            Ok(())
        } else {
            Err(self.corrupt(
                format!(
                    "episodes rows {} to {}",
                    episodes.iter().min().unwrap_or(&0),
                    episodes.iter().max().unwrap_or(&0)
                ),
                format!(
                    "writing {} open episodes changed {rows} rows",
                    episodes.len()
                ),
            ))
        }
    }
}

/// A source of a run, its counts converted to SQLite integers.
struct SourceRow<'r> {
    source: &'r SourceRecord,
    objects: Option<i64>,
    duration_ms: i64,
}

/// Maps an error opening the file, recognising a file that is not a database.
fn open_error(path: &Path, source: sqlx::Error) -> StoreError {
    if let Some(what) = disk_trouble(&source) {
        StoreError::Disk {
            path: path.to_owned(),
            action: "open it",
            what,
        }
    } else if is_not_a_database(&source) {
        StoreError::NotSqlite {
            path: path.to_owned(),
            source,
        }
    } else {
        StoreError::Open {
            path: path.to_owned(),
            source,
        }
    }
}

/// SQLite's primary result codes for a full disk (`SQLITE_FULL`) and an I/O error
/// (`SQLITE_IOERR`, which a full disk also causes, e.g. `SQLITE_IOERR_SHMSIZE`, 4874).
const SQLITE_FULL: i64 = 13;
const SQLITE_IOERR: i64 = 10;

/// What a failed statement says about the disk, if it is about the disk.
fn disk_trouble(error: &sqlx::Error) -> Option<&'static str> {
    let sqlx::Error::Database(error) = error else {
        return None;
    };
    // sqlx reports SQLite's extended result code; the primary code is its low byte.
    let code: i64 = error.code()?.parse().ok()?;
    match code & 0xff {
        SQLITE_FULL => Some("the disk is full"),
        SQLITE_IOERR => Some("the disk is full or failing (disk I/O error)"),
        _ => None,
    }
}

/// Whether SQLite reported that the file is not a database.
fn is_not_a_database(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Database(error) if error.code().as_deref() == Some(SQLITE_NOTADB)
    )
}

/// The newest schema version this idgraph knows.
fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The stored form of a time: RFC 3339 in UTC with milliseconds, e.g.
/// `2026-11-27T10:00:00.000Z`.
fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Most urgent first: severity descending, then kind, target, subject; ties by id.
fn sort_by_urgency(episodes: &mut [Episode]) {
    episodes.sort_by_cached_key(|episode| {
        let key = episode.finding.key();
        (
            Reverse(episode.finding.severity),
            key.kind,
            key.target,
            key.subject,
            episode.id,
        )
    });
}

#[cfg(test)]
mod tests;
