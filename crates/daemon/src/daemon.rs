//! `idgraph run`: reconcile at start and on the cron schedule, never two runs at once;
//! serve `/metrics`, `/healthz` and `/readyz`; stop cleanly on a shutdown signal.

use std::future::Future;
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
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::http;
use crate::metrics::Metrics;
use crate::reconcile::{reconcile_once, Context};

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
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(shared)
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

/// One scheduled (or the first) run, unless one is still going.
async fn tick(ctx: Arc<Context>, metrics: Arc<Metrics>, running: Arc<Mutex<()>>) {
    let Ok(_guard) = running.try_lock_owned() else {
        metrics.observe_skipped_tick();
        warn!("The previous run is still going; this scheduled run is skipped.");
        return;
    };
    match reconcile_once(&ctx).await {
        Ok(report) => {
            metrics.observe_run(&report, Utc::now());
            let by_kind: Vec<String> = FindingKind::ALL
                .iter()
                .map(|kind| {
                    let n = report
                        .open
                        .iter()
                        .filter(|e| e.finding.kind == *kind)
                        .count();
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
                open = report.open.len(),
                opened = report.opened.len(),
                resolved = report.resolved.len(),
                by_kind = %by_kind.join(" "),
                failed_sources = %failed.join(","),
                "Reconciled."
            );
        }
        Err(e) => {
            metrics.observe_failed_run();
            error!(error = %e, "The run could not be recorded; the next one will try again.");
        }
    }
}

/// Runs the daemon until `shutdown` completes: migrates the store, serves HTTP on
/// `listener`, reconciles at once and then on `settings.cron`.
///
/// # Errors
///
/// When the store cannot be opened, a source cannot be set up, or the schedule cannot
/// start; a failing source or run is not an error (it shows in the metrics).
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let targets: Vec<String> = settings.targets.iter().map(|t| t.name.clone()).collect();
    let metrics = Arc::new(Metrics::new(&targets));
    let ready = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let address = listener.local_addr()?;
    let app = router(Shared {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    let limits = settings.http.clone();
    let server = tokio::spawn(async move { http::serve(listener, app, &limits, stopped).await });
    info!(%address, "Serving /metrics, /healthz and /readyz.");

    let cron = settings.cron.clone();
    let ctx = Arc::new(Context::open(settings, Arc::new(NoProgress)).await?);
    metrics.observe_open(&ctx.store.open_episodes().await?, Utc::now());
    ready.store(true, Ordering::Release);
    info!(store = %ctx.settings.store_path.display(), %cron, "Store ready.");

    let running = Arc::new(Mutex::new(()));
    let first = tokio::spawn(tick(ctx.clone(), metrics.clone(), running.clone()));
    let mut scheduler = JobScheduler::new()
        .await
        .context("cannot start the scheduler")?;
    let job = {
        let (ctx, metrics, running) = (ctx.clone(), metrics.clone(), running.clone());
        Job::new_async(cron.as_str(), move |_, _| {
            Box::pin(tick(ctx.clone(), metrics.clone(), running.clone()))
        })
        .with_context(|| format!("schedule.cron = {cron:?} cannot be scheduled"))?
    };
    scheduler
        .add(job)
        .await
        .context("cannot schedule the runs")?;
    scheduler
        .start()
        .await
        .context("cannot start the scheduler")?;

    shutdown.await;
    info!("Stopping: no new runs; waiting for the current one.");
    let _ = scheduler.shutdown().await;
    drop(first);
    match tokio::time::timeout(SHUTDOWN_GRACE, running.lock()).await {
        Ok(_idle) => info!("No run in progress."),
        Err(_) => warn!(
            grace_seconds = SHUTDOWN_GRACE.as_secs(),
            "The current run did not finish in time; it is rolled back."
        ),
    }
    let _ = stop.send(true);
    let _ = server.await;
    ctx.store.clone().close().await;
    info!("Stopped.");
    Ok(())
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
