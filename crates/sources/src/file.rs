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

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use idgraph_model::{DbUser, Excerpt, ExternalId, IcUser, IdpUser, Snapshot, TargetSnapshot};
use serde::Deserialize;

use crate::json_stream::{JsonStream, StreamError};
use crate::scim::wire::{idp_user, LenientBool, ScimEmail, ScimUser};
use crate::{Source, SourceError};

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
    fn name(&self) -> &str {
        "idp"
    }

    fn kind(&self) -> &str {
        "file"
    }

    async fn fetch(&self) -> Result<Snapshot, SourceError> {
        let path = self.path.clone();
        let users = parse_blocking(&self.path, move || parse_scim(&path)).await?;
        Ok(Snapshot::Idp(users))
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
    fn name(&self) -> &str {
        "identity_center"
    }

    fn kind(&self) -> &str {
        "file"
    }

    async fn fetch(&self) -> Result<Snapshot, SourceError> {
        let path = self.path.clone();
        let users = parse_blocking(&self.path, move || parse_identity_store(&path)).await?;
        Ok(Snapshot::IdentityCenter(users))
    }
}

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
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "file"
    }

    async fn fetch(&self) -> Result<Snapshot, SourceError> {
        let bytes = read(&self.path).await?;
        let users = parse_blocking(&self.path, move || parse_pg_user(bytes)).await?;
        Ok(Snapshot::Target(TargetSnapshot {
            name: self.name.clone(),
            users,
            master_user: self.master_user.clone(),
            login_user: self.login_user.clone(),
            namespaces: Vec::new(),
        }))
    }
}

// ---------------------------------------------------------------------------------------
// Shared plumbing
// ---------------------------------------------------------------------------------------

/// What a parser found wrong, before the path is attached.
#[derive(Debug)]
enum Problem {
    Read(std::io::Error),
    Malformed(String),
    Incomplete(String),
}

