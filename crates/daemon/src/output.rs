//! What the CLI prints: the JSON contract of SPEC §5, and text for a terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use idgraph_model::{Accounting, FindingKind, LoginEvidence, Resolution, Severity};
use idgraph_store::{Episode, RunRow, RunScope, SourceRecord, SourceStatus};
use serde::Serialize;

use crate::reconcile::RunReport;

/// RFC 3339 in UTC to the second, as the JSON contract shows times.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A finding episode as the JSON contract shows it.
#[derive(Debug, Serialize)]
pub struct FindingJson<'a> {
    kind: &'static str,
    reason: &'static str,
    severity: &'static str,
    target: Option<&'a str>,
    db_user: Option<&'a str>,
    ic_user_id: Option<&'a str>,
    idp_user_id: Option<&'a str>,
    user_name: Option<&'a str>,
    superuser: bool,
    matched_by: Option<&'static str>,
    candidates: &'a [String],
    first_seen_run: i64,
    first_seen_at: String,
    resolved_run: Option<i64>,
    resolved_at: Option<String>,
    /// Why the episode ended: `not_seen` or `target_removed`; null while open.
    resolution: Option<&'static str>,
    /// The login evidence of `post_deprovisioning_login` and `dormant_db_user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    logins: Option<&'a LoginEvidence>,
}

impl<'a> From<&'a Episode> for FindingJson<'a> {
    fn from(e: &'a Episode) -> Self {
        let f = &e.finding;
        Self {
            kind: f.kind.as_str(),
            reason: f.reason.as_str(),
            severity: f.severity.as_str(),
            target: f.target.as_deref(),
            db_user: f.db_user.as_deref(),
            ic_user_id: f.ic_user_id.as_deref(),
            idp_user_id: f.idp_user_id.as_deref(),
            user_name: f.user_name.as_deref(),
            superuser: f.superuser,
            matched_by: f.matched_by.map(|m| m.as_str()),
            candidates: &f.candidates,
            first_seen_run: e.opened_run,
            first_seen_at: timestamp(e.opened_at),
            resolved_run: e.resolved_run,
            resolved_at: e.resolved_at.map(timestamp),
            resolution: e.resolution.map(|r| r.as_str()),
            logins: f.logins.as_ref(),
        }
    }
}

/// The login evidence of a finding in one line: when, from where, with what, and whether
/// a session is open; empty for a finding without any.
pub fn logins_text(evidence: Option<&LoginEvidence>) -> String {
    let Some(e) = evidence else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(at) = e.deactivated_at {
        parts.push(format!("deactivated by {}", timestamp(at)));
    }
    if e.count > 0 {
        let mut logins = format!("{} login(s)", e.count);
        if let (Some(first), Some(last)) = (e.first_login_at, e.last_login_at) {
            let _ = write!(logins, " {} to {}", timestamp(first), timestamp(last));
        }
        parts.push(logins);
    } else if e.watched_since.is_some() {
        parts.push(match e.last_login_at {
            Some(last) => format!("last login {}", timestamp(last)),
            None => "no login seen".to_owned(),
        });
    }
    if let Some(since) = e.watched_since {
        parts.push(format!("watched since {}", timestamp(since)));
    }
    for (what, value) in [
        ("from", &e.remote_host),
        ("app", &e.application),
        ("auth", &e.auth_method),
        ("db", &e.database),
    ] {
        if let Some(value) = value {
            parts.push(format!("{what} {}", shown(value)));
        }
    }
    if e.session_open {
        parts.push("SESSION OPEN".to_owned());
    }
    parts.join(", ")
}

/// A source's outcome in a run.
#[derive(Debug, Serialize)]
struct SourceJson<'a> {
    name: &'a str,
    kind: &'a str,
    status: &'static str,
    objects: Option<u64>,
    error: Option<&'a str>,
    digest: Option<&'a str>,
    duration_ms: u64,
}

impl<'a> From<&'a SourceRecord> for SourceJson<'a> {
    fn from(s: &'a SourceRecord) -> Self {
        Self {
            name: &s.name,
            kind: &s.kind,
            status: s.status.as_str(),
            objects: s.objects,
            error: s.error.as_deref(),
            digest: s.digest.as_deref(),
            duration_ms: s.duration_ms,
        }
    }
}

