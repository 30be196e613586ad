//! Session activity: logins of orphaned users after their person left
//! (`post_deprovisioning_login`), on PostgreSQL with real sessions and on the Redshift path
//! through the catalog fixture.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use idgraph::reconcile::{reconcile_with_clock, Context};
use idgraph_model::{FindingKind, Reason, Severity};
use idgraph_sources::NoProgress;
use idgraph_store::{Episode, RunStatus};
use serde_json::Value;
use sqlx::{ConnectOptions, Connection};

use crate::peers::postgres::Postgres;
use crate::util::{json_output, Org, Workspace};

/// An application name a driver may send: quotes and a semicolon (PostgreSQL keeps
/// printable ASCII only in `application_name`).
const APP: &str = "tableau 'export'; \"nightly\" --";

/// The target `pg`, read as `PG_USER`, and the owner a plan hands objects to.
fn target(pg: &Postgres) -> String {
    format!(
        "[[targets]]\nname = \"pg\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\n\
         database = \"postgres\"\nuser_env = \"PG_USER\"\npassword_env = \"PG_PASSWORD\"\n\
         sslmode = \"disable\"\nmaster_user = \"postgres\"\n\n[remediation]\nnew_owner = \"postgres\"\n",
        pg.port
    )
}

/// Ann (active) and Bob and Carl (both left), each with a database user on `pg`.
fn org() -> Org {
    Org::ann_and_bob()
        .person("carl@example.com")
        .edit(|p| p.active = false)
}

struct Session {
    rt: tokio::runtime::Runtime,
    conn: Option<sqlx::PgConnection>,
}

impl Session {
    /// A real session on `pg` as `user`, with `application_name` set as a driver sets it.
    fn open(pg: &Postgres, user: &str, application: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conn = rt
            .block_on(
                sqlx::postgres::PgConnectOptions::new_without_pgpass()
                    .host("127.0.0.1")
                    .port(pg.port)
                    .username(user)
                    .database("postgres")
                    .application_name(application)
                    .connect(),
            )
            .unwrap();
        Self {
            rt,
            conn: Some(conn),
        }
    }

    fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            self.rt.block_on(conn.close()).unwrap();
        }
    }
}

fn reconcile(ws: &Workspace) -> (i32, Value) {
    json_output(ws.idgraph_env(
        &["reconcile", "--format", "json"],
        &[("PG_USER", "idgraph_reader"), ("PG_PASSWORD", "unused")],
    ))
}

fn of_kind<'a>(list: &'a Value, kind: &str) -> Vec<&'a Value> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

/// Waits until `pg` shows no session of `user`: a closed connection's backend ends a
/// moment after the client hangs up.
fn wait_gone(pg: &Postgres, user: &str) {
    let start = Instant::now();
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{}'",
        user.replace('\'', "''")
    );
    while pg.sql("postgres", &sql).trim() != "0" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the session of {user} stays"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A target holding the logins of Ann (active), Bob and Carl (departed), read by
/// `idgraph_reader`, with `pg_read_all_stats` when `stats`.
fn ann_bob_and_carl(stats: bool) -> (Postgres, Workspace) {
    let pg = Postgres::start();
    pg.create_user("idgraph_reader", false);
    if stats {
        pg.sql("postgres", "GRANT pg_read_all_stats TO idgraph_reader;");
    }
    for user in [
        "IAMA:ann@example.com",
        "IAMA:bob@example.com",
        "IAMA:carl@example.com",
    ] {
        pg.create_user(user, false);
    }
    let ws = Workspace::with_targets(&org(), &target(&pg));
    (pg, ws)
}

