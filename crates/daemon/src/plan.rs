//! `idgraph plan`: remediation SQL for the orphaned database users the store holds open
//! (SPEC §7). idgraph prints the plan and never executes it.
//!
//! Per orphaned user and target, one transaction: hand every object the user owns to
//! `[remediation] new_owner`, revoke what the user holds on the schemas (and their tables,
//! routines and sequences) where it has privileges and on the database, then `DROP USER`.
//! `DROP USER` fails while the user owns anything or holds any privilege, and Redshift has
//! no `REASSIGN OWNED`, so the objects are read from the live catalog
//! ([`idgraph_sources::ownership::discover`], read-only) and named one by one. Where the
//! catalog cannot be read (a file target, an unreachable one) the transaction holds only
//! the `DROP USER`, which then fails, changing nothing, until the rest is done by hand.
//!
//! Every identifier is double-quoted with embedded quotes doubled ([`quote_ident`]), and
//! every name in a comment is escaped, so that no name, however hostile, ends a comment
//! or a statement.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{bail, Context as _};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use idgraph_model::{Finding, FindingKind};
use idgraph_sources::ownership::{self, Function, FunctionKind, Owned, Relation, RelationKind};
use idgraph_sources::{SourceError, TargetRole};
use idgraph_store::{Episode, Store};
use tracing::warn;

use crate::config::Settings;
use crate::output::{clean, needs_escape};

/// The plan for one orphaned database user on one target.
#[derive(Debug, Clone)]
pub struct UserPlan {
    /// The target's name.
    pub target: String,
    /// The open `orphaned_db_user` finding; its `db_user` is the user to drop.
    pub finding: Finding,
    /// The run that opened the finding's episode.
    pub opened_run: i64,
    /// When that run happened.
    pub opened_at: DateTime<Utc>,
    /// What the target's catalog says the user owns, if it could be read.
    pub discovery: Discovery,
}

/// What is known about what a user owns.
// One value per orphaned user, short-lived: boxing `Owned` would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Discovery {
    /// Read from the live catalog.
    Discovered(Owned),
    /// The catalog was read and no longer holds the user: nothing to drop.
    NotInCatalog,
    /// The catalog could not be read, and why (a file target, an unreachable one): only
    /// `DROP USER` is planned.
    Unavailable(String),
}

/// Builds the plan for the open `orphaned_db_user` findings of `store` — of the target
/// named `target` only, if given — reading what each user owns from the live targets, and
/// renders it ([`render`]). Only reads: the store, and the targets' catalogs.
///
/// # Errors
///
/// When `[remediation] new_owner` is not set, when `target` names no configured target, or
/// when the store cannot be read. A target whose catalog cannot be read is not an error:
/// the plan says so and plans only what is safe there.
pub async fn plan(
    settings: &Settings,
    store: &Store,
    target: Option<&str>,
) -> anyhow::Result<String> {
    let new_owner = new_owner(settings)?;
    if let Some(name) = target {
        if !settings.targets.iter().any(|t| t.name == name) {
            let known: Vec<&str> = settings.targets.iter().map(|t| t.name.as_str()).collect();
            bail!(
                "no target named {name:?} in the configuration (targets: {})",
                known.join(", ")
            );
        }
    }
    let episodes = store
        .open_episodes()
        .await
        .context("cannot read the open findings from the store")?;

    // Orphaned users per target, targets in config order, then any the config no longer
    // has (their findings stay open until a run resolves them).
    let mut groups: BTreeMap<String, Vec<Episode>> = BTreeMap::new();
    for episode in episodes {
        let finding = &episode.finding;
        if finding.kind != FindingKind::OrphanedDbUser || finding.db_user.is_none() {
            continue;
        }
        let Some(name) = finding.target.clone() else {
            continue;
        };
        if target.is_some_and(|t| t != name) {
            continue;
        }
        groups.entry(name).or_default().push(episode);
    }
    let mut ordered: Vec<(String, Vec<Episode>)> = Vec::with_capacity(groups.len());
    for t in &settings.targets {
        if let Some(episodes) = groups.remove(&t.name) {
            ordered.push((t.name.clone(), episodes));
        }
    }
    ordered.extend(groups);

    // The targets as a run builds them: each knows how its catalog is reached.
    let targets = crate::reconcile::targets(settings).await;
    let discoveries: Vec<Result<BTreeMap<String, Owned>, String>> = stream::iter(
        ordered
            .iter()
            .map(|(name, episodes)| -> BoxFuture<'_, _> {
                let users: Vec<String> = episodes
                    .iter()
                    .filter_map(|e| e.finding.db_user.clone())
                    .collect();
                let target = targets.iter().find(|t| t.name() == name);
                Box::pin(
                    async move { discover_target(target.map(AsRef::as_ref), name, users).await },
                )
            })
            .collect::<Vec<_>>(),
    )
    .buffered(settings.target_concurrency.max(1))
    .collect()
    .await;

    let mut plans = Vec::new();
    for ((name, mut episodes), mut discovered) in ordered.into_iter().zip(discoveries) {
        episodes.sort_by(|a, b| a.finding.db_user.cmp(&b.finding.db_user));
        for episode in episodes {
            let discovery = match &mut discovered {
                Err(reason) => Discovery::Unavailable(reason.clone()),
                Ok(map) => match episode.finding.db_user.as_ref().and_then(|u| map.remove(u)) {
                    Some(owned) => Discovery::Discovered(owned),
                    None => Discovery::NotInCatalog,
                },
            };
            plans.push(UserPlan {
                target: name.clone(),
                finding: episode.finding,
                opened_run: episode.opened_run,
                opened_at: episode.opened_at,
                discovery,
            });
        }
    }
    Ok(render(&plans, new_owner))
}

