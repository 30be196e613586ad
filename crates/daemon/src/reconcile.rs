//! One reconciliation run: fetch every source, build the graph, diff, record.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use idgraph_model::{
    check_snapshot, focus::Universe, Accounting, AsSnapshot, Finding, Graph, IcUser, IdpUser,
    Mapping, Scope, ShrinkGuard, Suspicion, TargetSnapshot,
};
use idgraph_sources::{
    Deadline, IdentityCenterRole, IdpRole, Progress, Source, SourceError, TargetRole,
};
use idgraph_store::{
    Episode, NewRun, OpenCount, RecordedRun, RunScope, RunStatus, SourceRecord, SourceStatus,
    Store, StoreError,
};
use tracing::{debug, info, warn};

use crate::activity::Activity;
use crate::config::Settings;
use crate::watched::Known;

/// A source for each configured system.
pub struct Sources {
    /// The identity provider.
    pub idp: Box<IdpRole>,
    /// IAM Identity Center.
    pub identity_center: Box<IdentityCenterRole>,
    /// The database targets, in config order.
    pub targets: Vec<Box<TargetRole>>,
    /// How many targets are fetched at once.
    pub target_concurrency: usize,
}

impl Sources {
    /// Builds a source for each system `settings` configures (each settings type's `build`
    /// knows its kinds) and bounds each by its deadline; long fetches report to `progress`.
    /// Opens no connection: AWS credentials and endpoints resolve lazily.
    ///
    /// # Errors
    ///
    /// When a source cannot be set up from its settings (an unusable SCIM URL).
    pub async fn new(
        settings: &Settings,
        progress: Arc<dyn Progress>,
    ) -> Result<Self, SourceError> {
        let idp = settings.idp.build(progress.clone())?;
        let identity_center = settings.identity_center.build(progress).await;
        let targets = targets(settings).await;
        Ok(Self {
            idp: Box::new(Deadline::new(idp, settings.idp_deadline)),
            identity_center: Box::new(Deadline::new(
                identity_center,
                settings.identity_center_deadline,
            )),
            targets,
            target_concurrency: settings.target_concurrency.max(1),
        })
    }

    /// Fetches every source once, targets at most `target_concurrency` at a time, and
    /// fails those whose snapshot `guard` does not trust.
    async fn fetch_all(
        &self,
        guard: &Guard,
    ) -> (
        Fetched<Vec<IdpUser>>,
        Fetched<Vec<IcUser>>,
        Vec<Fetched<TargetSnapshot>>,
    ) {
        tokio::join!(
            fetch(self.idp.as_ref(), guard),
            fetch(self.identity_center.as_ref(), guard),
            // Boxed up front: a closure over `&Box<TargetRole>` inside the stream would
            // make the run's future not provably Send for the scheduler's tasks.
            stream::iter(
                self.targets
                    .iter()
                    .map(|t| -> BoxFuture<'_, Fetched<TargetSnapshot>> {
                        Box::pin(fetch(t.as_ref(), guard))
                    })
                    .collect::<Vec<_>>()
            )
            .buffered(self.target_concurrency)
            .collect::<Vec<_>>()
        )
    }

    /// Tries every source once, as `idgraph check` does: what each would deliver, or why not.
    /// Without a history, only what a snapshot shows on its own can make it suspicious.
    /// Each target's logins are read for the last day: enough to tell whether idgraph
    /// may read them and sees more than its own.
    pub async fn check(&self) -> Vec<SourceRecord> {
        let (idp, ic, targets) = self.fetch_all(&Guard::default()).await;
        let now = Utc::now();
        let fetched: HashSet<&str> = targets
            .iter()
            .filter(|t| t.snapshot.is_some())
            .map(|t| t.record.name.as_str())
            .collect();
        let (_, logins) = crate::activity::read_logins(
            &self.targets,
            &fetched,
            |_| Some(now - chrono::Duration::days(1)),
            self.target_concurrency,
            now,
        )
        .await;
        [idp.record, ic.record]
            .into_iter()
            .chain(targets.iter().map(|fetched| fetched.record.clone()))
            .chain(logins)
            .collect()
    }
}

