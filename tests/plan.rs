//! `idgraph plan`: the remediation SQL, applied to a real PostgreSQL instance with
//! hostile names, must drop exactly the orphaned users, hand their objects to the new owner
//! and touch nothing else.
//!
//! The plan comes from `idgraph plan` on the store a real `idgraph reconcile` wrote.

use std::path::Path;
use std::process::Command;

use idgraph::config::{Settings, TargetSource};
use idgraph_sources::ownership::{self, FunctionKind, RelationKind};
use idgraph_store::Store;

use crate::peers::postgres::{quote_ident, Postgres};
use crate::util::{json_output, summary, Org, Workspace};

const HOSTILE: &str = "IAMA:o'brien\"; DROP TABLE canary; --@example.com";
const GONE: &str = "IAMA:gone@example.com";
const NEWLINE: &str = "IAMA:new\nline; DROP TABLE canary; --@example.com";
const ACTIVE: &str = "IAMA:ann@example.com";
/// A schema and a table whose names try to end the statement they appear in.
const SCHEMA: &str = "sch'ema\"; DROP TABLE canary; --";
const TABLE: &str = "orders \"x\"; DROP TABLE canary; --";

fn org() -> Org {
    Org::default()
        .person("ann@example.com")
        .person("gone@example.com")
        .edit(|p| p.active = false)
}

fn env() -> [(&'static str, &'static str); 2] {
    [("PG_USER", "idgraph_reader"), ("PG_PASSWORD", "unused")]
}

fn settings(ws: &Workspace) -> Settings {
    let env = config::Map::from(env().map(|(k, v)| (k.to_owned(), v.to_owned())));
    idgraph::config::load_with_env(&ws.config(), Some(env)).expect("the config loads")
}

/// `idgraph plan [--target NAME]` on the workspace's store: its stdout.
fn plan(ws: &Workspace, target: Option<&str>) -> String {
    let mut args = vec!["plan"];
    if let Some(target) = target {
        args.extend(["--target", target]);
    }
    let output = ws.idgraph_env(&args, &env());
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 SQL")
}

/// Seeds the instance: the new owner, an active person's user, three orphaned users that
/// own tables, a view, a materialized view, a schema, functions and a procedure and hold
/// privileges elsewhere, and a canary table nothing may touch.
fn seed(pg: &Postgres) {
    for user in ["admin", "idgraph_reader", ACTIVE, GONE, HOSTILE, NEWLINE] {
        pg.create_user(user, false);
    }
    let hostile = quote_ident(HOSTILE);
    let gone = quote_ident(GONE);
    let newline = quote_ident(NEWLINE);
    let active = quote_ident(ACTIVE);
    let schema = quote_ident(SCHEMA);
    let table = quote_ident(TABLE);
    pg.sql(
        "postgres",
        &format!(
            r#"
CREATE TABLE public.canary (id integer);
INSERT INTO public.canary VALUES (1);

-- Objects of the new owner the orphans hold privileges on.
CREATE SCHEMA other AUTHORIZATION admin;
CREATE TABLE other.data (id integer);
ALTER TABLE other.data OWNER TO admin;
CREATE SEQUENCE other.seq;
ALTER SEQUENCE other.seq OWNER TO admin;
CREATE FUNCTION other.fn() RETURNS integer LANGUAGE sql AS 'SELECT 1';
ALTER FUNCTION other.fn() OWNER TO admin;
-- idgraph's login may use this schema, not the orphans' own.
GRANT USAGE ON SCHEMA other TO idgraph_reader;

-- The active person's table, granted to an orphan.
CREATE TABLE public.ann_t (id integer);
ALTER TABLE public.ann_t OWNER TO {active};

-- The hostile orphan: a table with a serial column (its sequence follows the table), a
-- view and a materialized view over it, a schema with a table and a function.
CREATE TABLE public.{table} (id serial PRIMARY KEY, v text);
ALTER TABLE public.{table} OWNER TO {hostile};
CREATE VIEW public.hostile_view AS SELECT id FROM public.{table};
ALTER VIEW public.hostile_view OWNER TO {hostile};
CREATE MATERIALIZED VIEW public.hostile_mv AS SELECT 1 AS x;
ALTER MATERIALIZED VIEW public.hostile_mv OWNER TO {hostile};
CREATE SCHEMA {schema} AUTHORIZATION {hostile};
CREATE TABLE {schema}.t (id integer);
ALTER TABLE {schema}.t OWNER TO {hostile};
CREATE FUNCTION {schema}."f""n"(integer, text) RETURNS integer LANGUAGE sql AS 'SELECT $1';
ALTER FUNCTION {schema}."f""n"(integer, text) OWNER TO {hostile};
GRANT USAGE ON SCHEMA other TO {hostile};
GRANT SELECT ON other.data TO {hostile};
GRANT EXECUTE ON FUNCTION other.fn() TO {hostile};

-- The inactive person's orphan: a schema with a table, a function, a procedure, and
-- privileges on the database, another schema, a sequence and two tables.
CREATE SCHEMA gone_schema AUTHORIZATION {gone};
CREATE TABLE gone_schema.t (id integer);
ALTER TABLE gone_schema.t OWNER TO {gone};
CREATE FUNCTION public.gone_fn() RETURNS integer LANGUAGE sql SECURITY DEFINER AS 'SELECT 2';
ALTER FUNCTION public.gone_fn() OWNER TO {gone};
CREATE PROCEDURE public.gone_proc(integer) LANGUAGE sql AS 'SELECT 3';
ALTER PROCEDURE public.gone_proc(integer) OWNER TO {gone};
GRANT SELECT, INSERT ON public.canary TO {gone};
GRANT SELECT ON public.ann_t TO {gone};
GRANT CREATE ON SCHEMA other TO {gone};
GRANT USAGE ON SEQUENCE other.seq TO {gone};
GRANT CREATE ON DATABASE postgres TO {gone};

-- A name with a line break owns a table.
CREATE TABLE public."line table" (id integer);
ALTER TABLE public."line table" OWNER TO {newline};
GRANT SELECT ON public.canary TO {newline};
"#
        ),
    );
}

