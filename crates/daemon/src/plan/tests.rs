//! The plan's text, from plans built by hand: no catalog, no store (but for `plan`'s own
//! checks of its configuration).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use idgraph_model::{Finding, FindingKind, Reason, Severity};
use idgraph_sources::ownership::{
    Function, FunctionKind, Owned, Relation, RelationKind, SchemaAccess,
};
use idgraph_store::Store;

use super::sql::safe_arguments;
use super::*;
use crate::config::Settings;

const HOSTILE: &str = "IAMA:o'brien\"; DROP TABLE canary; --@example.com";

fn finding(user: &str) -> Finding {
    Finding {
        kind: FindingKind::OrphanedDbUser,
        reason: Reason::IdpUserInactive,
        severity: Severity::Critical,
        target: Some("analytics".into()),
        db_user: Some(user.into()),
        ic_user_id: Some("ic-1".into()),
        idp_user_id: Some("idp-1".into()),
        user_name: Some("bob@example.com".into()),
        superuser: true,
        matched_by: None,
        candidates: Vec::new(),
        logins: None,
    }
}

fn orphan(user: &str) -> Orphan {
    Orphan {
        finding: finding(user),
        targets: vec!["analytics".into()],
        opened_run: 3,
        opened_at: DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    }
}

/// A database of the cluster, configured as target `analytics` when `configured`, where
/// discovery found `found` (and the new owner `admin`).
fn database(name: &str, configured: bool, found: Vec<(&str, Owned)>) -> DatabasePlan {
    let mut owned: BTreeMap<String, Owned> = found
        .into_iter()
        .map(|(user, owned)| (user.to_owned(), owned))
        .collect();
    owned.entry("admin".into()).or_default();
    DatabasePlan {
        name: name.into(),
        targets: match configured {
            true => vec!["analytics".into()],
            false => Vec::new(),
        },
        owned: Ok(owned),
    }
}

/// A cluster of `orphans` whose databases are `databases`.
fn cluster(orphans: Vec<Orphan>, databases: Vec<DatabasePlan>) -> ClusterPlan {
    ClusterPlan {
        name: "postgres db.example.com:5432".into(),
        endpoint: Some(("db.example.com".into(), 5432)),
        orphans,
        databases,
        unknown: Vec::new(),
        notes: Vec::new(),
        superusers: Vec::new(),
    }
}

/// The plan for bob on analytics, whose objects discovery found to be `owned` in its one
/// database, `dev`.
fn render_discovered(owned: Owned) -> String {
    let user = "IAMA:bob@example.com";
    render(
        &[cluster(
            vec![orphan(user)],
            vec![database("dev", true, vec![(user, owned)])],
        )],
        "admin",
    )
}

fn owned() -> Owned {
    Owned {
        relations: vec![
            Relation {
                schema: "public".into(),
                name: "orders".into(),
                kind: RelationKind::Table,
            },
            Relation {
                schema: "public".into(),
                name: "orders_view".into(),
                kind: RelationKind::View,
            },
            Relation {
                schema: "public".into(),
                name: "orders_id_seq".into(),
                kind: RelationKind::Sequence,
            },
        ],
        functions: vec![Function {
            schema: "public".into(),
            name: "f".into(),
            arguments: "integer, character varying".into(),
            kind: FunctionKind::Function,
            security_definer: false,
        }],
        schemas: vec!["s".into()],
        schema_privileges: vec![SchemaAccess {
            schema: "public".into(),
            usage: true,
            create: false,
            tables: true,
            has_functions: true,
            has_procedures: false,
            has_sequences: true,
        }],
        table_privileges: Vec::new(),
        database: "dev".into(),
        redshift: false,
        ..Owned::default()
    }
}

