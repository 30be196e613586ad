//! The store's public behaviour: runs, episodes, scopes, names, growth and errors.

// Helpers here are test code too: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use idgraph_model::{Finding, FindingKind, MatchRule, Reason, Scope, Severity, Subject};
use idgraph_store::{
    Episode, NewRun, OpenCount, RunScope, RunStatus, SourceRecord, SourceStatus, Store, StoreError,
};
use tempfile::TempDir;

/// The finish time of run `n` (1-based): minutes apart, with milliseconds.
fn finished(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
        + Duration::minutes(n)
        + Duration::milliseconds(123)
}

fn source(name: &str, kind: &str) -> SourceRecord {
    SourceRecord {
        name: name.to_owned(),
        kind: kind.to_owned(),
        status: SourceStatus::Ok,
        objects: Some(42),
        digest: Some(format!("{:064x}", name.len())),
        error: None,
        duration_ms: 250,
    }
}

fn failed(name: &str, kind: &str, error: &str) -> SourceRecord {
    SourceRecord {
        status: SourceStatus::Failed,
        objects: None,
        digest: None,
        error: Some(error.to_owned()),
        ..source(name, kind)
    }
}

/// Run `n` with the usual three sources, all fetched.
fn run(n: i64) -> NewRun {
    NewRun {
        scope: None,
        started_at: finished(n) - Duration::seconds(30),
        finished_at: finished(n),
        status: RunStatus::Complete,
        sources: vec![
            source("idp", "okta"),
            source("ic", "identity_center"),
            source("a", "redshift"),
            source("b", "redshift"),
        ],
    }
}

fn orphan(target: &str, db_user: &str) -> Finding {
    Finding {
        kind: FindingKind::OrphanedDbUser,
        reason: Reason::IdpUserInactive,
        severity: Severity::High,
        target: Some(target.to_owned()),
        db_user: Some(db_user.to_owned()),
        ic_user_id: Some(format!("ic-{db_user}")),
        idp_user_id: Some(format!("idp-{db_user}")),
        user_name: Some(db_user.trim_start_matches("IAM:").to_owned()),
        superuser: false,
        matched_by: Some(MatchRule::PrefixUserName),
        candidates: Vec::new(),
        logins: None,
    }
}

fn stale_ic(ic_user_id: &str) -> Finding {
    Finding {
        kind: FindingKind::StaleIdentityCenterUser,
        reason: Reason::IdpUserMissing,
        severity: Severity::Medium,
        target: None,
        db_user: None,
        ic_user_id: Some(ic_user_id.to_owned()),
        idp_user_id: None,
        user_name: Some(format!("{ic_user_id}@example.com")),
        superuser: false,
        matched_by: None,
        candidates: Vec::new(),
        logins: None,
    }
}

fn all_scopes() -> HashSet<Scope> {
    HashSet::from([
        Scope::IdentityCenter,
        Scope::Target("a".into()),
        Scope::Target("b".into()),
    ])
}

fn findings_of(episodes: &[Episode]) -> Vec<Finding> {
    episodes.iter().map(|e| e.finding.clone()).collect()
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("idgraph.db")
}

/// The bytes the store occupies on disk: the database file and any WAL.
fn size_on_disk(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    len(path) + len(Path::new(&wal))
}

#[tokio::test]
async fn open_creates_and_migrates_and_reopening_keeps_history() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    assert!(!path.exists());

    let store = Store::open(&path).await.unwrap();
    assert!(path.exists());
    assert!(store.runs().await.unwrap().is_empty());
    assert!(store.open_episodes().await.unwrap().is_empty());
    let recorded = store
        .record_run(&run(1), &[orphan("a", "IAM:alice")], &all_scopes())
        .await
        .unwrap();
    store.close().await;

    let store = Store::open(&path).await.unwrap();
    let runs = store.runs().await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id, recorded.run_id);
    assert_eq!(store.open_episodes().await.unwrap(), recorded.open);
    // The reopened store keeps recording where it left off.
    let second = store
        .record_run(&run(2), &[orphan("a", "IAM:alice")], &all_scopes())
        .await
        .unwrap();
    assert!(second.run_id > recorded.run_id);
    assert!(second.opened.is_empty());
    store.close().await;

    // A third open of an up-to-date store migrates nothing and fails nothing.
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.runs().await.unwrap().len(), 2);
    store.close().await;
}

