//! Session activity in a run: after the catalogs, read each target's logins (since the
//! high-water mark the store keeps) and its open sessions; derive the findings about
//! logins with the model; store what the run saw once the run is recorded.
//!
//! A target whose logins cannot be read adds a failed source `TARGET:logins` to the run,
//! which makes it partial: no finding about its logins opens, changes or resolves from the
//! missing data (SPEC §3), and the run says why.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use idgraph_model::activity::{dormant_users, post_deprovisioning_logins};
use idgraph_model::{
    ActivityRun, Finding, FindingKind, Graph, IdpUser, Login, LoginHistory, Mapping,
};
use idgraph_sources::TargetRole;
use idgraph_store::{Episode, SourceRecord, SourceStatus, Store, StoreError, TargetLogins};
use tracing::{info, warn};

/// The suffix of the source a target's logins are recorded as (`analytics:logins`); no
/// target may be named so (see the config's validation).
pub const SOURCE_SUFFIX: &str = ":logins";

/// The logins a run read and what earlier runs left.
#[derive(Debug, Default)]
pub struct Activity {
    /// When the run read the targets: open sessions are stamped with it.
    now: DateTime<Utc>,
    /// The logins read, per target; a target missing was not read.
    read: HashMap<String, Vec<Login>>,
    /// A source record per target whose logins were read or tried.
    pub records: Vec<SourceRecord>,
    /// What earlier runs left.
    history: LoginHistory,
    /// `mapping.dormant_after_days`.
    dormant_after: Option<Duration>,
}

/// Reads the logins of each of `targets` whose catalog was `fetched`, since `since` of its
/// name, at most `concurrency` at a time: the logins per target, open sessions stamped
/// `now`, and a source record per target that has logins.
pub async fn read_logins(
    targets: &[Box<TargetRole>],
    fetched: &HashSet<&str>,
    since: impl Fn(&str) -> Option<DateTime<Utc>>,
    concurrency: usize,
    now: DateTime<Utc>,
) -> (HashMap<String, Vec<Login>>, Vec<SourceRecord>) {
    let reads = stream::iter(
        targets
            .iter()
            .filter(|t| fetched.contains(t.name()))
            .map(|t| -> BoxFuture<'_, _> {
                let since = since(t.name());
                Box::pin(async move {
                    let start = Instant::now();
                    (t, t.logins(since).await, start.elapsed())
                })
            })
            .collect::<Vec<_>>(),
    )
    .buffered(concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    let mut read = HashMap::new();
    let mut records = Vec::new();
    for (target, result, took) in reads {
        let mut record = SourceRecord {
            name: source_name(target.name()),
            kind: "logins".to_owned(),
            status: SourceStatus::Failed,
            objects: None,
            digest: None,
            error: None,
            duration_ms: took.as_millis() as u64,
        };
        match result {
            Ok(None) => continue,
            Ok(Some(mut logins)) => {
                for login in &mut logins {
                    if login.open_at.is_some() {
                        login.open_at = Some(now);
                    }
                }
                info!(target_name = %target.name(), logins = logins.len(), "Read the logins.");
                record.status = SourceStatus::Ok;
                record.objects = Some(logins.len() as u64);
                read.insert(target.name().to_owned(), logins);
            }
            Err(error) => {
                let text = error.to_report();
                warn!(target_name = %target.name(), error = %text, kind = error.kind(), "Cannot read the logins; findings about them are neither opened nor resolved.");
                record.error = Some(text);
            }
        }
        records.push(record);
    }
    (read, records)
}

/// The source name of `target`'s logins.
pub fn source_name(target: &str) -> String {
    format!("{target}{SOURCE_SUFFIX}")
}

