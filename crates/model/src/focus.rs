//! A targeted re-check: the findings of the people who changed in the IdP, derived with
//! exactly the rules of a full run, at a cost proportional to what changed.
//!
//! The daemon keeps the [`Universe`] of its last full run: the IdP and Identity Center
//! users and each target's metadata, with hash indexes over every attribute the matching
//! rules compare. A re-check then goes:
//!
//! 1. [`Universe::people`]: for the changed IdP users, the Identity Center users linked to
//!    them and an [`IcLookup`], what to ask Identity Center for afresh;
//! 2. [`Universe::apply`]: the changed IdP users and the fresh Identity Center users replace
//!    what the universe held for them;
//! 3. [`Universe::candidates`]: per target, every database user name the mapping rules can
//!    link to these people (each prefix, each namespace, bare), folded, to read afresh;
//! 4. [`Universe::evaluate`]: the database users read, every Identity Center user that
//!    matches them, every IdP user that can link to those, built into a [`Graph`] of a few
//!    nodes whose findings about the evaluated [`Subject`]s are those a full graph would
//!    derive from the same snapshots: each link the graph makes depends only on the
//!    identities on both ends, and the sub-graph holds every identity that could be one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};

use crate::finding::{Finding, Subject};
use crate::graph::{classify, fold, DbClass, Graph};
use crate::identity::{DbUser, ExternalId, IcUser, IdpUser, TargetSnapshot};
use crate::mapping::{Mapping, MatchOn};

/// Which attribute an index key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Attr {
    /// An IdP `id` or an Identity Center `UserId`.
    Id,
    /// An IdP `externalId`, or any of an Identity Center user's `ExternalIds[].Id`.
    ExternalId,
    /// A folded user name.
    UserName,
    /// A folded primary email.
    Email,
}

/// An index from (attribute, value) to positions. It keeps a 64-bit hash of each key,
/// not the key, so that indexing a million identities costs little memory; a lookup
/// may therefore return a position that does not hold the value, and every caller checks.
#[derive(Default)]
struct Postings {
    hasher: foldhash::fast::FixedState,
    map: HashMap<u64, Vec<u32>, foldhash::fast::FixedState>,
}

impl Postings {
    fn key(&self, attr: Attr, value: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        attr.hash(&mut h);
        value.hash(&mut h);
        h.finish()
    }

    fn insert(&mut self, attr: Attr, value: &str, at: u32) {
        let key = self.key(attr, value);
        let slot = self.map.entry(key).or_default();
        if !slot.contains(&at) {
            slot.push(at);
        }
    }

    fn remove(&mut self, attr: Attr, value: &str, at: u32) {
        let key = self.key(attr, value);
        if let Some(slot) = self.map.get_mut(&key) {
            slot.retain(|&p| p != at);
            if slot.is_empty() {
                self.map.remove(&key);
            }
        }
    }

    fn get(&self, attr: Attr, value: &str) -> &[u32] {
        self.map
            .get(&self.key(attr, value))
            .map_or(&[], Vec::as_slice)
    }
}

/// The keys an IdP user is indexed under.
fn idp_keys(user: &IdpUser) -> Vec<(Attr, String)> {
    let mut keys = vec![
        (Attr::Id, user.id.clone()),
        (Attr::UserName, fold(&user.user_name).into_owned()),
    ];
    if let Some(external_id) = &user.external_id {
        keys.push((Attr::ExternalId, external_id.clone()));
    }
    if let Some(email) = &user.email {
        keys.push((Attr::Email, fold(email).into_owned()));
    }
    keys
}

/// The keys an Identity Center user is indexed under.
fn ic_keys(user: &IcUser) -> Vec<(Attr, String)> {
    let mut keys = vec![
        (Attr::Id, user.user_id.clone()),
        (Attr::UserName, fold(&user.user_name).into_owned()),
    ];
    keys.extend(
        user.external_ids
            .iter()
            .map(|e| (Attr::ExternalId, e.id.clone())),
    );
    if let Some(email) = &user.email {
        keys.push((Attr::Email, fold(email).into_owned()));
    }
    keys
}