#[test]
fn a_departed_person_s_open_session_is_one_critical_incident_kept_after_it_ends() {
    let (pg, ws) = ann_bob_and_carl(true);

    let bob = Session::open(&pg, "IAMA:bob@example.com", APP);
    let ann = Session::open(&pg, "IAMA:ann@example.com", "psql");
    let (code, report) = reconcile(&ws);
    assert_eq!(code, 0, "{report}");
    let incidents = of_kind(&report["findings"], "post_deprovisioning_login");
    assert_eq!(incidents.len(), 1, "{report}");
    let incident = incidents[0];
    assert_eq!(incident["severity"], "critical");
    assert_eq!(incident["target"], "pg");
    assert_eq!(incident["db_user"], "IAMA:bob@example.com");
    assert_eq!(incident["reason"], "idp_user_inactive");
    assert_eq!(incident["logins"]["application"], APP);
    assert_eq!(incident["logins"]["remote_host"], "127.0.0.1");
    assert_eq!(incident["logins"]["session_open"], true);
    assert_eq!(incident["logins"]["count"], 1);
    assert_eq!(incident["logins"]["processes"].as_array().unwrap().len(), 1);
    // Carl is orphaned too, but idgraph saw no login of his.
    assert_eq!(of_kind(&report["findings"], "orphaned_db_user").len(), 2);
    let logins = report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "pg:logins")
        .expect("a source for the target's logins");
    assert_eq!(logins["status"], "ok");

    // The plan names the incident first, with the statement that would end the session.
    let plan = ws.idgraph_env(
        &["plan"],
        &[("PG_USER", "idgraph_reader"), ("PG_PASSWORD", "x")],
    );
    let sql = String::from_utf8_lossy(&plan.stdout);
    assert!(sql.contains("INCIDENTS: 1"), "{sql}");
    let pid = incident["logins"]["processes"][0].as_i64().unwrap();
    assert!(
        sql.contains(&format!("--   SELECT pg_terminate_backend({pid});")),
        "{sql}"
    );

    bob.close();
    wait_gone(&pg, "IAMA:bob@example.com");
    let (code, report) = reconcile(&ws);
    assert_eq!(code, 0, "{report}");
    let incidents = of_kind(&report["findings"], "post_deprovisioning_login");
    assert_eq!(
        incidents.len(),
        1,
        "a session ending does not resolve it: {report}"
    );
    assert_eq!(incidents[0]["first_seen_run"], 1);
    assert_eq!(incidents[0]["logins"]["session_open"], false);
    assert_eq!(incidents[0]["logins"]["application"], APP);
    assert!(of_kind(&report["resolved"], "post_deprovisioning_login").is_empty());

    let out = ws.export_everything("bundle");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evidence = std::fs::read_to_string(ws.path("bundle/evidence.json")).unwrap();
    assert!(evidence.contains("post_deprovisioning_login"));
    assert!(evidence.contains("tableau 'export'"), "{evidence}");
    let html = std::fs::read_to_string(ws.path("bundle/report.html")).unwrap();
    assert!(html.contains("post_deprovisioning_login"), "{html}");
    assert!(
        html.contains("tableau &#39;export&#39;") || html.contains("tableau &#x27;export&#x27;"),
        "{html}"
    );
    let history = ws.idgraph(&["history", "--format", "json"]);
    assert!(String::from_utf8_lossy(&history.stdout).contains("\"session_open\": false"));
    ann.close();

    // Bob's person comes back: the orphan resolves, and the incident with it.
    let mut back = org();
    back.people[1].active = true;
    ws.write_org(&back);
    let (_, report) = reconcile(&ws);
    assert_eq!(
        of_kind(&report["resolved"], "post_deprovisioning_login").len(),
        1,
        "{report}"
    );
}

