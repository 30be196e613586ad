//! `idgraph plan` on a cluster of several databases: one PostgreSQL instance whose users are
//! shared by all its databases, two of them configured as targets and one not. The plan is
//! applied from start to end with one `psql -v ON_ERROR_STOP=1 -f`, as its header says.

use std::process::Command;

use crate::peers::postgres::{quote_ident, Postgres};
use crate::util::{json_output, summary, Org, Workspace};

const GONE: &str = "IAMA:gone@example.com";
const HOSTILE: &str = "IAMA:o'brien\"; DROP TABLE canary; --@example.com";
const ACTIVE: &str = "IAMA:ann@example.com";
/// Another user, who keeps what it was granted on the orphans' objects.
const CAROL: &str = "carol";
/// A configured database whose name tries to end every statement and string it is in.
const SALES: &str = "sales'db\"; \\ = x";
/// A database no target names: the plan finds it in `pg_database`.
const ARCHIVE: &str = "archive";

fn env() -> [(&'static str, &'static str); 2] {
    [("PG_USER", "idgraph_reader"), ("PG_PASSWORD", "unused")]
}

/// Users, databases and in each database objects of the orphans that another user holds
/// privileges on.
fn seed(pg: &Postgres) {
    for user in ["admin", "idgraph_reader", ACTIVE, GONE, HOSTILE, CAROL] {
        pg.create_user(user, false);
    }
    for database in [SALES, ARCHIVE] {
        pg.sql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(database)),
        );
    }
    let gone = quote_ident(GONE);
    let hostile = quote_ident(HOSTILE);
    pg.sql(
        "postgres",
        &format!(
            "CREATE TABLE public.orders (id integer);
             ALTER TABLE public.orders OWNER TO {gone};
             CREATE VIEW public.orders_view AS SELECT id FROM public.orders;
             ALTER VIEW public.orders_view OWNER TO {gone};
             GRANT SELECT ON public.orders, public.orders_view TO {CAROL};
             CREATE TABLE public.shared (id integer);
             ALTER TABLE public.shared OWNER TO admin;
             GRANT SELECT ON public.shared TO {gone}, {CAROL};"
        ),
    );
    pg.sql(
        SALES,
        &format!(
            "CREATE SCHEMA crm AUTHORIZATION {gone};
             CREATE TABLE crm.leads (id integer);
             ALTER TABLE crm.leads OWNER TO {gone};
             GRANT USAGE ON SCHEMA crm TO {CAROL};
             GRANT SELECT ON crm.leads TO {CAROL};
             CREATE TABLE public.deals (id integer);
             ALTER TABLE public.deals OWNER TO {hostile};
             GRANT SELECT, UPDATE ON public.deals TO {CAROL};"
        ),
    );
    pg.sql(
        ARCHIVE,
        &format!(
            "CREATE TABLE public.old_orders (id integer);
             ALTER TABLE public.old_orders OWNER TO {gone};
             GRANT SELECT ON public.old_orders TO {CAROL};"
        ),
    );
}

