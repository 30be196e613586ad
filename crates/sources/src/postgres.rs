//! Reading `pg_user` over SQL from Redshift (provisioned or serverless) or PostgreSQL.
//!
//! Redshift speaks the PostgreSQL wire protocol but is PostgreSQL 8.0-era, so the queries
//! here run unchanged on both: explicit casts to `varchar` and `integer` instead of
//! decoding `name` and `oid` natively, no `int8` binds, and `extra_float_digits = 2`,
//! which Redshift accepts.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use idgraph_model::{DbUser, TargetSnapshot};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection as _, Row};
use tracing::{debug, warn};

use crate::{Secret, Source, SourceError};

/// Every database user, on Redshift and PostgreSQL alike.
const USERS: &str = "SELECT CAST(usename AS varchar) AS usename, \
                            CAST(usesysid AS integer) AS usesysid, \
                            usesuper \
                     FROM pg_catalog.pg_user";

/// Identity Center namespaces a Redshift cluster declares; the view does not exist on
/// PostgreSQL.
const NAMESPACES: &str = "SELECT CAST(namespc AS varchar) AS namespc FROM svv_identity_providers";

/// How the SQL connection uses TLS, as libpq's `sslmode`; configured as `disable`,
/// `prefer`, `require` or `verify-full`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS if the server offers it.
    Prefer,
    /// TLS, without verifying the certificate.
    #[default]
    Require,
    /// TLS with a certificate valid for the host.
    VerifyFull,
}

impl SslMode {
    fn to_sqlx(self) -> PgSslMode {
        match self {
            Self::Disable => PgSslMode::Disable,
            Self::Prefer => PgSslMode::Prefer,
            Self::Require => PgSslMode::Require,
            Self::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Host name or address.
    pub host: String,
    /// Port (Redshift's default is 5439).
    pub port: u16,
    /// Database name.
    pub database: String,
    /// Login name, exactly as the catalog holds it (`IAM:idgraph_reader`).
    pub user: String,
    /// Password; `None` for trust or peer authentication.
    pub password: Option<Secret>,
    /// TLS mode.
    pub sslmode: SslMode,
}

impl fmt::Display for Connection {
    /// `host:port/database as user`: for errors and logs; never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}/{} as {}",
            self.host, self.port, self.database, self.user
        )
    }
}

/// What a target's catalog says about its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// Every row of `pg_user`.
    pub users: Vec<DbUser>,
    /// Identity Center namespaces from `SVV_IDENTITY_PROVIDERS`, empty on PostgreSQL.
    pub namespaces: Vec<String>,
    /// `current_user`: the name idgraph is logged in as.
    pub current_user: String,
}

/// Connects, reads the catalog, disconnects. `origin` names the target in errors.
///
/// # Errors
///
/// [`SourceError::Unreachable`] when the server cannot be reached in `timeout` or TLS
/// fails; [`SourceError::Credentials`] when it refuses the login;
/// [`SourceError::Remote`] when a query fails.
pub async fn read_catalog(
    origin: &str,
    connection: &Connection,
    timeout: Duration,
) -> Result<Catalog, SourceError> {
    let origin = format!("target {origin} ({connection})");
    let mut conn = connect(&origin, connection, timeout).await?;
    let result = read(&origin, &mut conn, timeout).await;
    // The catalog is read; a failure to say goodbye politely changes nothing.
    let _ = conn.close().await;
    result
}

