//! What database users own and where they hold privileges, read from the catalog: what a
//! remediation plan must hand over and revoke before `DROP USER`, which fails while the
//! user owns an object or holds a privilege. Redshift has no `REASSIGN OWNED` or
//! `DROP OWNED`, so every object has to be named.
//!
//! Discovery only reads: one `READ ONLY` transaction of `SELECT`s, which the server itself
//! refuses to let write. The queries run unchanged on Redshift and PostgreSQL 15 (the rules
//! of [`crate::postgres`]: names cast to `varchar`, ids to `integer`, no `int8` binds, in
//! fact no binds at all: the only values spliced into the SQL are user ids the catalog
//! itself returned, formatted as integers). Where the two catalogs differ — how a procedure
//! is told from a function — discovery asks the catalog which form it has before it
//! queries, because a failed query would abort the transaction and Redshift has no
//! savepoints.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Connection as _, Executor as _, Row};
use tracing::debug;

use crate::postgres::{connect, describe, Connection};
use crate::SourceError;

/// Schemas that belong to the system, never to a user: everything named `pg_…` (the
/// catalog, TOAST, temporary schemas, Redshift's `pg_internal`, `pg_automv`, …) and the
/// information schema. Both systems reserve the `pg_` prefix.
const USER_SCHEMA: &str = "SUBSTRING(CAST(n.nspname AS varchar), 1, 3) <> 'pg_' \
     AND CAST(n.nspname AS varchar) NOT IN ('information_schema', 'catalog_history')";

/// The relation kinds a user can own and `ALTER … OWNER TO` can hand over: tables, views
/// and (PostgreSQL only) partitioned tables, materialized views, foreign tables and
/// sequences. Redshift's catalog simply has no rows of the kinds it lacks.
const OWNED_RELKINDS: &str = "'r', 'p', 'v', 'm', 'f', 'S'";

/// The relation kinds `REVOKE … ON ALL TABLES IN SCHEMA` covers.
const TABLE_RELKINDS: &str = "'r', 'p', 'v', 'm', 'f'";

/// The columns [`Reader::relation`] reads, for a user `u` the query joins in: who, and
/// which relation (`c`) in which schema (`n`).
const USER_RELATIONS: &str = "SELECT CAST(u.usesysid AS integer) AS usesysid, \
            CAST(n.nspname AS varchar) AS schema_name, \
            CAST(c.relname AS varchar) AS name, \
            CAST(c.relkind AS varchar) AS kind \
     FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace";

/// The table privileges both systems know; any one of them is an ACL entry that keeps
/// `DROP USER` from succeeding.
const TABLE_PRIVILEGES: [&str; 5] = ["SELECT", "INSERT", "UPDATE", "DELETE", "REFERENCES"];

/// What one database user owns and where it holds privileges, in one database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// Tables, views, materialized views, foreign tables and sequences the user owns,
    /// sorted by schema and name.
    pub relations: Vec<Relation>,
    /// Functions, procedures and aggregates the user owns, sorted by schema, name and
    /// arguments.
    pub functions: Vec<Function>,
    /// Schemas the user owns, sorted.
    pub schemas: Vec<String>,
    /// Schemas where the user holds a privilege on the schema itself or on a table in it,
    /// or whose table privileges idgraph's login could not check, sorted by name. System
    /// schemas are never listed.
    pub schema_privileges: Vec<SchemaAccess>,
    /// Tables and views the user does not own but holds a table privilege on (`SELECT`,
    /// `INSERT`, `UPDATE`, `DELETE` or `REFERENCES`, directly or through `PUBLIC` or a
    /// group: the catalog functions do not tell them apart), sorted by schema and name.
    pub table_privileges: Vec<Relation>,
    /// The database all of this was read from (`current_database()`): a cluster holds
    /// others, which this says nothing about.
    pub database: String,
    /// Whether the catalog is Redshift's (`version()` names it): Redshift folds quoted
    /// identifiers to lower case unless `enable_case_sensitive_identifier` is on.
    pub redshift: bool,
}