/// A postgres target `name` on `database` of `pg`, read as idgraph_reader.
fn target(pg: &Postgres, name: &str, database: &str) -> String {
    format!(
        "[[targets]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\n\
         port = {}\ndatabase = \"{}\"\nuser_env = \"PG_USER\"\n\
         password_env = \"PG_PASSWORD\"\nsslmode = \"disable\"\nmaster_user = \"postgres\"\n\n",
        pg.port,
        database.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

/// A workspace whose one person is ann, with `targets` and `new_owner = "admin"`, after a
/// first complete run.
fn reconciled(targets: &str) -> Workspace {
    let config = format!("{targets}[remediation]\nnew_owner = \"admin\"\n");
    let ws = Workspace::with_targets(&Org::default().person("ann@example.com"), &config);
    let (code, report) = json_output(ws.idgraph_env(&["reconcile", "--format", "json"], &env()));
    assert_eq!(code, 0, "{report}");
    ws
}

/// `idgraph plan` (with `args`): the script.
fn plan(ws: &Workspace, args: &[&str]) -> String {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    let output = ws.idgraph_env(&all, &env());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Applies `sql` as the plan's header says: the whole file, one psql, as the superuser,
/// stopping at the first error.
fn apply(pg: &Postgres, ws: &Workspace, sql: &str) {
    let file = ws.path("plan.sql");
    std::fs::write(&file, sql).unwrap();
    let applied = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(pg.port.to_string())
        .args(["-U", "postgres", "-d", "postgres", "-f"])
        .arg(&file)
        .output()
        .expect("psql runs");
    assert!(
        applied.status.success(),
        "the plan does not apply: {}\n{sql}",
        String::from_utf8_lossy(&applied.stderr)
    );
}

/// The owner of every relation outside the system schemas of `database`, as
/// `schema.name|owner` lines, sorted.
fn owners(pg: &Postgres, database: &str) -> Vec<String> {
    let mut lines: Vec<String> = pg
        .sql(
            database,
            "SELECT n.nspname || '.' || c.relname || '|' || pg_get_userbyid(c.relowner) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'v') \
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_cluster_plan_applies_in_one_psql_and_drops_each_orphan_once() {
    let pg = Postgres::start();
    seed(&pg);
    let ws = Workspace::with_targets(
        &Org::default().person("ann@example.com"),
        &format!(
            "{}{}[remediation]\nnew_owner = \"admin\"\n",
            target(&pg, "warehouse", "postgres"),
            target(&pg, "sales", SALES)
        ),
    );
    let (code, report) = json_output(ws.idgraph_env(&["reconcile", "--format", "json"], &env()));
    assert_eq!(code, 0, "{report}");
    let orphans: Vec<(String, String)> = summary(&report["findings"])
        .into_iter()
        .filter(|f| f.0 == "orphaned_db_user")
        .map(|f| (f.3, f.4))
        .collect();
    assert!(
        orphans.contains(&("sales".into(), GONE.into()))
            && orphans.contains(&("warehouse".into(), GONE.into())),
        "{orphans:?}"
    );

    let sql = plan(&ws, &[]);
    // One cluster, three databases, each user dropped once, after every database.
    assert!(
        sql.contains(&format!(
            "-- Cluster postgres 127.0.0.1:{}: 2 orphaned database user(s), 3 database(s).",
            pg.port
        )),
        "{sql}"
    );
    assert!(
        sql.contains("--   database \"archive\" (not configured)"),
        "{sql}"
    );
    for user in [GONE, HOSTILE] {
        let drop = format!("\nDROP USER {};\n", quote_ident(user));
        assert_eq!(sql.matches(&drop).count(), 1, "{drop} in\n{sql}");
    }
    assert_eq!(sql.matches("\n\\connect ").count(), 3, "{sql}");
    let last_connect = sql.rfind("\n\\connect ").unwrap();
    let first_drop = sql.find("\nDROP USER ").unwrap();
    assert!(last_connect < first_drop, "{sql}");
    // `--target` plans that target's cluster: the same plan.
    assert_eq!(plan(&ws, &["--target", "sales"]), sql);
    apply(&pg, &ws, &sql);

    // The orphans are gone; everything they owned, in every database, is admin's.
    let mut users: Vec<String> = pg
        .sql("postgres", "SELECT usename FROM pg_user")
        .lines()
        .map(str::to_owned)
        .collect();
    users.sort();
    assert_eq!(
        users,
        [ACTIVE, "admin", CAROL, "idgraph_reader", "postgres"].map(str::to_owned)
    );
    assert_eq!(
        owners(&pg, "postgres"),
        [
            "public.orders_view|admin",
            "public.orders|admin",
            "public.shared|admin"
        ]
        .map(str::to_owned)
    );
    assert_eq!(
        owners(&pg, SALES),
        ["crm.leads|admin", "public.deals|admin"].map(str::to_owned)
    );
    assert_eq!(
        owners(&pg, ARCHIVE),
        ["public.old_orders|admin"].map(str::to_owned)
    );
    let schema_owner = pg.sql(
        SALES,
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'crm'",
    );
    assert_eq!(schema_owner.trim(), "admin");
    // Carol can still read (and update) what she could.
    for (database, table, privilege) in [
        ("postgres", "public.orders", "SELECT"),
        ("postgres", "public.orders_view", "SELECT"),
        ("postgres", "public.shared", "SELECT"),
        (SALES, "crm.leads", "SELECT"),
        (SALES, "public.deals", "UPDATE"),
        (ARCHIVE, "public.old_orders", "SELECT"),
    ] {
        let held = pg.sql(
            database,
            &format!("SELECT has_table_privilege('{CAROL}', '{table}', '{privilege}')"),
        );
        assert_eq!(held.trim(), "t", "{CAROL} lost {privilege} on {table}");
    }

    // The next run resolves the findings of the users the plan dropped.
    let (code, report) = json_output(ws.idgraph_env(&["reconcile", "--format", "json"], &env()));
    assert_eq!(code, 0, "{report}");
    let open: Vec<String> = summary(&report["findings"])
        .into_iter()
        .filter(|f| f.0 == "orphaned_db_user")
        .map(|f| f.4)
        .collect();
    assert!(open.is_empty(), "{report}");
}

/// A user who owns a database and set default privileges (some for the whole database,
/// one that takes EXECUTE on new functions away from PUBLIC), receives another user's
/// default privileges, holds a column grant, an EXECUTE grant, USAGE on a language, a
/// role membership and a database privilege, while carol keeps grants on the same objects.
fn seed_blockers(pg: &Postgres) {
    for user in ["admin", "idgraph_reader", ACTIVE, GONE, CAROL] {
        pg.create_user(user, false);
    }
    let gone = quote_ident(GONE);
    pg.sql(
        "postgres",
        &format!(
            "CREATE DATABASE gone_db OWNER {gone};
             GRANT CONNECT ON DATABASE gone_db TO {CAROL};
             CREATE ROLE analysts;
             GRANT analysts TO {gone}, {CAROL};"
        ),
    );
    pg.sql(
        "postgres",
        &format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {gone} IN SCHEMA public GRANT SELECT ON TABLES TO {CAROL};
             ALTER DEFAULT PRIVILEGES FOR ROLE {gone} GRANT EXECUTE ON FUNCTIONS TO {CAROL};
             ALTER DEFAULT PRIVILEGES FOR ROLE {gone} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
             ALTER DEFAULT PRIVILEGES FOR ROLE admin GRANT SELECT ON TABLES TO {gone}, {CAROL};
             CREATE TABLE public.salaries (id integer, amount integer);
             ALTER TABLE public.salaries OWNER TO admin;
             GRANT SELECT (id) ON public.salaries TO {gone};
             GRANT SELECT ON public.salaries TO {CAROL};
             CREATE FUNCTION public.payroll() RETURNS integer LANGUAGE sql AS 'SELECT 1';
             ALTER FUNCTION public.payroll() OWNER TO admin;
             REVOKE EXECUTE ON FUNCTION public.payroll() FROM PUBLIC;
             GRANT EXECUTE ON FUNCTION public.payroll() TO {gone}, {CAROL};
             GRANT USAGE ON LANGUAGE plpgsql TO {gone};
             GRANT CREATE ON DATABASE postgres TO {gone};"
        ),
    );
    pg.sql(
        "gone_db",
        &format!(
            "CREATE TABLE public.notes (id integer);
             ALTER TABLE public.notes OWNER TO {gone};
             GRANT SELECT ON public.notes TO {CAROL};
             ALTER DEFAULT PRIVILEGES FOR ROLE {gone} GRANT SELECT ON TABLES TO {CAROL};"
        ),
    );
}

#[test]
fn default_privileges_both_ways_column_and_execute_grants_roles_and_a_database_are_handled() {
    let pg = Postgres::start();
    seed_blockers(&pg);
    let ws = reconciled(&target(&pg, "warehouse", "postgres"));
    let sql = plan(&ws, &[]);
    assert!(!sql.contains("-- BLOCKED"), "{sql}");
    apply(&pg, &ws, &sql);

    let exists = pg.sql(
        "postgres",
        &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{GONE}'"),
    );
    assert_eq!(exists.trim(), "0", "{GONE} is dropped");
    let owner = pg.sql(
        "postgres",
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'gone_db'",
    );
    assert_eq!(owner.trim(), "admin");
    assert_eq!(
        owners(&pg, "gone_db"),
        ["public.notes|admin"].map(str::to_owned)
    );
    // Nothing anywhere is left to a role that no longer exists.
    for database in ["postgres", "gone_db"] {
        let orphaned = pg.sql(
            database,
            "SELECT count(*) FROM pg_default_acl d \
             WHERE NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = d.defaclrole)",
        );
        assert_eq!(
            orphaned.trim(),
            "0",
            "default privileges of a dropped role in {database}"
        );
    }
    // Carol keeps what she had, admin's own default privileges still grant to her.
    for (database, check) in [
        (
            "postgres",
            format!("has_table_privilege('{CAROL}', 'public.salaries', 'SELECT')"),
        ),
        (
            "postgres",
            format!("has_function_privilege('{CAROL}', 'public.payroll()', 'EXECUTE')"),
        ),
        (
            "postgres",
            format!("pg_has_role('{CAROL}', 'analysts', 'MEMBER')"),
        ),
        (
            "postgres",
            format!("has_database_privilege('{CAROL}', 'gone_db', 'CONNECT')"),
        ),
        (
            "gone_db",
            format!("has_table_privilege('{CAROL}', 'public.notes', 'SELECT')"),
        ),
        (
            "postgres",
            format!(
                "EXISTS (SELECT 1 FROM pg_default_acl WHERE defaclrole = 'admin'::regrole \
                 AND array_to_string(defaclacl, ',') LIKE '%{CAROL}=r/admin%')"
            ),
        ),
    ] {
        assert_eq!(
            pg.sql(database, &format!("SELECT {check}")).trim(),
            "t",
            "{check}"
        );
    }

    let (code, report) = json_output(ws.idgraph_env(&["reconcile", "--format", "json"], &env()));
    assert_eq!(code, 0, "{report}");
    assert!(
        !summary(&report["findings"])
            .iter()
            .any(|f| f.0 == "orphaned_db_user"),
        "{report}"
    );
}

const SHARED: &str = "IAMA:shared@example.com";

// The Redshift code path end to end, on PostgreSQL dressed as Redshift (the catalog
// fixture): the plan speaks Redshift's dialect, applies to the end, drops the orphan it
// can and leaves the one that owns a datashare untouched, its statements commented out.
#[test]
fn on_a_redshift_catalog_a_blocked_orphan_is_left_untouched_and_the_rest_applies() {
    let pg = Postgres::start();
    for user in ["admin", "idgraph_reader", ACTIVE, GONE, SHARED, CAROL] {
        pg.create_user(user, false);
    }
    pg.redshift_catalog("postgres", "idgraph_reader");
    let (gone, shared) = (quote_ident(GONE), quote_ident(SHARED));
    pg.sql(
        "postgres",
        &format!(
            "CREATE SCHEMA sales AUTHORIZATION {gone};
             CREATE TABLE sales.orders (id integer);
             ALTER TABLE sales.orders OWNER TO {gone};
             GRANT USAGE ON SCHEMA sales TO {CAROL};
             GRANT SELECT ON sales.orders TO {CAROL};
             ALTER DEFAULT PRIVILEGES FOR ROLE {gone} IN SCHEMA sales GRANT SELECT ON TABLES TO {CAROL};
             CREATE TABLE public.shared_data (id integer);
             ALTER TABLE public.shared_data OWNER TO {shared};
             INSERT INTO redshift_catalog.svv_datashares (share_name, share_id, share_owner, share_type)
             SELECT 'sales_share', 1, CAST(oid AS integer), 'OUTBOUND' FROM pg_roles
             WHERE rolname = '{SHARED}';"
        ),
    );
    let ws = reconciled(&target(&pg, "warehouse", "postgres"));
    let sql = plan(&ws, &[]);
    assert!(
        sql.contains(
            "--   * in database \"postgres\": datashare \"sales_share\": the user owns it"
        ),
        "{sql}"
    );
    assert!(
        sql.contains("\n-- DROP USER \"IAMA:shared@example.com\";"),
        "{sql}"
    );
    assert!(
        sql.contains("\nDROP USER \"IAMA:gone@example.com\";"),
        "{sql}"
    );
    for absent in [
        "SEQUENCE",
        "ALTER MATERIALIZED VIEW",
        "REVOKE ALL ON ALL FUNCTIONS",
    ] {
        assert!(!sql.contains(absent), "{absent} in\n{sql}");
    }

    apply(&pg, &ws, &sql);
    let roles = pg.sql(
        "postgres",
        &format!("SELECT rolname FROM pg_roles WHERE rolname IN ('{GONE}', '{SHARED}')"),
    );
    assert_eq!(roles.trim(), SHARED, "only the unblocked orphan is dropped");
    let mut owned = owners(&pg, "postgres");
    owned.retain(|o| !o.starts_with("redshift_catalog."));
    assert_eq!(
        owned,
        [
            "public.shared_data|IAMA:shared@example.com",
            "sales.orders|admin",
        ]
        .map(str::to_owned)
    );
    let carol = pg.sql(
        "postgres",
        &format!("SELECT has_table_privilege('{CAROL}', 'sales.orders', 'SELECT')"),
    );
    assert_eq!(carol.trim(), "t");
}

// Regression: a user that owned an object discovery does not hand over (a type) got a plan
// whose DROP USER failed, stopping psql half-way through the file.
#[test]
fn an_object_of_a_kind_the_plan_does_not_hand_over_blocks_its_owner_instead_of_the_plan() {
    let pg = Postgres::start();
    for user in ["admin", "idgraph_reader", ACTIVE, GONE, HOSTILE] {
        pg.create_user(user, false);
    }
    let (gone, hostile) = (quote_ident(GONE), quote_ident(HOSTILE));
    pg.sql(
        "postgres",
        &format!(
            "CREATE TYPE public.mood AS ENUM ('ok', 'sad');
             ALTER TYPE public.mood OWNER TO {hostile};
             CREATE TABLE public.orders (id integer);
             ALTER TABLE public.orders OWNER TO {gone};"
        ),
    );
    let ws = reconciled(&target(&pg, "warehouse", "postgres"));
    let sql = plan(&ws, &[]);
    assert!(
        sql.contains(
            "--   * in database \"postgres\": owns or holds privileges on 1 object(s) in pg_type"
        ),
        "{sql}"
    );
    apply(&pg, &ws, &sql);
    let left = pg.sql(
        "postgres",
        &format!(
            "SELECT rolname FROM pg_roles WHERE rolname IN ('{GONE}', '{}')",
            HOSTILE.replace('\'', "''")
        ),
    );
    assert_eq!(
        left.trim(),
        HOSTILE,
        "the owner of the type is left, the other dropped"
    );
}
