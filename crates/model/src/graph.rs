//! The identity graph: IdP users, Identity Center users, database users per target,
//! linked by the rule that matched them, and the findings it implies.
//!
//! Matching uses hash indexes keyed by folded (lower-cased) names, so building the graph
//! is linear in the number of identities.

use std::borrow::Cow;
use std::collections::HashMap;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::finding::{Finding, FindingKind, MatchRule, Reason, Severity};
use crate::identity::{DbUser, IcUser, IdpUser, TargetSnapshot};
use crate::mapping::{Mapping, MatchOn, NameForm};

/// A vertex of the identity graph: an index into the snapshot it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// An IdP user.
    Idp(u32),
    /// An Identity Center user.
    Ic(u32),
    /// A database target.
    Target(u32),
    /// A database user of a target, with how its name accounts for it.
    Db {
        /// Index of the target.
        target: u32,
        /// Index of the user in the target's snapshot.
        user: u32,
        /// What the name alone says.
        class: DbClass,
    },
}

/// How a database user is accounted for before (or instead of) identity matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbClass {
    /// A federated person login (`IAM:`, `IAMA:`, a namespace): must match a person.
    Prefixed,
    /// An unprefixed name: a person's bare login if it matches one, else a local user.
    Bare,
    /// An IAM role login (`IAMR:`); no source covers roles.
    Role,
    /// The target's master or admin user.
    Master,
    /// The user idgraph itself logs in as.
    Login,
    /// A user the database owns (`rdsdb`, `mapping.system_users`).
    System,
    /// A local user in `mapping.local_allowlist`.
    Allowlisted,
}

/// An edge of the identity graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Two identities of one person, and the rule that linked them.
    Match(MatchRule),
    /// A target holds a database user.
    Holds,
}

/// Lower-cased form of a name for case-insensitive comparison; borrowed when the name
/// is lower-case already, as most are, so indexing 200,000 names allocates little.
pub(crate) fn fold(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        let lower = s.to_lowercase();
        if lower == s {
            Cow::Borrowed(s)
        } else {
            Cow::Owned(lower)
        }
    }
}

/// A hash index from a key to the positions holding it; most keys hold one. Keys borrow
/// from the snapshots where they can.
struct Index<'a>(HashMap<Cow<'a, str>, Slot, foldhash::fast::RandomState>);

enum Slot {
    One(u32),
    Many(Vec<u32>),
}

impl<'a> Index<'a> {
    fn with_capacity(n: usize) -> Self {
        Self(HashMap::with_capacity_and_hasher(n, Default::default()))
    }

    fn insert(&mut self, key: Cow<'a, str>, at: u32) {
        use std::collections::hash_map::Entry;
        match self.0.entry(key) {
            Entry::Vacant(e) => {
                e.insert(Slot::One(at));
            }
            Entry::Occupied(mut e) => match e.get_mut() {
                Slot::One(first) if *first != at => {
                    let first = *first;
                    e.insert(Slot::Many(vec![first, at]));
                }
                Slot::One(_) => {}
                Slot::Many(all) => {
                    if !all.contains(&at) {
                        all.push(at);
                    }
                }
            },
        }
    }

    fn get(&self, key: &str) -> &[u32] {
        match self.0.get(key) {
            None => &[],
            Some(Slot::One(at)) => std::slice::from_ref(at),
            Some(Slot::Many(all)) => all,
        }
    }
}

/// How the database users of the graph are accounted for by their names alone; a person
/// login is accounted for only if it matches an active person, which [`Graph::findings`]
/// decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Accounting {
    /// Every database user of every target in the graph.
    pub database_users: usize,
    /// Users whose names must match a person (prefixed, or bare and not exempt).
    pub person_logins: usize,
    /// IAM role users (`IAMR:`), which no source covers.
    pub iam_roles: usize,
    /// Master/admin, idgraph's own login, system and allowlisted users.
    pub exempt: usize,
}

/// The identity graph of one run.
pub struct Graph {
    graph: DiGraph<Node, Link>,
    idp: Vec<IdpUser>,
    ic: Vec<IcUser>,
    targets: Vec<TargetSnapshot>,
    ic_nodes: Vec<NodeIndex>,
    db_nodes: Vec<NodeIndex>,
    mapping: Mapping,
}

