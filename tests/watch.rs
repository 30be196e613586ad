//! The daemon's watcher against a real `scim2-server`: a deactivation by SCIM PATCH
//! shows as an orphan well before the hourly schedule, and the watermark survives a
//! restart.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use idgraph_model::Subject;
use idgraph_store::{RunRow, SourceStatus, Store};
use reqwest::Method;
use serde_json::json;

use crate::daemon::{Daemon, Setup};
use crate::peers::postgres::Postgres;
use crate::peers::{scim2_server, scim2_server_with_config, scim_send, Process};
use crate::util::{json_output, summary, Org, Workspace};

const TOKEN: &str = "watch-scim-token-4c2e90";
const TOKEN_ENV: &str = "IDGRAPH_WATCH_SCIM_TOKEN";
/// At the top of every hour: no scheduled run but the first falls within a test.
const HOURLY: &str = "0 0 * * * *";
/// A bound on waiting for the watcher, not a speed assertion.
const PATIENCE: Duration = Duration::from_secs(30);
const ORPHANS: &str = "idgraph_orphaned_db_users{target=\"analytics\"}";

/// Ann and Bob, both active in the IdP, each with a database user on `analytics`.
fn org() -> Org {
    Org::default()
        .person("ann@example.com")
        .person("bob@example.com")
        .db("analytics", "IAMA:ann@example.com", false)
        .db("analytics", "IAMA:bob@example.com", false)
}

/// Creates the IdP users of `org` in `scim`; their ids by login.
async fn seed(scim: &Process, org: &Org) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for person in &org.people {
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": person.login,
            "externalId": format!("ext-{}", person.login),
            "active": person.active,
            "emails": [{"value": person.login, "type": "work", "primary": true}],
        });
        let (status, created) = scim_send(scim, TOKEN, Method::POST, "Users", &user).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().expect("an id").to_owned();
        ids.push((person.login.clone(), id));
    }
    ids
}

/// Deactivates the user of `login` (among `ids` from [`seed`]) with a SCIM PATCH.
async fn deactivate(scim: &Process, ids: &[(String, String)], login: &str) {
    set_active(scim, ids, login, false).await;
}

/// Sets `active` of the user of `login` (among `ids` from [`seed`]) with a SCIM PATCH.
async fn set_active(scim: &Process, ids: &[(String, String)], login: &str, active: bool) {
    let (_, id) = ids
        .iter()
        .find(|(l, _)| l == login)
        .expect("a seeded login");
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": active}],
    });
    let path = format!("Users/{id}");
    let (status, answer) = scim_send(scim, TOKEN, Method::PATCH, &path, &patch).await;
    assert!(status.is_success(), "{status}: {answer}");
}

/// `ws` with its IdP in `scim`, more `[idp]` keys `idp`, and a watcher every
/// `interval` seconds.
fn watched(ws: Workspace, scim: &Process, idp: &str, interval: u64) -> Workspace {
    let config = std::fs::read_to_string(ws.config()).unwrap();
    let file_idp = "[idp]\nkind = \"file\"\npath = \"exports/scim.json\"\n";
    assert!(config.contains(file_idp), "{config}");
    let scim_idp = format!(
        "[idp]\nkind = \"scim\"\nurl = \"{}/v2\"\ntoken_env = \"{TOKEN_ENV}\"\n{idp}",
        scim.url()
    );
    let config = config.replace(file_idp, &scim_idp);
    ws.write(
        "idgraph.toml",
        &format!("{config}\n[watch]\ninterval_seconds = {interval}\n"),
    );
    ws
}

/// A `scim2-server` holding [`org`], the ids [`seed`] gave, and its workspace with a
/// watcher every 2 s.
async fn seeded(idp: &str) -> (Process, Vec<(String, String)>, Workspace) {
    let scim = scim2_server(Some(TOKEN));
    let org = org();
    let ids = seed(&scim, &org).await;
    let ws = watched(Workspace::new(&org), &scim, idp, 2);
    (scim, ids, ws)
}

