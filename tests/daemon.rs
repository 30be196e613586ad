//! `idgraph run` as a process: metrics, health, failure isolation, slow HTTP clients,
//! SIGHUP, SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::free_port;
use crate::util::{Org, Workspace};

fn org() -> Org {
    Org::ann_and_bob()
        .person("cat@example.com")
        .edit(|p| p.in_idp = false)
        .db("analytics", "IAMA:ann@example.com", false)
        .db("analytics", "IAMA:bob@example.com", true)
        .db("analytics", "IAM:cat@example.com", false)
        .db("finance", "IAMA:gone@example.com", false)
        .db("finance", "report_bot", false)
}

/// Every second, so that a test sees the next run soon.
const EVERY_SECOND: &str = "* * * * * *";

/// How a test starts the daemon: what goes before the workspace's config.
pub(crate) struct Setup<'a> {
    pub(crate) cron: &'a str,
    /// The host of `http.listen`.
    pub(crate) host: &'a str,
    /// More `[http]` keys.
    pub(crate) http: &'a str,
    pub(crate) env: &'a [(&'a str, &'a str)],
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Self {
            cron: EVERY_SECOND,
            host: "127.0.0.1",
            http: "",
            env: &[],
        }
    }
}

pub(crate) struct Daemon {
    child: Child,
    host: String,
    port: u16,
    /// The workspace's config as it was before the daemon's settings were put first.
    base_config: String,
    log: PathBuf,
}

impl Daemon {
    fn start(ws: &Workspace) -> Self {
        Self::start_with(ws, Setup::default())
    }

    fn start_with_env(ws: &Workspace, env: &[(&str, &str)]) -> Self {
        Self::start_with(
            ws,
            Setup {
                env,
                ..Setup::default()
            },
        )
    }

