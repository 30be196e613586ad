//! The logins idgraph observed (migration 0009): per target since when it reads them and
//! the high-water mark of its connection log, per user the first and last login, and the
//! login events of orphaned users. Outside the run chain: the evidence an auditor relies
//! on is the findings' own, which the chain covers.
//!
//! Login times are kept to the microsecond (RFC 3339 text in UTC), as Redshift's log has
//! them, so that a login read twice is recognised as one.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use idgraph_model::Login;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::{Store, StoreError};

/// A target and a database user of it.
type UserKey = (String, String);

/// What earlier runs stored about logins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredLogins {
    /// Per target: the first run that read its logins.
    pub watched_since: HashMap<String, DateTime<Utc>>,
    /// Per target: the newest login time its log delivered so far.
    pub high_water: HashMap<String, DateTime<Utc>>,
    /// Per target and user: when idgraph first saw the user.
    pub first_seen: HashMap<UserKey, DateTime<Utc>>,
    /// Per target and user: the first login observed.
    pub first_login: HashMap<UserKey, DateTime<Utc>>,
    /// Per target and user: the last time idgraph saw the user log in or hold a session.
    pub last_active: HashMap<UserKey, DateTime<Utc>>,
    /// The login events of orphaned users.
    pub events: HashMap<UserKey, Vec<Login>>,
}

/// What one run read of one target's logins, to store.
#[derive(Debug, Clone)]
pub struct TargetLogins<'a> {
    /// The target.
    pub target: &'a str,
    /// When the run read them.
    pub read_at: DateTime<Utc>,
    /// The logins and open sessions read.
    pub logins: &'a [Login],
    /// Users to note as seen now if idgraph did not know them (every account watched for
    /// dormancy); empty when dormant users are not watched.
    pub accounts: Vec<&'a str>,
    /// The users whose login events are kept: the orphaned ones.
    pub keep_events_of: HashSet<&'a str>,
}

/// A user's first and last login of one read, and when it was last active.
type Span = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, DateTime<Utc>);

/// Rows a batch of one statement writes: at most 8 parameters a row.
const BATCH: usize = 2_000;

