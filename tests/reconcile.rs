//! Reconciliation over file exports: findings, drift between runs, failure semantics.

use crate::util::{row, summary, Org, Workspace};

const HOSTILE: &str = "IAMA:o'brien\"; DROP TABLE runs; --@example.com";

fn org() -> Org {
    Org::ann_and_bob()
        .person("cat@example.com")
        .edit(|p| p.in_idp = false)
        .db("analytics", "awsuser", true)
        .db("analytics", "rdsdb", true)
        .db("analytics", "IAMA:ann@example.com", false)
        .db("analytics", "IAMA:bob@example.com", true)
        .db("analytics", "IAM:cat@example.com", false)
        .db("analytics", "IAMR:loader", false)
        .db("analytics", "report_bot", false)
        .db("finance", "bob@example.com", false)
        .db("finance", "IAMA:gone@example.com", false)
        .db("finance", HOSTILE, false)
}

#[test]
fn findings_of_every_kind_with_reasons_and_severities() {
    let ws = Workspace::new(&org());
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"], "complete");
    assert_eq!(report["run_id"], 1);
    assert_eq!(
        summary(&report["findings"]),
        vec![
            row(
                "orphaned_db_user",
                "idp_user_inactive",
                "critical",
                "analytics",
                "IAMA:bob@example.com"
            ),
            row(
                "orphaned_db_user",
                "idp_user_inactive",
                "high",
                "finance",
                "bob@example.com"
            ),
            row(
                "orphaned_db_user",
                "idp_user_missing",
                "high",
                "analytics",
                "IAM:cat@example.com"
            ),
            row(
                "orphaned_db_user",
                "no_identity_center_user",
                "high",
                "finance",
                "IAMA:gone@example.com"
            ),
            row(
                "orphaned_db_user",
                "no_identity_center_user",
                "high",
                "finance",
                HOSTILE
            ),
            row(
                "stale_identity_center_user",
                "idp_user_inactive",
                "medium",
                "",
                "bob@example.com"
            ),
            row(
                "stale_identity_center_user",
                "idp_user_missing",
                "medium",
                "",
                "cat@example.com"
            ),
            row(
                "unmanaged_db_user",
                "no_matching_identity",
                "medium",
                "analytics",
                "report_bot"
            ),
        ]
    );
    let stale = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "stale_identity_center_user")
        .unwrap();
    assert!(stale["target"].is_null() && stale["db_user"].is_null());
    for f in report["findings"].as_array().unwrap() {
        assert_eq!(f["first_seen_run"], 1);
        assert!(f["first_seen_at"].as_str().unwrap().ends_with('Z'));
    }
    let sources = report["sources"].as_array().unwrap();
    let names: Vec<&str> = sources
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["idp", "identity_center", "analytics", "finance"]);
    assert!(sources
        .iter()
        .all(|s| s["status"] == "ok" && s["error"].is_null()));
    assert_eq!(sources[2]["objects"], 7);
    assert_eq!(report["resolved"], serde_json::json!([]));
}

#[test]
fn a_dropped_user_is_resolved_and_the_others_keep_their_first_run() {
    let ws = Workspace::new(&org());
    assert_eq!(ws.reconcile().0, 0);
    assert_eq!(ws.reconcile().0, 0);

    ws.write_org(&org().without_db("finance", "IAMA:gone@example.com"));
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0);
    assert_eq!(report["run_id"], 3);
    assert_eq!(
        summary(&report["resolved"]),
        vec![row(
            "orphaned_db_user",
            "no_identity_center_user",
            "high",
            "finance",
            "IAMA:gone@example.com"
        )]
    );
    assert_eq!(report["resolved"][0]["first_seen_run"], 1);
    assert_eq!(report["resolved"][0]["resolved_run"], 3);
    let open = report["findings"].as_array().unwrap();
    assert_eq!(open.len(), 7);
    assert!(open.iter().all(|f| f["first_seen_run"] == 1));

    // It comes back: a new episode, first seen in run 4.
    ws.write_org(&org());
    let (_, report) = ws.reconcile();
    let back = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["db_user"] == "IAMA:gone@example.com")
        .unwrap();
    assert_eq!(back["first_seen_run"], 4);
    assert_eq!(report["opened"].as_array().unwrap().len(), 1);
}