impl Graph {
    /// Builds the graph from complete snapshots of the IdP, Identity Center, and the
    /// targets that were fetched completely.
    pub fn build(
        idp: Vec<IdpUser>,
        ic: Vec<IcUser>,
        targets: Vec<TargetSnapshot>,
        mapping: &Mapping,
    ) -> Self {
        let db_count: usize = targets.iter().map(|t| t.users.len()).sum();
        let mut graph = DiGraph::with_capacity(
            idp.len() + ic.len() + targets.len() + db_count,
            ic.len() + 2 * db_count,
        );
        let idp_nodes: Vec<NodeIndex> = (0..idp.len())
            .map(|i| graph.add_node(Node::Idp(i as u32)))
            .collect();
        let ic_nodes: Vec<NodeIndex> = (0..ic.len())
            .map(|i| graph.add_node(Node::Ic(i as u32)))
            .collect();

        link_idp_to_ic(&mut graph, &idp, &ic, &idp_nodes, &ic_nodes);

        // Person logins and the folded rest of their names, matched rule by rule below.
        let mut pending: Vec<(NodeIndex, DbClass, Cow<'_, str>)> = Vec::new();
        let mut db_nodes = Vec::with_capacity(db_count);
        for (t, target) in targets.iter().enumerate() {
            let target_node = graph.add_node(Node::Target(t as u32));
            for (u, user) in target.users.iter().enumerate() {
                let (class, rest) = classify(mapping, target, &user.name);
                let node = graph.add_node(Node::Db {
                    target: t as u32,
                    user: u as u32,
                    class,
                });
                graph.add_edge(target_node, node, Link::Holds);
                db_nodes.push(node);
                if matches!(class, DbClass::Prefixed | DbClass::Bare) {
                    pending.push((node, class, fold(rest)));
                }
            }
        }

        // `match_on` in order: the first rule that matches a login anyone decides.
        for (r, rule) in mapping.match_on.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            let keys: Vec<&str> = pending.iter().map(|(_, _, key)| key.as_ref()).collect();
            let found = candidates(*rule, r == 0, &ic, &keys);
            let mut left = Vec::new();
            for ((node, class, key), found) in pending.into_iter().zip(found) {
                if found.is_empty() {
                    left.push((node, class, key));
                    continue;
                }
                let matched_by = match (rule, class) {
                    (MatchOn::UserName, DbClass::Prefixed) => MatchRule::PrefixUserName,
                    (MatchOn::UserName, _) => MatchRule::BareUserName,
                    (MatchOn::Email, DbClass::Prefixed) => MatchRule::PrefixEmail,
                    (MatchOn::Email, _) => MatchRule::BareEmail,
                };
                for i in found {
                    graph.add_edge(ic_nodes[i as usize], node, Link::Match(matched_by));
                }
            }
            pending = left;
        }
        drop(pending);

        Self {
            graph,
            idp,
            ic,
            targets,
            ic_nodes,
            db_nodes,
            mapping: mapping.clone(),
        }
    }

    /// The IdP user linked to Identity Center user `ic`, and the rule that linked them.
    fn idp_of(&self, ic: NodeIndex) -> Option<(&IdpUser, MatchRule)> {
        self.graph
            .edges_directed(ic, Direction::Incoming)
            .find_map(|edge| match (self.graph[edge.source()], edge.weight()) {
                (Node::Idp(i), Link::Match(rule)) => Some((&self.idp[i as usize], *rule)),
                _ => None,
            })
    }

