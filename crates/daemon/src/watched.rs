//! Watched runs: a targeted re-check of the IdP users the watcher saw change, against the
//! identities of the last full run ([`Known`]), recorded in the store like any run but
//! with its scope.
//!
//! A watched run asks only for what the changed people touch: their Identity Center users
//! (`GetUserId`/`DescribeUser`; an export is read again only if it changed since the full
//! run) and, per target, the `pg_user` rows of the names the mapping rules can give them.
//! It derives their findings with the rules of a full run ([`idgraph_model::focus`]) and
//! opens, updates or resolves only findings about the identities it evaluated. The failure
//! semantics of a full run hold per source: when Identity Center cannot be asked, nothing
//! is evaluated; a target that fails keeps its findings as they are.

use std::collections::HashSet;
use std::time::Instant;

use chrono::Utc;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use idgraph_model::focus::Universe;
use idgraph_model::{DbUser, Scope};
use idgraph_sources::scim::ChangedUser;
use idgraph_sources::{SourceError, Wanted};
use idgraph_store::{NewRun, RunScope, RunStatus, SourceRecord, SourceStatus};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::config::{IdpSettings, Settings};
use crate::reconcile::{Context, ReconcileError, RunReport};

/// Above this many changed users in one look, a full run is cheaper than asking Identity
/// Center about each person (about five requests a person, at 20 a second).
const MOST_PEOPLE_RECHECKED: usize = 200;

/// The identities of the last full run that built the graph, kept while the watcher can
/// use them.
#[derive(Default)]
pub struct Known {
    kept: bool,
    universe: Mutex<Option<Kept>>,
}

/// What a full run left for re-checks.
struct Kept {
    universe: Universe,
    /// Identity Center's [`revision`](idgraph_sources::Source::revision) before that run
    /// fetched it: while it is the same, Identity Center would answer as the universe does.
    ic_revision: Option<String>,
}

impl Known {
    /// Kept when `settings` turn on a watcher, which needs a SCIM IdP.
    pub fn for_settings(settings: &Settings) -> Self {
        Self {
            kept: settings.watch_interval.is_some() && matches!(settings.idp, IdpSettings::Scim(_)),
            universe: Mutex::new(None),
        }
    }

    /// Whether full runs keep their identities for re-checks.
    pub fn is_kept(&self) -> bool {
        self.kept
    }

    /// Replaces what is known with the identities of a full run, which fetched Identity
    /// Center after it had revision `ic_revision`.
    pub(crate) async fn replace(&self, universe: Universe, ic_revision: Option<String>) {
        *self.universe.lock().await = Some(Kept {
            universe,
            ic_revision,
        });
    }
}

/// Re-checks the people behind `changed` and records the run. `None` when a full run
/// should be made instead: no full run has built the graph yet in this process (or since
/// the configuration was reloaded), or too many people changed at once.
///
/// The caller holds the lock that keeps runs apart.
pub(crate) async fn recheck(
    ctx: &Context,
    changed: &[ChangedUser],
) -> Option<Result<RunReport, ReconcileError>> {
    if changed.len() > MOST_PEOPLE_RECHECKED {
        info!(
            users = changed.len(),
            most = MOST_PEOPLE_RECHECKED,
            "Many IdP users changed at once; a full run checks them."
        );
        return None;
    }
    let mut known = ctx.known.universe.lock().await;
    let kept = known.as_mut()?;
    Some(run(ctx, kept, changed).await)
}

/// What a watched run read from a target: its record, and the users if it answered.
type TargetRead = (SourceRecord, Option<(String, Vec<DbUser>)>);

/// The history's record of what source `name` of `kind` answered since `start`.
fn record(
    name: &str,
    kind: &str,
    start: Instant,
    objects: Result<usize, &SourceError>,
) -> SourceRecord {
    let (status, objects, error) = match objects {
        Ok(n) => (SourceStatus::Ok, Some(n as u64), None),
        Err(e) => {
            warn!(source = %name, error = %e.to_report(), kind = e.kind(), "Source failed during a watched run; its findings are neither opened nor resolved.");
            (SourceStatus::Failed, None, Some(e.to_report()))
        }
    };
    SourceRecord {
        name: name.to_owned(),
        kind: kind.to_owned(),
        status,
        objects,
        digest: None,
        error,
        duration_ms: start.elapsed().as_millis() as u64,
    }
}

