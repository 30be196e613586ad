//! Sources that read exports from disk.
//!
//! - [`FileIdp`]: a SCIM 2.0 `/Users` export (a `ListResponse`, an array of users, or an
//!   array of `ListResponse` pages).
//! - [`FileIdentityCenter`]: the output of `aws identitystore list-users` (one page, pages
//!   concatenated, or an array of pages).
//! - [`FileTarget`]: a `psql --csv -c 'select * from pg_user'` dump of one database target.
//!
//! Every source parses on the blocking pool with typed serde structs: exports of 200,000
//! users must parse in well under a second, and parsing must not stall the async workers
//! meanwhile. Attributes we do not declare are skipped by serde without building a value
//! for them. The JSON exports (hundreds of megabytes at that size) are streamed through a
//! buffer rather than read whole, so the file's text and its parsed users are never in
//! memory together.
//!
//! # Layout
//! - `scim`: the SCIM export parser.
//! - `identity_store`: the `aws identitystore list-users` parser.
//! - `pg_user`: the `pg_user` CSV parser.

mod identity_store;
mod pg_user;
mod scim;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use idgraph_model::{IcUser, IdpUser, TargetSnapshot};

use crate::json_stream::{JsonStream, StreamError};
use crate::{CatalogAccess, Source, SourceError};

use identity_store::parse_identity_store;
use pg_user::parse_pg_user;
use scim::parse_scim;

/// A SCIM 2.0 `/Users` export of the identity provider.
///
/// The file holds one of:
/// - a SCIM `ListResponse` object (`{"schemas": [...], "totalResults": N, "Resources": [...]}`);
/// - a JSON array of User resources;
/// - a JSON array of `ListResponse` pages, as a paging loop over `/Users` collects them.
///
/// When the pages carry `totalResults`, the file must hold at least that many distinct
/// users, or [`fetch`](Source::fetch) fails with [`SourceError::Incomplete`]: a partial
/// export would make the missing users look deleted. Two users with one `id` make the
/// snapshot suspicious (the run treats it as failed): one of them would vanish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdp {
    /// The export file.
    pub path: PathBuf,
}

impl FileIdp {
    /// A source reading the SCIM export at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait::async_trait]
impl Source for FileIdp {
    type Snapshot = Vec<IdpUser>;

    fn name(&self) -> &str {
        "idp"
    }

    fn kind(&self) -> &str {
        "file"
    }

    async fn fetch(&self) -> Result<Vec<IdpUser>, SourceError> {
        let path = self.path.clone();
        parse_blocking(&self.path, move || parse_scim(&path)).await
    }
}

/// The output of `aws identitystore list-users`, saved to a file.
///
/// The file holds one page object (`{"Users": [...], "NextToken": "..."}`), several page
/// objects one after another (as appending the output of each call produces), or a JSON
/// array of page objects. Two users with one `UserId` make the snapshot suspicious (the
/// run treats it as failed).
///
/// If the last page still carries a `NextToken`, the listing stopped before its end (the
/// CLI prints one whenever `--max-items` cut it): a page is missing, and
/// [`fetch`](Source::fetch) fails with [`SourceError::Incomplete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentityCenter {
    /// The export file.
    pub path: PathBuf,
}

impl FileIdentityCenter {
    /// A source reading the `list-users` output at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait::async_trait]
impl Source for FileIdentityCenter {
    type Snapshot = Vec<IcUser>;

    fn name(&self) -> &str {
        "identity_center"
    }

    fn kind(&self) -> &str {
        "file"
    }

    async fn fetch(&self) -> Result<Vec<IcUser>, SourceError> {
        let path = self.path.clone();
        parse_blocking(&self.path, move || parse_identity_store(&path)).await
    }

