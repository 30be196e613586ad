//! Every live source at once, through the real binary: a SCIM server paged 50 at a time,
//! an identity store in moto paged by NextToken, a provisioned cluster in moto whose
//! endpoint is overridden to a PostgreSQL instance, a serverless workgroup through the
//! stand-in, hostile names; `check`, then `reconcile` with debug logging that must not
//! show a single secret.

use std::process::{Command, Output};

use idgraph_aws::sdk::identitystore::types::{Email, Name};
use idgraph_aws::sdk::{identitystore, redshift};
use idgraph_aws::Credentials;
use reqwest::Method;
use serde_json::json;

use crate::peers::postgres::Postgres;
use crate::peers::{moto, redshift_serverless_standin, scim2_server, scim_send, Process};
use crate::util::{json_output, row, summary};

const SCIM_TOKEN: &str = "live-scim-token-2b7d41e0";
const AWS_KEY_ID: &str = "AKIDLIVETEST";
const AWS_SECRET: &str = "live-aws-secret-9c1f33aa";
const SERVERLESS_PASSWORD: &str = "live-serverless-pw-77e0c5";
const REGION: &str = "us-east-1";
const STORE: &str = "d-9067c1a2b3";
const PEOPLE: usize = 120;
const HOSTILE: &str = "o'brien\"; DROP TABLE users; --@example.com";

/// Person `i`'s user name; one is hostile.
fn login(i: usize) -> String {
    if i == 7 {
        HOSTILE.to_owned()
    } else {
        format!("p{i:03}@example.com")
    }
}

/// Every 10th person has left (deactivated in the IdP).
fn inactive(i: usize) -> bool {
    i % 10 == 3
}

async fn seed_scim(scim: &Process) {
    for i in 0..PEOPLE {
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": login(i),
            "externalId": format!("ext-{i}"),
            "active": !inactive(i),
            "emails": [{"value": login(i), "type": "work", "primary": true}],
        });
        let (status, _) = scim_send(scim, SCIM_TOKEN, Method::POST, "Users", &user).await;
        assert_eq!(status, 201);
    }
}

/// Identity Center holds every person but 110..120 (never assigned), plus two users
/// whose IdP user was deleted.
async fn seed_aws(moto: &Process) {
    let config = idgraph_aws::sdk_config(
        Some(REGION),
        Some(&moto.url()),
        Some(Credentials::new(AWS_KEY_ID, AWS_SECRET, None, None, "live")),
    )
    .await;
    let ic = identitystore::Client::new(&config);
    let names = (0..110)
        .map(login)
        .chain(["deleted1@example.com".into(), "deleted2@example.com".into()]);
    for name in names {
        ic.create_user()
            .identity_store_id(STORE)
            .user_name(&name)
            .display_name(&name)
            .name(Name::builder().given_name("G").family_name("F").build())
            .emails(Email::builder().value(&name).primary(true).build())
            .send()
            .await
            .expect("moto creates the user");
    }
    redshift::Client::new(&config)
        .create_cluster()
        .cluster_identifier("analytics")
        .node_type("ra3.xlplus")
        .master_username("awsuser")
        .master_user_password("Awsuser-Passw0rd")
        .db_name("dev")
        .send()
        .await
        .expect("moto creates the cluster");
}

fn run(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idgraph"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("IDGRAPH_LIVE_SCIM_TOKEN", SCIM_TOKEN)
        .env("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_REGION", REGION)
        // Never ask the instance metadata service, which is not on this machine.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "debug")
        .output()
        .expect("the idgraph binary runs")
}

