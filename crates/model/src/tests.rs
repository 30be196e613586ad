//! Matching rules of SPEC §2, one test each, on organisations built with [`Org`].

use crate::focus::{Evaluation, Universe};
use crate::*;

/// A small organisation: builder methods add identities, `findings` runs the graph.
#[derive(Default)]
struct Org {
    idp: Vec<IdpUser>,
    ic: Vec<IcUser>,
    targets: Vec<TargetSnapshot>,
    mapping: Mapping,
}

fn idp_user(name: &str) -> IdpUser {
    IdpUser {
        id: format!("idp-{name}"),
        external_id: Some(format!("ext-{name}")),
        user_name: format!("{name}@example.com"),
        email: Some(format!("{name}@example.com")),
        active: true,
        last_modified: None,
    }
}

fn ic_user(name: &str) -> IcUser {
    IcUser {
        user_id: format!("ic-{name}"),
        user_name: format!("{name}@example.com"),
        email: Some(format!("{name}@example.com")),
        external_ids: vec![ExternalId {
            issuer: "scim".into(),
            id: format!("ext-{name}"),
        }],
    }
}

impl Org {
    /// A person present and active in the IdP and in Identity Center.
    fn person(self, name: &str) -> Self {
        self.idp(idp_user(name)).ic(ic_user(name))
    }

    fn idp(mut self, user: IdpUser) -> Self {
        self.idp.push(user);
        self
    }

    fn ic(mut self, user: IcUser) -> Self {
        self.ic.push(user);
        self
    }

    fn db(self, target: &str, name: &str) -> Self {
        self.db_user(target, name, false)
    }

    fn db_user(mut self, target: &str, name: &str, superuser: bool) -> Self {
        let user = DbUser {
            name: name.to_owned(),
            sysid: None,
            superuser,
        };
        match self.targets.iter_mut().find(|t| t.name == target) {
            Some(t) => t.users.push(user),
            None => self.targets.push(TargetSnapshot::new(target, vec![user])),
        }
        self
    }

    fn target(mut self, name: &str, edit: impl FnOnce(&mut TargetSnapshot)) -> Self {
        if !self.targets.iter().any(|t| t.name == name) {
            self.targets.push(TargetSnapshot::new(name, Vec::new()));
        }
        edit(self.targets.iter_mut().find(|t| t.name == name).unwrap());
        self
    }

    fn graph(&self) -> Graph {
        Graph::build(
            self.idp.clone(),
            self.ic.clone(),
            self.targets.clone(),
            &self.mapping,
        )
    }

    fn findings(&self) -> Vec<Finding> {
        self.graph().findings()
    }

    /// `(kind, reason, severity, db_user or ic user id)` of every finding.
    fn summary(&self) -> Vec<(FindingKind, Reason, Severity, String)> {
        self.findings()
            .into_iter()
            .map(|f| {
                let subject = f.db_user.or(f.ic_user_id).unwrap_or_default();
                (f.kind, f.reason, f.severity, subject)
            })
            .collect()
    }
}

fn orphan(reason: Reason, db_user: &str) -> (FindingKind, Reason, Severity, String) {
    (
        FindingKind::OrphanedDbUser,
        reason,
        Severity::High,
        db_user.into(),
    )
}

#[test]
fn active_person_with_prefixed_users_is_no_finding() {
    let org = Org::default()
        .person("ann")
        .db("a", "IAMA:ann@example.com")
        .db("a", "IAM:ann@example.com")
        .db("b", "AWSIDC:ann@example.com");
    assert_eq!(org.summary(), vec![]);
    assert_eq!(org.graph().accounting().person_logins, 3);
    let (class, links) = org.graph().explain("a", "IAMA:ann@example.com").unwrap();
    assert_eq!(class, DbClass::Prefixed);
    assert_eq!(
        links,
        vec![("ic-ann".to_owned(), MatchRule::PrefixUserName)]
    );
}

#[test]
fn external_id_links_idp_and_ic_when_user_names_differ() {
    let mut ic = ic_user("ann");
    ic.user_name = "ann.old-name".into();
    ic.email = None;
    let org = Org::default().idp(idp_user("ann")).ic(ic);
    assert_eq!(org.summary(), vec![]);
    assert_eq!(
        org.graph().idp_link("ic-ann"),
        Some(("idp-ann".to_owned(), MatchRule::ExternalId))
    );
}

#[test]
fn external_id_may_equal_the_idp_id() {
    let mut ic = ic_user("ann");
    ic.user_name = "someone-else".into();
    ic.email = None;
    ic.external_ids[0].id = "idp-ann".into();
    let org = Org::default().idp(idp_user("ann")).ic(ic);
    assert_eq!(
        org.graph().idp_link("ic-ann"),
        Some(("idp-ann".to_owned(), MatchRule::IdpId))
    );
}