/// `[remediation] new_owner`, which a plan cannot do without.
fn new_owner(settings: &Settings) -> anyhow::Result<&str> {
    match settings.new_owner.as_deref() {
        Some(owner) if !owner.trim().is_empty() => Ok(owner),
        _ => bail!(
            "[remediation] new_owner is not set: a plan hands the objects of the users it drops \
             to that database user; set new_owner in the [remediation] section of the config \
             (or IDGRAPH__REMEDIATION__NEW_OWNER)"
        ),
    }
}

/// What `users` own on the target `name`, or why that cannot be known.
async fn discover_target(
    target: Option<&TargetRole>,
    name: &str,
    users: Vec<String>,
) -> Result<BTreeMap<String, Owned>, String> {
    let Some(target) = target else {
        return Err("the target is no longer in the configuration".to_owned());
    };
    let result = match target.catalog().await {
        // Not a failure: a file target has no catalog, and says why.
        Err(SourceError::NoCatalog { detail, .. }) => return Err(detail),
        Err(error) => Err(error),
        Ok(catalog) => {
            ownership::discover(name, &catalog.connection, &users, catalog.timeout).await
        }
    };
    result.map_err(|error| {
        let error = error.to_report();
        warn!(
            target_name = name,
            %error,
            "Cannot read the catalog; the plan holds only DROP USER for this target."
        );
        error
    })
}

/// A SQL identifier: double-quoted, embedded `"` doubled. Inside quotes nothing else is
/// special to the server or to psql, so any name stays one identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A name for a comment line: quoted and escaped as Rust's `{:?}` does (`\n`, `\"`,
/// `\u{202e}`), so that a line break in a name cannot end the comment and invisible or
/// reordering characters show.
fn shown(name: &str) -> String {
    format!("{name:?}")
}

/// Renders the plan: a header saying what idgraph never does and cannot see, then per
/// target (in the order of `plans`, which groups them) one transaction per user. Objects
/// go to `new_owner`. Pure: the same plans give the same text.
pub fn render(plans: &[UserPlan], new_owner: &str) -> String {
    let mut out = String::new();
    header(&mut out, plans, new_owner);
    if plans.is_empty() {
        out.push_str("\n-- No open orphaned_db_user findings: nothing to do.\n");
    }
    for section in plans.chunk_by(|a, b| a.target == b.target) {
        target_section(&mut out, section, new_owner);
    }
    out
}

