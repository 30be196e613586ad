//! Session activity: who logged in to a target and when, and the two findings it implies.
//!
//! - `post_deprovisioning_login`: an orphaned database user that logged in, or holds a
//!   session open now, after its person was deactivated. The deactivation time is the
//!   earliest upper bound idgraph knows: the inactive IdP user's `meta.lastModified`, or
//!   when idgraph first saw the orphan, whichever is earlier. An open session counts
//!   whenever it started: it is being held after the deactivation. The finding stays open
//!   while its orphan is open; a session that ends does not resolve it.
//! - `dormant_db_user`: a database user with no login for `mapping.dormant_after_days`,
//!   counted only once idgraph has watched the target's logins (and seen the user) that
//!   long.
//!
//! A target whose logins were not read in a run opens no such finding and changes none:
//! the ones open stay as they were (SPEC §3), and those of a user gone from the catalog, or
//! an orphan resolved, resolve with it.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::finding::{Finding, FindingKey, FindingKind, Reason, Severity};
use crate::identity::DbUser;

/// One login a target reported: a connection log's authentication, or a session open at
/// the time idgraph read the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// The database user, exactly as the catalog holds it.
    pub db_user: String,
    /// When the user authenticated (the session's start); `None` when the target hides it
    /// (PostgreSQL shows other users' `backend_start` only to `pg_read_all_stats`).
    pub at: Option<DateTime<Utc>>,
    /// The database the session is connected to.
    pub database: Option<String>,
    /// The client's address or host name.
    pub remote_host: Option<String>,
    /// The client's `application_name`.
    pub application: Option<String>,
    /// How the user authenticated (Redshift's `auth_method`: `password`, `IAM`, …).
    pub auth_method: Option<String>,
    /// The server process of the session: what `pg_terminate_backend` takes.
    pub process: Option<i64>,
    /// When idgraph last saw the session open; `None` for a login only a log recorded.
    pub open_at: Option<DateTime<Utc>>,
}

impl Login {
    /// When the login happened as far as idgraph can tell: its own time, else when idgraph
    /// saw the session open.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.at.or(self.open_at)
    }

    /// The last time this login showed its user active: when idgraph saw its session open,
    /// if later than the login itself (a session open for weeks is in use now).
    pub fn active_at(&self) -> Option<DateTime<Utc>> {
        self.time().max(self.open_at)
    }

    /// Whether this is the same login as `other` (one session seen by two runs, or by the
    /// log and as open).
    pub fn same_as(&self, other: &Login) -> bool {
        self.db_user == other.db_user
            && self.at.is_some()
            && self.at == other.at
            && self.process == other.process
    }
}

/// What a finding about logins shows an operator and an auditor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginEvidence {
    /// `post_deprovisioning_login`: the deactivation time the logins are compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated_at: Option<DateTime<Utc>>,
    /// The first login counted (for a dormant user: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_login_at: Option<DateTime<Utc>>,
    /// The last login counted; for a dormant user, the last login idgraph ever saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_at: Option<DateTime<Utc>>,
    /// How many logins (and sessions) are counted.
    pub count: u64,
    /// The database of the last login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The client address of the last login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_host: Option<String>,
    /// The application of the last login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// How the last login authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// Whether a session of the user was open when idgraph last read the target.
    pub session_open: bool,
    /// The server processes of those sessions, sorted: what would end them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<i64>,
    /// `dormant_db_user`: since when idgraph has watched the user's logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watched_since: Option<DateTime<Utc>>,
}

/// A target and a database user of it.
pub type UserKey = (String, String);