/// The SQL with every double-quoted identifier replaced by `"…"`: what is left is what
/// the server parses as keywords, punctuation and comments.
fn outside_quotes(sql: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut comment = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if comment {
            out.push(c);
            if c == '\n' {
                comment = false;
            }
        } else if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                } else {
                    quoted = false;
                    out.push_str("…\"");
                }
            }
        } else if c == '"' {
            quoted = true;
            out.push('"');
        } else {
            if c == '-' && chars.peek() == Some(&'-') {
                comment = true;
            }
            out.push(c);
        }
    }
    assert!(!quoted, "an identifier is never closed:\n{sql}");
    out
}

/// Every line outside identifiers is blank, a comment, or one statement of the forms a
/// plan uses, ending in `;`.
fn assert_well_formed(sql: &str) {
    for line in outside_quotes(sql).lines() {
        if line.is_empty() || line.starts_with("--") {
            continue;
        }
        if line.starts_with("\\connect -reuse-previous=on \"") {
            continue;
        }
        let statement = line.split("  --").next().unwrap_or(line);
        assert!(
            [
                "BEGIN;",
                "COMMIT;",
                "SET enable_case_sensitive_identifier TO true;",
                "ALTER ",
                "REVOKE ",
                "DROP USER "
            ]
            .iter()
            .any(|p| statement.starts_with(p)),
            "unexpected line {line:?} in\n{sql}"
        );
        assert!(statement.ends_with(';'), "{line:?}");
        assert_eq!(statement.matches(';').count(), 1, "{line:?}");
    }
}

#[test]
fn quote_ident_doubles_quotes() {
    assert_eq!(quote_ident("admin"), "\"admin\"");
    assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    assert_eq!(quote_ident(""), "\"\"");
}

#[test]
fn a_user_gets_one_transaction_per_database_then_one_drop() {
    let sql = render_discovered(owned());
    assert_well_formed(&sql);
    let expected = r#"
-- orphaned_db_user "IAMA:bob@example.com" on target analytics
-- reason: idp_user_inactive; severity: critical; open since run 3 (2026-11-26T10:00:00Z); IC user "ic-1"; IdP user "idp-1"
-- WARNING: Identity Center user "ic-1" still exists. Disable it (and the IdP user) first: while it can sign in, a dropped auto-created login comes back at its next sign-in.

\connect -reuse-previous=on "dbname='dev' host='db.example.com' port=5432"
-- Database "dev" (target analytics)
-- "IAMA:bob@example.com" in database "dev"
BEGIN;
ALTER TABLE "public"."orders" OWNER TO "admin";
ALTER TABLE "public"."orders_view" OWNER TO "admin";  -- view
ALTER SEQUENCE "public"."orders_id_seq" OWNER TO "admin";
ALTER FUNCTION "public"."f"(integer, character varying) OWNER TO "admin";
ALTER SCHEMA "s" OWNER TO "admin";
REVOKE ALL ON ALL TABLES IN SCHEMA "public" FROM "IAMA:bob@example.com";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA "public" FROM "IAMA:bob@example.com";
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA "public" FROM "IAMA:bob@example.com";
REVOKE ALL ON SCHEMA "public" FROM "IAMA:bob@example.com";
REVOKE ALL ON DATABASE "dev" FROM "IAMA:bob@example.com";
COMMIT;

-- Every database of the cluster is done: each user is dropped once.
DROP USER "IAMA:bob@example.com";
"#;
    assert!(sql.contains(expected), "{sql}");
    assert!(sql.contains("idgraph never executes this plan"), "{sql}");
    assert!(sql.contains("psql -X -v ON_ERROR_STOP=1"), "{sql}");
    assert!(sql.contains("\\connect"), "{sql}");
    assert!(sql.contains("What idgraph cannot do"), "{sql}");
    assert!(
        sql.contains(
            "-- Cluster postgres db.example.com:5432: 1 orphaned database user(s), 1 database(s)."
        ),
        "{sql}"
    );
    assert_eq!(sql.matches("BEGIN;").count(), 1);
}