/// A source for each configured target, in config order, each bounded by its deadline:
/// what a remediation plan reads catalogs through, without the IdP and Identity Center.
pub async fn targets(settings: &Settings) -> Vec<Box<TargetRole>> {
    let mut targets: Vec<Box<TargetRole>> = Vec::with_capacity(settings.targets.len());
    for target in &settings.targets {
        targets.push(Box::new(Deadline::new(
            target.build().await,
            target.deadline,
        )));
    }
    targets
}

/// Everything a run needs: the settings, the store, and a source per system.
pub struct Context {
    /// The validated configuration.
    pub settings: Settings,
    /// The drift history.
    pub store: Store,
    /// A source per system.
    pub sources: Sources,
    /// Sources whose shrink the operator confirmed for the next run (`--accept-shrink`).
    pub accept_shrink: HashSet<String>,
    /// The identities of the last full run, when the daemon's watcher re-checks changes.
    pub known: Known,
}

impl Context {
    /// Opens (and migrates) the store and builds a source for each configured system.
    ///
    /// # Errors
    ///
    /// When a source cannot be set up, or the store cannot be opened or migrated.
    pub async fn open(settings: Settings, progress: Arc<dyn Progress>) -> anyhow::Result<Self> {
        let sources = Sources::new(&settings, progress).await?;
        let store = Store::open(&settings.store_path).await?;
        Ok(Self {
            settings,
            store,
            sources,
            accept_shrink: HashSet::new(),
            known: Known::default(),
        })
    }
}

/// What one run found and changed.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run's id in the store.
    pub run_id: i64,
    /// The run's hash, the head of the run chain after it.
    pub chain_head: String,
    /// `complete` when every source was fetched completely, else `partial`.
    pub status: RunStatus,
    /// When fetching began.
    pub started_at: DateTime<Utc>,
    /// When the run was recorded.
    pub finished_at: DateTime<Utc>,
    /// Per source: status, object count, digest, error.
    pub sources: Vec<SourceRecord>,
    /// What a watched run evaluated; `None` for a full run.
    pub scope: Option<RunScope>,
    /// How the database users were accounted for; `None` when the IdP or Identity Center
    /// failed and no graph was built.
    pub accounting: Option<Accounting>,
    /// The findings open after the run: every one after a full run; after a watched run,
    /// only those about its scope.
    pub open: Vec<Episode>,
    /// How many findings are open after the run, every one.
    pub open_counts: Vec<OpenCount>,
    /// Episodes this run opened.
    pub opened: Vec<Episode>,
    /// Episodes this run resolved.
    pub resolved: Vec<Episode>,
}

impl RunReport {
    /// The report of `run`, as the store `recorded` it.
    pub(crate) fn new(run: NewRun, recorded: RecordedRun, accounting: Option<Accounting>) -> Self {
        Self {
            run_id: recorded.run_id,
            chain_head: recorded.chain_head,
            status: run.status,
            started_at: run.started_at,
            finished_at: run.finished_at,
            sources: run.sources,
            scope: run.scope,
            accounting,
            open: recorded.open,
            open_counts: recorded.open_counts,
            opened: recorded.opened,
            resolved: recorded.resolved,
        }
    }
}

/// Why a run could not be recorded at all (a failed source does not fail the run).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store rejected the run; nothing of it was kept.
    // Not "{0}": the store's error is the source, and printing both repeats it.
    #[error("cannot record the run")]
    Store(#[from] StoreError),
    /// Building the graph panicked or was cancelled.
    #[error("the identity graph could not be built: {0}")]
    Graph(String),
}

/// What makes a snapshot suspicious in this run (SPEC §3).
#[derive(Debug, Default)]
struct Guard {
    /// The object count of each source's last complete snapshot.
    last: HashMap<String, u64>,
    /// How far a source may shrink from it.
    shrink: ShrinkGuard,
    /// Sources whose shrink an operator confirmed for this run (`--accept-shrink`).
    accepted: HashSet<String>,
}

