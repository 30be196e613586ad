//! [`StoreError`], and how SQLite's errors become one: a full disk, a file that is not a
//! database, a row the store cannot read back.

use std::path::{Path, PathBuf};

use crate::Store;

/// SQLite's primary result code for "file is not a database" (`SQLITE_NOTADB`).
const SQLITE_NOTADB: &str = "26";

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

impl Store {
    /// A [`StoreError::Corrupt`] about `row`.
    pub(crate) fn corrupt(&self, row: String, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            row,
            detail,
        }
    }

    /// Maps a failed statement to a [`StoreError::Query`] doing `action`, or to a
    /// [`StoreError::Disk`] when the disk is full.
    pub(crate) fn query(
        &self,
        action: &'static str,
    ) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
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
}

/// Maps an error opening the file, recognising a file that is not a database.
pub(crate) fn open_error(path: &Path, source: sqlx::Error) -> StoreError {
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
pub(crate) fn disk_trouble(error: &sqlx::Error) -> Option<&'static str> {
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
pub(crate) fn is_not_a_database(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Database(error) if error.code().as_deref() == Some(SQLITE_NOTADB)
    )
}
