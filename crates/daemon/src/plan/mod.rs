//! `idgraph plan`: remediation SQL for the orphaned database users the store holds open
//! (SPEC §7). idgraph prints the plan and never executes it.
//!
//! Users are cluster-wide and objects are per database, so a plan is made per cluster
//! (targets with the same [`Source::cluster`](idgraph_sources::Source::cluster)): for
//! every database of the cluster — the configured ones and every other one `pg_database`
//! lists — a section that psql enters with `\connect`, holding one transaction per
//! orphaned user that hands what the user owns there to `[remediation] new_owner` and
//! revokes what it holds there; then, once every database is done, one `DROP USER` per
//! user. Redshift's `DROP USER` checks only the current database and leaves the user's
//! objects in the others owned by nobody, so a user is dropped only when every database of
//! its cluster was read: where one could not be, the user's statements are written
//! commented out, with the reason, and nothing of it is dropped.
//!
//! Layout: this module gathers (the store's findings, the targets' catalogs, read-only);
//! `render` writes the script; `sql` quotes names and writes the statements.

mod render;
mod sql;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use idgraph_model::{Finding, FindingKind};
use idgraph_sources::ownership::{self, Owned};
use idgraph_sources::postgres::{self, Connection};
use idgraph_sources::{CatalogAccess, SourceError, TargetRole};
use idgraph_store::{Episode, Store};
use tracing::warn;

use crate::config::Settings;

pub use render::render;
pub use sql::quote_ident;

/// A plan as gathered: what `idgraph plan` prints as SQL ([`Planned::sql`]) or JSON
/// ([`Planned::json`]).
#[derive(Debug, Clone)]
pub struct Planned {
    /// The clusters with orphans, in config order.
    pub clusters: Vec<ClusterPlan>,
    /// `[remediation] new_owner`.
    pub new_owner: String,
    /// The open `post_deprovisioning_login` findings (of the target's cluster, if one was
    /// named): the header shows them first.
    pub incidents: Vec<Finding>,
}

impl Planned {
    /// The script ([`render`]).
    pub fn sql(&self) -> String {
        render::render_with_incidents(&self.clusters, &self.new_owner, &self.incidents)
    }

    /// `plan --format json`: per cluster its databases and what becomes of each orphan
    /// (`drop`, `gone`, `new_owner`, `blocked` with its reasons), and the script.
    pub fn json(&self) -> String {
        let clusters: Vec<serde_json::Value> = self
            .clusters
            .iter()
            .map(|cluster| {
                let users: Vec<serde_json::Value> = cluster
                    .orphans
                    .iter()
                    .map(|orphan| {
                        let (verdict, reasons) =
                            match render::verdict(cluster, orphan, &self.new_owner) {
                                render::Verdict::Drop => ("drop", Vec::new()),
                                render::Verdict::Gone => ("gone", Vec::new()),
                                render::Verdict::NewOwner => ("new_owner", Vec::new()),
                                render::Verdict::Blocked(reasons) => ("blocked", reasons),
                            };
                        serde_json::json!({
                            "db_user": orphan.finding.db_user,
                            "targets": orphan.targets,
                            "verdict": verdict,
                            "reasons": reasons,
                        })
                    })
                    .collect();
                let databases: Vec<serde_json::Value> = cluster
                    .databases
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "name": d.name,
                            "targets": d.targets,
                            "error": d.owned.as_ref().err(),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "cluster": cluster.name,
                    "databases": databases,
                    "not_read": cluster.unknown,
                    "users": users,
                })
            })
            .collect();
        let value = serde_json::json!({
            "new_owner": self.new_owner,
            "clusters": clusters,
            "sql": self.sql(),
        });
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

/// One cluster's remediation: its orphaned users and every database of it idgraph read or
/// tried to read.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// The cluster as [`Source::cluster`](idgraph_sources::Source::cluster) names it, or
    /// `target NAME` for a target that is no database (an export) or is no longer
    /// configured.
    pub name: String,
    /// Where psql connects to switch databases (`host`, `port`), when a catalog was read.
    pub endpoint: Option<(String, u16)>,
    /// The orphaned users, sorted by name; each once, whatever the number of its targets.
    pub orphans: Vec<Orphan>,
    /// The databases, the configured ones first (in config order), then the others sorted.
    pub databases: Vec<DatabasePlan>,
    /// Why the cluster cannot be planned completely (its catalog or its list of databases
    /// could not be read): while this holds anything, no user of the cluster is dropped.
    pub unknown: Vec<String>,
    /// What could not be read but is covered otherwise (a target's own login failed, and
    /// another login read its database): said in the plan, blocks nothing.
    pub notes: Vec<String>,
    /// The cluster's superusers, when its list of databases was read.
    pub superusers: Vec<String>,
}