    /// The Identity Center users matched to database user `db`, with their rule.
    fn ic_of(&self, db: NodeIndex) -> impl Iterator<Item = (u32, MatchRule)> + '_ {
        self.graph
            .edges_directed(db, Direction::Incoming)
            .filter_map(|edge| match (self.graph[edge.source()], edge.weight()) {
                (Node::Ic(i), Link::Match(rule)) => Some((i, *rule)),
                _ => None,
            })
    }

    /// Every finding the graph implies, sorted by severity (most urgent first), kind,
    /// target and name.
    pub fn findings(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        for &node in &self.ic_nodes {
            let Node::Ic(i) = self.graph[node] else {
                continue;
            };
            let ic = &self.ic[i as usize];
            let idp = self.idp_of(node).map(|(idp, _)| idp);
            let reason = match idp {
                None => Reason::IdpUserMissing,
                Some(idp) if !idp.active => Reason::IdpUserInactive,
                Some(_) => continue,
            };
            findings.push(Finding {
                kind: FindingKind::StaleIdentityCenterUser,
                reason,
                severity: Severity::Medium,
                target: None,
                db_user: None,
                ic_user_id: Some(ic.user_id.clone()),
                idp_user_id: idp.map(|idp| idp.id.clone()),
                user_name: Some(ic.user_name.clone()),
                superuser: false,
                matched_by: None,
                candidates: Vec::new(),
                logins: None,
            });
        }
        for &node in &self.db_nodes {
            if let Some(finding) = self.db_finding(node) {
                findings.push(finding);
            }
        }
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.kind.cmp(&b.kind))
                .then_with(|| a.target.cmp(&b.target))
                .then_with(|| a.db_user.cmp(&b.db_user))
                .then_with(|| a.ic_user_id.cmp(&b.ic_user_id))
        });
        findings
    }

    fn db_finding(&self, node: NodeIndex) -> Option<Finding> {
        let Node::Db {
            target,
            user,
            class,
        } = self.graph[node]
        else {
            return None;
        };
        if !matches!(class, DbClass::Prefixed | DbClass::Bare) {
            return None;
        }
        let target = &self.targets[target as usize];
        let db_user = &target.users[user as usize];
        let mut matches: Vec<(u32, MatchRule)> = self.ic_of(node).collect();
        let mut finding = Finding {
            kind: FindingKind::OrphanedDbUser,
            reason: Reason::NoIdentityCenterUser,
            severity: if db_user.superuser {
                Severity::Critical
            } else {
                Severity::High
            },
            target: Some(target.name.clone()),
            db_user: Some(db_user.name.clone()),
            ic_user_id: None,
            idp_user_id: None,
            user_name: None,
            superuser: db_user.superuser,
            matched_by: None,
            candidates: Vec::new(),
            logins: None,
        };
        match matches.len() {
            0 if class == DbClass::Prefixed => {
                finding.user_name = Some(
                    self.mapping
                        .strip(&db_user.name, &target.namespaces)
                        .to_owned(),
                );
            }
            0 => {
                finding.kind = FindingKind::UnmanagedDbUser;
                finding.reason = Reason::NoMatchingIdentity;
                finding.severity = if db_user.superuser {
                    Severity::High
                } else {
                    Severity::Medium
                };
                finding.user_name = Some(db_user.name.clone());
            }
            1 => {
                let (i, rule) = matches[0];
                let ic = &self.ic[i as usize];
                finding.reason = match self.idp_of(self.ic_nodes[i as usize]) {
                    None => Reason::IdpUserMissing,
                    Some((idp, _)) if !idp.active => {
                        finding.idp_user_id = Some(idp.id.clone());
                        Reason::IdpUserInactive
                    }
                    Some(_) => return None,
                };
                finding.ic_user_id = Some(ic.user_id.clone());
                finding.user_name = Some(ic.user_name.clone());
                finding.matched_by = Some(rule);
            }
            _ => {
                matches.sort_unstable();
                finding.kind = FindingKind::AmbiguousMapping;
                finding.reason = Reason::MultipleIdentityCenterUsers;
                finding.severity = Severity::High;
                finding.user_name = Some(
                    self.mapping
                        .strip(&db_user.name, &target.namespaces)
                        .to_owned(),
                );
                finding.matched_by = Some(matches[0].1);
                finding.candidates = matches
                    .iter()
                    .map(|&(i, _)| self.ic[i as usize].user_id.clone())
                    .collect();
                finding.candidates.sort();
            }
        }
        Some(finding)
    }

    /// The snapshots the graph was built from, given back: what a
    /// [`Universe`](crate::focus::Universe) of this run is made of.
    pub fn into_snapshots(self) -> (Vec<IdpUser>, Vec<IcUser>, Vec<TargetSnapshot>) {
        (self.idp, self.ic, self.targets)
    }

    /// The database users whose logins are watched for dormancy, with their target's
    /// name: person logins (matched, orphaned or unmanaged) and allowlisted local users.
    /// Not the master or admin user, idgraph's own login, system users or IAM roles,
    /// which are accounted for by what they are rather than by who uses them.
    pub fn login_accounts(&self) -> impl Iterator<Item = (&str, &DbUser)> + '_ {
        self.db_nodes
            .iter()
            .filter_map(|&node| match self.graph[node] {
                Node::Db {
                    target,
                    user,
                    class: DbClass::Prefixed | DbClass::Bare | DbClass::Allowlisted,
                } => {
                    let target = &self.targets[target as usize];
                    Some((target.name.as_str(), &target.users[user as usize]))
                }
                _ => None,
            })
    }

    /// How the database users are accounted for, over all targets.
    pub fn accounting(&self) -> Accounting {
        let mut accounting = Accounting {
            database_users: self.db_nodes.len(),
            ..Accounting::default()
        };
        for &node in &self.db_nodes {
            if let Node::Db { class, .. } = self.graph[node] {
                match class {
                    DbClass::Role => accounting.iam_roles += 1,
                    DbClass::Prefixed | DbClass::Bare => accounting.person_logins += 1,
                    DbClass::Master | DbClass::Login | DbClass::System | DbClass::Allowlisted => {
                        accounting.exempt += 1
                    }
                }
            }
        }
        accounting
    }

    /// How database user `name` of target `target` is linked: its class and every
    /// Identity Center user id matched with the rule. `None` if the graph has no such user.
    /// A linear search, for tests.
    #[cfg(test)]
    pub(crate) fn explain(
        &self,
        target: &str,
        name: &str,
    ) -> Option<(DbClass, Vec<(String, MatchRule)>)> {
        self.db_nodes.iter().find_map(|&node| {
            let Node::Db {
                target: t,
                user,
                class,
            } = self.graph[node]
            else {
                return None;
            };
            let snapshot = &self.targets[t as usize];
            (snapshot.name == target && snapshot.users[user as usize].name == name).then(|| {
                let links = self
                    .ic_of(node)
                    .map(|(i, rule)| (self.ic[i as usize].user_id.clone(), rule))
                    .collect();
                (class, links)
            })
        })
    }

    /// The IdP user id linked to Identity Center user `user_id`, with the rule. A linear
    /// search, for tests.
    #[cfg(test)]
    pub(crate) fn idp_link(&self, user_id: &str) -> Option<(String, MatchRule)> {
        let i = self.ic.iter().position(|u| u.user_id == user_id)?;
        self.idp_of(self.ic_nodes[i])
            .map(|(idp, rule)| (idp.id.clone(), rule))
    }
}

