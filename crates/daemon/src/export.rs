//! `idgraph export`: a compliance evidence bundle for a period — `runs.csv`,
//! `findings.csv`, `evidence.json`, `report.html` and `manifest.json` (SPEC §7).
//!
//! Values from the data are written as they are (CSV quoting keeps hostile names intact)
//! and HTML-escaped in the report. The manifest holds each file's SHA-256 and the head of
//! the run chain, so an auditor can check later that neither the bundle nor the store's
//! history changed.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use idgraph_model::{FindingKind, Resolution, Severity};
use idgraph_store::{Episode, RunRow, RunStatus, SourceStatus, Store};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::StoreConfig;
use crate::output::{logins_text, run_kind, timestamp, FindingJson, RunJson};

/// The period an export covers: `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Start, inclusive.
    pub since: DateTime<Utc>,
    /// End, exclusive.
    pub until: DateTime<Utc>,
}

/// Parses `--since`/`--until`: an RFC 3339 time, or a date (`2026-11-01`) meaning the start
/// of that day in UTC for `since` and the end of that day for `until`.
///
/// # Errors
///
/// When the text is neither, or `since` is not before `until`.
pub fn period(since: &str, until: &str) -> anyhow::Result<Period> {
    bounded(Some(since), Some(until))
}

/// [`period`] where either end may be open: from the first run, to the last.
///
/// # Errors
///
/// As [`period`].
pub fn bounded(since: Option<&str>, until: Option<&str>) -> anyhow::Result<Period> {
    let parse = |text: &str, end_of_day: bool| -> anyhow::Result<DateTime<Utc>> {
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(t.with_timezone(&Utc));
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| {
            format!("{text:?} is neither a date (2026-11-01) nor an RFC 3339 time")
        })?;
        let date = if end_of_day {
            date.succ_opt().context("a date too far in the future")?
        } else {
            date
        };
        Ok(date
            .and_hms_opt(0, 0, 0)
            .context("midnight exists")?
            .and_utc())
    };
    let period = Period {
        since: match since {
            Some(since) => parse(since, false).context("--since")?,
            None => DateTime::<Utc>::MIN_UTC,
        },
        until: match until {
            Some(until) => parse(until, true).context("--until")?,
            None => DateTime::<Utc>::MAX_UTC,
        },
    };
    if period.since >= period.until {
        bail!("--since must be before --until");
    }
    Ok(period)
}

impl Period {
    /// Whether `run` finished within the period.
    pub fn covers_run(&self, run: &RunRow) -> bool {
        run.finished_at >= self.since && run.finished_at < self.until
    }

    /// Whether the episode `e` was open at some time within the period.
    pub fn overlaps(&self, e: &Episode) -> bool {
        e.opened_at < self.until && e.resolved_at.is_none_or(|r| r >= self.since)
    }
}

/// Seconds from opening to resolution, for an episode that was resolved by remediation:
/// one whose target was removed from the config was never shown to be fixed.
fn time_to_remediate(e: &Episode) -> Option<i64> {
    if e.resolution == Some(Resolution::TargetRemoved) {
        return None;
    }
    e.resolved_at.map(|r| (r - e.opened_at).num_seconds())
}

fn human_duration(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{:.1} h", s as f64 / 3600.0),
        s => format!("{:.1} d", s as f64 / 86400.0),
    }
}

/// A file of the bundle, as the manifest lists it.
#[derive(Serialize)]
struct ManifestFile {
    name: &'static str,
    sha256: String,
    bytes: usize,
}