#[test]
fn idp_and_ic_fall_back_to_case_insensitive_user_name_then_email() {
    let mut by_name = ic_user("ann");
    by_name.external_ids.clear();
    by_name.user_name = "ANN@Example.COM".into();
    let mut by_email = ic_user("bob");
    by_email.external_ids.clear();
    by_email.user_name = "robert".into();
    by_email.email = Some("BOB@example.com".into());
    let org = Org::default()
        .idp(idp_user("ann"))
        .idp(idp_user("bob"))
        .ic(by_name)
        .ic(by_email);
    let graph = org.graph();
    assert_eq!(
        graph.idp_link("ic-ann"),
        Some(("idp-ann".to_owned(), MatchRule::UserName))
    );
    assert_eq!(
        graph.idp_link("ic-bob"),
        Some(("idp-bob".to_owned(), MatchRule::Email))
    );
    assert_eq!(org.summary(), vec![]);
}

#[test]
fn db_user_names_match_case_insensitively() {
    let org = Org::default().person("ann").db("a", "iama:ANN@EXAMPLE.com");
    assert_eq!(org.summary(), vec![]);
}

#[test]
fn match_on_falls_back_to_email() {
    let mut ic = ic_user("ann");
    ic.user_name = "ann".into();
    let org = Org::default()
        .idp(idp_user("ann"))
        .ic(ic.clone())
        .db("a", "IAMA:ann@example.com")
        .db("a", "IAMA:ann");
    let graph = org.graph();
    assert_eq!(
        graph.explain("a", "IAMA:ann@example.com").unwrap().1,
        vec![("ic-ann".to_owned(), MatchRule::PrefixEmail)]
    );
    assert_eq!(
        graph.explain("a", "IAMA:ann").unwrap().1,
        vec![("ic-ann".to_owned(), MatchRule::PrefixUserName)]
    );
    assert_eq!(org.summary(), vec![]);

    // With email matching switched off, the email-shaped login is an orphan.
    let mut org = org;
    org.mapping.match_on = vec![MatchOn::UserName];
    assert_eq!(
        org.summary(),
        vec![orphan(Reason::NoIdentityCenterUser, "IAMA:ann@example.com")]
    );
}

#[test]
fn orphan_reasons() {
    let mut inactive = idp_user("ivy");
    inactive.active = false;
    let org = Org::default()
        .ic(ic_user("gus")) // no IdP user at all
        .idp(inactive)
        .ic(ic_user("ivy"))
        .db("a", "IAM:gus@example.com")
        .db("a", "IAMA:ivy@example.com")
        .db("a", "IAMA:nobody@example.com");
    let findings = org.summary();
    assert!(findings.contains(&orphan(Reason::IdpUserMissing, "IAM:gus@example.com")));
    assert!(findings.contains(&orphan(Reason::IdpUserInactive, "IAMA:ivy@example.com")));
    assert!(findings.contains(&orphan(
        Reason::NoIdentityCenterUser,
        "IAMA:nobody@example.com"
    )));
    let nobody = org
        .findings()
        .into_iter()
        .find(|f| f.db_user.as_deref() == Some("IAMA:nobody@example.com"))
        .unwrap();
    assert_eq!(nobody.user_name.as_deref(), Some("nobody@example.com"));
    assert_eq!(nobody.ic_user_id, None);
    let ivy = org
        .findings()
        .into_iter()
        .find(|f| f.db_user.as_deref() == Some("IAMA:ivy@example.com"))
        .unwrap();
    assert_eq!(ivy.ic_user_id.as_deref(), Some("ic-ivy"));
    assert_eq!(ivy.idp_user_id.as_deref(), Some("idp-ivy"));
}

#[test]
fn stale_identity_center_users() {
    let mut inactive = idp_user("ivy");
    inactive.active = false;
    let org = Org::default()
        .person("ann")
        .ic(ic_user("gus"))
        .idp(inactive)
        .ic(ic_user("ivy"));
    let stale = |reason, id: &str| {
        (
            FindingKind::StaleIdentityCenterUser,
            reason,
            Severity::Medium,
            id.to_owned(),
        )
    };
    assert_eq!(
        org.summary(),
        vec![
            stale(Reason::IdpUserMissing, "ic-gus"),
            stale(Reason::IdpUserInactive, "ic-ivy")
        ]
    );
    let f = &org.findings()[0];
    assert_eq!((f.target.as_deref(), f.db_user.as_deref()), (None, None));
}

