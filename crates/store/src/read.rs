//! The read path: open episodes, the whole history of episodes and runs, and what a
//! reconcile needs from earlier runs (the size of each source's last complete snapshot, the
//! targets of open episodes). Episodes are read a page at a time, one JSON value per page;
//! a stored value the store cannot read back is reported as corruption, naming its row.

use std::cmp::Reverse;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use idgraph_model::{Finding, FindingKind, MatchRule, Reason, Resolution, Severity, Subject};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite};

use crate::{Episode, OpenCount, RunRow, RunStatus, SourceRecord, SourceStatus, Store, StoreError};

/// A finding's columns, as read from `episodes` or `episode_versions`, as `json_object`
/// arguments under the one-letter names of [`EpisodeRow`]. Unqualified: no other table
/// these queries join has such columns.
macro_rules! finding_json {
    () => {
        "'k', kind, 't', target, 'd', db_user, 'c', ic_user_id, 'p', idp_user_id, \
         'u', user_name, 'r', reason, 's', severity, 'S', superuser, 'm', matched_by, \
         'C', candidates, 'L', logins"
    };
}
pub(crate) use finding_json;

/// The episodes matching `$condition` (on `e`, the episodes) with ids above `?1`, at most
/// `?2` of them, as one JSON array of [`EpisodeRow`] objects (`json()` because a subquery's
/// column is text to the aggregate), with their count and last id:
/// SQLite hands over one value per page instead of a row per episode, which for tens of
/// thousands of open findings is most of the cost of reading them.
///
/// With `keys`, only the open episodes whose key (kind, target or '', subject) is one of the
/// JSON array `?3` of `[kind, target, subject]` arrays, each found through the index of
/// open keys (`CROSS JOIN` keeps the keys the outer loop).
macro_rules! select_episodes {
    ($condition:literal) => {
        select_episodes!("episodes AS e", $condition)
    };
    (keys) => {
        select_episodes!(
            "json_each(?3) AS k CROSS JOIN episodes AS e \
                ON e.resolved_run IS NULL \
                AND e.kind = json_extract(k.value, '$[0]') \
                AND coalesce(e.target, '') = json_extract(k.value, '$[1]') \
                AND coalesce(e.db_user, e.ic_user_id, '') = json_extract(k.value, '$[2]')",
            "1"
        )
    };
    ($from:literal, $condition:literal) => {
        concat!(
            "SELECT json_group_array(json(j)), count(*), max(id) FROM (\
                SELECT json_patch('{}', json_object('i', e.id, ",
            finding_json!(),
            ", 'o', e.opened_run, 'O', o.finished_at, \
                    'x', e.resolved_run, 'X', r.finished_at, 'R', e.resolution)) AS j, \
                    e.id AS id \
                FROM ",
            $from,
            " JOIN runs AS o ON o.id = e.opened_run \
                LEFT JOIN runs AS r ON r.id = e.resolved_run \
                WHERE e.id > ?1 AND (",
            $condition,
            ") ORDER BY e.id LIMIT ?2)"
        )
    };
}

/// Episodes per page of [`select_episodes!`]: a JSON value of about 10 MB,
/// far below SQLite's limit on the length of a value however large the history grows.
/// Unit tests use small pages so that a few thousand episodes cross several.
#[cfg(not(test))]
pub(crate) const READ_PAGE: i64 = 50_000;
#[cfg(test)]
pub(crate) const READ_PAGE: i64 = 1_000;

