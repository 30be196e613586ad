//! The write path: [`Store::record_run`] records a run and its findings in one
//! transaction, and [`Store::prune`] cuts the oldest runs. Episodes are written in batches
//! of one statement each, every value bound.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use idgraph_model::{Finding, FindingKey, MatchRule, Resolution, Scope};
use sqlx::query_builder::Separated;
use sqlx::{QueryBuilder, Sqlite};

use crate::read::sort_by_urgency;
use crate::{chain, Episode, NewRun, PruneReport, RecordedRun, SourceRecord, Store, StoreError};

/// The columns of a finding in the `episodes` table, in the order
/// [`Store::push_finding`] binds them.
const FINDING_COLUMNS: &str = "kind, target, db_user, ic_user_id, idp_user_id, user_name, \
    reason, severity, superuser, matched_by, candidates, logins";

/// Episodes written by one statement: 13 parameters a row stay under SQLite's limit of
/// 32,766 parameters, and 10,000 findings take ten statements rather than 10,000.
const WRITE_BATCH: usize = 1_000;

/// A source of a run, its counts converted to SQLite integers.
struct SourceRow<'r> {
    source: &'r SourceRecord,
    objects: Option<i64>,
    duration_ms: i64,
}

impl Store {
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
        if let Some(through) = report.through_run {
            crate::logins::prune(&mut tx, through)
                .await
                .map_err(self.query("prune old login events"))?;
        }
        tx.commit().await.map_err(self.query("commit the prune"))?;
        Ok(report)
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

        let run_id = self.insert_run(&mut tx, run, sources).await?;

        // The open episodes before the run, by key — for a scoped run only those it can
        // change; after the writes below they become the episodes open after it, so nothing
        // written is read back.
        let before = match &run.scope {
            None => self.open_in(&mut tx).await?,
            Some(scope) => self.open_about(&mut tx, &scope.subjects).await?,
        };
        let mut episodes: HashMap<FindingKey, Episode> = before
            .into_iter()
            .map(|episode| (episode.finding.key(), episode))
            .collect();
        let mut changes = match &run.scope {
            None => idgraph_model::diff(&episodes, findings, evaluated),
            Some(scope) => {
                let subjects = scope.subjects.iter().cloned().collect();
                idgraph_model::diff_within(&episodes, findings, evaluated, &subjects)
            }
        };
        // Insert in key order, so episode ids do not depend on the order of `findings`.
        changes.opened.sort_by_key(|finding| finding.key());
        // As stored: the store keeps milliseconds.
        let finished_at = run.finished_at.trunc_subsecs(3);