    async fn revision(&self) -> Option<String> {
        file_revision(&self.path).await
    }
}

/// Which file is at `path` and when it last changed: device, inode, size, and the
/// modification and status-change times to the nanosecond. Rewriting the file in place or
/// replacing it by a rename changes it. `None` if the file cannot be examined, or if it
/// changed less than [`SETTLED`] ago: a file system that keeps times to the second (or two)
/// could give a rewrite within the same tick the same times, so only a file whose last
/// change is older than any tick vouches for its contents (as git treats "racily clean"
/// files).
async fn file_revision(path: &Path) -> Option<String> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    let changed = meta.modified().ok()?;
    let age = std::time::SystemTime::now().duration_since(changed).ok()?;
    if age < SETTLED {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(format!(
            "{}:{}:{}:{}.{:09}:{}.{:09}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        ))
    }
    #[cfg(not(unix))]
    {
        Some(format!("{}:{changed:?}", meta.len()))
    }
}

/// How long ago a file must have last changed for its times to tell a later rewrite.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(3);

/// A `pg_user` dump of one database target, as `psql --csv -c 'select * from pg_user'`
/// prints it.
///
/// The header row names the columns, in any order: `usename` and `usesuper` are
/// required, `usesysid` is used when present, all others are ignored. Header names are
/// matched without surrounding whitespace and case-insensitively; user names are taken
/// byte for byte as the file holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTarget {
    /// The target's configured name, used as [`Source::name`] and in the snapshot.
    pub name: String,
    /// The CSV file.
    pub path: PathBuf,
    /// The master user of the cluster (or admin user of the namespace), if configured.
    pub master_user: Option<String>,
    /// The user idgraph logs in as on this target, if configured.
    pub login_user: Option<String>,
}

impl FileTarget {
    /// A target named `name` read from the CSV at `path`, with no master or login user.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            master_user: None,
            login_user: None,
        }
    }

    /// Sets the master user of the cluster (or admin user of the namespace).
    #[must_use]
    pub fn with_master_user(mut self, user: impl Into<String>) -> Self {
        self.master_user = Some(user.into());
        self
    }

    /// Sets the user idgraph logs in as on this target.
    #[must_use]
    pub fn with_login_user(mut self, user: impl Into<String>) -> Self {
        self.login_user = Some(user.into());
        self
    }
}

#[async_trait::async_trait]
impl Source for FileTarget {
    type Snapshot = TargetSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "file"
    }

    async fn catalog(&self) -> Result<CatalogAccess, SourceError> {
        Err(SourceError::NoCatalog {
            origin: self.name.clone(),
            detail: format!(
                "it is a file target: its export ({}) lists users, not what they own",
                self.path.display()
            ),
        })
    }

    async fn fetch(&self) -> Result<TargetSnapshot, SourceError> {
        let bytes = read(&self.path).await?;
        let users = parse_blocking(&self.path, move || parse_pg_user(bytes)).await?;
        Ok(TargetSnapshot {
            name: self.name.clone(),
            users,
            master_user: self.master_user.clone(),
            login_user: self.login_user.clone(),
            namespaces: Vec::new(),
        })
    }
}

/// What a parser found wrong, before the path is attached.
#[derive(Debug)]
pub(super) enum Problem {
    Read(std::io::Error),
    Malformed(String),
    Incomplete(String),
}

impl Problem {
    pub(super) fn at(self, path: &Path) -> SourceError {
        let path = path.to_path_buf();
        match self {
            Problem::Read(source) => SourceError::Read { path, source },
            Problem::Malformed(detail) => SourceError::Malformed { path, detail },
            Problem::Incomplete(detail) => SourceError::Incomplete {
                origin: path.display().to_string(),
                detail,
            },
        }
    }
}

pub(super) async fn read(path: &Path) -> Result<Vec<u8>, SourceError> {
    let read_error = |source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = tokio::fs::metadata(path).await.map_err(read_error)?;
    regular(&metadata).map_err(read_error)?;
    tokio::fs::read(path).await.map_err(read_error)
}

/// Exports must be regular files: opening a FIFO blocks until someone writes to it, and a
/// device or socket has no end.
pub(super) fn regular(metadata: &std::fs::Metadata) -> std::io::Result<()> {
    if metadata.is_file() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a directory, FIFO, socket or device); exports must be regular files",
        ))
    }
}

/// Runs `parse` on the blocking pool: a large export takes long enough to parse that it
/// would hold up every other task on an async worker.
pub(super) async fn parse_blocking<T, F>(path: &Path, parse: F) -> Result<T, SourceError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Problem> + Send + 'static,
{
    match tokio::task::spawn_blocking(parse).await {
        Ok(parsed) => parsed.map_err(|problem| problem.at(path)),
        // A panic here is a bug in the parser; hand it on unchanged rather than disguise
        // it as a problem with the file.
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        // Only happens while the runtime shuts down: the file was not read to the end.
        Err(join) => Err(SourceError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("parsing was cancelled: {join}")),
        }),
    }
}

pub(super) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The file's content without a leading UTF-8 byte order mark, which editors on Windows
/// add and neither serde_json nor csv skip. Stripping it keeps line numbers unchanged.
pub(super) fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes)
}