#[test]
fn bare_db_user_matched_by_name_is_that_persons_user() {
    let mut gone = idp_user("ivy");
    gone.active = false;
    let org = Org::default()
        .person("ann")
        .idp(gone)
        .ic(ic_user("ivy"))
        .db("a", "ann@example.com")
        .db("a", "ivy@example.com");
    assert_eq!(
        org.summary()
            .into_iter()
            .filter(|f| f.0 != FindingKind::StaleIdentityCenterUser)
            .collect::<Vec<_>>(),
        vec![orphan(Reason::IdpUserInactive, "ivy@example.com")]
    );
    assert_eq!(
        org.graph().explain("a", "ann@example.com").unwrap().1,
        vec![("ic-ann".to_owned(), MatchRule::BareUserName)]
    );
}

#[test]
fn unmatched_bare_user_is_unmanaged_and_superuser_raises_severity() {
    let org = Org::default()
        .db_user("a", "report_bot", false)
        .db_user("a", "old_admin", true)
        .db_user("a", "IAMA:gone@example.com", true);
    assert_eq!(
        org.summary(),
        vec![
            (
                FindingKind::OrphanedDbUser,
                Reason::NoIdentityCenterUser,
                Severity::Critical,
                "IAMA:gone@example.com".into()
            ),
            (
                FindingKind::UnmanagedDbUser,
                Reason::NoMatchingIdentity,
                Severity::High,
                "old_admin".into()
            ),
            (
                FindingKind::UnmanagedDbUser,
                Reason::NoMatchingIdentity,
                Severity::Medium,
                "report_bot".into()
            ),
        ]
    );
}

#[test]
fn roles_master_system_allowlisted_and_login_users_are_accounted_for() {
    let mut org = Org::default()
        .db_user("a", "IAMR:etl-role", true)
        .db_user("a", "rdsdb", true)
        .db_user("a", "awsuser", true)
        .db("a", "etl_service")
        .db("a", "IAM:idgraph_reader")
        .db("b", "idgraph_reader")
        .db("b", "IAMA:idgraph_reader")
        .target("a", |t| {
            t.master_user = Some("awsuser".into());
            t.login_user = Some("IAM:idgraph_reader".into());
        })
        .target("b", |t| t.login_user = Some("IAM:idgraph_reader".into()));
    org.mapping.local_allowlist = vec!["etl_service".into()];
    assert_eq!(org.summary(), vec![]);
    let accounting = org.graph().accounting();
    assert_eq!(
        (
            accounting.database_users,
            accounting.iam_roles,
            accounting.exempt
        ),
        (7, 1, 6)
    );

    // The master user of one target is not exempt on another.
    let org = org.db("b", "awsuser");
    assert_eq!(org.summary().len(), 1);
}

#[test]
fn user_matching_two_ic_users_is_ambiguous() {
    let mut twin = ic_user("ann");
    twin.user_id = "ic-ann-2".into();
    twin.user_name = "Ann@Example.com".into();
    let org = Org::default()
        .person("ann")
        .idp(IdpUser {
            id: "idp-ann-2".into(),
            external_id: None,
            user_name: "ann2".into(),
            email: None,
            active: true,
            last_modified: None,
        })
        .ic(twin)
        .db_user("a", "IAMA:ann@example.com", true);
    let findings = org.findings();
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(
        (f.kind, f.reason, f.severity),
        (
            FindingKind::AmbiguousMapping,
            Reason::MultipleIdentityCenterUsers,
            Severity::High
        )
    );
    assert_eq!(f.candidates, vec!["ic-ann", "ic-ann-2"]);
}

#[test]
fn a_rule_earlier_in_match_on_decides_before_ambiguity_by_a_later_one() {
    // ann's user name is "ann"; bob's email is "ann". The user name rule comes first.
    let mut ann = ic_user("ann");
    ann.user_name = "ann".into();
    let mut bob = ic_user("bob");
    bob.email = Some("ann".into());
    let org = Org::default()
        .idp(idp_user("ann"))
        .idp(idp_user("bob"))
        .ic(ann)
        .ic(bob)
        .db("a", "IAM:ann");
    assert_eq!(org.summary(), vec![]);
}

#[test]
fn rehired_person_links_to_the_active_idp_user() {
    let mut old = idp_user("ann");
    old.id = "idp-ann-old".into();
    old.external_id = None;
    old.active = false;
    let mut new = idp_user("ann");
    new.external_id = None;
    let mut ic = ic_user("ann");
    ic.external_ids.clear();
    let org = Org::default()
        .idp(old)
        .idp(new)
        .ic(ic)
        .db("a", "IAMA:ann@example.com");
    assert_eq!(org.summary(), vec![]);
}

