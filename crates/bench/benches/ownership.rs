//! `ownership::discover` for 20 users on a PostgreSQL catalog of 100,000 relations
//! (80,000 tables and 20,000 views in 50 schemas, 10,000 of them granted to one of 40
//! users, 1,000 owned by the 20 users looked at), in a throwaway instance of its own.
//!
//! `cargo bench -p idgraph-bench --bench ownership` (PostgreSQL's server binaries under
//! /usr/lib/postgresql, as for the integration tests). Not criterion: building the catalog
//! takes a minute or two, and one discovery seconds; it prints each run and the median.

// A bench may unwrap like a test; the test helpers it borrows are not all used here.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use idgraph_sources::ownership;

/// The integration tests' PostgreSQL instance, borrowed as is.
#[allow(dead_code)]
#[path = "../../../tests/peers/postgres.rs"]
mod postgres;

use postgres::Postgres;

/// A TCP port free on the loopback interface right now (what `postgres` expects of the
/// module above it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `IDGRAPH_BENCH_RELATIONS` (a multiple of 1,000) for a quicker try.
fn relations() -> u32 {
    std::env::var("IDGRAPH_BENCH_RELATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}
const SCHEMAS: u32 = 50;
/// Users that receive grants; the first [`WANTED`] of them are the ones looked at.
const USERS: u32 = 40;
const WANTED: u32 = 20;
const RUNS: usize = 5;

fn user(i: u32) -> String {
    format!("IAMA:user{i:02}@example.com")
}

/// Every fifth relation a view, every tenth granted to one of the users, every hundredth
/// owned by one of the wanted users; a commit every 1,000 relations keeps the lock table
/// small.
fn catalog_sql() -> String {
    format!(
        r#"
DO $$
BEGIN
  FOR u IN 0..{last_user} LOOP
    EXECUTE format('CREATE ROLE %I LOGIN', format('IAMA:user%s@example.com', lpad(u::text, 2, '0')));
  END LOOP;
  FOR s IN 0..{last_schema} LOOP
    EXECUTE format('CREATE SCHEMA %I', 'schema_' || s);
    FOR u IN 0..{last_user} LOOP
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', 'schema_' || s,
                     format('IAMA:user%s@example.com', lpad(u::text, 2, '0')));
    END LOOP;
  END LOOP;
END $$;

DO $$
DECLARE
  s text;
  r text;
BEGIN
  FOR i IN 0..{last_relation} LOOP
    s := 'schema_' || (i % {schemas});
    r := 'rel_' || i;
    IF i % 5 = 4 THEN
      EXECUTE format('CREATE VIEW %I.%I AS SELECT %s AS x', s, r, i);
    ELSE
      EXECUTE format('CREATE TABLE %I.%I (id integer, v text)', s, r);
    END IF;
    IF i % 10 = 0 THEN
      EXECUTE format('GRANT SELECT ON %I.%I TO %I', s, r,
                     format('IAMA:user%s@example.com', lpad(((i / 10) % {users})::text, 2, '0')));
    END IF;
    IF i % 100 = 1 THEN
      EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', s, r,
                     format('IAMA:user%s@example.com', lpad(((i / 100) % {wanted})::text, 2, '0')));
    END IF;
    IF i % 1000 = 999 THEN
      COMMIT;
    END IF;
  END LOOP;
END $$;

CREATE ROLE idgraph_reader LOGIN;
ANALYZE;
"#,
        last_user = USERS - 1,
        last_schema = SCHEMAS - 1,
        last_relation = relations() - 1,
        schemas = SCHEMAS,
        users = USERS,
        wanted = WANTED,
    )
}

/// The table-privilege query discovery ran before ACLs were parsed: every relation
/// crossed with every user, `has_table_privilege` five times a row. Timed once, as the
/// figure to compare with.
fn before_sql() -> String {
    let users = (0..WANTED)
        .map(|i| format!("'{}'", user(i)))
        .collect::<Vec<_>>()
        .join(", ");
    let any_privilege = ["SELECT", "INSERT", "UPDATE", "DELETE", "REFERENCES"]
        .map(|p| {
            format!(
                "has_table_privilege(u.usename, \
                 quote_ident(n.nspname) || '.' || quote_ident(c.relname), '{p}')"
            )
        })
        .join(" OR ");
    format!(
        "SELECT count(*) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN pg_catalog.pg_user u \
         WHERE u.usename IN ({users}) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
           AND c.relowner <> u.usesysid \
           AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
           AND CASE WHEN has_schema_privilege(n.nspname, 'USAGE') \
                    THEN ({any_privilege}) ELSE false END"
    )
}

fn main() {
    let pg = Postgres::start();
    let started = Instant::now();
    pg.sql("postgres", &catalog_sql());
    let count = pg.sql(
        "postgres",
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname LIKE 'schema\\_%' AND c.relkind IN ('r', 'v')",
    );
    println!(
        "catalog: {} relations, built in {:.1} s",
        count.trim(),
        started.elapsed().as_secs_f64()
    );

    let connection = pg.connection("postgres", "idgraph_reader");
    let users: Vec<String> = (0..WANTED).map(user).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut times = Vec::new();
    for run in 1..=RUNS {
        let started = Instant::now();
        let found = runtime
            .block_on(ownership::discover(
                "bench",
                &connection,
                &users,
                Duration::from_secs(600),
            ))
            .unwrap();
        let elapsed = started.elapsed();
        let owned: usize = found.values().map(|o| o.relations.len()).sum();
        let granted: usize = found.values().map(|o| o.table_privileges.len()).sum();
        assert_eq!(found.len(), WANTED as usize);
        assert_eq!(owned, (relations() / 100) as usize);
        assert_eq!(granted, (relations() / 10 * WANTED / USERS) as usize);
        println!(
            "run {run}: {:.3} s ({} users, {owned} owned relations, {granted} table grants)",
            elapsed.as_secs_f64(),
            found.len()
        );
        times.push(elapsed);
    }
    times.sort();
    let started = Instant::now();
    let before = pg.sql("postgres", &before_sql());
    println!(
        "before (users x relations, has_table_privilege): {:.3} s for the table privileges alone ({} rows)",
        started.elapsed().as_secs_f64(),
        before.trim()
    );
    println!(
        "ownership::discover, {} relations, {WANTED} users: median {:.3} s, min {:.3} s",
        count.trim(),
        times[RUNS / 2].as_secs_f64(),
        times[0].as_secs_f64()
    );
}