/// Runs `file` with psql over TCP as the superuser, stopping at the first error, as the
/// plan's header tells an operator to.
fn apply(pg: &Postgres, file: &Path) -> std::process::Output {
    Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(pg.port.to_string())
        .args(["-U", "postgres", "-d", "postgres", "-f"])
        .arg(file)
        .output()
        .expect("psql runs")
}

fn lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// What discovery itself reports for the seeded users, read as idgraph's login.
fn assert_discovery(ws: &Workspace) {
    let settings = settings(ws);
    let Some(TargetSource::Postgres {
        connection,
        timeout,
        ..
    }) = settings.targets.last().map(|t| &t.source)
    else {
        panic!("a postgres target: {:?}", settings.targets)
    };
    let users = [GONE, HOSTILE, NEWLINE, "IAMA:nobody@example.com"].map(str::to_owned);
    let found = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ownership::discover(
            "warehouse",
            connection,
            &users,
            *timeout,
        ))
        .expect("discovery reads the catalog");
    assert_eq!(
        found.keys().cloned().collect::<Vec<_>>(),
        vec![GONE.to_owned(), NEWLINE.to_owned(), HOSTILE.to_owned()],
        "a user the catalog does not hold is absent"
    );
    let hostile = &found[HOSTILE];
    assert!(!hostile.redshift);
    assert_eq!(hostile.database, "postgres");
    assert_eq!(hostile.schemas, vec![SCHEMA.to_owned()]);
    let kinds: Vec<(&str, &str, RelationKind)> = hostile
        .relations
        .iter()
        .map(|r| (r.schema.as_str(), r.name.as_str(), r.kind))
        .collect();
    let sequence = format!("{TABLE}_id_seq");
    for expected in [
        ("public", TABLE, RelationKind::Table),
        ("public", sequence.as_str(), RelationKind::Sequence),
        ("public", "hostile_view", RelationKind::View),
        ("public", "hostile_mv", RelationKind::MaterializedView),
        (SCHEMA, "t", RelationKind::Table),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    assert_eq!(
        hostile
            .functions
            .iter()
            .map(|f| (f.name.as_str(), f.arguments.as_str(), f.kind))
            .collect::<Vec<_>>(),
        vec![("f\"n", "integer, text", FunctionKind::Function)]
    );
    // Where the login may look, a granted table is seen as such.
    let other = hostile
        .schema_privileges
        .iter()
        .find(|s| s.schema == "other")
        .expect("privileges in schema other");
    assert!(other.usage && !other.create && other.tables, "{other:?}");
    // EXECUTE on other.fn was granted; nothing on other.seq.
    assert!(other.has_functions && !other.has_sequences && !other.has_procedures);
    assert!(hostile
        .table_privileges
        .iter()
        .any(|r| r.schema == "other" && r.name == "data"));

    let gone = &found[GONE];
    assert_eq!(
        gone.functions
            .iter()
            .map(|f| (f.name.as_str(), f.kind, f.security_definer))
            .collect::<Vec<_>>(),
        vec![
            ("gone_fn", FunctionKind::Function, true),
            ("gone_proc", FunctionKind::Procedure, false)
        ]
    );
    let other = gone
        .schema_privileges
        .iter()
        .find(|s| s.schema == "other")
        .expect("privileges in schema other");
    assert!(other.create && !other.tables, "{other:?}");
    assert!(gone
        .table_privileges
        .iter()
        .any(|r| r.schema == "public" && r.name == "canary"));
    assert!(other.has_sequences, "{other:?}");
    // The ACLs are read whatever schemas the login may use: a schema where the user holds
    // nothing is not listed.
    assert!(!gone.schema_privileges.iter().any(|s| s.schema == SCHEMA));
}

