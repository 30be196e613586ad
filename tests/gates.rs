//! What CI jobs and cron wrappers rely on: exit statuses that cannot be confused, gates on
//! findings, filters, JSON from every command, colour only where it is wanted, and the
//! completions and man page generated from the command line's own definition.

use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{json_output, stdout, Org, Workspace};

/// bob left and his database user is a superuser (critical); report_bot is unmanaged
/// (medium); bob's Identity Center user is stale (medium).
fn org() -> Org {
    Org::ann_and_bob()
        .db("analytics", "IAMA:ann@example.com", false)
        .db("analytics", "IAMA:bob@example.com", true)
        .db("analytics", "report_bot", false)
        .db("finance", "ledger_bot", false)
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn help_lists_every_exit_status() {
    let output = Command::new(env!("CARGO_BIN_EXE_idgraph"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = stdout(&output);
    for line in [
        "0   success",
        "1   a bad",
        "2   reconcile: a partial run",
        "3   verify",
        "4   reconcile, findings",
        "64  a usage error",
    ] {
        assert!(help.contains(line), "{line:?} in\n{help}");
    }
}

#[test]
fn fail_on_exits_4_at_or_above_the_severity() {
    let ws = Workspace::new(&org());
    let run = |severity: &str| {
        ws.idgraph(&["reconcile", "--format", "json", "--fail-on", severity])
            .status
            .code()
    };
    assert_eq!(run("critical"), Some(4));
    assert_eq!(run("medium"), Some(4));
    let findings = |args: &[&str]| {
        let mut all = vec!["findings", "--fail-on"];
        all.extend_from_slice(args);
        ws.idgraph(&all).status.code()
    };
    assert_eq!(findings(&["critical"]), Some(4));
    // finance holds only an unmanaged user (medium).
    assert_eq!(findings(&["high", "--target", "finance"]), Some(0));
    assert_eq!(findings(&["medium", "--target", "finance"]), Some(4));
    assert_eq!(ws.idgraph(&["findings"]).status.code(), Some(0));
    let bad = ws.idgraph(&["findings", "--fail-on", "severe"]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("medium, high, critical"));
}

#[test]
fn findings_filter_by_kind_severity_and_target() {
    let ws = Workspace::new(&org());
    let (code, _) = ws.reconcile();
    assert_eq!(code, 0);
    let kinds = |args: &[&str]| -> Vec<(String, String, String)> {
        let mut all = vec!["findings", "--format", "json"];
        all.extend_from_slice(args);
        let output = ws.idgraph(&all);
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        json(&output)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or("").to_owned();
                (s("kind"), s("severity"), s("target"))
            })
            .collect()
    };
    let all = kinds(&[]);
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(
        kinds(&["--kind", "orphaned_db_user"]),
        vec![(
            "orphaned_db_user".into(),
            "critical".into(),
            "analytics".into()
        )]
    );
    assert!(kinds(&["--severity", "medium"])
        .iter()
        .all(|(_, s, _)| s == "medium"));
    assert_eq!(kinds(&["--severity", "medium"]).len(), 3);
    assert_eq!(
        kinds(&[
            "--target",
            "finance",
            "--target",
            "analytics",
            "--kind",
            "unmanaged_db_user"
        ])
        .len(),
        2
    );
}

#[test]
fn history_takes_a_period_and_a_limit() {
    let ws = Workspace::new(&org());
    for _ in 0..3 {
        assert_eq!(ws.reconcile().0, 0);
    }
    let runs = |args: &[&str]| -> usize {
        let mut all = vec!["history", "--format", "json"];
        all.extend_from_slice(args);
        let output = ws.idgraph(&all);
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        json(&output)["runs"].as_array().unwrap().len()
    };
    assert_eq!(runs(&[]), 3);
    assert_eq!(runs(&["--limit", "2"]), 2);
    assert_eq!(runs(&["--since", "2000-01-01", "--until", "2000-12-31"]), 0);
    assert_eq!(runs(&["--since", "2000-01-01"]), 3);
    let newest = json(&ws.idgraph(&["history", "--format", "json", "--limit", "1"]));
    let all = json(&ws.idgraph(&["history", "--format", "json"]));
    assert_eq!(newest["runs"][0]["run_id"], all["runs"][2]["run_id"]);
    assert_eq!(
        ws.idgraph(&["history", "--since", "yesterday"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn check_plan_and_verify_speak_json() {
    let ws = Workspace::new(&org());
    let config = std::fs::read_to_string(ws.config()).unwrap();
    ws.write(
        "idgraph.toml",
        &format!("{config}\n[remediation]\nnew_owner = \"admin\"\n"),
    );
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0, "{report}");

    let check = ws.idgraph(&["check", "--format", "json"]);
    assert_eq!(check.status.code(), Some(0));
    let check = json(&check);
    let names: Vec<&str> = check["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["idp", "identity_center", "analytics", "finance"]);
    assert!(check["sources"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "ok"));

    let verify = ws.idgraph(&["verify", "--format", "json"]);
    assert_eq!(verify.status.code(), Some(0));
    let verify = json(&verify);
    assert_eq!(verify["ok"], true);
    assert_eq!(verify["intact"], true);
    assert_eq!(verify["head"], report["chain_head"]);
    let wrong = ws.idgraph(&["verify", "--format", "json", "--expect-head", "00"]);
    assert_eq!(wrong.status.code(), Some(3));
    assert_eq!(json(&wrong)["ok"], false);

    let plan = ws.idgraph(&["plan", "--format", "json"]);
    assert_eq!(plan.status.code(), Some(0), "{plan:?}");
    let plan = json(&plan);
    let user = &plan["clusters"][0]["users"][0];
    assert_eq!(user["db_user"], "IAMA:bob@example.com");
    // An export has no catalog: the user is blocked, with the reason.
    assert_eq!(user["verdict"], "blocked");
    assert!(user["reasons"][0].as_str().unwrap().contains("file target"));
    assert!(plan["sql"]
        .as_str()
        .unwrap()
        .contains("-- DROP USER \"IAMA:bob@example.com\";"));
}

/// Runs `idgraph` with stderr on a terminal (through `script`), returning what it wrote.
fn on_a_terminal(ws: &Workspace, args: &str, env: &[(&str, &str)]) -> String {
    let command = format!(
        "{} {args} --config {} >/dev/null",
        env!("CARGO_BIN_EXE_idgraph"),
        ws.config().display()
    );
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .expect("script (util-linux) runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// Regression: log lines were coloured on a terminal even with NO_COLOR set.
#[test]
fn colour_follows_no_color_and_the_color_flag() {
    let ws = Workspace::new(&org());
    let escape = "\u{1b}[";
    let coloured = on_a_terminal(&ws, "reconcile", &[]);
    assert!(
        coloured.contains("INFO") && coloured.contains(escape),
        "{coloured:?}"
    );
    let plain = on_a_terminal(&ws, "reconcile", &[("NO_COLOR", "1")]);
    assert!(
        plain.contains("INFO") && !plain.contains(escape),
        "{plain:?}"
    );
    let never = on_a_terminal(&ws, "reconcile --color never", &[]);
    assert!(!never.contains(escape), "{never:?}");
    let always = ws.idgraph_env(&["reconcile", "--color", "always"], &[("RUST_LOG", "info")]);
    assert!(String::from_utf8_lossy(&always.stderr).contains(escape));
    let output = json_output(ws.idgraph(&["reconcile", "--format", "json", "--color", "never"]));
    assert_eq!(output.0, 0);
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line() {
    let idgraph = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_idgraph"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        stdout(&output)
    };
    let bash = idgraph(&["completions", "bash"]);
    assert!(
        bash.contains("_idgraph()") && bash.contains("--fail-on"),
        "{bash}"
    );
    let zsh = idgraph(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef idgraph"), "{zsh}");
    let man = idgraph(&["man"]);
    assert!(
        man.contains(".TH idgraph 1") && man.contains("reconcile"),
        "{man}"
    );
}