fn format_micros(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Store {
    /// What earlier runs stored about the logins of `targets`; the per-user first and
    /// last logins only `with_users` (they are needed for dormant users only).
    ///
    /// # Errors
    /// [`StoreError::Query`] if reading fails, [`StoreError::Corrupt`] if a time cannot be
    /// read back.
    pub async fn stored_logins(
        &self,
        targets: &[&str],
        with_users: bool,
    ) -> Result<StoredLogins, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(self.query("read stored logins"))?;
        let wanted: HashSet<&str> = targets.iter().copied().collect();
        let mut stored = StoredLogins::default();
        let time = |text: &str, column: &str, which: &dyn Fn() -> String| {
            self.parse_time(text, column, which)
        };
        for row in sqlx::query("SELECT target, watched_since, high_water FROM login_targets")
            .fetch_all(&mut *conn)
            .await
            .map_err(self.query("read login_targets"))?
        {
            let target: String = row.get("target");
            if !wanted.contains(target.as_str()) {
                continue;
            }
            let which = || format!("login_targets row {target:?}");
            let since: String = row.get("watched_since");
            stored
                .watched_since
                .insert(target.clone(), time(&since, "watched_since", &which)?);
            if let Some(mark) = row.get::<Option<String>, _>("high_water") {
                stored
                    .high_water
                    .insert(target.clone(), time(&mark, "high_water", &which)?);
            }
        }
        if with_users {
            for row in sqlx::query(
                "SELECT target, db_user, first_seen, first_login, last_active FROM db_user_logins",
            )
            .fetch_all(&mut *conn)
            .await
            .map_err(self.query("read db_user_logins"))?
            {
                let key: UserKey = (row.get("target"), row.get("db_user"));
                if !wanted.contains(key.0.as_str()) {
                    continue;
                }
                let which = || format!("db_user_logins row {key:?}");
                let first_seen: String = row.get("first_seen");
                stored
                    .first_seen
                    .insert(key.clone(), time(&first_seen, "first_seen", &which)?);
                if let Some(at) = row.get::<Option<String>, _>("first_login") {
                    stored
                        .first_login
                        .insert(key.clone(), time(&at, "first_login", &which)?);
                }
                if let Some(at) = row.get::<Option<String>, _>("last_active") {
                    stored
                        .last_active
                        .insert(key.clone(), time(&at, "last_active", &which)?);
                }
            }
        }
        for row in sqlx::query(
            "SELECT id, target, db_user, at, process, database, remote_host, application, \
                    auth_method, open_at FROM login_events ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(self.query("read login_events"))?
        {
            let id: i64 = row.get("id");
            let which = || format!("login_events row {id}");
            let key: UserKey = (row.get("target"), row.get("db_user"));
            if !wanted.contains(key.0.as_str()) {
                continue;
            }
            let at: String = row.get("at");
            let process: i64 = row.get("process");
            let login = Login {
                db_user: key.1.clone(),
                at: if at.is_empty() {
                    None
                } else {
                    Some(time(&at, "at", &which)?)
                },
                database: row.get("database"),
                remote_host: row.get("remote_host"),
                application: row.get("application"),
                auth_method: row.get("auth_method"),
                process: (process >= 0).then_some(process),
                open_at: row
                    .get::<Option<String>, _>("open_at")
                    .map(|at| time(&at, "open_at", &which))
                    .transpose()?,
            };
            stored.events.entry(key).or_default().push(login);
        }
        Ok(stored)
    }

    /// Stores what run `run_id` read of each target's logins, in one transaction: the
    /// target's high-water mark (and since when it is watched), each user's first and last
    /// login, the users first seen now, and the login events of the orphaned users.
    ///
    /// # Errors
    /// [`StoreError::Query`] if a statement fails; nothing is written then, and the next run
    /// reads the log again from the mark before.
    pub async fn record_logins(
        &self,
        run_id: i64,
        targets: &[TargetLogins<'_>],
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query("begin a transaction"))?;
        for t in targets {
            self.record_target(&mut tx, run_id, t).await?;
        }
        tx.commit().await.map_err(self.query("commit the logins"))?;
        Ok(())
    }

    async fn record_target(
        &self,
        tx: &mut SqliteConnection,
        run_id: i64,
        t: &TargetLogins<'_>,
    ) -> Result<(), StoreError> {
        let read_at = format_micros(t.read_at);
        let mark = t
            .logins
            .iter()
            .filter(|l| l.open_at.is_none())
            .filter_map(|l| l.at)
            .max()
            .map(format_micros);
        sqlx::query(
            "INSERT INTO login_targets (target, watched_since, high_water) VALUES (?, ?, ?) \
             ON CONFLICT (target) DO UPDATE SET high_water = CASE \
                 WHEN high_water IS NULL OR excluded.high_water > high_water \
                 THEN coalesce(excluded.high_water, high_water) ELSE high_water END",
        )
        .bind(t.target)
        .bind(&read_at)
        .bind(&mark)
        .execute(&mut *tx)
        .await
        .map_err(self.query("record the login mark"))?;

        // Per user: the first and last login of this read, and the last time active.
        let mut users: HashMap<&str, Span> = HashMap::new();
        for login in t.logins {
            let Some(active) = login.active_at() else {
                continue;
            };
            let entry = users
                .entry(login.db_user.as_str())
                .or_insert((login.at, login.at, active));
            entry.0 = match (entry.0, login.at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            entry.1 = entry.1.max(login.at);
            entry.2 = entry.2.max(active);
        }
        let users: Vec<_> = users.into_iter().collect();
        for batch in users.chunks(BATCH) {
            let mut upsert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO db_user_logins \
                 (target, db_user, first_seen, first_login, last_login, last_active) ",
            );
            upsert.push_values(batch, |mut row, (user, (first, last, active))| {
                row.push_bind(t.target)
                    .push_bind(*user)
                    .push_bind(read_at.clone())
                    .push_bind(first.map(format_micros))
                    .push_bind(last.map(format_micros))
                    .push_bind(format_micros(*active));
            });
            upsert.push(
                " ON CONFLICT (target, db_user) DO UPDATE SET \
                 first_login = CASE WHEN first_login IS NULL OR excluded.first_login < first_login \
                     THEN coalesce(excluded.first_login, first_login) ELSE first_login END, \
                 last_login = CASE WHEN last_login IS NULL OR excluded.last_login > last_login \
                     THEN coalesce(excluded.last_login, last_login) ELSE last_login END, \
                 last_active = CASE WHEN last_active IS NULL OR excluded.last_active > last_active \
                     THEN excluded.last_active ELSE last_active END",
            );
            upsert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(self.query("record the users' logins"))?;
        }
        for batch in t.accounts.chunks(BATCH) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO db_user_logins (target, db_user, first_seen) ",
            );
            insert.push_values(batch, |mut row, user| {
                row.push_bind(t.target)
                    .push_bind(*user)
                    .push_bind(read_at.clone());
            });
            insert.push(" ON CONFLICT (target, db_user) DO NOTHING");
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(self.query("record the users seen"))?;
        }
        let events: Vec<&Login> = t
            .logins
            .iter()
            .filter(|l| t.keep_events_of.contains(l.db_user.as_str()))
            .collect();
        for batch in events.chunks(BATCH / 2) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO login_events (run_id, target, db_user, at, process, database, \
                 remote_host, application, auth_method, open_at) ",
            );
            insert.push_values(batch, |mut row, login| {
                row.push_bind(run_id)
                    .push_bind(t.target)
                    .push_bind(login.db_user.as_str())
                    .push_bind(login.at.map(format_micros).unwrap_or_default())
                    .push_bind(login.process.unwrap_or(-1))
                    .push_bind(login.database.as_deref())
                    .push_bind(login.remote_host.as_deref())
                    .push_bind(login.application.as_deref())
                    .push_bind(login.auth_method.as_deref())
                    .push_bind(login.open_at.map(format_micros));
            });
            insert.push(
                " ON CONFLICT (target, db_user, at, process) DO UPDATE SET \
                 run_id = excluded.run_id, open_at = coalesce(excluded.open_at, open_at)",
            );
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(self.query("record login events"))?;
        }
        Ok(())
    }
}