/// Whether `keys` (of one identity) hold `value` under `attr`: the check after a lookup.
fn holds(keys: &[(Attr, String)], attr: Attr, value: &str) -> bool {
    keys.iter().any(|(a, v)| *a == attr && v == value)
}

/// Identities at positions, some removed, with an index over their keys.
struct Table<T> {
    rows: Vec<Option<T>>,
    index: Postings,
    keys: fn(&T) -> Vec<(Attr, String)>,
}

impl<T: Clone> Table<T> {
    fn new(rows: Vec<T>, keys: fn(&T) -> Vec<(Attr, String)>) -> Self {
        let mut table = Self {
            rows: Vec::with_capacity(rows.len()),
            index: Postings::default(),
            keys,
        };
        for row in rows {
            table.push(row);
        }
        table
    }

    fn push(&mut self, row: T) -> u32 {
        let at = self.rows.len() as u32;
        for (attr, value) in (self.keys)(&row) {
            self.index.insert(attr, &value, at);
        }
        self.rows.push(Some(row));
        at
    }

    fn get(&self, at: u32) -> Option<&T> {
        self.rows.get(at as usize).and_then(Option::as_ref)
    }

    /// The positions of the rows holding `value` under `attr`.
    fn find(&self, attr: Attr, value: &str) -> impl Iterator<Item = u32> + '_ {
        let value = value.to_owned();
        self.index
            .get(attr, &value)
            .iter()
            .copied()
            .filter(move |&at| {
                self.get(at)
                    .is_some_and(|row| holds(&(self.keys)(row), attr, &value))
            })
    }

    fn remove(&mut self, at: u32) -> Option<T> {
        let row = self.rows.get_mut(at as usize)?.take()?;
        for (attr, value) in (self.keys)(&row) {
            self.index.remove(attr, &value, at);
        }
        Some(row)
    }

    /// Puts `row` where the row with the same id was, or after every row.
    fn put(&mut self, id: &str, row: T) {
        let found = self.find(Attr::Id, id).next();
        match found {
            Some(at) => {
                self.remove(at);
                for (attr, value) in (self.keys)(&row) {
                    self.index.insert(attr, &value, at);
                }
                self.rows[at as usize] = Some(row);
            }
            None => {
                self.push(row);
            }
        }
    }

    /// The rows at `positions`, in position order: the order the full run's listing had,
    /// which decides ties the same way a full graph does.
    fn pick(&self, positions: &BTreeSet<u32>) -> Vec<T> {
        positions
            .iter()
            .filter_map(|&at| self.get(at).cloned())
            .collect()
    }
}

/// What Identity Center is asked for afresh about the changed people: every user that
/// could be linked to them. An answer is complete for these keys: a user that the universe
/// held for them and the answer lacks no longer exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IcLookup {
    /// The `UserId`s linked to the people before the change.
    pub user_ids: BTreeSet<String>,
    /// External ids to resolve (`GetUserId` by `ExternalId`): the people's IdP `externalId`
    /// and `id` under every issuer the universe has seen, and the linked users' own.
    pub external_ids: Vec<ExternalId>,
    /// User names to resolve (`GetUserId` by `userName`), as the sources spell them.
    pub user_names: BTreeSet<String>,
    /// Emails to resolve (`GetUserId` by `emails.value`), as the sources spell them.
    pub emails: BTreeSet<String>,
}

impl IcLookup {
    /// Whether `user` is one this lookup asks about: how a source that can only list
    /// everything (a file) answers it.
    pub fn matches(&self, user: &IcUser) -> bool {
        let folded = |set: &BTreeSet<String>, value: &str| {
            let value = fold(value);
            set.iter().any(|s| fold(s) == value)
        };
        self.user_ids.contains(&user.user_id)
            || user
                .external_ids
                .iter()
                .any(|e| self.external_ids.iter().any(|w| w.id == e.id))
            || folded(&self.user_names, &user.user_name)
            || user
                .email
                .as_deref()
                .is_some_and(|email| folded(&self.emails, email))
    }
}