/// A relation in a schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Relation {
    /// The schema, exactly as the catalog holds it.
    pub schema: String,
    /// The relation's name, exactly as the catalog holds it.
    pub name: String,
    /// What kind of relation it is.
    pub kind: RelationKind,
}

/// The kinds of relation a plan hands over (`pg_class.relkind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelationKind {
    /// `r`: an ordinary table.
    Table,
    /// `p`: a partitioned table (PostgreSQL).
    PartitionedTable,
    /// `f`: a foreign table (PostgreSQL).
    ForeignTable,
    /// `v`: a view (on Redshift, materialized views and late-binding views too).
    View,
    /// `m`: a materialized view (PostgreSQL).
    MaterializedView,
    /// `S`: a sequence (PostgreSQL).
    Sequence,
}

impl RelationKind {
    /// The kind of a `pg_class.relkind`, if a plan deals with it.
    pub fn from_relkind(relkind: &str) -> Option<Self> {
        match relkind {
            "r" => Some(Self::Table),
            "p" => Some(Self::PartitionedTable),
            "f" => Some(Self::ForeignTable),
            "v" => Some(Self::View),
            "m" => Some(Self::MaterializedView),
            "S" => Some(Self::Sequence),
            _ => None,
        }
    }

    /// A readable name: `table`, `view`, `materialized view`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::PartitionedTable => "partitioned table",
            Self::ForeignTable => "foreign table",
            Self::View => "view",
            Self::MaterializedView => "materialized view",
            Self::Sequence => "sequence",
        }
    }
}

/// A function, procedure or aggregate in a schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Function {
    /// The schema, exactly as the catalog holds it.
    pub schema: String,
    /// The function's name, exactly as the catalog holds it.
    pub name: String,
    /// The argument types as the server formats them
    /// (`pg_catalog.oidvectortypes(proargtypes)`: `integer, character varying`), which is
    /// how `ALTER FUNCTION` identifies an overload. Type names that need quoting come back
    /// quoted.
    pub arguments: String,
    /// Function, procedure or aggregate: each has its own `ALTER` statement.
    pub kind: FunctionKind,
    /// `SECURITY DEFINER` (`prosecdef`): the routine runs with its owner's privileges, so
    /// handing it to another owner changes what it may do for everyone who may call it.
    pub security_definer: bool,
}

/// The kinds of routine a plan hands over (`prokind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FunctionKind {
    /// `f` (and PostgreSQL's window functions, `w`): `ALTER FUNCTION`.
    Function,
    /// `p`: `ALTER PROCEDURE`.
    Procedure,
    /// `a`: `ALTER AGGREGATE`.
    Aggregate,
}

impl FunctionKind {
    fn from_prokind(prokind: &str) -> Self {
        match prokind {
            "p" => Self::Procedure,
            "a" => Self::Aggregate,
            _ => Self::Function,
        }
    }

    /// A readable name: `function`, `procedure`, `aggregate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Function => "function",
            Self::Procedure => "procedure",
            Self::Aggregate => "aggregate",
        }
    }
}

/// A schema where a user holds privileges, and what in it a revocation must cover.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaAccess {
    /// The schema, exactly as the catalog holds it.
    pub schema: String,
    /// The user holds `USAGE` on the schema.
    pub usage: bool,
    /// The user holds `CREATE` on the schema.
    pub create: bool,
    /// The user holds a privilege on a table or view in the schema that it does not own.
    pub tables: bool,
    /// The schema holds functions or aggregates (whose `EXECUTE` may be granted).
    pub has_functions: bool,
    /// The schema holds procedures.
    pub has_procedures: bool,
    /// The schema holds sequences (PostgreSQL; `REVOKE … ON ALL TABLES` skips them).
    pub has_sequences: bool,
    /// idgraph's login may not use the schema, so the user's privileges on its tables
    /// could not be checked: a plan revokes them regardless.
    pub unchecked: bool,
}

/// How this catalog tells procedures and aggregates from functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routines {
    /// PostgreSQL 11 and later: `pg_proc.prokind`.
    ProKind,
    /// Redshift: `pg_proc_info.prokind`; `pg_proc` has no such column.
    ProcInfo,
    /// Neither: every routine is taken for a function.
    PlainProc,
}

