//! `ownership::discover` against a real PostgreSQL, plain and dressed as Redshift (the
//! catalog fixture of `peers/redshift_catalog.sql`): every kind of thing that keeps
//! `DROP USER` from succeeding is found, for a user with hostile names in every
//! identifier; other users' grants on the same objects are nobody's business here, and
//! system schemas are ignored.

use std::time::Duration;

use idgraph_sources::ownership::{
    self, BlockerKind, ColumnGrant, DefaultAcl, DefaultAclObject, Function, FunctionKind, Grantee,
    Owned, Relation, RelationKind, SchemaAccess,
};

use crate::peers::postgres::{quote_ident, Postgres};

/// Every identifier below tries to break out of quotes, lists and ACL items.
const USER: &str = "IAMA:Zoë o'b,r=i/e\"n; --@ex.com";
const OTHER: &str = "other,=/\" user";
const ROLE: &str = "grp \"role\", =/";
const SCHEMA: &str = "sch,e=m/a \"x\"; ü";
const TABLE: &str = "t,a=b/l \"e\"; ü";
const COLUMN: &str = "c,o=l/ \"x\"";
const FUNCTION: &str = "f,u=n/\"c\"";
const DATABASE: &str = "d,b=/\" ü";

/// The longest name PostgreSQL keeps (63 bytes), in two-byte letters.
fn long_name() -> String {
    "é".repeat(31) + "x"
}