#[test]
fn target_namespace_prefix_matches_people() {
    let org = Org::default()
        .person("ann")
        .db("a", "CORP:ann@example.com")
        .db("a", "CORP:gone@example.com")
        .target("a", |t| t.namespaces = vec!["CORP".into()]);
    assert_eq!(
        org.summary(),
        vec![orphan(
            Reason::NoIdentityCenterUser,
            "CORP:gone@example.com"
        )]
    );
}

#[test]
fn hostile_names_pass_through_intact() {
    let hostile = [
        "IAMA:o'brien\"; DROP TABLE users; --@example.com",
        "ünïcødé-ß-用户",
        &"x".repeat(127),
    ];
    let mut org = Org::default();
    for name in hostile {
        org = org.db("a;b", name);
    }
    let names: Vec<String> = org
        .findings()
        .into_iter()
        .filter_map(|f| f.db_user)
        .collect();
    let mut expected: Vec<String> = hostile.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let mut names_sorted = names.clone();
    names_sorted.sort();
    assert_eq!(names_sorted, expected);
}

#[test]
fn findings_are_sorted_most_urgent_first() {
    let org = Org::default()
        .db("a", "local")
        .db_user("a", "IAM:root@example.com", true)
        .db("a", "IAM:x@example.com");
    let severities: Vec<Severity> = org.findings().iter().map(|f| f.severity).collect();
    assert_eq!(
        severities,
        vec![Severity::Critical, Severity::High, Severity::Medium]
    );
}

// ----- targeted re-checks (focus.rs) ------------------------------------------------------

/// Re-checks the IdP users `changed` of `after` against a universe of `before`, with
/// `after`'s Identity Center and targets as the fresh answers, and returns the re-check's
/// findings with those of a full graph of `after` about the same subjects.
fn recheck(before: &Org, after: &Org, changed: &[&str]) -> (Evaluation, Vec<Finding>) {
    recheck_answered(before, after, changed, false)
}

/// [`recheck`], with Identity Center answered by the universe itself when `from_universe`
/// (as for an export unchanged since the full run), after checking that the answer is
/// what the whole of `before`'s Identity Center gives for the lookup.
fn recheck_answered(
    before: &Org,
    after: &Org,
    changed: &[&str],
    from_universe: bool,
) -> (Evaluation, Vec<Finding>) {
    let mut universe = Universe::new(
        before.idp.clone(),
        before.ic.clone(),
        &before.targets,
        &before.mapping,
    );
    let changed: Vec<IdpUser> = after
        .idp
        .iter()
        .filter(|u| changed.contains(&u.id.as_str()))
        .cloned()
        .collect();
    let mut people = universe.people(changed);
    let fresh = if from_universe {
        let mut answer = universe.answer(&people.lookup);
        let mut whole: Vec<IcUser> = before
            .ic
            .iter()
            .filter(|u| people.lookup.matches(u))
            .cloned()
            .collect();
        answer.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        whole.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        assert_eq!(answer, whole, "the universe answers as the export would");
        answer
    } else {
        after.ic.clone()
    };
    universe.apply(&mut people, fresh);
    let read = after
        .targets
        .iter()
        .map(|t| (t.name.clone(), t.users.clone()))
        .collect();
    let evaluation = universe.evaluate(&people, read);
    let full = after
        .findings()
        .into_iter()
        .filter(|f| evaluation.subjects.contains(&f.key().subject()))
        .collect();
    (evaluation, full)
}

fn estate() -> Org {
    let mut rehired = idp_user("erin");
    rehired.id = "idp-erin-old".into();
    rehired.external_id = None;
    rehired.active = false;
    let mut twin = ic_user("dave");
    twin.user_id = "ic-dave-twin".into();
    twin.user_name = "DAVE@example.com".into();
    twin.external_ids.clear();
    Org::default()
        .person("alice")
        .person("bob")
        .person("carol")
        .person("dave")
        .ic(twin)
        .idp(rehired)
        .person("erin")
        .db("a", "IAM:alice@example.com")
        .db("a", "alice@example.com")
        .db("a", "IAMA:bob@example.com")
        .db("a", "IAM:dave@example.com")
        .db("a", "IAM:erin@example.com")
        .db("a", "IAMR:loader")
        .db("a", "local_etl")
        .target("b", |t| t.namespaces = vec!["AWSIDC".into()])
        .db("b", "AWSIDC:Alice@Example.com")
        .db("b", "AWSIDC:carol@example.com")
}

