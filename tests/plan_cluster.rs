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
    let target = |name: &str, database: &str| {
        format!(
            "[[targets]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\n\
             port = {}\ndatabase = \"{}\"\nuser_env = \"PG_USER\"\n\
             password_env = \"PG_PASSWORD\"\nsslmode = \"disable\"\nmaster_user = \"postgres\"\n\n",
            pg.port,
            database.replace('\\', "\\\\").replace('"', "\\\"")
        )
    };
    let config = format!(
        "{}{}[remediation]\nnew_owner = \"admin\"\n",
        target("warehouse", "postgres"),
        target("sales", SALES)
    );
    let org = Org::default().person("ann@example.com");
    let ws = Workspace::with_targets(&org, &config);
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

    let output = ws.idgraph_env(&["plan"], &env());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let sql = String::from_utf8(output.stdout).unwrap();
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
    let sales = ws.idgraph_env(&["plan", "--target", "sales"], &env());
    assert_eq!(String::from_utf8(sales.stdout).unwrap(), sql);

    let file = ws.path("plan.sql");
    std::fs::write(&file, &sql).unwrap();
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