/// What earlier runs left: read from the store before a run.
#[derive(Debug, Clone, Default)]
pub struct LoginHistory {
    /// Per target: the first run that read its logins.
    pub watched_since: HashMap<String, DateTime<Utc>>,
    /// Per target and user: when idgraph first saw the user, in a catalog or a login.
    pub first_seen: HashMap<UserKey, DateTime<Utc>>,
    /// Per target and user: the last time idgraph saw the user log in or hold a session.
    pub last_active: HashMap<UserKey, DateTime<Utc>>,
    /// The stored login events of orphaned users.
    pub events: HashMap<UserKey, Vec<Login>>,
    /// When each open `orphaned_db_user` episode opened: when idgraph first saw the orphan.
    pub orphan_since: HashMap<UserKey, DateTime<Utc>>,
    /// The open `post_deprovisioning_login` and `dormant_db_user` findings.
    pub open: HashMap<FindingKey, Finding>,
}

/// What one run knows about logins.
#[derive(Debug, Clone, Copy)]
pub struct ActivityRun<'a> {
    /// When the run read the targets.
    pub now: DateTime<Utc>,
    /// The logins read this run, per target; a target missing here was not read.
    pub read: &'a HashMap<String, Vec<Login>>,
    /// What earlier runs left.
    pub history: &'a LoginHistory,
    /// Per IdP user id: `meta.lastModified` of the inactive ones that carry it.
    pub deactivated: &'a HashMap<String, DateTime<Utc>>,
    /// `mapping.dormant_after_days`, when on.
    pub dormant_after: Option<Duration>,
}

fn key(target: &str, db_user: &str) -> UserKey {
    (target.to_owned(), db_user.to_owned())
}

fn finding_key(kind: FindingKind, target: &str, db_user: &str) -> FindingKey {
    FindingKey {
        kind,
        target: target.to_owned(),
        subject: db_user.to_owned(),
    }
}

impl ActivityRun<'_> {
    /// The logins of `db_user` this run read on `target`, if it read the target.
    fn now_of<'l>(
        &'l self,
        target: &str,
        db_user: &'l str,
    ) -> Option<impl Iterator<Item = &'l Login>> {
        self.read
            .get(target)
            .map(move |logins| logins.iter().filter(move |l| l.db_user == db_user))
    }

    /// When the person behind `orphan` was deactivated, at the latest.
    fn deactivated_at(&self, orphan: &Finding, target: &str, db_user: &str) -> DateTime<Utc> {
        let mut bound = self
            .history
            .orphan_since
            .get(&key(target, db_user))
            .copied()
            .unwrap_or(self.now)
            .min(self.now);
        if orphan.reason == Reason::IdpUserInactive {
            if let Some(at) = orphan
                .idp_user_id
                .as_ref()
                .and_then(|id| self.deactivated.get(id))
            {
                bound = bound.min(*at);
            }
        }
        let before = self
            .history
            .open
            .get(&finding_key(
                FindingKind::PostDeprovisioningLogin,
                target,
                db_user,
            ))
            .and_then(|f| f.logins.as_ref())
            .and_then(|e| e.deactivated_at);
        before.map_or(bound, |before| bound.min(before))
    }
}

/// The `post_deprovisioning_login` findings of a run: one per orphan (an
/// `orphaned_db_user` of `findings`) that logged in or holds a session after its
/// deactivation, or whose finding is open already.
pub fn post_deprovisioning_logins(findings: &[Finding], run: &ActivityRun<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    for orphan in findings {
        let (FindingKind::OrphanedDbUser, Some(target), Some(db_user)) =
            (orphan.kind, &orphan.target, &orphan.db_user)
        else {
            continue;
        };
        let open = run.history.open.get(&finding_key(
            FindingKind::PostDeprovisioningLogin,
            target,
            db_user,
        ));
        let Some(now) = run.now_of(target, db_user) else {
            // Logins not read: what was open stays exactly as it was.
            found.extend(open.cloned());
            continue;
        };
        let bound = run.deactivated_at(orphan, target, db_user);
        let now: Vec<&Login> = now.collect();
        let stored = run
            .history
            .events
            .get(&key(target, db_user))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let counts = |l: &Login| {
            l.open_at.is_some_and(|at| at >= bound) || l.at.is_some_and(|at| at > bound)
        };
        let mut counted: Vec<&Login> = now.iter().copied().filter(|l| counts(l)).collect();
        for l in stored.iter().filter(|l| counts(l)) {
            if !now.iter().any(|n| n.same_as(l)) {
                counted.push(l);
            }
        }
        let evidence = if counted.is_empty() {
            match open.and_then(|f| f.logins.clone()) {
                // Every session ended, and the evidence outlived them.
                Some(mut evidence) => {
                    evidence.session_open = false;
                    evidence.processes.clear();
                    evidence
                }
                None => continue,
            }
        } else {
            evidence(&counted, bound, run.now)
        };
        found.push(Finding {
            kind: FindingKind::PostDeprovisioningLogin,
            severity: Severity::Critical,
            candidates: Vec::new(),
            logins: Some(evidence),
            ..orphan.clone()
        });
    }
    found
}

