//! The plan as text: a header saying how to apply it and what is still manual, then per
//! cluster a summary of each orphan, a section per database that psql enters with
//! `\connect`, and the `DROP USER`s. Pure: the same plans give the same text.

use std::fmt::Write as _;

use chrono::SecondsFormat;
use idgraph_model::Finding;
use idgraph_sources::ownership::Owned;

use super::sql::{self, connect, quote_ident, shown};
use super::{ClusterPlan, DatabasePlan, Orphan};
use crate::output::{clean, needs_escape};

/// What the plan does with an orphan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every database was read and nothing blocks it: its statements run, then `DROP USER`.
    Drop,
    /// No database of the cluster holds the user anymore: nothing to do.
    Gone,
    /// The user is `[remediation] new_owner`, which receives the others' objects.
    NewOwner,
    /// Something SQL cannot fix, or idgraph could not see: its statements are written
    /// commented out and it is not dropped. Each entry is one reason.
    Blocked(Vec<String>),
}

/// Renders the plan: the header, then each cluster. Objects go to `new_owner`.
pub fn render(plans: &[ClusterPlan], new_owner: &str) -> String {
    render_with_incidents(plans, new_owner, &[])
}

/// [`render`], with the open `post_deprovisioning_login` findings (`incidents`) in the
/// header: each with its evidence and, commented out, the statements that would end the
/// sessions it saw open.
pub fn render_with_incidents(
    plans: &[ClusterPlan],
    new_owner: &str,
    incidents: &[Finding],
) -> String {
    let mut out = String::new();
    header(&mut out, plans, new_owner);
    incidents_header(&mut out, incidents);
    if plans.is_empty() {
        out.push_str("\n-- No open orphaned_db_user findings: nothing to do.\n");
    }
    for plan in plans {
        cluster(&mut out, plan, new_owner);
    }
    out
}

/// The incidents first: an orphan in use is ended before it is cleaned up.
fn incidents_header(out: &mut String, incidents: &[Finding]) {
    if incidents.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "--\n-- INCIDENTS: {} orphaned database user(s) logged in, or held a session, after their\n\
         -- person was deactivated (post_deprovisioning_login). Investigate them as incidents.\n\
         -- To end the sessions idgraph saw open, uncomment the statements below and run them as\n\
         -- a superuser on that target's cluster: pg_terminate_backend(pid) on PostgreSQL, and\n\
         -- on Redshift PG_TERMINATE_BACKEND(pid)\n\
         -- (https://docs.aws.amazon.com/redshift/latest/dg/PG_TERMINATE_BACKEND.html).\n\
         -- A session may have ended, or its process id been reused, since: check first.",
        incidents.len()
    );
    for f in incidents {
        let _ = writeln!(
            out,
            "-- {} on target {}: {}",
            shown(f.db_user.as_deref().unwrap_or("")),
            shown(f.target.as_deref().unwrap_or("")),
            clean(&crate::output::logins_text(f.logins.as_ref())),
        );
        for process in f.logins.iter().flat_map(|e| &e.processes) {
            let _ = writeln!(out, "--   SELECT pg_terminate_backend({process});");
        }
    }
}

