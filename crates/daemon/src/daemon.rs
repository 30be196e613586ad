//! `idgraph run`: reconcile at start, on the cron schedule and when the watcher
//! ([`crate::watcher`]) sees IdP users change, never two runs at once; serve `/metrics`,
//! `/healthz` and `/readyz`; reload the configuration on SIGHUP; stop cleanly on a
//! shutdown signal.

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use idgraph_model::FindingKind;
use idgraph_sources::NoProgress;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Mutex};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tracing::{error, info, warn};

use crate::config::{ConfigError, Settings};
use crate::http;
use crate::metrics::Metrics;
use crate::reconcile::{reconcile_once, Context, ReconcileError, RunReport, Sources};
use crate::watched::Known;
use crate::watcher::Watcher;

/// How long a run in progress may take to finish after a shutdown signal; after that the
/// process exits and SQLite rolls the unfinished run back.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// What the HTTP handlers read.
#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// The HTTP routes.
fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

/// `/`: what a person who opens the address in a browser needs, links to the rest.
async fn landing() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        concat!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>idgraph</title></head>\n",
            "<body><h1>idgraph ",
            env!("CARGO_PKG_VERSION"),
            "</h1>\n<p>Finds Amazon Redshift database users whose owner has left.</p>\n<ul>\n",
            "<li><a href=\"/metrics\">/metrics</a>: Prometheus metrics</li>\n",
            "<li><a href=\"/healthz\">/healthz</a>: the process is alive</li>\n",
            "<li><a href=\"/readyz\">/readyz</a>: the store is ready</li>\n",
            "</ul></body></html>\n"
        ),
    )
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

async fn readyz(State(shared): State<Shared>) -> impl IntoResponse {
    if shared.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "migrating the store\n")
    }
}

/// One scheduled (or the first) run with the current context, unless one is still going.
async fn tick(
    contexts: watch::Receiver<Arc<Context>>,
    metrics: Arc<Metrics>,
    running: Arc<Mutex<()>>,
) {
    let Ok(_guard) = running.try_lock_owned() else {
        metrics.observe_skipped_tick();
        warn!("The previous run is still going; this scheduled run is skipped.");
        return;
    };
    let ctx = contexts.borrow().clone();
    reconcile_and_observe(&ctx, &metrics).await;
}

/// One full run with `ctx`, its report logged and observed in `metrics`. The caller holds
/// the lock that keeps runs apart. The report, if the run was recorded.
pub(crate) async fn reconcile_and_observe(ctx: &Context, metrics: &Metrics) -> Option<RunReport> {
    observe(reconcile_once(ctx).await, metrics)
}

/// Logs a run (full or watched) and observes it in `metrics`; the report, if the run was
/// recorded.
pub(crate) fn observe(
    result: Result<RunReport, ReconcileError>,
    metrics: &Metrics,
) -> Option<RunReport> {
    match result {
        Ok(report) => {
            if report.scope.is_some() {
                metrics.observe_open(&report.open_counts, Utc::now());
            } else {
                metrics.observe_run(&report, Utc::now());
            }
            let by_kind: Vec<String> = FindingKind::ALL
                .iter()
                .map(|kind| {
                    let n: u64 = report
                        .open_counts
                        .iter()
                        .filter(|c| c.kind == *kind)
                        .map(|c| c.count)
                        .sum();
                    format!("{kind}={n}")
                })
                .collect();
            let failed: Vec<&str> = report
                .sources
                .iter()
                .filter(|s| s.error.is_some())
                .map(|s| s.name.as_str())
                .collect();
            info!(
                run_id = report.run_id,
                status = report.status.as_str(),
                duration_ms = (report.finished_at - report.started_at).num_milliseconds(),
                open = report.open_counts.iter().map(|c| c.count).sum::<u64>(),
                opened = report.opened.len(),
                resolved = report.resolved.len(),
                by_kind = %by_kind.join(" "),
                failed_sources = %failed.join(","),
                watched = report.scope.is_some(),
                "Reconciled."
            );
            Some(report)
        }
        Err(e) => {
            metrics.observe_failed_run();
            // The whole chain of causes: the store's error says what failed and where.
            let error = format!("{:#}", anyhow::Error::from(e));
            error!(error = %error, "The run could not be recorded; the next one will try again.");
            None
        }
    }
}

