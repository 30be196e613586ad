//! Reading who logged in to a target, read-only: on PostgreSQL the sessions open now
//! (`pg_stat_activity`), on Redshift the connection log since a high-water mark and the
//! sessions open now.
//!
//! Redshift keeps its logs for days only, which is why idgraph reads them on every run and
//! keeps what matters (see the store). Which Redshift views, and what they show:
//!
//! - `SYS_CONNECTION_LOG` (provisioned and serverless): authentication attempts,
//!   connections and disconnections, with `record_time`, `remote_host`, `session_id`,
//!   `database_name`, `user_name`, `auth_method`, `application_name`;
//!   <https://docs.aws.amazon.com/redshift/latest/dg/SYS_CONNECTION_LOG.html>.
//! - `STL_CONNECTION_LOG` (provisioned only; read where the SYS view is missing): the same
//!   facts as `recordtime`, `remotehost`, `pid`, `dbname`, `username`, `authmethod`,
//!   `application_name`;
//!   <https://docs.aws.amazon.com/redshift/latest/dg/r_STL_CONNECTION_LOG.html>.
//!   AWS documents both as visible to superusers only.
//! - `STV_SESSIONS`: the sessions open now (`starttime`, `process`, `user_name`,
//!   `db_name`); a user other than a superuser sees only its own rows unless it has
//!   `SYSLOG ACCESS UNRESTRICTED`;
//!   <https://docs.aws.amazon.com/redshift/latest/dg/r_STV_SESSIONS.html>,
//!   <https://docs.aws.amazon.com/redshift/latest/dg/cm_chap_system-tables.html>.
//!
//! On PostgreSQL every user sees every session's user name, but the start, the client
//! address and the application of other users' sessions only with `pg_read_all_stats`.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use idgraph_model::Login;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Connection as _, Row};
use tracing::debug;

use crate::postgres::{connect, fetch_rows, Connection};
use crate::SourceError;

/// The sessions open on PostgreSQL, but idgraph's own. Without `pg_read_all_stats`,
/// PostgreSQL shows another user's session with its user, database and application but
/// with `backend_start`, `client_addr` and `backend_type` NULL: such a row is a session
/// too (background workers have no user).
const PG_SESSIONS: &str = "SELECT CAST(usename AS varchar) AS usename, \
        CAST(datname AS varchar) AS datname, backend_start AS at, \
        CAST(host(client_addr) AS varchar) AS remote_host, \
        CAST(application_name AS varchar) AS application, pid \
    FROM pg_catalog.pg_stat_activity \
    WHERE usename IS NOT NULL \
      AND (backend_type = 'client backend' OR backend_type IS NULL) \
      AND pid <> pg_backend_pid()";

/// Successful authentications on Redshift since `$1` (a timestamp as text: Redshift's
/// binds of other types are unreliable), from the SYS view.
const SYS_LOG: &str = "SELECT CAST(trim(user_name) AS varchar) AS usename, \
        CAST(trim(database_name) AS varchar) AS datname, record_time AS at, \
        CAST(trim(remote_host) AS varchar) AS remote_host, \
        CAST(trim(application_name) AS varchar) AS application, \
        CAST(trim(auth_method) AS varchar) AS auth_method, session_id AS pid \
    FROM sys_connection_log \
    WHERE trim(event) = 'authenticated' AND record_time > CAST($1 AS timestamp)";

/// As [`SYS_LOG`], from the provisioned cluster's STL table.
const STL_LOG: &str = "SELECT CAST(trim(username) AS varchar) AS usename, \
        CAST(trim(dbname) AS varchar) AS datname, recordtime AS at, \
        CAST(trim(remotehost) AS varchar) AS remote_host, \
        CAST(trim(application_name) AS varchar) AS application, \
        CAST(trim(authmethod) AS varchar) AS auth_method, pid \
    FROM stl_connection_log \
    WHERE trim(event) = 'authenticated' AND recordtime > CAST($1 AS timestamp)";

/// The sessions open on Redshift, but idgraph's own.
const STV_SESSIONS: &str = "SELECT CAST(trim(user_name) AS varchar) AS usename, \
        CAST(trim(db_name) AS varchar) AS datname, starttime AS at, process AS pid \
    FROM stv_sessions WHERE process <> pg_backend_pid()";

/// How far back the first read of a Redshift log goes: everything it still holds.
const NO_MARK: &str = "1970-01-01 00:00:00";

/// What reading the logins of a target found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logins {
    /// The authentications since the mark and the sessions open now (`open_at` set to
    /// when they were read), idgraph's own session left out.
    pub logins: Vec<Login>,
    /// Whether the server is Redshift.
    pub redshift: bool,
}

/// Connects as `connection` and reads the logins since `since` (Redshift's log; PostgreSQL
/// keeps none) and the sessions open now. `origin` names the target in errors.
///
/// # Errors
///
/// As [`crate::postgres::read_catalog`] for connecting; [`SourceError::Remote`] when a view
/// cannot be read, or when on Redshift idgraph sees only its own rows (the grant it needs
/// is named).
pub async fn read_logins(
    origin: &str,
    connection: &Connection,
    timeout: Duration,
    since: Option<DateTime<Utc>>,
) -> Result<Logins, SourceError> {
    let origin = format!("target {origin} ({connection})");
    let mut conn = connect(&origin, connection, timeout).await?;
    let result = Reader {
        origin: &origin,
        conn: &mut conn,
        timeout,
    }
    .read(since)
    .await;
    let _ = conn.close().await;
    result
}

