//! The Prometheus metrics of SPEC §6, registered once, updated after every run.
//!
//! No label carries a user name or an error string: sources are labelled `idp`,
//! `identity_center` and the targets' configured names; findings by kind, severity and
//! target.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use idgraph_model::FindingKind;
use idgraph_store::{OpenCount, RunStatus, SourceStatus};
use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    Opts, Registry, TextEncoder,
};

use crate::reconcile::RunReport;
use idgraph_sources::scim::ChangedUser;

/// Buckets of `idgraph_detection_latency_seconds`: the goal is 30 s; minutes mean the
/// watcher fell back to full runs or waited for one.
const LATENCY_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

/// Buckets for fetch and run durations: a file export takes milliseconds, a 200,000-user
/// identity store minutes.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Sets every series of `gauges` to its value in `values` (label values in the gauge's
/// label order), and the series that `values` lacks to 0 rather than dropping them, so that
/// graphs and alerts see the drop to 0. Every series is written once.
fn replace(gauges: &GaugeVec, mut values: BTreeMap<Vec<String>, f64>) {
    for family in gauges.collect() {
        for series in family.get_metric() {
            let labels: Vec<String> = series
                .get_label()
                .iter()
                .map(|l| l.value().to_owned())
                .collect();
            let value = values.remove(&labels).unwrap_or(0.0);
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            gauges.with_label_values(&labels).set(value);
        }
    }
    for (labels, value) in values {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        gauges.with_label_values(&labels).set(value);
    }
}

/// Every metric idgraph exports.
pub struct Metrics {
    registry: Registry,
    findings_open: GaugeVec,
    orphaned_db_users: GaugeVec,
    oldest_open_finding_age: GaugeVec,
    oldest_open_finding_timestamp: GaugeVec,
    source_up: GaugeVec,
    source_objects: GaugeVec,
    source_fetch_duration: HistogramVec,
    reconcile_runs: IntCounterVec,
    ticks_skipped: IntCounter,
    reconcile_duration: Histogram,
    last_success: Gauge,
    watch_polls: IntCounterVec,
    watch_changed_users: IntCounter,
    detection_latency: Histogram,
    watch_interval: Gauge,
    watch_last_success: Gauge,
}

/// How one look of the watcher for changed IdP users ended, the `outcome` label of
/// `idgraph_watch_polls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchOutcome {
    /// Nothing changed since the last look.
    Unchanged,
    /// At least one user changed; a run follows.
    Changed,
    /// The look failed; the next one tries again.
    Failed,
    /// The server cannot filter on `meta.lastModified`; the watcher stopped.
    Unsupported,
}

impl WatchOutcome {
    /// Every outcome, in label order.
    pub const ALL: [WatchOutcome; 4] = [
        WatchOutcome::Unchanged,
        WatchOutcome::Changed,
        WatchOutcome::Failed,
        WatchOutcome::Unsupported,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchOutcome::Unchanged => "unchanged",
            WatchOutcome::Changed => "changed",
            WatchOutcome::Failed => "failed",
            WatchOutcome::Unsupported => "unsupported",
        }
    }
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    registered(registry, GaugeVec::new(Opts::new(name, help), labels))
}

/// `idgraph_build_info{version,revision} 1`, which never changes while the process runs,
/// and the `process_*` metrics of the process itself (CPU, memory, open files, start time).
fn register_build_info(registry: &Registry) {
    let build_info = registered(
        registry,
        GaugeVec::new(
            Opts::new(
                "idgraph_build_info",
                "The running idgraph's version and the commit it was built from.",
            ),
            &["version", "revision"],
        ),
    );
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("IDGRAPH_REVISION")])
        .set(1.0);
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");
}