#[test]
fn a_user_on_two_databases_is_handed_over_in_both_and_dropped_once() {
    let user = "IAMA:bob@example.com";
    let mut elsewhere = owned();
    elsewhere.database = "sales".into();
    let sql = render(
        &[cluster(
            vec![orphan(user)],
            vec![
                database("dev", true, vec![(user, owned())]),
                database("sales", false, vec![(user, elsewhere)]),
                database("empty", false, Vec::new()),
            ],
        )],
        "admin",
    );
    assert_well_formed(&sql);
    assert_eq!(sql.matches("BEGIN;").count(), 2, "{sql}");
    assert_eq!(sql.matches("\nDROP USER ").count(), 1, "{sql}");
    let dev = sql.find("dbname='dev'").expect("dev is entered");
    let sales = sql.find("dbname='sales'").expect("sales is entered");
    let drop = sql.find("\nDROP USER").expect("the user is dropped");
    assert!(dev < sales && sales < drop, "{sql}");
    assert!(
        sql.contains("--   database \"sales\" (not configured)"),
        "{sql}"
    );
    assert!(
        sql.contains("REVOKE ALL ON DATABASE \"sales\" FROM"),
        "{sql}"
    );
}

#[test]
fn a_database_that_could_not_be_read_blocks_every_drop_of_its_cluster() {
    let user = "IAMA:bob@example.com";
    let mut unread = database("sales", false, Vec::new());
    unread.owned = Err("database \"sales\" could not be read: permission denied".into());
    let sql = render(
        &[cluster(
            vec![orphan(user)],
            vec![database("dev", true, vec![(user, owned())]), unread],
        )],
        "admin",
    );
    assert_well_formed(&sql);
    assert!(sql.contains("-- BLOCKED: not dropped"), "{sql}");
    assert!(
        sql.contains("--   * database \"sales\" could not be read: permission denied"),
        "{sql}"
    );
    // Nothing runs: every statement of the user is a comment.
    for line in sql
        .lines()
        .filter(|l| !l.starts_with("--") && !l.is_empty())
    {
        assert!(line.starts_with("\\connect"), "{line:?} in\n{sql}");
    }
    assert!(
        sql.contains("-- DROP USER \"IAMA:bob@example.com\";"),
        "{sql}"
    );
    assert!(
        sql.contains("-- ALTER TABLE \"public\".\"orders\""),
        "{sql}"
    );
}

#[test]
fn a_missing_new_owner_blocks_and_a_superuser_one_is_named() {
    let user = "IAMA:bob@example.com";
    let mut plan = cluster(
        vec![orphan(user)],
        vec![database("dev", true, vec![(user, owned())])],
    );
    let sql = render(std::slice::from_ref(&plan), "nobody");
    assert!(
        sql.contains("--   * new_owner \"nobody\" does not exist on this cluster"),
        "{sql}"
    );
    plan.superusers = vec!["admin".into()];
    let sql = render(&[plan], "admin");
    assert!(!sql.contains("-- BLOCKED: not dropped"), "{sql}");
    assert!(
        sql.contains("-- WARNING: new_owner \"admin\" is a superuser on this cluster"),
        "{sql}"
    );
}