fn header(out: &mut String, plans: &[UserPlan], new_owner: &str) {
    let mut targets: Vec<&str> = plans.iter().map(|p| p.target.as_str()).collect();
    targets.dedup();
    let lines = [
        "-- idgraph remediation plan: DROP USER for orphaned database users.".to_owned(),
        format!(
            "-- {} orphaned database user(s) on {} target(s), from the findings open in the store.",
            plans.len(),
            targets.len()
        ),
        "--".to_owned(),
        "-- idgraph never executes this plan. Review it, then run each target's section yourself,"
            .to_owned(),
        "-- as a superuser connected to that target's database, stopping at the first error:"
            .to_owned(),
        "--   psql -v ON_ERROR_STOP=1 -h HOST -p PORT -U SUPERUSER -d DATABASE -f plan.sql"
            .to_owned(),
        "-- Each user's statements are one transaction: if one fails, none takes effect."
            .to_owned(),
        format!(
            "-- Owned objects go to {} ([remediation] new_owner). Make it a dedicated owner role,",
            shown(new_owner)
        ),
        "-- not a superuser: a SECURITY DEFINER routine handed to a superuser runs as one for"
            .to_owned(),
        "-- everyone who may execute it (each such routine is named in a WARNING below)."
            .to_owned(),
        "--".to_owned(),
        "-- What idgraph cannot see, and must be handled by hand:".to_owned(),
        "--  * Objects and privileges in OTHER databases of the cluster: only the configured"
            .to_owned(),
        "--    database's catalog is read. PostgreSQL refuses DROP USER until they are handled;"
            .to_owned(),
        "--    Redshift checks only the current database and drops the user anyway, leaving"
            .to_owned(),
        "--    its objects there owned by an unknown user. Plan every database (a target each)."
            .to_owned(),
        "--  * Default privileges the user granted (ALTER DEFAULT PRIVILEGES, pg_default_acl):"
            .to_owned(),
        "--    revoke them with ALTER DEFAULT PRIVILEGES FOR USER ... REVOKE ... first.".to_owned(),
        "--  * Group and role memberships: DROP USER removes the user from them, but privileges"
            .to_owned(),
        "--    it held through a group are not listed here.".to_owned(),
        "--  * Column-level privileges, privileges granted by a user other than the object's"
            .to_owned(),
        "--    owner, databases the user owns, and objects other than schemas, tables, views,"
            .to_owned(),
        "--    sequences and routines (types, ...): DROP USER fails while they remain.".to_owned(),
        "--  * Table privileges come from has_table_privilege, which cannot tell a direct grant"
            .to_owned(),
        "--    from one through PUBLIC: some REVOKEs below may find nothing to revoke.".to_owned(),
    ];
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
}