/// An SQL string literal.
fn lit(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Users, objects and grants: `USER` owns, holds and granted one of each kind; `OTHER`
/// holds grants on the same objects.
fn seed(pg: &Postgres) {
    let [user, other, role, schema, table, column, function, database, long] = [
        USER,
        OTHER,
        ROLE,
        SCHEMA,
        TABLE,
        COLUMN,
        FUNCTION,
        DATABASE,
        &long_name(),
    ]
    .map(quote_ident);
    pg.sql(
        "postgres",
        &format!(
            r#"
CREATE ROLE admin LOGIN;
CREATE ROLE idgraph_reader LOGIN;
CREATE ROLE {user} LOGIN;
CREATE ROLE {other} LOGIN;
CREATE ROLE {role} NOLOGIN;

-- What the user owns; the other user may read its table.
CREATE SCHEMA {schema} AUTHORIZATION {user};
GRANT USAGE ON SCHEMA {schema} TO {other};
CREATE TABLE {schema}.{table} ({column} integer, d integer);
ALTER TABLE {schema}.{table} OWNER TO {user};
GRANT SELECT ON {schema}.{table} TO {other};
CREATE TABLE {schema}.{long} (id integer);
ALTER TABLE {schema}.{long} OWNER TO {user};
CREATE VIEW {schema}.v AS SELECT 1 AS x;
ALTER VIEW {schema}.v OWNER TO {user};
-- A Redshift materialized view is a view with a table behind it.
CREATE VIEW {schema}.mv AS SELECT 1 AS x;
ALTER VIEW {schema}.mv OWNER TO {user};
CREATE TABLE {schema}.mv_tbl__mv__0 (x integer);
ALTER TABLE {schema}.mv_tbl__mv__0 OWNER TO {user};
-- One that svv_mv_info does not show the login: its table gives it away.
CREATE VIEW {schema}.hidden AS SELECT 1 AS x;
ALTER VIEW {schema}.hidden OWNER TO {user};
CREATE TABLE {schema}.mv_tbl__hidden__0 (x integer);
ALTER TABLE {schema}.mv_tbl__hidden__0 OWNER TO {user};
CREATE FUNCTION {schema}.{function}(integer) RETURNS integer LANGUAGE sql SECURITY DEFINER
    AS 'SELECT $1';
ALTER FUNCTION {schema}.{function}(integer) OWNER TO {user};
CREATE DATABASE {database} OWNER {user};

-- What the user holds of others', beside the other user.
CREATE SCHEMA shared AUTHORIZATION admin;
GRANT USAGE, CREATE ON SCHEMA shared TO {user};
GRANT USAGE ON SCHEMA shared TO {other};
CREATE TABLE shared.{table} ({column} integer, d integer);
ALTER TABLE shared.{table} OWNER TO admin;
GRANT SELECT ON shared.{table} TO {user} WITH GRANT OPTION;
GRANT UPDATE ({column}) ON shared.{table} TO {user};
GRANT SELECT (d) ON shared.{table} TO {other};
CREATE SEQUENCE shared.seq;
ALTER SEQUENCE shared.seq OWNER TO admin;
GRANT USAGE ON SEQUENCE shared.seq TO {user};
CREATE FUNCTION shared.{function}(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1';
ALTER FUNCTION shared.{function}(integer) OWNER TO admin;
REVOKE EXECUTE ON FUNCTION shared.{function}(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shared.{function}(integer) TO {user}, {other};
CREATE PROCEDURE shared.p() LANGUAGE sql AS 'SELECT 1';
ALTER PROCEDURE shared.p() OWNER TO admin;
GRANT EXECUTE ON PROCEDURE shared.p() TO {user};
GRANT USAGE ON LANGUAGE sql TO {user};
GRANT CREATE ON DATABASE postgres TO {user};
GRANT {role} TO {user};
GRANT {role} TO {other};

-- A grant the user made through its grant option.
SET ROLE {user};
GRANT SELECT ON shared.{table} TO {other};
RESET ROLE;

-- Default privileges both ways, and some that do not concern the user.
ALTER DEFAULT PRIVILEGES FOR ROLE {user} IN SCHEMA {schema} GRANT SELECT ON TABLES TO {other};
ALTER DEFAULT PRIVILEGES FOR ROLE {user} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE admin IN SCHEMA shared GRANT INSERT ON TABLES TO {user};
ALTER DEFAULT PRIVILEGES FOR ROLE {other} GRANT SELECT ON TABLES TO admin;

-- System schemas are ignored.
GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO {user};
"#
        ),
    );
}

/// The Redshift-only objects, in the fixture's tables.
fn seed_redshift(pg: &Postgres) {
    let [user, other, schema] = [USER, OTHER, SCHEMA].map(lit);
    let id = |name: &str| format!("(SELECT usesysid FROM pg_user WHERE usename = {name})");
    let (user_id, other_id) = (id(&user), id(&other));
    pg.sql(
        "postgres",
        &format!(
            r#"
INSERT INTO redshift_catalog.svv_roles VALUES (900, 'owned,"role"', {user}, NULL),
    (901, 'not owned', {other}, NULL);
INSERT INTO redshift_catalog.svv_datashares (share_name, share_id, share_owner, share_type)
VALUES ('share,"1"', 1, {user_id}, 'OUTBOUND'), ('inbound', 2, {user_id}, 'INBOUND'),
    ('others', 3, {other_id}, 'OUTBOUND');
INSERT INTO redshift_catalog.pg_library VALUES ('lib"x', 0, 0, {user_id}),
    ('otherlib', 0, 0, {other_id});
INSERT INTO redshift_catalog.svv_ml_model_info (database_name, schema_name, user_name, model_name)
VALUES ('postgres', {schema}, {user}, 'model'), ('postgres', {schema}, {other}, 'theirs'),
    ('elsewhere', {schema}, {user}, 'far');
INSERT INTO redshift_catalog.svv_mv_info (database_name, schema_name, user_name, name)
VALUES ('postgres', {schema}, {user}, 'mv'), ('elsewhere', {schema}, {user}, 'v');
"#
        ),
    );
}

/// What discovery finds for `USER` (and a user the catalog does not hold), read as
/// idgraph's own unprivileged login.
fn discover(pg: &Postgres) -> Owned {
    let connection = pg.connection("postgres", "idgraph_reader");
    let users = [USER, "IAMA:nobody@example.com"].map(str::to_owned);
    let mut found = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ownership::discover(
            "warehouse",
            &connection,
            &users,
            Duration::from_secs(30),
        ))
        .expect("discovery reads the catalog");
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        vec![USER],
        "only the wanted users the catalog holds"
    );
    found.remove(USER).unwrap()
}

fn relation(schema: &str, name: &str, kind: RelationKind) -> Relation {
    Relation {
        schema: schema.into(),
        name: name.into(),
        kind,
    }
}

fn function(schema: &str, name: &str, arguments: &str, kind: FunctionKind) -> Function {
    Function {
        schema: schema.into(),
        name: name.into(),
        arguments: arguments.into(),
        kind,
        security_definer: false,
    }
}

fn default_acl(owner: &str, schema: Option<&str>, object: DefaultAclObject) -> DefaultAcl {
    DefaultAcl {
        owner: owner.into(),
        schema: schema.map(str::to_owned),
        object,
        grantee: Grantee::Public,
        privileges: String::new(),
        grantable: String::new(),
    }
}

/// What both catalogs say alike, blockers aside.
fn expected(redshift: bool) -> Owned {
    let mut relations = vec![
        relation(SCHEMA, TABLE, RelationKind::Table),
        relation(SCHEMA, &long_name(), RelationKind::Table),
        relation(SCHEMA, "v", RelationKind::View),
    ];
    if !redshift {
        // Plain views and tables on PostgreSQL.
        for name in ["mv", "hidden"] {
            relations.push(relation(SCHEMA, name, RelationKind::View));
            relations.push(relation(
                SCHEMA,
                &format!("mv_tbl__{name}__0"),
                RelationKind::Table,
            ));
        }
    }
    relations.sort();
    let mut default_acls = vec![
        DefaultAcl {
            grantee: Grantee::User(OTHER.into()),
            privileges: "r".into(),
            ..default_acl(USER, Some(SCHEMA), DefaultAclObject::Tables)
        },
        DefaultAcl {
            grantee: Grantee::User(USER.into()),
            privileges: "X".into(),
            ..default_acl(USER, None, DefaultAclObject::Functions)
        },
        DefaultAcl {
            grantee: Grantee::User(USER.into()),
            privileges: "a".into(),
            ..default_acl("admin", Some("shared"), DefaultAclObject::Tables)
        },
    ];
    default_acls.sort();
    Owned {
        relations,
        functions: vec![Function {
            security_definer: true,
            ..function(SCHEMA, FUNCTION, "integer", FunctionKind::Function)
        }],
        schemas: vec![SCHEMA.into()],
        schema_privileges: vec![SchemaAccess {
            schema: "shared".into(),
            usage: true,
            create: true,
            tables: true,
            has_functions: true,
            has_procedures: true,
            has_sequences: true,
        }],
        table_privileges: vec![relation("shared", TABLE, RelationKind::Table)],
        column_privileges: vec![ColumnGrant {
            schema: "shared".into(),
            table: TABLE.into(),
            columns: vec![COLUMN.into()],
        }],
        function_privileges: vec![
            function("shared", FUNCTION, "integer", FunctionKind::Function),
            function("shared", "p", "", FunctionKind::Procedure),
        ],
        language_privileges: vec!["sql".into()],
        databases: vec![DATABASE.into()],
        database_privileges: vec!["postgres".into()],
        default_acls,
        roles: vec![ROLE.into()],
        owned_roles: if redshift {
            vec!["owned,\"role\"".into()]
        } else {
            Vec::new()
        },
        blockers: Vec::new(),
        database: "postgres".into(),
        redshift,
    }
}

/// The blockers' kinds and objects; their sentences name the object too.
fn blockers(owned: &mut Owned) -> Vec<(BlockerKind, String)> {
    for blocker in &owned.blockers {
        assert!(blocker.sentence.starts_with(&blocker.object), "{blocker:?}");
    }
    std::mem::take(&mut owned.blockers)
        .into_iter()
        .map(|b| (b.kind, b.object))
        .collect()
}

fn grant_option_blocker() -> (BlockerKind, String) {
    (
        BlockerKind::GrantOption,
        format!("table \"shared\".{}", quote_ident(TABLE)),
    )
}

#[test]
fn discovery_on_postgres_finds_every_kind_of_blocker() {
    let pg = Postgres::start();
    seed(&pg);
    let mut owned = discover(&pg);
    assert_eq!(blockers(&mut owned), vec![grant_option_blocker()]);
    assert_eq!(owned, expected(false));
}

#[test]
fn discovery_on_the_redshift_fixture_finds_every_kind_of_blocker() {
    let pg = Postgres::start();
    seed(&pg);
    pg.redshift_catalog("postgres", "idgraph_reader");
    seed_redshift(&pg);
    let mut owned = discover(&pg);
    let schema = quote_ident(SCHEMA);
    let mut expected_blockers = vec![
        (
            BlockerKind::Datashare,
            "datashare \"share,\"\"1\"\"\"".to_owned(),
        ),
        (BlockerKind::Library, "library \"lib\"\"x\"".to_owned()),
        (BlockerKind::Model, format!("model {schema}.\"model\"")),
        (
            BlockerKind::MaterializedView,
            format!("materialized view {schema}.\"mv\""),
        ),
        (
            BlockerKind::MaterializedView,
            format!("materialized view {schema}.\"hidden\""),
        ),
        grant_option_blocker(),
    ];
    expected_blockers.sort();
    assert_eq!(blockers(&mut owned), expected_blockers);
    assert_eq!(owned, expected(true));
}