/// Which episodes to read.
#[derive(Clone, Copy)]
enum Which<'a> {
    /// Those still open.
    Open,
    /// All, or those of the database user of exactly this name.
    All(Option<&'a str>),
    /// Those still open with one of these keys: a JSON array of `[kind, target or '',
    /// subject]` arrays.
    OpenWithKeys(&'a str),
}

/// An element of [`select_episodes!`], or of the chain's episode versions (which carry only
/// the id and [`finding_json!`]: their run columns are left at their defaults). Read by
/// name so that the order of the SQL does not matter. The names are one letter and NULL
/// columns are left out (`json_patch` drops them; serde reads a missing `Option` as
/// `None`): at 36,000 open episodes that halves the text SQLite hands over.
#[derive(serde::Deserialize)]
pub(crate) struct EpisodeRow {
    #[serde(rename = "i")]
    pub(crate) id: i64,
    #[serde(rename = "k")]
    pub(crate) kind: String,
    #[serde(rename = "t")]
    pub(crate) target: Option<String>,
    #[serde(rename = "d")]
    pub(crate) db_user: Option<String>,
    #[serde(rename = "c")]
    pub(crate) ic_user_id: Option<String>,
    #[serde(rename = "p")]
    pub(crate) idp_user_id: Option<String>,
    #[serde(rename = "u")]
    pub(crate) user_name: Option<String>,
    #[serde(rename = "r")]
    pub(crate) reason: String,
    #[serde(rename = "s")]
    pub(crate) severity: String,
    #[serde(rename = "S")]
    pub(crate) superuser: i64,
    #[serde(rename = "m")]
    pub(crate) matched_by: Option<String>,
    #[serde(rename = "C")]
    pub(crate) candidates: Option<String>,
    #[serde(rename = "L")]
    pub(crate) logins: Option<String>,
    #[serde(rename = "o", default)]
    pub(crate) opened_run: i64,
    /// The `finished_at` of the opening run.
    #[serde(rename = "O", default)]
    pub(crate) opened_at: String,
    #[serde(rename = "x")]
    pub(crate) resolved_run: Option<i64>,
    /// The `finished_at` of the resolving run.
    #[serde(rename = "X")]
    pub(crate) resolved_at: Option<String>,
    #[serde(rename = "R")]
    pub(crate) resolution: Option<String>,
}

impl Store {
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
                "SELECT s.objects FROM run_sources AS s JOIN runs AS r ON r.id = s.run_id \
                 WHERE s.name = ? AND s.status = 'ok' AND r.scope IS NULL \
                 ORDER BY s.run_id DESC LIMIT 1",
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

    /// When the newest complete run finished, if there was one: what
    /// `idgraph_last_successful_reconcile_timestamp_seconds` shows from the start, so that
    /// a restart followed by partial runs does not report that no run ever succeeded.
    ///
    /// # Errors
    /// [`StoreError::Query`] if reading fails, [`StoreError::Corrupt`] if the time cannot
    /// be read back.
    pub async fn last_complete_run_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let finished: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, finished_at FROM runs WHERE status = 'complete' AND scope IS NULL \
             ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query("read the last complete run"))?;
        finished
            .map(|(id, text)| self.parse_time(&text, "finished_at", || format!("run {id}")))
            .transpose()
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
            "SELECT r.id, r.started_at, r.finished_at, r.status, r.hash, r.scope, \
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
                let scope: Option<String> = self.get(row, "runs", "scope", which)?;
                let scope = scope
                    .map(|json| {
                        serde_json::from_str(&json)
                            .map_err(|e| self.corrupt(which(), format!("unreadable scope: {e}")))
                    })
                    .transpose()?;
                Ok(RunRow {
                    id,
                    started_at: self.time(row, "runs", "started_at", which)?,
                    finished_at: self.time(row, "runs", "finished_at", which)?,
                    status: RunStatus::parse(&status).ok_or_else(|| {
                        self.corrupt(which(), format!("unknown run status {status:?}"))
                    })?,
                    sources: sources.remove(&id).unwrap_or_default(),
                    scope,
                    // count(*) is never negative.
                    opened: opened.unsigned_abs(),
                    resolved: resolved.unsigned_abs(),
                    hash: self.get(row, "runs", "hash", which)?,
                })
            })
            .collect()
    }

    /// The open episodes, most urgent first, read on `conn`.
    pub(crate) async fn open_in(
        &self,
        conn: &mut sqlx::SqliteConnection,
    ) -> Result<Vec<Episode>, StoreError> {
        let mut episodes = self.read_episodes(conn, Which::Open).await?;
        sort_by_urgency(&mut episodes);
        Ok(episodes)
    }

    /// The open episodes about `subjects` of the kinds the identity graph derives
    /// ([`FindingKind::from_graph`]), most urgent first, read on `conn` key by key: all that
    /// a watched run about `subjects` can open, update or resolve, at a cost that does not
    /// grow with what else is open.
    pub(crate) async fn open_about(
        &self,
        conn: &mut sqlx::SqliteConnection,
        subjects: &[Subject],
    ) -> Result<Vec<Episode>, StoreError> {
        let keys: Vec<[&str; 3]> = subjects
            .iter()
            .flat_map(|s| {
                FindingKind::ALL
                    .iter()
                    .filter(|kind| kind.from_graph())
                    .map(|kind| [kind.as_str(), s.target.as_str(), s.subject.as_str()])
            })
            .collect();
        let keys = serde_json::to_string(&keys).expect("strings serialize");
        let mut episodes = self.read_episodes(conn, Which::OpenWithKeys(&keys)).await?;
        sort_by_urgency(&mut episodes);
        Ok(episodes)
    }

    /// How many findings are open, per kind, severity and target, with the oldest opening of
    /// each: what the finding gauges show, counted by SQLite without reading the findings.
    ///
    /// # Errors
    /// [`StoreError::Query`] if reading fails, [`StoreError::Corrupt`] if a row cannot be
    /// read back.
    pub async fn open_counts(&self) -> Result<Vec<OpenCount>, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(self.query("count open episodes"))?;
        self.open_counts_in(&mut conn).await
    }

    /// [`Store::open_counts`] on `conn`, ordered by kind, severity and target.
    pub(crate) async fn open_counts_in(
        &self,
        conn: &mut sqlx::SqliteConnection,
    ) -> Result<Vec<OpenCount>, StoreError> {
        // From the index `episodes_open_counts` alone; then one run per group.
        let rows: Vec<(String, String, Option<String>, i64, String)> = sqlx::query_as(
            "SELECT g.kind, g.severity, g.target, g.n, o.finished_at \
             FROM (SELECT kind, severity, target, count(*) AS n, min(opened_run) AS first \
                   FROM episodes WHERE resolved_run IS NULL \
                   GROUP BY kind, severity, target) AS g \
             JOIN runs AS o ON o.id = g.first \
             ORDER BY g.kind, g.severity, g.target",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(self.query("count open episodes"))?;
        rows.into_iter()
            .map(|(kind, severity, target, count, oldest)| {
                let which = || format!("open episodes of kind {kind:?} on target {target:?}");
                Ok(OpenCount {
                    kind: self.vocabulary(&kind, FindingKind::parse, "finding kind", which)?,
                    severity: self.vocabulary(&severity, Severity::parse, "severity", which)?,
                    oldest_opened_at: self.parse_time(&oldest, "opened_at", which)?,
                    // count(*) is never negative.
                    count: count.unsigned_abs(),
                    target,
                })
            })
            .collect()
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
                Which::OpenWithKeys(_) => sqlx::query_as(select_episodes!(keys)),
            }
            .bind(after)
            .bind(READ_PAGE);
            let page = match which {
                Which::Open => page,
                Which::All(db_user) => page.bind(db_user),
                Which::OpenWithKeys(keys) => page.bind(keys),
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
            logins,
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
            logins: logins
                .map(|json| {
                    serde_json::from_str(&json).map_err(|error| {
                        self.corrupt(
                            which(),
                            format!("the login evidence does not parse: {error}"),
                        )
                    })
                })
                .transpose()?,
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

    /// Reads a time column written by [`format_time`](crate::write::format_time).
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

    /// Parses a time that column `column` holds, written by
    /// [`format_time`](crate::write::format_time).
    pub(crate) fn parse_time(
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
}

/// Most urgent first: severity descending, then kind, target, subject; ties by id.
pub(crate) fn sort_by_urgency(episodes: &mut [Episode]) {
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