/// [`seeded`] with a daemon started once the watcher's overlap no longer reaches the
/// seeding (so that its first look finds nobody changed), after its first run of
/// `status`.
async fn started(idp: &str, status: &str) -> (Process, Vec<(String, String)>, Workspace, Daemon) {
    let (scim, ids, ws) = seeded(idp).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let daemon = start(&ws);
    daemon.wait_for(
        &format!("idgraph_reconcile_runs_total{{status=\"{status}\"}}"),
        1.0,
        PATIENCE,
    );
    (scim, ids, ws, daemon)
}

fn start(ws: &Workspace) -> Daemon {
    Daemon::start_with(
        ws,
        Setup {
            cron: HOURLY,
            host: "127.0.0.1",
            http: "",
            env: &[(TOKEN_ENV, TOKEN)],
        },
    )
}

/// The runs in the store of `ws`, oldest first.
async fn runs(ws: &Workspace) -> Vec<RunRow> {
    let store = Store::open_read_only(&ws.path("store/idgraph.db"))
        .await
        .expect("the store");
    let runs = store.runs().await.expect("readable");
    store.close().await;
    runs
}

/// Waits until the store of `ws` holds more than `after` runs, the newest of them a
/// watched run, and returns it.
async fn next_watched_run(ws: &Workspace, after: usize, daemon: &Daemon) -> RunRow {
    let started = std::time::Instant::now();
    loop {
        let runs = runs(ws).await;
        if let Some(run) = runs
            .last()
            .filter(|r| runs.len() > after && r.scope.is_some())
        {
            return run.clone();
        }
        assert!(started.elapsed() < PATIENCE, "{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stored_watermark(ws: &Workspace) -> Option<DateTime<Utc>> {
    let store = Store::open_read_only(&ws.path("store/idgraph.db"))
        .await
        .expect("the store");
    let watermark = store.watch_watermark("idp").await.expect("readable");
    store.close().await;
    watermark
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deactivation_by_patch_is_an_orphan_before_the_schedule_and_the_watermark_persists() {
    let (scim, ids, ws) = seeded("").await;
    // The daemon puts its schedule and listener first; a restart starts from this again.
    let config = std::fs::read_to_string(ws.config()).unwrap();
    let mut daemon = start(&ws);
    daemon.wait_for(
        "idgraph_reconcile_runs_total{status=\"complete\"}",
        1.0,
        PATIENCE,
    );
    assert_eq!(daemon.sample(ORPHANS), Some(0.0), "{}", daemon.log());

    deactivate(&scim, &ids, "bob@example.com").await;
    daemon.wait_for(ORPHANS, 1.0, PATIENCE);
    assert!(
        daemon
            .sample("idgraph_watch_polls_total{outcome=\"changed\"}")
            .is_some_and(|n| n >= 1.0),
        "{}",
        daemon.log()
    );
    assert!(daemon
        .sample("idgraph_watch_changed_users_total")
        .is_some_and(|n| n >= 1.0));
    assert_eq!(
        daemon.sample("idgraph_reconcile_ticks_skipped_total"),
        Some(0.0)
    );
    assert!(daemon.terminate(Duration::from_secs(20)).success());

    let (code, findings) = json_output(ws.idgraph(&["findings", "--format", "json"]));
    assert_eq!(code, 0, "{findings}");
    let rows = summary(&findings["findings"]);
    assert!(
        rows.iter().any(
            |(kind, reason, _, target, subject)| kind == "orphaned_db_user"
                && reason == "idp_user_inactive"
                && target == "analytics"
                && subject == "IAMA:bob@example.com"
        ),
        "{rows:?}"
    );
    let bob = |findings: &serde_json::Value| {
        findings
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["db_user"] == "IAMA:bob@example.com")
            .map(|f| f["first_seen_run"].clone())
    };
    let opened_by_the_watcher = bob(&findings["findings"]).expect("Bob's orphan");

    // The restart resumes from the stored watermark, not from the time it starts.
    let watermark = stored_watermark(&ws).await.expect("a stored watermark");
    ws.write("idgraph.toml", &config);
    let mut daemon = start(&ws);
    daemon.wait_for(
        "idgraph_reconcile_runs_total{status=\"complete\"}",
        1.0,
        PATIENCE,
    );
    let shown = watermark.to_rfc3339_opts(SecondsFormat::Millis, true);
    let started = std::time::Instant::now();
    while !daemon.log().contains("Watching the IdP") {
        assert!(started.elapsed() < PATIENCE, "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        daemon.log().contains(&format!("watermark={shown}")),
        "{shown} in\n{}",
        daemon.log()
    );
    assert!(daemon.terminate(Duration::from_secs(20)).success());

    // The watched run took its place in the chain, and a full run agrees with it.
    let verify = ws.idgraph(&["verify"]);
    assert!(verify.status.success(), "{verify:?}");
    let (code, report) =
        json_output(ws.idgraph_env(&["reconcile", "--format", "json"], &[(TOKEN_ENV, TOKEN)]));
    assert_eq!(code, 0, "{report}");
    assert_eq!(bob(&report["findings"]), Some(opened_by_the_watcher));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_cannot_filter_stops_the_watcher_with_one_warning_not_the_daemon() {
    let scim = scim2_server_with_config(
        Some(TOKEN),
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576},
            "filter": {"supported": false, "maxResults": 1000},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
        }),
    );
    let org = org();
    seed(&scim, &org).await;
    let ws = watched(Workspace::new(&org), &scim, "", 2);
    let mut daemon = start(&ws);
    let unsupported = "idgraph_watch_polls_total{outcome=\"unsupported\"}";
    daemon.wait_for(unsupported, 1.0, PATIENCE);
    daemon.wait_for(
        "idgraph_reconcile_runs_total{status=\"complete\"}",
        1.0,
        PATIENCE,
    );
    // Three more intervals: no further look, no further warning.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(daemon.sample(unsupported), Some(1.0));
    for outcome in ["unchanged", "changed", "failed"] {
        let series = format!("idgraph_watch_polls_total{{outcome=\"{outcome}\"}}");
        assert_eq!(daemon.sample(&series), Some(0.0), "{series}");
    }
    let log = daemon.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("watcher stops"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("filter.supported"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
    assert!(daemon.terminate(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_a_run_could_not_record_are_looked_at_again() {
    // Every full listing fails (two users, at most one), a look at one changed user does
    // not: each run leaves the IdP unread.
    let (scim, ids, ws, daemon) = started("max_users = 1\n", "partial").await;
    deactivate(&scim, &ids, "bob@example.com").await;
    // Without looking again, the second look would find nothing new.
    daemon.wait_for(
        "idgraph_watch_polls_total{outcome=\"changed\"}",
        3.0,
        PATIENCE,
    );
    // Each time after a longer wait: twice the 2 s interval, then twice that.
    let log = daemon.log();
    let waits: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("looks at the same changes again"))
        .filter_map(|l| l.split("retry_in_seconds=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(waits[..2], ["4", "8"], "{log}");
    // The alert on looks allows for the longer waits.
    let pause = daemon.sample("idgraph_watch_interval_seconds").unwrap();
    assert!(pause >= 4.0, "{pause}");
    assert_eq!(
        stored_watermark(&ws).await,
        None,
        "nothing recorded, nothing stored"
    );
}

/// A PostgreSQL target `warehouse` holding Ann's and Bob's logins, read as `reader`, the
/// SCIM IdP, and a daemon watching every `interval` seconds after its first complete run.
struct Warehouse {
    pg: Postgres,
    scim: Process,
    ids: Vec<(String, String)>,
    ws: Workspace,
    daemon: Daemon,
}

const WAREHOUSE_ORPHANS: &str = "idgraph_orphaned_db_users{target=\"warehouse\"}";

async fn warehouse(reader: &str, interval: u64) -> Warehouse {
    let pg = Postgres::start();
    pg.create_user("IAMA:ann@example.com", false);
    pg.create_user("IAMA:bob@example.com", false);
    // Carl left before idgraph started: an orphan no watched run is about, which the
    // gauge keeps counting after each.
    pg.create_user("IAMA:carl@example.com", false);
    if reader != "postgres" {
        pg.create_user(reader, false);
    }
    let scim = scim2_server(Some(TOKEN));
    let people = Org::default()
        .person("ann@example.com")
        .person("bob@example.com")
        .person("carl@example.com")
        .edit(|p| p.active = false);
    let ids = seed(&scim, &people).await;
    let target = format!(
        "[[targets]]\nname = \"warehouse\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\n\
         port = {}\ndatabase = \"postgres\"\nuser_env = \"PG_USER\"\nsslmode = \"disable\"\n\
         master_user = \"postgres\"\n",
        pg.port
    );
    let ws = watched(
        Workspace::with_targets(&people, &target),
        &scim,
        "",
        interval,
    );
    // Out of the watcher's overlap at start, so that its first look finds nobody changed.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let daemon = Daemon::start_with(
        &ws,
        Setup {
            cron: HOURLY,
            host: "127.0.0.1",
            http: "",
            env: &[(TOKEN_ENV, TOKEN), ("PG_USER", reader)],
        },
    );
    daemon.wait_for(
        "idgraph_reconcile_runs_total{status=\"complete\"}",
        1.0,
        PATIENCE,
    );
    assert_eq!(
        daemon.sample(WAREHOUSE_ORPHANS),
        Some(1.0),
        "{}",
        daemon.log()
    );
    Warehouse {
        pg,
        scim,
        ids,
        ws,
        daemon,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deactivation_shows_on_a_postgres_target_at_a_five_second_interval() {
    // The instance lives as long as the test: `..` would drop it now.
    let Warehouse {
        pg: _pg,
        scim,
        ids,
        ws,
        mut daemon,
    } = warehouse("postgres", 5).await;

    deactivate(&scim, &ids, "bob@example.com").await;
    // The goal is 30 s at this interval; the bound is that, not a measurement.
    daemon.wait_for(WAREHOUSE_ORPHANS, 2.0, PATIENCE);
    assert!(daemon.terminate(Duration::from_secs(20)).success());

    // The watched run's finding is in the store, the chain holds, a full run keeps it.
    let bob = |findings: &serde_json::Value| {
        findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["db_user"] == "IAMA:bob@example.com")
            .map(|f| (f["reason"].clone(), f["first_seen_run"].clone()))
    };
    let (_, stored) = json_output(ws.idgraph(&["findings", "--format", "json"]));
    let (reason, first_seen) = bob(&stored["findings"]).expect("Bob's orphan");
    assert_eq!(reason, "idp_user_inactive");
    assert!(ws.idgraph(&["verify"]).status.success());
    let (code, report) = json_output(ws.idgraph_env(
        &["reconcile", "--format", "json"],
        &[(TOKEN_ENV, TOKEN), ("PG_USER", "postgres")],
    ));
    assert_eq!(code, 0, "{report}");
    assert_eq!(bob(&report["findings"]), Some((reason, first_seen)));
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_turns_the_watcher_on_without_a_restart() {
    let scim = scim2_server(Some(TOKEN));
    let ids = seed(&scim, &org()).await;
    let ws = watched(Workspace::new(&org()), &scim, "", 0);
    let daemon = start(&ws);
    let complete = "idgraph_reconcile_runs_total{status=\"complete\"}";
    daemon.wait_for(complete, 1.0, PATIENCE);
    assert_eq!(daemon.sample("idgraph_watch_interval_seconds"), Some(0.0));

    let config = std::fs::read_to_string(ws.config()).unwrap();
    let off = "[watch]\ninterval_seconds = 0\n";
    assert!(config.contains(off), "{config}");
    ws.write(
        "idgraph.toml",
        &config.replace(off, "[watch]\ninterval_seconds = 2\n"),
    );
    daemon.signal("HUP");
    daemon.wait_for("idgraph_watch_interval_seconds", 2.0, PATIENCE);

    // Until a full run after the reload, changes make full runs (the new configuration's
    // identities are not known yet); then a watched run.
    deactivate(&scim, &ids, "bob@example.com").await;
    daemon.wait_for(ORPHANS, 1.0, PATIENCE);
    let before = runs(&ws).await.len();
    deactivate(&scim, &ids, "ann@example.com").await;
    let run = next_watched_run(&ws, before, &daemon).await;
    assert_eq!(
        run.opened, 2,
        "Ann's login and Identity Center user: {run:?}"
    );
    daemon.wait_for(ORPHANS, 2.0, PATIENCE);
    assert!(
        !daemon.log().contains("takes a restart"),
        "{}",
        daemon.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_identity_center_export_rewritten_after_the_full_run_is_read_again() {
    let (scim, ids, ws, daemon) = started("", "complete").await;
    // Bob's Identity Center user is deleted and the export written anew; no full run has
    // read it when he is deactivated.
    let mut without_bob = org();
    without_bob
        .people
        .iter_mut()
        .filter(|p| p.login == "bob@example.com")
        .for_each(|p| p.in_ic = false);
    ws.write(
        "exports/identitystore.json",
        &without_bob.identity_store_json().to_string(),
    );
    let before = runs(&ws).await.len();
    deactivate(&scim, &ids, "bob@example.com").await;
    let run = next_watched_run(&ws, before, &daemon).await;

    // Only his login opens: the Identity Center user the full run saw is gone.
    assert_eq!((run.opened, run.resolved), (1, 0), "{run:?}");
    let (_, findings) = json_output(ws.idgraph(&["findings", "--format", "json"]));
    let subjects: Vec<&str> = findings["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["db_user"].as_str().or(f["ic_user_id"].as_str()).unwrap())
        .collect();
    assert_eq!(subjects, ["IAMA:bob@example.com"], "{findings}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watched_run_rechecks_the_changed_person_alone_and_a_reactivation_resolves() {
    let (scim, ids, ws, daemon) = started("", "complete").await;
    let full_runs = runs(&ws).await.len();

    deactivate(&scim, &ids, "bob@example.com").await;
    let run = next_watched_run(&ws, full_runs, &daemon).await;
    daemon.wait_for(ORPHANS, 1.0, PATIENCE);
    let bob_id = &ids.iter().find(|(l, _)| l == "bob@example.com").unwrap().1;
    let scope = run.scope.expect("a watched run");
    assert_eq!(scope.idp_users, std::slice::from_ref(bob_id));
    assert!(
        scope.subjects.contains(&Subject {
            target: "analytics".into(),
            subject: "IAMA:bob@example.com".into(),
        }),
        "{scope:?}"
    );
    assert!(
        !scope.subjects.iter().any(|s| s.subject.contains("ann")),
        "Ann did not change: {scope:?}"
    );
    assert_eq!(run.opened, 2, "Bob's login and his Identity Center user");
    // The export has not changed since the full run: Identity Center answers for Bob alone,
    // from what that run read, instead of the whole export read again.
    let ic = run.sources.iter().find(|s| s.name == "identity_center");
    assert_eq!(ic.map(|s| s.objects), Some(Some(1)), "{:?}", run.sources);
    // The finding gauges moved without a full run.
    assert_eq!(
        daemon.sample("idgraph_reconcile_runs_total{status=\"complete\"}"),
        Some(1.0),
        "{}",
        daemon.log()
    );
    let latency = daemon.sample("idgraph_detection_latency_seconds_count");
    assert_eq!(latency, Some(2.0), "{}", daemon.log());

    // Back within the watcher's next look: its findings resolve by a watched run.
    let before = runs(&ws).await.len();
    set_active(&scim, &ids, "bob@example.com", true).await;
    let run = next_watched_run(&ws, before, &daemon).await;
    assert_eq!((run.opened, run.resolved), (0, 2), "{run:?}");
    daemon.wait_for(ORPHANS, 0.0, PATIENCE);

    // Out and back between two looks: the watcher sees Ann active, and nothing opens.
    let before = runs(&ws).await.len();
    set_active(&scim, &ids, "ann@example.com", false).await;
    set_active(&scim, &ids, "ann@example.com", true).await;
    let run = next_watched_run(&ws, before, &daemon).await;
    assert_eq!((run.opened, run.resolved), (0, 0), "{run:?}");
    assert!(run
        .scope
        .as_ref()
        .unwrap()
        .subjects
        .iter()
        .any(|s| s.subject == "IAMA:ann@example.com"));

    // Watched runs are in the chain, the history and the evidence, and a full run agrees.
    let verify = ws.idgraph(&["verify"]);
    assert!(verify.status.success(), "{verify:?}");
    let (code, history) = json_output(ws.idgraph(&["history", "--format", "json"]));
    assert_eq!(code, 0, "{history}");
    let kinds: Vec<&str> = history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["full", "watched", "watched", "watched"]);
    let text = ws.idgraph(&["history"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("watched: 1 changed IdP user(s)"), "{text}");
    let export = ws.export_everything("evidence");
    assert!(export.status.success(), "{export:?}");
    let runs_csv = std::fs::read_to_string(ws.path("evidence/runs.csv")).unwrap();
    let kinds: Vec<&str> = runs_csv
        .lines()
        .skip(1)
        .map(|line| line.split(',').nth(9).unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["full", "watched", "watched", "watched"],
        "{runs_csv}"
    );
    let evidence = std::fs::read_to_string(ws.path("evidence/evidence.json")).unwrap();
    assert!(
        evidence.contains("\"idp_users\""),
        "the scope is in the evidence"
    );
    let html = std::fs::read_to_string(ws.path("evidence/report.html")).unwrap();
    assert!(html.contains("(watched: "), "{html}");
    let (code, report) =
        json_output(ws.idgraph_env(&["reconcile", "--format", "json"], &[(TOKEN_ENV, TOKEN)]));
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["opened"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert_eq!(
        report["resolved"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_failing_during_a_watched_run_keeps_its_findings() {
    let Warehouse {
        pg,
        scim,
        ids,
        ws,
        daemon,
    } = warehouse("idgraph_reader", 2).await;
    let orphans = WAREHOUSE_ORPHANS;
    let before = runs(&ws).await.len();
    deactivate(&scim, &ids, "bob@example.com").await;
    let run = next_watched_run(&ws, before, &daemon).await;
    let warehouse = run.sources.iter().find(|s| s.name == "warehouse").unwrap();
    assert_eq!(
        (warehouse.status, warehouse.objects),
        (SourceStatus::Ok, Some(1)),
        "one pg_user row read for Bob: {run:?}"
    );
    daemon.wait_for(orphans, 2.0, PATIENCE);

    // The target refuses idgraph's login; Bob comes back meanwhile.
    pg.sql("postgres", "ALTER ROLE idgraph_reader NOLOGIN;");
    let before = runs(&ws).await.len();
    set_active(&scim, &ids, "bob@example.com", true).await;
    let run = next_watched_run(&ws, before, &daemon).await;
    let warehouse = run.sources.iter().find(|s| s.name == "warehouse").unwrap();
    assert_eq!(warehouse.status, SourceStatus::Failed, "{run:?}");
    // His Identity Center user is evaluated and resolves; his login on the unread target
    // stays open, as the store holds it.
    assert_eq!((run.opened, run.resolved), (0, 1), "{run:?}");
    assert_eq!(daemon.sample(orphans), Some(2.0));
    let (_, findings) = json_output(ws.idgraph(&["findings", "--format", "json"]));
    assert!(
        findings["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["db_user"] == "IAMA:bob@example.com"),
        "{findings}"
    );
    let verify = ws.idgraph(&["verify"]);
    assert!(verify.status.success(), "{verify:?}");
}
