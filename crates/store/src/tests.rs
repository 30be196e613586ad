//! Tests that need to reach under the API: rows written behind the store's back.

use std::collections::HashSet;

use chrono::{TimeZone, Utc};
use idgraph_model::{Finding, FindingKind, Reason, Scope, Severity};
use tempfile::TempDir;

use super::*;

fn run(minute: u32) -> NewRun {
    let at = Utc.with_ymd_and_hms(2026, 11, 27, 10, minute, 0).unwrap();
    NewRun {
        scope: None,
        started_at: at,
        finished_at: at,
        status: RunStatus::Complete,
        sources: vec![SourceRecord {
            name: "a".into(),
            kind: "redshift".into(),
            status: SourceStatus::Ok,
            objects: Some(1),
            digest: None,
            error: None,
            duration_ms: 1,
        }],
    }
}

fn orphan(db_user: &str) -> Finding {
    Finding {
        kind: FindingKind::OrphanedDbUser,
        reason: Reason::IdpUserInactive,
        severity: Severity::High,
        target: Some("a".into()),
        db_user: Some(db_user.into()),
        ic_user_id: None,
        idp_user_id: None,
        user_name: None,
        superuser: false,
        matched_by: None,
        candidates: Vec::new(),
        logins: None,
    }
}

fn scopes() -> HashSet<Scope> {
    HashSet::from([Scope::Target("a".into())])
}

/// Opens a store in `dir` with one run that opened one episode, and returns that episode id.
async fn store_with_one_episode(dir: &TempDir) -> (Store, i64) {
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    let recorded = store
        .record_run(&run(1), &[orphan("IAM:x")], &scopes())
        .await
        .unwrap();
    let id = recorded.opened[0].id;
    (store, id)
}

#[tokio::test]
async fn an_unknown_stored_kind_is_corruption_naming_the_row() {
    let dir = TempDir::new().unwrap();
    let (store, id) = store_with_one_episode(&dir).await;
    sqlx::query("UPDATE episodes SET kind = 'haunted_db_user' WHERE id = ?")
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();

    for error in [
        store.open_episodes().await.unwrap_err(),
        store.episodes(None).await.unwrap_err(),
    ] {
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&format!("episodes row {id}")), "{message}");
        assert!(message.contains("haunted_db_user"), "{message}");
        assert!(message.contains("s.db"), "{message}");
    }
    store.close().await;
}

#[tokio::test]
async fn unreadable_candidates_and_times_are_corruption() {
    let dir = TempDir::new().unwrap();
    let (store, id) = store_with_one_episode(&dir).await;
    sqlx::query("UPDATE episodes SET candidates = '{\"not\": \"an array\"}' WHERE id = ?")
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();
    let error = store.open_episodes().await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");

    sqlx::query("UPDATE runs SET finished_at = 'yesterday'")
        .execute(&store.pool)
        .await
        .unwrap();
    let error = store.runs().await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("yesterday"), "{error}");
    store.close().await;
}

#[tokio::test]
async fn a_failed_run_writes_nothing() {
    let dir = TempDir::new().unwrap();
    let (store, id) = store_with_one_episode(&dir).await;
    // An open episode the store cannot read makes record_run fail after it inserted the
    // run and its sources: the transaction must take them back.
    sqlx::query("UPDATE episodes SET severity = 'apocalyptic' WHERE id = ?")
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();
    let error = store
        .record_run(&run(2), &[orphan("IAM:y")], &scopes())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");

    let runs = store.runs().await.unwrap();
    assert_eq!(runs.len(), 1, "the failed run left no run row");
    let sources: i64 = sqlx::query_scalar("SELECT count(*) FROM run_sources")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(sources, 1, "the failed run left no source rows");
    let episodes: i64 = sqlx::query_scalar("SELECT count(*) FROM episodes")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(episodes, 1);
    store.close().await;
}