/// Writes the bundle for `period` into `out` (created if missing) and returns the paths
/// written.
///
/// # Errors
///
/// When the store cannot be read or a file cannot be written.
pub async fn export(
    config: &StoreConfig,
    store: &Store,
    period: Period,
    out: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let runs: Vec<RunRow> = store
        .runs()
        .await?
        .into_iter()
        .filter(|r| period.covers_run(r))
        .collect();
    let episodes: Vec<Episode> = store
        .episodes(None)
        .await?
        .into_iter()
        .filter(|e| period.overlaps(e))
        .collect();
    let chain = store.verify().await?;
    let generated_at = Utc::now();

    let files: [(&'static str, Vec<u8>); 4] = [
        ("runs.csv", runs_csv(&runs)?),
        ("findings.csv", findings_csv(&episodes)?),
        (
            "evidence.json",
            evidence_json(&runs, &episodes, period, &chain, generated_at)?,
        ),
        (
            "report.html",
            report_html(&runs, &episodes, period, &chain, generated_at).into_bytes(),
        ),
    ];
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    let mut listed = Vec::new();
    for (name, bytes) in &files {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        listed.push(ManifestFile {
            name,
            sha256: hex::encode(Sha256::digest(bytes)),
            bytes: bytes.len(),
        });
        written.push(path);
    }
    let manifest = serde_json::json!({
        "idgraph_version": env!("CARGO_PKG_VERSION"),
        "generated_at": timestamp(generated_at),
        "period": {"since": timestamp(period.since), "until": timestamp(period.until)},
        "store": config.store_path.display().to_string(),
        "chain": {
            "head": chain.head,
            "runs": chain.runs,
            "intact": chain.is_intact(),
            "first_mismatch": chain.first_mismatch,
            "changed_episode": chain.changed_episode,
        },
        "config_sha256": config.digest,
        "files": listed,
    });
    let path = out.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    Ok(written)
}

fn sources_where(run: &RunRow, status: SourceStatus) -> String {
    run.sources
        .iter()
        .filter(|s| s.status == status)
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

/// The first characters that make a spreadsheet read a cell as a formula (or, for tab and
/// the line breaks, let one slip past a check): OWASP's "CSV injection" list, which has
/// named the line feed as well as the carriage return since 2025.
const FORMULA_TRIGGERS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\n'];

/// `cell` as a spreadsheet shows it as text: one that begins with a formula trigger gets
/// a single quote in front, as OWASP advises
/// (<https://owasp.org/www-community/attacks/CSV_Injection>). Only the CSV files are
/// neutralised; `evidence.json` keeps every name as it is.
fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_TRIGGERS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A CSV writer whose every cell is [`spreadsheet_safe`].
struct SafeCsv(csv::Writer<Vec<u8>>);

impl SafeCsv {
    fn new() -> Self {
        Self(csv::Writer::from_writer(Vec::new()))
    }

    fn write_record<I>(&mut self, record: I) -> anyhow::Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let cells = record
            .into_iter()
            .map(|cell| spreadsheet_safe(cell.as_ref()).into_owned());
        Ok(self.0.write_record(cells)?)
    }

    fn into_inner(self) -> anyhow::Result<Vec<u8>> {
        Ok(self.0.into_inner()?)
    }
}

fn runs_csv(runs: &[RunRow]) -> anyhow::Result<Vec<u8>> {
    let mut w = SafeCsv::new();
    w.write_record([
        "run_id",
        "started_at",
        "finished_at",
        "status",
        "opened",
        "resolved",
        "sources_complete",
        "sources_failed",
        "hash",
        "kind",
        "identities_rechecked",
    ])?;
    for r in runs {
        w.write_record([
            r.id.to_string(),
            timestamp(r.started_at),
            timestamp(r.finished_at),
            r.status.as_str().to_owned(),
            r.opened.to_string(),
            r.resolved.to_string(),
            sources_where(r, SourceStatus::Ok),
            sources_where(r, SourceStatus::Failed),
            r.hash.clone().unwrap_or_default(),
            run_kind(r).to_owned(),
            r.scope
                .as_ref()
                .map(|s| s.subjects.len().to_string())
                .unwrap_or_default(),
        ])?;
    }
    w.into_inner()
}

fn findings_csv(episodes: &[Episode]) -> anyhow::Result<Vec<u8>> {
    let mut w = SafeCsv::new();
    w.write_record([
        "episode_id",
        "kind",
        "reason",
        "severity",
        "target",
        "db_user",
        "user_name",
        "ic_user_id",
        "idp_user_id",
        "superuser",
        "opened_run",
        "opened_at",
        "resolved_run",
        "resolved_at",
        "time_to_remediate_seconds",
        "resolution",
        "logins",
    ])?;
    for e in episodes {
        let f = &e.finding;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record([
            e.id.to_string(),
            f.kind.as_str().to_owned(),
            f.reason.as_str().to_owned(),
            f.severity.as_str().to_owned(),
            text(&f.target),
            text(&f.db_user),
            text(&f.user_name),
            text(&f.ic_user_id),
            text(&f.idp_user_id),
            f.superuser.to_string(),
            e.opened_run.to_string(),
            timestamp(e.opened_at),
            e.resolved_run.map(|r| r.to_string()).unwrap_or_default(),
            e.resolved_at.map(timestamp).unwrap_or_default(),
            time_to_remediate(e)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            e.resolution
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            logins_text(f.logins.as_ref()),
        ])?;
    }
    w.into_inner()
}

fn evidence_json(
    runs: &[RunRow],
    episodes: &[Episode],
    period: Period,
    chain: &idgraph_store::ChainReport,
    generated_at: DateTime<Utc>,
) -> anyhow::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct EpisodeJson<'a> {
        episode_id: i64,
        #[serde(flatten)]
        finding: FindingJson<'a>,
        time_to_remediate_seconds: Option<i64>,
    }
    /// A run with its link in the chain.
    #[derive(Serialize)]
    struct RunWithHash<'a> {
        #[serde(flatten)]
        run: RunJson<'a>,
        hash: Option<&'a str>,
    }
    let runs: Vec<RunWithHash> = runs
        .iter()
        .map(|r| RunWithHash {
            run: RunJson::from(r),
            hash: r.hash.as_deref(),
        })
        .collect();
    let episodes: Vec<EpisodeJson> = episodes
        .iter()
        .map(|e| EpisodeJson {
            episode_id: e.id,
            finding: FindingJson::from(e),
            time_to_remediate_seconds: time_to_remediate(e),
        })
        .collect();
    Ok(serde_json::to_vec_pretty(&serde_json::json!({
        "idgraph_version": env!("CARGO_PKG_VERSION"),
        "generated_at": timestamp(generated_at),
        "period": {"since": timestamp(period.since), "until": timestamp(period.until)},
        "chain": {"head": chain.head, "runs": chain.runs, "intact": chain.is_intact()},
        "runs": runs,
        "episodes": episodes,
    }))?)
}

