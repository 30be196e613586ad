//! Records the commit the binary is built from, as `IDGRAPH_REVISION`, for
//! `idgraph_build_info{revision}` and `idgraph --version`: the environment variable of that
//! name when the build sets it (an image built without `.git`), else `git rev-parse`, else
//! `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=IDGRAPH_REVISION");
    let revision = std::env::var("IDGRAPH_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=IDGRAPH_REVISION={}", revision.trim());
}

/// The checked-out commit, abbreviated, and a rebuild whenever it changes.
fn git_revision() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| s.trim().to_owned())
    };
    let revision = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD names a branch whose file changes on commit; both are watched.
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    Some(revision)
}