#[test]
fn a_missing_identity_center_export_makes_the_run_partial_and_changes_nothing() {
    let ws = Workspace::new(&org());
    let (_, first) = ws.reconcile();

    ws.remove("exports/identitystore.json");
    // Everything would look orphaned or resolved if the failure were ignored.
    ws.write_org(&org().without_db("finance", "IAMA:gone@example.com"));
    ws.remove("exports/identitystore.json");
    let (code, report) = ws.reconcile();
    assert_eq!(code, 2);
    assert_eq!(report["status"], "partial");
    let ic = &report["sources"][1];
    assert_eq!(
        (ic["name"].as_str(), ic["status"].as_str()),
        (Some("identity_center"), Some("failed"))
    );
    assert!(ic["objects"].is_null());
    assert!(
        ic["error"].as_str().unwrap().contains("identitystore.json"),
        "{ic}"
    );
    assert_eq!(summary(&report["findings"]), summary(&first["findings"]));
    assert_eq!(report["resolved"], serde_json::json!([]));
    assert_eq!(report["opened"], serde_json::json!([]));

    // The next good run resolves what really went away, and only that.
    ws.write_org(&org().without_db("finance", "IAMA:gone@example.com"));
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0);
    assert_eq!(summary(&report["resolved"]).len(), 1);
}

#[test]
fn a_failed_target_keeps_its_findings_while_the_others_move_on() {
    let ws = Workspace::new(&org());
    ws.reconcile();
    let next = org()
        .without_db("analytics", "report_bot")
        .without_db("finance", "IAMA:gone@example.com");
    ws.write_org(&next);
    ws.write("exports/finance.csv", "usename,usesuper\nx,maybe\n");
    let (code, report) = ws.reconcile();
    assert_eq!(code, 2);
    let finance = &report["sources"][3];
    assert_eq!(finance["status"], "failed");
    let error = finance["error"].as_str().unwrap();
    assert!(
        error.contains("finance.csv") && error.contains("line 2"),
        "{error}"
    );
    // analytics was seen completely: report_bot is resolved. finance was not: gone stays.
    assert_eq!(
        summary(&report["resolved"]),
        vec![row(
            "unmanaged_db_user",
            "no_matching_identity",
            "medium",
            "analytics",
            "report_bot"
        )]
    );
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["db_user"] == "IAMA:gone@example.com"));
}

#[test]
fn unchanged_runs_grow_the_store_by_less_than_8_kib_each() {
    let mut org = org();
    for i in 0..200 {
        org = org.db("analytics", &format!("IAMA:left{i}@example.com"), false);
    }
    let ws = Workspace::new(&org);
    assert_eq!(ws.reconcile().0, 0);
    let before = ws.store_size();
    for _ in 0..20 {
        assert_eq!(ws.reconcile().0, 0);
    }
    let growth = ws.store_size() - before;
    assert!(
        growth < 20 * 8 * 1024,
        "20 unchanged runs grew the store by {growth} bytes"
    );
    let (_, history) = crate::util::json_output(ws.idgraph(&["history", "--format", "json"]));
    assert_eq!(history["runs"].as_array().unwrap().len(), 21);
}

#[test]
fn hostile_names_come_back_intact_in_json_and_history() {
    let names = [
        HOSTILE.to_owned(),
        "ünïcødé-用户".to_owned(),
        "x".repeat(127),
        "line\nbreak, \"quoted\"".to_owned(),
    ];
    let mut org = Org::default();
    for name in &names {
        org = org.db("a;b'c", name, false);
    }
    let ws = Workspace::new(&org);
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0, "{report}");
    let mut got: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["db_user"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(got, want);
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["target"] == "a;b'c"));

    let (_, history) = crate::util::json_output(ws.idgraph(&[
        "history",
        "--db-user",
        HOSTILE,
        "--format",
        "json",
    ]));
    let episodes = history["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), 1);
    assert_eq!(episodes[0]["db_user"], HOSTILE);
}