impl Guard {
    /// Whether a snapshot of `objects` objects from source `name` can be used, given what
    /// [`check_snapshot`] found in it (`own`); every suspicion is an error.
    fn judge(
        &self,
        name: &str,
        objects: u64,
        own: Result<(), Suspicion>,
    ) -> Result<(), SourceError> {
        let suspicion = match own {
            Err(suspicion) => suspicion,
            Ok(()) => match self.shrink.check(self.last.get(name).copied(), objects) {
                Ok(()) => return Ok(()),
                Err(suspicion) if self.accepted.contains(name) => {
                    warn!(source = %name, objects, last = ?self.last.get(name), detail = %suspicion, "Accepted a shrink the operator confirmed.");
                    return Ok(());
                }
                Err(suspicion) => suspicion,
            },
        };
        let mut detail = suspicion.to_string();
        if suspicion.is_shrink() {
            detail.push_str(&format!(
                "; if this is real, confirm it once with `idgraph reconcile --accept-shrink {name}`"
            ));
        }
        Err(SourceError::Suspicious {
            origin: name.to_owned(),
            detail,
        })
    }
}

/// A fetched snapshot, or why not, with what the history keeps of it.
struct Fetched<T> {
    snapshot: Option<T>,
    record: SourceRecord,
}

async fn fetch<T: AsSnapshot + Send + 'static>(
    source: &dyn Source<Snapshot = T>,
    guard: &Guard,
) -> Fetched<T> {
    let start = Instant::now();
    let fetched = source.fetch().await;
    let duration_ms = start.elapsed().as_millis() as u64;
    let mut record = SourceRecord {
        name: source.name().to_owned(),
        kind: source.kind().to_owned(),
        status: SourceStatus::Failed,
        objects: None,
        digest: None,
        error: None,
        duration_ms,
    };
    let result = match fetched {
        Ok(snapshot) => {
            let objects = snapshot.objects() as u64;
            info!(source = %record.name, objects, duration_ms, "Fetched snapshot.");
            // Looking for repeated ids and sorting and hashing 200,000 users is CPU work:
            // keep it off the async workers.
            let (own, digest, snapshot) = tokio::task::spawn_blocking(move || {
                let start = Instant::now();
                let own = check_snapshot(&snapshot);
                let digest = own.is_ok().then(|| idgraph_model::digest(&snapshot));
                debug!(
                    duration_ms = start.elapsed().as_millis() as u64,
                    "Checked and digested the snapshot."
                );
                (own, digest, snapshot)
            })
            .await
            .expect("checking and digesting a snapshot does not panic");
            guard
                .judge(&record.name, objects, own)
                .map(|()| (objects, digest, snapshot))
        }
        Err(error) => Err(error),
    };
    match result {
        Ok((objects, digest, snapshot)) => {
            record.status = SourceStatus::Ok;
            record.objects = Some(objects);
            record.digest = digest;
            Fetched {
                snapshot: Some(snapshot),
                record,
            }
        }
        Err(error) => {
            let error_text = error.to_report();
            warn!(source = %record.name, error = %error_text, kind = error.kind(), "Source failed; its findings are neither opened nor resolved.");
            record.error = Some(error_text);
            Fetched {
                snapshot: None,
                record,
            }
        }
    }
}

/// Runs one reconciliation and records it in the store.
///
/// A source that fails makes the run `partial`: findings that depend on it are neither
/// opened nor resolved (SPEC §3). If the IdP or Identity Center fails, nothing opens or
/// resolves at all.
///
/// # Errors
///
/// Only when the run cannot be recorded; source failures are part of the report.
pub async fn reconcile_once(ctx: &Context) -> Result<RunReport, ReconcileError> {
    reconcile_with_clock(ctx, &Utc::now).await
}