        let mut opened = Vec::with_capacity(changes.opened.len());
        for batch in changes.opened.chunks(WRITE_BATCH) {
            opened.extend(
                self.start_episodes(&mut tx, batch, run_id, finished_at)
                    .await?,
            );
        }
        let mut updated = Vec::with_capacity(changes.updated.len());
        for batch in changes.updated.chunks(WRITE_BATCH) {
            updated.extend(self.change_episodes(&mut tx, batch, &mut episodes).await?);
        }
        let mut resolved = Vec::with_capacity(changes.resolved.len() + changes.retired.len());
        for (keys, resolution) in [
            (&changes.resolved, Resolution::NotSeen),
            (&changes.retired, Resolution::TargetRemoved),
        ] {
            for batch in keys.chunks(WRITE_BATCH) {
                let ended: Vec<Episode> = batch
                    .iter()
                    .map(|key| {
                        episodes
                            .remove(key)
                            .expect("diff only resolves open findings")
                    })
                    .collect();
                resolved.extend(
                    self.resolve_episodes(&mut tx, ended, run_id, finished_at, resolution)
                        .await?,
                );
            }
        }
        self.insert_versions(&mut tx, run_id, &updated).await?;
        let open_counts = self.open_counts_in(&mut tx).await?;
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
            open = open_counts.iter().map(|c| c.count).sum::<u64>(),
            "Recorded the run."
        );
        Ok(RecordedRun {
            run_id,
            chain_head,
            opened,
            updated,
            resolved,
            open,
            open_counts,
        })
    }

    /// Inserts the run row and a row per source; returns the run's id.
    async fn insert_run(
        &self,
        tx: &mut sqlx::SqliteConnection,
        run: &NewRun,
        sources: Vec<SourceRow<'_>>,
    ) -> Result<i64, StoreError> {
        let scope = run
            .scope
            .as_ref()
            .map(|scope| serde_json::to_string(scope).expect("a scope serializes"));
        let run_id = sqlx::query(
            "INSERT INTO runs (started_at, finished_at, status, scope) VALUES (?, ?, ?, ?)",
        )
        .bind(format_time(run.started_at))
        .bind(format_time(run.finished_at))
        .bind(run.status.as_str())
        .bind(scope)
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
        Ok(run_id)
    }

    /// Opens an episode of run `run_id` for each of `findings`, with one statement.
    async fn start_episodes(
        &self,
        tx: &mut sqlx::SqliteConnection,
        findings: &[&Finding],
        run_id: i64,
        finished_at: DateTime<Utc>,
    ) -> Result<Vec<Episode>, StoreError> {
        let first_id = self.insert_episodes(tx, findings, run_id).await?;
        Ok(findings
            .iter()
            .zip(first_id..)
            .map(|(finding, id)| Episode {
                id,
                finding: (*finding).clone(),
                opened_run: run_id,
                opened_at: finished_at,
                resolved_run: None,
                resolved_at: None,
                resolution: None,
            })
            .collect())
    }

    /// Updates the open `episodes` of `findings` to their new details, with one statement,
    /// and returns them as they are now.
    async fn change_episodes(
        &self,
        tx: &mut sqlx::SqliteConnection,
        findings: &[&Finding],
        episodes: &mut HashMap<FindingKey, Episode>,
    ) -> Result<Vec<Episode>, StoreError> {
        let ids: Vec<i64> = findings
            .iter()
            .map(|finding| episodes[&finding.key()].id)
            .collect();
        self.update_episodes(tx, findings, &ids).await?;
        Ok(findings
            .iter()
            .map(|finding| {
                let episode = episodes
                    .get_mut(&finding.key())
                    .expect("diff only updates open findings");
                episode.finding = (*finding).clone();
                episode.clone()
            })
            .collect())
    }

    /// Ends the open episodes `ended` in run `run_id` with one statement, for `resolution`,
    /// and returns them as they are now.
    async fn resolve_episodes(
        &self,
        tx: &mut sqlx::SqliteConnection,
        mut ended: Vec<Episode>,
        run_id: i64,
        finished_at: DateTime<Utc>,
        resolution: Resolution,
    ) -> Result<Vec<Episode>, StoreError> {
        let mut resolve = QueryBuilder::<Sqlite>::new("UPDATE episodes SET resolved_run = ");
        resolve.push_bind(run_id);
        resolve.push(", resolution = ");
        // NULL is how every store has recorded "no longer seen".
        resolve.push_bind((resolution == Resolution::TargetRemoved).then_some(resolution.as_str()));
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
        Ok(ended)
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
        let logins = finding
            .logins
            .as_ref()
            .map(|evidence| {
                serde_json::to_string(evidence).map_err(|error| StoreError::InvalidRun {
                    path: self.path.clone(),
                    detail: format!("cannot encode login evidence: {error}"),
                })
            })
            .transpose()?;
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
            .push_bind(candidates)
            .push_bind(logins);
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
             matched_by = v.matched_by, candidates = v.candidates, logins = v.logins \
             FROM v WHERE episodes.id = v.id AND episodes.resolved_run IS NULL",
        );
        let done = update
            .build()
            .execute(&mut *tx)
            .await
            .map_err(self.query("update episodes"))?;
        self.expect_rows(done.rows_affected(), ids)
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

/// The stored form of a time: RFC 3339 in UTC with milliseconds, e.g.
/// `2026-11-27T10:00:00.000Z`.
pub(crate) fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}
