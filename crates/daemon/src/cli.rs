//! The command line (SPEC §5) and what each command does.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use idgraph_model::{FindingKind, Severity};
use idgraph_store::{RunStatus, SourceStatus, Store};
use tokio::net::TcpListener;

use crate::config;
use crate::daemon;
use crate::export;
use crate::output;
use crate::plan;
use crate::progress;
use crate::reconcile::{reconcile_once, Context, Sources};

/// Every exit status, as `--help` and the README list them.
pub const EXIT_STATUSES: &str = "\
Exit status:
  0   success (reconcile: every source fetched completely; verify: the chain is intact)
  1   a bad configuration, an unusable store, or another error (the message says which)
  2   reconcile: a partial run (a source failed); check: a source failed
  3   verify: the run chain does not match (the history was changed)
  4   reconcile, findings: an open finding is at or above --fail-on
  64  a usage error: an unknown command or flag, a bad value";

/// Finds Amazon Redshift database users whose owner has left the company.
#[derive(Debug, Parser)]
#[command(
    name = "idgraph",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("IDGRAPH_REVISION"), ")"),
    about,
    propagate_version = true,
    after_help = EXIT_STATUSES
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as text or as JSON objects (on stderr).
    #[arg(long, global = true, value_enum, env = "IDGRAPH_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Colour in log lines: `auto` colours a terminal unless NO_COLOR is set (to anything
    /// but empty); `always` and `never` decide regardless.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

/// When log lines are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Color {
    /// Whether to colour: `terminal` says whether the output is one, `no_color` is the
    /// value of `NO_COLOR` (https://no-color.org: set and not empty disables colour).
    pub fn enabled(self, terminal: bool, no_color: Option<&str>) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => terminal && no_color.is_none_or(str::is_empty),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

impl Cli {
    /// The log level when `RUST_LOG` is not set: the daemon says what it does, one-shot
    /// commands only what goes wrong.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Run { .. } => "info",
            _ => "warn",
        }
    }
}