/// `&`, `<`, `>`, `"` and `'` as HTML entities: every value from the data goes through
/// this before it reaches the page.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Open orphaned database users after each run, as an inline SVG line.
fn orphans_chart(runs: &[RunRow], episodes: &[Episode]) -> String {
    let points: Vec<(DateTime<Utc>, usize)> = runs
        .iter()
        .map(|r| {
            let open = episodes
                .iter()
                .filter(|e| {
                    e.finding.kind == FindingKind::OrphanedDbUser
                        && e.opened_run <= r.id
                        && e.resolved_run.is_none_or(|x| x > r.id)
                })
                .count();
            (r.finished_at, open)
        })
        .collect();
    let (width, height, pad) = (640.0, 160.0, 24.0);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let n = points.len().max(2) as f64 - 1.0;
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let x = pad + (width - 2.0 * pad) * (i as f64) / n;
            let y = height - pad - (height - 2.0 * pad) * (*v as f64) / max;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let last = points.last().map(|p| p.1).unwrap_or(0);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" \
         aria-label=\"Open orphaned database users per run\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fafafa\" stroke=\"#ccc\"/>\
         <polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"{pad}\" y=\"16\" font-size=\"12\">max {max} · now {last} · {} runs</text></svg>",
        coords.join(" "),
        points.len()
    )
}

fn report_html(
    runs: &[RunRow],
    episodes: &[Episode],
    period: Period,
    chain: &idgraph_store::ChainReport,
    generated_at: DateTime<Utc>,
) -> String {
    let e = escape_html;
    let mut h = String::new();
    let complete = runs
        .iter()
        .filter(|r| r.status == RunStatus::Complete)
        .count();
    let open: Vec<&Episode> = episodes
        .iter()
        .filter(|x| x.resolved_run.is_none())
        .collect();
    let mut remediation: Vec<i64> = episodes.iter().filter_map(time_to_remediate).collect();
    remediation.sort_unstable();
    let median = remediation
        .get(remediation.len() / 2)
        .map(|s| human_duration(*s))
        .unwrap_or_else(|| "—".into());
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>idgraph evidence {since} – {until}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px}}\
         th{{background:#f0f0f0}}.critical{{color:#a00;font-weight:bold}}.high{{color:#c50}}code{{font-size:12px}}\
         </style></head><body>\
         <h1>Database access of people who left — evidence</h1>\
         <p>Period {since} to {until} (UTC). Generated {gen} by idgraph {ver}.</p>",
        since = e(&timestamp(period.since)),
        until = e(&timestamp(period.until)),
        gen = e(&timestamp(generated_at)),
        ver = env!("CARGO_PKG_VERSION"),
    );
    let _ = write!(
        h,
        "<h2>Summary</h2><ul>\
         <li>{runs} runs, {complete} complete, {partial} partial (a source could not be read; nothing that depended on it was opened or resolved)</li>\
         <li>{episodes} finding episodes in the period, {open} still open at its end</li>\
         <li>median time to remediate: {median} over {resolved} resolved episodes</li>\
         <li>run chain: {chain_state}, head <code>{head}</code></li></ul>",
        runs = runs.len(),
        partial = runs.len() - complete,
        episodes = episodes.len(),
        open = open.len(),
        resolved = remediation.len(),
        chain_state = if chain.is_intact() { "intact" } else { "BROKEN — see idgraph verify" },
        head = e(chain.head.as_deref().unwrap_or("none")),
    );
    h.push_str("<h2>Open orphaned database users</h2>");
    h.push_str(&orphans_chart(runs, episodes));

    open_findings_html(&mut h, &open);
    episodes_html(&mut h, episodes);
    coverage_html(&mut h, runs);
    h.push_str("</table></body></html>\n");
    h
}