fn target_section(out: &mut String, plans: &[UserPlan], new_owner: &str) {
    let Some(first) = plans.first() else {
        return;
    };
    let target = clean(&first.target);
    out.push_str(
        "\n-- ==========================================================================\n",
    );
    let _ = writeln!(
        out,
        "-- Target {target}: {} orphaned database user(s).",
        plans.len()
    );
    let database = plans.iter().find_map(|p| match &p.discovery {
        Discovery::Discovered(owned) => Some(owned.database.as_str()),
        _ => None,
    });
    if let Some(database) = database {
        let _ = writeln!(
            out,
            "-- Run this section connected to database {} of target {target}.",
            shown(database)
        );
    }
    let mut reasons: Vec<&str> = plans
        .iter()
        .filter_map(|p| match &p.discovery {
            Discovery::Unavailable(reason) => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    reasons.dedup();
    for reason in reasons {
        let _ = writeln!(
            out,
            "-- idgraph did not read the catalog of target {target}: {}",
            clean(reason)
        );
        out.push_str(
            "-- Without it idgraph cannot tell what these users own or where they hold\n\
             -- privileges, so their transactions hold only DROP USER, which fails (changing\n\
             -- nothing) while a user owns objects or holds privileges: hand those over and\n\
             -- revoke them by hand first.\n",
        );
    }
    for plan in plans {
        user_block(out, plan, new_owner);
    }
}

fn user_block(out: &mut String, plan: &UserPlan, new_owner: &str) {
    let finding = &plan.finding;
    let Some(user) = finding.db_user.as_deref() else {
        return;
    };
    out.push('\n');
    let _ = writeln!(
        out,
        "-- {} {} on target {}",
        finding.kind,
        shown(user),
        clean(&plan.target)
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
        plan.opened_run,
        plan.opened_at.to_rfc3339_opts(SecondsFormat::Secs, true),
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
    if user == new_owner {
        out.push_str(
            "-- Not planned: this user is [remediation] new_owner, which receives the objects\n\
             -- of the others. Choose another new_owner to drop it.\n",
        );
        return;
    }
    let u = quote_ident(user);
    match &plan.discovery {
        Discovery::NotInCatalog => {
            out.push_str(
                "-- Nothing to do: the target's catalog no longer holds this user (dropped since\n\
                 -- the last run?). The next run resolves the finding.\n",
            );
        }
        Discovery::Unavailable(_) => {
            out.push_str(
                "-- Catalog not read: only DROP USER, which fails while the user owns objects or\n\
                 -- holds privileges.\n",
            );
            out.push_str("BEGIN;\n");
            let _ = writeln!(out, "DROP USER {u};");
            out.push_str("COMMIT;\n");
        }
        Discovery::Discovered(owned) => {
            security_definer_warnings(out, owned, new_owner);
            out.push_str("BEGIN;\n");
            if owned.redshift && needs_case_sensitivity(owned) {
                out.push_str(
                    "SET enable_case_sensitive_identifier TO true;  -- Redshift: match the names' case exactly\n",
                );
            }
            transfer(out, owned, &quote_ident(new_owner));
            revoke(out, owned, &u);
            let _ = writeln!(out, "DROP USER {u};");
            out.push_str("COMMIT;\n");
        }
    }
}

/// A warning per `SECURITY DEFINER` routine the plan hands over: it will run with
/// `new_owner`'s privileges for everyone who may execute it, a superuser's if `new_owner`
/// is one.
fn security_definer_warnings(out: &mut String, owned: &Owned, new_owner: &str) {
    for f in owned.functions.iter().filter(|f| f.security_definer) {
        let _ = writeln!(
            out,
            "-- WARNING: {}.{}({}) is SECURITY DEFINER: once {} owns it, it runs with {}'s \
             privileges for everyone who may execute it. Review who may, or drop it.",
            shown(&f.schema),
            shown(&f.name),
            clean(&f.arguments),
            shown(new_owner),
            shown(new_owner),
        );
    }
}

/// `ALTER … OWNER TO` for everything the user owns: relations (tables before the views
/// over them and the sequences their columns own, which follow their table), routines,
/// then schemas.
fn transfer(out: &mut String, owned: &Owned, owner: &str) {
    let mut relations: Vec<&Relation> = owned.relations.iter().collect();
    relations.sort_by_key(|r| (relation_rank(r.kind), &r.schema, &r.name));
    for r in relations {
        let name = format!("{}.{}", quote_ident(&r.schema), quote_ident(&r.name));
        // ALTER TABLE changes the owner of a view on Redshift and PostgreSQL alike; the
        // kinds only PostgreSQL has get their own statement.
        let (statement, note) = match r.kind {
            RelationKind::Table | RelationKind::PartitionedTable => ("ALTER TABLE", ""),
            RelationKind::View => ("ALTER TABLE", "  -- view"),
            RelationKind::MaterializedView => ("ALTER MATERIALIZED VIEW", ""),
            RelationKind::ForeignTable => ("ALTER FOREIGN TABLE", ""),
            RelationKind::Sequence => ("ALTER SEQUENCE", ""),
        };
        let _ = writeln!(out, "{statement} {name} OWNER TO {owner};{note}");
    }
    for f in &owned.functions {
        routine(out, f, owner);
    }
    for schema in &owned.schemas {
        let _ = writeln!(
            out,
            "ALTER SCHEMA {} OWNER TO {owner};",
            quote_ident(schema)
        );
    }
}

fn relation_rank(kind: RelationKind) -> u8 {
    match kind {
        RelationKind::Table | RelationKind::PartitionedTable | RelationKind::ForeignTable => 0,
        RelationKind::View | RelationKind::MaterializedView => 1,
        RelationKind::Sequence => 2,
    }
}

fn routine(out: &mut String, f: &Function, owner: &str) {
    let name = format!("{}.{}", quote_ident(&f.schema), quote_ident(&f.name));
    if !safe_arguments(&f.arguments) {
        // The server formats argument types itself, quoting what needs it; anything else
        // is not spliced into a statement. DROP USER then fails and the transaction
        // changes nothing.
        let _ = writeln!(
            out,
            "-- Not rendered: {} {name} has argument types idgraph cannot quote safely ({}); hand it over by hand.",
            f.kind.as_str(),
            shown(&f.arguments)
        );
        return;
    }
    let (statement, arguments) = match f.kind {
        FunctionKind::Function => ("ALTER FUNCTION", f.arguments.as_str()),
        FunctionKind::Procedure => ("ALTER PROCEDURE", f.arguments.as_str()),
        // An aggregate without arguments is written `agg(*)`.
        FunctionKind::Aggregate if f.arguments.is_empty() => ("ALTER AGGREGATE", "*"),
        FunctionKind::Aggregate => ("ALTER AGGREGATE", f.arguments.as_str()),
    };
    let _ = writeln!(out, "{statement} {name}({arguments}) OWNER TO {owner};");
}

/// Whether the server's formatting of argument types can go into a statement: outside
/// double-quoted names only letters, digits, `_`, spaces, `,`, `.`, `[` and `]` (and the
/// parentheses of a type modifier), quotes balanced.
fn safe_arguments(arguments: &str) -> bool {
    let mut quoted = false;
    let mut chars = arguments.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                } else {
                    quoted = false;
                }
            } else if needs_escape(c) {
                return false;
            }
        } else if c == '"' {
            quoted = true;
        } else if !(c.is_ascii_alphanumeric()
            || matches!(c, '_' | ' ' | ',' | '.' | '[' | ']' | '(' | ')'))
        {
            return false;
        }
    }
    !quoted
}

