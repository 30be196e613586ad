//! The generator's organisations give exactly the findings it says they hold: the
//! benchmarks' inputs are what they claim, and idgraph agrees with an independent count.

use std::process::Command;
use std::sync::Arc;

use idgraph::reconcile::{reconcile_once, Context};
use idgraph_sources::NoProgress;

#[tokio::test]
async fn idgraph_finds_exactly_what_the_generator_planted() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_idgraph-synth"))
        .args([
            "--users",
            "5000",
            "--targets",
            "4",
            "--unprefixed",
            "0.3",
            "--out",
        ])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("expected.json")).unwrap()).unwrap();

    let settings =
        idgraph::config::load_with_env(&dir.path().join("idgraph.toml"), Some(Default::default()))
            .unwrap();
    let ctx = Context::open(settings, Arc::new(NoProgress)).await.unwrap();
    let report = reconcile_once(&ctx).await.unwrap();
    ctx.store.clone().close().await;

    let mut found = std::collections::BTreeMap::<String, u64>::new();
    for e in &report.open {
        *found.entry(e.finding.kind.as_str().to_owned()).or_default() += 1;
    }
    let expected: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(expected["findings"].clone()).unwrap();
    assert_eq!(found, expected);
    assert!(
        expected["unmanaged_db_user"] > 20,
        "bare logins of people gone from Identity Center are in the mix"
    );
    assert_eq!(
        report.accounting.unwrap().database_users as u64,
        serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(dir.path().join("expected.json")).unwrap()
        )
        .unwrap()["database_users"]
    );
}
