//! The daemon's watcher: every `watch.interval_seconds` it asks a SCIM IdP which users
//! changed since its last look, and when one did, re-checks them at once
//! ([`crate::watched`]: only the identities they touch, against the last full run), so that
//! a deactivation shows in the finding gauges within one interval and a few requests
//! rather than at the next scheduled run. Before the first full run of the process, or
//! when very many users changed, it makes a full run instead.
//!
//! The run is the scheduler's own ([`crate::daemon`]), under the same lock: never two
//! runs at once. Unlike a scheduled tick, the watcher waits for a run in progress rather
//! than skipping, because that run may have read the IdP before the change. The watermark
//! (the newest `meta.lastModified` seen) is kept in the store, so a restart resumes where
//! the last look left off.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use idgraph_sources::scim::{ChangeFeed, Poll, ScimSource};
use idgraph_sources::NoProgress;
use idgraph_store::SourceStatus;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::IdpSettings;
use crate::daemon::{observe, reconcile_and_observe};
use crate::metrics::{Metrics, WatchOutcome};
use crate::reconcile::Context;
use crate::watched;

/// The name the watermark is stored under: the IdP source's name.
const SOURCE: &str = "idp";

/// The longest wait between looks while the runs after a change keep failing (unless the
/// interval is longer).
const LONGEST_PAUSE: Duration = Duration::from_secs(600);

/// What the watcher shares with the daemon.
pub(crate) struct Watcher {
    /// The context each run takes, replaced on reload.
    contexts: watch::Receiver<Arc<Context>>,
    /// Where looks and runs are counted.
    metrics: Arc<Metrics>,
    /// Held by whichever run is going.
    running: Arc<Mutex<()>>,
    /// Becomes `true` when the daemon stops.
    stop: watch::Receiver<bool>,
}

impl Watcher {
    /// Starts watching in a task of its own, once the watcher `before` (stopped by the
    /// caller) has finished, so that two never look or store a watermark at once; sending
    /// `true` stops it.
    pub(crate) fn spawn(
        contexts: &watch::Receiver<Arc<Context>>,
        metrics: &Arc<Metrics>,
        running: &Arc<Mutex<()>>,
        before: Option<JoinHandle<Option<DateTime<Utc>>>>,
    ) -> (watch::Sender<bool>, JoinHandle<Option<DateTime<Utc>>>) {
        let (stop, stopped) = watch::channel(false);
        let watcher = Self {
            contexts: contexts.clone(),
            metrics: metrics.clone(),
            running: running.clone(),
            stop: stopped,
        };
        let task = async move {
            let handed = match before {
                Some(before) => before.await.ok().flatten(),
                None => None,
            };
            watcher.run(handed).await
        };
        (stop, tokio::spawn(task))
    }

    /// Watches until it is stopped (the daemon stops or reloads its configuration), the
    /// configuration turns the watcher off, or the server turns out not to filter. Uses
    /// the IdP and interval of the configuration current when it starts, and looks from
    /// the watermark `handed` over by the watcher before it, else the one in the store,
    /// else from now. Returns where it got to (what it was handed, if it did not watch):
    /// every change before it is recorded.
    async fn run(mut self, handed: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let ctx = self.contexts.borrow().clone();
        let Some(interval) = ctx.settings.watch_interval else {
            self.metrics.stop_watching();
            info!(
                key = "watch.interval_seconds",
                "The watcher is off (interval 0)."
            );
            return handed;
        };
        let IdpSettings::Scim(options) = &ctx.settings.idp else {
            self.metrics.stop_watching();
            info!("The IdP is a file; the watcher is off.");
            return handed;
        };
        if *self.stop.borrow() {
            return handed;
        }
        let source = match ScimSource::new(options.clone(), Arc::new(NoProgress)) {
            Ok(source) => source,
            Err(e) => {
                warn!(error = %e, "The watcher cannot set up its SCIM client; it is off.");
                return handed;
            }
        };
        let watermark = match handed {
            Some(handed) => Some(handed),
            None => match ctx.store.watch_watermark(SOURCE).await {
                Ok(stored) => stored,
                Err(e) => {
                    warn!(error = %e, "The watcher cannot read its watermark; it starts from now.");
                    None
                }
            },
        };
        // Without a watermark, the run at start covers what changed before.
        let mut feed = ChangeFeed::new(watermark.unwrap_or_else(Utc::now));
        drop(ctx);
        self.metrics.start_watching(interval, Utc::now());
        info!(
            interval_seconds = interval.as_secs(),
            watermark = %feed.watermark().to_rfc3339_opts(SecondsFormat::Millis, true),
            "Watching the IdP for changed users."
        );
        let mut pause = interval;
        while self.pause(pause).await {
            let before = feed.clone();
            let poll = tokio::select! {
                poll = feed.poll(&source) => poll,
                _ = self.stop.changed() => return Some(before.watermark()),
            };
            let before_pause = pause;
            match self.handle(poll, &feed).await {
                Next::Continue => pause = interval,
                // The changes are not in the store yet: the next look reports them again,
                // after a wait that doubles while runs keep failing, so that a failing IdP
                // listing is not asked for again every few seconds.
                Next::LookAgain => {
                    feed = before;
                    pause = (pause * 2).min(LONGEST_PAUSE.max(interval));
                    warn!(
                        retry_in_seconds = pause.as_secs(),
                        "The run after the change did not record it; the watcher looks at the same changes again."
                    );
                }
                Next::Stop => return Some(before.watermark()),
            }
            if pause != before_pause {
                self.metrics.watch_pause(pause);
            }
        }
        Some(feed.watermark())
    }

