//! The bundled demo shows what the README says it shows.

use std::path::Path;

use crate::util::{json_output, row, summary};

#[test]
fn the_demo_finds_every_kind_and_exercises_every_rule() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(repo.join("config/demo.toml")).unwrap();
    let demo = repo.join("config/demo").canonicalize().unwrap();
    let config = config.replace("\"demo/", &format!("\"{}/", demo.display()));
    std::fs::write(dir.path().join("demo.toml"), config).unwrap();

    let (code, report) = json_output(
        std::process::Command::new(env!("CARGO_BIN_EXE_idgraph"))
            .args(["reconcile", "--format", "json", "--config"])
            .arg(dir.path().join("demo.toml"))
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{report}");
    let mut expected = vec![
        row(
            "ambiguous_mapping",
            "multiple_identity_center_users",
            "high",
            "analytics",
            "IAMA:jordan.kim@example.com",
        ),
        row(
            "orphaned_db_user",
            "idp_user_inactive",
            "critical",
            "analytics",
            "IAMA:carol.diaz@example.com",
        ),
        row(
            "orphaned_db_user",
            "idp_user_inactive",
            "high",
            "analytics",
            "IAMA:bob.martin@example.com",
        ),
        row(
            "orphaned_db_user",
            "idp_user_inactive",
            "high",
            "finance",
            "bob.martin@example.com",
        ),
        row(
            "orphaned_db_user",
            "idp_user_missing",
            "high",
            "finance",
            "IAM:erin.fox@example.com",
        ),
        row(
            "orphaned_db_user",
            "no_identity_center_user",
            "critical",
            "finance",
            "AWSIDC:gwen.stacy@example.com",
        ),
        row(
            "orphaned_db_user",
            "no_identity_center_user",
            "high",
            "analytics",
            "IAMA:frank.ng@example.com",
        ),
        row(
            "orphaned_db_user",
            "no_identity_center_user",
            "high",
            "analytics",
            "IAMA:o'brien; drop user admin; --@example.com",
        ),
        row(
            "stale_identity_center_user",
            "idp_user_inactive",
            "medium",
            "",
            "bob.martin@example.com",
        ),
        row(
            "stale_identity_center_user",
            "idp_user_inactive",
            "medium",
            "",
            "carol.diaz@example.com",
        ),
        row(
            "stale_identity_center_user",
            "idp_user_inactive",
            "medium",
            "",
            "victor.hale@example.com",
        ),
        row(
            "stale_identity_center_user",
            "idp_user_missing",
            "medium",
            "",
            "erin.fox@example.com",
        ),
        row(
            "unmanaged_db_user",
            "no_matching_identity",
            "high",
            "analytics",
            "old_dba",
        ),
        row(
            "unmanaged_db_user",
            "no_matching_identity",
            "medium",
            "finance",
            "tableau_svc",
        ),
    ];
    expected.sort();
    assert_eq!(summary(&report["findings"]), expected);
}