/// The index of the first byte that is not JSON whitespace, or `None` for an empty file.
pub(super) fn first_non_whitespace(bytes: &[u8]) -> Option<usize> {
    bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The problem at the first non-whitespace byte when it cannot start the expected value.
pub(super) fn unexpected_start<R: Read>(s: &JsonStream<R>, expected: &str) -> Problem {
    Problem::Malformed(match s.error(format!("expected {expected}")) {
        StreamError::Syntax(message) => message,
        StreamError::Io(e) => e.to_string(),
    })
}

impl From<StreamError> for Problem {
    fn from(error: StreamError) -> Self {
        match error {
            StreamError::Io(e) => Problem::Read(e),
            StreamError::Syntax(message) => Problem::Malformed(message),
        }
    }
}

/// A JSON export opened for walking, past a byte order mark.
pub(super) fn open_json(path: &Path) -> Result<JsonStream<File>, Problem> {
    regular(&std::fs::metadata(path).map_err(Problem::Read)?).map_err(Problem::Read)?;
    let mut stream = JsonStream::new(File::open(path).map_err(Problem::Read)?);
    stream.skip_bom()?;
    Ok(stream)
}

/// What the parsers' tests share.
#[cfg(test)]
mod testing {
    use super::*;

    use std::io::Write as _;

    /// Writes `content` to a fresh temporary file; keep the handle alive while reading.
    pub(super) fn file(content: impl AsRef<[u8]>) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("create temp file");
        f.write_all(content.as_ref()).expect("write temp file");
        f.flush().expect("flush temp file");
        f
    }

    pub(super) fn malformed_detail(err: &SourceError) -> &str {
        match err {
            SourceError::Malformed { detail, .. } => detail,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_file_is_a_read_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("no-such-export.json");
        for err in [
            FileIdp::new(&path).fetch().await.expect_err("missing file"),
            FileIdentityCenter::new(&path)
                .fetch()
                .await
                .expect_err("missing file"),
            FileTarget::new("prod", &path)
                .fetch()
                .await
                .expect_err("missing file"),
        ] {
            assert!(matches!(err, SourceError::Read { .. }), "{err:?}");
            assert!(err.to_string().contains("no-such-export.json"), "{err}");
        }
    }

    #[tokio::test]
    async fn an_export_s_revision_changes_when_it_is_rewritten_or_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("identity_store.json");
        let source = FileIdentityCenter::new(&path);
        assert_eq!(source.revision().await, None, "no file yet");
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let settle = |path: &Path| {
            let file = File::options().write(true).open(path).unwrap();
            file.set_modified(an_hour_ago).unwrap();
        };
        std::fs::write(&path, "[]").unwrap();
        assert_eq!(
            source.revision().await,
            None,
            "just written: its times cannot tell yet"
        );
        settle(&path);
        let first = source.revision().await.expect("a revision");
        assert_eq!(source.revision().await.as_ref(), Some(&first), "untouched");
        source.fetch().await.expect("reading changes nothing");
        assert_eq!(source.revision().await.as_ref(), Some(&first), "read");

        // Rewritten in place with text of the same length: too fresh to vouch for, and
        // once settled at the very same modification time, its status-change time differs.
        std::fs::write(&path, "{}").unwrap();
        assert_eq!(source.revision().await, None, "rewritten");
        std::thread::sleep(std::time::Duration::from_millis(10));
        settle(&path);
        let second = source.revision().await.expect("a revision");
        assert_ne!(second, first, "rewritten, same length, same mtime");

        // Replaced by a rename, as tools that write atomically do.
        let next = dir.path().join("next.json");
        std::fs::write(&next, "{}").unwrap();
        settle(&next);
        std::fs::rename(&next, &path).unwrap();
        let third = source.revision().await.expect("a revision");
        assert_ne!(third, second, "replaced");
    }

    #[test]
    fn names_and_kinds() {
        assert_eq!(FileIdp::new("x").name(), "idp");
        assert_eq!(FileIdentityCenter::new("x").name(), "identity_center");
        assert_eq!(FileTarget::new("warehouse", "x").name(), "warehouse");
        assert_eq!(FileIdp::new("x").kind(), "file");
        assert_eq!(FileIdentityCenter::new("x").kind(), "file");
        assert_eq!(FileTarget::new("warehouse", "x").kind(), "file");
    }

    // Regression: a FIFO as an export blocked the run (and the daemon's shutdown) forever.
    #[tokio::test]
    async fn exports_must_be_regular_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("pg_user.csv");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(made.success());
        let errors = [
            FileTarget::new("t", &fifo)
                .fetch()
                .await
                .expect_err("a FIFO"),
            FileIdp::new(&fifo).fetch().await.expect_err("a FIFO"),
            FileIdentityCenter::new(dir.path())
                .fetch()
                .await
                .expect_err("a directory"),
        ];
        for err in errors {
            assert!(
                matches!(&err, SourceError::Read { .. })
                    && err.to_string().contains("not a regular file"),
                "{err}"
            );
        }
    }
}