/// An orphaned database user of a cluster.
#[derive(Debug, Clone)]
pub struct Orphan {
    /// The open `orphaned_db_user` finding (of the first of `targets`); its `db_user` is
    /// the user to drop.
    pub finding: Finding,
    /// The targets whose findings name the user.
    pub targets: Vec<String>,
    /// The run that opened the finding's episode.
    pub opened_run: i64,
    /// When that run happened.
    pub opened_at: DateTime<Utc>,
}

/// One database of a cluster and what the orphans (and `new_owner`) have in it.
#[derive(Debug, Clone)]
pub struct DatabasePlan {
    /// The database's name, exactly as the catalog holds it.
    pub name: String,
    /// The configured targets that are this database.
    pub targets: Vec<String>,
    /// What discovery found, by user (a user the database's catalog does not hold is
    /// absent), or why the database could not be read.
    pub owned: Result<BTreeMap<String, Owned>, String>,
}

/// Builds the plan for the open `orphaned_db_user` findings of `store` — of the cluster of
/// the target named `target` only, if given — reading what each user owns in every
/// database of its cluster. Only reads: the store, and the catalogs.
///
/// # Errors
///
/// When `[remediation] new_owner` is not set, when `target` names no configured target, or
/// when the store cannot be read. A catalog that cannot be read is not an error: the plan
/// says so and drops no user of that cluster.
pub async fn plan(
    settings: &Settings,
    store: &Store,
    target: Option<&str>,
) -> anyhow::Result<Planned> {
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
    // The targets as a run builds them: each knows its cluster and how its catalog is read.
    let targets = crate::reconcile::targets(settings).await;
    let mut incidents: Vec<Finding> = episodes
        .iter()
        .filter(|e| e.finding.kind == FindingKind::PostDeprovisioningLogin)
        .map(|e| e.finding.clone())
        .collect();
    let mut clusters = group(&targets, episodes);
    if let Some(name) = target {
        let cluster = cluster_of(&targets, name);
        clusters.retain(|(c, _, _)| *c == cluster);
        incidents.retain(|f| {
            f.target
                .as_deref()
                .is_some_and(|t| cluster_of(&targets, t) == cluster)
        });
    }
    let concurrency = settings.target_concurrency.max(1);
    let mut plans = Vec::with_capacity(clusters.len());
    for (name, members, orphans) in clusters {
        plans.push(gather(name, &members, orphans, new_owner, concurrency).await);
    }
    Ok(Planned {
        clusters: plans,
        new_owner: new_owner.to_owned(),
        incidents,
    })
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

/// The cluster of the target `name`: its own, or `target NAME` for one that is no database
/// or is no longer configured.
fn cluster_of(targets: &[Box<TargetRole>], name: &str) -> String {
    targets
        .iter()
        .find(|t| t.name() == name)
        .and_then(|t| t.cluster())
        .unwrap_or_else(|| format!("target {name}"))
}

/// A cluster with orphans: its name, its configured targets, its orphans.
type Group<'a> = (String, Vec<&'a TargetRole>, Vec<Orphan>);

/// The open `orphaned_db_user` findings grouped by cluster, clusters in the order of their
/// first target in the configuration, then those of targets no longer configured. A user
/// on several targets of one cluster is one orphan.
fn group(targets: &[Box<TargetRole>], episodes: Vec<Episode>) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for target in targets {
        let cluster = cluster_of(targets, target.name());
        match groups.iter_mut().find(|(c, _, _)| *c == cluster) {
            Some((_, members, _)) => members.push(target.as_ref()),
            None => groups.push((cluster, vec![target.as_ref()], Vec::new())),
        }
    }
    let mut episodes: Vec<Episode> = episodes
        .into_iter()
        .filter(|e| e.finding.kind == FindingKind::OrphanedDbUser)
        .collect();
    episodes.sort_by(|a, b| a.finding.db_user.cmp(&b.finding.db_user));
    for episode in episodes {
        let (Some(target), Some(user)) = (&episode.finding.target, &episode.finding.db_user) else {
            continue;
        };
        let cluster = cluster_of(targets, target);
        let index = match groups.iter().position(|(c, _, _)| *c == cluster) {
            Some(index) => index,
            None => {
                groups.push((cluster, Vec::new(), Vec::new()));
                groups.len() - 1
            }
        };
        let orphans = &mut groups[index].2;
        match orphans
            .iter_mut()
            .find(|o| o.finding.db_user.as_ref() == Some(user))
        {
            Some(orphan) => orphan.targets.push(target.clone()),
            None => orphans.push(Orphan {
                targets: vec![target.clone()],
                opened_run: episode.opened_run,
                opened_at: episode.opened_at,
                finding: episode.finding,
            }),
        }
    }
    groups.retain(|(_, _, orphans)| !orphans.is_empty());
    groups
}