#[derive(Serialize)]
struct ReportJson<'a> {
    run_id: i64,
    chain_head: &'a str,
    status: &'static str,
    started_at: String,
    finished_at: String,
    sources: Vec<SourceJson<'a>>,
    accounting: Option<Accounting>,
    findings: Vec<FindingJson<'a>>,
    opened: Vec<FindingJson<'a>>,
    resolved: Vec<FindingJson<'a>>,
}

/// A recorded run as `history --format json` and the evidence bundle show it.
#[derive(Serialize)]
pub struct RunJson<'a> {
    run_id: i64,
    /// `full`, or `watched` for a targeted re-check of the IdP users that changed.
    kind: &'static str,
    status: &'static str,
    started_at: String,
    finished_at: String,
    opened: u64,
    resolved: u64,
    sources: Vec<SourceJson<'a>>,
    /// What a watched run evaluated: the changed IdP users and the identities re-checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a RunScope>,
}

/// `full` or `watched`: what a run evaluated, as history and evidence name it.
pub fn run_kind(run: &RunRow) -> &'static str {
    if run.scope.is_some() {
        "watched"
    } else {
        "full"
    }
}

impl<'a> From<&'a RunRow> for RunJson<'a> {
    fn from(r: &'a RunRow) -> Self {
        Self {
            run_id: r.id,
            kind: run_kind(r),
            status: r.status.as_str(),
            started_at: timestamp(r.started_at),
            finished_at: timestamp(r.finished_at),
            opened: r.opened,
            resolved: r.resolved,
            sources: r.sources.iter().map(SourceJson::from).collect(),
            scope: r.scope.as_ref(),
        }
    }
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).expect("plain structs always serialize")
}

/// `reconcile --format json`: one object (SPEC §5).
pub fn report_json(report: &RunReport) -> String {
    to_json(&ReportJson {
        run_id: report.run_id,
        chain_head: &report.chain_head,
        status: report.status.as_str(),
        started_at: timestamp(report.started_at),
        finished_at: timestamp(report.finished_at),
        sources: report.sources.iter().map(SourceJson::from).collect(),
        accounting: report.accounting,
        findings: report.open.iter().map(FindingJson::from).collect(),
        opened: report.opened.iter().map(FindingJson::from).collect(),
        resolved: report.resolved.iter().map(FindingJson::from).collect(),
    })
}

/// `findings --format json`: `{"findings": [...]}`.
pub fn findings_json(open: &[Episode]) -> String {
    #[derive(Serialize)]
    struct Findings<'a> {
        findings: Vec<FindingJson<'a>>,
    }
    to_json(&Findings {
        findings: open.iter().map(FindingJson::from).collect(),
    })
}

/// `check --format json`: `{"config": path, "sources": [...]}`, each source as in a run
/// report.
pub fn check_json(config: &std::path::Path, records: &[SourceRecord]) -> String {
    #[derive(Serialize)]
    struct Check<'a> {
        config: String,
        sources: Vec<SourceJson<'a>>,
    }
    to_json(&Check {
        config: config.display().to_string(),
        sources: records.iter().map(SourceJson::from).collect(),
    })
}

/// `verify --format json`: the chain's state, whether it passed (`ok`: intact, and at
/// `expected_head` when one was given), and the sentence the text output prints.
pub fn verify_json(
    report: &idgraph_store::ChainReport,
    expected_head: Option<&str>,
    ok: bool,
    message: &str,
) -> String {
    #[derive(Serialize)]
    struct Verify<'a> {
        ok: bool,
        intact: bool,
        runs: u64,
        head: Option<&'a str>,
        expected_head: Option<&'a str>,
        first_mismatch: Option<i64>,
        changed_episode: Option<i64>,
        message: &'a str,
    }
    to_json(&Verify {
        ok,
        intact: report.is_intact(),
        runs: report.runs,
        head: report.head.as_deref(),
        expected_head,
        first_mismatch: report.first_mismatch,
        changed_episode: report.changed_episode,
        message,
    })
}

/// `history --format json`: `{"episodes": [...], "runs": [...]}`.
pub fn history_json(episodes: &[Episode], runs: &[RunRow]) -> String {
    #[derive(Serialize)]
    struct History<'a> {
        episodes: Vec<FindingJson<'a>>,
        runs: Vec<RunJson<'a>>,
    }
    to_json(&History {
        episodes: episodes.iter().map(FindingJson::from).collect(),
        runs: runs.iter().map(RunJson::from).collect(),
    })
}