async fn run(
    ctx: &Context,
    kept: &mut Kept,
    changed: &[ChangedUser],
) -> Result<RunReport, ReconcileError> {
    let universe = &mut kept.universe;
    let started_at = Utc::now();
    let idp = ctx.sources.idp.as_ref();
    let mut sources = vec![SourceRecord {
        name: idp.name().to_owned(),
        kind: idp.kind().to_owned(),
        status: SourceStatus::Ok,
        objects: Some(changed.len() as u64),
        digest: None,
        error: None,
        duration_ms: 0,
    }];
    let mut people = universe.people(changed.iter().map(|c| c.user.clone()).collect());
    let mut evaluated = HashSet::new();
    let mut evaluation = Default::default();

    let ic = ctx.sources.identity_center.as_ref();
    let start = Instant::now();
    let fresh = if kept.ic_revision.is_some() && ic.revision().await == kept.ic_revision {
        debug!("Identity Center has not changed since the full run; it answers from that.");
        Ok(universe.answer(&people.lookup))
    } else {
        ic.fetch_wanted(&Wanted::IcUsers(&people.lookup)).await
    };
    sources.push(record(
        ic.name(),
        ic.kind(),
        start,
        fresh.as_ref().map(Vec::len),
    ));
    if let Ok(fresh) = fresh {
        universe.apply(&mut people, fresh);
        evaluated.insert(Scope::IdentityCenter);
        let universe: &Universe = universe;
        let people = &people;
        // Boxed up front, as a full run's fetches are, so that the future stays Send.
        let fetches: Vec<BoxFuture<'_, TargetRead>> = universe
            .targets()
            .filter_map(|name| ctx.sources.targets.iter().find(|t| t.name() == name))
            .map(|target| -> BoxFuture<'_, _> {
                Box::pin(async move {
                    let names = universe.candidates(people, target.name());
                    let start = Instant::now();
                    let read = target.fetch_wanted(&Wanted::DbUsers(&names)).await;
                    let objects = read.as_ref().map(|t| t.users.len());
                    let record = record(target.name(), target.kind(), start, objects);
                    (record, read.ok().map(|t| (t.name, t.users)))
                })
            })
            .collect();
        let reads: Vec<_> = stream::iter(fetches)
            .buffered(ctx.sources.target_concurrency)
            .collect()
            .await;
        let mut read = Vec::with_capacity(reads.len());
        for (record, users) in reads {
            sources.push(record);
            if let Some((name, users)) = users {
                evaluated.insert(Scope::Target(name.clone()));
                read.push((name, users));
            }
        }
        evaluation = universe.evaluate(people, read);
    }

    let status = if sources.iter().all(|s| s.status == SourceStatus::Ok) {
        RunStatus::Complete
    } else {
        RunStatus::Partial
    };
    let mut idp_users: Vec<String> = people.idp_ids().map(str::to_owned).collect();
    idp_users.sort();
    let mut subjects: Vec<_> = evaluation.subjects.into_iter().collect();
    subjects.sort();
    let run = NewRun {
        started_at,
        finished_at: Utc::now(),
        status,
        sources,
        scope: Some(RunScope {
            idp_users,
            subjects,
        }),
    };
    let recorded = ctx
        .store
        .record_run(&run, &evaluation.findings, &evaluated)
        .await?;
    info!(
        run_id = recorded.run_id,
        people = changed.len(),
        evaluated = run.scope.as_ref().map_or(0, |s| s.subjects.len()),
        opened = recorded.opened.len(),
        resolved = recorded.resolved.len(),
        "Recorded a watched run."
    );
    Ok(RunReport::new(run, recorded, None))
}