/// Reads what a cluster's orphans have in each of its databases: the configured ones
/// through their own targets' logins, the others through the first catalog that could be
/// read. `new_owner` is looked up too, so that the plan knows whether it exists.
async fn gather(
    name: String,
    members: &[&TargetRole],
    orphans: Vec<Orphan>,
    new_owner: &str,
    concurrency: usize,
) -> ClusterPlan {
    let mut plan = ClusterPlan {
        name,
        endpoint: None,
        orphans,
        databases: Vec::new(),
        unknown: Vec::new(),
        notes: Vec::new(),
        superusers: Vec::new(),
    };
    if members.is_empty() {
        plan.unknown
            .push("the target is no longer in the configuration".to_owned());
        return plan;
    }
    // (database, targets, connection): where each database is read.
    let mut reads: Vec<(String, Vec<String>, CatalogAccess)> = Vec::new();
    let mut failed = Vec::new();
    for member in members {
        match member.catalog().await {
            Ok(access) => match reads
                .iter_mut()
                .find(|(d, _, _)| *d == access.connection.database)
            {
                Some((_, targets, _)) => targets.push(member.name().to_owned()),
                None => reads.push((
                    access.connection.database.clone(),
                    vec![member.name().to_owned()],
                    access,
                )),
            },
            Err(error) => failed.push(unread(
                member.name(),
                &error,
                &format!("the catalog of target {}", member.name()),
            )),
        }
    }
    // The first catalog that could be read lists the cluster and reads the databases no
    // target names; errors name its target.
    let Some((_, first_targets, first)) = reads.first() else {
        plan.unknown = failed;
        return plan;
    };
    // A configured target whose catalog failed is no reason to stop when another login
    // reads the whole cluster: its database is one of those listed below.
    plan.notes = failed;
    let first = first.clone();
    let origin = first_targets
        .first()
        .cloned()
        .unwrap_or_else(|| members[0].name().to_owned());
    plan.endpoint = Some((first.connection.host.clone(), first.connection.port));
    match postgres::read_cluster(&origin, &first.connection, first.timeout).await {
        Ok(cluster) => {
            plan.superusers = cluster.superusers;
            for database in cluster.databases {
                if !reads.iter().any(|(d, _, _)| *d == database) {
                    let access = CatalogAccess {
                        connection: Connection {
                            database: database.clone(),
                            ..first.connection.clone()
                        },
                        timeout: first.timeout,
                    };
                    reads.push((database, Vec::new(), access));
                }
            }
        }
        Err(error) => plan
            .unknown
            .push(unread(&origin, &error, "the cluster's databases")),
    }
    let mut users: Vec<String> = plan
        .orphans
        .iter()
        .filter_map(|o| o.finding.db_user.clone())
        .collect();
    users.push(new_owner.to_owned());
    let origin = origin.as_str();
    plan.databases = stream::iter(reads)
        .map(|(database, targets, access)| {
            let users = &users;
            // A configured database is read with its own target's login and named by it.
            let origin = targets.first().map_or(origin, String::as_str).to_owned();
            async move {
                let owned = ownership::discover(&origin, &access.connection, users, access.timeout)
                    .await
                    .map_err(|error| unread(&origin, &error, &format!("database {database:?}")));
                DatabasePlan {
                    name: database,
                    targets,
                    owned,
                }
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    plan
}

/// Why `what` of the target `target` could not be read, as the plan says it; logged too.
fn unread(target: &str, error: &SourceError, what: &str) -> String {
    let error = match error {
        // Not a failure: a file target has no catalog, and says why.
        SourceError::NoCatalog { detail, .. } => detail.clone(),
        other => other.to_report(),
    };
    warn!(
        target_name = target,
        %error,
        "Cannot read {what}; the plan drops no user of this cluster."
    );
    format!("{what} could not be read: {error}")
}