impl Routines {
    /// `FROM` clause item (aliased `p`) and the expression of the kind.
    fn source(self) -> (&'static str, &'static str) {
        match self {
            Self::ProKind => ("pg_catalog.pg_proc p", "CAST(p.prokind AS varchar)"),
            // Unqualified: the view is Redshift's own, wherever it keeps it.
            Self::ProcInfo => ("pg_proc_info p", "CAST(p.prokind AS varchar)"),
            Self::PlainProc => ("pg_catalog.pg_proc p", "CAST('f' AS varchar)"),
        }
    }
}

/// For each of `users` that the catalog holds, what it owns and where it holds privileges
/// in the database `connection` names. Users the catalog does not hold (anymore) are
/// absent from the map. `origin` names the target in errors; `timeout` bounds connecting
/// and each query.
///
/// Reads only: a `READ ONLY` transaction of `SELECT`s on `pg_class`, `pg_namespace`,
/// `pg_proc` (`pg_proc_info` on Redshift) and `pg_user`, and the `has_*_privilege`
/// functions; the login needs no more than what every user may read.
///
/// # Errors
///
/// [`SourceError::Unreachable`] when the server cannot be reached in `timeout` or a query
/// does not answer in time; [`SourceError::Credentials`] when it refuses the login;
/// [`SourceError::Remote`] when a query fails; [`SourceError::InvalidResponse`] when a row
/// does not decode.
pub async fn discover(
    origin: &str,
    connection: &Connection,
    users: &[String],
    timeout: Duration,
) -> Result<BTreeMap<String, Owned>, SourceError> {
    let origin = format!("target {origin} ({connection})");
    let mut conn = connect(&origin, connection, timeout).await?;
    let result = Reader {
        origin: &origin,
        conn: &mut conn,
        timeout,
    }
    .discover(users)
    .await;
    // Nothing was written; closing ends the read-only transaction. A failure to say
    // goodbye politely changes nothing.
    let _ = conn.close().await;
    result
}

/// The users discovery looks at, by the ids the catalog gave them.
struct UserIds {
    names: BTreeMap<i32, String>,
    /// The ids as an SQL list, e.g. `100, 101`.
    sql_list: String,
}

impl UserIds {
    /// The name of the user with `id`, if it is one of those looked at.
    fn name(&self, id: i32) -> Option<String> {
        self.names.get(&id).cloned()
    }
}

/// One connection's worth of discovery.
struct Reader<'a> {
    origin: &'a str,
    conn: &'a mut PgConnection,
    timeout: Duration,
}

