//! What database users own and where they hold privileges, read from the catalog: what a
//! remediation plan must hand over and revoke before `DROP USER`, which fails while the
//! user owns an object or holds a privilege. Redshift has no `REASSIGN OWNED` or
//! `DROP OWNED`, so every object has to be named.
//!
//! Discovery only reads: one `READ ONLY` transaction of `SELECT`s, which the server itself
//! refuses to let write. The queries run unchanged on Redshift and PostgreSQL 15 (the rules
//! of [`crate::postgres`]: names cast to `varchar`, ids to `integer`, no `int8` binds, in
//! fact no binds at all: the only values spliced into the SQL are user ids the catalog
//! itself returned, formatted as integers, and the names of catalog relations written
//! here).
//!
//! Each catalog is read once, linearly: the rows a wanted user owns or that carry an ACL,
//! with the ACL as text ([`acl`]), parsed in Rust. There is no users × objects join and no
//! per-row `has_*_privilege` call. Where the two catalogs differ (how a procedure is told
//! from a function, where column ACLs live, what `pg_default_acl` calls its owner, the
//! Redshift-only views) discovery first asks the catalog which relations and columns it
//! has, because a failed query would abort the transaction and Redshift has no
//! savepoints.
//!
//! # Layout
//! - `types`: what discovery returns ([`Owned`] and its parts).
//! - [`acl`]: the ACL text parser.
//! - `catalog`: which relations and columns the catalog has.
//! - `objects`: relations, columns, routines and schemas.
//! - `grants`: databases, languages and default privileges.
//! - `roles`: role memberships and role ownership.
//! - `redshift`: datashares, libraries, models and materialized views.

pub mod acl;
mod catalog;
mod dependencies;
mod found;
mod grants;
mod objects;
mod redshift;
mod roles;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Connection as _, Executor as _, Row};
use tracing::debug;

pub use acl::{AclItem, Grantee};
pub use types::{
    Blocker, BlockerKind, ColumnGrant, DefaultAcl, DefaultAclObject, Function, FunctionKind, Owned,
    Relation, RelationKind, SchemaAccess,
};

use crate::postgres::{connect, describe, Connection};
use crate::SourceError;
use found::Found;

/// Schemas that belong to the system, never to a user: everything named `pg_…` (the
/// catalog, TOAST, temporary schemas, Redshift's `pg_internal`, `pg_automv`, …) and the
/// information schema. Both systems reserve the `pg_` prefix.
const USER_SCHEMA: &str = "SUBSTRING(CAST(n.nspname AS varchar), 1, 3) <> 'pg_' \
     AND CAST(n.nspname AS varchar) NOT IN ('information_schema', 'catalog_history')";

/// For each of `users` that the catalog holds, what it owns and where it holds privileges
/// in the database `connection` names. Users the catalog does not hold (anymore) are
/// absent from the map. `origin` names the target in errors; `timeout` bounds connecting
/// and each query (on the server too: `statement_timeout`).
///
/// Reads only: a `READ ONLY` transaction of `SELECT`s on the catalog (`pg_class`,
/// `pg_attribute`, `pg_proc`, `pg_namespace`, `pg_database`, `pg_language`,
/// `pg_default_acl`, `pg_user`, role memberships; on Redshift also `pg_proc_info`,
/// `pg_attribute_info`, `svv_user_grants`, `svv_roles`, `svv_datashares`, `pg_library`,
/// `svv_ml_model_info` and `svv_mv_info`, several of which show every row only to
/// superusers or holders of `ACCESS SYSTEM TABLE`).
///
/// # Errors
///
/// [`SourceError::Unreachable`] when the server cannot be reached in `timeout` or a query
/// does not answer in time; [`SourceError::Credentials`] when it refuses the login;
/// [`SourceError::Remote`] when a query fails; [`SourceError::InvalidResponse`] when a row
/// or an ACL does not decode.
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
        redshift: false,
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
    ids: BTreeMap<String, i32>,
    /// The ids as an SQL list, e.g. `100, 101`.
    sql_list: String,
}