    /// Waits `interval`; `false` when the daemon stops meanwhile.
    async fn pause(&mut self, interval: Duration) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => !*self.stop.borrow(),
            _ = self.stop.changed() => false,
        }
    }

    /// Acts on one look: a run when a user changed.
    async fn handle(
        &mut self,
        poll: Result<Poll, idgraph_sources::SourceError>,
        feed: &ChangeFeed,
    ) -> Next {
        match poll {
            Ok(Poll::Changed(users)) if users.is_empty() => {
                self.metrics.observe_watch(WatchOutcome::Unchanged, 0);
            }
            Ok(Poll::Changed(users)) => {
                self.metrics
                    .observe_watch(WatchOutcome::Changed, users.len());
                info!(
                    users = users.len(),
                    watermark = %feed.watermark().to_rfc3339_opts(SecondsFormat::Millis, true),
                    "IdP users changed; reconciling now."
                );
                let running = self.running.clone();
                let _guard = tokio::select! {
                    biased;
                    _ = self.stop.changed() => return Next::Stop,
                    guard = running.lock_owned() => guard,
                };
                if *self.stop.borrow() {
                    return Next::Stop;
                }
                let ctx = self.contexts.borrow().clone();
                let report = match watched::recheck(&ctx, &users).await {
                    Some(result) => observe(result, &self.metrics),
                    None => reconcile_and_observe(&ctx, &self.metrics).await,
                };
                // The changes are in the store once the run read the IdP and (a watched
                // run) asked Identity Center about them; a target that failed is the next
                // full run's to check, as in any run.
                let recorded = report.as_ref().is_some_and(|report| {
                    let needed = |name: &str| {
                        name == ctx.sources.idp.name()
                            || (report.scope.is_some()
                                && name == ctx.sources.identity_center.name())
                    };
                    report
                        .sources
                        .iter()
                        .all(|s| s.status == SourceStatus::Ok || !needed(&s.name))
                });
                let Some(report) = report.filter(|_| recorded) else {
                    return Next::LookAgain;
                };
                self.metrics.observe_detection(&report, &users);
                if let Err(e) = ctx
                    .store
                    .set_watch_watermark(SOURCE, feed.watermark())
                    .await
                {
                    warn!(error = %e, "The watcher cannot store its watermark; a restart looks again from the last one stored.");
                }
            }
            Ok(Poll::Unsupported(reason)) => {
                self.metrics.observe_watch(WatchOutcome::Unsupported, 0);
                warn!(
                    %reason,
                    "The SCIM server cannot filter users by meta.lastModified; the watcher stops. The schedule still runs."
                );
                return Next::Stop;
            }
            Err(e) => {
                self.metrics.observe_watch(WatchOutcome::Failed, 0);
                warn!(
                    error = %e,
                    error_kind = e.kind(),
                    "The watcher could not look for changed IdP users; it tries again next interval."
                );
            }
        }
        Next::Continue
    }
}

/// What the watcher does after a look.
enum Next {
    /// Waits for the next interval.
    Continue,
    /// Waits (longer each time in a row), then asks for the same changes again.
    LookAgain,
    /// Stops watching.
    Stop,
}