#[tokio::test]
async fn episode_opens_stays_open_resolves_and_reopens_as_a_new_episode() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    let alice = orphan("a", "IAM:alice");
    let bob = orphan("a", "IAM:bob");

    let r1 = store
        .record_run(&run(1), &[alice.clone(), bob.clone()], &all_scopes())
        .await
        .unwrap();
    assert_eq!(r1.opened.len(), 2);
    assert!(r1.resolved.is_empty());
    let first = r1
        .opened
        .iter()
        .find(|e| e.finding == alice)
        .unwrap()
        .clone();
    assert_eq!(first.opened_run, r1.run_id);
    assert_eq!(first.opened_at, finished(1));
    assert_eq!((first.resolved_run, first.resolved_at), (None, None));

    let r2 = store
        .record_run(&run(2), &[alice.clone(), bob.clone()], &all_scopes())
        .await
        .unwrap();
    assert!(r2.opened.is_empty() && r2.updated.is_empty() && r2.resolved.is_empty());
    assert_eq!(
        r2.open, r1.open,
        "an unchanged run keeps every episode as it was"
    );
    assert_eq!(r2.open.iter().find(|e| e.finding == alice), Some(&first));

    let r3 = store
        .record_run(&run(3), std::slice::from_ref(&bob), &all_scopes())
        .await
        .unwrap();
    assert!(r3.opened.is_empty());
    assert_eq!(r3.resolved.len(), 1);
    let ended = &r3.resolved[0];
    assert_eq!(ended.id, first.id);
    assert_eq!(ended.finding, alice);
    assert_eq!(ended.opened_run, r1.run_id);
    assert_eq!(ended.resolved_run, Some(r3.run_id));
    assert_eq!(ended.resolved_at, Some(finished(3)));
    assert_eq!(findings_of(&r3.open), vec![bob.clone()]);
    // What record_run reports is what the store holds.
    assert_eq!(store.open_episodes().await.unwrap(), r3.open);
    let stored_ended = store.episodes(Some("IAM:alice")).await.unwrap();
    assert_eq!(stored_ended.first(), Some(ended));

    let r4 = store
        .record_run(&run(4), &[alice.clone(), bob.clone()], &all_scopes())
        .await
        .unwrap();
    assert_eq!(r4.opened.len(), 1);
    let second = &r4.opened[0];
    assert_ne!(
        second.id, first.id,
        "a finding that comes back opens a new episode"
    );
    assert_eq!(second.finding, alice);
    assert_eq!(second.opened_run, r4.run_id);
    assert_eq!(second.opened_at, finished(4));
    assert!(second.is_open());

    let history = store.episodes(Some("IAM:alice")).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0], *ended);
    assert_eq!(history[1], *second);

    let runs = store.runs().await.unwrap();
    let counts: Vec<(u64, u64)> = runs.iter().map(|r| (r.opened, r.resolved)).collect();
    assert_eq!(counts, vec![(2, 0), (0, 0), (0, 1), (1, 0)]);
    store.close().await;
}