/// A name as a terminal can show it: a name with a control character (a newline in a
/// hostile user name) or a character that reorders or hides text is shown quoted and
/// escaped, so that one finding stays on one line and reads as it is.
fn shown(name: &str) -> String {
    if name.chars().any(needs_escape) {
        format!("{name:?}")
    } else {
        name.to_owned()
    }
}

/// Free text for one line of output (error messages, paths, SQL comments): control,
/// line-separating and bidirectional-formatting characters escaped, the rest as it is.
pub(crate) fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that must not reach a terminal or a one-line comment as they are.
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

fn sources_text(out: &mut String, sources: &[SourceRecord]) {
    let width = sources.iter().map(|s| s.name.len()).max().unwrap_or(0);
    out.push_str("Sources\n");
    for s in sources {
        let detail = match (s.status, s.objects, &s.error) {
            (SourceStatus::Ok, Some(n), _) => format!("{n} users"),
            (_, _, Some(error)) => error.clone(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:width$}  {:11}  {:6}  {}",
            shown(&s.name),
            s.kind,
            s.status.as_str(),
            shown(&detail),
        );
    }
}

/// Open findings counted by kind (rows) and target (columns), then listed by severity.
fn findings_text(out: &mut String, open: &[Episode]) {
    let mut targets: Vec<&str> = open
        .iter()
        .map(|e| e.finding.target.as_deref().unwrap_or(""))
        .collect();
    targets.sort_unstable();
    targets.dedup();
    let mut counts: BTreeMap<(FindingKind, &str), usize> = BTreeMap::new();
    for e in open {
        *counts
            .entry((e.finding.kind, e.finding.target.as_deref().unwrap_or("")))
            .or_default() += 1;
    }
    let column = |t: &str| {
        if t.is_empty() {
            "identity center".to_owned()
        } else {
            shown(t)
        }
    };
    let widths: Vec<usize> = targets
        .iter()
        .map(|t| column(t).chars().count().max(5))
        .collect();
    let _ = write!(out, "  {:28}", "kind");
    for (t, w) in targets.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", column(t));
    }
    out.push_str("  total\n");
    for kind in FindingKind::ALL {
        let total: usize = targets
            .iter()
            .map(|t| counts.get(&(*kind, *t)).copied().unwrap_or(0))
            .sum();
        if total == 0 {
            continue;
        }
        let _ = write!(out, "  {:28}", kind.as_str());
        for (t, w) in targets.iter().zip(&widths) {
            let n = counts.get(&(*kind, *t)).copied().unwrap_or(0);
            let _ = write!(
                out,
                "  {:>w$}",
                if n == 0 {
                    "-".to_owned()
                } else {
                    n.to_string()
                }
            );
        }
        let _ = writeln!(out, "  {total:>5}");
    }
    for severity in Severity::ALL.iter().rev() {
        let of_severity: Vec<&Episode> = open
            .iter()
            .filter(|e| e.finding.severity == *severity)
            .collect();
        if of_severity.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{} ({})",
            severity.as_str().to_uppercase(),
            of_severity.len()
        );
        episodes_table(out, &of_severity);
    }
}

