//! The command line as a user meets it: errors, exit statuses, text output.

use crate::util::{idgraph_with_config, json_output, stderr, stdout, Org, Workspace};

fn org() -> Org {
    Org::ann_and_bob()
        .db("analytics", "IAMA:ann@example.com", false)
        .db("analytics", "IAMA:bob@example.com", true)
        .db("analytics", "report_bot", false)
}

#[test]
fn an_unknown_key_fails_with_status_1_and_names_the_key() {
    let ws = Workspace::new(&org());
    let config = std::fs::read_to_string(ws.config()).unwrap();
    ws.write(
        "idgraph.toml",
        &config.replace("[mapping]\n", "[mapping]\nmatch_by = [\"email\"]\n"),
    );
    let output = ws.idgraph(&["reconcile"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("match_by") && err.contains("idgraph.toml"),
        "{err}"
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn a_secret_variable_not_set_is_rejected_before_any_work() {
    let ws = Workspace::new(&org());
    let config = std::fs::read_to_string(ws.config()).unwrap();
    ws.write(
        "idgraph.toml",
        &config.replace(
            "[idp]\nkind = \"file\"",
            "[idp]\nkind = \"scim\"\nurl = \"https://idp.example.com/scim/v2\"\ntoken_env = \"IDGRAPH_TEST_UNSET_TOKEN\"",
        ),
    );
    let output = ws.idgraph(&["reconcile"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("idp.token_env names the environment variable IDGRAPH_TEST_UNSET_TOKEN, which is not set"),
        "{err}"
    );
    assert!(
        !ws.path("store/idgraph.db").exists(),
        "no store before the config is valid"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let output = idgraph_with_config(
        std::path::Path::new("/nonexistent/idgraph.toml"),
        &["findings"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("/nonexistent/idgraph.toml"));
}

#[test]
fn findings_lists_what_the_last_run_left_open() {
    let ws = Workspace::new(&org());
    let (_, report) = ws.reconcile();
    let (code, findings) = json_output(ws.idgraph(&["findings", "--format", "json"]));
    assert_eq!(code, 0);
    assert_eq!(findings["findings"], report["findings"]);
    assert_eq!(findings["findings"].as_array().unwrap().len(), 3);
}

#[test]
fn text_output_counts_by_kind_and_target_then_lists_by_severity() {
    let ws = Workspace::new(&org());
    let output = ws.idgraph(&["reconcile"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let counts = text.find("orphaned_db_user ").expect("a counts row");
    let critical = text.find("CRITICAL (1)").expect("a critical section");
    let medium = text.find("MEDIUM (").expect("a medium section");
    assert!(counts < critical && critical < medium, "{text}");
    let bob = text
        .lines()
        .find(|l| l.contains("IAMA:bob@example.com"))
        .expect("bob's finding on a line of its own");
    assert!(
        bob.contains("analytics") && bob.contains("idp_user_inactive") && bob.contains("run 1"),
        "{bob}"
    );
    assert!(text.contains("Open findings: 3"), "{text}");

    let output = ws.idgraph(&["findings"]);
    assert!(stdout(&output).contains("Open findings: 3"));
    let output = ws.idgraph(&["history", "--db-user", "IAMA:bob@example.com"]);
    let text = stdout(&output);
    assert!(
        text.contains("Runs (1)") && text.contains("Episodes (1)"),
        "{text}"
    );
}

#[test]
fn a_malformed_export_is_named_with_its_position() {
    let ws = Workspace::new(&org());
    ws.write(
        "exports/scim.json",
        "{\"Resources\": [ {\"id\": \"1\", \"userName\": \"a\"},\n  {\"id\": 2} ]}",
    );
    let (code, report) = json_output(ws.idgraph(&["reconcile", "--format", "json"]));
    assert_eq!(code, 2);
    let error = report["sources"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("scim.json") && error.contains("line 2"),
        "{error}"
    );
    assert_eq!(report["findings"], serde_json::json!([]));
}

#[test]
fn check_tries_every_source_once_and_writes_nothing() {
    let ws = Workspace::new(&org());
    let output = ws.idgraph(&["check"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    for line in ["idp ", "identity_center ", "analytics "] {
        let line = text
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("no line for {line:?} in {text}"));
        assert!(
            line.contains(" ok ") && line.contains(" users in "),
            "{line}"
        );
    }
    assert!(
        !ws.path("store/idgraph.db").exists(),
        "check records nothing"
    );

    ws.remove("exports/analytics.csv");
    let output = ws.idgraph(&["check"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    let analytics = text.lines().find(|l| l.starts_with("analytics")).unwrap();
    assert!(
        analytics.contains("FAILED") && analytics.contains("analytics.csv"),
        "{analytics}"
    );
}

// Regression: `idgraph findings --format json | head -c 10` panicked and exited 101.
#[test]
fn a_reader_that_closes_early_ends_the_output_quietly() {
    let ws = Workspace::new(&org());
    ws.reconcile();
    for args in [
        &["findings", "--format", "json"][..],
        &["findings"],
        &["history", "--format", "json"],
        &["reconcile", "--format", "json"],
        &["verify"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_idgraph"))
            .args(args)
            .arg("--config")
            .arg(ws.config())
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the idgraph binary runs");
        // The read end closes before idgraph writes: its first write finds no reader.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn a_usage_error_exits_64_and_help_exits_0() {
    let ws = Workspace::new(&Org::ann_and_bob().db("a", "IAMA:ann@example.com", false));
    let output = ws.idgraph(&["reconcile", "--no-such-flag"]);
    assert_eq!(output.status.code(), Some(64));
    let output = ws.idgraph(&["reconcile", "--format", "yaml"]);
    assert_eq!(output.status.code(), Some(64));
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_idgraph"))
        .arg("--help")
        .output()
        .expect("runs");
    assert_eq!(help.status.code(), Some(0));
}

// Regression: `check` printed "config ok" and then failed on the same SCIM URL.
#[test]
fn check_refuses_an_unparseable_scim_url_before_saying_the_config_is_ok() {
    let ws = Workspace::new(&Org::ann_and_bob().db("a", "IAMA:ann@example.com", false));
    let config = std::fs::read_to_string(ws.config()).unwrap().replace(
        "[idp]\nkind = \"file\"\npath = \"exports/scim.json\"",
        "[idp]\nkind = \"scim\"\nurl = \"http://exa mple.com/scim/v2\"",
    );
    std::fs::write(ws.config(), config).unwrap();
    let output = ws.idgraph(&["check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        !stdout(&output).contains("config  ok"),
        "{}",
        stdout(&output)
    );
    assert!(stderr(&output).contains("idp.url"), "{}", stderr(&output));
}