#[tokio::test]
async fn one_open_episode_per_key_is_enforced_by_the_schema() {
    let dir = TempDir::new().unwrap();
    let (store, id) = store_with_one_episode(&dir).await;
    let copy =
        "INSERT INTO episodes (kind, target, db_user, reason, severity, superuser, opened_run) \
                SELECT kind, target, db_user, reason, 'critical', superuser, opened_run \
                FROM episodes WHERE id = ?";
    let error = sqlx::query(copy)
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("UNIQUE"), "{error}");

    // Once resolved, the same key may open again.
    store.record_run(&run(2), &[], &scopes()).await.unwrap();
    sqlx::query(copy)
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();
    store.close().await;
}

#[tokio::test]
async fn episodes_are_read_a_page_at_a_time_without_losing_any() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&dir.path().join("idgraph.db")).await.unwrap();
    let count = 2 * READ_PAGE as usize + 1;
    let findings: Vec<Finding> = (0..count)
        .map(|i| orphan(&format!("IAM:u{i:05}")))
        .collect();
    let recorded = store
        .record_run(&run(1), &findings, &scopes())
        .await
        .unwrap();
    assert_eq!(recorded.opened.len(), count);

    let open = store.open_episodes().await.unwrap();
    assert_eq!(open, recorded.open);
    let all = store.episodes(None).await.unwrap();
    assert_eq!(all.len(), count);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    let one = store.episodes(Some("IAM:u01500")).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].finding.db_user.as_deref(), Some("IAM:u01500"));

    // A watched run about all but the first reads their episodes a page at a time too:
    // it resolves every one of them and leaves the first open.
    let mut watched = run(2);
    watched.scope = Some(RunScope {
        idp_users: vec!["idp".into()],
        subjects: findings[1..].iter().map(|f| f.key().subject()).collect(),
    });
    let recorded = store.record_run(&watched, &[], &scopes()).await.unwrap();
    assert_eq!(recorded.resolved.len(), count - 1);
    assert!(recorded.open.is_empty());
    let open = store.open_episodes().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].finding, findings[0]);
    store.close().await;
}

#[tokio::test]
async fn runs_from_before_the_chain_are_sealed_once_and_tampering_never() {
    let dir = TempDir::new().unwrap();
    let (store, _) = store_with_one_episode(&dir).await;
    store.record_run(&run(2), &[], &scopes()).await.unwrap();
    // As migration 0005 finds a store whose runs were recorded before the chain existed.
    sqlx::query("UPDATE runs SET hash = NULL; UPDATE chain_meta SET legacy_through_run = 2")
        .execute(&store.pool)
        .await
        .unwrap();
    store.close().await;
    let path = dir.path().join("s.db");
    // Reading does not seal them.
    let reader = Store::open_read_only(&path).await.unwrap();
    assert_eq!(reader.verify().await.unwrap().first_mismatch, Some(1));
    reader.close().await;

    let store = Store::open(&path).await.unwrap();
    assert!(store.verify().await.unwrap().is_intact());
    // Once sealed, a hash removed later is never recomputed.
    sqlx::query("UPDATE runs SET hash = NULL WHERE id = 2")
        .execute(&store.pool)
        .await
        .unwrap();
    store.close().await;
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.verify().await.unwrap().first_mismatch, Some(2));
    store.close().await;
}

#[tokio::test]
async fn a_store_of_a_newer_idgraph_is_named_as_such() {
    let dir = TempDir::new().unwrap();
    let (store, _) = store_with_one_episode(&dir).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    store.close().await;
    let path = dir.path().join("s.db");
    for error in [
        Store::open(&path).await.unwrap_err(),
        Store::open_read_only(&path).await.unwrap_err(),
    ] {
        assert!(
            matches!(error, StoreError::Newer { version: 9999, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("upgrade idgraph"), "{error}");
    }
}

#[tokio::test]
async fn reading_a_missing_store_creates_nothing() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("absent.db");
    let error = Store::open_read_only(&path).await.unwrap_err();
    assert!(matches!(error, StoreError::Missing { .. }), "{error:?}");
    assert!(!path.exists());
}

#[tokio::test]
async fn the_watch_watermark_is_kept_per_source_across_reopening() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.watch_watermark("idp").await.unwrap(), None);
    let first = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
    store.set_watch_watermark("idp", first).await.unwrap();
    let later = first + chrono::TimeDelta::milliseconds(1_500);
    store.set_watch_watermark("idp", later).await.unwrap();
    store.close().await;

    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.watch_watermark("idp").await.unwrap(), Some(later));
    assert_eq!(store.watch_watermark("other").await.unwrap(), None);
    assert!(store.verify().await.unwrap().is_intact());
    store.close().await;
}