/// Links each Identity Center user to its IdP user: by external id, else user name, else
/// email. Where several IdP users qualify, an active one wins (a rehired person).
///
/// Provisioned users carry the IdP's `externalId`, so one index over those links nearly
/// everyone; the few left (people gone from the IdP, users created in Identity Center)
/// get the other rules by one scan of the IdP against an index of what they look for.
fn link_idp_to_ic(
    graph: &mut DiGraph<Node, Link>,
    idp: &[IdpUser],
    ic: &[IcUser],
    idp_nodes: &[NodeIndex],
    ic_nodes: &[NodeIndex],
) {
    let pick = |found: &[u32]| -> Option<u32> {
        found
            .iter()
            .copied()
            .find(|&i| idp[i as usize].active)
            .or(found.first().copied())
    };
    let mut link = |at: u32, i: usize, rule: MatchRule| {
        graph.add_edge(idp_nodes[at as usize], ic_nodes[i], Link::Match(rule));
    };

    let mut by_external_id = Index::with_capacity(idp.len());
    for (i, user) in idp.iter().enumerate() {
        if let Some(external_id) = &user.external_id {
            by_external_id.insert(Cow::Borrowed(external_id), i as u32);
        }
    }
    let mut unlinked = Vec::new();
    for (i, user) in ic.iter().enumerate() {
        let linked = match user.external_ids.as_slice() {
            [one] => pick(by_external_id.get(&one.id)),
            all => pick(
                &all.iter()
                    .flat_map(|e| by_external_id.get(&e.id).iter().copied())
                    .collect::<Vec<_>>(),
            ),
        };
        match linked {
            Some(at) => link(at, i, MatchRule::ExternalId),
            None => unlinked.push(i),
        }
    }
    drop(by_external_id);
    if unlinked.is_empty() {
        return;
    }

    // What the unlinked users look for, by rule: an IdP `id` among their external ids,
    // their user name, their email.
    let mut want_id = Index::with_capacity(unlinked.len());
    let mut want_name = Index::with_capacity(unlinked.len());
    let mut want_email = Index::with_capacity(unlinked.len());
    for (u, &i) in unlinked.iter().enumerate() {
        let user = &ic[i];
        for e in &user.external_ids {
            want_id.insert(Cow::Borrowed(&e.id), u as u32);
        }
        want_name.insert(fold(&user.user_name), u as u32);
        if let Some(email) = &user.email {
            want_email.insert(fold(email), u as u32);
        }
    }
    // Per unlinked user and rule, the IdP users that qualify, in IdP order; by id they
    // are ordered by which external id they matched, as the user lists them.
    let mut found: Vec<[Vec<u32>; 3]> = vec![Default::default(); unlinked.len()];
    for (at, user) in idp.iter().enumerate() {
        let at = at as u32;
        for &u in want_id.get(&user.id) {
            found[u as usize][0].push(at);
        }
        for &u in want_name.get(&fold(&user.user_name)) {
            found[u as usize][1].push(at);
        }
        if let Some(email) = &user.email {
            for &u in want_email.get(&fold(email)) {
                found[u as usize][2].push(at);
            }
        }
    }
    for (u, &i) in unlinked.iter().enumerate() {
        let [by_id, by_name, by_email] = &mut found[u];
        let ids = &ic[i].external_ids;
        by_id.sort_by_key(|&at| ids.iter().position(|e| e.id == idp[at as usize].id));
        let linked = pick(by_id)
            .map(|at| (at, MatchRule::IdpId))
            .or_else(|| pick(by_name).map(|at| (at, MatchRule::UserName)))
            .or_else(|| pick(by_email).map(|at| (at, MatchRule::Email)));
        if let Some((at, rule)) = linked {
            link(at, i, rule);
        }
    }
}