#[test]
fn a_recheck_finds_a_deactivation_as_a_full_graph_does() {
    let before = estate();
    let mut after = estate();
    after
        .idp
        .iter_mut()
        .find(|u| u.id == "idp-alice")
        .unwrap()
        .active = false;
    let (evaluation, full) = recheck(&before, &after, &["idp-alice"]);
    assert_eq!(evaluation.findings, full);
    let subjects: Vec<String> = evaluation
        .findings
        .iter()
        .map(|f| f.db_user.clone().or(f.ic_user_id.clone()).unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "IAM:alice@example.com",
            "alice@example.com",
            "AWSIDC:Alice@Example.com",
            "ic-alice"
        ]
    );
    assert!(evaluation
        .findings
        .iter()
        .all(|f| f.reason == Reason::IdpUserInactive));
    // Nobody else is evaluated.
    assert!(!evaluation
        .subjects
        .iter()
        .any(|s| s.subject.contains("bob")));
}

#[test]
fn a_recheck_agrees_with_a_full_graph_on_every_kind_of_change() {
    type Edit = fn(&mut Org);
    let cases: [(&str, &[&str], Edit); 6] = [
        ("reactivation", &["idp-alice"], |org| {
            org.idp
                .iter_mut()
                .for_each(|u| u.active = u.id != "idp-bob");
        }),
        ("rename", &["idp-bob"], |org| {
            let bob = org.idp.iter_mut().find(|u| u.id == "idp-bob").unwrap();
            bob.user_name = "robert@example.com".into();
            bob.email = Some("robert@example.com".into());
            let ic = org.ic.iter_mut().find(|u| u.user_id == "ic-bob").unwrap();
            ic.user_name = "robert@example.com".into();
            ic.email = Some("robert@example.com".into());
        }),
        ("Identity Center user deleted", &["idp-carol"], |org| {
            org.idp
                .iter_mut()
                .find(|u| u.id == "idp-carol")
                .unwrap()
                .active = false;
            org.ic.retain(|u| u.user_id != "ic-carol");
        }),
        ("ambiguous twin", &["idp-dave"], |org| {
            org.idp
                .iter_mut()
                .find(|u| u.id == "idp-dave")
                .unwrap()
                .active = false;
        }),
        ("rehired person leaves again", &["idp-erin"], |org| {
            org.idp
                .iter_mut()
                .find(|u| u.id == "idp-erin")
                .unwrap()
                .active = false;
        }),
        ("a new person", &["idp-frank"], |org| {
            let mut frank = idp_user("frank");
            frank.active = false;
            org.idp.push(frank);
            org.ic.push(ic_user("frank"));
            org.targets[0].users.push(DbUser {
                name: "IAM:FRANK@example.com".into(),
                sysid: None,
                superuser: true,
            });
        }),
    ];
    for (case, changed, edit) in cases {
        let before = estate();
        let mut after = estate();
        edit(&mut after);
        let (evaluation, full) = recheck(&before, &after, changed);
        assert_eq!(evaluation.findings, full, "{case}");
        assert!(
            !evaluation.subjects.is_empty(),
            "{case}: the re-check evaluated nothing"
        );
    }
}

#[test]
fn an_unchanged_export_answered_from_the_universe_gives_the_same_recheck() {
    for changed in ["idp-alice", "idp-bob", "idp-carol", "idp-dave", "idp-erin"] {
        let before = estate();
        let mut after = estate();
        for user in after.idp.iter_mut().filter(|u| u.id == changed) {
            user.active = false;
        }
        let (evaluation, full) = recheck_answered(&before, &after, &[changed], true);
        assert_eq!(evaluation.findings, full, "{changed}");
        assert!(!evaluation.findings.is_empty(), "{changed}: found nothing");
    }
}

#[test]
fn a_renamed_person_s_old_login_is_evaluated_and_found_orphaned() {
    let before = estate();
    let mut after = estate();
    let ic = after.ic.iter_mut().find(|u| u.user_id == "ic-bob").unwrap();
    ic.user_name = "robert@example.com".into();
    ic.email = Some("robert@example.com".into());
    let bob = after.idp.iter_mut().find(|u| u.id == "idp-bob").unwrap();
    bob.user_name = "robert@example.com".into();
    bob.email = Some("robert@example.com".into());
    let (evaluation, _) = recheck(&before, &after, &["idp-bob"]);
    let old = evaluation
        .findings
        .iter()
        .find(|f| f.db_user.as_deref() == Some("IAMA:bob@example.com"))
        .expect("the old login is found");
    assert_eq!(old.reason, Reason::NoIdentityCenterUser);
}