/// [`reconcile_once`] with the time taken from `now`: when the run starts and when it is
/// recorded, which is when its episodes open and resolve.
///
/// # Errors
///
/// As [`reconcile_once`].
pub async fn reconcile_with_clock(
    ctx: &Context,
    now: &(dyn Fn() -> DateTime<Utc> + Sync),
) -> Result<RunReport, ReconcileError> {
    let started_at = now();
    let names: Vec<&str> = [ctx.sources.idp.name(), ctx.sources.identity_center.name()]
        .into_iter()
        .chain(ctx.sources.targets.iter().map(|t| t.name()))
        .collect();
    let guard = Guard {
        last: ctx.store.last_complete_objects(&names).await?,
        shrink: ctx.settings.shrink_guard,
        accepted: ctx.accept_shrink.clone(),
    };
    // Before the fetch: a change after it makes the next watched run fetch again.
    let ic_revision = if ctx.known.is_kept() {
        ctx.sources.identity_center.revision().await
    } else {
        None
    };
    let (mut idp, mut ic, mut targets) = ctx.sources.fetch_all(&guard).await;
    let target_snapshots: Vec<TargetSnapshot> = targets
        .iter_mut()
        .filter_map(|fetched| fetched.snapshot.take())
        .collect();
    let mut activity = Activity::read(
        &ctx.store,
        &ctx.sources.targets,
        &target_snapshots.iter().map(|t| t.name.as_str()).collect(),
        ctx.sources.target_concurrency,
        &ctx.settings.mapping,
        started_at,
    )
    .await?;

    let mut evaluated = HashSet::new();
    let (findings, accounting, accounts) = match (idp.snapshot.take(), ic.snapshot.take()) {
        (Some(idp_users), Some(ic_users)) => {
            activity.remember(&ctx.store.open_episodes().await?);
            evaluated.insert(Scope::IdentityCenter);
            evaluated.extend(
                target_snapshots
                    .iter()
                    .map(|t| Scope::Target(t.name.clone())),
            );
            evaluated.extend(removed_targets(&ctx.store, &names).await?);
            let activity = Arc::new(std::mem::take(&mut activity));
            let keep = ctx.known.is_kept();
            let (findings, accounting, accounts, universe) = build_findings(
                idp_users,
                ic_users,
                target_snapshots,
                &ctx.settings.mapping,
                activity.clone(),
                keep,
            )
            .await?;
            if let Some(universe) = universe {
                ctx.known.replace(universe, ic_revision).await;
            }
            (findings, Some(accounting), Some((activity, accounts)))
        }
        _ => (Vec::new(), None, None),
    };

    let sources: Vec<SourceRecord> = [idp.record, ic.record]
        .into_iter()
        .chain(targets.into_iter().map(|t| t.record))
        .chain(match &accounts {
            Some((activity, _)) => activity.records.clone(),
            None => std::mem::take(&mut activity.records),
        })
        .collect();
    let status = if sources.iter().all(|s| s.status == SourceStatus::Ok) {
        RunStatus::Complete
    } else {
        RunStatus::Partial
    };
    let run = NewRun {
        scope: None,
        started_at,
        finished_at: now(),
        status,
        sources,
    };
    let start = Instant::now();
    let recorded = ctx.store.record_run(&run, &findings, &evaluated).await?;
    debug!(
        duration_ms = start.elapsed().as_millis() as u64,
        "Recorded the run."
    );
    // Without a graph nobody is known to be orphaned: the logins are read again next run.
    if let Some((activity, accounts)) = &accounts {
        activity
            .record(&ctx.store, recorded.run_id, &findings, accounts)
            .await?;
    }
    if let Some(retention) = ctx.settings.retention {
        prune(&ctx.store, run.finished_at - retention).await?;
    }
    info!(
        run_id = recorded.run_id,
        chain_head = %recorded.chain_head,
        "Recorded the run; keep the chain head to check the history with `idgraph verify --expect-head`."
    );
    Ok(RunReport::new(run, recorded, accounting))
}