impl Reader<'_> {
    async fn discover(&mut self, users: &[String]) -> Result<BTreeMap<String, Owned>, SourceError> {
        let redshift = self.begin().await?;
        let database: String = self
            .scalar(
                "current_database",
                "SELECT CAST(current_database() AS varchar)",
            )
            .await?;
        let ids = self.user_ids(users).await?;
        let mut owned: BTreeMap<String, Owned> = ids
            .names
            .values()
            .map(|name| {
                (
                    name.clone(),
                    Owned {
                        database: database.clone(),
                        redshift,
                        ..Owned::default()
                    },
                )
            })
            .collect();
        if ids.names.is_empty() {
            return Ok(owned);
        }
        let routines = self.routines().await?;

        for (user, relation) in self.owned_relations(&ids).await? {
            push(&mut owned, &user, |o| o.relations.push(relation));
        }
        for (user, function) in self.owned_functions(&ids, routines).await? {
            push(&mut owned, &user, |o| o.functions.push(function));
        }
        for (user, schema) in self.owned_schemas(&ids).await? {
            push(&mut owned, &user, |o| o.schemas.push(schema));
        }

        let mut access = self.schema_privileges(&ids).await?;
        for (user, relation) in self.table_privileges(&ids).await? {
            let entry = access
                .entry((user.clone(), relation.schema.clone()))
                .or_insert_with(|| SchemaAccess {
                    schema: relation.schema.clone(),
                    ..SchemaAccess::default()
                });
            entry.tables = true;
            push(&mut owned, &user, |o| o.table_privileges.push(relation));
        }
        // Schemas whose table privileges could not be checked: every user is taken to
        // hold some there, since revoking what was never granted is harmless and a
        // privilege left behind makes DROP USER fail.
        let unchecked = self.unusable_schemas().await?;
        for user in ids.names.values() {
            for schema in &unchecked {
                access
                    .entry((user.clone(), schema.clone()))
                    .or_insert_with(|| SchemaAccess {
                        schema: schema.clone(),
                        ..SchemaAccess::default()
                    })
                    .unchecked = true;
            }
        }

        // What the schemas hold beyond tables: REVOKE … ON ALL TABLES does not reach
        // routines or sequences, and their privileges keep DROP USER from succeeding too.
        let contents = self.schema_contents(routines).await?;
        for ((user, _), mut entry) in access {
            if let Some(kinds) = contents.get(&entry.schema) {
                entry.has_functions = kinds.contains(&Content::Function);
                entry.has_procedures = kinds.contains(&Content::Procedure);
                entry.has_sequences = kinds.contains(&Content::Sequence);
            }
            push(&mut owned, &user, |o| o.schema_privileges.push(entry));
        }

        for o in owned.values_mut() {
            o.relations.sort();
            o.functions.sort();
            o.schemas.sort();
            o.schema_privileges.sort();
            o.table_privileges.sort();
        }
        debug!(
            origin = self.origin,
            users = owned.len(),
            ?routines,
            "Discovered ownership."
        );
        Ok(owned)
    }

    /// Opens the read-only transaction every query runs in; whether the server is
    /// Redshift.
    async fn begin(&mut self) -> Result<bool, SourceError> {
        let version: String = self
            .scalar("version", "SELECT CAST(version() AS varchar)")
            .await?;
        let redshift = version.contains("Redshift");
        if redshift {
            // Quoted names must match the catalog exactly, as the plan's statements will
            // (has_table_privilege parses the names it is given). A session setting, not
            // a write.
            self.execute("SET enable_case_sensitive_identifier TO true")
                .await?;
        }
        // One snapshot for every query (PostgreSQL's default would take one per
        // statement), and the server's guarantee that nothing here writes.
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        Ok(redshift)
    }

    /// The ids of those of `users` the catalog holds.
    async fn user_ids(&mut self, users: &[String]) -> Result<UserIds, SourceError> {
        let wanted: BTreeSet<&str> = users.iter().map(String::as_str).collect();
        let mut names: BTreeMap<i32, String> = BTreeMap::new();
        for row in self
            .rows(
                "pg_user",
                "SELECT CAST(usename AS varchar) AS usename, \
                        CAST(usesysid AS integer) AS usesysid \
                 FROM pg_catalog.pg_user"
                    .to_owned(),
            )
            .await?
        {
            let name: String = self.get(&row, "usename")?;
            let id: i32 = self.get(&row, "usesysid")?;
            if wanted.contains(name.as_str()) {
                names.insert(id, name);
            }
        }
        // Integers the catalog returned: nothing a user name could smuggle in.
        let sql_list = names
            .keys()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Ok(UserIds { names, sql_list })
    }

    /// Relations the users own.
    async fn owned_relations(
        &mut self,
        ids: &UserIds,
    ) -> Result<Vec<(String, Relation)>, SourceError> {
        let sql = format!(
            "{USER_RELATIONS} JOIN pg_catalog.pg_user u ON u.usesysid = c.relowner \
             WHERE CAST(u.usesysid AS integer) IN ({}) \
               AND c.relkind IN ({OWNED_RELKINDS}) AND {USER_SCHEMA}",
            ids.sql_list
        );
        self.user_relations("owned relations", sql, ids).await
    }

    /// Functions, procedures and aggregates the users own.
    async fn owned_functions(
        &mut self,
        ids: &UserIds,
        routines: Routines,
    ) -> Result<Vec<(String, Function)>, SourceError> {
        let (proc_from, proc_kind) = routines.source();
        let sql = format!(
            "SELECT CAST(u.usesysid AS integer) AS usesysid, \
                    CAST(n.nspname AS varchar) AS schema_name, \
                    CAST(p.proname AS varchar) AS name, \
                    CAST(pg_catalog.oidvectortypes(p.proargtypes) AS varchar) AS arguments, \
                    {proc_kind} AS kind, p.prosecdef AS security_definer \
             FROM {proc_from} \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             JOIN pg_catalog.pg_user u ON u.usesysid = p.proowner \
             WHERE CAST(u.usesysid AS integer) IN ({}) AND {USER_SCHEMA}",
            ids.sql_list
        );
        let mut found = Vec::new();
        for row in self.rows("owned functions", sql).await? {
            let Some(user) = ids.name(self.get(&row, "usesysid")?) else {
                continue;
            };
            let function = Function {
                schema: self.get(&row, "schema_name")?,
                name: self.get(&row, "name")?,
                arguments: self
                    .get::<Option<String>>(&row, "arguments")?
                    .unwrap_or_default(),
                kind: FunctionKind::from_prokind(
                    &self
                        .get::<Option<String>>(&row, "kind")?
                        .unwrap_or_default(),
                ),
                security_definer: self
                    .get::<Option<bool>>(&row, "security_definer")?
                    .unwrap_or(false),
            };
            found.push((user, function));
        }
        Ok(found)
    }

    /// Schemas the users own.
    async fn owned_schemas(&mut self, ids: &UserIds) -> Result<Vec<(String, String)>, SourceError> {
        let sql = format!(
            "SELECT CAST(u.usesysid AS integer) AS usesysid, \
                    CAST(n.nspname AS varchar) AS schema_name \
             FROM pg_catalog.pg_namespace n \
             JOIN pg_catalog.pg_user u ON u.usesysid = n.nspowner \
             WHERE CAST(u.usesysid AS integer) IN ({}) AND {USER_SCHEMA}",
            ids.sql_list
        );
        let mut found = Vec::new();
        for row in self.rows("owned schemas", sql).await? {
            let Some(user) = ids.name(self.get(&row, "usesysid")?) else {
                continue;
            };
            let schema: String = self.get(&row, "schema_name")?;
            found.push((user, schema));
        }
        Ok(found)
    }

    /// `USAGE` and `CREATE` on schemas, by user and schema. The schema name is passed as
    /// a value, never parsed.
    async fn schema_privileges(
        &mut self,
        ids: &UserIds,
    ) -> Result<BTreeMap<(String, String), SchemaAccess>, SourceError> {
        let sql = format!(
            "SELECT CAST(u.usesysid AS integer) AS usesysid, \
                    CAST(n.nspname AS varchar) AS schema_name, \
                    has_schema_privilege(u.usename, n.nspname, 'USAGE') AS can_use, \
                    has_schema_privilege(u.usename, n.nspname, 'CREATE') AS can_create \
             FROM pg_catalog.pg_namespace n \
             CROSS JOIN pg_catalog.pg_user u \
             WHERE CAST(u.usesysid AS integer) IN ({}) AND {USER_SCHEMA}",
            ids.sql_list
        );
        let mut access: BTreeMap<(String, String), SchemaAccess> = BTreeMap::new();
        for row in self.rows("schema privileges", sql).await? {
            let Some(user) = ids.name(self.get(&row, "usesysid")?) else {
                continue;
            };
            let schema: String = self.get(&row, "schema_name")?;
            let usage = self.get::<Option<bool>>(&row, "can_use")?.unwrap_or(false);
            let create = self
                .get::<Option<bool>>(&row, "can_create")?
                .unwrap_or(false);
            if usage || create {
                let entry = access
                    .entry((user, schema.clone()))
                    .or_insert_with(|| SchemaAccess {
                        schema,
                        ..SchemaAccess::default()
                    });
                entry.usage |= usage;
                entry.create |= create;
            }
        }
        Ok(access)
    }

    /// Tables the users hold a privilege on without owning them. has_table_privilege
    /// parses its table argument as a (qualified) name, hence quote_ident: the way
    /// Amazon's own admin views call it, and it keeps hostile names names. Resolving the
    /// name needs USAGE on the schema for idgraph's own login, so schemas it may not use
    /// are skipped (CASE, unlike AND, evaluates in order) and reported instead, by
    /// [`unusable_schemas`](Self::unusable_schemas).
    async fn table_privileges(
        &mut self,
        ids: &UserIds,
    ) -> Result<Vec<(String, Relation)>, SourceError> {
        let any_privilege = TABLE_PRIVILEGES
            .iter()
            .map(|p| {
                format!(
                    "has_table_privilege(u.usename, \
                     quote_ident(n.nspname) || '.' || quote_ident(c.relname), '{p}')"
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!(
            "{USER_RELATIONS} CROSS JOIN pg_catalog.pg_user u \
             WHERE CAST(u.usesysid AS integer) IN ({}) \
               AND c.relkind IN ({TABLE_RELKINDS}) AND c.relowner <> u.usesysid \
               AND {USER_SCHEMA} \
               AND CASE WHEN has_schema_privilege(n.nspname, 'USAGE') \
                        THEN ({any_privilege}) ELSE false END",
            ids.sql_list
        );
        self.user_relations("table privileges", sql, ids).await
    }

    /// The user schemas idgraph's login may not use, so table privileges there could not
    /// be checked.
    async fn unusable_schemas(&mut self) -> Result<Vec<String>, SourceError> {
        let sql = format!(
            "SELECT CAST(n.nspname AS varchar) AS schema_name \
             FROM pg_catalog.pg_namespace n \
             WHERE {USER_SCHEMA} AND NOT has_schema_privilege(n.nspname, 'USAGE')"
        );
        self.rows("schemas the login may not use", sql)
            .await?
            .iter()
            .map(|row| self.get(row, "schema_name"))
            .collect()
    }

    /// Which form of the routine catalog this server has, asked without a query that could
    /// fail: a failed query would abort the transaction.
    async fn routines(&mut self) -> Result<Routines, SourceError> {
        let prokind: i32 = self
            .scalar(
                "pg_proc columns",
                "SELECT CAST(COUNT(*) AS integer) \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE CAST(n.nspname AS varchar) = 'pg_catalog' \
                   AND CAST(c.relname AS varchar) = 'pg_proc' \
                   AND CAST(a.attname AS varchar) = 'prokind'",
            )
            .await?;
        if prokind > 0 {
            return Ok(Routines::ProKind);
        }
        let proc_info: i32 = self
            .scalar(
                "pg_proc_info",
                "SELECT CAST(COUNT(*) AS integer) FROM pg_catalog.pg_class c \
                 WHERE CAST(c.relname AS varchar) = 'pg_proc_info'",
            )
            .await?;
        Ok(if proc_info > 0 {
            Routines::ProcInfo
        } else {
            Routines::PlainProc
        })
    }

    /// For each user schema, whether it holds functions, procedures or sequences.
    async fn schema_contents(
        &mut self,
        routines: Routines,
    ) -> Result<BTreeMap<String, BTreeSet<Content>>, SourceError> {
        let (proc_from, proc_kind) = routines.source();
        let sql = format!(
            "SELECT DISTINCT CAST(n.nspname AS varchar) AS schema_name, {proc_kind} AS kind \
             FROM {proc_from} JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             WHERE {USER_SCHEMA} \
             UNION \
             SELECT DISTINCT CAST(n.nspname AS varchar) AS schema_name, \
                    CAST('S' AS varchar) AS kind \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'S' AND {USER_SCHEMA}"
        );
        let mut contents: BTreeMap<String, BTreeSet<Content>> = BTreeMap::new();
        for row in self.rows("schema contents", sql).await? {
            let schema: String = self.get(&row, "schema_name")?;
            let kind = self
                .get::<Option<String>>(&row, "kind")?
                .unwrap_or_default();
            let content = match kind.as_str() {
                "S" => Content::Sequence,
                "p" => Content::Procedure,
                _ => Content::Function,
            };
            contents.entry(schema).or_default().insert(content);
        }
        Ok(contents)
    }

    /// A relation row (`schema_name`, `name`, `kind`); `None` for a kind a plan ignores.
    /// Runs a [`USER_RELATIONS`] query: each user of interest with a relation of a kind
    /// a plan knows.
    async fn user_relations(
        &mut self,
        what: &str,
        sql: String,
        ids: &UserIds,
    ) -> Result<Vec<(String, Relation)>, SourceError> {
        let mut found = Vec::new();
        for row in self.rows(what, sql).await? {
            if let (Some(user), Some(relation)) =
                (ids.name(self.get(&row, "usesysid")?), self.relation(&row)?)
            {
                found.push((user, relation));
            }
        }
        Ok(found)
    }

    fn relation(&self, row: &PgRow) -> Result<Option<Relation>, SourceError> {
        let kind = self.get::<Option<String>>(row, "kind")?.unwrap_or_default();
        let Some(kind) = RelationKind::from_relkind(&kind) else {
            return Ok(None);
        };
        Ok(Some(Relation {
            schema: self.get(row, "schema_name")?,
            name: self.get(row, "name")?,
            kind,
        }))
    }

    fn get<'r, T>(&self, row: &'r PgRow, column: &str) -> Result<T, SourceError>
    where
        T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        row.try_get(column)
            .map_err(|e| SourceError::InvalidResponse {
                origin: self.origin.to_owned(),
                detail: format!("column {column}: {e}"),
            })
    }

    async fn rows(&mut self, what: &str, sql: String) -> Result<Vec<PgRow>, SourceError> {
        let result =
            tokio::time::timeout(self.timeout, sqlx::query(&sql).fetch_all(&mut *self.conn))
                .await
                .map_err(|_| self.timed_out(what))?;
        result.map_err(|e| self.query_error(what, &e))
    }

    async fn scalar<T>(&mut self, what: &str, sql: &str) -> Result<T, SourceError>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        let result = tokio::time::timeout(
            self.timeout,
            sqlx::query_scalar::<_, T>(sql).fetch_one(&mut *self.conn),
        )
        .await
        .map_err(|_| self.timed_out(what))?;
        result.map_err(|e| self.query_error(what, &e))
    }

    /// Runs a statement without parameters over the simple protocol (`BEGIN`, `SET`).
    async fn execute(&mut self, sql: &str) -> Result<(), SourceError> {
        let result = tokio::time::timeout(self.timeout, (&mut *self.conn).execute(sql))
            .await
            .map_err(|_| self.timed_out(sql))?;
        result.map(|_| ()).map_err(|e| self.query_error(sql, &e))
    }

    fn timed_out(&self, what: &str) -> SourceError {
        SourceError::Unreachable {
            origin: self.origin.to_owned(),
            detail: format!("{what} did not answer within {:?}", self.timeout),
        }
    }

    fn query_error(&self, what: &str, error: &sqlx::Error) -> SourceError {
        SourceError::Remote {
            origin: self.origin.to_owned(),
            status: None,
            detail: format!("reading {what}: {}", describe(error)),
        }
    }
}

/// What a schema holds beyond tables, for the revocations a plan needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Content {
    Function,
    Procedure,
    Sequence,
}

fn push(owned: &mut BTreeMap<String, Owned>, user: &str, f: impl FnOnce(&mut Owned)) {
    if let Some(o) = owned.get_mut(user) {
        f(o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::tests::{assert_refused, refused_connection};

    #[test]
    fn relkinds_and_prokinds() {
        assert_eq!(RelationKind::from_relkind("r"), Some(RelationKind::Table));
        assert_eq!(
            RelationKind::from_relkind("m"),
            Some(RelationKind::MaterializedView)
        );
        assert_eq!(RelationKind::from_relkind("i"), None);
        assert_eq!(FunctionKind::from_prokind("p"), FunctionKind::Procedure);
        assert_eq!(FunctionKind::from_prokind("w"), FunctionKind::Function);
        assert_eq!(FunctionKind::from_prokind("a"), FunctionKind::Aggregate);
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_and_never_shows_the_password() {
        let connection = refused_connection();
        let error = discover(
            "analytics",
            &connection,
            &["IAMA:bob@example.com".to_owned()],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_refused(&error);
    }
}
