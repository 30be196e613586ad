//! `postgres` targets: `pg_user` read over SQL from PostgreSQL instances of the test's own.

use crate::peers::postgres::Postgres;
use crate::util::{json_output, row, summary, Org, Workspace};

const PASSWORD: &str = "pg-Pa55word-7f3a91";
const HOSTILE: &str = "IAMA:o'brien\"; DROP TABLE t; --@example.com";

fn org() -> Org {
    Org::ann_and_bob()
}

fn target(name: &str, pg: &Postgres, extra: &str) -> String {
    format!(
        "[[targets]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\n\
         database = \"postgres\"\nuser_env = \"PG_USER\"\npassword_env = \"PG_PASSWORD\"\n\
         sslmode = \"prefer\"\nmaster_user = \"postgres\"\n{extra}\n",
        pg.port
    )
}

#[test]
fn two_instances_give_exactly_their_findings_and_no_secret_leaks() {
    let one = Postgres::start_scram();
    let two = Postgres::start_scram();
    for pg in [&one, &two] {
        pg.create_user_with_password("idgraph_reader", PASSWORD);
    }
    one.create_user("IAMA:ann@example.com", false);
    one.create_user("IAMA:bob@example.com", true);
    one.create_user("IAMR:loader", false);
    one.create_user(HOSTILE, false);
    two.create_user("bob@example.com", false);
    two.create_user("ünïcødé-用户", false);
    two.create_user(&"x".repeat(63), false);

    let ws = Workspace::with_targets(
        &org(),
        &(target("one", &one, "") + &target("two;'", &two, "")),
    );
    let output = ws.idgraph_env(
        &["reconcile", "--format", "json"],
        &[
            ("PG_USER", "idgraph_reader"),
            ("PG_PASSWORD", PASSWORD),
            ("RUST_LOG", "debug"),
        ],
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!printed.contains(PASSWORD), "the password was printed");
    assert!(printed.contains("DEBUG"), "debug logging was on");
    let (code, report) = json_output(output);
    assert_eq!(code, 0, "{report}");
    let mut expected = vec![
        row(
            "orphaned_db_user",
            "idp_user_inactive",
            "critical",
            "one",
            "IAMA:bob@example.com",
        ),
        row(
            "orphaned_db_user",
            "no_identity_center_user",
            "high",
            "one",
            HOSTILE,
        ),
        row(
            "orphaned_db_user",
            "idp_user_inactive",
            "high",
            "two;'",
            "bob@example.com",
        ),
        row(
            "unmanaged_db_user",
            "no_matching_identity",
            "medium",
            "two;'",
            "ünïcødé-用户",
        ),
        row(
            "unmanaged_db_user",
            "no_matching_identity",
            "medium",
            "two;'",
            &"x".repeat(63),
        ),
        row(
            "stale_identity_center_user",
            "idp_user_inactive",
            "medium",
            "",
            "bob@example.com",
        ),
    ];
    expected.sort();
    assert_eq!(summary(&report["findings"]), expected);
    // postgres (master) + idgraph_reader (login) + 4 and + 3 users.
    assert_eq!(report["sources"][2]["objects"], 6);
    assert_eq!(report["sources"][3]["objects"], 5);
    assert_eq!(report["sources"][2]["kind"], "postgres");
}

#[test]
fn a_wrong_password_fails_that_target_only_and_names_it() {
    let good = Postgres::start_scram();
    let bad = Postgres::start_scram();
    good.create_user_with_password("idgraph_reader", PASSWORD);
    bad.create_user_with_password("idgraph_reader", "another-password");
    good.create_user("IAMA:gone@example.com", false);

    let ws = Workspace::with_targets(
        &org(),
        &(target("good", &good, "") + &target("bad", &bad, "")),
    );
    let output = ws.idgraph_env(
        &["reconcile", "--format", "json"],
        &[("PG_USER", "idgraph_reader"), ("PG_PASSWORD", PASSWORD)],
    );
    let (code, report) = json_output(output);
    assert_eq!(code, 2);
    let bad = &report["sources"][3];
    assert_eq!(bad["status"], "failed");
    let error = bad["error"].as_str().unwrap();
    assert!(
        error.contains("target bad") && error.contains("idgraph_reader"),
        "{error}"
    );
    assert!(!error.contains(PASSWORD));
    assert_eq!(report["sources"][2]["status"], "ok");
    assert!(summary(&report["findings"])
        .iter()
        .any(|f| f.4 == "IAMA:gone@example.com"));
}

#[test]
fn a_missing_secret_variable_is_a_config_error_naming_it() {
    let pg = Postgres::start();
    let ws = Workspace::with_targets(&org(), &target("one", &pg, ""));
    let output = ws.idgraph_env(&["reconcile"], &[("PG_USER", "idgraph_reader")]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("PG_PASSWORD") && err.contains("not set"),
        "{err}"
    );
}

#[test]
fn an_identity_center_namespace_declared_in_the_catalog_is_a_prefix() {
    // Redshift's SVV_IDENTITY_PROVIDERS, imitated: a catalog that declares namespace CORP.
    let pg = Postgres::start();
    pg.create_user("idgraph_reader", false);
    pg.sql(
        "postgres",
        "CREATE VIEW public.svv_identity_providers AS SELECT 'CORP'::varchar AS namespc;\n\
         GRANT SELECT ON public.svv_identity_providers TO idgraph_reader;",
    );
    pg.create_user("CORP:ann@example.com", false);
    pg.create_user("CORP:bob@example.com", false);
    let ws = Workspace::with_targets(&org(), &target("one", &pg, ""));
    let output = ws.idgraph_env(
        &["reconcile", "--format", "json"],
        &[("PG_USER", "idgraph_reader"), ("PG_PASSWORD", "unused")],
    );
    let (code, report) = json_output(output);
    assert_eq!(code, 0, "{report}");
    let on_target: Vec<_> = summary(&report["findings"])
        .into_iter()
        .filter(|f| f.3 == "one")
        .collect();
    // ann is matched through the namespace; bob has left.
    assert_eq!(
        on_target,
        vec![row(
            "orphaned_db_user",
            "idp_user_inactive",
            "high",
            "one",
            "CORP:bob@example.com"
        )]
    );
}

// Regression: catalog sessions set no statement_timeout, so a query idgraph had given up
// on went on running on the server.
#[tokio::test]
async fn catalog_sessions_limit_every_statement_to_the_target_timeout() {
    use idgraph_sources::postgres::{connect, Connection, SslMode};
    let pg = Postgres::start();
    let connection = Connection {
        host: "127.0.0.1".into(),
        port: pg.port,
        database: "postgres".into(),
        user: "postgres".into(),
        password: None,
        sslmode: SslMode::Disable,
    };
    for (timeout, shown) in [(60_000, "1min"), (1_500, "1500ms")] {
        let mut conn = connect("pg", &connection, std::time::Duration::from_millis(timeout))
            .await
            .expect("connects");
        let setting: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&mut conn)
            .await
            .expect("shows the setting");
        assert_eq!(setting, shown);
    }
    // And the server enforces it.
    let mut conn = connect("pg", &connection, std::time::Duration::from_millis(200))
        .await
        .expect("connects");
    let error = sqlx::query("SELECT pg_sleep(5)")
        .execute(&mut conn)
        .await
        .expect_err("cancelled by the server")
        .to_string();
    assert!(error.contains("statement timeout"), "{error}");
}