/// The people a re-check is about: the changed IdP users, as they are now, and everything
/// the universe linked to them before the change.
#[derive(Debug, Clone, Default)]
pub struct People {
    idp: Vec<IdpUser>,
    /// Identity Center users linked to the people, before and after the change.
    ic_ids: BTreeSet<String>,
    /// Folded user names and emails of the people and their Identity Center users, before
    /// and after the change: what their database users are called.
    names: BTreeSet<String>,
    /// What to ask Identity Center.
    pub lookup: IcLookup,
}

impl People {
    /// The changed IdP users' ids.
    pub fn idp_ids(&self) -> impl Iterator<Item = &str> {
        self.idp.iter().map(|u| u.id.as_str())
    }

    fn remember(&mut self, user_name: &str, email: Option<&str>) {
        self.names.insert(fold(user_name).into_owned());
        if let Some(email) = email {
            self.names.insert(fold(email).into_owned());
        }
    }
}

/// The findings of a re-check, and what it evaluated.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// The findings about the evaluated subjects, sorted as [`Graph::findings`] sorts.
    pub findings: Vec<Finding>,
    /// The database users read and the Identity Center users linked to the people: a
    /// finding about one of them opens, stays or resolves by this evaluation alone.
    pub subjects: HashSet<Subject>,
}

/// The identities of the last full run, indexed for re-checks. See the [module](self).
pub struct Universe {
    mapping: Mapping,
    idp: Table<IdpUser>,
    ic: Table<IcUser>,
    /// The targets the full run read completely, without their users.
    targets: Vec<TargetSnapshot>,
    /// The issuers of the Identity Center users' external ids.
    issuers: BTreeSet<String>,
}

impl Universe {
    /// Indexes the snapshots of a full run whose IdP and Identity Center were fetched;
    /// `targets` are those fetched completely (their users are not kept).
    pub fn new(
        idp: Vec<IdpUser>,
        ic: Vec<IcUser>,
        targets: &[TargetSnapshot],
        mapping: &Mapping,
    ) -> Self {
        let issuers = ic
            .iter()
            .flat_map(|u| u.external_ids.iter().map(|e| e.issuer.clone()))
            .collect();
        Self {
            mapping: mapping.clone(),
            idp: Table::new(idp, idp_keys),
            ic: Table::new(ic, ic_keys),
            targets: targets
                .iter()
                .map(|t| TargetSnapshot {
                    users: Vec::new(),
                    ..t.clone()
                })
                .collect(),
            issuers,
        }
    }