/// The rows of [`USERS`] as database users.
fn db_users(origin: &str, rows: &[sqlx::postgres::PgRow]) -> Result<Vec<DbUser>, SourceError> {
    rows.iter()
        .map(|row| {
            Ok(DbUser {
                name: row.try_get("usename")?,
                sysid: row.try_get::<Option<i32>, _>("usesysid")?.map(i64::from),
                superuser: row.try_get::<Option<bool>, _>("usesuper")?.unwrap_or(false),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(|e| SourceError::InvalidResponse {
            origin: origin.to_owned(),
            detail: format!("pg_user: {e}"),
        })
}

/// Runs `query` on `conn` within `timeout`: a query that does not answer in time is
/// [`SourceError::Unreachable`], one that fails [`SourceError::Remote`], each naming `what`.
pub(crate) async fn fetch_rows<'q>(
    origin: &str,
    conn: &mut PgConnection,
    timeout: Duration,
    what: &str,
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<Vec<sqlx::postgres::PgRow>, SourceError> {
    tokio::time::timeout(timeout, query.fetch_all(&mut *conn))
        .await
        .map_err(|_| SourceError::Unreachable {
            origin: origin.to_owned(),
            detail: format!("{what} did not answer within {timeout:?}"),
        })?
        .map_err(|error| SourceError::Remote {
            origin: origin.to_owned(),
            status: None,
            detail: format!("reading {what}: {}", describe(&error)),
        })
}

/// How many names one query binds: far below PostgreSQL's 65,535 parameters.
const NAMES_PER_QUERY: usize = 1000;

/// Reads the rows of `pg_user` whose lower-cased `usename` is one of `names` (lower-case
/// already): what a watched run re-checks on a target, a few rows however large the
/// catalog. `IN` with one bind per name rather than `= ANY($1)`: Redshift has no array
/// parameters.
///
/// # Errors
///
/// As [`read_catalog`].
pub async fn read_users_named(
    origin: &str,
    connection: &Connection,
    timeout: Duration,
    names: &[String],
) -> Result<Vec<DbUser>, SourceError> {
    let origin = format!("target {origin} ({connection})");
    let mut conn = connect(&origin, connection, timeout).await?;
    let mut users = Vec::new();
    let mut result = Ok(());
    for chunk in names.chunks(NAMES_PER_QUERY) {
        let binds: Vec<String> = (1..=chunk.len())
            .map(|i| format!("CAST(${i} AS varchar)"))
            .collect();
        let sql = format!(
            "{USERS} WHERE lower(CAST(usename AS varchar)) IN ({})",
            binds.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for name in chunk {
            query = query.bind(name);
        }
        let rows = fetch_rows(&origin, &mut conn, timeout, "pg_user", query)
            .await
            .and_then(|rows| db_users(&origin, &rows));
        match rows {
            Ok(rows) => users.extend(rows),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let _ = conn.close().await;
    result.map(|()| users)
}

async fn read(
    origin: &str,
    conn: &mut PgConnection,
    timeout: Duration,
) -> Result<Catalog, SourceError> {
    let query_error = |what: &str, error: sqlx::Error| SourceError::Remote {
        origin: origin.to_owned(),
        status: None,
        detail: format!("{what}: {}", describe(&error)),
    };
    let timed_out = |what: &str| SourceError::Unreachable {
        origin: origin.to_owned(),
        detail: format!("{what} did not answer within {timeout:?}"),
    };

    let rows = fetch_rows(origin, conn, timeout, "pg_user", sqlx::query(USERS)).await?;
    let users = db_users(origin, &rows)?;

    let namespaces = match tokio::time::timeout(
        timeout,
        sqlx::query_scalar::<_, Option<String>>(NAMESPACES).fetch_all(&mut *conn),
    )
    .await
    .map_err(|_| timed_out("svv_identity_providers"))?
    {
        Ok(rows) => rows
            .into_iter()
            .flatten()
            .filter(|ns| !ns.is_empty())
            .collect(),
        // PostgreSQL has no such view.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {
            debug!(origin, "No svv_identity_providers: not Redshift.");
            Vec::new()
        }
        // The login may not read it: users of the namespace then match only through
        // mapping.prefixes, which the operator must know.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
            warn!(
                origin,
                "Cannot read svv_identity_providers (permission denied); Identity Center namespaces are taken from mapping.prefixes only."
            );
            Vec::new()
        }
        Err(e) => return Err(query_error("reading svv_identity_providers", e)),
    };

    let current_user: String = tokio::time::timeout(
        timeout,
        sqlx::query_scalar("SELECT CAST(current_user AS varchar)").fetch_one(&mut *conn),
    )
    .await
    .map_err(|_| timed_out("current_user"))?
    .map_err(|e| query_error("reading current_user", e))?;

    debug!(
        origin,
        users = users.len(),
        namespaces = namespaces.len(),
        "Read the catalog."
    );
    Ok(Catalog {
        users,
        namespaces,
        current_user,
    })
}

/// Databases of a cluster that a plan never visits: PostgreSQL's templates, and the ones
/// Redshift keeps for itself (`padb_harvest`, `sys:internal`; AWS lists them with the
/// templates as the databases that cannot be renamed:
/// https://docs.aws.amazon.com/redshift/latest/dg/r_ALTER_DATABASE.html). `pg_database`
/// rather than `SVV_REDSHIFT_DATABASES`, which shows a user other than a superuser only
/// its own databases:
/// https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_REDSHIFT_DATABASES.html
const SYSTEM_DATABASES: [&str; 3] = ["template0", "template1", "padb_harvest"];

/// What a whole cluster says, read through one of its databases: users are cluster-wide
/// and so is the list of databases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCatalog {
    /// Every database of the cluster that can hold a user's objects, sorted: `pg_database`
    /// less the templates and Redshift's internal ones.
    pub databases: Vec<String>,
    /// The superusers, sorted.
    pub superusers: Vec<String>,
}

/// Connects, lists the cluster's databases and superusers, disconnects. `origin` names the
/// target in errors.
///
/// # Errors
///
/// As [`read_catalog`].
pub async fn read_cluster(
    origin: &str,
    connection: &Connection,
    timeout: Duration,
) -> Result<ClusterCatalog, SourceError> {
    let origin = format!("target {origin} ({connection})");
    let mut conn = connect(&origin, connection, timeout).await?;
    let mut list = async |what: &str, sql: &str| -> Result<Vec<String>, SourceError> {
        let rows = fetch_rows(&origin, &mut conn, timeout, what, sqlx::query(sql)).await?;
        let mut names = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: Option<String> =
                row.try_get(0).map_err(|e| SourceError::InvalidResponse {
                    origin: origin.clone(),
                    detail: format!("{what}: {e}"),
                })?;
            names.extend(name);
        }
        names.sort();
        Ok(names)
    };
    let databases = list(
        "pg_database",
        "SELECT CAST(datname AS varchar) FROM pg_catalog.pg_database",
    )
    .await;
    let superusers = list(
        "pg_user",
        "SELECT CAST(usename AS varchar) FROM pg_catalog.pg_user WHERE usesuper",
    )
    .await;
    let _ = conn.close().await;
    let mut databases = databases?;
    databases.retain(|d| !SYSTEM_DATABASES.contains(&d.as_str()) && !d.starts_with("sys:"));
    Ok(ClusterCatalog {
        databases,
        superusers: superusers?,
    })
}

/// Connects with options Redshift accepts, and limits every statement of the session to
/// `timeout` on the server too (`statement_timeout`), so that a query idgraph gave up on
/// does not go on running on the leader. Errors name `origin`, never the password.
///
/// # Errors
///
/// [`SourceError::Unreachable`] when no connection is made within `timeout`,
/// [`SourceError::Credentials`] when the login is refused, [`SourceError::Remote`] for
/// another refusal.
pub async fn connect(
    origin: &str,
    connection: &Connection,
    timeout: Duration,
) -> Result<PgConnection, SourceError> {
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(&connection.host)
        .port(connection.port)
        .database(&connection.database)
        .username(&connection.user)
        .ssl_mode(connection.sslmode.to_sqlx())
        .extra_float_digits(2)
        .application_name("idgraph")
        .log_statements(tracing::log::LevelFilter::Debug);
    if let Some(password) = &connection.password {
        options = options.password(password.expose());
    }
    let mut conn = match tokio::time::timeout(timeout, options.connect()).await {
        Err(_) => {
            return Err(SourceError::Unreachable {
                origin: origin.to_owned(),
                detail: format!("no connection within {timeout:?}"),
            })
        }
        Ok(Err(error)) => return Err(connect_error(origin, &error)),
        Ok(Ok(conn)) => conn,
    };
    // Milliseconds, as Redshift and PostgreSQL both take it; a literal, since SET takes no
    // bind parameters. https://docs.aws.amazon.com/redshift/latest/dg/r_statement_timeout.html
    let limit = format!(
        "SET statement_timeout TO {}",
        timeout.as_millis().clamp(1, i32::MAX as u128)
    );
    match tokio::time::timeout(timeout, sqlx::query(&limit).execute(&mut conn)).await {
        Ok(Ok(_)) => Ok(conn),
        Ok(Err(error)) => Err(SourceError::Remote {
            origin: origin.to_owned(),
            status: None,
            detail: format!("setting statement_timeout: {}", describe(&error)),
        }),
        Err(_) => Err(SourceError::Unreachable {
            origin: origin.to_owned(),
            detail: format!("setting statement_timeout did not answer within {timeout:?}"),
        }),
    }
}

/// A database error with its SQLSTATE, or the error's own text: neither ever holds the
/// password, which travels only in the authentication exchange.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(e) => match e.code() {
            Some(code) => format!("{} (SQLSTATE {code})", e.message()),
            None => e.message().to_owned(),
        },
        other => other.to_string(),
    }
}