/// The targets that open findings name but the configuration no longer has: nothing will
/// evaluate them again, so their findings end, as removed rather than fixed.
async fn removed_targets(store: &Store, configured: &[&str]) -> Result<Vec<Scope>, StoreError> {
    let mut removed = Vec::new();
    for target in store.open_targets().await? {
        if !configured.contains(&target.as_str()) {
            warn!(target = %target, "The target is no longer configured; its open findings are resolved as removed from the config.");
            removed.push(Scope::RemovedTarget(target));
        }
    }
    Ok(removed)
}

/// Builds the identity graph and its findings, those about logins included, off the async
/// workers: at 200,000 people it is a fraction of a second of CPU. Also returns the
/// accounts whose logins are watched, per target, for `activity` to note, and with `keep`
/// indexes the snapshots afterwards into the [`Universe`] the watcher's re-checks start
/// from.
/// What [`build_findings`] returns: the findings, the accounting, the accounts whose
/// logins are watched per target, and the universe when it was kept.
type Built = (
    Vec<Finding>,
    Accounting,
    HashMap<String, Vec<String>>,
    Option<Universe>,
);

async fn build_findings(
    idp_users: Vec<IdpUser>,
    ic_users: Vec<IcUser>,
    targets: Vec<TargetSnapshot>,
    mapping: &Mapping,
    activity: Arc<Activity>,
    keep: bool,
) -> Result<Built, ReconcileError> {
    let mapping = mapping.clone();
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let inactive: Vec<IdpUser> = idp_users.iter().filter(|u| !u.active).cloned().collect();
        let graph = Graph::build(idp_users, ic_users, targets, &mapping);
        let built_ms = start.elapsed().as_millis() as u64;
        let mut findings = graph.findings();
        let about_logins = activity.findings(&graph, &findings, &inactive);
        findings.extend(about_logins);
        debug!(
            built_ms,
            findings_ms = start.elapsed().as_millis() as u64 - built_ms,
            findings = findings.len(),
            "Built the identity graph."
        );
        let accounting = graph.accounting();
        let accounts = activity.accounts(&graph);
        let universe = keep.then(|| {
            let (idp, ic, targets) = graph.into_snapshots();
            Universe::new(idp, ic, &targets, &mapping)
        });
        (findings, accounting, accounts, universe)
    })
    .await
    .map_err(|e| ReconcileError::Graph(e.to_string()))
}