/// What the name of database user `name` on `target` says, and the part left to match.
pub(crate) fn classify<'a>(
    mapping: &Mapping,
    target: &TargetSnapshot,
    name: &'a str,
) -> (DbClass, &'a str) {
    if mapping.system_users.iter().any(|s| s == name) {
        return (DbClass::System, name);
    }
    if target.master_user.as_deref() == Some(name) {
        return (DbClass::Master, name);
    }
    if let Some(login) = &target.login_user {
        let bare_login = mapping.strip(login, &target.namespaces);
        let bare_name = mapping.strip(name, &target.namespaces);
        if login.eq_ignore_ascii_case(name) || bare_login.eq_ignore_ascii_case(bare_name) {
            return (DbClass::Login, name);
        }
    }
    if mapping.local_allowlist.iter().any(|s| s == name) {
        return (DbClass::Allowlisted, name);
    }
    match mapping.classify(name, &target.namespaces) {
        NameForm::Role { .. } => (DbClass::Role, name),
        NameForm::Prefixed { rest, .. } => (DbClass::Prefixed, rest),
        NameForm::Bare => (DbClass::Bare, name),
    }
}

/// For each of the folded `keys`, the Identity Center users whose `rule` attribute equals
/// it. The `first` rule indexes all of Identity Center, since every login looks it up;
/// later rules index the keys instead and scan Identity Center once, which at a million
/// users is far cheaper than a second full index.
fn candidates(rule: MatchOn, first: bool, ic: &[IcUser], keys: &[&str]) -> Vec<Vec<u32>> {
    fn attribute(rule: MatchOn, user: &IcUser) -> Option<Cow<'_, str>> {
        match rule {
            MatchOn::UserName => Some(fold(&user.user_name)),
            MatchOn::Email => user.email.as_deref().map(fold),
        }
    }
    let mut found: Vec<Vec<u32>> = vec![Vec::new(); keys.len()];
    if first {
        let mut index = Index::with_capacity(ic.len());
        for (i, user) in ic.iter().enumerate() {
            if let Some(key) = attribute(rule, user) {
                index.insert(key, i as u32);
            }
        }
        for (slot, key) in found.iter_mut().zip(keys) {
            slot.extend_from_slice(index.get(key));
        }
    } else {
        let mut wanted = Index::with_capacity(keys.len());
        for (p, key) in keys.iter().enumerate() {
            wanted.insert(Cow::Borrowed(*key), p as u32);
        }
        for (i, user) in ic.iter().enumerate() {
            if let Some(key) = attribute(rule, user) {
                for &p in wanted.get(&key) {
                    found[p as usize].push(i as u32);
                }
            }
        }
    }
    found
}