/// The commands (SPEC §5).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: migrate the store, reconcile at start and on the schedule, serve
    /// /metrics, /healthz and /readyz; reload the config on SIGHUP; stop on SIGTERM or
    /// SIGINT.
    Run {
        /// The configuration file.
        #[command(flatten)]
        common: Common,
    },
    /// Run one reconciliation now and record it like a scheduled one.
    ///
    /// Exit status: 0 when every source was fetched completely (findings or not), 2 for a
    /// partial run, 4 for a finding at or above --fail-on, 1 for a bad config or store.
    Reconcile {
        /// The configuration file.
        #[command(flatten)]
        common: Common,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Confirm that this source really shrank (or became empty) since its last complete
        /// snapshot; without it such a snapshot fails as suspicious. Repeat for several.
        #[arg(long, value_name = "SOURCE")]
        accept_shrink: Vec<String>,
        /// Exit 4 when a finding open after the run is at least this severe (medium, high,
        /// critical); a partial run still exits 2.
        #[arg(long, value_name = "SEVERITY", value_parser = severity)]
        fail_on: Option<Severity>,
    },
    /// Validate the config and try every source once, a line per source.
    ///
    /// Exit status: 0 when every source answered, 2 when one failed, 1 for a bad config.
    Check {
        /// The configuration file.
        #[command(flatten)]
        common: Common,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Write a compliance evidence bundle for a period: runs.csv, findings.csv,
    /// evidence.json, report.html and manifest.json.
    Export {
        /// The configuration file.
        #[command(flatten)]
        common: Common,
        /// Start of the period: a date (2026-11-01, from its first second, UTC) or an
        /// RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        since: String,
        /// End of the period: a date (to its last second, UTC) or an RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        until: String,
        /// The directory to write the bundle into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print remediation SQL for the open orphaned database users: one script per
    /// cluster that, in every database, hands their objects to `[remediation] new_owner`
    /// and revokes their privileges, then drops each user once. idgraph never executes
    /// it.
    Plan {
        /// The configuration file.
        #[command(flatten)]
        common: Common,
        /// Only the cluster of this target.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// Output format: the script, or JSON with each user's verdict and the script.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check the store's tamper-evident run chain.
    ///
    /// Exit status: 0 when every run row matches the chain recomputed from the records, 3
    /// when one does not (the first such run is named), 1 for a bad config or store.
    Verify {
        /// The configuration file.
        #[command(flatten)]
        common: Common,
        /// The chain head recorded elsewhere (an earlier export's manifest, the
        /// `chain_head` of a run's JSON report or log line): deleting the newest runs cannot
        /// be detected from inside the store, only against a head kept outside it.
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show the findings open in the store.
    ///
    /// Exit status: 0, or 4 when a finding shown is at or above --fail-on.
    Findings {
        /// The configuration file.
        #[command(flatten)]
        common: Common,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Which findings to show and gate on.
        #[command(flatten)]
        filter: FindingFilter,
        /// Exit 4 when a finding shown is at least this severe (medium, high, critical).
        #[arg(long, value_name = "SEVERITY", value_parser = severity)]
        fail_on: Option<Severity>,
    },
    /// Show finding episodes (opened, resolved) and runs.
    History {
        /// The configuration file.
        #[command(flatten)]
        common: Common,
        /// Only the episodes of this database user (exact name).
        #[arg(long, value_name = "NAME")]
        db_user: Option<String>,
        /// Only runs that finished, and episodes open, from this date (2026-11-01, from its
        /// first second, UTC) or RFC 3339 time on.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only runs that finished, and episodes open, up to this date (to its last second,
        /// UTC) or RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// At most this many runs and this many episodes: the newest.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the shell completion script for SHELL, to source or install where the shell
    /// looks (e.g. `idgraph completions bash > /etc/bash_completion.d/idgraph`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `idgraph man > /usr/local/share/man/man1/idgraph.1`.
    Man,
}

/// Which open findings `findings` shows: every one of them by default; each option narrows
/// (repeat an option for several values).
#[derive(Debug, Default, Args)]
pub struct FindingFilter {
    /// Only findings of this kind (orphaned_db_user, unmanaged_db_user,
    /// stale_identity_center_user, ambiguous_mapping).
    #[arg(long, value_name = "KIND", value_parser = kind)]
    pub kind: Vec<FindingKind>,
    /// Only findings of this severity (medium, high, critical).
    #[arg(long, value_name = "SEVERITY", value_parser = severity)]
    pub severity: Vec<Severity>,
    /// Only findings on this target.
    #[arg(long, value_name = "NAME")]
    pub target: Vec<String>,
}

impl FindingFilter {
    /// Whether `finding` passes every option given.
    pub fn keeps(&self, finding: &idgraph_model::Finding) -> bool {
        (self.kind.is_empty() || self.kind.contains(&finding.kind))
            && (self.severity.is_empty() || self.severity.contains(&finding.severity))
            && (self.target.is_empty()
                || finding
                    .target
                    .as_ref()
                    .is_some_and(|t| self.target.contains(t)))
    }
}

/// Parses a severity as the JSON contract spells it.
fn severity(text: &str) -> Result<Severity, String> {
    Severity::parse(text).ok_or_else(|| {
        let known: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
        format!("expected one of {}", known.join(", "))
    })
}

/// Parses a finding kind as the JSON contract spells it.
fn kind(text: &str) -> Result<FindingKind, String> {
    FindingKind::parse(text).ok_or_else(|| {
        let known: Vec<&str> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("expected one of {}", known.join(", "))
    })
}

/// Exit status 4 when one of `findings` is at least `threshold` severe.
fn gate<'a>(
    threshold: Option<Severity>,
    findings: impl IntoIterator<Item = &'a idgraph_model::Finding>,
) -> Option<u8> {
    let threshold = threshold?;
    findings
        .into_iter()
        .any(|f| f.severity >= threshold)
        .then_some(EXIT_FINDINGS)
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Common {
    /// The configuration file (TOML).
    #[arg(long, short = 'c', env = "IDGRAPH_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For a person at a terminal.
    Text,
    /// One JSON object on stdout.
    Json,
}

/// Exit status of `verify` when the run chain does not match.
pub const EXIT_TAMPERED: u8 = 3;

/// Exit status of a usage error (an unknown flag, a bad value), as sysexits' EX_USAGE.
pub const EXIT_USAGE: u8 = 64;

/// Exit status of a partial run, or of a check in which a source failed.
pub const EXIT_PARTIAL: u8 = 2;

/// Exit status of `reconcile` and `findings` when an open finding is at or above
/// `--fail-on`.
pub const EXIT_FINDINGS: u8 = 4;

/// Runs the command and returns the process exit status.
///
/// # Errors
///
/// A bad configuration or an unusable store; the caller exits with status 1.
pub async fn execute(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run { common } => run(common).await,
        Command::Reconcile {
            common,
            format,
            accept_shrink,
            fail_on,
        } => reconcile(common, format, accept_shrink, fail_on).await,
        Command::Check { common, format } => check(common, format).await,
        Command::Export {
            common,
            since,
            until,
            out,
        } => export_bundle(common, &since, &until, &out).await,
        Command::Plan {
            common,
            target,
            format,
        } => plan_sql(common, target.as_deref(), format).await,
        Command::Verify {
            common,
            expect_head,
            format,
        } => verify(common, expect_head.as_deref(), format).await,
        Command::Findings {
            common,
            format,
            filter,
            fail_on,
        } => findings(common, format, &filter, fail_on).await,
        Command::History {
            common,
            db_user,
            since,
            until,
            limit,
            format,
        } => {
            let period = export::bounded(since.as_deref(), until.as_deref())?;
            history(common, db_user.as_deref(), period, limit, format).await
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "idgraph", &mut script);
            emit(&String::from_utf8_lossy(&script))?;
            Ok(0)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            emit(&String::from_utf8_lossy(&page))?;
            Ok(0)
        }
    }
}

/// `idgraph run`: the daemon, until SIGTERM or SIGINT.
async fn run(common: Common) -> anyhow::Result<u8> {
    let settings = config::load(&common.config)?;
    // Before the port opens, so that whoever sees it open may send SIGHUP.
    let requests = daemon::hangups().context("cannot listen for SIGHUP")?;
    let listener = TcpListener::bind(&settings.http.addresses[..])
        .await
        .with_context(|| format!("cannot listen on {}", settings.http.listen))?;
    let path = common.config;
    let reload = daemon::Reload {
        load: Arc::new(move || config::load(&path)),
        requests,
    };
    daemon::run(settings, reload, listener, daemon::signal()).await?;
    Ok(0)
}

/// `idgraph reconcile`: one run, recorded; 0 complete, 2 partial, 4 for a finding at or
/// above `--fail-on` after a complete run, 64 for an unknown `--accept-shrink` source.
async fn reconcile(
    common: Common,
    format: Format,
    accept_shrink: Vec<String>,
    fail_on: Option<Severity>,
) -> anyhow::Result<u8> {
    let settings = config::load(&common.config)?;
    let known = settings.source_names();
    if let Some(unknown) = accept_shrink.iter().find(|s| !known.contains(&s.as_str())) {
        eprintln!(
            "error: --accept-shrink {unknown}: no such source; the sources are {}",
            known.join(", ")
        );
        return Ok(EXIT_USAGE);
    }
    let mut ctx = Context::open(settings, progress::for_stderr()).await?;
    ctx.accept_shrink = accept_shrink.into_iter().collect();
    let report = reconcile_once(&ctx).await;
    ctx.store.close().await;
    let report = report?;
    emit_line(&match format {
        Format::Json => output::report_json(&report),
        Format::Text => output::report_text(&report),
    })?;
    Ok(match report.status {
        RunStatus::Partial => EXIT_PARTIAL,
        RunStatus::Complete => gate(fail_on, report.open.iter().map(|e| &e.finding)).unwrap_or(0),
    })
}

/// `idgraph check`: the config, then every source once; 2 when a source failed.
async fn check(common: Common, format: Format) -> anyhow::Result<u8> {
    let settings = config::load(&common.config)?;
    // Built before the config is declared fine: a source that cannot be set up from it is
    // a problem of the config.
    let sources = Sources::new(&settings, progress::for_stderr()).await?;
    if format == Format::Text {
        emit_line(&format!("config  ok  {}", common.config.display()))?;
    }
    let records = sources.check().await;
    match format {
        Format::Text => emit(&output::check_text(&records))?,
        Format::Json => emit_line(&output::check_json(&common.config, &records))?,
    }
    Ok(if records.iter().all(|r| r.status == SourceStatus::Ok) {
        0
    } else {
        EXIT_PARTIAL
    })
}

/// `idgraph export`: the evidence bundle of a period, one path per line.
async fn export_bundle(common: Common, since: &str, until: &str, out: &Path) -> anyhow::Result<u8> {
    let period = export::period(since, until)?;
    let config = config::for_store(&common.config)?;
    let store = Store::open_read_only(&config.store_path).await?;
    let written = export::export(&config, &store, period, out).await;
    store.close().await;
    for path in written? {
        emit_line(&path.display().to_string())?;
    }
    Ok(0)
}

/// `idgraph plan`: remediation SQL, printed, never executed.
async fn plan_sql(common: Common, target: Option<&str>, format: Format) -> anyhow::Result<u8> {
    let settings = config::load(&common.config)?;
    let store = Store::open_read_only(&settings.store_path).await?;
    let planned = plan::plan(&settings, &store, target).await;
    store.close().await;
    let planned = planned?;
    match format {
        Format::Text => emit(&planned.sql())?,
        Format::Json => emit_line(&planned.json())?,
    }
    Ok(0)
}

/// `idgraph verify`: 0 when the chain is intact (and ends at `expect_head`), else 3.
async fn verify(common: Common, expect_head: Option<&str>, format: Format) -> anyhow::Result<u8> {
    let store = open_store(&common).await?;
    let report = store.verify().await;
    store.close().await;
    let report = report?;
    let head = report.head.as_deref().unwrap_or("(no runs yet)");
    let (status, text) = if let Some(run) = report.first_mismatch {
        (
            EXIT_TAMPERED,
            format!(
                "Run {run} does not match the run chain: the history was changed at or after run {run} ({} runs checked).",
                report.runs
            ),
        )
    } else if let Some(episode) = report.changed_episode {
        (
            EXIT_TAMPERED,
            format!(
                "Episode {episode} differs from the last version the run chain recorded for it: the history was changed."
            ),
        )
    } else {
        match expect_head {
            Some(expected) if !expected.eq_ignore_ascii_case(head) => (
                EXIT_TAMPERED,
                format!(
                    "The run chain is intact but ends at {head}, not at the expected head {expected}: runs were removed from (or added to) the end of the history ({} runs checked).",
                    report.runs
                ),
            ),
            Some(_) => (
                0,
                format!(
                    "Run chain intact and ends at the expected head: {} runs, head {head}",
                    report.runs
                ),
            ),
            None => (0, format!("Run chain intact: {} runs, head {head}", report.runs)),
        }
    };
    match format {
        Format::Text => emit_line(&text)?,
        Format::Json => emit_line(&output::verify_json(
            &report,
            expect_head,
            status == 0,
            &text,
        ))?,
    }
    Ok(status)
}

/// `idgraph findings`: what is open in the store, as `filter` narrows it; 4 when one of
/// those is at or above `fail_on`.
async fn findings(
    common: Common,
    format: Format,
    filter: &FindingFilter,
    fail_on: Option<Severity>,
) -> anyhow::Result<u8> {
    let store = open_store(&common).await?;
    let open = store.open_episodes().await;
    store.close().await;
    let mut open = open?;
    open.retain(|e| filter.keeps(&e.finding));
    emit_line(&match format {
        Format::Json => output::findings_json(&open),
        Format::Text => output::open_text(&open),
    })?;
    Ok(gate(fail_on, open.iter().map(|e| &e.finding)).unwrap_or(0))
}

/// `idgraph history`: episodes (of one database user, or all) and runs, within `period`,
/// the newest `limit` of each.
async fn history(
    common: Common,
    db_user: Option<&str>,
    period: export::Period,
    limit: Option<usize>,
    format: Format,
) -> anyhow::Result<u8> {
    let store = open_store(&common).await?;
    let history = async {
        let episodes = store.episodes(db_user).await?;
        let runs = store.runs().await?;
        anyhow::Ok((episodes, runs))
    }
    .await;
    store.close().await;
    let (mut episodes, mut runs) = history?;
    episodes.retain(|e| period.overlaps(e));
    runs.retain(|r| period.covers_run(r));
    if let Some(limit) = limit {
        // Both come oldest first: keep the tail.
        episodes.drain(..episodes.len().saturating_sub(limit));
        runs.drain(..runs.len().saturating_sub(limit));
    }
    emit_line(&match format {
        Format::Json => output::history_json(&episodes, &runs),
        Format::Text => output::history_text(&episodes, &runs),
    })?;
    Ok(0)
}

/// Writes a command's output to stdout. A reader that went away (`idgraph findings | head`)
/// has all it wanted: the output stops there, quietly, and the command ends as it would have.
///
/// # Errors
///
/// When stdout cannot be written for another reason (a full disk).
fn emit(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}

/// [`emit`] with a line break after `text`.
fn emit_line(text: &str) -> io::Result<()> {
    emit(&format!("{text}\n"))
}

/// The store, read-only, of a command that needs no source (and so no secret).
async fn open_store(common: &Common) -> anyhow::Result<Store> {
    let config = config::for_store(&common.config)?;
    Ok(Store::open_read_only(&config.store_path).await?)
}
