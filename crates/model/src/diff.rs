//! What changed between the findings open before a run and the findings of the run.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};

use crate::finding::{Finding, FindingKey, Scope, Subject};

/// The changes a run makes to the set of open findings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes<'a> {
    /// Findings not open before: each starts a new episode.
    pub opened: Vec<&'a Finding>,
    /// Findings still open whose details (reason, severity, matched identities) changed.
    pub updated: Vec<&'a Finding>,
    /// Keys of open findings the run no longer sees: their episodes end.
    pub resolved: Vec<FindingKey>,
    /// Keys of open findings of targets no longer configured ([`Scope::RemovedTarget`]):
    /// their episodes end as removed, not as fixed.
    pub retired: Vec<FindingKey>,
}

/// Compares `open` (the findings open before the run, or anything holding them, such as
/// the store's episodes) with `found` (this run's findings).
///
/// Only findings in `evaluated` scopes may open or resolve: a scope whose sources were not
/// fetched completely keeps its open findings as they are (SPEC §3).
pub fn diff<'a, V: Borrow<Finding>>(
    open: &HashMap<FindingKey, V>,
    found: &'a [Finding],
    evaluated: &HashSet<Scope>,
) -> Changes<'a> {
    let mut changes = Changes::default();
    let mut seen = HashSet::with_capacity(found.len());
    for finding in found {
        if !evaluated.contains(&finding.scope()) {
            continue;
        }
        let key = finding.key();
        match open.get(&key) {
            None => changes.opened.push(finding),
            Some(before) if Borrow::<Finding>::borrow(before) != finding => {
                changes.updated.push(finding)
            }
            Some(_) => {}
        }
        seen.insert(key);
    }
    for (key, before) in open {
        let before: &Finding = before.borrow();
        if evaluated.contains(&before.scope()) && !seen.contains(key) {
            changes.resolved.push(key.clone());
        } else if let Some(target) = &before.target {
            if evaluated.contains(&Scope::RemovedTarget(target.clone())) {
                changes.retired.push(key.clone());
            }
        }
    }
    changes.resolved.sort();
    changes.retired.sort();
    changes
}

/// [`diff`] for a run that evaluated only some `subjects` (a targeted re-check): it opens,
/// updates and resolves only findings of kinds the graph derives
/// ([`FindingKind::from_graph`](crate::FindingKind::from_graph)) about those subjects, and
/// leaves every other open finding as it is.
pub fn diff_within<'a, V: Borrow<Finding>>(
    open: &HashMap<FindingKey, V>,
    found: &'a [Finding],
    evaluated: &HashSet<Scope>,
    subjects: &HashSet<Subject>,
) -> Changes<'a> {
    let inside = |key: &FindingKey| key.kind.from_graph() && subjects.contains(&key.subject());
    let open: HashMap<FindingKey, &Finding> = open
        .iter()
        .filter(|(key, _)| inside(key))
        .map(|(key, finding)| (key.clone(), finding.borrow()))
        .collect();
    let mut changes = diff(&open, found, evaluated);
    let keep = |finding: &&Finding| inside(&finding.key());
    changes.opened.retain(keep);
    changes.updated.retain(keep);
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{FindingKind, Reason, Severity};

    fn orphan(target: &str, db_user: &str) -> Finding {
        Finding {
            kind: FindingKind::OrphanedDbUser,
            reason: Reason::IdpUserInactive,
            severity: Severity::High,
            target: Some(target.to_owned()),
            db_user: Some(db_user.to_owned()),
            ic_user_id: None,
            idp_user_id: None,
            user_name: None,
            superuser: false,
            matched_by: None,
            candidates: Vec::new(),
            logins: None,
        }
    }

    fn open(findings: &[Finding]) -> HashMap<FindingKey, Finding> {
        findings.iter().map(|f| (f.key(), f.clone())).collect()
    }

    #[test]
    fn opens_new_keeps_existing_resolves_gone() {
        let before = open(&[orphan("a", "IAM:kept"), orphan("a", "IAM:gone")]);
        let found = [orphan("a", "IAM:kept"), orphan("a", "IAM:new")];
        let scopes = HashSet::from([Scope::Target("a".into())]);
        let changes = diff(&before, &found, &scopes);
        assert_eq!(changes.opened, vec![&found[1]]);
        assert!(changes.updated.is_empty());
        assert_eq!(changes.resolved, vec![orphan("a", "IAM:gone").key()]);
    }

    #[test]
    fn unevaluated_scope_neither_opens_nor_resolves() {
        let before = open(&[orphan("down", "IAM:x")]);
        let found = [orphan("down", "IAM:y")];
        let changes = diff(&before, &found, &HashSet::from([Scope::IdentityCenter]));
        assert_eq!(changes, Changes::default());
    }

    #[test]
    fn changed_reason_updates_the_same_episode() {
        let before = open(&[orphan("a", "IAM:x")]);
        let mut now = orphan("a", "IAM:x");
        now.reason = Reason::NoIdentityCenterUser;
        let found = [now];
        let changes = diff(&before, &found, &HashSet::from([Scope::Target("a".into())]));
        assert!(changes.opened.is_empty() && changes.resolved.is_empty());
        assert_eq!(changes.updated, vec![&found[0]]);
    }

    #[test]
    fn a_scoped_run_changes_only_its_subjects() {
        let before = open(&[orphan("a", "IAM:outside"), orphan("a", "IAM:gone")]);
        let found = [orphan("a", "IAM:new"), orphan("a", "IAM:unasked")];
        let subjects = HashSet::from([
            Subject {
                target: "a".into(),
                subject: "IAM:gone".into(),
            },
            Subject {
                target: "a".into(),
                subject: "IAM:new".into(),
            },
        ]);
        let scopes = HashSet::from([Scope::Target("a".into())]);
        let changes = diff_within(&before, &found, &scopes, &subjects);
        assert_eq!(changes.opened, vec![&found[0]]);
        assert_eq!(changes.resolved, vec![orphan("a", "IAM:gone").key()]);
    }

    #[test]
    fn a_removed_target_retires_its_findings_and_nothing_else() {
        let before = open(&[orphan("gone", "IAM:x"), orphan("kept", "IAM:y")]);
        let scopes = HashSet::from([Scope::RemovedTarget("gone".into())]);
        let changes = diff(&before, &[], &scopes);
        assert_eq!(changes.retired, vec![orphan("gone", "IAM:x").key()]);
        assert!(changes.resolved.is_empty() && changes.opened.is_empty());
    }
}