/// How the daemon re-reads its configuration while it runs.
pub struct Reload {
    /// Reads and validates the configuration again (the file `--config` names).
    pub load: Arc<dyn Fn() -> Result<Settings, ConfigError> + Send + Sync>,
    /// A message per request to reload; [`hangups`] sends one per SIGHUP.
    pub requests: mpsc::Receiver<()>,
}

/// Runs the daemon until `shutdown` completes: migrates the store, serves HTTP on
/// `listener`, reconciles at once and then on `settings.cron`, and applies the
/// configuration `reload` reads whenever it is asked to, from the next run on.
///
/// # Errors
///
/// When the store cannot be opened, a source cannot be set up, or the schedule cannot
/// start; a failing source or run is not an error (it shows in the metrics), nor is a
/// configuration that does not reload (it is logged and the current one kept).
pub async fn run(
    settings: Settings,
    mut reload: Reload,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(&target_names(&settings)));
    let ready = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = watch::channel(false);
    let address = listener.local_addr()?;
    let app = router(Shared {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    let limits = settings.http.clone();
    let server = tokio::spawn(async move { http::serve(listener, app, &limits, stopped).await });
    info!(%address, "Serving /metrics, /healthz and /readyz.");

    let mut cron = settings.cron.clone();
    let mut ctx = Context::open(settings, Arc::new(NoProgress)).await?;
    ctx.known = Known::for_settings(&ctx.settings);
    // What the store knows, before the first run of this process ends: a restart changes
    // nothing a dashboard or an alert sees.
    metrics.seed(
        &ctx.store.open_counts().await?,
        ctx.store.last_complete_run_at().await?,
        Utc::now(),
    );
    ready.store(true, Ordering::Release);
    info!(store = %ctx.settings.store_path.display(), %cron, "Store ready.");
    // Every run takes the context current when it starts; a reload replaces it between runs.
    let (current, contexts) = watch::channel(Arc::new(ctx));

    let running = Arc::new(Mutex::new(()));
    let first = tokio::spawn(tick(contexts.clone(), metrics.clone(), running.clone()));
    let mut watcher = Watcher::spawn(&contexts, &metrics, &running, None);
    // Every watcher task spawned: one that a reload stopped may still be finishing a run
    // when the daemon stops, and is aborted with the newest.
    let mut watchers = vec![watcher.1.abort_handle()];
    let mut scheduler = JobScheduler::new()
        .await
        .context("cannot start the scheduler")?;
    let job = scheduled(&cron, &contexts, &metrics, &running)
        .with_context(|| format!("schedule.cron = {cron:?} cannot be scheduled"))?;
    let mut job_id = scheduler
        .add(job)
        .await
        .context("cannot schedule the runs")?;
    scheduler
        .start()
        .await
        .context("cannot start the scheduler")?;

    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(()) = reload.requests.recv() => {}
        }
        let now = current.borrow().clone();
        let Some(mut next) = reloaded(&reload, &now).await else {
            continue;
        };
        if next.settings.cron != cron {
            // The new job is added before the old one goes, so that a failure leaves the
            // daemon on its old schedule rather than on none.
            let added = match scheduled(&next.settings.cron, &contexts, &metrics, &running) {
                Ok(job) => scheduler.add(job).await,
                Err(e) => Err(e),
            };
            match added {
                Ok(id) => {
                    let _ = scheduler.remove(&std::mem::replace(&mut job_id, id)).await;
                    cron = next.settings.cron.clone();
                    info!(%cron, "Rescheduled.");
                }
                Err(e) => keep_schedule(&e, &cron, &mut next),
            }
        }
        let targets = target_names(&next.settings);
        metrics.track_targets(&targets);
        current.send_replace(Arc::new(next));
        // A new watcher, with the new IdP and interval, from where the old one got to.
        let (stop_watching, before) = watcher;
        let _ = stop_watching.send(true);
        watcher = Watcher::spawn(&contexts, &metrics, &running, Some(before));
        watchers.retain(|task| !task.is_finished());
        watchers.push(watcher.1.abort_handle());
        info!(
            targets = targets.len(),
            "Configuration reloaded; the next run uses it."
        );
    }
    info!("Stopping: no new runs; waiting for the current one.");
    let _ = scheduler.shutdown().await;
    drop(first);
    // The watcher stops between looks, mid-look or waiting for the lock; a run it started
    // is waited for like any.
    let (stop_watching, _) = watcher;
    let _ = stop_watching.send(true);
    wait_for_the_run(&running).await;
    for task in watchers {
        task.abort();
    }
    let _ = stop.send(true);
    let _ = server.await;
    let store = current.borrow().store.clone();
    store.close().await;
    info!("Stopped.");
    Ok(())
}