/// `REVOKE` on every schema where the user holds privileges, what the schema holds, and
/// the database.
fn revoke(out: &mut String, owned: &Owned, user: &str) {
    for access in &owned.schema_privileges {
        let schema = quote_ident(&access.schema);
        if access.unchecked && !access.tables {
            let _ = writeln!(
                out,
                "-- idgraph's login may not use schema {}: privileges on its tables were not checked, so they are revoked regardless.",
                shown(&access.schema)
            );
        }
        let _ = writeln!(
            out,
            "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {user};"
        );
        if access.has_sequences {
            let _ = writeln!(
                out,
                "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {user};"
            );
        }
        if access.has_functions {
            let _ = writeln!(
                out,
                "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {schema} FROM {user};"
            );
        }
        if access.has_procedures {
            let _ = writeln!(
                out,
                "REVOKE ALL ON ALL PROCEDURES IN SCHEMA {schema} FROM {user};"
            );
        }
        let _ = writeln!(out, "REVOKE ALL ON SCHEMA {schema} FROM {user};");
    }
    if !owned.database.is_empty() {
        let _ = writeln!(
            out,
            "REVOKE ALL ON DATABASE {} FROM {user};",
            quote_ident(&owned.database)
        );
    }
}

fn has_upper(name: &str) -> bool {
    name.chars().any(char::is_uppercase)
}