impl Problem {
    fn at(self, path: &Path) -> SourceError {
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

async fn read(path: &Path) -> Result<Vec<u8>, SourceError> {
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
fn regular(metadata: &std::fs::Metadata) -> std::io::Result<()> {
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
async fn parse_blocking<T, F>(path: &Path, parse: F) -> Result<T, SourceError>
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

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The file's content without a leading UTF-8 byte order mark, which editors on Windows
/// add and neither serde_json nor csv skip. Stripping it keeps line numbers unchanged.
fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes)
}

/// The index of the first byte that is not JSON whitespace, or `None` for an empty file.
fn first_non_whitespace(bytes: &[u8]) -> Option<usize> {
    bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The problem at the first non-whitespace byte when it cannot start the expected value.
fn unexpected_start<R: Read>(s: &JsonStream<R>, expected: &str) -> Problem {
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

/// The value of the entry marked primary, else of the first entry with a value. `split`
/// gives an entry's value and whether it is marked primary.
pub(crate) fn primary_value<E>(
    entries: Vec<E>,
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

/// A JSON export opened for walking, past a byte order mark.
fn open_json(path: &Path) -> Result<JsonStream<File>, Problem> {
    regular(&std::fs::metadata(path).map_err(Problem::Read)?).map_err(Problem::Read)?;
    let mut stream = JsonStream::new(File::open(path).map_err(Problem::Read)?);
    stream.skip_bom()?;
    Ok(stream)
}

// ---------------------------------------------------------------------------------------
// SCIM
// ---------------------------------------------------------------------------------------

/// An element of the top-level value, walked by [`scim_item`]: either a `ListResponse`
/// page (its users were handed on as they were read) or a User resource.
#[derive(Debug, Default)]
struct ScimItem {
    // ListResponse attributes.
    resources: bool,
    total_results: Option<u64>,
    // User attributes.
    id: Option<String>,
    external_id: Option<String>,
    user_name: Option<String>,
    active: Option<LenientBool>,
    emails: Option<Vec<ScimEmail>>,
}

impl ScimItem {
    /// A page is anything with ListResponse attributes; a page of an empty directory may
    /// carry `totalResults: 0` and no `Resources`.
    fn is_page(&self) -> bool {
        self.resources || self.total_results.is_some()
    }

    fn into_user(self) -> ScimUser {
        ScimUser {
            id: self.id,
            external_id: self.external_id,
            user_name: self.user_name,
            active: self.active,
            emails: self.emails,
        }
    }
}

/// Where a user sits in the file, for error messages.
#[derive(Debug, Clone, Copy)]
enum ScimLocation {
    /// `Resources[i]` of the single top-level ListResponse.
    Resource(usize),
    /// Element `i` of a top-level array of users.
    Element(usize),
    /// `Resources[i]` of page `p` of a top-level array of pages.
    PageResource(usize, usize),
}

impl fmt::Display for ScimLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ScimLocation::Resource(i) => write!(f, "Resources[{i}]"),
            ScimLocation::Element(i) => write!(f, "[{i}]"),
            ScimLocation::PageResource(page, i) => write!(f, "[{page}].Resources[{i}]"),
        }
    }
}

fn parse_scim(path: &Path) -> Result<Vec<IdpUser>, Problem> {
    let mut s = open_json(path)?;
    let mut users = Vec::new();
    let mut total_results = None;

    let mut add = |user: ScimUser, location: ScimLocation| -> Result<(), Problem> {
        let index = users.len();
        let user = idp_user(user).map_err(|missing| {
            Problem::Malformed(format!(
                "user {index} (0-based index within the file), at {location}, {missing}"
            ))
        })?;
        users.push(user);
        Ok(())
    };

    match s.peek()? {
        None => return Err(Problem::Malformed("the file is empty".to_owned())),
        Some(b'{') => {
            let page = scim_item(&mut s, &mut |user, i| add(user, ScimLocation::Resource(i)))?;
            if !page.is_page() {
                return Err(Problem::Malformed(
                    "the top-level object is not a SCIM ListResponse: it has neither \
                     `Resources` nor `totalResults`"
                        .to_owned(),
                ));
            }
            total_results = page.total_results;
        }
        Some(b'[') => {
            let mut pages_of_users = None;
            s.array(|s, p| {
                let item = scim_item(s, &mut |user, i| {
                    add(user, ScimLocation::PageResource(p, i))
                })?;
                let pages_of_users = *pages_of_users.get_or_insert(item.is_page());
                if item.is_page() != pages_of_users {
                    let (this, first) = if pages_of_users {
                        ("a User resource", "a ListResponse page")
                    } else {
                        ("a ListResponse page", "a User resource")
                    };
                    return Err(Problem::Malformed(format!(
                        "element [{p}] is {this} but element [0] is {first}; the array must \
                         hold only users or only pages"
                    )));
                }
                if pages_of_users {
                    // The first page's count is the one the listing started from.
                    total_results = total_results.or(item.total_results);
                } else {
                    add(item.into_user(), ScimLocation::Element(p))?;
                }
                Ok(())
            })?;
        }
        Some(_) => {
            return Err(unexpected_start(
                &s,
                "a SCIM ListResponse object or a JSON array",
            ))
        }
    }
    s.end()?;

    if let Some(total) = total_results {
        if (users.len() as u64) < total {
            return Err(Problem::Incomplete(format!(
                "totalResults is {total} but the file holds {} users",
                users.len()
            )));
        }
    }
    Ok(users)
}

/// Walks an element of a SCIM export: a ListResponse page, whose `Resources` go to
/// `resource` one by one with their index as they are read, or a User resource.
fn scim_item<R: Read>(
    s: &mut JsonStream<R>,
    resource: &mut dyn FnMut(ScimUser, usize) -> Result<(), Problem>,
) -> Result<ScimItem, Problem> {
    let mut item = ScimItem::default();
    s.object(|s, key| -> Result<(), Problem> {
        match key.as_str() {
            "Resources" if s.peek()? == Some(b'[') => {
                item.resources = true;
                s.array(|s, i| resource(s.value()?, i))?;
            }
            // `null` is no Resources at all; anything else is the wrong type, as serde says.
            "Resources" => {
                let _: Option<Vec<ScimUser>> = s.value()?;
            }
            "totalResults" => item.total_results = s.value()?,
            "id" => item.id = s.value()?,
            "externalId" => item.external_id = s.value()?,
            "userName" => item.user_name = s.value()?,
            "active" => item.active = s.value()?,
            "emails" => item.emails = s.value()?,
            _ => s.skip()?,
        }
        Ok(())
    })?;
    Ok(item)
}

// ---------------------------------------------------------------------------------------
// Identity Center
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IcRawUser {
    // Optional for the same reason as in `ScimUser`: errors name the user's index.
    user_id: Option<String>,
    user_name: Option<String>,
    emails: Option<Vec<IcEmail>>,
    external_ids: Option<Vec<IcExternalId>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IcEmail {
    value: Option<String>,
    primary: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IcExternalId {
    issuer: Option<String>,
    id: Option<String>,
}

fn parse_identity_store(path: &Path) -> Result<Vec<IcUser>, Problem> {
    let mut s = open_json(path)?;
    let mut users = Vec::new();
    let mut next_token: Option<String> = None;
    let mut page = |s: &mut JsonStream<_>, p: usize| -> Result<(), Problem> {
        let mut has_users = false;
        next_token = None;
        s.object(|s, key| -> Result<(), Problem> {
            match key.as_str() {
                "Users" if s.peek()? == Some(b'[') => {
                    has_users = true;
                    s.array(|s, i| {
                        let user = ic_user(s.value()?).map_err(|missing| {
                            Problem::Malformed(format!(
                                "user {} (0-based index within the file), at page {p} \
                                 Users[{i}], {missing}",
                                users.len()
                            ))
                        })?;
                        users.push(user);
                        Ok::<_, Problem>(())
                    })?;
                }
                "NextToken" => next_token = s.value()?,
                _ => s.skip()?,
            }
            Ok(())
        })?;
        if has_users {
            Ok(())
        } else {
            Err(Problem::Malformed(format!(
                "page {p} (0-based) has no `Users` array; expected the output of \
                 `aws identitystore list-users`"
            )))
        }
    };
    match s.peek()? {
        None => return Err(Problem::Malformed("the file is empty".to_owned())),
        // One page, or pages appended one after another: a stream of objects.
        Some(b'{') => {
            let mut p = 0;
            while s.peek()?.is_some() {
                page(&mut s, p)?;
                p += 1;
            }
        }
        Some(b'[') => {
            s.array(|s, p| page(s, p))?;
            s.end()?;
        }
        Some(_) => {
            return Err(unexpected_start(
                &s,
                "a `list-users` page object or a JSON array of them",
            ))
        }
    }
    if next_token.is_some_and(|token| !token.is_empty()) {
        return Err(Problem::Incomplete(
            "the last page carries a NextToken: the listing stopped before its end. Export \
             every page (`aws identitystore list-users` without --max-items)"
                .to_owned(),
        ));
    }
    Ok(users)
}

/// The model user, or what is missing, e.g. "has no `UserName`".
fn ic_user(user: IcRawUser) -> Result<IcUser, String> {
    let user_id = user
        .user_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| "has no `UserId`".to_owned())?;
    let user_name = user
        .user_name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| "has no `UserName`".to_owned())?;
    let email = user
        .emails
        .and_then(|emails| primary_value(emails, |e| (e.value, e.primary.unwrap_or(false))));
    let external_ids = user
        .external_ids
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, ext)| match (ext.issuer, ext.id) {
            (Some(issuer), Some(id)) => Ok(ExternalId { issuer, id }),
            (None, _) => Err(format!("has no `Issuer` in ExternalIds[{i}]")),
            (_, None) => Err(format!("has no `Id` in ExternalIds[{i}]")),
        })
        .collect::<Result<_, _>>()?;
    Ok(IcUser {
        user_id,
        user_name,
        email,
        external_ids,
    })
}