/// A time as Redshift's logs hold it: UTC without a zone, in SQL.
fn redshift_time(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("'{}'", at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f"))
}

/// A row of `sys_connection_log`, in SQL.
fn logged(
    event: &str,
    at: chrono::DateTime<chrono::Utc>,
    user: &str,
    app: &str,
    session: i32,
) -> String {
    let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!(
        "INSERT INTO redshift_catalog.sys_connection_log (event, record_time, remote_host, \
         session_id, database_name, user_name, auth_method, application_name) VALUES \
         ({}, {}, '10.1.2.3', {session}, 'dev', {}, 'password', {});",
        lit(event),
        redshift_time(at),
        lit(user),
        lit(app)
    )
}

/// Bob's SCIM user says when he was deactivated (`meta.lastModified`).
fn scim_with_last_modified(org: &Org, login: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let mut scim = org.scim_json();
    for user in scim["Resources"].as_array_mut().unwrap() {
        if user["userName"] == login {
            user["meta"] = serde_json::json!({"lastModified": at.to_rfc3339()});
        }
    }
    scim.to_string()
}

/// A Redshift-like target (the catalog fixture) holding Ann's and Bob's logins, read by
/// `idgraph_reader`; Bob's SCIM user says he left two hours ago, when.
fn redshift_where_bob_left() -> (Postgres, Workspace, chrono::DateTime<chrono::Utc>) {
    let pg = Postgres::start();
    pg.create_user("idgraph_reader", false);
    for user in ["IAMA:ann@example.com", "IAMA:bob@example.com"] {
        pg.create_user(user, false);
    }
    pg.redshift_catalog("postgres", "idgraph_reader");
    let org = Org::ann_and_bob();
    let ws = Workspace::with_targets(&org, &target(&pg));
    let left = chrono::Utc::now().with_nanosecond(0).unwrap() - chrono::Duration::hours(2);
    ws.write(
        "exports/scim.json",
        &scim_with_last_modified(&org, "bob@example.com", left),
    );
    (pg, ws, left)
}

#[test]
fn on_redshift_the_connection_log_after_the_deactivation_counts_and_is_kept() {
    let (pg, ws, left) = redshift_where_bob_left();
    let minutes = |m: i64| left + chrono::Duration::minutes(m);
    pg.sql(
        "postgres",
        &[
            logged(
                "authenticated",
                minutes(-60),
                "IAMA:bob@example.com",
                "dbeaver",
                7000,
            ),
            logged(
                "authenticated",
                minutes(10),
                "IAMA:bob@example.com",
                APP,
                7001,
            ),
            logged(
                "authentication failure",
                minutes(20),
                "IAMA:bob@example.com",
                "x",
                7002,
            ),
            logged(
                "authenticated",
                minutes(5),
                "IAMA:ann@example.com",
                "psql",
                7003,
            ),
            logged(
                "authenticated",
                minutes(1),
                "idgraph_reader",
                "idgraph",
                7004,
            ),
        ]
        .concat(),
    );

    let (code, report) = reconcile(&ws);
    assert_eq!(code, 0, "{report}");
    let incidents = of_kind(&report["findings"], "post_deprovisioning_login");
    assert_eq!(incidents.len(), 1, "{report}");
    let e = &incidents[0]["logins"];
    assert_eq!(incidents[0]["db_user"], "IAMA:bob@example.com");
    assert_eq!(
        (e["count"].as_i64(), e["session_open"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(e["application"], APP);
    assert_eq!(e["auth_method"], "password");
    assert_eq!(e["remote_host"], "10.1.2.3");
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(
        time(&e["deactivated_at"]),
        left,
        "meta.lastModified bounds it"
    );
    assert_eq!(time(&e["last_login_at"]), minutes(10));

    // The next run reads the log from where the last one left off, and keeps what it read
    // before: the first login counts once, with the new one.
    pg.sql(
        "postgres",
        &logged(
            "authenticated",
            minutes(30),
            "IAMA:bob@example.com",
            "psql",
            7005,
        ),
    );
    let (code, report) = reconcile(&ws);
    assert_eq!(code, 0, "{report}");
    let incidents = of_kind(&report["findings"], "post_deprovisioning_login");
    let e = &incidents[0]["logins"];
    assert_eq!(e["count"], 2, "{report}");
    assert_eq!(time(&e["first_login_at"]), minutes(10));
    assert_eq!(time(&e["last_login_at"]), minutes(30));
    assert_eq!(e["application"], "psql");

    // Redshift's log forgets; idgraph does not.
    pg.sql(
        "postgres",
        "DELETE FROM redshift_catalog.sys_connection_log;",
    );
    let (_, report) = reconcile(&ws);
    assert_eq!(
        of_kind(&report["findings"], "post_deprovisioning_login")[0]["logins"]["count"],
        2
    );
}

#[test]
fn a_login_that_sees_only_its_own_rows_fails_the_logins_and_says_which_grant() {
    let pg = Postgres::start();
    pg.create_user("idgraph_reader", false);
    pg.create_user("IAMA:bob@example.com", false);
    pg.redshift_catalog("postgres", "idgraph_reader");
    pg.sql(
        "postgres",
        &logged(
            "authenticated",
            chrono::Utc::now(),
            "idgraph_reader",
            "idgraph",
            1,
        ),
    );
    let ws = Workspace::with_targets(&Org::ann_and_bob(), &target(&pg));
    let (code, report) = reconcile(&ws);
    assert_eq!(code, 2, "a partial run: {report}");
    let logins = report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "pg:logins")
        .unwrap();
    assert_eq!(logins["status"], "failed");
    assert!(
        logins["error"]
            .as_str()
            .unwrap()
            .contains("SYSLOG ACCESS UNRESTRICTED"),
        "{logins}"
    );
    // The orphan itself is still found; only what depends on logins waits.
    assert_eq!(of_kind(&report["findings"], "orphaned_db_user").len(), 1);
    assert!(of_kind(&report["findings"], "post_deprovisioning_login").is_empty());

    let check = ws.idgraph_env(
        &["check"],
        &[("PG_USER", "idgraph_reader"), ("PG_PASSWORD", "x")],
    );
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("pg:logins") && text.contains("SYSLOG ACCESS UNRESTRICTED"),
        "{text}"
    );
}

#[test]
fn where_the_sys_view_is_missing_the_stl_connection_log_is_read() {
    // An older provisioned cluster: no SYS_CONNECTION_LOG, the STL table holds the log.
    let (pg, ws, left) = redshift_where_bob_left();
    let after = left + chrono::Duration::minutes(10);
    pg.sql(
        "postgres",
        &format!(
            "DROP TABLE redshift_catalog.sys_connection_log; \
             INSERT INTO redshift_catalog.stl_connection_log (event, recordtime, remotehost, \
             pid, dbname, username, authmethod, application_name) VALUES \
             ('authenticated', {}, '10.9.8.7', 4242, 'dev', 'IAMA:bob@example.com', 'IAM', 'stl-client'), \
             ('authenticated', {}, '10.9.8.7', 4243, 'dev', 'idgraph_reader', 'password', 'idgraph');",
            redshift_time(after),
            redshift_time(after),
        ),
    );
    let (code, report) = reconcile(&ws);
    assert_eq!(code, 0, "{report}");
    let incidents = of_kind(&report["findings"], "post_deprovisioning_login");
    assert_eq!(incidents.len(), 1, "{report}");
    let e = &incidents[0]["logins"];
    assert_eq!(
        (&e["application"], &e["auth_method"], &e["remote_host"]),
        (
            &Value::from("stl-client"),
            &Value::from("IAM"),
            &Value::from("10.9.8.7")
        ),
        "{report}"
    );
}

#[test]
fn a_reader_without_pg_read_all_stats_still_sees_a_departed_person_s_session() {
    // Without the role, PostgreSQL shows other users' sessions with their user and
    // application but hides when they started, where from and what kind of backend they are.
    let (pg, ws) = ann_bob_and_carl(false);
    let bob = Session::open(&pg, "IAMA:bob@example.com", APP);
    let ann = Session::open(&pg, "IAMA:ann@example.com", "psql");
    let (code, report) = reconcile(&ws);
    assert_eq!(code, 0, "{report}");
    let incidents = of_kind(&report["findings"], "post_deprovisioning_login");
    assert_eq!(incidents.len(), 1, "{report}");
    assert_eq!(incidents[0]["db_user"], "IAMA:bob@example.com");
    assert_eq!(incidents[0]["severity"], "critical");
    assert_eq!(incidents[0]["logins"]["application"], APP);
    assert_eq!(incidents[0]["logins"]["session_open"], true);
    bob.close();
    ann.close();
}

/// One `reconcile` of `ws` through the library, as if at `now`: weeks pass between runs
/// without waiting for them. The target is read as `idgraph_reader`.
fn reconcile_at(ws: &Workspace, now: DateTime<Utc>) -> idgraph::reconcile::RunReport {
    let env = [("PG_USER", "idgraph_reader"), ("PG_PASSWORD", "unused")];
    let env = config::Map::from(env.map(|(k, v)| (k.to_owned(), v.to_owned())));
    let settings = idgraph::config::load_with_env(&ws.config(), Some(env)).expect("the config");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ctx = Context::open(settings, Arc::new(NoProgress)).await.unwrap();
        let report = reconcile_with_clock(&ctx, &|| now).await.unwrap();
        ctx.store.close().await;
        report
    })
}