/// Whether an object name in the user's transaction has upper-case letters, which Redshift
/// folds away even when quoted unless `enable_case_sensitive_identifier` is on. User names
/// are exempt: Redshift always keeps the case of a quoted user name.
fn needs_case_sensitivity(owned: &Owned) -> bool {
    has_upper(&owned.database)
        || owned
            .relations
            .iter()
            .any(|r| has_upper(&r.schema) || has_upper(&r.name))
        || owned
            .functions
            .iter()
            .any(|f| has_upper(&f.schema) || has_upper(&f.name) || has_upper(&f.arguments))
        || owned.schemas.iter().any(|s| has_upper(s))
        || owned.schema_privileges.iter().any(|s| has_upper(&s.schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use idgraph_model::{Reason, Severity};
    use idgraph_sources::ownership::SchemaAccess;

    const HOSTILE: &str = "IAMA:o'brien\"; DROP TABLE canary; --@example.com";

    fn finding(user: &str) -> Finding {
        Finding {
            kind: FindingKind::OrphanedDbUser,
            reason: Reason::IdpUserInactive,
            severity: Severity::Critical,
            target: Some("analytics".into()),
            db_user: Some(user.into()),
            ic_user_id: Some("ic-1".into()),
            idp_user_id: Some("idp-1".into()),
            user_name: Some("bob@example.com".into()),
            superuser: true,
            matched_by: None,
            candidates: Vec::new(),
        }
    }

    fn user_plan(user: &str, discovery: Discovery) -> UserPlan {
        UserPlan {
            target: "analytics".into(),
            finding: finding(user),
            opened_run: 3,
            opened_at: DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            discovery,
        }
    }

    /// The plan for bob on analytics, whose objects discovery found to be `owned`.
    fn render_discovered(owned: Owned) -> String {
        render(
            &[user_plan(
                "IAMA:bob@example.com",
                Discovery::Discovered(owned),
            )],
            "admin",
        )
    }

    fn owned() -> Owned {
        Owned {
            relations: vec![
                Relation {
                    schema: "public".into(),
                    name: "orders".into(),
                    kind: RelationKind::Table,
                },
                Relation {
                    schema: "public".into(),
                    name: "orders_view".into(),
                    kind: RelationKind::View,
                },
                Relation {
                    schema: "public".into(),
                    name: "orders_id_seq".into(),
                    kind: RelationKind::Sequence,
                },
            ],
            functions: vec![Function {
                schema: "public".into(),
                name: "f".into(),
                arguments: "integer, character varying".into(),
                kind: FunctionKind::Function,
                security_definer: false,
            }],
            schemas: vec!["s".into()],
            schema_privileges: vec![SchemaAccess {
                schema: "public".into(),
                usage: true,
                create: false,
                tables: true,
                has_functions: true,
                has_procedures: false,
                has_sequences: true,
                unchecked: false,
            }],
            table_privileges: Vec::new(),
            database: "dev".into(),
            redshift: false,
            ..Owned::default()
        }
    }

    /// The SQL with every double-quoted identifier replaced by `"…"`: what is left is what
    /// the server parses as keywords, punctuation and comments.
    fn outside_quotes(sql: &str) -> String {
        let mut out = String::new();
        let mut quoted = false;
        let mut comment = false;
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if comment {
                out.push(c);
                if c == '\n' {
                    comment = false;
                }
            } else if quoted {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                    } else {
                        quoted = false;
                        out.push_str("…\"");
                    }
                }
            } else if c == '"' {
                quoted = true;
                out.push('"');
            } else {
                if c == '-' && chars.peek() == Some(&'-') {
                    comment = true;
                }
                out.push(c);
            }
        }
        assert!(!quoted, "an identifier is never closed:\n{sql}");
        out
    }

    /// Every line outside identifiers is blank, a comment, or one statement of the forms a
    /// plan uses, ending in `;`.
    fn assert_well_formed(sql: &str) {
        for line in outside_quotes(sql).lines() {
            if line.is_empty() || line.starts_with("--") {
                continue;
            }
            let statement = line.split("  --").next().unwrap_or(line);
            assert!(
                [
                    "BEGIN;",
                    "COMMIT;",
                    "SET enable_case_sensitive_identifier TO true;",
                    "ALTER ",
                    "REVOKE ALL ON ",
                    "DROP USER "
                ]
                .iter()
                .any(|p| statement.starts_with(p)),
                "unexpected line {line:?} in\n{sql}"
            );
            assert!(statement.ends_with(';'), "{line:?}");
            assert_eq!(statement.matches(';').count(), 1, "{line:?}");
        }
    }

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("admin"), "\"admin\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident(""), "\"\"");
    }

    #[test]
    fn a_user_gets_one_transaction_in_order() {
        let sql = render_discovered(owned());
        assert_well_formed(&sql);
        let expected = r#"
-- orphaned_db_user "IAMA:bob@example.com" on target analytics
-- reason: idp_user_inactive; severity: critical; open since run 3 (2026-11-26T10:00:00Z); IC user "ic-1"; IdP user "idp-1"
-- WARNING: Identity Center user "ic-1" still exists. Disable it (and the IdP user) first: while it can sign in, a dropped auto-created login comes back at its next sign-in.
BEGIN;
ALTER TABLE "public"."orders" OWNER TO "admin";
ALTER TABLE "public"."orders_view" OWNER TO "admin";  -- view
ALTER SEQUENCE "public"."orders_id_seq" OWNER TO "admin";
ALTER FUNCTION "public"."f"(integer, character varying) OWNER TO "admin";
ALTER SCHEMA "s" OWNER TO "admin";
REVOKE ALL ON ALL TABLES IN SCHEMA "public" FROM "IAMA:bob@example.com";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA "public" FROM "IAMA:bob@example.com";
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA "public" FROM "IAMA:bob@example.com";
REVOKE ALL ON SCHEMA "public" FROM "IAMA:bob@example.com";
REVOKE ALL ON DATABASE "dev" FROM "IAMA:bob@example.com";
DROP USER "IAMA:bob@example.com";
COMMIT;
"#;
        assert!(sql.contains(expected), "{sql}");
        assert!(sql.contains("idgraph never executes this plan"), "{sql}");
        assert!(sql.contains("OTHER databases"), "{sql}");
        assert!(sql.contains("ALTER DEFAULT PRIVILEGES"), "{sql}");
        assert!(sql.contains("Group and role memberships"), "{sql}");
        assert!(sql.contains("connected to database \"dev\" of target analytics"));
        assert_eq!(sql.matches("BEGIN;").count(), 1);
    }

    #[test]
    fn hostile_names_stay_identifiers() {
        let mut owned = owned();
        owned.relations = vec![Relation {
            schema: "sch\"; DROP TABLE canary; --".into(),
            name: "t'\"x".into(),
            kind: RelationKind::Table,
        }];
        owned.functions = vec![Function {
            schema: "public".into(),
            name: "f\"(); DROP TABLE canary; --".into(),
            arguments: "\"my \"\"type\"\"\", integer[]".into(),
            kind: FunctionKind::Procedure,
            security_definer: true,
        }];
        owned.schemas = vec!["s\"\"; --".into()];
        let sql = render(
            &[user_plan(HOSTILE, Discovery::Discovered(owned))],
            "new \"owner\"",
        );
        assert_well_formed(&sql);
        assert!(
            sql.contains(
                "ALTER TABLE \"sch\"\"; DROP TABLE canary; --\".\"t'\"\"x\" OWNER TO \"new \"\"owner\"\"\";"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("ALTER PROCEDURE \"public\".\"f\"\"(); DROP TABLE canary; --\"(\"my \"\"type\"\"\", integer[]) OWNER TO"),
            "{sql}"
        );
        assert!(
            sql.contains("DROP USER \"IAMA:o'brien\"\"; DROP TABLE canary; --@example.com\";"),
            "{sql}"
        );
        assert!(
            sql.contains("-- orphaned_db_user \"IAMA:o'brien\\\"; DROP TABLE canary; --@example.com\" on target analytics"),
            "{sql}"
        );
        assert!(!sql.lines().any(|l| l.starts_with("DROP TABLE")), "{sql}");
    }

    #[test]
    fn unquotable_function_arguments_are_not_rendered() {
        assert!(safe_arguments("integer, character varying, \"a b\"[]"));
        assert!(safe_arguments(""));
        assert!(!safe_arguments("integer); DROP TABLE canary; --"));
        assert!(!safe_arguments("\"unclosed"));
        assert!(!safe_arguments("integer\n"));
        let mut owned = owned();
        owned.functions[0].arguments = "integer); DROP TABLE canary; --".into();
        let sql = render_discovered(owned);
        assert_well_formed(&sql);
        assert!(!sql.contains("ALTER FUNCTION"), "{sql}");
        assert!(
            sql.contains("-- Not rendered: function \"public\".\"f\""),
            "{sql}"
        );
    }

    #[test]
    fn names_with_line_breaks_cannot_leave_a_comment() {
        let user = "IAMA:evil\nDROP TABLE canary; --\r\u{202e}@example.com";
        let mut f = finding(user);
        f.ic_user_id = Some("ic\nDROP TABLE canary;".into());
        let mut plan = user_plan(
            user,
            Discovery::Unavailable("line one\nDROP TABLE canary;".into()),
        );
        plan.finding = f;
        plan.target = "t\nDROP TABLE canary;".into();
        let sql = render(&[plan], "admin");
        assert_well_formed(&sql);
        assert!(
            sql.contains(
                "-- orphaned_db_user \"IAMA:evil\\nDROP TABLE canary; --\\r\\u{202e}@example.com\" on target t\\nDROP TABLE canary;"
            ),
            "{sql}"
        );
        assert!(sql.contains("IC user \"ic\\nDROP TABLE canary;\""), "{sql}");
        assert!(sql.contains(": line one\\nDROP TABLE canary;"), "{sql}");
        assert!(
            sql.contains("holds control or line-breaking characters"),
            "{sql}"
        );
        // The only line that starts like the injected SQL is the rest of the quoted name.
        assert_eq!(
            sql.lines().filter(|l| l.starts_with("DROP TABLE")).count(),
            1,
            "{sql}"
        );
        assert!(
            sql.contains("DROP USER \"IAMA:evil\nDROP TABLE canary; --\r\u{202e}@example.com\";")
        );
    }

    #[test]
    fn without_a_catalog_only_drop_user_is_planned() {
        let sql = render(
            &[
                user_plan(
                    "IAMA:Grace.Hopper@Example.com",
                    Discovery::Unavailable(
                        "it is a file target: its export (/x/analytics.csv) lists users, not what they own"
                            .into(),
                    ),
                ),
                user_plan(
                    "IAMA:bob@example.com",
                    Discovery::Unavailable(
                        "it is a file target: its export (/x/analytics.csv) lists users, not what they own"
                            .into(),
                    ),
                ),
            ],
            "admin",
        );
        assert_well_formed(&sql);
        let statements: Vec<&str> = sql.lines().filter(|l| !l.starts_with("--")).collect();
        assert!(
            !statements
                .iter()
                .any(|l| l.starts_with("ALTER") || l.starts_with("REVOKE")),
            "{sql}"
        );
        assert!(
            sql.contains("BEGIN;\nDROP USER \"IAMA:bob@example.com\";\nCOMMIT;\n"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "idgraph did not read the catalog of target analytics: it is a file target"
            ),
            "{sql}"
        );
        assert_eq!(
            sql.matches("idgraph did not read the catalog").count(),
            1,
            "{sql}"
        );
        assert!(sql.contains("fails while the user owns objects"), "{sql}");
        assert!(!sql.contains("enable_case_sensitive_identifier"), "{sql}");
    }

    #[test]
    fn redshift_matches_case_exactly_and_gone_users_are_skipped() {
        let mut owned = owned();
        owned.redshift = true;
        let mut mixed = owned.clone();
        mixed.schemas = vec!["Sales".into()];
        let sql = render(
            &[
                user_plan(
                    "IAMA:Grace.Hopper@Example.com",
                    Discovery::Discovered(mixed),
                ),
                user_plan("IAMA:gone@example.com", Discovery::NotInCatalog),
                user_plan("admin", Discovery::Discovered(owned.clone())),
            ],
            "admin",
        );
        assert_well_formed(&sql);
        assert!(
            sql.contains("BEGIN;\nSET enable_case_sensitive_identifier TO true;"),
            "{sql}"
        );
        assert!(
            !sql.contains("DROP USER \"IAMA:gone@example.com\""),
            "{sql}"
        );
        assert!(sql.contains("no longer holds this user"), "{sql}");
        assert!(!sql.contains("DROP USER \"admin\""), "{sql}");
        assert!(
            sql.contains("this user is [remediation] new_owner"),
            "{sql}"
        );
        // Lower-case object names on Redshift need no setting: quoted user names always
        // keep their case there.
        let sql = render_discovered(owned);
        assert!(
            !sql.contains("SET enable_case_sensitive_identifier"),
            "{sql}"
        );
    }

    #[test]
    fn schemas_the_login_may_not_use_are_revoked_regardless() {
        let mut owned = owned();
        owned.schema_privileges = vec![SchemaAccess {
            schema: "private\nschema".into(),
            unchecked: true,
            ..SchemaAccess::default()
        }];
        let sql = render_discovered(owned);
        assert_well_formed(&sql);
        assert!(
            sql.contains("-- idgraph's login may not use schema \"private\\nschema\": privileges on its tables were not checked"),
            "{sql}"
        );
        assert!(
            sql.contains("REVOKE ALL ON ALL TABLES IN SCHEMA \"private\nschema\" FROM \"IAMA:bob@example.com\";"),
            "{sql}"
        );
    }

    #[test]
    fn an_empty_plan_says_so() {
        let sql = render(&[], "admin");
        assert!(sql.contains("nothing to do"), "{sql}");
        assert!(!sql.contains("BEGIN"), "{sql}");
    }

    async fn settings_and_store(remediation: &str) -> (tempfile::TempDir, Settings, Store) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("idgraph.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"idgraph.db\"\n\n\
                 [idp]\nkind = \"file\"\npath = \"scim.json\"\n\n\
                 [identity_center]\nkind = \"file\"\npath = \"ic.json\"\n\n\
                 [[targets]]\nname = \"analytics\"\nkind = \"file\"\npath = \"analytics.csv\"\n\n\
                 {remediation}\n"
            ),
        )
        .unwrap();
        let settings = crate::config::load_with_env(&config, Some(config::Map::new())).unwrap();
        let store = Store::open(&settings.store_path).await.unwrap();
        (dir, settings, store)
    }

    #[tokio::test]
    async fn a_plan_needs_new_owner() {
        let (_dir, settings, store) = settings_and_store("").await;
        let error = plan(&settings, &store, None).await.unwrap_err().to_string();
        assert!(
            error.contains("[remediation] new_owner is not set"),
            "{error}"
        );
        let (_dir, settings, store) =
            settings_and_store("[remediation]\nnew_owner = \"admin\"").await;
        let sql = plan(&settings, &store, None).await.unwrap();
        assert!(sql.contains("nothing to do"), "{sql}");
        let error = plan(&settings, &store, Some("nope"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("no target named \"nope\""), "{error}");
        assert!(error.contains("analytics"), "{error}");
    }

    #[test]
    fn security_definer_routines_are_named_before_they_change_owner() {
        let mut owned = owned();
        owned.functions[0].security_definer = true;
        let sql = render(
            &[user_plan(
                "IAMA:gone@example.com",
                Discovery::Discovered(owned.clone()),
            )],
            "admin",
        );
        let warning = sql
            .lines()
            .position(|l| {
                l.starts_with(
                    "-- WARNING: \"public\".\"f\"(integer, character varying) is SECURITY DEFINER",
                )
            })
            .expect("a warning names the routine");
        let transfer = sql
            .lines()
            .position(|l| l.starts_with("ALTER FUNCTION"))
            .expect("the routine is handed over");
        assert!(warning < transfer, "{sql}");

        owned.functions[0].security_definer = false;
        let sql = render(
            &[user_plan(
                "IAMA:gone@example.com",
                Discovery::Discovered(owned),
            )],
            "admin",
        );
        assert!(!sql.contains("SECURITY DEFINER:"), "{sql}");
    }

    #[test]
    fn a_user_whose_identity_center_user_exists_is_told_to_disable_it_first() {
        let mut plan = user_plan("IAMA:gone@example.com", Discovery::Discovered(owned()));
        plan.finding.ic_user_id = Some("ic-gone".into());
        let sql = render(std::slice::from_ref(&plan), "admin");
        assert!(
            sql.contains("-- WARNING: Identity Center user \"ic-gone\" still exists. Disable it"),
            "{sql}"
        );
        plan.finding.ic_user_id = None;
        let sql = render(&[plan], "admin");
        assert!(!sql.contains("Identity Center user"), "{sql}");
    }
}