#[test]
fn database_names_reach_psql_as_one_quoted_connection_string() {
    assert_eq!(
        sql::connect("dev", "db.example.com", 5439).as_deref(),
        Some("\\connect -reuse-previous=on \"dbname='dev' host='db.example.com' port=5439\"")
    );
    // A quote and a backslash are escaped for libpq, a double quote doubled for psql; `=`
    // and spaces stay inside the quoted value.
    assert_eq!(
        sql::connect("a'b\\c \"d\"=e", "h", 1).as_deref(),
        Some(r#"\connect -reuse-previous=on "dbname='a\'b\\c ""d""=e' host='h' port=1""#)
    );
    assert_eq!(sql::connect("a\nb", "h", 1), None);
}

#[test]
fn hostile_names_stay_identifiers() {
    let mut owned = owned();
    owned.relations = vec![Relation {
        schema: "sch\"; DROP TABLE canary; --".into(),
        name: "t'\"x".into(),
        kind: RelationKind::Table,
    }];
    owned.functions = vec![Function {
        schema: "public".into(),
        name: "f\"(); DROP TABLE canary; --".into(),
        arguments: "\"my \"\"type\"\"\", integer[]".into(),
        kind: FunctionKind::Procedure,
        security_definer: true,
    }];
    owned.schemas = vec!["s\"\"; --".into()];
    let new_owner = "new \"owner\"";
    let mut db = database("dev", true, vec![(HOSTILE, owned)]);
    if let Ok(map) = &mut db.owned {
        map.insert(new_owner.into(), Owned::default());
    }
    let sql = render(&[cluster(vec![orphan(HOSTILE)], vec![db])], new_owner);
    assert_well_formed(&sql);
    assert!(
        sql.contains(
            "ALTER TABLE \"sch\"\"; DROP TABLE canary; --\".\"t'\"\"x\" OWNER TO \"new \"\"owner\"\"\";"
        ),
        "{sql}"
    );
    assert!(
        sql.contains("ALTER PROCEDURE \"public\".\"f\"\"(); DROP TABLE canary; --\"(\"my \"\"type\"\"\", integer[]) OWNER TO"),
        "{sql}"
    );
    assert!(
        sql.contains("DROP USER \"IAMA:o'brien\"\"; DROP TABLE canary; --@example.com\";"),
        "{sql}"
    );
    assert!(
        sql.contains("-- orphaned_db_user \"IAMA:o'brien\\\"; DROP TABLE canary; --@example.com\" on target analytics"),
        "{sql}"
    );
    assert!(!sql.lines().any(|l| l.starts_with("DROP TABLE")), "{sql}");
}

#[test]
fn unquotable_function_arguments_block_the_user() {
    assert!(safe_arguments("integer, character varying, \"a b\"[]"));
    assert!(safe_arguments(""));
    assert!(!safe_arguments("integer); DROP TABLE canary; --"));
    assert!(!safe_arguments("\"unclosed"));
    assert!(!safe_arguments("integer\n"));
    let mut owned = owned();
    owned.functions[0].arguments = "integer); DROP TABLE canary; --".into();
    let sql = render_discovered(owned);
    assert_well_formed(&sql);
    assert!(
        !sql.lines().any(|l| l.starts_with("ALTER FUNCTION")),
        "{sql}"
    );
    assert!(
        sql.contains("--   * function \"public\".\"f\" in database \"dev\" has argument types idgraph cannot quote safely"),
        "{sql}"
    );
    assert!(sql.contains("-- DROP USER"), "{sql}");
}

#[test]
fn names_with_line_breaks_cannot_leave_a_comment() {
    let user = "IAMA:evil\nDROP TABLE canary; --\r\u{202e}@example.com";
    let mut evil = orphan(user);
    evil.finding.ic_user_id = Some("ic\nDROP TABLE canary;".into());
    evil.targets = vec!["t\nDROP TABLE canary;".into()];
    let mut plan = cluster(
        vec![evil.clone()],
        vec![database("dev", true, vec![(user, owned())])],
    );
    let sql = render(std::slice::from_ref(&plan), "admin");
    assert_well_formed(&sql);
    assert!(
        sql.contains(
            "-- orphaned_db_user \"IAMA:evil\\nDROP TABLE canary; --\\r\\u{202e}@example.com\" on target t\\nDROP TABLE canary;"
        ),
        "{sql}"
    );
    assert!(sql.contains("IC user \"ic\\nDROP TABLE canary;\""), "{sql}");
    assert!(
        sql.contains("holds control or line-breaking characters"),
        "{sql}"
    );
    assert!(sql.contains("DROP USER \"IAMA:evil\nDROP TABLE canary; --\r\u{202e}@example.com\";"));

    // Blocked, every piece of the name stays inside a comment: psql ends a comment at a
    // line feed and at a carriage return alike.
    plan.unknown = vec!["line one\nDROP TABLE canary;".into()];
    let sql = render(&[plan], "admin");
    assert_well_formed(&sql);
    assert!(
        sql.contains("-- Not read: line one\\nDROP TABLE canary;"),
        "{sql}"
    );
    for line in sql.split(['\n', '\r']) {
        assert!(
            line.is_empty() || line.starts_with("--") || line.starts_with("\\connect"),
            "{line:?} escapes its comment in\n{sql}"
        );
    }
}

#[test]
fn without_a_catalog_nothing_is_dropped() {
    let mut plan = cluster(
        vec![
            orphan("IAMA:Grace.Hopper@Example.com"),
            orphan("IAMA:bob@example.com"),
        ],
        Vec::new(),
    );
    plan.name = "target analytics".into();
    plan.endpoint = None;
    plan.unknown = vec![
        "the catalog of target analytics could not be read: it is a file target: its export (/x/analytics.csv) lists users, not what they own"
            .into(),
    ];
    let sql = render(&[plan], "admin");
    assert_well_formed(&sql);
    let statements: Vec<&str> = sql.lines().filter(|l| !l.starts_with("--")).collect();
    assert!(
        statements.iter().all(|l| l.is_empty()),
        "only comments: {sql}"
    );
    assert!(
        sql.contains("-- DROP USER \"IAMA:bob@example.com\";"),
        "{sql}"
    );
    assert!(
        sql.contains(
            "-- Not read: the catalog of target analytics could not be read: it is a file target"
        ),
        "{sql}"
    );
    assert_eq!(sql.matches("-- Not read:").count(), 1, "{sql}");
    assert_eq!(sql.matches("-- BLOCKED").count(), 2, "{sql}");
    assert!(!sql.contains("enable_case_sensitive_identifier"), "{sql}");
}

#[test]
fn redshift_matches_case_exactly_and_gone_users_are_skipped() {
    let mut owned = owned();
    owned.redshift = true;
    let mut mixed = owned.clone();
    mixed.schemas = vec!["Sales".into()];
    let grace = "IAMA:Grace.Hopper@Example.com";
    let sql = render(
        &[cluster(
            vec![
                orphan(grace),
                orphan("IAMA:gone@example.com"),
                orphan("admin"),
            ],
            vec![database(
                "dev",
                true,
                vec![(grace, mixed), ("admin", owned.clone())],
            )],
        )],
        "admin",
    );
    assert_well_formed(&sql);
    assert!(
        sql.contains("BEGIN;\nSET enable_case_sensitive_identifier TO true;"),
        "{sql}"
    );
    assert!(
        !sql.contains("DROP USER \"IAMA:gone@example.com\""),
        "{sql}"
    );
    assert!(
        sql.contains("no database of the cluster holds this user anymore"),
        "{sql}"
    );
    assert!(!sql.contains("DROP USER \"admin\""), "{sql}");
    assert!(
        sql.contains("this user is [remediation] new_owner"),
        "{sql}"
    );
    // Lower-case object names on Redshift need no setting: quoted user names always
    // keep their case there.
    let sql = render_discovered(owned);
    assert!(
        !sql.contains("SET enable_case_sensitive_identifier"),
        "{sql}"
    );
}

#[test]
fn a_schema_whose_name_breaks_lines_is_revoked_as_one_identifier() {
    let mut owned = owned();
    owned.schema_privileges = vec![SchemaAccess {
        schema: "private\nschema".into(),
        ..SchemaAccess::default()
    }];
    let sql = render_discovered(owned);
    assert_well_formed(&sql);
    assert!(
        sql.contains(
            "REVOKE ALL ON ALL TABLES IN SCHEMA \"private\nschema\" FROM \"IAMA:bob@example.com\";"
        ),
        "{sql}"
    );
}

#[test]
fn an_empty_plan_says_so() {
    let sql = render(&[], "admin");
    assert!(sql.contains("nothing to do"), "{sql}");
    assert!(!sql.contains("BEGIN"), "{sql}");
}

async fn settings_and_store(remediation: &str) -> (tempfile::TempDir, Settings, Store) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("idgraph.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"idgraph.db\"\n\n\
             [idp]\nkind = \"file\"\npath = \"scim.json\"\n\n\
             [identity_center]\nkind = \"file\"\npath = \"ic.json\"\n\n\
             [[targets]]\nname = \"analytics\"\nkind = \"file\"\npath = \"analytics.csv\"\n\n\
             {remediation}\n"
        ),
    )
    .unwrap();
    let settings = crate::config::load_with_env(&config, Some(config::Map::new())).unwrap();
    let store = Store::open(&settings.store_path).await.unwrap();
    (dir, settings, store)
}