/// `metric`, registered in `registry`. Names and labels are constants of this file: a
/// failure here is a bug, found by every test that builds the metrics.
fn registered<M>(registry: &Registry, metric: prometheus::Result<M>) -> M
where
    M: prometheus::core::Collector + Clone + 'static,
{
    let metric = metric.expect("a valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

impl Metrics {
    /// Registers every metric; `targets` are the configured target names, so that a
    /// target without orphans shows 0 rather than nothing.
    pub fn new(targets: &[String]) -> Self {
        let registry = Registry::new();
        let findings_open = gauge_vec(
            &registry,
            "idgraph_findings_open",
            "Open findings by kind, severity and target (\"\" for Identity Center findings).",
            &["kind", "severity", "target"],
        );
        let orphaned_db_users = gauge_vec(
            &registry,
            "idgraph_orphaned_db_users",
            "Open orphaned_db_user findings per target.",
            &["target"],
        );
        let oldest_open_finding_age = gauge_vec(
            &registry,
            "idgraph_oldest_open_finding_age_seconds",
            "Age of the oldest open finding of each kind.",
            &["kind"],
        );
        let oldest_open_finding_timestamp = gauge_vec(
            &registry,
            "idgraph_oldest_open_finding_timestamp_seconds",
            "Unix time the oldest open finding of each kind was first seen; absent while none is open.",
            &["kind"],
        );
        let source_up = gauge_vec(
            &registry,
            "idgraph_source_up",
            "1 if the source was fetched completely in the last run, else 0.",
            &["source"],
        );
        let source_objects = gauge_vec(
            &registry,
            "idgraph_source_objects",
            "Users the source held in the last run that fetched it completely.",
            &["source"],
        );
        let source_fetch_duration = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "idgraph_source_fetch_duration_seconds",
                    "Time to fetch a source's snapshot.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["source"],
            ),
        );
        let reconcile_runs = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "idgraph_reconcile_runs_total",
                    "Reconcile runs by status: complete, partial (a source failed), failed (not recorded).",
                ),
                &["status"],
            ),
        );
        let ticks_skipped = registered(
            &registry,
            IntCounter::new(
                "idgraph_reconcile_ticks_skipped_total",
                "Scheduled runs skipped because the previous run was still going.",
            ),
        );
        let reconcile_duration = registered(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "idgraph_reconcile_duration_seconds",
                    "Time of a whole run: fetch, graph, diff, record.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
            ),
        );
        let last_success = registered(
            &registry,
            Gauge::new(
                "idgraph_last_successful_reconcile_timestamp_seconds",
                "Unix time of the last complete run.",
            ),
        );
        let watch_polls = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "idgraph_watch_polls_total",
                    "Looks of the watcher for changed IdP users by outcome: unchanged, changed, failed, unsupported.",
                ),
                &["outcome"],
            ),
        );
        let watch_changed_users = registered(
            &registry,
            IntCounter::new(
                "idgraph_watch_changed_users_total",
                "IdP users the watcher saw change.",
            ),
        );
        let detection_latency = registered(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "idgraph_detection_latency_seconds",
                    "Time from an IdP user's change (its meta.lastModified) to the finding it caused being recorded, for changes the watcher saw.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            ),
        );
        let watch_interval = registered(
            &registry,
            Gauge::new(
                "idgraph_watch_interval_seconds",
                "The watcher's wait between looks (its interval, longer while it backs off); 0 when it is off or stopped.",
            ),
        );
        let watch_last_success = registered(
            &registry,
            Gauge::new(
                "idgraph_watch_last_success_timestamp_seconds",
                "Unix time of the watcher's last successful look at the IdP (or of its start).",
            ),
        );
        register_build_info(&registry);
        for status in ["complete", "partial", "failed"] {
            reconcile_runs.with_label_values(&[status]);
        }
        for outcome in WatchOutcome::ALL {
            watch_polls.with_label_values(&[outcome.as_str()]);
        }
        let metrics = Self {
            registry,
            findings_open,
            orphaned_db_users,
            oldest_open_finding_age,
            oldest_open_finding_timestamp,
            source_up,
            source_objects,
            source_fetch_duration,
            reconcile_runs,
            ticks_skipped,
            reconcile_duration,
            last_success,
            watch_polls,
            watch_changed_users,
            detection_latency,
            watch_interval,
            watch_last_success,
        };
        metrics.track_targets(targets);
        metrics
    }

    /// Shows 0 orphans for each of `targets` that has no series yet, so that a target a
    /// reload adds shows 0 rather than nothing until it has orphans.
    pub fn track_targets(&self, targets: &[String]) {
        // `with_label_values` creates a missing series at 0 and leaves an existing one alone.
        for target in targets {
            self.orphaned_db_users.with_label_values(&[target.as_str()]);
        }
    }

    /// Records a run: source health, durations, and the findings open after it. A failed
    /// source keeps its last object count, and the finding gauges show what the store
    /// holds open, which a failed source left unchanged (SPEC §3).
    pub fn observe_run(&self, report: &RunReport, now: DateTime<Utc>) {
        for source in &report.sources {
            let name = source.name.as_str();
            let up = source.status == SourceStatus::Ok;
            self.source_up
                .with_label_values(&[name])
                .set(if up { 1.0 } else { 0.0 });
            if let (true, Some(objects)) = (up, source.objects) {
                self.source_objects
                    .with_label_values(&[name])
                    .set(objects as f64);
            }
            self.source_fetch_duration
                .with_label_values(&[name])
                .observe(source.duration_ms as f64 / 1000.0);
        }
        self.reconcile_runs
            .with_label_values(&[report.status.as_str()])
            .inc();
        let seconds = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
        self.reconcile_duration.observe(seconds.max(0.0));
        if report.status == RunStatus::Complete {
            self.last_success
                .set(report.finished_at.timestamp_millis() as f64 / 1000.0);
        }
        self.observe_open(&report.open_counts, now);
    }

    /// Counts a run that could not be recorded at all.
    pub fn observe_failed_run(&self) {
        self.reconcile_runs.with_label_values(&["failed"]).inc();
    }

    /// Counts a look of the watcher and the users it saw change; a look that got an
    /// answer is a success.
    pub fn observe_watch(&self, outcome: WatchOutcome, changed_users: usize) {
        self.watch_polls
            .with_label_values(&[outcome.as_str()])
            .inc();
        self.watch_changed_users.inc_by(changed_users as u64);
        match outcome {
            WatchOutcome::Unchanged | WatchOutcome::Changed => self
                .watch_last_success
                .set(Utc::now().timestamp_millis() as f64 / 1000.0),
            WatchOutcome::Failed => {}
            WatchOutcome::Unsupported => self.stop_watching(),
        }
    }

    /// The watcher is off: no alert about its looks.
    pub fn stop_watching(&self) {
        self.watch_interval.set(0.0);
    }

    /// The watcher starts looking every `interval`: an alert fires when no look succeeds
    /// for several intervals from now on. A watcher that replaces one that was watching (a
    /// reload) keeps its predecessor's last success, so that reloads cannot hide failing
    /// looks.
    pub fn start_watching(&self, interval: std::time::Duration, now: DateTime<Utc>) {
        if self.watch_interval.get() == 0.0 {
            self.watch_last_success
                .set(now.timestamp_millis() as f64 / 1000.0);
        }
        self.watch_interval.set(interval.as_secs_f64());
    }

    /// The watcher waits `pause` before its next look, longer than its interval while the
    /// runs after a change keep failing: the alert on looks allows for it.
    pub fn watch_pause(&self, pause: std::time::Duration) {
        self.watch_interval.set(pause.as_secs_f64());
    }

    /// Observes, for each finding `report` opened about one of the `changed` IdP users,
    /// how long after the user's `meta.lastModified` it was recorded. A server clock ahead
    /// of ours counts as 0.
    pub fn observe_detection(&self, report: &RunReport, changed: &[ChangedUser]) {
        for episode in &report.opened {
            let Some(idp_user_id) = episode.finding.idp_user_id.as_deref() else {
                continue;
            };
            let changed_at = changed
                .iter()
                .find(|c| c.user.id == idp_user_id)
                .and_then(|c| c.last_modified);
            if let Some(changed_at) = changed_at {
                let seconds = (report.finished_at - changed_at).num_milliseconds() as f64 / 1000.0;
                self.detection_latency.observe(seconds.max(0.0));
            }
        }
    }

    /// Counts a scheduled run skipped because one was still going.
    pub fn observe_skipped_tick(&self) {
        self.ticks_skipped.inc();
    }

    /// Seeds the gauges with what the store knows, before the first run of this process:
    /// the open findings and when the last complete run finished. A restart then changes
    /// nothing a dashboard or an alert sees, even when the runs after it are partial.
    pub fn seed(
        &self,
        open: &[OpenCount],
        last_complete: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        if let Some(finished) = last_complete {
            self.last_success
                .set(finished.timestamp_millis() as f64 / 1000.0);
        }
        self.observe_open(open, now);
    }

    /// Sets the finding gauges from the open findings' counts. Each series is written once,
    /// to its new value or to 0 if its findings closed, so that a scrape during an update
    /// sees every series either as it was or as it is now, never a passing 0 that would
    /// reset an alert's `for:`.
    pub fn observe_open(&self, open: &[OpenCount], now: DateTime<Utc>) {
        // Counted by borrowed labels: one owned label set per series, not per finding.
        let mut counts: BTreeMap<[&str; 3], f64> = BTreeMap::new();
        let mut orphans: BTreeMap<&str, f64> = BTreeMap::new();
        let mut oldest: BTreeMap<FindingKind, DateTime<Utc>> = BTreeMap::new();
        for c in open {
            let target = c.target.as_deref().unwrap_or("");
            *counts
                .entry([c.kind.as_str(), c.severity.as_str(), target])
                .or_default() += c.count as f64;
            if c.kind == FindingKind::OrphanedDbUser {
                *orphans.entry(target).or_default() += c.count as f64;
            }
            let first = oldest.entry(c.kind).or_insert(c.oldest_opened_at);
            *first = (*first).min(c.oldest_opened_at);
        }
        let owned = |labels: &[&str]| labels.iter().map(|l| (*l).to_owned()).collect();
        replace(
            &self.findings_open,
            counts.into_iter().map(|(l, n)| (owned(&l), n)).collect(),
        );
        replace(
            &self.orphaned_db_users,
            orphans.into_iter().map(|(t, n)| (owned(&[t]), n)).collect(),
        );
        for kind in FindingKind::ALL {
            let label = [kind.as_str()];
            match oldest.get(kind) {
                Some(opened) => {
                    let age = (now - *opened).num_milliseconds().max(0) as f64 / 1000.0;
                    self.oldest_open_finding_age
                        .with_label_values(&label)
                        .set(age);
                    self.oldest_open_finding_timestamp
                        .with_label_values(&label)
                        .set(opened.timestamp_millis() as f64 / 1000.0);
                }
                None => {
                    self.oldest_open_finding_age
                        .with_label_values(&label)
                        .set(0.0);
                    // No open finding, no oldest one: the series goes, so that
                    // `time() - …` never computes an age from nothing.
                    let _ = self
                        .oldest_open_finding_timestamp
                        .remove_label_values(&label);
                }
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("the text encoder writes to memory");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use idgraph_model::Severity;

    use super::*;

    /// `count` high orphans open on target `a`.
    fn orphans(count: u64) -> Vec<OpenCount> {
        vec![OpenCount {
            kind: FindingKind::OrphanedDbUser,
            severity: Severity::High,
            target: Some("a".into()),
            count,
            oldest_opened_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }]
    }

    /// The value of the sample `series` (name and labels as exposed) in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    // Regression: every update zeroed every finding series and then set the new values, so
    // a scrape in between saw 0, which resets an alert's `for:` and can resolve it.
    #[test]
    fn a_scrape_never_sees_an_open_finding_at_zero_while_updates_race() {
        let metrics = Arc::new(Metrics::new(&["a".to_owned()]));
        metrics.observe_open(&orphans(1), Utc::now());
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (metrics, done) = (metrics.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..20_000_u64 {
                    metrics.observe_open(&orphans(1 + i % 2), Utc::now());
                }
                done.store(true, Ordering::Release);
            })
        };
        let series = [
            r#"idgraph_findings_open{kind="orphaned_db_user",severity="high",target="a"}"#,
            r#"idgraph_orphaned_db_users{target="a"}"#,
        ];
        let mut scrapes = 0;
        while !done.load(Ordering::Acquire) {
            let text = metrics.render();
            for series in series {
                let value = sample(&text, series).expect("the series is exposed");
                assert!(value >= 1.0, "a scrape saw {series} {value}");
            }
            scrapes += 1;
        }
        writer.join().unwrap();
        assert!(scrapes > 0);
    }
}