#[tokio::test]
async fn unevaluated_scopes_neither_open_nor_resolve() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    let a1 = orphan("a", "IAM:a1");
    let b1 = orphan("b", "IAM:b1");
    let ic1 = stale_ic("ic1");
    let r1 = store
        .record_run(
            &run(1),
            &[a1.clone(), b1.clone(), ic1.clone()],
            &all_scopes(),
        )
        .await
        .unwrap();
    assert_eq!(r1.opened.len(), 3);

    // Target b fails: b1 is not seen and b2 is, but neither counts. Target a still resolves.
    let mut partial = run(2);
    partial.status = RunStatus::Partial;
    partial.sources[3] = failed("b", "redshift", "connection refused");
    let b2 = orphan("b", "IAM:b2");
    let evaluated = HashSet::from([Scope::IdentityCenter, Scope::Target("a".into())]);
    let r2 = store
        .record_run(&partial, &[b2.clone(), ic1.clone()], &evaluated)
        .await
        .unwrap();
    assert!(
        r2.opened.is_empty(),
        "b2 must not open: target b was not evaluated"
    );
    assert_eq!(findings_of(&r2.resolved), vec![a1.clone()]);
    let b1_episode = r2.open.iter().find(|e| e.finding == b1).unwrap();
    assert_eq!(
        b1_episode.opened_run, r1.run_id,
        "b1 stays open in its first episode"
    );

    // Identity Center fails: ic1 is not seen and ic2 is, but neither counts.
    let mut partial = run(3);
    partial.status = RunStatus::Partial;
    partial.sources[1] = failed("ic", "identity_center", "AccessDenied");
    let ic2 = stale_ic("ic2");
    let evaluated = HashSet::from([Scope::Target("a".into()), Scope::Target("b".into())]);
    let r3 = store
        .record_run(&partial, &[b1.clone(), ic2.clone()], &evaluated)
        .await
        .unwrap();
    assert!(
        r3.opened.is_empty(),
        "ic2 must not open: Identity Center was not evaluated"
    );
    assert!(
        r3.resolved.is_empty(),
        "ic1 must not resolve: Identity Center was not evaluated"
    );
    let mut open = findings_of(&r3.open);
    open.sort_by_key(Finding::key);
    assert_eq!(open, vec![b1.clone(), ic1.clone()]);

    // Nothing evaluated: nothing opens, nothing resolves, even with no findings at all.
    let r4 = store
        .record_run(&run(4), &[], &HashSet::new())
        .await
        .unwrap();
    assert!(r4.opened.is_empty() && r4.resolved.is_empty());
    assert_eq!(r4.open, r3.open);
    let r5 = store
        .record_run(&run(5), &[a1.clone(), b2.clone()], &HashSet::new())
        .await
        .unwrap();
    assert!(r5.opened.is_empty() && r5.resolved.is_empty());
    assert_eq!(store.open_episodes().await.unwrap(), r3.open);

    // Once everything is evaluated again, the held-back changes happen.
    let r6 = store
        .record_run(&run(6), &[b2.clone(), ic2.clone()], &all_scopes())
        .await
        .unwrap();
    let mut opened = findings_of(&r6.opened);
    opened.sort_by_key(Finding::key);
    assert_eq!(opened, vec![b2, ic2]);
    let mut resolved = findings_of(&r6.resolved);
    resolved.sort_by_key(Finding::key);
    assert_eq!(resolved, vec![b1, ic1]);

    let runs = store.runs().await.unwrap();
    assert_eq!(runs[1].status, RunStatus::Partial);
    assert_eq!(runs[2].status, RunStatus::Partial);
    assert_eq!(runs[0].status, RunStatus::Complete);
    store.close().await;
}

#[tokio::test]
async fn changed_details_update_the_episode_in_place() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = Store::open(&path).await.unwrap();
    let before = orphan("a", "IAM:carol");
    let r1 = store
        .record_run(&run(1), std::slice::from_ref(&before), &all_scopes())
        .await
        .unwrap();

    let after = Finding {
        reason: Reason::NoIdentityCenterUser,
        severity: Severity::Critical,
        ic_user_id: None,
        idp_user_id: Some("idp-other".into()),
        user_name: Some("carol.new".into()),
        superuser: true,
        matched_by: Some(MatchRule::BareEmail),
        candidates: vec!["ic-1".into(), "ic-2".into()],
        logins: None,
        ..before.clone()
    };
    let r2 = store
        .record_run(&run(2), std::slice::from_ref(&after), &all_scopes())
        .await
        .unwrap();
    assert!(r2.opened.is_empty() && r2.resolved.is_empty());
    assert_eq!(r2.updated.len(), 1);
    assert_eq!(r2.updated[0].id, r1.opened[0].id);
    assert_eq!(r2.updated[0].opened_run, r1.run_id);
    assert_eq!(r2.updated[0].opened_at, finished(1));
    assert_eq!(r2.updated[0].finding, after);
    store.close().await;

    // Stored in place: one episode, with the new details, read back after reopening.
    let store = Store::open(&path).await.unwrap();
    let all = store.episodes(None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].finding, after);
    assert_eq!(all[0].opened_run, r1.run_id);
    assert!(all[0].is_open());
    // And an unchanged third run changes nothing more.
    let r3 = store
        .record_run(&run(3), std::slice::from_ref(&after), &all_scopes())
        .await
        .unwrap();
    assert!(r3.updated.is_empty() && r3.opened.is_empty() && r3.resolved.is_empty());
    store.close().await;
}