#[test]
fn the_plan_drops_exactly_the_orphans_and_hands_their_objects_over() {
    let pg = Postgres::start();
    seed(&pg);
    let target = format!(
        "[[targets]]\nname = \"warehouse\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\n\
         database = \"postgres\"\nuser_env = \"PG_USER\"\npassword_env = \"PG_PASSWORD\"\n\
         sslmode = \"disable\"\nmaster_user = \"postgres\"\n\n\
         [remediation]\nnew_owner = \"admin\"\n",
        pg.port
    );
    let ws = Workspace::with_targets(&org(), &target);
    let (code, report) = json_output(ws.idgraph_env(&["reconcile", "--format", "json"], &env()));
    assert_eq!(code, 0, "{report}");
    let orphans: Vec<String> = summary(&report["findings"])
        .into_iter()
        .filter(|f| f.0 == "orphaned_db_user")
        .map(|f| f.4)
        .collect();
    let mut expected = vec![GONE.to_owned(), HOSTILE.to_owned(), NEWLINE.to_owned()];
    expected.sort();
    assert_eq!(orphans, expected, "{report}");

    let sql = plan(&ws, None);
    for statement in [
        "ALTER MATERIALIZED VIEW \"public\".\"hostile_mv\" OWNER TO \"admin\";",
        "ALTER TABLE \"public\".\"hostile_view\" OWNER TO \"admin\";  -- view",
        "ALTER PROCEDURE \"public\".\"gone_proc\"(integer) OWNER TO \"admin\";",
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA \"other\" FROM \"IAMA:gone@example.com\";",
        "REVOKE ALL ON DATABASE \"postgres\" FROM \"IAMA:gone@example.com\";",
        "DROP USER \"IAMA:o'brien\"\"; DROP TABLE canary; --@example.com\";",
        // The SECURITY DEFINER routine is named before it changes owner.
        "-- WARNING: \"public\".\"gone_fn\"() is SECURITY DEFINER",
    ] {
        assert!(sql.contains(statement), "missing {statement:?} in\n{sql}");
    }
    assert!(
        sql.contains("-- orphaned_db_user \"IAMA:new\\nline; DROP TABLE canary; --@example.com\" on target warehouse"),
        "{sql}"
    );
    // One transaction per orphan in the one database, before the drops.
    let databases = sql
        .split("-- Every database of the cluster is done")
        .next()
        .unwrap();
    assert_eq!(databases.matches("\nBEGIN;\n").count(), 3, "{sql}");
    assert!(!sql.contains("DROP USER \"IAMA:ann@example.com\""), "{sql}");
    assert!(!sql.contains("DROP USER \"admin\""), "{sql}");
    // One target asked for: the same plan, as there is only one.
    assert_eq!(plan(&ws, Some("warehouse")), sql);

    assert_discovery(&ws);

    let file = ws.path("plan.sql");
    std::fs::write(&file, &sql).unwrap();
    let output = apply(&pg, &file);
    assert!(
        output.status.success(),
        "the plan does not apply: {}\n{sql}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("ERROR"), "{stderr}");

    // Exactly the orphans are gone.
    assert_eq!(
        lines(&pg.sql("postgres", "SELECT usename FROM pg_user")),
        lines(&format!("{ACTIVE}\nadmin\nidgraph_reader\npostgres")),
    );
    // Their objects belong to the new owner; nothing else changed hands.
    let relations = pg.sql(
        "postgres",
        "SELECT n.nspname || '|' || c.relname || '|' || pg_get_userbyid(c.relowner) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'v', 'm', 'S', 'p', 'f') \
           AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'",
    );
    let expected = [
        "gone_schema|t|admin".to_owned(),
        "other|data|admin".to_owned(),
        "other|seq|admin".to_owned(),
        format!("public|ann_t|{ACTIVE}"),
        "public|canary|postgres".to_owned(),
        "public|hostile_mv|admin".to_owned(),
        "public|hostile_view|admin".to_owned(),
        "public|line table|admin".to_owned(),
        format!("public|{TABLE}|admin"),
        format!("public|{TABLE}_id_seq|admin"),
        format!("{SCHEMA}|t|admin"),
    ];
    assert_eq!(lines(&relations), lines(&expected.join("\n")));
    let functions = pg.sql(
        "postgres",
        "SELECT n.nspname || '|' || p.proname || '|' || pg_get_userbyid(p.proowner) \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')",
    );
    let expected = [
        "other|fn|admin".to_owned(),
        "public|gone_fn|admin".to_owned(),
        "public|gone_proc|admin".to_owned(),
        format!("{SCHEMA}|f\"n|admin"),
    ];
    assert_eq!(lines(&functions), lines(&expected.join("\n")));
    let schemas = pg.sql(
        "postgres",
        "SELECT nspname || '|' || pg_get_userbyid(nspowner) FROM pg_namespace \
         WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'",
    );
    let expected = [
        "gone_schema|admin".to_owned(),
        "other|admin".to_owned(),
        "public|pg_database_owner".to_owned(),
        format!("{SCHEMA}|admin"),
    ];
    assert_eq!(lines(&schemas), lines(&expected.join("\n")));
    // The canary survived, with its row.
    assert_eq!(
        pg.sql("postgres", "SELECT count(*) FROM public.canary"),
        "1\n"
    );

    // The next run resolves the orphans' findings: the plan is what fixes them.
    let (code, report) = json_output(ws.idgraph_env(&["reconcile", "--format", "json"], &env()));
    assert_eq!(code, 0, "{report}");
    let resolved: Vec<String> = summary(&report["resolved"])
        .into_iter()
        .map(|f| f.4)
        .collect();
    let mut expected = vec![GONE.to_owned(), HOSTILE.to_owned(), NEWLINE.to_owned()];
    expected.sort();
    assert_eq!(resolved, expected, "{report}");
    assert!(plan(&ws, None).contains("nothing to do"));
}

#[test]
fn file_and_unreachable_targets_drop_no_one() {
    let org = org()
        .db("finance", GONE, false)
        .db("finance", ACTIVE, false);
    let pg = Postgres::start();
    for user in ["idgraph_reader", GONE] {
        pg.create_user(user, false);
    }
    let target = format!(
        "[[targets]]\nname = \"down\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\n\
         database = \"postgres\"\nuser_env = \"PG_USER\"\npassword_env = \"PG_PASSWORD\"\n\
         sslmode = \"disable\"\nmaster_user = \"postgres\"\ntimeout_seconds = 5\n\n\
         [remediation]\nnew_owner = \"admin\"\n",
        pg.port
    );
    let ws = Workspace::with_targets(&org, &target);
    let (code, report) = json_output(ws.idgraph_env(&["reconcile", "--format", "json"], &env()));
    assert_eq!(code, 0, "{report}");
    // The target goes away after the run that found its orphan.
    drop(pg);

    // Without the catalogs idgraph cannot tell what the user owns in each database, so it
    // drops no one: every statement is a comment, and the plan says why.
    let sql = plan(&ws, None);
    assert!(
        sql.contains(
            "-- Not read: the catalog of target finance could not be read: it is a file target"
        ),
        "{sql}"
    );
    assert!(
        sql.contains(
            "-- Not read: the cluster's databases could not be read: target down (127.0.0.1:"
        ),
        "{sql}"
    );
    assert_eq!(
        sql.matches("-- DROP USER \"IAMA:gone@example.com\";\n")
            .count(),
        2,
        "{sql}"
    );
    assert!(
        sql.lines().all(|l| l.is_empty() || l.starts_with("--")),
        "{sql}"
    );
    assert!(!sql.contains("DROP USER \"IAMA:ann@example.com\""), "{sql}");
    // One target asked for: only its section.
    let finance = plan(&ws, Some("finance"));
    assert!(finance.contains("-- Cluster target finance:"), "{finance}");
    assert!(!finance.contains("target down"), "{finance}");

    // Without new_owner there is no plan, and the error says which setting is missing.
    let mut settings = settings(&ws);
    settings.new_owner = None;
    let error = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&settings.store_path).await.unwrap();
        idgraph::plan::plan(&settings, &store, None)
            .await
            .unwrap_err()
    });
    assert!(
        error.to_string().contains("[remediation] new_owner"),
        "{error}"
    );
}