/// The report's open findings, a table per severity, most severe first.
fn open_findings_html(h: &mut String, open: &[&Episode]) {
    let e = escape_html;
    h.push_str("<h2>Open findings by severity</h2>");
    for severity in Severity::ALL.iter().rev() {
        let of: Vec<&&Episode> = open
            .iter()
            .filter(|x| x.finding.severity == *severity)
            .collect();
        if of.is_empty() {
            continue;
        }
        let _ = write!(
            h,
            "<h3 class=\"{s}\">{s} ({n})</h3><table><tr><th>kind</th><th>reason</th><th>target</th><th>database user</th><th>person</th><th>open since</th><th>logins</th></tr>",
            s = severity.as_str(),
            n = of.len()
        );
        for x in of {
            let f = &x.finding;
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>run {} · {}</td><td>{}</td></tr>",
                e(f.kind.as_str()),
                e(f.reason.as_str()),
                e(f.target.as_deref().unwrap_or("—")),
                e(f.db_user.as_deref().unwrap_or("—")),
                e(f.user_name.as_deref().unwrap_or("—")),
                x.opened_run,
                e(&timestamp(x.opened_at)),
                e(&logins_text(f.logins.as_ref())),
            );
        }
        h.push_str("</table>");
    }
}

/// The report's table of every episode with its time to remediate.
fn episodes_html(h: &mut String, episodes: &[Episode]) {
    let e = escape_html;
    h.push_str("<h2>Episodes and time to remediate</h2><table><tr><th>#</th><th>kind</th><th>severity</th><th>target</th><th>database user / person</th><th>opened</th><th>resolved</th><th>time to remediate</th></tr>");
    for x in episodes {
        let f = &x.finding;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{sev}\">{sev}</td><td>{}</td><td>{}</td><td>run {} · {}</td><td>{}</td><td>{}</td></tr>",
            x.id,
            e(f.kind.as_str()),
            e(f.target.as_deref().unwrap_or("—")),
            e(f.db_user.as_deref().or(f.user_name.as_deref()).unwrap_or("—")),
            x.opened_run,
            e(&timestamp(x.opened_at)),
            match (x.resolved_run, x.resolved_at) {
                (Some(run), Some(at)) if x.resolution == Some(Resolution::TargetRemoved) => {
                    format!("run {run} · {} (target removed from the config)", e(&timestamp(at)))
                }
                (Some(run), Some(at)) => format!("run {run} · {}", e(&timestamp(at))),
                _ => "open".into(),
            },
            time_to_remediate(x).map(human_duration).unwrap_or_else(|| "—".into()),
            sev = f.severity.as_str(),
        );
    }
    h.push_str("</table>");
}

/// The report's table of what each run read.
fn coverage_html(h: &mut String, runs: &[RunRow]) {
    let e = escape_html;
    h.push_str("<h2>Source coverage per run</h2><table><tr><th>run</th><th>finished</th><th>status</th><th>sources</th></tr>");
    for r in runs {
        let sources: Vec<String> = r
            .sources
            .iter()
            .map(|s| match (s.status, s.objects) {
                (SourceStatus::Ok, Some(n)) => format!("{} ok ({n})", e(&s.name)),
                _ => format!("<b>{} FAILED</b>", e(&s.name)),
            })
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.id,
            e(&r.finished_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
            match &r.scope {
                Some(scope) => format!(
                    "{} (watched: {} identities re-checked)",
                    r.status.as_str(),
                    scope.subjects.len()
                ),
                None => r.status.as_str().to_owned(),
            },
            sources.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_the_five_characters() {
        assert_eq!(
            escape_html("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn cells_a_spreadsheet_would_evaluate_get_a_quote_and_the_others_stay() {
        for (cell, shown) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1", "'+1"),
            ("-1+2", "'-1+2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("\nx", "'\nx"),
            ("IAMA:ann@example.com", "IAMA:ann@example.com"),
            ("a=b", "a=b"),
            ("'quoted", "'quoted"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), shown, "{cell:?}");
        }
    }

    #[test]
    fn dates_cover_whole_days_and_times_are_exact() {
        let p = period("2026-11-01", "2026-11-30").unwrap();
        assert_eq!(timestamp(p.since), "2026-11-01T00:00:00Z");
        assert_eq!(timestamp(p.until), "2026-12-01T00:00:00Z");
        let p = period("2026-11-01T10:00:00Z", "2026-11-01T11:00:00+01:00").is_err();
        assert!(p, "an empty period is refused");
        assert!(period("yesterday", "2026-11-30").is_err());
    }
}
