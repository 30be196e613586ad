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
//! - `lib.rs`: [`Store`] itself: opening (and migrating), closing, verifying the chain.
//! - `types`: the values the store takes and returns, e.g. [`NewRun`] and [`Episode`].
//! - `error`: [`StoreError`], and how SQLite's errors map to it.
//! - `write`: [`Store::record_run`] and [`Store::prune`].
//! - `read`: episodes, runs and what a reconcile needs from earlier runs, read back and
//!   checked.
//! - `chain`: the tamper-evident run chain behind [`Store::verify`].
//! - `watch`: the daemon watcher's watermark per IdP source.
//! - `logins`: the logins idgraph observed per target and user, and the login events of
//!   orphaned users.
//!
//! # Schema
//! The schema lives in `/migrations` (embedded at build time, applied by [`Store::open`]):
//! - `runs`: one row per run — `started_at`, `finished_at` (RFC 3339 text in UTC with
//!   millisecond precision) and `status` (`complete` or `partial`).
//! - `run_sources` (`WITHOUT ROWID`, keyed by run and source name): per source its kind,
//!   status (`ok` or `failed`), object count, snapshot digest, error text and duration.
//! - `episodes`: one row per finding episode — the columns of
//!   [`Finding`](idgraph_model::Finding), `opened_run` and `resolved_run` (NULL while
//!   open). A partial unique index on the finding key `(kind, target or '', subject)` of
//!   open episodes keeps one open episode per key and makes the open-episode lookup of each
//!   run an index scan.
//! - `watch_state` (`WITHOUT ROWID`, keyed by source name): where the daemon's watcher left
//!   off, the newest `meta.lastModified` it saw. Outside the run chain.
//! - `login_targets`, `db_user_logins`, `login_events`: what idgraph saw of logins (see
//!   `logins`). Outside the run chain; the evidence of findings about logins is in the
//!   episodes' `logins` column, which the chain covers.
//!
//! An episode's `opened_at`/`resolved_at` is the `finished_at` of its run; a run's counts of
//! opened and resolved episodes are derived from `episodes`. Values are always bound, never
//! formatted into SQL.

mod chain;
mod error;
mod logins;
mod read;
mod types;
mod watch;
mod write;

pub use chain::{ChainReport, PruneReport};
pub use error::StoreError;
pub use logins::{StoredLogins, TargetLogins};
pub use types::{
    Episode, NewRun, OpenCount, RecordedRun, RunRow, RunScope, RunStatus, SourceRecord,
    SourceStatus,
};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::{disk_trouble, is_not_a_database, open_error};
#[cfg(test)]
use crate::read::READ_PAGE;

/// The schema migrations, embedded from `/migrations`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool: SQLite in WAL mode serves readers concurrently with one writer.
const MAX_CONNECTIONS: u32 = 4;

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
        tracing::debug!(path = %path.display(), "Opened the store.");
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

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
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
                "The store's checkpoint is incomplete: the database is busy."
            ),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "The store's checkpoint failed.")
            }
        }
        self.pool.close().await;
        tracing::debug!(path = %self.path.display(), "Closed the store.");
    }
}

/// The newest schema version this idgraph knows.
fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

#[cfg(test)]
mod tests;