/// The configured targets' names, in config order.
fn target_names(settings: &Settings) -> Vec<String> {
    settings.targets.iter().map(|t| t.name.clone()).collect()
}

/// Waits for the run in progress, if any, at most [`SHUTDOWN_GRACE`].
async fn wait_for_the_run(running: &Mutex<()>) {
    match tokio::time::timeout(SHUTDOWN_GRACE, running.lock()).await {
        Ok(_idle) => info!("No run in progress."),
        Err(_) => warn!(
            grace_seconds = SHUTDOWN_GRACE.as_secs(),
            "The current run did not finish in time; it is rolled back."
        ),
    }
}

/// A reloaded configuration keeps the current schedule when its own cannot be set up.
fn keep_schedule(error: &JobSchedulerError, cron: &str, next: &mut Context) {
    error!(error = %error, %cron, "The new schedule cannot be set up; the daemon keeps the current one.");
    next.settings.cron = cron.to_owned();
}

/// The scheduled job that runs [`tick`] on `cron`.
fn scheduled(
    cron: &str,
    contexts: &watch::Receiver<Arc<Context>>,
    metrics: &Arc<Metrics>,
    running: &Arc<Mutex<()>>,
) -> Result<Job, JobSchedulerError> {
    let (contexts, metrics, running) = (contexts.clone(), metrics.clone(), running.clone());
    Job::new_async(cron, move |_, _| {
        Box::pin(tick(contexts.clone(), metrics.clone(), running.clone()))
    })
}

/// Reads the configuration again and builds the context the next runs use: the sources
/// and mapping of the new configuration, the store already open. `None`, logged, when
/// the configuration is invalid or a source cannot be set up; the current one stays.
async fn reloaded(reload: &Reload, current: &Context) -> Option<Context> {
    let load = reload.load.clone();
    // Off the runtime's threads: loading reads a file and may look up `http.listen`.
    let loaded = tokio::task::spawn_blocking(move || load())
        .await
        .map_err(anyhow::Error::from)
        .and_then(|loaded| loaded.map_err(anyhow::Error::from));
    let mut settings = match loaded {
        Ok(settings) => settings,
        Err(e) => {
            error!(error = %e, "The configuration was not reloaded; the daemon keeps the current one.");
            return None;
        }
    };
    // What the process holds open since it started cannot change under it.
    let old = &current.settings;
    if settings.store_path != old.store_path {
        warn!(
            key = "store.path",
            "Changing this key takes a restart; the daemon keeps the store it has open."
        );
        settings.store_path = old.store_path.clone();
    }
    if settings.http != old.http {
        warn!(
            key = "http",
            "Changing this section takes a restart; the daemon keeps serving as it does."
        );
        settings.http = old.http.clone();
    }
    let sources = match Sources::new(&settings, Arc::new(NoProgress)).await {
        Ok(sources) => sources,
        Err(e) => {
            error!(error = %e, "The configuration was not reloaded: a source cannot be set up; the daemon keeps the current one.");
            return None;
        }
    };
    Some(Context {
        store: current.store.clone(),
        sources,
        // The daemon never confirms a shrink: an operator does, once, with `reconcile`.
        accept_shrink: HashSet::new(),
        // Until the next full run, the watcher's changes make full runs.
        known: Known::for_settings(&settings),
        settings,
    })
}

/// A message on the returned channel per SIGHUP from now on; the signal no longer ends
/// the process. SIGHUPs that arrive while a reload is pending make one more reload.
///
/// # Errors
///
/// When the signal handler cannot be installed.
pub fn hangups() -> std::io::Result<mpsc::Receiver<()>> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let (send, requests) = mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if let Err(mpsc::error::TrySendError::Closed(())) = send.try_send(()) {
                break;
            }
        }
    });
    Ok(requests)
}

/// Completes on SIGTERM or SIGINT.
pub async fn signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "Cannot listen for SIGTERM; only SIGINT stops the daemon.");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