/// A `post_deprovisioning_login` of `db_user` with evidence naming `application`.
fn incident(db_user: &str, application: &str) -> Finding {
    Finding {
        kind: FindingKind::PostDeprovisioningLogin,
        severity: Severity::Critical,
        logins: Some(idgraph_model::LoginEvidence {
            count: 1,
            application: Some(application.into()),
            session_open: true,
            processes: vec![42],
            ..Default::default()
        }),
        ..orphan(db_user)
    }
}

#[tokio::test]
async fn login_evidence_round_trips_and_the_chain_covers_it() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    let found = [orphan("IAM:x"), incident("IAM:x", "looker \"ü\"")];
    store.record_run(&run(1), &found, &scopes()).await.unwrap();
    // The same evidence again changes nothing; a session that ended updates the episode.
    let again = store.record_run(&run(2), &found, &scopes()).await.unwrap();
    assert!(again.updated.is_empty() && again.opened.is_empty());
    let mut ended = incident("IAM:x", "looker \"ü\"");
    ended.logins.as_mut().unwrap().session_open = false;
    let later = store
        .record_run(&run(3), &[orphan("IAM:x"), ended.clone()], &scopes())
        .await
        .unwrap();
    assert_eq!(later.updated.len(), 1);
    let open = store.open_episodes().await.unwrap();
    let read = open
        .iter()
        .find(|e| e.finding.kind == FindingKind::PostDeprovisioningLogin)
        .unwrap();
    assert_eq!(read.finding, ended);
    assert!(store.verify().await.unwrap().is_intact());

    // Rewriting the evidence behind the store's back breaks the chain.
    sqlx::query("UPDATE episode_versions SET logins = replace(logins, 'looker', 'cron') WHERE logins IS NOT NULL")
        .execute(&store.pool)
        .await
        .unwrap();
    let report = store.verify().await.unwrap();
    assert!(!report.is_intact(), "{report:?}");
}

#[tokio::test]
async fn retention_removes_the_login_events_of_the_runs_it_removes() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    let login = |hour: u32| idgraph_model::Login {
        db_user: "IAM:x".into(),
        at: Some(Utc.with_ymd_and_hms(2026, 11, 27, hour, 0, 0).unwrap()),
        database: None,
        remote_host: None,
        application: None,
        auth_method: None,
        process: None,
        open_at: None,
    };
    for (minute, hour) in [(1, 1), (2, 2)] {
        let recorded = store
            .record_run(&run(minute), &[], &scopes())
            .await
            .unwrap();
        let logins = [login(hour)];
        store
            .record_logins(
                recorded.run_id,
                &[TargetLogins {
                    target: "a",
                    read_at: run(minute).finished_at,
                    logins: &logins,
                    accounts: Vec::new(),
                    keep_events_of: HashSet::from(["IAM:x"]),
                }],
            )
            .await
            .unwrap();
    }
    let events = |stored: StoredLogins| stored.events.values().map(Vec::len).sum::<usize>();
    assert_eq!(events(store.stored_logins(&["a"], false).await.unwrap()), 2);
    let pruned = store.prune(run(2).finished_at).await.unwrap();
    assert_eq!(pruned.through_run, Some(1));
    assert_eq!(events(store.stored_logins(&["a"], false).await.unwrap()), 1);
    assert!(store.verify().await.unwrap().is_intact());
}