/// Episodes as aligned columns: kind, target, who, why, when, and the candidates of an
/// ambiguous mapping.
fn episodes_table(out: &mut String, episodes: &[&Episode]) {
    let rows: Vec<[String; 6]> = episodes
        .iter()
        .map(|e| {
            let f = &e.finding;
            let who = match (&f.db_user, &f.ic_user_id) {
                (Some(db_user), _) => shown(db_user),
                (None, ic_user_id) => format!(
                    "{} ({})",
                    shown(f.user_name.as_deref().unwrap_or("")),
                    shown(ic_user_id.as_deref().unwrap_or(""))
                ),
            };
            let candidates = if f.logins.is_some() {
                logins_text(f.logins.as_ref())
            } else if f.candidates.is_empty() {
                String::new()
            } else {
                let candidates: Vec<String> = f.candidates.iter().map(|c| shown(c)).collect();
                format!("candidates: {}", candidates.join(", "))
            };
            let mut when = format!("run {} {}", e.opened_run, timestamp(e.opened_at));
            if let (Some(run), Some(at)) = (e.resolved_run, e.resolved_at) {
                let _ = write!(when, " → run {run} {}", timestamp(at));
                if e.resolution == Some(Resolution::TargetRemoved) {
                    when.push_str(" (target removed from the config)");
                }
            }
            [
                f.kind.as_str().to_owned(),
                shown(f.target.as_deref().unwrap_or("-")),
                who,
                f.reason.as_str().to_owned(),
                when,
                candidates,
            ]
        })
        .collect();
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::from(" ");
        for (w, cell) in widths.iter().zip(row) {
            line.push(' ');
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 1));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// `reconcile` for a terminal.
pub fn report_text(report: &RunReport) -> String {
    let mut out = String::new();
    let seconds = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
    let _ = writeln!(
        out,
        "Run {}: {} at {} ({seconds:.1} s)\n",
        report.run_id,
        report.status.as_str(),
        timestamp(report.finished_at)
    );
    sources_text(&mut out, &report.sources);
    if let Some(a) = report.accounting {
        let findings = report
            .open
            .iter()
            .filter(|e| e.finding.db_user.is_some())
            .count();
        let _ = writeln!(
            out,
            "\nDatabase users: {}: {} person logins ({} of them findings), {} IAM roles, {} exempt (master, system, allowlisted, idgraph's own)",
            a.database_users, a.person_logins, findings, a.iam_roles, a.exempt
        );
    }
    if report.status == idgraph_store::RunStatus::Partial {
        out.push_str(
            "\nPartial run: findings that depend on a failed source were neither opened nor resolved.\n",
        );
    }
    let _ = writeln!(
        out,
        "\nOpen findings: {} ({} opened, {} resolved by this run)",
        report.open.len(),
        report.opened.len(),
        report.resolved.len()
    );
    if !report.open.is_empty() {
        findings_text(&mut out, &report.open);
    }
    if !report.resolved.is_empty() {
        let _ = writeln!(out, "\nRESOLVED ({})", report.resolved.len());
        episodes_table(&mut out, &report.resolved.iter().collect::<Vec<_>>());
    }
    out
}

/// `check`: a line per source, ok with its object count and time, or the error.
pub fn check_text(records: &[SourceRecord]) -> String {
    let width = records
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0);
    let kind_width = records.iter().map(|r| r.kind.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in records {
        let detail = match (r.status, r.objects, &r.error) {
            (SourceStatus::Ok, Some(n), _) => {
                format!("{n} users in {:.1} s", r.duration_ms as f64 / 1000.0)
            }
            (_, _, Some(error)) => shown(error),
            _ => String::new(),
        };
        let status = match r.status {
            SourceStatus::Ok => "ok",
            SourceStatus::Failed => "FAILED",
        };
        let name = shown(&r.name);
        let _ = writeln!(
            out,
            "{name:width$}  {:kind_width$}  {status:6}  {detail}",
            r.kind
        );
    }
    out
}

/// `findings` for a terminal.
pub fn open_text(open: &[Episode]) -> String {
    let mut out = format!("Open findings: {}\n", open.len());
    if !open.is_empty() {
        findings_text(&mut out, open);
    }
    out
}

/// `history` for a terminal.
pub fn history_text(episodes: &[Episode], runs: &[RunRow]) -> String {
    let mut out = format!("Runs ({})\n", runs.len());
    for r in runs {
        let coverage: Vec<String> = r
            .sources
            .iter()
            .map(|s| match (s.status, s.objects) {
                (SourceStatus::Ok, Some(n)) => format!("{} {n}", shown(&s.name)),
                _ => format!("{} FAILED", shown(&s.name)),
            })
            .collect();
        let watched = match &r.scope {
            Some(scope) => format!(
                "  watched: {} changed IdP user(s), {} identities re-checked",
                scope.idp_users.len(),
                scope.subjects.len()
            ),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  run {:<5} {}  {:8}  +{} -{}  {}{watched}",
            r.id,
            timestamp(r.started_at),
            r.status.as_str(),
            r.opened,
            r.resolved,
            coverage.join(", ")
        );
    }
    let _ = writeln!(out, "\nEpisodes ({})", episodes.len());
    episodes_table(&mut out, &episodes.iter().collect::<Vec<_>>());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_break_or_reorder_a_line_are_escaped() {
        assert_eq!(shown("IAMA:ann@example.com"), "IAMA:ann@example.com");
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        // A right-to-left override would make `gro.elpmaxe@` read differently.
        assert_eq!(shown("x\u{202e}y"), "\"x\\u{202e}y\"");
        assert_eq!(clean("line\nbreak \u{2028}"), "line\\nbreak \\u{2028}");
    }
}