struct Reader<'a> {
    origin: &'a str,
    conn: &'a mut PgConnection,
    timeout: Duration,
}

impl Reader<'_> {
    async fn read(&mut self, since: Option<DateTime<Utc>>) -> Result<Logins, SourceError> {
        let version: String = self
            .query(
                "version()",
                sqlx::query("SELECT CAST(version() AS varchar) AS v"),
            )
            .await?
            .first()
            .and_then(|row| row.try_get("v").ok())
            .unwrap_or_default();
        let redshift = version.contains("Redshift");
        let read_at = Utc::now();
        let mut logins = Vec::new();
        if redshift {
            let mark = since.map_or_else(
                || NO_MARK.to_owned(),
                |at| at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            );
            let rows = match self
                .query(
                    "sys_connection_log",
                    sqlx::query(SYS_LOG).bind(mark.clone()),
                )
                .await
            {
                // No SYS view (an older provisioned cluster): the STL table holds the same.
                Err(SourceError::Remote { detail, .. }) if detail.contains("42P01") => {
                    self.query("stl_connection_log", sqlx::query(STL_LOG).bind(mark))
                        .await?
                }
                other => other?,
            };
            for row in &rows {
                logins.push(self.login(row, None)?);
            }
            for row in &self
                .query("stv_sessions", sqlx::query(STV_SESSIONS))
                .await?
            {
                logins.push(self.login(row, Some(read_at))?);
            }
            self.check_visibility(&logins).await?;
        } else {
            for row in &self
                .query("pg_stat_activity", sqlx::query(PG_SESSIONS))
                .await?
            {
                logins.push(self.login(row, Some(read_at))?);
            }
        }
        debug!(
            origin = self.origin,
            logins = logins.len(),
            redshift,
            "Read the logins."
        );
        Ok(Logins { logins, redshift })
    }

    /// On Redshift, a user other than a superuser sees only its own rows of the system
    /// views without `SYSLOG ACCESS UNRESTRICTED`: then no login of anyone else is known,
    /// and treating that as "nobody logged in" would hide every incident.
    async fn check_visibility(&mut self, logins: &[Login]) -> Result<(), SourceError> {
        let rows = self
            .query(
                "pg_user",
                sqlx::query(
                    "SELECT CAST(usename AS varchar) AS usename, usesuper FROM pg_catalog.pg_user \
                     WHERE usename = current_user",
                ),
            )
            .await?;
        let (me, superuser): (String, bool) = match rows.first() {
            Some(row) => (
                row.try_get("usename").unwrap_or_default(),
                row.try_get::<Option<bool>, _>("usesuper")
                    .ok()
                    .flatten()
                    .unwrap_or(false),
            ),
            None => return Ok(()),
        };
        // Its own rows show the views work; only its own show it sees nothing else. (With no
        // row at all there is nothing to tell; a cluster only idgraph uses looks the same as
        // a login that sees too little, so the grant is worth giving there too.)
        let own = logins.iter().any(|l| l.db_user == me);
        if superuser || !own || logins.iter().any(|l| l.db_user != me) {
            return Ok(());
        }
        Err(SourceError::Remote {
            origin: self.origin.to_owned(),
            status: None,
            detail: format!(
                "idgraph ({me}) sees only its own logins and sessions: let it see everyone's \
                 with `ALTER USER \"{}\" WITH SYSLOG ACCESS UNRESTRICTED` (or grant it the \
                 sys:monitor role); AWS shows the connection log to superusers only",
                me.replace('"', "\"\"")
            ),
        })
    }

    /// A row of any of the queries above as a login: a session open at `open_at`, or
    /// with `None` an authentication a log recorded.
    fn login(&self, row: &PgRow, open_at: Option<DateTime<Utc>>) -> Result<Login, SourceError> {
        let invalid = |e: sqlx::Error| SourceError::InvalidResponse {
            origin: self.origin.to_owned(),
            detail: format!("a login row: {e}"),
        };
        let text = |column: &str| -> Result<Option<String>, SourceError> {
            match row.try_get::<Option<String>, _>(column) {
                Ok(value) => Ok(value.filter(|v| !v.is_empty())),
                Err(sqlx::Error::ColumnNotFound(_)) => Ok(None),
                Err(e) => Err(invalid(e)),
            }
        };
        // PostgreSQL's backend_start has a time zone; Redshift's times are UTC without one.
        let at = match row.try_get::<Option<DateTime<Utc>>, _>("at") {
            Ok(at) => at,
            Err(_) => row
                .try_get::<Option<NaiveDateTime>, _>("at")
                .map_err(invalid)?
                .map(|at| at.and_utc()),
        };
        Ok(Login {
            db_user: text("usename")?.unwrap_or_default(),
            at,
            database: text("datname")?,
            remote_host: text("remote_host")?,
            application: text("application")?,
            auth_method: text("auth_method")?,
            process: row
                .try_get::<Option<i32>, _>("pid")
                .map_err(invalid)?
                .map(i64::from),
            open_at,
        })
    }

    async fn query<'q>(
        &mut self,
        what: &str,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<PgRow>, SourceError> {
        fetch_rows(self.origin, self.conn, self.timeout, what, query).await
    }
}
