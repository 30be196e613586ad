//! Suspicious snapshots (SPEC §3): a source that became empty, shrank far below its last
//! complete snapshot, repeats an id, or lacks its master user fails instead of opening or
//! resolving findings, until an operator confirms a real shrink with `--accept-shrink`.

use serde_json::Value;

use crate::util::{Org, Workspace};

/// Ann, Bob (left) and 40 colleagues, with a database user each on `analytics`, and Bob's
/// bare login on `finance`.
fn org() -> Org {
    let mut org = Org::ann_and_bob()
        .db("analytics", "IAMA:ann@example.com", false)
        .db("analytics", "IAMA:bob@example.com", true)
        .db("finance", "bob@example.com", false);
    for i in 0..40 {
        let login = format!("p{i:02}@example.com");
        org = org
            .person(&login)
            .db("analytics", &format!("IAMA:{login}"), false);
    }
    org
}

/// The source of `report` named `name`.
fn source<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no source {name} in {report}"))
}

/// Asserts a partial run that failed `name` as suspicious, mentioning `what`, and changed
/// nothing.
fn assert_suspicious(code: i32, report: &Value, name: &str, what: &str) {
    assert_eq!(code, 2, "{report}");
    assert_eq!(report["status"], "partial");
    let source = source(report, name);
    assert_eq!(source["status"], "failed", "{source}");
    let error = source["error"].as_str().expect("an error");
    assert!(error.contains("suspicious snapshot"), "{error}");
    assert!(error.contains(what), "{error}");
    assert_eq!(report["opened"], serde_json::json!([]), "{report}");
    assert_eq!(report["resolved"], serde_json::json!([]), "{report}");
}

fn first_run(org: &Org) -> Workspace {
    let ws = Workspace::new(org);
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0, "{report}");
    // Bob's two logins and his Identity Center user.
    assert_eq!(report["findings"].as_array().expect("findings").len(), 3);
    ws
}

fn scim_empty() -> String {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "Resources": [],
    })
    .to_string()
}

// Regression: an IdP answering `totalResults: 0` opened a finding for everyone.
#[test]
fn an_idp_that_becomes_empty_changes_nothing() {
    let ws = first_run(&org());
    ws.write("exports/scim.json", &scim_empty());
    let (code, report) = ws.reconcile();
    assert_suspicious(
        code,
        &report,
        "idp",
        "is empty but the last complete one held 42",
    );
    assert_eq!(report["findings"].as_array().expect("findings").len(), 3);
}

// Regression: an empty Identity Center export opened and resolved findings.
#[test]
fn an_identity_center_that_becomes_empty_changes_nothing() {
    let ws = first_run(&org());
    ws.write("exports/identitystore.json", r#"{"Users": []}"#);
    let (code, report) = ws.reconcile();
    assert_suspicious(code, &report, "identity_center", "is empty");
}

// Regression: a pg_user export holding only its header resolved that target's findings,
// the critical one included.
#[test]
fn a_catalog_with_only_its_header_resolves_nothing() {
    let ws = first_run(&org());
    ws.write(
        "exports/analytics.csv",
        "usename,usesysid,usecreatedb,usesuper,valuntil\n",
    );
    let (code, report) = ws.reconcile();
    assert_suspicious(code, &report, "analytics", "master user \"awsuser\"");
    let critical = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] == "critical")
        .count();
    assert_eq!(critical, 1, "{report}");
}

#[test]
fn a_catalog_without_its_master_user_has_not_been_read() {
    let ws = first_run(&org());
    let without_master = org()
        .pg_user_csv("analytics")
        .replace("awsuser,100,t,t,\n", "");
    ws.write("exports/analytics.csv", &without_master);
    let (code, report) = ws.reconcile();
    assert_suspicious(code, &report, "analytics", "lacks the target's master user");
    // The other target was read and evaluated as usual.
    assert_eq!(source(&report, "finance")["status"], "ok");
}

#[test]
fn a_large_shrink_fails_until_the_operator_accepts_it_once() {
    let ws = first_run(&org());
    // 30 of the 42 people leave the IdP at once: more than 20 % and at least 25.
    let mut shrunk = org();
    for person in shrunk.people.iter_mut().skip(12) {
        person.in_idp = false;
    }
    ws.write("exports/scim.json", &shrunk.scim_json().to_string());
    let (code, report) = ws.reconcile();
    assert_suspicious(
        code,
        &report,
        "idp",
        "shrank from 42 to 12 users (-30, -71%)",
    );
    let error = source(&report, "idp")["error"].as_str().expect("error");
    assert!(error.contains("--accept-shrink idp"), "{error}");
    // Still suspicious on the next run: nothing confirmed it.
    let (code, _) = ws.reconcile();
    assert_eq!(code, 2);

    let output = ws.idgraph(&["reconcile", "--format", "json", "--accept-shrink", "idp"]);
    let (code, report) = crate::util::json_output(output);
    assert_eq!(code, 0, "{report}");
    assert_eq!(source(&report, "idp")["objects"], 12);
    // The 30 missing people's logins are orphans now.
    assert_eq!(report["opened"].as_array().expect("opened").len(), 60);

    // The accepted snapshot is the new baseline: the next run needs no confirmation.
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["opened"], serde_json::json!([]));
}

#[test]
fn a_small_shrink_is_normal_drift() {
    let ws = first_run(&org());
    // 24 people leave: over 20 % of 42, but fewer than 25.
    let mut shrunk = org();
    for person in shrunk.people.iter_mut().skip(18) {
        person.in_idp = false;
    }
    ws.write("exports/scim.json", &shrunk.scim_json().to_string());
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["opened"].as_array().expect("opened").len(), 48);
}

#[test]
fn accept_shrink_names_a_configured_source() {
    let ws = first_run(&org());
    let output = ws.idgraph(&["reconcile", "--accept-shrink", "idq"]);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--accept-shrink idq: no such source"),
        "{stderr}"
    );
    assert!(
        stderr.contains("idp, identity_center, analytics, finance"),
        "{stderr}"
    );
}

// Regression: a usename listed twice made the store reject the whole run, on every run.
#[test]
fn a_repeated_usename_fails_that_target_alone() {
    let ws = first_run(&org());
    let twice = org().pg_user_csv("finance") + "bob@example.com,150,f,f,\n";
    ws.write("exports/finance.csv", &twice);
    let (code, report) = ws.reconcile();
    assert_eq!(code, 2, "{report}");
    let finance = source(&report, "finance");
    assert_eq!(finance["status"], "failed");
    let error = finance["error"].as_str().expect("error");
    assert!(
        error.contains("two users share the usename \"bob@example.com\""),
        "{error}"
    );
    assert_eq!(source(&report, "analytics")["status"], "ok");
    // The run was recorded, and the next one after the fix is complete again.
    assert_eq!(report["run_id"], 2);
    ws.write("exports/finance.csv", &org().pg_user_csv("finance"));
    assert_eq!(ws.reconcile().0, 0);
}

// Regression: two IdP users with one id kept one of them; the other person vanished.
#[test]
fn a_repeated_idp_id_fails_the_idp() {
    let ws = first_run(&org());
    let mut scim = org().scim_json();
    let users = scim["Resources"].as_array_mut().expect("resources");
    users[1]["id"] = users[0]["id"].clone();
    // Without totalResults nothing else would notice.
    scim.as_object_mut().expect("object").remove("totalResults");
    ws.write("exports/scim.json", &scim.to_string());
    let (code, report) = ws.reconcile();
    assert_suspicious(
        code,
        &report,
        "idp",
        "two users share the id \"idp-ann@example.com\"",
    );
}