/// Removes the runs that finished before `cutoff` (see [`Store::prune`]).
async fn prune(store: &Store, cutoff: DateTime<Utc>) -> Result<(), StoreError> {
    let pruned = store.prune(cutoff).await?;
    if pruned.runs > 0 {
        info!(
            runs = pruned.runs,
            episodes = pruned.episodes,
            through_run = pruned.through_run,
            "Pruned runs older than the retention."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use idgraph_model::{IcUser, IdpUser};

    use super::*;

    /// How many fetches are running, and the most at once.
    #[derive(Default)]
    struct Gauge {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    /// A target that takes a while and counts itself in the gauge meanwhile.
    struct Slow {
        name: String,
        gauge: Arc<Gauge>,
    }

    #[async_trait::async_trait]
    impl Source for Slow {
        type Snapshot = TargetSnapshot;

        fn name(&self) -> &str {
            &self.name
        }

        fn kind(&self) -> &str {
            "test"
        }

        async fn fetch(&self) -> Result<TargetSnapshot, SourceError> {
            let now = self.gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.gauge.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            self.gauge.now.fetch_sub(1, Ordering::SeqCst);
            Ok(TargetSnapshot::new(self.name.clone(), Vec::new()))
        }
    }

    // Regression: the store's error was printed twice ("cannot record the run: store X:
    // cannot insert the run: store X: cannot insert the run").
    #[test]
    fn a_store_error_is_told_once() {
        let error = anyhow::Error::from(ReconcileError::Store(StoreError::InvalidRun {
            path: "s.db".into(),
            detail: "two findings share a key".into(),
        }));
        let text = format!("{error:#}");
        assert_eq!(
            text,
            "cannot record the run: store s.db: invalid run: two findings share a key"
        );
    }

    #[tokio::test]
    async fn targets_are_fetched_at_most_target_concurrency_at_a_time() {
        for concurrency in [1, 3] {
            let gauge = Arc::new(Gauge::default());
            let sources = Sources {
                idp: Box::new(up("idp", Vec::<IdpUser>::new())),
                identity_center: Box::new(up("identity_center", Vec::<IcUser>::new())),
                targets: (0..8)
                    .map(|t| -> Box<TargetRole> {
                        Box::new(Slow {
                            name: format!("t{t}"),
                            gauge: gauge.clone(),
                        })
                    })
                    .collect(),
                target_concurrency: concurrency,
            };
            let records = sources.check().await;
            assert_eq!(records.len(), 10);
            assert!(records.iter().all(|r| r.status == SourceStatus::Ok));
            assert_eq!(gauge.most.load(Ordering::SeqCst), concurrency);
        }
    }

    /// A source that answers with a fixed snapshot, or fails as unreachable.
    struct Fixed<T> {
        name: String,
        answer: Option<T>,
    }

    #[async_trait::async_trait]
    impl<T: AsSnapshot + Clone + Send + Sync + 'static> Source for Fixed<T> {
        type Snapshot = T;

        fn name(&self) -> &str {
            &self.name
        }

        fn kind(&self) -> &str {
            "test"
        }

        async fn fetch(&self) -> Result<T, SourceError> {
            self.answer.clone().ok_or_else(|| SourceError::Unreachable {
                origin: self.name.clone(),
                detail: "down".into(),
            })
        }
    }

    fn up<T>(name: &str, snapshot: T) -> Fixed<T> {
        Fixed {
            name: name.into(),
            answer: Some(snapshot),
        }
    }

    fn down<T>(name: &str) -> Fixed<T> {
        Fixed {
            name: name.into(),
            answer: None,
        }
    }

    /// Ann (active) and Bob (left) in the IdP.
    fn idp() -> Vec<IdpUser> {
        let user = |name: &str, active| IdpUser {
            id: format!("idp-{name}"),
            external_id: None,
            user_name: format!("{name}@example.com"),
            email: None,
            active,
            last_modified: None,
        };
        vec![user("ann", true), user("bob", false)]
    }

    /// Ann and Bob in Identity Center.
    fn ic() -> Vec<IcUser> {
        let user = |name: &str| IcUser {
            user_id: format!("ic-{name}"),
            user_name: format!("{name}@example.com"),
            email: None,
            external_ids: Vec::new(),
        };
        vec![user("ann"), user("bob")]
    }

    /// Target `name` holding these logins.
    fn target(name: &str, logins: &[&str]) -> TargetSnapshot {
        let users = logins
            .iter()
            .map(|login| idgraph_model::DbUser {
                name: (*login).to_owned(),
                sysid: None,
                superuser: false,
            })
            .collect();
        TargetSnapshot::new(name, users)
    }

    /// A context over the fake sources and a store of its own in `dir`.
    async fn context(
        dir: &tempfile::TempDir,
        idp: Fixed<Vec<IdpUser>>,
        ic: Fixed<Vec<IcUser>>,
        targets: Vec<Fixed<TargetSnapshot>>,
    ) -> Context {
        let config = dir.path().join("idgraph.toml");
        std::fs::write(
            &config,
            "[store]\npath = \"s.db\"\n[idp]\nkind = \"file\"\npath = \"idp.json\"\n\
             [identity_center]\nkind = \"file\"\npath = \"ic.json\"\n",
        )
        .expect("write the config");
        let settings = crate::config::load_with_env(&config, Some(config::Map::new()))
            .expect("the config loads");
        let store = Store::open(&settings.store_path)
            .await
            .expect("the store opens");
        Context {
            settings,
            store,
            sources: Sources {
                idp: Box::new(idp),
                identity_center: Box::new(ic),
                targets: targets
                    .into_iter()
                    .map(|t| -> Box<TargetRole> { Box::new(t) })
                    .collect(),
                target_concurrency: 4,
            },
            accept_shrink: HashSet::new(),
            known: Known::default(),
        }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap()
    }

    /// `(kind, target or "", subject)` of each episode, sorted.
    fn keys(episodes: &[Episode]) -> Vec<(String, String, String)> {
        let mut keys: Vec<_> = episodes
            .iter()
            .map(|e| {
                let key = e.finding.key();
                (key.kind.to_string(), key.target, key.subject)
            })
            .collect();
        keys.sort();
        keys
    }

    #[tokio::test]
    async fn a_first_complete_run_opens_what_it_finds_at_the_clock_s_time() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(
            &dir,
            up("idp", idp()),
            up("identity_center", ic()),
            vec![up(
                "t",
                target("t", &["IAMA:ann@example.com", "IAMA:bob@example.com"]),
            )],
        )
        .await;
        let report = reconcile_with_clock(&ctx, &|| at(10)).await.unwrap();
        assert_eq!(report.status, RunStatus::Complete);
        assert_eq!(report.run_id, 1);
        assert_eq!(
            keys(&report.opened),
            [
                (
                    "orphaned_db_user".into(),
                    "t".into(),
                    "IAMA:bob@example.com".into()
                ),
                (
                    "stale_identity_center_user".into(),
                    String::new(),
                    "ic-bob".into()
                ),
            ]
        );
        assert!(report.opened.iter().all(|e| e.opened_at == at(10)));
        assert_eq!(report.started_at, at(10));
    }

    #[tokio::test]
    async fn a_failed_idp_or_identity_center_changes_nothing() {
        for failing in ["idp", "identity_center"] {
            let dir = tempfile::tempdir().unwrap();
            let first = context(
                &dir,
                up("idp", idp()),
                up("identity_center", ic()),
                vec![up("t", target("t", &["IAMA:bob@example.com"]))],
            )
            .await;
            reconcile_with_clock(&first, &|| at(10)).await.unwrap();
            first.store.close().await;

            // Bob's login is gone, but with a failed role nothing may resolve.
            let (idp_source, ic_source) = match failing {
                "idp" => (down("idp"), up("identity_center", ic())),
                _ => (up("idp", idp()), down("identity_center")),
            };
            let second =
                context(&dir, idp_source, ic_source, vec![up("t", target("t", &[]))]).await;
            let report = reconcile_with_clock(&second, &|| at(11)).await.unwrap();
            assert_eq!(report.status, RunStatus::Partial, "{failing}");
            assert!(
                report.opened.is_empty() && report.resolved.is_empty(),
                "{failing}"
            );
            assert_eq!(report.open.len(), 2, "{failing}");
            assert!(report.accounting.is_none(), "{failing}");
        }
    }

    #[tokio::test]
    async fn a_failed_target_keeps_its_findings_while_another_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let both = ["IAMA:ann@example.com", "IAMA:bob@example.com"];
        let first = context(
            &dir,
            up("idp", idp()),
            up("identity_center", ic()),
            vec![up("a", target("a", &both)), up("b", target("b", &both))],
        )
        .await;
        reconcile_with_clock(&first, &|| at(10)).await.unwrap();
        first.store.close().await;

        let second = context(
            &dir,
            up("idp", idp()),
            up("identity_center", ic()),
            // Bob's login dropped from `b` (not all of them: an empty catalog is suspicious).
            vec![down("a"), up("b", target("b", &["IAMA:ann@example.com"]))],
        )
        .await;
        let report = reconcile_with_clock(&second, &|| at(11)).await.unwrap();
        assert_eq!(report.status, RunStatus::Partial);
        assert_eq!(
            keys(&report.resolved),
            [(
                "orphaned_db_user".into(),
                "b".into(),
                "IAMA:bob@example.com".into()
            )]
        );
        assert!(report
            .resolved
            .iter()
            .all(|e| e.resolved_at == Some(at(11))));
        assert!(keys(&report.open).contains(&(
            "orphaned_db_user".into(),
            "a".into(),
            "IAMA:bob@example.com".into()
        )));
    }
}