/// Thousands of findings at once are written in batches; every episode must still get its
/// own id, in key order, and what `record_run` returns must be what the store holds.
#[tokio::test]
async fn thousands_of_findings_open_update_and_resolve_in_one_run() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    let first: Vec<Finding> = (0..2_500)
        .map(|i| {
            orphan(
                if i % 2 == 0 { "a" } else { "b" },
                &format!("IAM:user{i:05}"),
            )
        })
        .collect();
    let r1 = store
        .record_run(&run(1), &first, &all_scopes())
        .await
        .unwrap();
    assert_eq!(r1.opened.len(), 2_500);
    let mut ids: Vec<i64> = r1.opened.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2_500, "every episode has its own id");
    let mut by_id = r1.opened.clone();
    by_id.sort_by_key(|e| e.id);
    assert!(
        by_id
            .windows(2)
            .all(|w| w[0].finding.key() < w[1].finding.key()),
        "ids follow key order"
    );
    let mut held = store.episodes(None).await.unwrap();
    held.sort_by_key(|e| e.id);
    assert_eq!(held, by_id);

    // Run 2: the first 1,200 change details, the next 1,300 are gone.
    let second: Vec<Finding> = first[..1_200]
        .iter()
        .map(|f| Finding {
            severity: Severity::Critical,
            superuser: true,
            ..f.clone()
        })
        .collect();
    let r2 = store
        .record_run(&run(2), &second, &all_scopes())
        .await
        .unwrap();
    assert!(r2.opened.is_empty());
    assert_eq!(r2.updated.len(), 1_200);
    assert_eq!(r2.resolved.len(), 1_300);
    assert!(r2.updated.iter().all(|e| e.finding.superuser));
    assert_eq!(store.open_episodes().await.unwrap(), r2.open);
    let resolved = store
        .episodes(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.resolved_run == Some(r2.run_id))
        .count();
    assert_eq!(resolved, 1_300);
    assert_eq!(store.verify().await.unwrap().first_mismatch, None);
    store.close().await;
}

#[tokio::test]
async fn hostile_names_round_trip() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = Store::open(&path).await.unwrap();
    let long = format!("{}x", "é".repeat(63));
    assert_eq!(long.len(), 127);
    let names = [
        "'); DROP TABLE runs; --",
        "\"quoted\" name; SELECT 1",
        "IAM:o'brien",
        "Zoë 🦀 δοκιμή 名前",
        "  leading and trailing  ",
        "%_*?\\",
        long.as_str(),
    ];
    let findings: Vec<Finding> = names
        .iter()
        .map(|name| Finding {
            target: Some(format!("{name}-target")),
            db_user: Some((*name).to_owned()),
            ic_user_id: Some(format!("ic {name}")),
            idp_user_id: Some(format!("idp {name}")),
            user_name: Some((*name).to_owned()),
            candidates: vec![(*name).to_owned(), format!("[\"{name}\"]")],
            logins: None,
            kind: FindingKind::AmbiguousMapping,
            reason: Reason::MultipleIdentityCenterUsers,
            ..orphan("x", "y")
        })
        .chain(std::iter::once(stale_ic(names[0])))
        .collect();
    let mut evaluated: HashSet<Scope> = findings.iter().map(Finding::scope).collect();
    evaluated.insert(Scope::IdentityCenter);
    let mut new_run = run(1);
    new_run.sources = names
        .iter()
        .map(|name| SourceRecord {
            digest: Some((*name).to_owned()),
            ..failed(name, name, name)
        })
        .collect();
    let recorded = store
        .record_run(&new_run, &findings, &evaluated)
        .await
        .unwrap();
    assert_eq!(recorded.opened.len(), findings.len());
    store.close().await;

    let store = Store::open(&path).await.unwrap();
    let mut stored = findings_of(&store.episodes(None).await.unwrap());
    let mut expected = findings.clone();
    stored.sort_by_key(Finding::key);
    expected.sort_by_key(Finding::key);
    assert_eq!(stored, expected);
    for name in names {
        let mine = store.episodes(Some(name)).await.unwrap();
        assert_eq!(mine.len(), 1, "{name:?}");
        assert_eq!(mine[0].finding.db_user.as_deref(), Some(name));
    }
    let runs = store.runs().await.unwrap();
    assert_eq!(runs.len(), 1, "the runs table survived");
    let mut sources = new_run.sources.clone();
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(runs[0].sources, sources);
    store.close().await;
}

