//! The store's disk runs full: the run is rolled back whole and the error says so.

use std::io::Write;
use std::process::Command;

use crate::util::{Org, Workspace};

/// A tmpfs of `size` mounted on `dir` for as long as it lives.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root, as CI runs");
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system of `path`'s directory until it refuses another byte.
fn fill(path: &std::path::Path) {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let chunk = [0u8; 4096];
    while file
        .write_all(&chunk)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
    // Single bytes into the last partial block.
    while file.write_all(&[0]).and_then(|()| file.sync_all()).is_ok() {}
}

// Regression: a full disk read "disk I/O error (code 4874)", naming neither the cause nor
// the store.
#[test]
fn a_full_disk_is_named_and_loses_nothing() {
    let org = Org::ann_and_bob().db("a", "IAMA:bob@example.com", false);
    let ws = Workspace::new(&org);
    let _tmpfs = Tmpfs::mount(&ws.path("store"), "1m");
    assert_eq!(ws.reconcile().0, 0);

    let mut drifted = org.clone();
    for i in 0..300 {
        drifted = drifted.db(
            "a",
            &format!("IAMA:gone-{i:03}-{}@example.com", "x".repeat(60)),
            false,
        );
    }
    ws.write_org(&drifted);
    fill(&ws.path("store/filler"));
    let output = ws.idgraph(&["reconcile"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("disk is full"), "{stderr}");
    assert!(stderr.contains("idgraph.db"), "{stderr}");
    assert!(!stderr.contains("code 4874"), "{stderr}");

    // Nothing of the failed run was kept; with space again, the next run records it.
    std::fs::remove_file(ws.path("store/filler")).expect("remove the filler");
    let (_, history) = crate::util::json_output(ws.idgraph(&["history", "--format", "json"]));
    assert_eq!(history["runs"].as_array().expect("runs").len(), 1);
    assert_eq!(ws.idgraph(&["verify"]).status.code(), Some(0));
    let (code, report) = ws.reconcile();
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["run_id"], 2);
}

// Regression: verify, findings and history opened the store for writing, so they failed
// on a read-only mount (and could change the file they audit).
#[test]
fn reading_commands_work_on_a_read_only_mount() {
    let org = Org::ann_and_bob().db("a", "IAMA:bob@example.com", false);
    let ws = Workspace::new(&org);
    let tmpfs = Tmpfs::mount(&ws.path("store"), "4m");
    assert_eq!(ws.reconcile().0, 0);
    let status = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&tmpfs.0)
        .status()
        .expect("mount runs");
    assert!(status.success());
    ws.assert_succeeds(&[&["verify"], &["findings"], &["history"]]);
    let findings = ws.idgraph(&["findings", "--format", "json"]);
    let (_, findings) = crate::util::json_output(findings);
    assert_eq!(findings["findings"].as_array().expect("findings").len(), 2);
    // Writing still needs a writable store, and says so.
    assert_eq!(ws.idgraph(&["reconcile"]).status.code(), Some(1));
}