/// Removes the login events last seen by the runs retention removed (through `run`).
pub(crate) async fn prune(conn: &mut SqliteConnection, run: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_events WHERE run_id <= ?")
        .bind(run)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456)
    }

    fn login(user: &str, hour: u32, open: Option<DateTime<Utc>>) -> Login {
        Login {
            db_user: user.into(),
            at: Some(at(hour)),
            database: Some("dev".into()),
            remote_host: Some("10.0.0.7".into()),
            application: Some("tableau 'ü'".into()),
            auth_method: None,
            process: Some(7),
            open_at: open,
        }
    }

    #[tokio::test]
    async fn logins_round_trip_and_a_session_seen_twice_is_one_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        fn write(logins: &[Login], read_at: DateTime<Utc>) -> TargetLogins<'_> {
            TargetLogins {
                target: "t",
                read_at,
                logins,
                accounts: vec!["quiet"],
                keep_events_of: HashSet::from(["IAMA:bob"]),
            }
        }
        let first = [login("IAMA:bob", 9, None), login("ann", 10, Some(at(11)))];
        store
            .record_logins(1, &[write(&first, at(11))])
            .await
            .unwrap();
        let again = [login("IAMA:bob", 9, Some(at(12)))];
        store
            .record_logins(2, &[write(&again, at(12))])
            .await
            .unwrap();

        let stored = store.stored_logins(&["t"], true).await.unwrap();
        assert_eq!(stored.watched_since["t"], at(11));
        assert_eq!(stored.high_water["t"], at(9), "the log's newest login");
        let bob = ("t".to_owned(), "IAMA:bob".to_owned());
        assert_eq!(stored.events[&bob].len(), 1);
        assert_eq!(stored.events[&bob][0].open_at, Some(at(12)));
        assert_eq!(
            stored.events[&bob][0].application.as_deref(),
            Some("tableau 'ü'")
        );
        assert_eq!(stored.last_active[&bob], at(12));
        assert_eq!(stored.first_login[&bob], at(9));
        assert!(stored
            .first_seen
            .contains_key(&("t".to_owned(), "quiet".to_owned())));
        assert!(!stored
            .events
            .contains_key(&("t".to_owned(), "ann".to_owned())));
        assert!(store
            .stored_logins(&["other"], true)
            .await
            .unwrap()
            .events
            .is_empty());
    }
}