fn header(out: &mut String, plans: &[ClusterPlan], new_owner: &str) {
    let orphans: usize = plans.iter().map(|p| p.orphans.len()).sum();
    let lines = [
        "-- idgraph remediation plan: DROP USER for orphaned database users.".to_owned(),
        format!(
            "-- {orphans} orphaned database user(s) on {} cluster(s), from the findings open in the store.",
            plans.len()
        ),
        "--".to_owned(),
        "-- idgraph never executes this plan. Review it, then apply the whole file as the".to_owned(),
        "-- cluster's admin (a superuser), stopping at the first error:".to_owned(),
        "--   psql -X -v ON_ERROR_STOP=1 -h HOST -p PORT -U ADMIN -d DATABASE -f plan.sql".to_owned(),
        "-- It switches databases itself with \\connect (same login), so it runs from start to"
            .to_owned(),
        "-- end in one psql. Users are cluster-wide and objects are per database: each user's"
            .to_owned(),
        "-- objects are handed over and its privileges revoked in every database of its cluster,"
            .to_owned(),
        "-- one transaction per user and database, and only then is the user dropped, once.".to_owned(),
        "-- A user that cannot be dropped safely (a database idgraph could not read, or what"
            .to_owned(),
        "-- SQL here cannot fix) is BLOCKED: its statements are written commented out, with the"
            .to_owned(),
        "-- reasons, so that applying the plan never stops half-way.".to_owned(),
        "--".to_owned(),
        "-- Order: disable the person in the IdP and Identity Center first (an auto-created".to_owned(),
        "-- IAMA:/AWSIDC: user comes back at its next sign-in otherwise), then apply this plan,"
            .to_owned(),
        "-- then run idgraph reconcile, which resolves the findings of the users it dropped."
            .to_owned(),
        format!(
            "-- Owned objects go to {} ([remediation] new_owner). Make it a dedicated owner role,",
            shown(new_owner)
        ),
        "-- not a superuser: a SECURITY DEFINER routine handed to a superuser runs as one for"
            .to_owned(),
        "-- everyone who may execute it (each such routine is named in a WARNING below).".to_owned(),
        "--".to_owned(),
        "-- Per database, a user's transaction hands over what it owns (tables, views, sequences,".to_owned(),
        "-- routines, schemas) and revokes what it was granted directly (on tables, columns,".to_owned(),
        "-- schemas, routines, languages) and the default privileges that name it, both the ones".to_owned(),
        "-- it set and the ones others set for it; the last transaction hands over the databases".to_owned(),
        "-- (and Redshift roles) it owns, revokes its database privileges and role memberships,".to_owned(),
        "-- and drops it.".to_owned(),
        "--".to_owned(),
        "-- What idgraph cannot do, and must be handled by hand:".to_owned(),
        "--  * What SQL here cannot fix: Redshift datashares, libraries, models and materialized".to_owned(),
        "--    views the user owns, grants it made through a grant option, and on PostgreSQL".to_owned(),
        "--    any other object pg_shdepend ties to it (types, foreign servers, ...). Such a user".to_owned(),
        "--    is BLOCKED below, with each of them named.".to_owned(),
        "--  * Template databases (template0, template1) are not read.".to_owned(),
        "--  * On Redshift, the reading login sees every owner in the SVV_ views only with".to_owned(),
        "--    ACCESS SYSTEM TABLE or sys:monitor (deploy/README.md); without them a blocker there".to_owned(),
        "--    may go unseen, and DROP USER then stops the plan at that user.".to_owned(),
    ];
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
}

fn cluster(out: &mut String, plan: &ClusterPlan, new_owner: &str) {
    out.push_str(
        "\n-- ==========================================================================\n",
    );
    let _ = writeln!(
        out,
        "-- Cluster {}: {} orphaned database user(s), {} database(s).",
        clean(&plan.name),
        plan.orphans.len(),
        plan.databases.len()
    );
    for database in &plan.databases {
        let _ = writeln!(out, "--   database {}", database_label(database));
    }
    for reason in &plan.unknown {
        let _ = writeln!(out, "-- Not read: {}", clean(reason));
    }
    if !plan.unknown.is_empty() {
        out.push_str(
            "-- Without it idgraph cannot tell what the users own in every database, so no user\n\
             -- of this cluster is dropped: check that database by hand, or let idgraph read\n\
             -- it, and plan again.\n",
        );
    }
    for note in &plan.notes {
        let _ = writeln!(
            out,
            "-- Note: {} (its database was read with another target's login).",
            clean(note)
        );
    }
    if plan.superusers.iter().any(|s| s == new_owner) {
        let _ = writeln!(
            out,
            "-- WARNING: new_owner {} is a superuser on this cluster: every object below will \
             belong to a superuser. Prefer a dedicated owner role without superuser.",
            shown(new_owner)
        );
    }
    let verdicts: Vec<Verdict> = plan
        .orphans
        .iter()
        .map(|orphan| verdict(plan, orphan, new_owner))
        .collect();
    for (orphan, verdict) in plan.orphans.iter().zip(&verdicts) {
        summary(out, orphan, verdict);
    }
    for database in &plan.databases {
        database_section(out, plan, database, &verdicts, new_owner);
    }
    drops(out, plan, &verdicts, new_owner);
}