#[tokio::test]
async fn episodes_filter_by_exact_database_user() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    let alice_a = orphan("a", "IAM:alice");
    let alice_b = orphan("b", "IAM:alice");
    let others = [
        orphan("a", "IAM:Alice"),
        orphan("a", "IAM:alice2"),
        orphan("a", "alice"),
        stale_ic("IAM:alice"),
    ];
    let mut all: Vec<Finding> = vec![alice_a.clone()];
    all.extend(others.iter().cloned());
    store
        .record_run(&run(1), &all, &all_scopes())
        .await
        .unwrap();
    store
        .record_run(&run(2), &others, &all_scopes())
        .await
        .unwrap();
    let mut again = others.to_vec();
    again.push(alice_b.clone());
    again.push(alice_a.clone());
    store
        .record_run(&run(3), &again, &all_scopes())
        .await
        .unwrap();

    let alice = store.episodes(Some("IAM:alice")).await.unwrap();
    let summary: Vec<(Option<&str>, i64, Option<i64>)> = alice
        .iter()
        .map(|e| (e.finding.target.as_deref(), e.opened_run, e.resolved_run))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some("a"), 1, Some(2)),
            (Some("a"), 3, None),
            (Some("b"), 3, None)
        ],
        "oldest first, every target, exact name only"
    );
    assert!(store.episodes(Some("nobody")).await.unwrap().is_empty());

    let everything = store.episodes(None).await.unwrap();
    assert_eq!(everything.len(), 7);
    assert!(everything.windows(2).all(|w| w[0].id < w[1].id));
    assert!(everything
        .windows(2)
        .all(|w| w[0].opened_run <= w[1].opened_run));
    store.close().await;
}

#[tokio::test]
async fn open_episodes_are_ordered_by_urgency() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    let medium = stale_ic("ic-z");
    let high_b = orphan("b", "IAM:a");
    let high_a2 = orphan("a", "IAM:z");
    let high_a1 = orphan("a", "IAM:m");
    let critical = Finding {
        severity: Severity::Critical,
        kind: FindingKind::UnmanagedDbUser,
        superuser: true,
        ..orphan("b", "admin")
    };
    let recorded = store
        .record_run(
            &run(1),
            &[
                medium.clone(),
                high_b.clone(),
                high_a2.clone(),
                critical.clone(),
                high_a1.clone(),
            ],
            &all_scopes(),
        )
        .await
        .unwrap();
    let expected = vec![critical, high_a1, high_a2, high_b, medium];
    assert_eq!(findings_of(&recorded.open), expected);
    assert_eq!(findings_of(&recorded.opened), expected);
    assert_eq!(findings_of(&store.open_episodes().await.unwrap()), expected);
    store.close().await;
}

#[tokio::test]
async fn runs_return_their_sources() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    let first = run(1);
    let second = NewRun {
        scope: None,
        status: RunStatus::Partial,
        sources: vec![
            SourceRecord {
                objects: Some(0),
                digest: Some("d".repeat(64)),
                duration_ms: 0,
                ..source("z-idp", "entra")
            },
            failed(
                "a-target",
                "redshift",
                "timeout after 30 s: \"cluster\" unreachable",
            ),
            SourceRecord {
                objects: Some(i64::MAX as u64),
                ..source("m-ic", "identity_center")
            },
        ],
        ..run(2)
    };
    store
        .record_run(&first, &[orphan("a", "IAM:x")], &all_scopes())
        .await
        .unwrap();
    store.record_run(&second, &[], &all_scopes()).await.unwrap();

    let runs = store.runs().await.unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs[0].id < runs[1].id);
    for (row, new) in runs.iter().zip([&first, &second]) {
        assert_eq!(row.started_at, new.started_at);
        assert_eq!(row.finished_at, new.finished_at);
        assert_eq!(row.status, new.status);
        let mut sources = new.sources.clone();
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(row.sources, sources, "sources come back ordered by name");
    }
    let failed_source = &runs[1].sources[0];
    assert_eq!(failed_source.status, SourceStatus::Failed);
    assert_eq!(failed_source.objects, None);
    assert_eq!(failed_source.digest, None);
    assert_eq!(
        failed_source.error.as_deref(),
        Some("timeout after 30 s: \"cluster\" unreachable")
    );
    assert_eq!((runs[0].opened, runs[0].resolved), (1, 0));
    assert_eq!((runs[1].opened, runs[1].resolved), (0, 1));
    store.close().await;
}

#[tokio::test]
async fn times_keep_milliseconds_and_drop_finer_digits() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    let mut new = run(1);
    new.finished_at += Duration::microseconds(456);
    let recorded = store
        .record_run(&new, &[orphan("a", "IAM:x")], &all_scopes())
        .await
        .unwrap();
    assert_eq!(recorded.opened[0].opened_at, finished(1));
    assert_eq!(store.runs().await.unwrap()[0].finished_at, finished(1));
    store.close().await;
}