impl Activity {
    /// Reads the logins of each of `targets` whose catalog `fetched` holds, at most
    /// `concurrency` at a time, with what the store keeps of earlier runs.
    ///
    /// # Errors
    /// Only when the store cannot be read; a target that fails is a failed record.
    pub async fn read(
        store: &Store,
        targets: &[Box<TargetRole>],
        fetched: &HashSet<&str>,
        concurrency: usize,
        mapping: &Mapping,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
        let dormant_after = mapping
            .dormant_after_days
            .map(|days| Duration::days(i64::from(days)));
        let stored = store.stored_logins(&names, dormant_after.is_some()).await?;
        let (read, records) = read_logins(
            targets,
            fetched,
            |name| stored.high_water.get(name).copied(),
            concurrency,
            now,
        )
        .await;
        let mut activity = Activity {
            now,
            read,
            records,
            dormant_after,
            ..Activity::default()
        };
        activity.history = LoginHistory {
            watched_since: stored.watched_since,
            first_seen: stored.first_seen,
            last_active: stored.last_active,
            events: stored.events,
            ..LoginHistory::default()
        };
        Ok(activity)
    }

    /// Takes from the episodes open before the run when idgraph first saw each orphan, and
    /// the findings about logins that are open.
    pub fn remember(&mut self, open: &[Episode]) {
        for episode in open {
            let f = &episode.finding;
            match (f.kind, &f.target, &f.db_user) {
                (FindingKind::OrphanedDbUser, Some(target), Some(db_user)) => {
                    self.history
                        .orphan_since
                        .insert((target.clone(), db_user.clone()), episode.opened_at);
                }
                (FindingKind::PostDeprovisioningLogin | FindingKind::DormantDbUser, _, _) => {
                    self.history.open.insert(f.key(), f.clone());
                }
                _ => {}
            }
        }
    }

    /// The findings about logins that `graph`, with its `findings`, implies this run.
    /// `idp` are the IdP users the graph was built from, for when each left.
    pub fn findings(&self, graph: &Graph, findings: &[Finding], idp: &[IdpUser]) -> Vec<Finding> {
        let deactivated: HashMap<String, DateTime<Utc>> = idp
            .iter()
            .filter(|u| !u.active)
            .filter_map(|u| Some((u.id.clone(), u.last_modified?)))
            .collect();
        let run = ActivityRun {
            now: self.now,
            read: &self.read,
            history: &self.history,
            deactivated: &deactivated,
            dormant_after: self.dormant_after,
        };
        let mut found = post_deprovisioning_logins(findings, &run);
        found.extend(dormant_users(graph.login_accounts(), &run));
        found
    }

    /// The accounts to note as seen (when dormant users are watched), per target.
    pub fn accounts(&self, graph: &Graph) -> HashMap<String, Vec<String>> {
        let mut accounts: HashMap<String, Vec<String>> = HashMap::new();
        if self.dormant_after.is_some() {
            for (target, user) in graph.login_accounts() {
                if self.read.contains_key(target) {
                    accounts
                        .entry(target.to_owned())
                        .or_default()
                        .push(user.name.clone());
                }
            }
        }
        accounts
    }

    /// Stores what run `run_id` read: the marks, each user's logins, the users first seen
    /// (`accounts`), and the login events of the orphans among `findings`.
    ///
    /// # Errors
    /// When the store fails; the next run then reads the logs again from the older mark.
    pub async fn record(
        &self,
        store: &Store,
        run_id: i64,
        findings: &[Finding],
        accounts: &HashMap<String, Vec<String>>,
    ) -> Result<(), StoreError> {
        let mut orphans: HashMap<&str, HashSet<&str>> = HashMap::new();
        for f in findings {
            if let (FindingKind::OrphanedDbUser, Some(target), Some(db_user)) =
                (f.kind, &f.target, &f.db_user)
            {
                orphans.entry(target).or_default().insert(db_user);
            }
        }
        let writes: Vec<TargetLogins<'_>> = self
            .read
            .iter()
            .map(|(target, logins)| TargetLogins {
                target,
                read_at: self.now,
                logins,
                accounts: accounts
                    .get(target)
                    .map(|a| a.iter().map(String::as_str).collect())
                    .unwrap_or_default(),
                keep_events_of: orphans.remove(target.as_str()).unwrap_or_default(),
            })
            .collect();
        store.record_logins(run_id, &writes).await
    }
}