// ---------------------------------------------------------------------------------------
// pg_user CSV
// ---------------------------------------------------------------------------------------

fn parse_pg_user(bytes: Vec<u8>) -> Result<Vec<DbUser>, Problem> {
    let body = without_bom(&bytes);
    if first_non_whitespace(body).is_none() {
        return Err(Problem::Malformed("the file is empty".to_owned()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);

    let header = reader.byte_headers().map_err(csv_problem)?;
    let mut columns = Columns::default();
    for (i, name) in header.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let name = name.trim();
        for (wanted, slot) in [
            ("usename", &mut columns.name),
            ("usesuper", &mut columns.superuser),
            ("usesysid", &mut columns.sysid),
        ] {
            if name.eq_ignore_ascii_case(wanted) {
                if slot.is_some() {
                    return Err(Problem::Malformed(format!(
                        "line 1: column `{wanted}` appears twice in the header"
                    )));
                }
                *slot = Some(i);
            }
        }
    }
    let missing = |column: &str| {
        // The first line of an arbitrary file (a config pointed at /proc/self/environ) may
        // hold secrets: name what was found only when it looks like a header of columns.
        let found: Option<Vec<&str>> = header
            .iter()
            .map(|h| std::str::from_utf8(h).ok().map(str::trim))
            .map(|h| h.filter(|h| is_column_name(h)))
            .collect();
        Problem::Malformed(match found {
            Some(found) if found.len() <= 64 => format!(
                "missing column `{column}` in the header (found: {})",
                found.join(", ")
            ),
            _ => format!(
                "missing column `{column}`: line 1 is not a header of column names \
                 (is this a `psql --csv` dump of pg_user?)"
            ),
        })
    };
    let name_column = columns.name.ok_or_else(|| missing("usename"))?;
    let super_column = columns.superuser.ok_or_else(|| missing("usesuper"))?;
    let sysid_column = columns.sysid;

    let mut users = Vec::new();
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(csv_problem)? {
        let line = record.position().map_or(0, csv::Position::line);
        // The reader rejects records with a different number of fields than the header,
        // so every column index is present; `field` still fails politely if not.
        let field = |column: usize, label: &str| {
            record.get(column).ok_or_else(|| {
                Problem::Malformed(format!("line {line}: the record has no `{label}` field"))
            })
        };

        let name = std::str::from_utf8(field(name_column, "usename")?).map_err(|_| {
            Problem::Malformed(format!("line {line}: `usename` is not valid UTF-8"))
        })?;
        if name.is_empty() {
            return Err(Problem::Malformed(format!(
                "line {line}: `usename` is empty"
            )));
        }

        let raw_super = field(super_column, "usesuper")?;
        let superuser = parse_bool(raw_super).ok_or_else(|| {
            Problem::Malformed(format!(
                "line {line}: `usesuper` is {}, expected t, f, true or false",
                Excerpt(&String::from_utf8_lossy(raw_super))
            ))
        })?;

        let sysid = match sysid_column {
            None => None,
            Some(column) => {
                let raw = field(column, "usesysid")?;
                parse_sysid(raw).ok_or_else(|| {
                    Problem::Malformed(format!(
                        "line {line}: `usesysid` is {}, expected an integer",
                        Excerpt(&String::from_utf8_lossy(raw))
                    ))
                })?
            }
        };

        users.push(DbUser {
            name: name.to_owned(),
            sysid,
            superuser,
        });
    }
    Ok(users)
}

#[derive(Default)]
struct Columns {
    name: Option<usize>,
    superuser: Option<usize>,
    sysid: Option<usize>,
}

/// Whether a header field reads like a column name (`usename`, `Valid Until`): letters,
/// digits, `_` and spaces, at most 63 bytes.
fn is_column_name(field: &str) -> bool {
    !field.is_empty()
        && field.len() < 64
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b' ')
}