#[tokio::test]
async fn a_plan_needs_new_owner() {
    let (_dir, settings, store) = settings_and_store("").await;
    let error = plan(&settings, &store, None).await.unwrap_err().to_string();
    assert!(
        error.contains("[remediation] new_owner is not set"),
        "{error}"
    );
    let (_dir, settings, store) = settings_and_store("[remediation]\nnew_owner = \"admin\"").await;
    let sql = plan(&settings, &store, None).await.unwrap().sql();
    assert!(sql.contains("nothing to do"), "{sql}");
    let error = plan(&settings, &store, Some("nope"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no target named \"nope\""), "{error}");
    assert!(error.contains("analytics"), "{error}");
}

#[test]
fn security_definer_routines_are_named_before_they_change_owner() {
    let mut owned = owned();
    owned.functions[0].security_definer = true;
    let sql = render_discovered(owned.clone());
    let warning = sql
        .lines()
        .position(|l| {
            l.starts_with(
                "-- WARNING: \"public\".\"f\"(integer, character varying) is SECURITY DEFINER",
            )
        })
        .expect("a warning names the routine");
    let transfer = sql
        .lines()
        .position(|l| l.starts_with("ALTER FUNCTION"))
        .expect("the routine is handed over");
    assert!(warning < transfer, "{sql}");

    owned.functions[0].security_definer = false;
    let sql = render_discovered(owned);
    assert!(!sql.contains("SECURITY DEFINER:"), "{sql}");
}