    pub(crate) fn start_with(ws: &Workspace, setup: Setup) -> Self {
        let port = free_port();
        let base_config = std::fs::read_to_string(ws.config()).unwrap();
        let log = ws.path("daemon.log");
        let listen = format!("{}:{port}", setup.host);
        ws.write(
            "idgraph.toml",
            &config_text(&listen, setup.cron, setup.http, &base_config),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_idgraph"))
            .args(["run", "--config"])
            .arg(ws.config())
            .env_remove("RUST_LOG")
            .envs(setup.env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("idgraph run starts");
        let daemon = Self {
            child,
            host: setup.host.to_owned(),
            port,
            base_config,
            log,
        };
        let start = Instant::now();
        while TcpStream::connect((daemon.host.as_str(), port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "idgraph run did not listen on {}:{port}\n{}",
                daemon.host,
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// Rewrites the config the daemon reads, with `more` at the end.
    fn write_config(&self, ws: &Workspace, cron: &str, http: &str, more: &str) {
        let listen = format!("{}:{}", self.host, self.port);
        let base = format!("{}\n{more}", self.base_config);
        ws.write("idgraph.toml", &config_text(&listen, cron, http, &base));
    }

    /// What the daemon logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Sends SIGTERM and returns the exit status, or panics when the process is still
    /// there after `limit`.
    pub(crate) fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let stopped = Instant::now();
        self.signal("TERM");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                stopped.elapsed() < limit,
                "still running {limit:?} after SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// A connection that sends the start of a request and never the rest.
    fn stalled_client(&self) -> TcpStream {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port)).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: idgraph\r\nX-Slow: ")
            .unwrap();
        stream
    }

    /// A keep-alive connection that made one request, had its answer, and stays open.
    fn idle_client(&self) -> TcpStream {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port)).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: idgraph\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut response = Vec::new();
        let mut buffer = [0; 1024];
        while !response.ends_with(b"ok\n") {
            let n = stream.read(&mut buffer).expect("a response");
            assert!(n > 0, "closed before the response ended");
            response.extend_from_slice(&buffer[..n]);
        }
        stream
    }

    fn get(&self, path: &str) -> (u16, String) {
        let response = std::process::Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                "-m",
                "30",
                &format!("http://{}:{}{path}", self.host, self.port),
            ])
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&response.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("a status line");
        (code.parse().expect("a status code"), body.to_owned())
    }

    /// The value of one sample, e.g. `idgraph_source_up{source="idp"}`.
    pub(crate) fn sample(&self, series: &str) -> Option<f64> {
        let (_, metrics) = self.get("/metrics");
        metrics.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
    }

    /// Waits until `series` has `value`, or panics after `limit`.
    pub(crate) fn wait_for(&self, series: &str, value: f64, limit: Duration) {
        let start = Instant::now();
        while self.sample(series) != Some(value) {
            assert!(
                start.elapsed() < limit,
                "{series} is {:?}, not {value}, after {limit:?}\n{}",
                self.sample(series),
                self.get("/metrics").1
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_daemon_serves_metrics_isolates_a_failed_source_and_stops_on_sigterm() {
    let ws = Workspace::new(&org());
    let mut daemon = Daemon::start(&ws);
    assert_eq!(daemon.get("/healthz").0, 200);
    let (status, landing) = daemon.get("/");
    assert_eq!(status, 200);
    for link in ["href=\"/metrics\"", "href=\"/healthz\"", "href=\"/readyz\""] {
        assert!(landing.contains(link), "{link} in {landing}");
    }
    let limit = Duration::from_secs(20);
    daemon.wait_for(
        "idgraph_reconcile_runs_total{status=\"complete\"}",
        1.0,
        limit,
    );
    assert_eq!(daemon.get("/readyz").0, 200);

    // The first run's findings.
    let orphans = |target: &str| format!("idgraph_orphaned_db_users{{target=\"{target}\"}}");
    assert_eq!(daemon.sample(&orphans("analytics")), Some(2.0));
    assert_eq!(daemon.sample(&orphans("finance")), Some(1.0));
    let critical = "idgraph_findings_open{kind=\"orphaned_db_user\",severity=\"critical\",target=\"analytics\"}";
    assert_eq!(daemon.sample(critical), Some(1.0));
    let stale = "idgraph_findings_open{kind=\"stale_identity_center_user\",severity=\"medium\",target=\"\"}";
    assert_eq!(daemon.sample(stale), Some(2.0));
    assert_eq!(
        daemon.sample("idgraph_source_objects{source=\"identity_center\"}"),
        Some(3.0)
    );
    assert!(
        daemon
            .sample("idgraph_last_successful_reconcile_timestamp_seconds")
            .unwrap()
            > 1.7e9
    );
    let (_, exposed) = daemon.get("/metrics");
    let build_info = exposed
        .lines()
        .find(|l| l.starts_with("idgraph_build_info{"))
        .expect("idgraph_build_info");
    assert!(
        build_info.contains("version=\"0.1.0\"") && build_info.contains("revision=\""),
        "{build_info}"
    );
    assert!(
        exposed.contains("\nprocess_resident_memory_bytes "),
        "process metrics"
    );
    let (_, metrics) = daemon.get("/metrics");
    for name in ["ann@", "bob@", "cat@", "gone@", "report_bot"] {
        assert!(!metrics.contains(name), "{name} in /metrics");
    }

    // Identity Center disappears: its source goes down, every finding gauge holds.
    ws.remove("exports/identitystore.json");
    daemon.wait_for("idgraph_source_up{source=\"identity_center\"}", 0.0, limit);
    let partial = daemon
        .sample("idgraph_reconcile_runs_total{status=\"partial\"}")
        .unwrap();
    assert!(partial >= 1.0);
    assert_eq!(daemon.sample(&orphans("analytics")), Some(2.0));
    assert_eq!(daemon.sample(&orphans("finance")), Some(1.0));
    assert_eq!(daemon.sample(critical), Some(1.0));
    assert_eq!(daemon.sample(stale), Some(2.0));
    assert_eq!(
        daemon.sample("idgraph_source_up{source=\"idp\"}"),
        Some(1.0)
    );
    assert_eq!(daemon.get("/healthz").0, 200, "the daemon keeps serving");

    // It comes back, with a user dropped meanwhile: everything is restored and moves on.
    ws.write_org(&org().without_db("finance", "IAMA:gone@example.com"));
    daemon.wait_for("idgraph_source_up{source=\"identity_center\"}", 1.0, limit);
    daemon.wait_for(&orphans("finance"), 0.0, limit);
    assert_eq!(daemon.sample(&orphans("analytics")), Some(2.0));

    // SIGTERM: exit 0, promptly.
    let status = daemon.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_bad_schedule_is_a_config_error() {
    let ws = Workspace::new(&org());
    let config = std::fs::read_to_string(ws.config()).unwrap();
    ws.write(
        "idgraph.toml",
        &format!("[schedule]\ncron = \"*/15 * * * *\"\n\n{config}"),
    );
    let output = ws.idgraph(&["run"]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("schedule.cron") && err.contains("6-field"),
        "{err}"
    );
}

#[test]
fn a_tick_during_a_run_is_skipped_and_counted() {
    // A database that accepts connections and never answers: each run waits for it
    // until the target's timeout, longer than the one-second schedule.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in blackhole.incoming().take(8) {
            open.push(stream);
        }
    });
    let ws = Workspace::with_targets(
        &org(),
        &format!(
            "[[targets]]\nname = \"slow\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             database = \"dev\"\nuser_env = \"IDGRAPH_TEST_SLOW_USER\"\nsslmode = \"disable\"\n\
             timeout_seconds = 3\n"
        ),
    );
    let daemon = Daemon::start_with_env(&ws, &[("IDGRAPH_TEST_SLOW_USER", "reader")]);
    let limit = Duration::from_secs(20);
    daemon.wait_for(
        "idgraph_reconcile_runs_total{status=\"partial\"}",
        1.0,
        limit,
    );
    assert!(
        daemon
            .sample("idgraph_reconcile_ticks_skipped_total")
            .unwrap()
            >= 1.0
    );
    assert_eq!(
        daemon.sample("idgraph_source_up{source=\"slow\"}"),
        Some(0.0)
    );
    drop(daemon);
    drop(held); // the thread ends with the test binary
}

/// A daemon's config: its schedule, its `[http]` section (`listen` and the keys `http`
/// holds), then `base`.
fn config_text(listen: &str, cron: &str, http: &str, base: &str) -> String {
    format!("[schedule]\ncron = \"{cron}\"\n\n[http]\nlisten = \"{listen}\"\n{http}\n\n{base}")
}

/// Whether the server closes `stream` within `limit` (a response before the close, such
/// as a 408, is read and ignored).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buffer = [0; 1024];
    while start.elapsed() < limit {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true, // reset
        }
    }
    false
}