    /// The names of the targets a re-check can evaluate, in config order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.name.as_str())
    }

    /// The Identity Center users that can be linked to IdP user `user`: by an external id
    /// equal to its `externalId` or `id`, its user name or its email.
    fn ic_of(&self, user: &IdpUser) -> BTreeSet<u32> {
        let mut found: BTreeSet<u32> = self.ic.find(Attr::ExternalId, &user.id).collect();
        if let Some(external_id) = &user.external_id {
            found.extend(self.ic.find(Attr::ExternalId, external_id));
        }
        found.extend(self.ic.find(Attr::UserName, &fold(&user.user_name)));
        if let Some(email) = &user.email {
            found.extend(self.ic.find(Attr::Email, &fold(email)));
        }
        found
    }

    /// The IdP users that can be linked to Identity Center user `user` (every rule of
    /// the graph's linking, without its preferences).
    fn idp_of(&self, user: &IcUser) -> BTreeSet<u32> {
        let mut found = BTreeSet::new();
        for e in &user.external_ids {
            found.extend(self.idp.find(Attr::ExternalId, &e.id));
            found.extend(self.idp.find(Attr::Id, &e.id));
        }
        found.extend(self.idp.find(Attr::UserName, &fold(&user.user_name)));
        if let Some(email) = &user.email {
            found.extend(self.idp.find(Attr::Email, &fold(email)));
        }
        found
    }

    /// The people behind `changed` (IdP users as the IdP reports them now) and what to ask
    /// Identity Center about them.
    pub fn people(&self, changed: Vec<IdpUser>) -> People {
        let mut people = People::default();
        for user in &changed {
            let before = self
                .idp
                .find(Attr::Id, &user.id)
                .next()
                .and_then(|at| self.idp.get(at));
            for version in before.into_iter().chain([user]) {
                people.remember(&version.user_name, version.email.as_deref());
                people.lookup.user_names.insert(version.user_name.clone());
                people.lookup.emails.extend(version.email.clone());
                for issuer in &self.issuers {
                    for id in version.external_id.iter().chain([&version.id]) {
                        people.lookup.external_ids.push(ExternalId {
                            issuer: issuer.clone(),
                            id: id.clone(),
                        });
                    }
                }
                for at in self.ic_of(version) {
                    let ic = self.ic.get(at).expect("found rows exist");
                    people.ic_ids.insert(ic.user_id.clone());
                    people.remember(&ic.user_name, ic.email.as_deref());
                    people.lookup.user_ids.insert(ic.user_id.clone());
                    people.lookup.user_names.insert(ic.user_name.clone());
                    people.lookup.emails.extend(ic.email.clone());
                    people
                        .lookup
                        .external_ids
                        .extend(ic.external_ids.iter().cloned());
                }
            }
        }
        people.lookup.external_ids.sort_by(|a, b| {
            (a.issuer.as_str(), a.id.as_str()).cmp(&(b.issuer.as_str(), b.id.as_str()))
        });
        people.lookup.external_ids.dedup();
        people.idp = changed;
        people
    }

    /// Every Identity Center user `lookup` asks about, as the universe holds them.
    fn held(&self, lookup: &IcLookup) -> BTreeSet<u32> {
        let mut held = BTreeSet::new();
        for id in &lookup.user_ids {
            held.extend(self.ic.find(Attr::Id, id));
        }
        for e in &lookup.external_ids {
            held.extend(self.ic.find(Attr::ExternalId, &e.id));
        }
        for name in &lookup.user_names {
            held.extend(self.ic.find(Attr::UserName, &fold(name)));
        }
        for email in &lookup.emails {
            held.extend(self.ic.find(Attr::Email, &fold(email)));
        }
        held
    }

    /// Identity Center's answer to `lookup` as it was at the last full run: what a source
    /// that has not changed since (an export not rewritten) would answer, without reading
    /// it again.
    pub fn answer(&self, lookup: &IcLookup) -> Vec<IcUser> {
        self.held(lookup)
            .into_iter()
            .filter_map(|at| self.ic.get(at).cloned())
            .collect()
    }

    /// Takes the people's IdP users as they are now and `fresh`, Identity Center's answer
    /// to their [`IcLookup`]: the users it asked about that the answer lacks are gone.
    /// Users in `fresh` the lookup did not ask about are ignored, so a source may answer
    /// with everything it has.
    pub fn apply(&mut self, people: &mut People, fresh: Vec<IcUser>) {
        for user in &people.idp {
            self.idp.put(&user.id, user.clone());
        }
        let fresh: Vec<IcUser> = fresh
            .into_iter()
            .filter(|u| people.lookup.matches(u))
            .collect();
        for at in self.held(&people.lookup) {
            let gone = self
                .ic
                .get(at)
                .is_some_and(|u| !fresh.iter().any(|f| f.user_id == u.user_id));
            if let Some(user) = gone.then(|| self.ic.remove(at)).flatten() {
                // Its findings resolve by this re-check.
                people.ic_ids.insert(user.user_id);
            }
        }
        for user in fresh {
            people.ic_ids.insert(user.user_id.clone());
            people.remember(&user.user_name, user.email.as_deref());
            self.ic.put(&user.user_id.clone(), user);
        }
        let linked: BTreeSet<u32> = people.idp.iter().flat_map(|u| self.ic_of(u)).collect();
        for at in linked {
            let ic = self.ic.get(at).expect("found rows exist");
            people.ic_ids.insert(ic.user_id.clone());
            people.remember(&ic.user_name, ic.email.as_deref());
        }
    }

    /// Every folded database user name on target `target` that the mapping rules can link
    /// to `people`: each person-login prefix, each namespace the target declares, and bare.
    /// Empty for a target the universe does not know.
    pub fn candidates(&self, people: &People, target: &str) -> Vec<String> {
        let Some(target) = self.targets.iter().find(|t| t.name == target) else {
            return Vec::new();
        };
        let prefixes: Vec<String> = self
            .mapping
            .prefixes
            .iter()
            .filter(|p| {
                !self
                    .mapping
                    .role_prefixes
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(p))
            })
            .map(|p| fold(p).into_owned())
            .chain(target.namespaces.iter().map(|ns| format!("{}:", fold(ns))))
            .collect();
        let mut names = BTreeSet::new();
        for name in &people.names {
            names.insert(name.clone());
            for prefix in &prefixes {
                names.insert(format!("{prefix}{name}"));
            }
        }
        names.into_iter().collect()
    }

    /// The findings about `people` and the database users read for them: `read` holds,
    /// per target read completely, its users whose folded names are among the target's
    /// [`candidates`](Self::candidates) (others are ignored).
    pub fn evaluate(&self, people: &People, read: Vec<(String, Vec<DbUser>)>) -> Evaluation {
        let mut subjects: HashSet<Subject> = people
            .ic_ids
            .iter()
            .map(|id| Subject {
                target: String::new(),
                subject: id.clone(),
            })
            .collect();
        let mut ic: BTreeSet<u32> = BTreeSet::new();
        for id in &people.ic_ids {
            ic.extend(self.ic.find(Attr::Id, id));
        }
        let mut targets = Vec::with_capacity(read.len());
        for (name, users) in read {
            let Some(meta) = self.targets.iter().find(|t| t.name == name) else {
                continue;
            };
            let wanted: HashSet<String> = self.candidates(people, &name).into_iter().collect();
            let users: Vec<DbUser> = users
                .into_iter()
                .filter(|u| wanted.contains(fold(&u.name).as_ref()))
                .collect();
            for user in &users {
                subjects.insert(Subject {
                    target: name.clone(),
                    subject: user.name.clone(),
                });
                let (class, rest) = classify(&self.mapping, meta, &user.name);
                if matches!(class, DbClass::Prefixed | DbClass::Bare) {
                    let rest = fold(rest);
                    for rule in &self.mapping.match_on {
                        let attr = match rule {
                            MatchOn::UserName => Attr::UserName,
                            MatchOn::Email => Attr::Email,
                        };
                        ic.extend(self.ic.find(attr, &rest));
                    }
                }
            }
            targets.push(TargetSnapshot {
                users,
                ..meta.clone()
            });
        }
        let mut idp: BTreeSet<u32> = BTreeSet::new();
        for user in &people.idp {
            idp.extend(self.idp.find(Attr::Id, &user.id));
        }
        for &at in &ic {
            idp.extend(self.idp_of(self.ic.get(at).expect("found rows exist")));
        }
        let graph = Graph::build(
            self.idp.pick(&idp),
            self.ic.pick(&ic),
            targets,
            &self.mapping,
        );
        let findings = graph
            .findings()
            .into_iter()
            .filter(|f| subjects.contains(&f.key().subject()))
            .collect();
        Evaluation { findings, subjects }
    }
}
