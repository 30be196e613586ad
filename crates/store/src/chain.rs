//! The tamper-evident run chain: `hash = SHA-256(previous hash ‖ canonical run record)`.
//!
//! The canonical record holds only what never changes once a run is recorded: the run's
//! times and status, its scope if it was a watched run, its sources (ordered by name), the id and key (kind, target, subject)
//! of each episode it opened, the id of each episode it resolved and, for runs from
//! `chain_meta.details_from_run` on, every episode version it wrote: the finding's details
//! (names, ids, superuser flag, reason, severity, …) as the run opened or changed them.
//! The `episodes` row holds the latest version; [`verify`] checks that it does.
//! Every field is length-prefixed, so no two different records encode alike.
//!
//! Runs recorded before the chain existed are sealed once, when a writing idgraph first
//! opens the store after migration 0005 recorded which they are; a hash removed later is
//! never recomputed, so nulling hashes cannot make a changed history pass.

use idgraph_model::Canonical;

use crate::read::{finding_json, EpisodeRow};
use sqlx::{Row, SqliteConnection};

/// The first run sealed with its episode versions.
async fn details_from_run(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT details_from_run FROM chain_meta WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
}

/// The first run whose episode versions are sealed with their login evidence (migration
/// 0009): earlier runs keep the record they were sealed with.
async fn logins_from_run(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(logins_from_run, 0) FROM chain_meta WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
}

/// Feeds `c` the canonical record of run `run_id`, read from the tables as they are now;
/// with `details`, the episode versions the run wrote are part of it.
async fn canonical(
    conn: &mut SqliteConnection,
    run_id: i64,
    details: bool,
    c: &mut Canonical,
) -> Result<(), sqlx::Error> {
    feed_run(conn, run_id, c).await?;
    feed_opened(conn, run_id, c).await?;
    feed_resolved(conn, run_id, details, c).await?;
    if details {
        feed_versions(conn, run_id, c).await?;
    }
    Ok(())
}