/// `"name" (targets a, b)`, or `"name" (not configured)`.
fn database_label(database: &DatabasePlan) -> String {
    let name = shown(&database.name);
    match database.targets.is_empty() {
        true => format!("{name} (not configured)"),
        false => format!(
            "{name} (target {})",
            database
                .targets
                .iter()
                .map(|t| clean(t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Decides what becomes of `orphan`: the reasons to block it are the cluster's own, every
/// database that could not be read or entered, and what SQL here cannot hand over.
pub(super) fn verdict(plan: &ClusterPlan, orphan: &Orphan, new_owner: &str) -> Verdict {
    let Some(user) = orphan.finding.db_user.as_deref() else {
        return Verdict::Gone;
    };
    if user == new_owner {
        return Verdict::NewOwner;
    }
    let mut reasons = plan.unknown.clone();
    let mut held = false;
    let mut owner_exists = false;
    for database in &plan.databases {
        match &database.owned {
            Err(reason) => reasons.push(reason.clone()),
            Ok(owned) => {
                owner_exists |= owned.contains_key(new_owner);
                if let Some(owned) = owned.get(user) {
                    held = true;
                    reasons.extend(unrenderable(&database.name, owned));
                    reasons.extend(owned.blockers.iter().map(|blocker| {
                        format!("in database {}: {blocker}", shown(&database.name))
                    }));
                }
            }
        }
        let (host, port) = plan.endpoint.clone().unwrap_or_default();
        if plan.endpoint.is_some() && connect(&database.name, &host, port).is_none() {
            reasons.push(format!(
                "the name of database {} holds control characters, which psql's \\connect cannot carry",
                shown(&database.name)
            ));
        }
    }
    if !plan.databases.is_empty() && !owner_exists {
        reasons.push(format!(
            "new_owner {} does not exist on this cluster",
            shown(new_owner)
        ));
    }
    match (reasons.is_empty(), held) {
        (false, _) => Verdict::Blocked(reasons),
        (true, true) => Verdict::Drop,
        (true, false) => Verdict::Gone,
    }
}

/// The routines of `owned` whose argument types cannot be written safely: the server
/// formats them itself, quoting what needs it, and anything else is not spliced into a
/// statement.
fn unrenderable(database: &str, owned: &Owned) -> Vec<String> {
    owned
        .functions
        .iter()
        .filter(|f| !sql::safe_arguments(&f.arguments))
        .map(|f| {
            format!(
                "{} {}.{} in database {} has argument types idgraph cannot quote safely ({}); hand it over by hand",
                f.kind.as_str(),
                shown(&f.schema),
                shown(&f.name),
                shown(database),
                shown(&f.arguments)
            )
        })
        .collect()
}

/// The block that introduces an orphan: its finding, warnings, and its verdict.
fn summary(out: &mut String, orphan: &Orphan, verdict: &Verdict) {
    let finding = &orphan.finding;
    let Some(user) = finding.db_user.as_deref() else {
        return;
    };
    out.push('\n');
    let _ = writeln!(
        out,
        "-- {} {} on target {}",
        finding.kind,
        shown(user),
        orphan
            .targets
            .iter()
            .map(|t| clean(t))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let person = |label: &str, value: Option<&str>| match value {
        Some(value) => format!("{label} {}", shown(value)),
        None => format!("no {label}"),
    };
    let _ = writeln!(
        out,
        "-- reason: {}; severity: {}; open since run {} ({}); {}; {}",
        finding.reason,
        finding.severity,
        orphan.opened_run,
        orphan.opened_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        person("IC user", finding.ic_user_id.as_deref()),
        person("IdP user", finding.idp_user_id.as_deref()),
    );
    if user.chars().any(needs_escape) {
        out.push_str(
            "-- Note: this name holds control or line-breaking characters. The statements\n\
             -- below quote it exactly, so whatever looks like SQL inside the quotes is part\n\
             -- of the name.\n",
        );
    }
    if let Some(ic_user) = finding.ic_user_id.as_deref() {
        // The user comes back: Redshift re-creates an IAMA: or Identity Center namespace
        // user at its next sign-in while the identity may still sign in.
        let _ = writeln!(
            out,
            "-- WARNING: Identity Center user {} still exists. Disable it (and the IdP user) \
             first: while it can sign in, a dropped auto-created login comes back at its next \
             sign-in.",
            shown(ic_user)
        );
    }
    match verdict {
        Verdict::Drop => {}
        Verdict::Gone => out.push_str(
            "-- Nothing to do: no database of the cluster holds this user anymore (dropped\n\
             -- since the last run?). The next run resolves the finding.\n",
        ),
        Verdict::NewOwner => out.push_str(
            "-- Not planned: this user is [remediation] new_owner, which receives the objects\n\
             -- of the others. Choose another new_owner to drop it.\n",
        ),
        Verdict::Blocked(reasons) => {
            out.push_str(
                "-- BLOCKED: not dropped; its statements below are commented out. Resolve these,\n\
                 -- then plan again:\n",
            );
            for reason in reasons {
                let _ = writeln!(out, "--   * {}", clean(reason));
            }
        }
    }
}

/// One database: `\connect`, then each orphan's transaction there.
fn database_section(
    out: &mut String,
    plan: &ClusterPlan,
    database: &DatabasePlan,
    verdicts: &[Verdict],
    new_owner: &str,
) {
    let Ok(owned) = &database.owned else {
        return;
    };
    let Some((host, port)) = &plan.endpoint else {
        return;
    };
    out.push('\n');
    match connect(&database.name, host, *port) {
        Some(line) => {
            out.push_str(&line);
            out.push('\n');
        }
        None => out.push_str("-- (\\connect cannot name this database; see above)\n"),
    }
    let _ = writeln!(out, "-- Database {}", database_label(database));
    for (orphan, verdict) in plan.orphans.iter().zip(verdicts) {
        let Some(user) = orphan.finding.db_user.as_deref() else {
            continue;
        };
        let (Some(found), Verdict::Drop | Verdict::Blocked(_)) = (owned.get(user), verdict) else {
            continue;
        };
        let mut block = String::new();
        sql::security_definer_warnings(&mut block, found, new_owner);
        block.push_str("BEGIN;\n");
        if found.redshift && sql::needs_case_sensitivity(found) {
            block.push_str(
                "SET enable_case_sensitive_identifier TO true;  -- Redshift: match the names' case exactly\n",
            );
        }
        sql::transfer(&mut block, found, &quote_ident(new_owner));
        sql::revoke(&mut block, found, &quote_ident(user));
        sql::default_privileges(&mut block, found, user);
        block.push_str("COMMIT;\n");
        let _ = writeln!(
            out,
            "-- {} in database {}",
            shown(user),
            shown(&database.name)
        );
        emit(out, &block, verdict);
    }
}

/// The `DROP USER`s, once each, after every database: per user one transaction that
/// first hands over and revokes what it has cluster-wide (databases, roles).
fn drops(out: &mut String, plan: &ClusterPlan, verdicts: &[Verdict], new_owner: &str) {
    let mut block = String::new();
    for (orphan, verdict) in plan.orphans.iter().zip(verdicts) {
        let Some(user) = orphan.finding.db_user.as_deref() else {
            continue;
        };
        if !matches!(verdict, Verdict::Drop | Verdict::Blocked(_)) {
            continue;
        }
        let mut wide = sql::ClusterWide::default();
        for database in &plan.databases {
            if let Some(owned) = database.owned.as_ref().ok().and_then(|o| o.get(user)) {
                wide.add(owned);
            }
        }
        let quoted = quote_ident(user);
        let mut statements = String::new();
        sql::cluster_wide(&mut statements, &wide, &quoted, &quote_ident(new_owner));
        let _ = writeln!(statements, "DROP USER {quoted};");
        let statements = match statements.lines().count() {
            1 => statements,
            _ => format!("BEGIN;\n{statements}COMMIT;\n"),
        };
        emit(&mut block, &statements, verdict);
    }
    if !block.is_empty() {
        out.push_str("\n-- Every database of the cluster is done: each user is dropped once.\n");
        out.push_str(&block);
    }
}

/// Writes `text` as it is for a user to drop, or with every line commented out for a
/// blocked one. psql ends a comment at `\n` and at `\r`, so a comment starts after each
/// of them: not even a line break inside a quoted name ends the comment.
fn emit(out: &mut String, text: &str, verdict: &Verdict) {
    if !matches!(verdict, Verdict::Blocked(_)) {
        out.push_str(text);
        return;
    }
    let mut line_start = true;
    for c in text.chars() {
        if line_start {
            out.push_str("-- ");
        }
        out.push(c);
        line_start = matches!(c, '\n' | '\r');
    }
}