fn connect_error(origin: &str, error: &sqlx::Error) -> SourceError {
    let origin = origin.to_owned();
    match error {
        // 28000 invalid authorization, 28P01 invalid password.
        sqlx::Error::Database(e) if e.code().is_some_and(|c| c.starts_with("28")) => {
            SourceError::Credentials {
                origin,
                detail: describe(error),
            }
        }
        sqlx::Error::Database(_) => SourceError::Remote {
            origin,
            status: None,
            detail: describe(error),
        },
        _ => SourceError::Unreachable {
            origin,
            detail: describe(error),
        },
    }
}

/// A PostgreSQL-protocol endpoint reached directly with static credentials: how tests and
/// non-Redshift users point idgraph at a database.
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    /// The target's configured name.
    pub name: String,
    /// Where and as whom to connect.
    pub connection: Connection,
    /// The admin user of the database, if any, which is never a finding.
    pub master_user: Option<String>,
    /// How long connecting and each query may take.
    pub timeout: Duration,
}

#[async_trait]
impl Source for PostgresTarget {
    type Snapshot = TargetSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "postgres"
    }

    fn cluster(&self) -> Option<String> {
        Some(format!(
            "postgres {}:{}",
            self.connection.host, self.connection.port
        ))
    }

    async fn catalog(&self) -> Result<crate::CatalogAccess, SourceError> {
        Ok(crate::CatalogAccess {
            connection: self.connection.clone(),
            timeout: self.timeout,
        })
    }

    async fn fetch_wanted(
        &self,
        wanted: &crate::Wanted<'_>,
    ) -> Result<TargetSnapshot, SourceError> {
        let crate::Wanted::DbUsers(names) = wanted else {
            return self.fetch().await;
        };
        let users = read_users_named(&self.name, &self.connection, self.timeout, names).await?;
        Ok(TargetSnapshot {
            login_user: Some(self.connection.user.clone()),
            ..TargetSnapshot::new(self.name.clone(), users)
        })
    }

    async fn logins(
        &self,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<Vec<idgraph_model::Login>>, SourceError> {
        let read =
            crate::logins::read_logins(&self.name, &self.connection, self.timeout, since).await?;
        Ok(Some(read.logins))
    }

    async fn fetch(&self) -> Result<TargetSnapshot, SourceError> {
        let catalog = read_catalog(&self.name, &self.connection, self.timeout).await?;
        Ok(TargetSnapshot {
            name: self.name.clone(),
            users: catalog.users,
            master_user: self.master_user.clone(),
            login_user: Some(self.connection.user.clone()),
            namespaces: catalog.namespaces,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `error` is [`refused_connection`]'s: unreachable, naming the target and address,
    /// and without the password.
    pub(crate) fn assert_refused(error: &SourceError) {
        assert_eq!(error.kind(), "unreachable");
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("target analytics (127.0.0.1:"), "{shown}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    }

    /// A connection to a local port nothing listens on, with a password to look for.
    pub(crate) fn refused_connection() -> Connection {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Connection {
            host: "127.0.0.1".into(),
            port,
            database: "dev".into(),
            user: "reader".into(),
            password: Some(Secret::new("s3cr3t-pw")),
            sslmode: SslMode::Disable,
        }
    }

    #[test]
    fn connection_display_never_shows_the_password() {
        let connection = Connection {
            host: "db.example.com".into(),
            port: 5439,
            database: "dev".into(),
            user: "IAM:reader".into(),
            password: Some(Secret::new("s3cr3t-pw")),
            sslmode: SslMode::Require,
        };
        let shown = format!("{connection} {connection:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(shown.contains("db.example.com:5439/dev as IAM:reader"));
    }

    #[test]
    fn sslmode_spellings() {
        let parse = |s: &str| serde_json::from_value::<SslMode>(serde_json::json!(s)).ok();
        assert_eq!(parse("verify-full"), Some(SslMode::VerifyFull));
        assert_eq!(parse("disable"), Some(SslMode::Disable));
        assert_eq!(parse("verify_full"), None);
        assert_eq!(SslMode::default(), SslMode::Require);
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_and_names_the_target() {
        let connection = refused_connection();
        let error = read_catalog("analytics", &connection, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_refused(&error);
    }
}