/// `t`, `f`, `true` or `false` in any case, as psql and hand-written files spell them.
fn parse_bool(raw: &[u8]) -> Option<bool> {
    let raw = raw.trim_ascii();
    if raw.eq_ignore_ascii_case(b"t") || raw.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if raw.eq_ignore_ascii_case(b"f") || raw.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

/// `Some(None)` for an empty field (psql prints NULL as nothing), `None` if not an integer.
fn parse_sysid(raw: &[u8]) -> Option<Option<i64>> {
    let raw = std::str::from_utf8(raw).ok()?.trim();
    if raw.is_empty() {
        return Some(None);
    }
    raw.parse().ok().map(Some)
}

/// A csv error as "line N: what".
fn csv_problem(err: csv::Error) -> Problem {
    let detail = match err.kind() {
        csv::ErrorKind::UnequalLengths {
            pos: Some(pos),
            expected_len,
            len,
        } => format!(
            "line {}: the record has {len} fields but the header has {expected_len}",
            pos.line()
        ),
        csv::ErrorKind::Utf8 { pos: Some(pos), .. } => {
            format!("line {}: not valid UTF-8", pos.line())
        }
        _ => err.to_string(),
    };
    Problem::Malformed(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write as _;

    /// Writes `content` to a fresh temporary file; keep the handle alive while reading.
    fn file(content: impl AsRef<[u8]>) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("create temp file");
        f.write_all(content.as_ref()).expect("write temp file");
        f.flush().expect("flush temp file");
        f
    }

    async fn idp(content: impl AsRef<[u8]>) -> Result<Vec<IdpUser>, SourceError> {
        let f = file(content);
        match FileIdp::new(f.path()).fetch().await? {
            Snapshot::Idp(users) => Ok(users),
            other => panic!("expected an IdP snapshot, got {other:?}"),
        }
    }

    async fn ic(content: impl AsRef<[u8]>) -> Result<Vec<IcUser>, SourceError> {
        let f = file(content);
        match FileIdentityCenter::new(f.path()).fetch().await? {
            Snapshot::IdentityCenter(users) => Ok(users),
            other => panic!("expected an Identity Center snapshot, got {other:?}"),
        }
    }

    async fn target(content: impl AsRef<[u8]>) -> Result<Vec<DbUser>, SourceError> {
        let f = file(content);
        match FileTarget::new("prod", f.path()).fetch().await? {
            Snapshot::Target(target) => Ok(target.users),
            other => panic!("expected a target snapshot, got {other:?}"),
        }
    }

    fn malformed_detail(err: &SourceError) -> &str {
        match err {
            SourceError::Malformed { detail, .. } => detail,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    fn user_names(users: &[IdpUser]) -> Vec<&str> {
        users.iter().map(|u| u.user_name.as_str()).collect()
    }

    const ALICE: &str = r#"{
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "00u1", "externalId": "ext-1", "userName": "alice@example.com",
        "name": {"givenName": "Alice", "familyName": "A"}, "displayName": "Alice",
        "active": true,
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
        "groups": [{"value": "g1", "display": "Admins"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "42", "manager": {"value": "00u9"}
        },
        "meta": {"resourceType": "User", "created": "2020-01-01T00:00:00Z"}
    }"#;
    const BOB: &str = r#"{"id": "00u2", "userName": "bob@example.com", "active": false}"#;

    fn list_response(total: usize, resources: &[&str]) -> String {
        format!(
            r#"{{"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": {total}, "itemsPerPage": {}, "startIndex": 1,
                "Resources": [{}]}}"#,
            resources.len(),
            resources.join(",")
        )
    }

    // ----- SCIM -------------------------------------------------------------------------

    #[tokio::test]
    async fn scim_list_response_maps_every_attribute() {
        let users = idp(list_response(2, &[ALICE, BOB])).await.expect("parses");
        assert_eq!(
            users,
            vec![
                IdpUser {
                    id: "00u1".into(),
                    external_id: Some("ext-1".into()),
                    user_name: "alice@example.com".into(),
                    email: Some("alice@example.com".into()),
                    active: true,
                },
                IdpUser {
                    id: "00u2".into(),
                    external_id: None,
                    user_name: "bob@example.com".into(),
                    email: None,
                    active: false,
                },
            ]
        );
    }

    #[tokio::test]
    async fn scim_empty_directory_with_null_resources() {
        let users = idp(r#"{"totalResults": 0, "Resources": null}"#)
            .await
            .unwrap();
        assert!(users.is_empty());
        let err = idp(r#"{"totalResults": 1, "Resources": "x"}"#)
            .await
            .expect_err("not a list");
        assert!(
            malformed_detail(&err).contains("expected a sequence"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn scim_array_of_users() {
        let users = idp(format!("[{ALICE}, {BOB}]")).await.expect("parses");
        assert_eq!(user_names(&users), ["alice@example.com", "bob@example.com"]);
    }

    #[tokio::test]
    async fn scim_array_of_pages() {
        let carol = r#"{"id": "00u3", "userName": "carol"}"#;
        let content = format!(
            "[{}, {}]",
            list_response(3, &[ALICE, BOB]),
            list_response(3, &[carol])
        );
        let users = idp(content).await.expect("parses");
        assert_eq!(
            user_names(&users),
            ["alice@example.com", "bob@example.com", "carol"]
        );
    }

    #[tokio::test]
    async fn scim_missing_active_means_active_and_string_booleans_are_accepted() {
        let content = r#"[
            {"id": "1", "userName": "no-attribute"},
            {"id": "2", "userName": "null", "active": null},
            {"id": "3", "userName": "string-false", "active": "False"},
            {"id": "4", "userName": "string-true", "active": "TRUE"},
            {"id": "5", "userName": "bool-false", "active": false}
        ]"#;
        let users = idp(content).await.expect("parses");
        let active: Vec<(&str, bool)> = users
            .iter()
            .map(|u| (u.user_name.as_str(), u.active))
            .collect();
        assert_eq!(
            active,
            [
                ("no-attribute", true),
                ("null", true),
                ("string-false", false),
                ("string-true", true),
                ("bool-false", false),
            ]
        );
    }

    #[tokio::test]
    async fn scim_active_of_another_string_is_malformed_with_position() {
        let content = "[\n{\"id\": \"1\", \"userName\": \"u\", \"active\": \"yes\"}\n]";
        let err = idp(content).await.expect_err("rejects");
        let detail = malformed_detail(&err);
        assert!(detail.starts_with("line 2, column "), "{detail}");
        assert!(detail.contains("\"yes\""), "{detail}");
    }

    #[tokio::test]
    async fn scim_primary_email_is_the_primary_one_else_the_first() {
        let content = r#"[
            {"id": "1", "userName": "a", "emails": [
                {"value": "home@example.com", "type": "home"},
                {"value": "work@example.com", "type": "work", "primary": true}]},
            {"id": "2", "userName": "b", "emails": [
                {"value": "first@example.com"}, {"value": "second@example.com"}]},
            {"id": "3", "userName": "c", "emails": [
                {"value": "x@example.com", "primary": false},
                {"value": "y@example.com", "primary": "true"}]},
            {"id": "4", "userName": "d", "emails": []}
        ]"#;
        let users = idp(content).await.expect("parses");
        let emails: Vec<Option<&str>> = users.iter().map(|u| u.email.as_deref()).collect();
        assert_eq!(
            emails,
            [
                Some("work@example.com"),
                Some("first@example.com"),
                Some("y@example.com"),
                None
            ]
        );
    }

    #[tokio::test]
    async fn scim_fewer_users_than_total_results_is_incomplete() {
        let err = idp(list_response(170, &[ALICE, BOB]))
            .await
            .expect_err("rejects");
        match &err {
            SourceError::Incomplete { detail, .. } => {
                assert!(detail.contains("totalResults is 170"), "{detail}");
                assert!(detail.contains("holds 2 users"), "{detail}");
            }
            other => panic!("expected Incomplete, got {other:?}"),
        }
        assert_eq!(err.kind(), "incomplete");
    }

    // Regression: a repeated `id` was kept once, so in an export without totalResults one
    // of two people vanished and findings followed.
    #[tokio::test]
    async fn scim_repeated_users_are_kept_for_the_guard_to_reject() {
        let other_bob = BOB.replace("bob@example.com", "robert@example.com");
        for content in [
            format!("[{ALICE}, {BOB}, {other_bob}]"),
            format!(
                "[{}, {}]",
                list_response(3, &[ALICE, BOB]),
                list_response(3, &[BOB])
            ),
        ] {
            let f = file(content);
            let snapshot = FileIdp::new(f.path()).fetch().await.expect("parses");
            assert_eq!(snapshot.objects(), 3);
            let suspicion = idgraph_model::check_snapshot(&snapshot).expect_err("repeats an id");
            assert!(
                suspicion.to_string().contains("share the id"),
                "{suspicion}"
            );
        }
    }

    #[tokio::test]
    async fn scim_user_without_user_name_is_named_by_index() {
        let content = format!("[{ALICE}, {BOB}, {{\"id\": \"00u3\"}}]");
        let err = idp(content).await.expect_err("rejects");
        let detail = malformed_detail(&err);
        assert!(detail.contains("user 2 "), "{detail}");
        assert!(detail.contains("`userName`"), "{detail}");

        let content = format!("[{}]", list_response(2, &[ALICE, r#"{"userName": "x"}"#]));
        let err = idp(content).await.expect_err("rejects");
        let detail = malformed_detail(&err);
        assert!(detail.contains("[0].Resources[1]"), "{detail}");
        assert!(detail.contains("`id`"), "{detail}");
    }

    #[tokio::test]
    async fn scim_malformed_json_names_the_file_and_the_line() {
        let f =
            file("{\n  \"totalResults\": 1,\n  \"Resources\": [\n    {\"id\": \"1\",,}\n  ]\n}");
        let err = FileIdp::new(f.path()).fetch().await.expect_err("rejects");
        let message = err.to_string();
        assert!(
            message.contains(&f.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("line 4, column"), "{message}");
        assert_eq!(err.kind(), "malformed");
    }

    #[tokio::test]
    async fn scim_rejects_empty_files_other_values_and_mixed_arrays() {
        let err = idp(" \n\t").await.expect_err("empty");
        assert_eq!(malformed_detail(&err), "the file is empty");

        let err = idp("\n\"users\"").await.expect_err("a string");
        assert!(
            malformed_detail(&err).starts_with("line 2, column 1"),
            "{err}"
        );

        let err = idp(BOB)
            .await
            .expect_err("a lone user is not a ListResponse");
        assert!(
            malformed_detail(&err).contains("not a SCIM ListResponse"),
            "{err}"
        );

        let err = idp(format!("[{}, {BOB}]", list_response(1, &[ALICE])))
            .await
            .expect_err("mixed");
        assert!(malformed_detail(&err).contains("element [1]"), "{err}");

        let err = idp(format!("{} {}", list_response(1, &[ALICE]), "{}"))
            .await
            .expect_err("trailing data");
        assert!(malformed_detail(&err).contains("trailing"), "{err}");
    }

    #[tokio::test]
    async fn scim_tolerates_a_byte_order_mark() {
        let users = idp(format!("\u{feff}{}", list_response(1, &[BOB])))
            .await
            .expect("parses");
        assert_eq!(user_names(&users), ["bob@example.com"]);
    }

    #[tokio::test]
    async fn missing_file_is_a_read_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("no-such-export.json");
        for source in [
            Box::new(FileIdp::new(&path)) as Box<dyn Source>,
            Box::new(FileIdentityCenter::new(&path)),
            Box::new(FileTarget::new("prod", &path)),
        ] {
            let err = source.fetch().await.expect_err("missing file");
            assert!(matches!(err, SourceError::Read { .. }), "{err:?}");
            assert!(err.to_string().contains("no-such-export.json"), "{err}");
        }
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

    // ----- Identity Center ----------------------------------------------------------------

    const IC_PAGE_1: &str = r#"{
        "Users": [
            {
                "UserName": "alice@example.com", "UserId": "u-1",
                "IdentityStoreId": "d-123", "DisplayName": "Alice",
                "Name": {"FamilyName": "A", "GivenName": "Alice"},
                "Emails": [
                    {"Value": "alice.home@example.com", "Type": "home", "Primary": false},
                    {"Value": "alice@example.com", "Type": "work", "Primary": true}
                ],
                "ExternalIds": [{"Issuer": "https://scim.example.com/x", "Id": "00u1"}]
            },
            {"UserName": "local", "UserId": "u-2", "IdentityStoreId": "d-123"}
        ],
        "NextToken": "token-1"
    }"#;
    const IC_PAGE_2: &str = r#"{"Users": [
        {"UserName": "local2", "UserId": "u-4"},
        {"UserName": "carol", "UserId": "u-3", "Emails": [{"Value": "c1@x"}, {"Value": "c2@x"}]}
    ]}"#;

    fn ic_ids(users: &[IcUser]) -> Vec<&str> {
        users.iter().map(|u| u.user_id.as_str()).collect()
    }

    #[tokio::test]
    async fn identity_store_single_page_maps_every_attribute() {
        let users = ic(IC_PAGE_2).await.expect("parses");
        assert_eq!(ic_ids(&users), ["u-4", "u-3"]);
        assert_eq!(users[1].email.as_deref(), Some("c1@x"));

        // The last page of a listing has no NextToken.
        let users = ic(IC_PAGE_1.replace(r#""NextToken": "token-1""#, r#""NextToken": null"#))
            .await
            .expect("parses");
        assert_eq!(
            users[0],
            IcUser {
                user_id: "u-1".into(),
                user_name: "alice@example.com".into(),
                email: Some("alice@example.com".into()),
                external_ids: vec![ExternalId {
                    issuer: "https://scim.example.com/x".into(),
                    id: "00u1".into(),
                }],
            }
        );
        assert!(users[1].external_ids.is_empty());
        assert_eq!(users[1].email, None);
    }

    #[tokio::test]
    async fn identity_store_concatenated_pages() {
        let users = ic(format!("{IC_PAGE_1}\n{IC_PAGE_2}\n"))
            .await
            .expect("parses");
        assert_eq!(ic_ids(&users), ["u-1", "u-2", "u-4", "u-3"]);
        // Adjacent without whitespace, as `cat` of files without a final newline gives.
        let users = ic(format!("{IC_PAGE_1}{IC_PAGE_2}")).await.expect("parses");
        assert_eq!(ic_ids(&users), ["u-1", "u-2", "u-4", "u-3"]);
    }

    // Regression: a repeated UserId was silently dropped, so one of two people vanished.
    #[tokio::test]
    async fn identity_store_repeated_users_are_kept_for_the_guard_to_reject() {
        let f = file(format!("{IC_PAGE_2}{IC_PAGE_2}"));
        let snapshot = FileIdentityCenter::new(f.path())
            .fetch()
            .await
            .expect("parses");
        assert_eq!(snapshot.objects(), 4);
        let suspicion = idgraph_model::check_snapshot(&snapshot).expect_err("repeats u-4");
        assert!(suspicion.to_string().contains("\"u-4\""), "{suspicion}");
    }

    #[tokio::test]
    async fn identity_store_array_of_pages() {
        let users = ic(format!("[{IC_PAGE_1}, {IC_PAGE_2}]"))
            .await
            .expect("parses");
        assert_eq!(ic_ids(&users), ["u-1", "u-2", "u-4", "u-3"]);
    }

    // Regression: a NextToken on the last page was only a warning, so a listing with its
    // last pages missing made their users look deleted.
    #[tokio::test]
    async fn identity_store_next_token_on_the_last_page_is_incomplete() {
        let err = ic(IC_PAGE_1).await.expect_err("a page is missing");
        assert!(
            matches!(&err, SourceError::Incomplete { detail, .. } if detail.contains("NextToken")),
            "{err}"
        );
        let users = ic(format!("{IC_PAGE_1}{IC_PAGE_2}"))
            .await
            .expect("complete");
        assert_eq!(ic_ids(&users), ["u-1", "u-2", "u-4", "u-3"]);
    }

    #[tokio::test]
    async fn identity_store_errors_say_where() {
        let err = ic(format!("{IC_PAGE_1}\n{{\"Users\": [}}"))
            .await
            .expect_err("bad JSON");
        let line = IC_PAGE_1.lines().count() + 1;
        assert!(
            malformed_detail(&err).starts_with(&format!("line {line}, column ")),
            "{err}"
        );

        let err = ic(r#"{"Users": [{"UserId": "u-1"}]}"#)
            .await
            .expect_err("no name");
        assert!(malformed_detail(&err).contains("`UserName`"), "{err}");

        let err = ic(r#"{"Groups": []}"#).await.expect_err("not list-users");
        assert!(malformed_detail(&err).contains("page 0"), "{err}");

        let err = ic("").await.expect_err("empty");
        assert_eq!(malformed_detail(&err), "the file is empty");
    }

    // ----- pg_user CSV --------------------------------------------------------------------

    #[tokio::test]
    async fn csv_reads_psql_output_with_any_column_order() {
        let content = "usename,usesysid,usecreatedb,usesuper,usecatupd,passwd,valuntil,useconfig\n\
                       rdsdb,1,t,t,t,********,infinity,\n\
                       alice,100,f,f,f,********,,\n";
        let users = target(content).await.expect("parses");
        assert_eq!(
            users,
            [
                DbUser {
                    name: "rdsdb".into(),
                    sysid: Some(1),
                    superuser: true,
                },
                DbUser {
                    name: "alice".into(),
                    sysid: Some(100),
                    superuser: false,
                },
            ]
        );

        let content = " UseSuper , USENAME \nTRUE,admin\nFalse,bob\ntrue,carol\nF,dave\n";
        let users = target(content).await.expect("parses");
        let flags: Vec<(&str, bool, Option<i64>)> = users
            .iter()
            .map(|u| (u.name.as_str(), u.superuser, u.sysid))
            .collect();
        assert_eq!(
            flags,
            [
                ("admin", true, None),
                ("bob", false, None),
                ("carol", true, None),
                ("dave", false, None),
            ]
        );
    }

    #[tokio::test]
    async fn csv_snapshot_carries_the_target_configuration() {
        let f = file("usename,usesuper\nawsuser,t\n");
        let source = FileTarget::new("warehouse", f.path())
            .with_master_user("awsuser")
            .with_login_user("idgraph");
        let snapshot = source.fetch().await.expect("parses");
        assert_eq!(
            snapshot,
            Snapshot::Target(TargetSnapshot {
                name: "warehouse".into(),
                users: vec![DbUser {
                    name: "awsuser".into(),
                    sysid: None,
                    superuser: true,
                }],
                master_user: Some("awsuser".into()),
                login_user: Some("idgraph".into()),
                namespaces: vec![],
            })
        );
    }

    #[tokio::test]
    async fn csv_hostile_names_come_through_intact() {
        let long = format!("{}é", "x".repeat(125));
        assert_eq!(long.len(), 127);
        // Quoted the way psql --csv quotes: fields with quotes, commas, newlines or
        // surrounding spaces are wrapped in double quotes, inner quotes doubled.
        let content = format!(
            "usename,usesysid,usesuper\n\
             \"IAMA:o'brien\"\"; DROP TABLE x; --\",101,f\n\
             \"comma, and\nnewline\",102,f\n\
             用户ü,103,t\n\
             {long},104,f\n\
             \" padded \",105,f\n"
        );
        let users = target(content).await.expect("parses");
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "IAMA:o'brien\"; DROP TABLE x; --",
                "comma, and\nnewline",
                "用户ü",
                long.as_str(),
                " padded ",
            ]
        );
        assert_eq!(users[2].sysid, Some(103));
        assert!(users[2].superuser);
    }

    #[tokio::test]
    async fn csv_bad_boolean_names_the_line_and_the_value() {
        // The quoted newline makes the bad record start on line 4, not record 3.
        let content = "usename,usesuper\n\"multi\nline\",f\nbob,yes\n";
        let err = target(content).await.expect_err("rejects");
        let detail = malformed_detail(&err);
        assert!(detail.starts_with("line 4:"), "{detail}");
        assert!(detail.contains("\"yes\""), "{detail}");
    }

    #[tokio::test]
    async fn csv_bad_rows_are_malformed_with_line() {
        let err = target("usename,usesysid,usesuper\na,x1,t\n")
            .await
            .expect_err("sysid");
        assert!(malformed_detail(&err).starts_with("line 2:"), "{err}");

        let err = target("usename,usesuper\na,t\nb\n")
            .await
            .expect_err("short row");
        assert!(malformed_detail(&err).starts_with("line 3:"), "{err}");

        let err = target("usename,usesuper\n,t\n")
            .await
            .expect_err("empty name");
        assert!(malformed_detail(&err).starts_with("line 2:"), "{err}");
    }

    #[tokio::test]
    async fn csv_missing_usesuper_column() {
        let err = target("usename,usesysid\nalice,100\n")
            .await
            .expect_err("rejects");
        assert!(
            malformed_detail(&err).contains("missing column `usesuper` in the header"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn csv_empty_file_and_byte_order_mark() {
        let err = target("").await.expect_err("empty");
        assert_eq!(malformed_detail(&err), "the file is empty");

        let users = target("\u{feff}usename,usesuper\nalice,f\n")
            .await
            .expect("parses");
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].name, "alice");
    }

    // Regression: a CSV error echoed the whole first line, so a target pointed at
    // /proc/self/environ copied the process environment into the store.
    #[tokio::test]
    async fn a_file_that_is_not_a_header_is_not_echoed() {
        let environ = "HOME=/root\0DB_PASSWORD=hunter2-secret,x\0PATH=/usr/bin\0";
        let err = target(environ).await.expect_err("not a pg_user dump");
        let message = err.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("missing column `usename`"), "{message}");
    }

    #[tokio::test]
    async fn a_long_field_is_quoted_as_an_excerpt() {
        let content = format!("usename,usesuper\nalice,{}\n", "y".repeat(100_000));
        let err = target(content).await.expect_err("usesuper is no boolean");
        let message = err.to_string();
        assert!(message.len() < 600, "{} bytes", message.len());
        assert!(message.contains("100000 bytes"), "{message}");
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