#[test]
fn match_on_email_only_is_honoured() {
    let org = Org::default()
        .person("ann@example.com")
        .db("a", "IAMA:ann@example.com", false);
    let ws = Workspace::with_mapping(&org, "match_on = [\"email\"]");
    assert_eq!(ws.reconcile().1["findings"], serde_json::json!([]));
    let ws = Workspace::with_mapping(&org, "prefixes = [\"IAM:\"]\nlocal_allowlist = []");
    assert_eq!(
        summary(&ws.reconcile().1["findings"]),
        vec![row(
            "unmanaged_db_user",
            "no_matching_identity",
            "medium",
            "a",
            "IAMA:ann@example.com"
        )]
    );
}

// Regression: a peer that never answers held the run for as long as it liked.
#[test]
fn a_target_that_never_answers_fails_at_its_deadline() {
    let (_silent, target) = crate::util::silent_target(1);
    let ws = Workspace::with_targets(&org(), &target);
    let output = ws.idgraph_env(
        &["reconcile", "--format", "json"],
        &[("SILENT_USER", "reader")],
    );
    let (code, report) = crate::util::json_output(output);
    assert_eq!(code, 2, "{report}");
    let silent = report["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["name"] == "silent")
        .expect("the silent target");
    assert_eq!(silent["status"], "failed");
    assert!(
        silent["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not finish within deadline_seconds = 1")),
        "{silent}"
    );
    // The other targets were evaluated as usual.
    assert_eq!(
        report["findings"].as_array().expect("findings").len(),
        8,
        "{report}"
    );
}

// Regression: a target removed from the config kept its findings open forever.
#[test]
fn a_removed_target_resolves_its_findings_as_removed() {
    let ws = Workspace::new(&org());
    let (code, first) = ws.reconcile();
    assert_eq!(code, 0, "{first}");
    let config = std::fs::read_to_string(ws.config()).unwrap();
    let start = config
        .find("[[targets]]\nname = \"finance\"")
        .expect("finance");
    let end = start + config[start..].find("\n\n").expect("end of table") + 2;
    std::fs::write(
        ws.config(),
        format!("{}{}", &config[..start], &config[end..]),
    )
    .unwrap();

    let output = ws.idgraph(&["reconcile", "--format", "json"]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.contains("no longer configured"), "{stderr}");
    let (code, report) = crate::util::json_output(output);
    assert_eq!(code, 0, "{report}");
    let resolved = report["resolved"].as_array().expect("resolved");
    assert_eq!(resolved.len(), 3, "{report}");
    for finding in resolved {
        assert_eq!(finding["target"], "finance");
        assert_eq!(finding["resolution"], "target_removed");
    }
    assert!(report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .all(|f| f["target"] != "finance"));
    // Recorded as such, and part of the chain.
    let history = ws.idgraph(&["history"]);
    assert!(String::from_utf8_lossy(&history.stdout).contains("(target removed from the config)"));
    assert_eq!(ws.idgraph(&["verify"]).status.code(), Some(0));
    // The next run has nothing left to resolve.
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0);
    assert_eq!(report["resolved"], serde_json::json!([]));
}

// Regression: `IDGRAPH__MAPPING__LOCAL_ALLOWLIST=a,b` failed with "expected a sequence",
// blaming the configuration file.
#[test]
fn a_list_from_the_environment_takes_comma_separated_values() {
    let ws = Workspace::new(&org());
    let output = ws.idgraph_env(
        &["reconcile", "--format", "json"],
        &[("IDGRAPH__MAPPING__LOCAL_ALLOWLIST", "report_bot, other_bot")],
    );
    let (code, report) = crate::util::json_output(output);
    assert_eq!(code, 0, "{report}");
    let findings = summary(&report["findings"]);
    assert!(
        findings.iter().all(|f| f.4 != "report_bot"),
        "the allowlisted user is a finding: {findings:?}"
    );

    // A bad value names its variable, not the file.
    let output = ws.idgraph_env(&["check"], &[("IDGRAPH__MAPPING__MATCH_ON", "email,phone")]);
    assert_ne!(output.status.code(), Some(0));
    let stderr = crate::util::stderr(&output);
    assert!(stderr.contains("IDGRAPH__MAPPING__MATCH_ON"), "{stderr}");
    assert!(!stderr.contains("idgraph.toml"), "{stderr}");
}