// Regression: connections that never finished their headers were never timed out.
#[test]
fn stalled_and_idle_clients_are_cut_off_after_the_header_timeout() {
    let ws = Workspace::new(&org());
    let daemon = Daemon::start_with(
        &ws,
        Setup {
            http: "header_timeout_seconds = 1\nmax_connections = 32",
            ..Setup::default()
        },
    );
    assert_eq!(daemon.get("/healthz").0, 200);
    let mut stalled: Vec<TcpStream> = (0..10).map(|_| daemon.stalled_client()).collect();
    let mut idle = daemon.idle_client();
    assert_eq!(
        daemon.get("/healthz").0,
        200,
        "served beside stalled clients"
    );
    let limit = Duration::from_secs(15);
    for (i, stream) in stalled.iter_mut().enumerate() {
        assert!(
            closed_within(stream, limit),
            "stalled client {i} still open"
        );
    }
    assert!(closed_within(&mut idle, limit), "idle client still open");
    assert_eq!(daemon.get("/healthz").0, 200);
}

// Regression: SIGTERM waited for every open connection to close.
#[test]
fn sigterm_does_not_wait_for_slow_or_idle_clients() {
    let ws = Workspace::new(&org());
    let mut daemon = Daemon::start_with(
        &ws,
        Setup {
            // Far longer than the test: only the shutdown can close them.
            http: "header_timeout_seconds = 600",
            ..Setup::default()
        },
    );
    daemon.wait_for(
        "idgraph_reconcile_runs_total{status=\"complete\"}",
        1.0,
        Duration::from_secs(20),
    );
    let _stalled: Vec<TcpStream> = (0..5).map(|_| daemon.stalled_client()).collect();
    let _idle = daemon.idle_client();
    let status = daemon.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn connections_over_the_limit_wait_until_others_close() {
    let ws = Workspace::new(&org());
    let mut daemon = Daemon::start_with(
        &ws,
        Setup {
            http: "header_timeout_seconds = 600\nmax_connections = 4",
            ..Setup::default()
        },
    );
    assert_eq!(daemon.get("/healthz").0, 200);
    let stalled: Vec<TcpStream> = (0..4).map(|_| daemon.stalled_client()).collect();
    let mut waiting = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "60",
            &format!("http://127.0.0.1:{}/healthz", daemon.port),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Four connections hold every slot: the fifth waits, however long it is given.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "a fifth connection was served"
    );
    drop(stalled);
    let output = waiting.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "200");
    assert_eq!(daemon.get("/healthz").0, 200);
    assert!(daemon.is_running());
}