/// The database users of the `dormant_db_user` findings among `episodes`.
fn dormant(episodes: &[Episode]) -> Vec<&str> {
    episodes
        .iter()
        .filter(|e| e.finding.kind == FindingKind::DormantDbUser)
        .filter_map(|e| e.finding.db_user.as_deref())
        .collect()
}

#[test]
fn a_login_unused_for_the_configured_days_is_dormant_until_it_is_used() {
    let pg = Postgres::start();
    pg.create_user("idgraph_reader", false);
    pg.sql("postgres", "GRANT pg_read_all_stats TO idgraph_reader;");
    for user in ["IAMA:ann@example.com", "IAMA:dave@example.com"] {
        pg.create_user(user, false);
    }
    let people = Org::default()
        .person("ann@example.com")
        .person("dave@example.com");
    let ws = Workspace::with_targets_and_mapping(&people, &target(&pg), "dormant_after_days = 30");
    let start = Utc::now();

    // Day 0: idgraph starts watching the target's logins; nobody is dormant yet.
    let first = reconcile_at(&ws, start);
    assert_eq!(first.status, RunStatus::Complete, "{:?}", first.sources);
    assert!(dormant(&first.open).is_empty(), "{:?}", first.open);

    // Day 31: Ann holds a session a pool opened long ago; Dave never logged in.
    let ann = Session::open(&pg, "IAMA:ann@example.com", "pool");
    let later = reconcile_at(&ws, start + chrono::Duration::days(31));
    assert_eq!(dormant(&later.open), ["IAMA:dave@example.com"]);
    let finding = &later
        .open
        .iter()
        .find(|e| e.finding.kind == FindingKind::DormantDbUser)
        .unwrap()
        .finding;
    assert_eq!(
        (finding.severity, finding.reason),
        (Severity::Low, Reason::NoRecentLogin)
    );
    let evidence = finding.logins.as_ref().expect("the evidence");
    assert_eq!(evidence.last_login_at, None);
    let watched_since = evidence.watched_since.expect("since when");
    assert!(
        (watched_since - start).num_milliseconds().abs() <= 1,
        "{watched_since} {start}"
    );
    // The store holds it as the CLI shows it.
    let (_, findings) = json_output(ws.idgraph(&["findings", "--format", "json"]));
    let listed = of_kind(&findings["findings"], "dormant_db_user");
    assert_eq!(listed.len(), 1, "{findings}");
    assert_eq!(listed[0]["db_user"], "IAMA:dave@example.com");
    ann.close();

    // Day 32: Dave logs in; his finding resolves. Ann's session ended, but she was active
    // yesterday.
    let dave = Session::open(&pg, "IAMA:dave@example.com", "psql");
    let last = reconcile_at(&ws, start + chrono::Duration::days(32));
    assert!(dormant(&last.open).is_empty(), "{:?}", last.open);
    assert_eq!(dormant(&last.resolved), ["IAMA:dave@example.com"]);
    dave.close();
}