/// The evidence of logins `counted` after `deactivated_at`; sessions are open if idgraph
/// saw them open at `now`.
fn evidence(
    counted: &[&Login],
    deactivated_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> LoginEvidence {
    let times: Vec<DateTime<Utc>> = counted.iter().filter_map(|l| l.time()).collect();
    let last = counted
        .iter()
        .max_by_key(|l| (l.time(), l.process))
        .expect("counted is not empty");
    let mut processes: Vec<i64> = counted
        .iter()
        .filter(|l| l.open_at == Some(now))
        .filter_map(|l| l.process)
        .collect();
    processes.sort_unstable();
    processes.dedup();
    LoginEvidence {
        deactivated_at: Some(deactivated_at),
        first_login_at: times.iter().min().copied(),
        last_login_at: times.iter().max().copied(),
        count: counted.len() as u64,
        database: last.database.clone(),
        remote_host: last.remote_host.clone(),
        application: last.application.clone(),
        auth_method: last.auth_method.clone(),
        session_open: counted.iter().any(|l| l.open_at == Some(now)),
        processes,
        watched_since: None,
    }
}

/// The `dormant_db_user` findings of a run over `accounts`: the users of each target that
/// logins are watched for (see [`crate::Graph::login_accounts`]).
pub fn dormant_users<'a>(
    accounts: impl IntoIterator<Item = (&'a str, &'a DbUser)>,
    run: &ActivityRun<'_>,
) -> Vec<Finding> {
    let Some(after) = run.dormant_after else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (target, user) in accounts {
        let open =
            run.history
                .open
                .get(&finding_key(FindingKind::DormantDbUser, target, &user.name));
        let Some(now) = run.now_of(target, &user.name) else {
            found.extend(open.cloned());
            continue;
        };
        let user_key = key(target, &user.name);
        let watched_since = run
            .history
            .watched_since
            .get(target)
            .copied()
            .unwrap_or(run.now);
        let first_seen = run
            .history
            .first_seen
            .get(&user_key)
            .copied()
            .unwrap_or(run.now);
        let since = watched_since.max(first_seen);
        if run.now - since < after {
            continue;
        }
        let last = now
            .filter_map(Login::active_at)
            .chain(run.history.last_active.get(&user_key).copied())
            .max();
        if last.is_some_and(|last| run.now - last < after) {
            continue;
        }
        found.push(Finding {
            kind: FindingKind::DormantDbUser,
            reason: Reason::NoRecentLogin,
            severity: Severity::Low,
            target: Some(target.to_owned()),
            db_user: Some(user.name.clone()),
            ic_user_id: None,
            idp_user_id: None,
            user_name: None,
            superuser: user.superuser,
            matched_by: None,
            candidates: Vec::new(),
            logins: Some(LoginEvidence {
                last_login_at: last,
                watched_since: Some(since),
                ..LoginEvidence::default()
            }),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap()
    }

    fn orphan(db_user: &str, idp_user_id: Option<&str>) -> Finding {
        Finding {
            kind: FindingKind::OrphanedDbUser,
            reason: if idp_user_id.is_some() {
                Reason::IdpUserInactive
            } else {
                Reason::NoIdentityCenterUser
            },
            severity: Severity::High,
            target: Some("t".into()),
            db_user: Some(db_user.into()),
            ic_user_id: None,
            idp_user_id: idp_user_id.map(str::to_owned),
            user_name: None,
            superuser: false,
            matched_by: None,
            candidates: Vec::new(),
            logins: None,
        }
    }

    fn login(db_user: &str, hour: u32) -> Login {
        Login {
            db_user: db_user.into(),
            at: Some(at(hour)),
            database: Some("dev".into()),
            remote_host: Some("10.0.0.7".into()),
            application: Some("psql".into()),
            auth_method: Some("password".into()),
            process: Some(i64::from(hour)),
            open_at: None,
        }
    }

    fn session(db_user: &str, hour: u32, now: DateTime<Utc>) -> Login {
        Login {
            open_at: Some(now),
            ..login(db_user, hour)
        }
    }

    struct Case {
        read: HashMap<String, Vec<Login>>,
        history: LoginHistory,
        deactivated: HashMap<String, DateTime<Utc>>,
    }

    impl Case {
        fn new(logins: Vec<Login>) -> Self {
            Self {
                read: HashMap::from([("t".to_owned(), logins)]),
                history: LoginHistory::default(),
                deactivated: HashMap::new(),
            }
        }

        fn run(&self, now: DateTime<Utc>) -> ActivityRun<'_> {
            ActivityRun {
                now,
                read: &self.read,
                history: &self.history,
                deactivated: &self.deactivated,
                dormant_after: Some(Duration::days(1)),
            }
        }
    }

    #[test]
    fn a_login_after_the_last_modified_of_an_inactive_person_is_an_incident() {
        let mut case = Case::new(vec![
            login("IAMA:bob", 9),
            login("IAMA:bob", 11),
            login("IAMA:ann", 11),
        ]);
        case.deactivated.insert("idp-bob".into(), at(10));
        let found =
            post_deprovisioning_logins(&[orphan("IAMA:bob", Some("idp-bob"))], &case.run(at(12)));
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(
            (f.kind, f.severity),
            (FindingKind::PostDeprovisioningLogin, Severity::Critical)
        );
        assert_eq!(f.reason, Reason::IdpUserInactive);
        let e = f.logins.as_ref().unwrap();
        assert_eq!(e.deactivated_at, Some(at(10)));
        assert_eq!(
            (e.first_login_at, e.last_login_at, e.count),
            (Some(at(11)), Some(at(11)), 1)
        );
        assert_eq!(e.application.as_deref(), Some("psql"));
        assert!(!e.session_open);
    }

    #[test]
    fn without_last_modified_the_bound_is_when_idgraph_first_saw_the_orphan() {
        let mut case = Case::new(vec![login("IAMA:bob", 9), login("IAMA:bob", 11)]);
        case.history
            .orphan_since
            .insert(key("t", "IAMA:bob"), at(10));
        let found = post_deprovisioning_logins(&[orphan("IAMA:bob", None)], &case.run(at(12)));
        assert_eq!(found[0].logins.as_ref().unwrap().count, 1);
        // A login before both bounds is no incident.
        let case = Case::new(vec![login("IAMA:bob", 9)]);
        assert!(
            post_deprovisioning_logins(&[orphan("IAMA:bob", None)], &case.run(at(12))).is_empty()
        );
    }

    #[test]
    fn a_session_open_now_counts_whenever_it_started() {
        let now = at(12);
        let mut case = Case::new(vec![session("IAMA:bob", 8, now)]);
        case.deactivated.insert("idp-bob".into(), at(10));
        let found =
            post_deprovisioning_logins(&[orphan("IAMA:bob", Some("idp-bob"))], &case.run(now));
        let e = found[0].logins.as_ref().unwrap();
        assert!(e.session_open);
        assert_eq!(e.processes, [8]);
        assert_eq!(e.first_login_at, Some(at(8)));
    }

    #[test]
    fn the_finding_stays_open_after_the_session_ends_and_while_logins_are_not_read() {
        let now = at(12);
        let case = Case::new(vec![session("IAMA:bob", 11, now)]);
        let first = post_deprovisioning_logins(&[orphan("IAMA:bob", None)], &case.run(now));
        let mut later = Case::new(Vec::new());
        later.history.open.insert(first[0].key(), first[0].clone());
        later.history.orphan_since.insert(key("t", "IAMA:bob"), now);
        let kept = post_deprovisioning_logins(&[orphan("IAMA:bob", None)], &later.run(at(13)));
        assert_eq!(kept.len(), 1);
        let e = kept[0].logins.as_ref().unwrap();
        assert!(!e.session_open && e.processes.is_empty());
        assert_eq!(e.count, 1);
        // Logins not read: exactly as it was, session and all.
        later.read.clear();
        let unread = post_deprovisioning_logins(&[orphan("IAMA:bob", None)], &later.run(at(13)));
        assert_eq!(unread, first);
        // The orphan resolved: so does the incident.
        assert!(post_deprovisioning_logins(&[], &later.run(at(13))).is_empty());
    }

    #[test]
    fn stored_logins_count_once_with_the_session_seen_again() {
        let now = at(13);
        let mut case = Case::new(vec![session("IAMA:bob", 11, now)]);
        case.history
            .orphan_since
            .insert(key("t", "IAMA:bob"), at(10));
        case.history.events.insert(
            key("t", "IAMA:bob"),
            vec![session("IAMA:bob", 11, at(12)), login("IAMA:bob", 12)],
        );
        let found = post_deprovisioning_logins(&[orphan("IAMA:bob", None)], &case.run(now));
        let e = found[0].logins.as_ref().unwrap();
        assert_eq!((e.count, e.last_login_at), (2, Some(at(12))));
        assert!(e.session_open);
    }

    fn user(name: &str) -> DbUser {
        DbUser {
            name: name.into(),
            sysid: None,
            superuser: false,
        }
    }

    #[test]
    fn dormant_only_once_watched_long_enough_and_not_for_recent_logins() {
        let users = [user("quiet"), user("busy"), user("new")];
        let accounts = || users.iter().map(|u| ("t", u));
        let mut case = Case::new(vec![login("busy", 1)]);
        case.history.watched_since.insert("t".into(), at(0));
        for name in ["quiet", "busy"] {
            case.history.first_seen.insert(key("t", name), at(0));
        }
        case.history
            .first_seen
            .insert(key("t", "new"), at(0) + Duration::days(2));
        // Watched for less than a day: nothing yet.
        assert!(dormant_users(accounts(), &case.run(at(20))).is_empty());
        let now = at(0) + Duration::days(2) + Duration::hours(2);
        let found = dormant_users(accounts(), &case.run(now));
        let names: Vec<_> = found
            .iter()
            .map(|f| f.db_user.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            ["quiet", "busy"],
            "busy's last login is two days old; new is new"
        );
        assert_eq!(found[0].severity, Severity::Low);
        assert_eq!(found[0].logins.as_ref().unwrap().watched_since, Some(at(0)));
        case.history
            .last_active
            .insert(key("t", "quiet"), now - Duration::hours(1));
        assert_eq!(dormant_users(accounts(), &case.run(now)).len(), 1);
    }

    #[test]
    fn a_user_holding_a_session_open_now_is_not_dormant_however_old_its_login() {
        let users = [user("pool")];
        let now = at(0) + Duration::days(3);
        // A connection pool's session, logged in before idgraph watched, still open.
        let mut case = Case::new(vec![session("pool", 0, now)]);
        case.history.watched_since.insert("t".into(), at(1));
        case.history.first_seen.insert(key("t", "pool"), at(1));
        let found = dormant_users(users.iter().map(|u| ("t", u)), &case.run(now));
        assert!(found.is_empty(), "{found:?}");
    }
}