fn assert_no_secret(output: &Output) {
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("DEBUG"), "debug logging was on");
    for secret in [SCIM_TOKEN, AWS_SECRET, SERVERLESS_PASSWORD] {
        assert!(!printed.contains(secret), "a secret was printed: {secret}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_live_source_gives_exactly_the_expected_findings_and_no_secret() {
    let scim = scim2_server(Some(SCIM_TOKEN));
    let moto = moto();
    seed_scim(&scim).await;
    seed_aws(&moto).await;

    let analytics = Postgres::start();
    // GetClusterCredentials(DbUser idgraph_reader, AutoCreate false) logs in as IAM:….
    analytics.create_user("IAM:idgraph_reader", false);
    analytics.create_user("awsuser", true);
    analytics.create_user("IAMA:p000@example.com", false);
    analytics.create_user("IAMA:p013@example.com", true); // left, superuser
    analytics.create_user(&format!("IAMA:{HOSTILE}"), false);
    analytics.create_user("IAMA:p115@example.com", false); // never in Identity Center
    analytics.create_user("IAMR:etl-loader", false);

    let finance = Postgres::start();
    finance.create_user("IAM:idgraph_reader", false);
    finance.create_user("finance_admin", true);
    finance.create_user("AWSIDC:p001@example.com", false);
    finance.create_user("p023@example.com", false); // bare, left
    finance.create_user("AWSIDC:deleted1@example.com", false);
    finance.create_user("report_bot; --", false);
    let finance_port = finance.port.to_string();
    let standin = redshift_serverless_standin(&[
        "--workgroup",
        "finance-wg",
        "--namespace",
        "finance-ns",
        "--address",
        "127.0.0.1",
        "--endpoint-port",
        &finance_port,
        "--admin",
        "finance_admin",
        "--db-user",
        "IAM:idgraph_reader",
        "--db-password",
        SERVERLESS_PASSWORD,
    ]);
    let standin_url = standin.url();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("idgraph.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
path = "idgraph.db"

[idp]
kind = "scim"
url = "{scim}/v2"
token_env = "IDGRAPH_LIVE_SCIM_TOKEN"
page_size = 50
paging = "index"

[identity_center]
kind = "aws"
identity_store_id = "{STORE}"
region = "{REGION}"
endpoint_url = "{moto}"

[[targets]]
name = "analytics"
kind = "provisioned"
cluster_identifier = "analytics"
database = "postgres"
region = "{REGION}"
endpoint_url = "{moto}"
credentials = "get_cluster_credentials"
db_user = "idgraph_reader"
host = "127.0.0.1"
port = {analytics}
sslmode = "disable"

[[targets]]
name = "finance"
kind = "serverless"
workgroup_name = "finance-wg"
database = "postgres"
region = "{REGION}"
endpoint_url = "{standin_url}"
sslmode = "disable"

[mapping]
system_users = ["rdsdb", "postgres"]
"#,
            scim = scim.url(),
            moto = moto.url(),
            analytics = analytics.port,
        ),
    )
    .unwrap();

    let output = run(&config, &["check"]);
    assert_no_secret(&output);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (name, users) in [
        ("idp", 120),
        ("identity_center", 112),
        ("analytics", 8),
        ("finance", 7),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"));
        assert!(
            line.contains(" ok ") && line.contains(&format!("{users} users")),
            "{line}"
        );
    }

    let output = run(&config, &["reconcile", "--format", "json"]);
    assert_no_secret(&output);
    let (code, report) = json_output(output);
    assert_eq!(code, 0, "{report}");
    let mut expected = vec![
        row(
            "orphaned_db_user",
            "idp_user_inactive",
            "critical",
            "analytics",
            "IAMA:p013@example.com",
        ),
        row(
            "orphaned_db_user",
            "no_identity_center_user",
            "high",
            "analytics",
            "IAMA:p115@example.com",
        ),
        row(
            "orphaned_db_user",
            "idp_user_inactive",
            "high",
            "finance",
            "p023@example.com",
        ),
        row(
            "orphaned_db_user",
            "idp_user_missing",
            "high",
            "finance",
            "AWSIDC:deleted1@example.com",
        ),
        row(
            "unmanaged_db_user",
            "no_matching_identity",
            "medium",
            "finance",
            "report_bot; --",
        ),
        row(
            "stale_identity_center_user",
            "idp_user_missing",
            "medium",
            "",
            "deleted1@example.com",
        ),
        row(
            "stale_identity_center_user",
            "idp_user_missing",
            "medium",
            "",
            "deleted2@example.com",
        ),
    ];
    expected.extend((0..110).filter(|&i| inactive(i)).map(|i| {
        row(
            "stale_identity_center_user",
            "idp_user_inactive",
            "medium",
            "",
            &login(i),
        )
    }));
    expected.sort();
    assert_eq!(summary(&report["findings"]), expected);
    let kinds: Vec<&str> = report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    // Each target's logins are a source of their own.
    assert_eq!(
        kinds,
        [
            "scim",
            "aws",
            "provisioned",
            "serverless",
            "logins",
            "logins"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_shows_on_a_terminal_and_nowhere_else() {
    let scim = scim2_server(Some(SCIM_TOKEN));
    seed_scim(&scim).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ic.json"), r#"{"Users": []}"#).unwrap();
    std::fs::write(dir.path().join("a.csv"), "usename,usesuper\n").unwrap();
    let config = dir.path().join("idgraph.toml");
    std::fs::write(
        &config,
        format!(
            "[idp]\nkind = \"scim\"\nurl = \"{}/v2\"\ntoken_env = \"IDGRAPH_LIVE_SCIM_TOKEN\"\n\
             page_size = 10\nconcurrency = 1\npaging = \"index\"\n\n\
             [identity_center]\nkind = \"file\"\npath = \"ic.json\"\n\n\
             [[targets]]\nname = \"a\"\nkind = \"file\"\npath = \"a.csv\"\n",
            scim.url()
        ),
    )
    .unwrap();

    // Not a terminal: the output is exactly the check lines.
    let output = run(&config, &["check"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("users ("));

    // A terminal, through script(1): the progress line counts pages of the total.
    let command = format!(
        "{} check --config {}",
        env!("CARGO_BIN_EXE_idgraph"),
        config.display()
    );
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("IDGRAPH_LIVE_SCIM_TOKEN", SCIM_TOKEN)
        .output()
        .expect("script(1) from util-linux runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains(&format!("/{PEOPLE} users (")),
        "no progress line in {screen:?}"
    );
}