/// The run's times and status, and its sources ordered by name.
async fn feed_run(
    conn: &mut SqliteConnection,
    run_id: i64,
    c: &mut Canonical,
) -> Result<(), sqlx::Error> {
    let run =
        sqlx::query("SELECT id, started_at, finished_at, status, scope FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_one(&mut *conn)
            .await?;
    c.text("run");
    c.int(run.try_get("id")?);
    c.text(run.try_get("started_at")?);
    c.text(run.try_get("finished_at")?);
    c.text(run.try_get("status")?);
    // Only a watched run has a scope; a full run's record is what it was before scopes
    // existed, so the hashes of runs recorded before migration 0008 still hold.
    if let Some(scope) = run.try_get::<Option<String>, _>("scope")? {
        c.text("scope");
        c.text(&scope);
    }

    let sources = sqlx::query(
        "SELECT name, kind, status, objects, digest, error, duration_ms \
         FROM run_sources WHERE run_id = ? ORDER BY name",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    c.text("sources");
    c.int(sources.len() as i64);
    for s in &sources {
        c.text(s.try_get("name")?);
        c.text(s.try_get("kind")?);
        c.text(s.try_get("status")?);
        c.opt_int(s.try_get("objects")?);
        c.opt_text(s.try_get("digest")?);
        c.opt_text(s.try_get("error")?);
        c.int(s.try_get("duration_ms")?);
    }

    Ok(())
}

/// A JSON array that one query aggregated, parsed.
fn parsed<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// The id and key of each episode the run opened.
async fn feed_opened(
    conn: &mut SqliteConnection,
    run_id: i64,
    c: &mut Canonical,
) -> Result<(), sqlx::Error> {
    // One JSON value for all the run's episodes rather than a row each: a run may open
    // tens of thousands.
    let opened: String = sqlx::query_scalar(
        "SELECT json_group_array(json_array(id, kind, coalesce(target, ''), \
                                            coalesce(db_user, ic_user_id, ''))) \
         FROM episodes WHERE opened_run = ?",
    )
    .bind(run_id)
    .fetch_one(&mut *conn)
    .await?;
    let mut opened: Vec<(i64, String, String, String)> = parsed(&opened)?;
    opened.sort_unstable_by_key(|e| e.0);
    c.text("opened");
    c.int(opened.len() as i64);
    for (id, kind, target, subject) in &opened {
        c.int(*id);
        c.text(kind);
        c.text(target);
        c.text(subject);
    }

    Ok(())
}

/// The id of each episode the run resolved and, with `details`, why it ended.
async fn feed_resolved(
    conn: &mut SqliteConnection,
    run_id: i64,
    details: bool,
    c: &mut Canonical,
) -> Result<(), sqlx::Error> {
    let resolved: String = sqlx::query_scalar(
        "SELECT json_group_array(json_array(id, resolution)) FROM episodes WHERE resolved_run = ?",
    )
    .bind(run_id)
    .fetch_one(&mut *conn)
    .await?;
    let mut resolved: Vec<(i64, Option<String>)> = parsed(&resolved)?;
    resolved.sort_unstable();
    c.text("resolved");
    c.int(resolved.len() as i64);
    for (id, resolution) in &resolved {
        c.int(*id);
        // Why an episode ended is part of the record from the runs with details on.
        if details {
            c.opt_text(resolution.as_deref());
        }
    }

    Ok(())
}

/// Every episode version the run wrote: the details as it opened or changed them.
async fn feed_versions(
    conn: &mut SqliteConnection,
    run_id: i64,
    c: &mut Canonical,
) -> Result<(), sqlx::Error> {
    let versions: String = sqlx::query_scalar(concat!(
        "SELECT json_group_array(json_patch('{}', json_object('i', episode_id, ",
        finding_json!(),
        "))) FROM episode_versions WHERE run_id = ?"
    ))
    .bind(run_id)
    .fetch_one(&mut *conn)
    .await?;
    let logins = run_id >= logins_from_run(conn).await?;
    let mut versions: Vec<EpisodeRow> = parsed(&versions)?;
    versions.sort_unstable_by_key(|v| v.id);
    c.text("versions");
    c.int(versions.len() as i64);
    for v in &versions {
        c.int(v.id);
        c.text(&v.kind);
        c.opt_text(v.target.as_deref());
        c.opt_text(v.db_user.as_deref());
        c.opt_text(v.ic_user_id.as_deref());
        c.opt_text(v.idp_user_id.as_deref());
        c.opt_text(v.user_name.as_deref());
        c.text(&v.reason);
        c.text(&v.severity);
        c.int(v.superuser);
        c.opt_text(v.matched_by.as_deref());
        c.opt_text(v.candidates.as_deref());
        if logins {
            c.opt_text(v.logins.as_deref());
        }
    }
    Ok(())
}

/// `hex(SHA-256(previous ‖ canonical record of run_id))`; the first run's previous hash is
/// empty.
async fn link(
    conn: &mut SqliteConnection,
    previous: &str,
    run_id: i64,
    details: bool,
) -> Result<String, sqlx::Error> {
    let mut c = Canonical::new();
    c.raw(previous.as_bytes());
    canonical(conn, run_id, details, &mut c).await?;
    Ok(hex::encode(c.finish()))
}

/// Computes and stores the hash of run `run_id` from the stored hash of the run before.
pub(crate) async fn seal(conn: &mut SqliteConnection, run_id: i64) -> Result<String, sqlx::Error> {
    let previous: Option<String> =
        sqlx::query_scalar("SELECT hash FROM runs WHERE id < ? ORDER BY id DESC LIMIT 1")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
    let details = run_id >= details_from_run(conn).await?;
    let hash = link(conn, previous.as_deref().unwrap_or(""), run_id, details).await?;
    sqlx::query("UPDATE runs SET hash = ? WHERE id = ?")
        .bind(&hash)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    Ok(hash)
}

/// Seals, in order, the runs recorded before the chain existed, as migration 0005 found
/// them, once; any other run without a hash stays without one, for [`verify`] to report.
/// Returns how many were sealed.
pub(crate) async fn backfill(conn: &mut SqliteConnection) -> Result<u64, sqlx::Error> {
    let Some(through) = sqlx::query_scalar::<_, Option<i64>>(
        "SELECT legacy_through_run FROM chain_meta WHERE id = 1",
    )
    .fetch_one(&mut *conn)
    .await?
    else {
        return Ok(0);
    };
    let unsealed: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM runs WHERE hash IS NULL AND id <= ? ORDER BY id")
            .bind(through)
            .fetch_all(&mut *conn)
            .await?;
    for &id in &unsealed {
        seal(conn, id).await?;
    }
    sqlx::query("UPDATE chain_meta SET legacy_through_run = NULL WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    Ok(unsealed.len() as u64)
}

/// What [`crate::Store::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Runs checked.
    pub runs: u64,
    /// The hash of the last run: what an export's manifest records.
    pub head: Option<String>,
    /// The first run whose stored hash does not match the recomputed chain.
    pub first_mismatch: Option<i64>,
    /// The first episode whose row differs from the last version the chain recorded for it.
    pub changed_episode: Option<i64>,
}

impl ChainReport {
    /// Whether the history is as the chain recorded it.
    pub fn is_intact(&self) -> bool {
        self.first_mismatch.is_none() && self.changed_episode.is_none()
    }
}

/// Recomputes the whole chain from the records and compares it with the stored hashes.
pub(crate) async fn verify(conn: &mut SqliteConnection) -> Result<ChainReport, sqlx::Error> {
    let runs: Vec<(i64, Option<String>)> = sqlx::query_as("SELECT id, hash FROM runs ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    // After retention cut the oldest runs, the chain resumes from the checkpoint.
    let mut previous: String = sqlx::query_scalar("SELECT hash FROM chain_checkpoint WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or_default();
    let details_from = details_from_run(conn).await?;
    let mut first_mismatch = None;
    for (id, stored) in &runs {
        let hash = link(conn, &previous, *id, *id >= details_from).await?;
        if first_mismatch.is_none() && stored.as_deref() != Some(hash.as_str()) {
            first_mismatch = Some(*id);
        }
        previous = hash;
    }
    // `IS NOT` compares NULLs as values.
    let changed_episode: Option<i64> = sqlx::query_scalar(
        "SELECT e.id FROM episodes AS e \
         JOIN episode_versions AS v ON v.episode_id = e.id AND v.run_id = \
              (SELECT max(run_id) FROM episode_versions WHERE episode_id = e.id) \
         WHERE e.kind IS NOT v.kind OR e.target IS NOT v.target OR e.db_user IS NOT v.db_user \
            OR e.ic_user_id IS NOT v.ic_user_id OR e.idp_user_id IS NOT v.idp_user_id \
            OR e.user_name IS NOT v.user_name OR e.reason IS NOT v.reason \
            OR e.severity IS NOT v.severity OR e.superuser IS NOT v.superuser \
            OR e.matched_by IS NOT v.matched_by OR e.candidates IS NOT v.candidates \
            OR e.logins IS NOT v.logins \
         ORDER BY e.id LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(ChainReport {
        runs: runs.len() as u64,
        head: runs.last().and_then(|(_, h)| h.clone()),
        first_mismatch,
        changed_episode,
    })
}

/// What [`crate::Store::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Runs removed.
    pub runs: u64,
    /// Episodes removed (opened and resolved within the removed runs).
    pub episodes: u64,
    /// The last run removed: the chain now starts after it.
    pub through_run: Option<i64>,
}

/// Removes the oldest runs that finished before `cutoff` (RFC 3339 text, as stored), and
/// the episodes that opened and resolved within them, keeping a checkpoint of the chain.
///
/// Only a prefix of runs is cut, and never one an episode still reaches past: the run
/// that opened a finding still open (or resolved later) stays, and so does every run
/// after it. That keeps the canonical record of every remaining run unchanged.
pub(crate) async fn prune(
    conn: &mut SqliteConnection,
    cutoff: &str,
) -> Result<PruneReport, sqlx::Error> {
    let mut through: Option<i64> = sqlx::query_scalar(
        "SELECT max(id) FROM runs WHERE finished_at < ? \
         AND id < (SELECT coalesce(min(id), 9223372036854775807) FROM runs WHERE finished_at >= ?)",
    )
    .bind(cutoff)
    .bind(cutoff)
    .fetch_one(&mut *conn)
    .await?;
    // Move the cut back before any episode that crosses it.
    while let Some(k) = through {
        let crossing: Option<i64> = sqlx::query_scalar(
            "SELECT min(opened_run) FROM episodes \
             WHERE opened_run <= ? AND (resolved_run IS NULL OR resolved_run > ?)",
        )
        .bind(k)
        .bind(k)
        .fetch_one(&mut *conn)
        .await?;
        match crossing {
            None => break,
            Some(first) => through = Some(first - 1).filter(|k| *k >= 1),
        }
    }
    let Some(k) = through else {
        return Ok(PruneReport::default());
    };
    let hash: Option<String> = sqlx::query_scalar("SELECT hash FROM runs WHERE id = ?")
        .bind(k)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    let Some(hash) = hash else {
        // The run at the cut is gone already (an earlier prune) or not sealed: nothing to do.
        return Ok(PruneReport::default());
    };
    // Only episodes that opened and resolved at or before the cut are removed, and only
    // they have versions written by those runs.
    sqlx::query("DELETE FROM episode_versions WHERE run_id <= ?")
        .bind(k)
        .execute(&mut *conn)
        .await?;
    let episodes = sqlx::query("DELETE FROM episodes WHERE resolved_run <= ?")
        .bind(k)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM run_sources WHERE run_id <= ?")
        .bind(k)
        .execute(&mut *conn)
        .await?;
    let runs = sqlx::query("DELETE FROM runs WHERE id <= ?")
        .bind(k)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query(
        "INSERT INTO chain_checkpoint (id, after_run, hash) VALUES (1, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET after_run = excluded.after_run, hash = excluded.hash",
    )
    .bind(k)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(PruneReport {
        runs,
        episodes,
        through_run: Some(k),
    })
}