// Regression: SIGHUP killed the daemon.
#[test]
fn sighup_reloads_the_configuration_and_keeps_it_when_the_new_one_is_invalid() {
    let ws = Workspace::new(&org());
    // Once a year: only the first run happens unless a reload reschedules.
    let yearly = "0 0 0 1 1 *";
    let mut daemon = Daemon::start_with(
        &ws,
        Setup {
            cron: yearly,
            ..Setup::default()
        },
    );
    let limit = Duration::from_secs(20);
    let complete = "idgraph_reconcile_runs_total{status=\"complete\"}";
    daemon.wait_for(complete, 1.0, limit);

    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(daemon.is_running(), "SIGHUP ended the daemon");
    assert_eq!(daemon.get("/healthz").0, 200);

    // A new target and a new schedule: the next runs fetch the target.
    let extra = "idgraph_source_up{source=\"extra\"}";
    assert_eq!(daemon.sample(extra), None);
    let target =
        "[[targets]]\nname = \"extra\"\nkind = \"file\"\npath = \"exports/analytics.csv\"\n";
    daemon.write_config(&ws, EVERY_SECOND, "", target);
    daemon.signal("HUP");
    daemon.wait_for(extra, 1.0, limit);
    assert_eq!(
        daemon.sample("idgraph_orphaned_db_users{target=\"extra\"}"),
        Some(2.0)
    );

    // An invalid config: logged, and the daemon goes on with the one it has.
    daemon.write_config(
        &ws,
        EVERY_SECOND,
        "",
        &format!("{target}\n[bogus]\nkey = 1\n"),
    );
    daemon.signal("HUP");
    let start = Instant::now();
    while !daemon.log().contains("not reloaded") {
        assert!(start.elapsed() < limit, "no error logged\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = daemon.log();
    let line = log.lines().find(|l| l.contains("not reloaded")).unwrap();
    assert!(line.contains("ERROR") && line.contains("bogus"), "{line}");
    assert!(daemon.is_running());
    let runs = daemon.sample(complete).unwrap();
    daemon.wait_for(complete, runs + 2.0, limit);
    assert_eq!(daemon.sample(extra), Some(1.0));

    let status = daemon.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

// Regression: a run stuck on a peer kept the process from exiting. (A FIFO export, the
// first way found to do it, is now refused before it is opened.)
#[test]
fn sigterm_stops_the_daemon_while_a_run_is_stuck() {
    let (_silent, target) = crate::util::silent_target(600);
    let ws = Workspace::with_targets(&org(), &target);
    let mut daemon = Daemon::start_with(
        &ws,
        Setup {
            env: &[("SILENT_USER", "reader")],
            ..Setup::default()
        },
    );
    let start = Instant::now();
    while daemon
        .sample("idgraph_reconcile_ticks_skipped_total")
        .unwrap_or(0.0)
        < 1.0
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no run got stuck"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The stuck run has its grace (8 s), then the process exits all the same.
    let status = daemon.terminate(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
}

// Regression: `listen = "localhost:PORT"` was rejected as not an address.
#[test]
fn the_daemon_listens_on_a_host_name() {
    let ws = Workspace::new(&org());
    let daemon = Daemon::start_with(
        &ws,
        Setup {
            host: "localhost",
            ..Setup::default()
        },
    );
    assert_eq!(daemon.get("/healthz").0, 200);
}

// Regression: after a restart the gauges started from nothing, so partial runs after it
// reported that no run had ever succeeded (IdgraphReconcileStale blind,
// IdgraphReconcileNeverCompleted firing).
#[test]
fn a_restart_followed_by_partial_runs_keeps_what_the_store_knows() {
    let ws = Workspace::new(&org());
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0, "{report}");
    let finished = chrono::DateTime::parse_from_rfc3339(report["finished_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis() as f64
        / 1000.0;
    // From now on every run is partial.
    ws.remove("exports/identitystore.json");
    let daemon = Daemon::start_with(
        &ws,
        Setup {
            cron: "0 0 0 1 1 *",
            ..Setup::default()
        },
    );
    daemon.wait_for(
        "idgraph_reconcile_runs_total{status=\"partial\"}",
        1.0,
        Duration::from_secs(20),
    );
    // The report shows whole seconds.
    let last_success = daemon
        .sample("idgraph_last_successful_reconcile_timestamp_seconds")
        .unwrap();
    assert!(
        (last_success - finished).abs() < 1.0,
        "{last_success} vs {finished}"
    );
    assert_eq!(
        daemon.sample("idgraph_orphaned_db_users{target=\"analytics\"}"),
        Some(2.0)
    );
    let oldest = daemon
        .sample("idgraph_oldest_open_finding_timestamp_seconds{kind=\"orphaned_db_user\"}")
        .expect("the oldest open orphan's first sighting");
    assert!((oldest - finished).abs() < 60.0, "{oldest} vs {finished}");
    // No unmanaged finding is open: no oldest one either.
    assert_eq!(
        daemon.sample("idgraph_oldest_open_finding_timestamp_seconds{kind=\"ambiguous_mapping\"}"),
        None
    );
}
