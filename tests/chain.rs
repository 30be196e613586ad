//! The tamper-evident run chain: `verify` passes on an untouched store, names the first
//! changed run or episode, never writes, and checks against a head kept elsewhere.

use std::process::Command;

use crate::util::{Org, Workspace};

fn org() -> Org {
    Org::ann_and_bob()
        .db("a", "IAMA:ann@example.com", false)
        .db("a", "IAMA:bob@example.com", false)
        .db("a", "IAMA:gone@example.com", false)
}

/// Runs SQL on the store with Python's sqlite3, as someone editing the file would.
fn tamper(ws: &Workspace, sql: &str) {
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
        ])
        .arg(ws.path("store/idgraph.db"))
        .arg(sql)
        .status()
        .expect("python3 runs");
    assert!(status.success());
}

fn three_runs_with_drift() -> Workspace {
    let ws = Workspace::new(&org());
    assert_eq!(ws.reconcile().0, 0);
    ws.write_org(&org().without_db("a", "IAMA:gone@example.com"));
    assert_eq!(ws.reconcile().0, 0);
    ws.write_org(&org().db("a", "old_dba", true));
    assert_eq!(ws.reconcile().0, 0);
    ws
}

fn verify(ws: &Workspace) -> (i32, String) {
    let output = ws.idgraph(&["verify"]);
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn verify_passes_then_names_the_first_changed_run() {
    let ws = three_runs_with_drift();
    let (code, text) = verify(&ws);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("3 runs"), "{text}");

    // Someone rewrites history: what run 2 resolved, run 3 resolved a run later.
    tamper(
        &ws,
        "UPDATE episodes SET resolved_run = 3 WHERE resolved_run = 2;",
    );
    let (code, text) = verify(&ws);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("Run 2 does not match"), "{text}");
}

#[test]
fn a_changed_run_row_is_found() {
    let ws = three_runs_with_drift();
    tamper(&ws, "UPDATE runs SET status = 'complete', finished_at = '2020-01-01T00:00:00.000Z' WHERE id = 3;");
    let (code, text) = verify(&ws);
    assert_eq!(code, 3);
    assert!(text.contains("Run 3 does not match"), "{text}");
}

/// The SHA-256 of the store file, to show a command left it as it was.
fn store_digest(ws: &Workspace) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        std::fs::read(ws.path("store/idgraph.db")).expect("the store exists"),
    ))
}

// Regression: opening a store sealed every run whose hash was NULL, so nulling the hashes
// after editing a run made `verify` (a read-only audit command) re-seal and pass.
#[test]
fn nulling_the_hashes_after_an_edit_is_found_and_never_resealed() {
    let ws = three_runs_with_drift();
    tamper(
        &ws,
        "UPDATE runs SET finished_at = '2020-01-01T00:00:00.000Z' WHERE id = 2; \
         UPDATE runs SET hash = NULL;",
    );
    let before = store_digest(&ws);
    let (code, text) = verify(&ws);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("Run 1 does not match"), "{text}");
    for args in [&["verify"][..], &["findings"], &["history"]] {
        ws.idgraph(args);
        assert_eq!(store_digest(&ws), before, "{args:?} wrote to the store");
    }
    ws.export_everything("bundle");
    assert_eq!(store_digest(&ws), before, "export wrote to the store");
    // A writing command does not seal them either.
    assert_eq!(ws.reconcile().0, 0);
    assert_eq!(verify(&ws).0, 3);
}

#[test]
fn a_changed_episode_detail_is_found() {
    let ws = three_runs_with_drift();
    // Someone makes an orphan look like somebody else's, or not a superuser.
    tamper(
        &ws,
        "UPDATE episodes SET user_name = 'someone.else@example.com', superuser = 0 WHERE id = 1;",
    );
    let (code, text) = verify(&ws);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("Episode 1 differs"), "{text}");
    // Changing the recorded version as well breaks the run that wrote it.
    tamper(&ws, "UPDATE episode_versions SET user_name = 'someone.else@example.com', superuser = 0 WHERE episode_id = 1;");
    let (code, text) = verify(&ws);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("Run 1 does not match"), "{text}");
}

#[test]
fn removing_the_newest_runs_is_found_only_against_an_expected_head() {
    let ws = Workspace::new(&org());
    assert_eq!(ws.reconcile().0, 0);
    ws.write_org(&org().without_db("a", "IAMA:gone@example.com"));
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0);
    let head = report["chain_head"]
        .as_str()
        .expect("a chain head")
        .to_owned();
    assert_eq!(head.len(), 64);
    // Run 2 resolved an episode; deleting it cleanly leaves a shorter, valid chain.
    tamper(
        &ws,
        "UPDATE episodes SET resolved_run = NULL WHERE resolved_run = 2; \
         DELETE FROM episode_versions WHERE run_id = 2; \
         DELETE FROM run_sources WHERE run_id = 2; DELETE FROM runs WHERE id = 2;",
    );
    assert_eq!(verify(&ws).0, 0, "undetectable from inside the file");
    let output = ws.idgraph(&["verify", "--expect-head", &head]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(
        text.contains(&format!("not at the expected head {head}")),
        "{text}"
    );
}

#[test]
fn verify_passes_against_the_head_the_last_run_reported() {
    let ws = Workspace::new(&org());
    let (_, report) = ws.reconcile();
    let head = report["chain_head"].as_str().expect("a chain head");
    let output = ws.idgraph(&["verify", "--expect-head", head]);
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn verify_without_a_store_fails_and_creates_nothing() {
    let ws = Workspace::new(&org());
    let output = ws.idgraph(&["verify"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no store at"), "{stderr}");
    for command in ["findings", "history"] {
        assert_eq!(ws.idgraph(&[command]).status.code(), Some(1));
    }
    assert!(!ws.path("store/idgraph.db").exists());
}

#[test]
fn a_changed_resolution_is_found() {
    let ws = three_runs_with_drift();
    // Someone passes off a finding that was fixed as one whose target went away, or back.
    tamper(
        &ws,
        "UPDATE episodes SET resolution = 'target_removed' WHERE resolved_run = 2;",
    );
    let (code, text) = verify(&ws);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("Run 2 does not match"), "{text}");
}