#[test]
fn a_user_whose_identity_center_user_exists_is_told_to_disable_it_first() {
    let user = "IAMA:gone@example.com";
    let mut gone = orphan(user);
    gone.finding.ic_user_id = Some("ic-gone".into());
    let plan = |orphan: Orphan| {
        render(
            &[cluster(
                vec![orphan],
                vec![database("dev", true, vec![(user, owned())])],
            )],
            "admin",
        )
    };
    let sql = plan(gone.clone());
    assert!(
        sql.contains("-- WARNING: Identity Center user \"ic-gone\" still exists. Disable it"),
        "{sql}"
    );
    gone.finding.ic_user_id = None;
    let sql = plan(gone);
    assert!(!sql.contains("Identity Center user \""), "{sql}");
}

#[test]
fn redshift_roles_and_databases_are_handed_over_and_revoked_in_its_dialect() {
    let user = "IAMA:bob@example.com";
    let mut found = owned();
    found.redshift = true;
    found.relations.retain(|r| r.kind != RelationKind::Sequence);
    found.schema_privileges[0].has_sequences = false;
    found.roles = vec!["analysts".into()];
    found.owned_roles = vec!["bob_role".into()];
    found.databases = vec!["scratch".into()];
    found.database_privileges = vec!["dev".into()];
    let sql = render(
        &[cluster(
            vec![orphan(user)],
            vec![database("dev", true, vec![(user, found)])],
        )],
        "admin",
    );
    assert_well_formed(&sql);
    let last = r#"
BEGIN;
ALTER DATABASE "scratch" OWNER TO "admin";
REVOKE ALL ON DATABASE "dev" FROM "IAMA:bob@example.com";
ALTER ROLE "bob_role" OWNER TO "admin";
REVOKE ROLE "analysts" FROM "IAMA:bob@example.com";
DROP USER "IAMA:bob@example.com";
COMMIT;
"#;
    assert!(sql.contains(last), "{sql}");
    // What Redshift lacks is never written.
    for absent in [
        "SEQUENCE",
        "ALTER MATERIALIZED VIEW",
        "REVOKE ALL ON ALL FUNCTIONS",
    ] {
        assert!(!sql.contains(absent), "{absent} in\n{sql}");
    }
}