impl UserIds {
    /// The name of the user with `id`, if it is one of those looked at.
    fn name(&self, id: i32) -> Option<&str> {
        self.names.get(&id).map(String::as_str)
    }

    /// The id of the user called `name`, if it is one of those looked at.
    fn id(&self, name: &str) -> Option<i32> {
        self.ids.get(name).copied()
    }
}

/// One connection's worth of discovery.
struct Reader<'a> {
    origin: &'a str,
    conn: &'a mut PgConnection,
    timeout: Duration,
    /// Whether the server is Redshift (known once [`begin`](Self::begin) has run).
    redshift: bool,
}

impl Reader<'_> {
    async fn discover(&mut self, users: &[String]) -> Result<BTreeMap<String, Owned>, SourceError> {
        self.begin().await?;
        let database: String = self
            .scalar(
                "current_database",
                "SELECT CAST(current_database() AS varchar)",
            )
            .await?;
        let ids = self.user_ids(users).await?;
        let mut found = Found::new(&ids, &database, self.redshift);
        if ids.names.is_empty() {
            return Ok(found.finish());
        }
        let surface = self.surface().await?;

        self.relations(&mut found).await?;
        self.columns(&mut found, &surface).await?;
        self.routines(&mut found, &surface).await?;
        self.schemas(&mut found).await?;
        self.databases(&mut found).await?;
        self.languages(&mut found).await?;
        self.default_acls(&mut found, &surface).await?;
        self.memberships(&mut found, &surface).await?;
        if self.redshift {
            self.redshift_objects(&mut found, &surface, &database)
                .await?;
        } else {
            self.other_dependencies(&mut found).await?;
        }
        debug!(
            origin = self.origin,
            users = ids.names.len(),
            ?surface,
            "Discovered ownership."
        );
        Ok(found.finish())
    }

    /// Opens the read-only transaction every query runs in, and learns whether the server
    /// is Redshift. No name is parsed by the server, so Redshift's identifier case folding
    /// does not matter here.
    async fn begin(&mut self) -> Result<(), SourceError> {
        let version: String = self
            .scalar("version", "SELECT CAST(version() AS varchar)")
            .await?;
        self.redshift = version.contains("Redshift");
        // One snapshot for every query (PostgreSQL's default would take one per
        // statement), and the server's guarantee that nothing here writes.
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
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
        let ids = names.iter().map(|(id, name)| (name.clone(), *id)).collect();
        // Integers the catalog returned: nothing a user name could smuggle in.
        let sql_list = names
            .keys()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Ok(UserIds {
            names,
            ids,
            sql_list,
        })
    }

    /// A text column that may be `NULL` (an ACL that is `NULL` reads as empty).
    fn text(&self, row: &PgRow, column: &str) -> Result<String, SourceError> {
        Ok(self.get::<Option<String>>(row, column)?.unwrap_or_default())
    }

    /// The parsed ACL in `column`.
    fn acl(&self, row: &PgRow, column: &str) -> Result<Vec<AclItem>, SourceError> {
        acl::parse(&self.text(row, column)?).map_err(|e| SourceError::InvalidResponse {
            origin: self.origin.to_owned(),
            detail: format!("column {column}: {e}"),
        })
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

    /// Runs a statement without parameters over the simple protocol (`BEGIN`).
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

/// `name` as an SQL identifier: double-quoted, `"` doubled. For sentences only: nothing
/// discovery sends the server holds a name.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`, for sentences.
fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quoted(schema), quoted(name))
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
        assert_eq!(
            DefaultAclObject::from_objtype("p"),
            Some(DefaultAclObject::Procedures)
        );
        assert_eq!(DefaultAclObject::from_objtype("?"), None);
    }

    #[test]
    fn sentences_quote_names() {
        assert_eq!(qualified("s\"x", "t"), "\"s\"\"x\".\"t\"");
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
