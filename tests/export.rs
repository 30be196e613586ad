//! `idgraph export`: the evidence bundle an auditor receives.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::util::{Org, Workspace};

const HOSTILE: &str = "IAMA:<script>alert('x')</script>\"; DROP TABLE runs; --@example.com";

fn org() -> Org {
    Org::ann_and_bob()
        .db("a", "IAMA:ann@example.com", false)
        .db("a", "IAMA:bob@example.com", true)
        .db("a", HOSTILE, false)
        .db("b;<i>", "IAMA:gone@example.com", false)
}

#[test]
fn the_bundle_holds_every_file_with_its_digest_and_hostile_names_survive() {
    let ws = Workspace::new(&org());
    assert_eq!(ws.reconcile().0, 0);
    ws.write_org(&org().without_db("b;<i>", "IAMA:gone@example.com"));
    assert_eq!(ws.reconcile().0, 0);
    ws.write_org(
        &org()
            .without_db("a", HOSTILE)
            .without_db("b;<i>", "IAMA:gone@example.com"),
    );
    assert_eq!(ws.reconcile().0, 0);

    let out = ws.path("bundle");
    let output = ws.idgraph(&[
        "export",
        "--since",
        "2000-01-01",
        "--until",
        "2999-12-31",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["runs.csv", "findings.csv", "evidence.json", "report.html"]
    );
    for f in files {
        let bytes = std::fs::read(out.join(f["name"].as_str().unwrap())).unwrap();
        assert_eq!(
            f["sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(&bytes))
        );
    }
    assert_eq!(manifest["chain"]["intact"], true);
    assert_eq!(manifest["chain"]["runs"], 3);
    assert_eq!(manifest["chain"]["head"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["idgraph_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest["config_sha256"].as_str().unwrap().len(), 64);

    // Hostile names intact in the CSV, with the time to remediate of resolved episodes.
    let mut reader = csv::Reader::from_path(out.join("findings.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let hostile = rows
        .iter()
        .find(|r| &r[5] == HOSTILE)
        .expect("the hostile user, intact");
    assert_eq!((&hostile[10], &hostile[12]), ("1", "3"));
    assert!(hostile[14].parse::<i64>().unwrap() >= 0);
    let gone = rows
        .iter()
        .find(|r| &r[5] == "IAMA:gone@example.com")
        .unwrap();
    assert_eq!(&gone[4], "b;<i>");
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 4, "a header and three runs");

    // Escaped in the HTML: no markup from the data reaches the page.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("<i>"),
        "unescaped data in the report"
    );
    assert!(html.contains("IAMA:&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;; DROP TABLE runs; --@example.com"));
    assert!(html.contains("<svg") && html.contains("Source coverage per run"));

    let evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("evidence.json")).unwrap()).unwrap();
    assert_eq!(evidence["runs"].as_array().unwrap().len(), 3);
    assert!(evidence["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["db_user"] == HOSTILE));
}

#[test]
fn a_period_before_any_run_is_empty_and_a_bad_date_is_named() {
    let ws = Workspace::new(&org());
    assert_eq!(ws.reconcile().0, 0);
    let out = ws.path("old");
    let output = ws.idgraph(&[
        "export",
        "--since",
        "2001-01-01",
        "--until",
        "2001-12-31",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let runs = std::fs::read_to_string(Path::new(&out).join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 1, "only the header");

    let output = ws.idgraph(&[
        "export",
        "--since",
        "last week",
        "--until",
        "2001-12-31",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--since"));
}

/// Database users named like spreadsheet formulas.
const FORMULAS: [&str; 3] = ["=HYPERLINK(\"http://x\",\"y\")", "-1+2", "@SUM(A1)"];

/// Whether a spreadsheet would read `cell` as a formula (OWASP's "CSV injection" list).
fn live_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

// Regression: a database user named `=HYPERLINK(…)` was a live formula in findings.csv
// when an auditor opened the bundle in a spreadsheet.
#[test]
fn names_a_spreadsheet_would_evaluate_are_neutralised_in_the_csvs_and_kept_in_the_json() {
    // The target's name starts with `@` too: runs.csv lists it once it fails.
    let org = FORMULAS
        .iter()
        .fold(Org::ann_and_bob(), |org, name| org.db("@ops", name, false));
    let ws = Workspace::new(&org);
    assert_eq!(ws.reconcile().0, 0);
    ws.remove("exports/_ops.csv");
    assert_eq!(ws.reconcile().0, 2, "the target failed");
    let export = ws.export_everything("bundle");
    assert_eq!(
        export.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let out = ws.path("bundle");

    let rows = |file: &str| -> Vec<csv::StringRecord> {
        csv::Reader::from_path(out.join(file))
            .unwrap()
            .records()
            .map(|r| r.unwrap())
            .collect()
    };
    let findings = rows("findings.csv");
    let runs = rows("runs.csv");
    for row in findings.iter().chain(&runs) {
        for cell in row {
            assert!(!live_formula(cell), "a live formula: {cell:?} in {row:?}");
        }
    }
    for name in FORMULAS {
        let row = findings
            .iter()
            .find(|r| r[5] == format!("'{name}"))
            .unwrap_or_else(|| panic!("no row for {name}: {findings:?}"));
        assert_eq!(&row[4], "'@ops");
    }
    assert_eq!(&runs[1][7], "'@ops", "the failed target of run 2");

    // The evidence keeps every name byte for byte.
    let evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("evidence.json")).unwrap()).unwrap();
    let episodes = evidence["episodes"].as_array().unwrap();
    for name in FORMULAS {
        assert!(
            episodes
                .iter()
                .any(|e| e["db_user"] == name && e["target"] == "@ops"),
            "{name} is not in evidence.json as it is"
        );
    }
}