#[test]
fn a_blocker_comments_out_every_statement_of_its_user_with_the_reason() {
    use idgraph_sources::ownership::{Blocker, BlockerKind};
    let user = "IAMA:bob@example.com";
    let mut found = owned();
    found.redshift = true;
    found.blockers = vec![Blocker {
        kind: BlockerKind::Datashare,
        object: "\"sales_share\"".into(),
        sentence: "owns datashare \"sales_share\": hand it over in the console or drop it".into(),
    }];
    let sql = render(
        &[cluster(
            vec![orphan(user)],
            vec![database("dev", true, vec![(user, found)])],
        )],
        "admin",
    );
    assert_well_formed(&sql);
    assert!(
        sql.contains("--   * in database \"dev\": owns datashare \"sales_share\""),
        "{sql}"
    );
    for line in sql.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with("--") || line.starts_with("\\connect"),
            "{line:?} runs in\n{sql}"
        );
    }
    assert!(
        sql.contains("-- DROP USER \"IAMA:bob@example.com\";"),
        "{sql}"
    );
}

#[test]
fn default_privileges_are_revoked_both_ways_and_the_built_in_ones_restored() {
    use idgraph_sources::ownership::{DefaultAcl, DefaultAclObject, Grantee};
    let user = "IAMA:bob@example.com";
    let acl = |owner: &str, schema: Option<&str>, object, grantee| DefaultAcl {
        owner: owner.into(),
        schema: schema.map(Into::into),
        object,
        grantee,
        privileges: "r".into(),
        grantable: String::new(),
    };
    let mut found = owned();
    found.default_acls = vec![
        acl(
            user,
            None,
            DefaultAclObject::Functions,
            Grantee::User(user.into()),
        ),
        acl(
            user,
            None,
            DefaultAclObject::Functions,
            Grantee::Group("etl".into()),
        ),
        acl(
            user,
            Some("s\"x"),
            DefaultAclObject::Tables,
            Grantee::Public,
        ),
        acl(
            "admin",
            None,
            DefaultAclObject::Tables,
            Grantee::User(user.into()),
        ),
    ];
    let sql = render_discovered(found);
    assert_well_formed(&sql);
    for statement in [
        "ALTER DEFAULT PRIVILEGES FOR USER \"IAMA:bob@example.com\" REVOKE ALL ON FUNCTIONS FROM GROUP \"etl\";",
        "ALTER DEFAULT PRIVILEGES FOR USER \"IAMA:bob@example.com\" IN SCHEMA \"s\"\"x\" REVOKE ALL ON TABLES FROM PUBLIC;",
        "ALTER DEFAULT PRIVILEGES FOR USER \"admin\" REVOKE ALL ON TABLES FROM \"IAMA:bob@example.com\";",
        "ALTER DEFAULT PRIVILEGES FOR USER \"IAMA:bob@example.com\" GRANT ALL ON FUNCTIONS TO \"IAMA:bob@example.com\";",
        "ALTER DEFAULT PRIVILEGES FOR USER \"IAMA:bob@example.com\" GRANT EXECUTE ON FUNCTIONS TO PUBLIC;",
    ] {
        assert!(sql.contains(statement), "missing {statement} in\n{sql}");
    }
    // The admin's default is only taken away from bob, not restored or revoked from others.
    assert_eq!(sql.matches("FOR USER \"admin\"").count(), 1, "{sql}");
}