#[tokio::test]
async fn unchanged_runs_grow_the_file_by_less_than_8_kib_each() {
    const RUNS: i64 = 20;
    const FINDINGS: usize = 500;
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let findings: Vec<Finding> = (0..FINDINGS)
        .map(|i| {
            orphan(
                if i % 2 == 0 { "a" } else { "b" },
                &format!("IAM:user{i:04}"),
            )
        })
        .collect();

    let store = Store::open(&path).await.unwrap();
    let first = store
        .record_run(&run(1), &findings, &all_scopes())
        .await
        .unwrap();
    assert_eq!(first.opened.len(), FINDINGS);
    store.close().await;
    let before = size_on_disk(&path);

    let store = Store::open(&path).await.unwrap();
    for n in 2..2 + RUNS {
        let recorded = store
            .record_run(&run(n), &findings, &all_scopes())
            .await
            .unwrap();
        assert!(recorded.opened.is_empty() && recorded.resolved.is_empty());
        assert_eq!(recorded.open.len(), FINDINGS);
    }
    assert_eq!(store.runs().await.unwrap().len(), 1 + RUNS as usize);
    store.close().await;
    let after = size_on_disk(&path);

    let per_run = (after - before) / RUNS as u64;
    eprintln!("{FINDINGS} open findings: {before} bytes after run 1, {after} after {RUNS} more: {per_run} bytes per run");
    assert!(
        per_run < 8 * 1024,
        "{RUNS} unchanged runs grew the store from {before} to {after} bytes"
    );
}

