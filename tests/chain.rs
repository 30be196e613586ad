//! The tamper-evident run chain: `verify` passes on an untouched store, names the first
//! changed run, and a store whose runs were never sealed gets its chain on open.

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

#[test]
fn runs_recorded_before_the_chain_are_sealed_on_open() {
    let ws = three_runs_with_drift();
    // A store from before the chain: no run carries a hash.
    tamper(&ws, "UPDATE runs SET hash = NULL;");
    let (code, text) = verify(&ws);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("3 runs") && text.contains("head "), "{text}");
    let (_, history) = crate::util::json_output(ws.idgraph(&["history", "--format", "json"]));
    assert_eq!(history["runs"].as_array().unwrap().len(), 3);
}
