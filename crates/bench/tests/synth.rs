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
            "--without-external-id",
            "0.3",
            "--email-logins",
            "0.3",
            "--ambiguous",
            "0.2",
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
    assert!(
        expected["ambiguous_mapping"] > 20,
        "logins matching two Identity Center users by email are in the mix"
    );
    assert_eq!(
        report.accounting.unwrap().database_users as u64,
        serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(dir.path().join("expected.json")).unwrap()
        )
        .unwrap()["database_users"]
    );
}

/// The benchmarks of the model run on [`Params::model`]; it must be what idgraph reads
/// from the exports, or they would measure a different organisation.
#[tokio::test]
async fn the_model_is_what_the_exports_parse_to() {
    use idgraph_bench::Params;
    use idgraph_sources::file::{FileIdentityCenter, FileIdp, FileTarget};
    use idgraph_sources::Source;

    let mut params = Params::new(600, 3);
    params.unprefixed = 0.3;
    params.without_external_id = 0.3;
    params.email_logins = 0.3;
    params.ambiguous = 0.3;
    let dir = tempfile::tempdir().unwrap();
    idgraph_bench::write_exports(&params, dir.path()).unwrap();
    let model = params.model();

    let idp = FileIdp::new(dir.path().join("scim-users.json"))
        .fetch()
        .await
        .unwrap();
    assert_eq!(idp, model.idp);
    let ic = FileIdentityCenter::new(dir.path().join("identitystore-users.json"))
        .fetch()
        .await
        .unwrap();
    assert_eq!(ic, model.identity_center);
    for expected in &model.targets {
        let source = FileTarget::new(
            expected.name.clone(),
            dir.path().join(format!("{}-pg_user.csv", expected.name)),
        )
        .with_master_user("awsuser");
        let target = source.fetch().await.unwrap();
        assert_eq!(&target, expected);
    }
    assert!(model.targets.iter().all(|t| t.users.len() > 100));
    assert!(model
        .identity_center
        .iter()
        .any(|u| u.external_ids.is_empty()));
    assert!(
        model.identity_center.len() > model.idp.len(),
        "second users are in"
    );
}