#[tokio::test]
async fn invalid_runs_are_rejected_and_write_nothing() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();

    let mut twice = run(1);
    twice.sources.push(source("idp", "okta"));
    let error = store
        .record_run(&twice, &[], &all_scopes())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidRun { .. }), "{error:?}");
    assert!(error.to_string().contains("\"idp\""), "{error}");

    let duplicate = orphan("a", "IAM:x");
    let error = store
        .record_run(&run(1), &[duplicate.clone(), duplicate], &all_scopes())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidRun { .. }), "{error:?}");

    let mut huge = run(1);
    huge.sources[0].objects = Some(u64::MAX);
    let error = store
        .record_run(&huge, &[], &all_scopes())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidRun { .. }), "{error:?}");

    assert!(store.runs().await.unwrap().is_empty());
    assert!(store.episodes(None).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_missing_directory_is_reported_with_the_path() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("no-such-dir").join("idgraph.db");
    let error = Store::open(&path).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::MissingDirectory { path: p, .. } if *p == path),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&*path.to_string_lossy()),
        "{error}"
    );
    assert!(
        !dir.path().join("no-such-dir").exists(),
        "no directory is created"
    );
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_reported_and_left_alone() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let content = "this is a config file, not a database\n".repeat(200);
    std::fs::write(&path, &content).unwrap();
    let error = Store::open(&path).await.unwrap_err();
    assert!(matches!(error, StoreError::NotSqlite { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&*path.to_string_lossy()), "{message}");
    assert!(message.contains("not an SQLite database"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
}

/// Runs 1..=6 a minute apart: `gone` opens in 1 and resolves in 3; `kept` opens in 2 and
/// stays open; `late` opens in 4 and resolves in 5.
async fn six_runs(store: &Store) {
    let gone = orphan("a", "IAM:gone");
    let kept = orphan("a", "IAM:kept");
    let late = orphan("b", "IAM:late");
    let plan: [Vec<Finding>; 6] = [
        vec![gone.clone()],
        vec![gone.clone(), kept.clone()],
        vec![kept.clone()],
        vec![kept.clone(), late.clone()],
        vec![kept.clone()],
        vec![kept.clone()],
    ];
    for (i, findings) in plan.iter().enumerate() {
        store
            .record_run(&run(i as i64 + 1), findings, &all_scopes())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn verify_passes_on_recorded_runs_and_fails_on_a_changed_one() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    six_runs(&store).await;
    let report = store.verify().await.unwrap();
    assert_eq!((report.runs, report.first_mismatch), (6, None));
    assert_eq!(
        report.head,
        store.runs().await.unwrap().last().unwrap().hash.clone()
    );
}

#[tokio::test]
async fn pruning_cuts_a_prefix_no_open_finding_reaches_and_keeps_the_chain() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    six_runs(&store).await;

    // Everything before run 5 is old, but `kept` opened in run 2 is still open: only
    // run 1 can go, and `gone` (opened in 1, resolved in 3) reaches past it too.
    let report = store
        .prune(finished(4) + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(report.runs, 0, "{report:?}");

    // `kept` resolves in run 7: a cut after run 6 would still split its episode.
    store.record_run(&run(7), &[], &all_scopes()).await.unwrap();
    let report = store
        .prune(finished(6) + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(report.runs, 0, "{report:?}");

    // After run 7 every episode is closed inside the cut: runs 1..=7 go.
    store.record_run(&run(8), &[], &all_scopes()).await.unwrap();
    let report = store
        .prune(finished(7) + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(report.through_run, Some(7), "{report:?}");
    assert_eq!((report.runs, report.episodes), (7, 3));
    let runs = store.runs().await.unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [8]);
    assert_eq!(store.episodes(None).await.unwrap().len(), 0);

    let verified = store.verify().await.unwrap();
    assert_eq!(verified.first_mismatch, None, "{verified:?}");
    // New runs chain on from the checkpoint.
    store
        .record_run(&run(9), &[orphan("a", "IAM:new")], &all_scopes())
        .await
        .unwrap();
    assert_eq!(store.verify().await.unwrap().first_mismatch, None);
}

/// The subjects (database user or Identity Center user id) of `episodes`, sorted.
fn subjects_of(episodes: &[Episode]) -> Vec<String> {
    let mut subjects: Vec<String> = episodes.iter().map(|e| e.finding.key().subject).collect();
    subjects.sort();
    subjects
}

fn subject(target: &str, subject: &str) -> Subject {
    Subject {
        target: target.to_owned(),
        subject: subject.to_owned(),
    }
}

#[tokio::test]
async fn a_watched_run_changes_only_its_scope_and_takes_its_place_in_the_chain() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    let full = [
        orphan("a", "IAM:left"),
        orphan("a", "IAM:back"),
        stale_ic("ic-back"),
        orphan("b", "IAM:other"),
    ];
    store
        .record_run(&run(1), &full, &all_scopes())
        .await
        .unwrap();

    // The watcher re-checks two people: one came back (its findings resolve), one newly
    // left (its login opens); nobody else's finding is touched, though the run found none.
    let mut watched = run(2);
    watched.sources = vec![
        SourceRecord {
            objects: Some(2),
            ..source("idp", "scim")
        },
        SourceRecord {
            objects: Some(1),
            ..source("ic", "identity_center")
        },
        SourceRecord {
            objects: Some(3),
            ..source("a", "redshift")
        },
    ];
    let scope = RunScope {
        idp_users: vec!["idp-back".into(), "idp-new".into()],
        subjects: vec![
            subject("", "ic-back"),
            subject("a", "IAM:back"),
            subject("a", "IAM:new"),
        ],
    };
    watched.scope = Some(scope.clone());
    let found = [orphan("a", "IAM:new")];
    let recorded = store
        .record_run(&watched, &found, &all_scopes())
        .await
        .unwrap();
    assert_eq!(findings_of(&recorded.opened), vec![orphan("a", "IAM:new")]);
    assert_eq!(subjects_of(&recorded.resolved), ["IAM:back", "ic-back"]);
    // What it returns open is what it could change; what it counts open is everything.
    assert_eq!(subjects_of(&recorded.open), ["IAM:new"]);
    let counts: Vec<(Option<&str>, u64)> = recorded
        .open_counts
        .iter()
        .map(|c| (c.target.as_deref(), c.count))
        .collect();
    assert_eq!(counts, [(Some("a"), 2), (Some("b"), 1)]);

    let runs = store.runs().await.unwrap();
    assert_eq!(runs[1].scope, Some(scope));
    assert_eq!(runs[0].scope, None);
    let report = store.verify().await.unwrap();
    assert_eq!((report.runs, report.first_mismatch), (2, None));

    // A watched run's counts are not a baseline for the shrink guard, nor a full success.
    let counts = store.last_complete_objects(&["idp", "a"]).await.unwrap();
    assert_eq!((counts["idp"], counts["a"]), (42, 42));
    assert_eq!(
        store.last_complete_run_at().await.unwrap(),
        Some(finished(1))
    );
}

/// Counts the open episodes as the finding gauges do, by kind, severity and target.
fn tally(open: &[Episode]) -> Vec<OpenCount> {
    let mut counts: BTreeMap<(FindingKind, Severity, Option<String>), (OpenCount, i64)> =
        BTreeMap::new();
    for e in open {
        let f = &e.finding;
        let (count, first_run) = counts
            .entry((f.kind, f.severity, f.target.clone()))
            .or_insert_with(|| {
                let count = OpenCount {
                    kind: f.kind,
                    severity: f.severity,
                    target: f.target.clone(),
                    count: 0,
                    oldest_opened_at: e.opened_at,
                };
                (count, e.opened_run)
            });
        count.count += 1;
        if e.opened_run < *first_run {
            (count.oldest_opened_at, *first_run) = (e.opened_at, e.opened_run);
        }
    }
    let mut counts: Vec<OpenCount> = counts.into_values().map(|(count, _)| count).collect();
    counts.sort_by(|a, b| {
        (a.kind.as_str(), a.severity.as_str(), &a.target).cmp(&(
            b.kind.as_str(),
            b.severity.as_str(),
            &b.target,
        ))
    });
    counts
}

#[tokio::test]
async fn a_watched_run_reads_only_its_subjects_findings_and_counts_every_open_one() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    let long = format!("{}x", "é".repeat(63));
    let hostile = ["IAM:o'brien\";--", "IAM:Zoë 🦀 名前", long.as_str()];
    let mut full: Vec<Finding> = hostile.iter().map(|name| orphan("a", name)).collect();
    full.extend([orphan("a", "IAM:bystander"), orphan("b", "IAM:elsewhere")]);
    full.push(stale_ic("ic-o'brien\";--"));
    // Beside the scope: the same name on another target, and a kind the graph does not
    // derive about a subject in the scope. A watched run neither reads nor resolves them.
    full.push(orphan("b", hostile[1]));
    full.push(Finding {
        kind: FindingKind::DormantDbUser,
        reason: Reason::NoRecentLogin,
        severity: Severity::Low,
        ..orphan("a", hostile[1])
    });
    for (n, findings) in [(1, &full[..3]), (2, &full[..])] {
        store
            .record_run(&run(n), findings, &all_scopes())
            .await
            .unwrap();
    }

    // The watcher re-checks the person behind the hostile names: the quoted login still
    // orphaned with a new reason, the unicode one back, the Identity Center user gone; a
    // name no finding has; and a subject on another target with the same name as one here.
    let mut watched = run(3);
    watched.scope = Some(RunScope {
        idp_users: vec!["idp-x".into()],
        subjects: vec![
            subject("", "ic-o'brien\";--"),
            subject("a", hostile[0]),
            subject("a", hostile[1]),
            subject("a", hostile[2]),
            subject("a", "IAM:nobody"),
        ],
    });
    let still = Finding {
        reason: Reason::IdpUserMissing,
        ..orphan("a", hostile[0])
    };
    let found = [still.clone(), orphan("a", hostile[2])];
    let recorded = store
        .record_run(&watched, &found, &all_scopes())
        .await
        .unwrap();
    assert_eq!(findings_of(&recorded.updated), vec![still.clone()]);
    assert_eq!(
        subjects_of(&recorded.resolved),
        [hostile[1], "ic-o'brien\";--"]
    );
    let mut open = findings_of(&recorded.open);
    open.sort_by_key(Finding::key);
    assert_eq!(open, [still, orphan("a", hostile[2])]);

    // The counts are every open finding's — the bystanders' too — with the oldest opening.
    let everything = store.open_episodes().await.unwrap();
    assert_eq!(everything.len(), 6);
    let beside = [
        (FindingKind::OrphanedDbUser, "b", hostile[1]),
        (FindingKind::DormantDbUser, "a", hostile[1]),
    ];
    for (kind, target, name) in beside {
        assert!(
            everything.iter().any(|e| e.finding.kind == kind
                && e.finding.target.as_deref() == Some(target)
                && e.finding.db_user.as_deref() == Some(name)),
            "{kind:?} {target} {name} stays open"
        );
    }
    assert_eq!(recorded.open_counts, tally(&everything));
    assert_eq!(store.open_counts().await.unwrap(), recorded.open_counts);
    let on_a = recorded
        .open_counts
        .iter()
        .find(|c| c.kind == FindingKind::OrphanedDbUser && c.target.as_deref() == Some("a"))
        .unwrap();
    assert_eq!((on_a.count, on_a.oldest_opened_at), (3, finished(1)));
    let report = store.verify().await.unwrap();
    assert_eq!((report.runs, report.first_mismatch), (3, None));
}
