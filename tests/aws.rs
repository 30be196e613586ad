//! The AWS-backed sources against real peers: `moto_server` for `identitystore` and
//! `redshift`, a stand-in for `redshift-serverless` (moto has none), and PostgreSQL
//! instances of the tests' own in place of the clusters' databases.
//!
//! AWS credentials are fixed test values given to the SDK config, not the process
//! environment: tests run in parallel threads of one process.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use idgraph_aws::sdk::identitystore::types::{Email, Name};
use idgraph_aws::sdk::{identitystore, redshift};
use idgraph_aws::{
    Credentials, IdentityCenterOptions, IdentityCenterSource, ProvisionedCredentials,
    ProvisionedOptions, ProvisionedTarget, SdkConfig, ServerlessCredentials, ServerlessOptions,
    ServerlessTarget, TargetOptions,
};
use idgraph_model::focus::IcLookup;
use idgraph_model::{ExternalId, TargetSnapshot};
use idgraph_sources::postgres::SslMode;
use idgraph_sources::{NoProgress, Progress, Source, SourceError, Wanted};

use crate::peers::postgres::Postgres;
use crate::peers::{free_port, moto, redshift_serverless_standin};

const REGION: &str = "us-east-1";
const STORE: &str = "d-1234567890";

async fn aws_config(endpoint_url: &str) -> SdkConfig {
    idgraph_aws::sdk_config(
        Some(REGION),
        Some(endpoint_url),
        Some(Credentials::new(
            "AKIDIDGRAPHTEST",
            "idgraph-test-secret",
            None,
            None,
            "idgraph-tests",
        )),
    )
    .await
}

/// Progress updates, as the daemon would see them.
#[derive(Default)]
struct Recorder {
    updates: Mutex<Vec<(String, u64, u64)>>,
    finished: AtomicBool,
}

impl Progress for Recorder {
    fn update(&self, source: &str, pages: u64, objects: u64, _total: Option<u64>) {
        self.updates
            .lock()
            .unwrap()
            .push((source.to_owned(), pages, objects));
    }

    fn finish(&self, _source: &str) {
        self.finished.store(true, Ordering::SeqCst);
    }
}

fn user_names(pg: &Postgres) -> BTreeSet<String> {
    pg.sql("postgres", "SELECT usename FROM pg_user")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn snapshot_names(target: &TargetSnapshot) -> BTreeSet<String> {
    target.users.iter().map(|u| u.name.clone()).collect()
}

#[tokio::test]
async fn identity_center_pages_through_every_user_of_moto_exactly_once() {
    let moto = moto();
    let config = aws_config(&moto.url()).await;
    let seed = identitystore::Client::new(&config);
    let mut expected = BTreeSet::new();
    for i in 0..230 {
        let user_name = format!("user{i:03}@example.com");
        let mut request = seed
            .create_user()
            .identity_store_id(STORE)
            .user_name(&user_name)
            .display_name(format!("User {i}"))
            .name(
                Name::builder()
                    .given_name("User")
                    .family_name(i.to_string())
                    .build(),
            );
        // Every tenth user has a secondary address listed first: the primary one counts.
        if i % 10 == 0 {
            request = request.emails(
                Email::builder()
                    .value(format!("alias{i:03}@example.com"))
                    .primary(false)
                    .build(),
            );
        }
        request
            .emails(Email::builder().value(&user_name).primary(true).build())
            .send()
            .await
            .expect("moto creates the user");
        expected.insert(user_name);
    }

    let recorder = Arc::new(Recorder::default());
    let mut options = IdentityCenterOptions::new(STORE);
    options.region = Some(REGION.into());
    options.endpoint_url = Some(moto.url());
    let source = IdentityCenterSource::from_sdk_config(options, &config, recorder.clone());
    assert_eq!((source.name(), source.kind()), ("identity_center", "aws"));
    let users = source.fetch().await.expect("a complete snapshot");

    assert_eq!(users.len(), 230, "every user exactly once");
    let names: BTreeSet<_> = users.iter().map(|u| u.user_name.clone()).collect();
    assert_eq!(names, expected);
    let ids: BTreeSet<_> = users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(ids.len(), 230, "user ids are unique");
    for user in &users {
        assert_eq!(user.email.as_deref(), Some(user.user_name.as_str()));
        // moto's CreateUser, like AWS's, takes no ExternalIds; SCIM provisioning sets them.
        assert!(user.external_ids.is_empty());
    }
    // 100 + 100 + 30: three pages, progress after each.
    let updates = recorder.updates.lock().unwrap().clone();
    assert_eq!(
        updates,
        [
            ("identity_center".to_owned(), 1, 100),
            ("identity_center".to_owned(), 2, 200),
            ("identity_center".to_owned(), 3, 230)
        ]
    );
    assert!(recorder.finished.load(Ordering::SeqCst));
}

#[tokio::test]
async fn identity_center_answers_a_watched_run_s_lookup_user_by_user() {
    let moto = moto();
    let config = aws_config(&moto.url()).await;
    let seed = identitystore::Client::new(&config);
    let mut ids = std::collections::BTreeMap::new();
    for name in ["alice", "bob", "carol", "dave"] {
        let user_name = format!("{name}@example.com");
        let created = seed
            .create_user()
            .identity_store_id(STORE)
            .user_name(&user_name)
            .display_name(name)
            .name(Name::builder().given_name(name).family_name("X").build())
            .emails(Email::builder().value(&user_name).primary(true).build())
            .send()
            .await
            .expect("moto creates the user");
        ids.insert(name, created.user_id().to_owned());
    }
    seed.delete_user()
        .identity_store_id(STORE)
        .user_id(&ids["carol"])
        .send()
        .await
        .expect("moto deletes the user");

    let mut options = IdentityCenterOptions::new(STORE);
    options.region = Some(REGION.into());
    options.endpoint_url = Some(moto.url());
    let source = IdentityCenterSource::from_sdk_config(options, &config, Arc::new(NoProgress));
    // Alice by name, Bob by email, Carol by the id the last full run knew her by; an
    // external id and a name nobody has find nothing; Dave is not asked about.
    let lookup = IcLookup {
        user_ids: BTreeSet::from([ids["carol"].clone()]),
        external_ids: vec![ExternalId {
            issuer: "https://scim.example.com".into(),
            id: "ext-nobody".into(),
        }],
        user_names: BTreeSet::from(["alice@example.com".into(), "nobody@example.com".into()]),
        emails: BTreeSet::from(["bob@example.com".into()]),
    };
    let users = source
        .fetch_wanted(&Wanted::IcUsers(&lookup))
        .await
        .expect("an answer");
    let found: BTreeSet<(String, String)> = users
        .iter()
        .map(|u| (u.user_id.clone(), u.user_name.clone()))
        .collect();
    assert_eq!(
        found,
        BTreeSet::from([
            (ids["alice"].clone(), "alice@example.com".to_owned()),
            (ids["bob"].clone(), "bob@example.com".to_owned()),
        ])
    );
    assert!(users
        .iter()
        .all(|u| u.email.as_deref() == Some(u.user_name.as_str())));
}

async fn create_cluster(config: &SdkConfig, identifier: &str) {
    redshift::Client::new(config)
        .create_cluster()
        .cluster_identifier(identifier)
        .node_type("ra3.xlplus")
        .master_username("awsuser")
        .master_user_password("Awsuser-Passw0rd")
        .db_name("dev")
        .send()
        .await
        .expect("moto creates the cluster");
}

fn provisioned(moto_url: &str, cluster: &str, pg_port: u16) -> ProvisionedOptions {
    ProvisionedOptions {
        target: TargetOptions {
            name: "analytics".into(),
            database: "postgres".into(),
            region: Some(REGION.into()),
            endpoint_url: Some(moto_url.into()),
            // moto's endpoint address does not resolve: the test's database stands in.
            host: Some("127.0.0.1".into()),
            port: Some(pg_port),
            sslmode: SslMode::Disable,
            timeout: idgraph_aws::SQL_TIMEOUT,
        },
        cluster_identifier: cluster.into(),
        credentials: ProvisionedCredentials::GetClusterCredentials {
            db_user: "idgraph_reader".into(),
        },
    }
}

#[tokio::test]
async fn provisioned_target_reads_pg_user_with_moto_cluster_credentials() {
    let moto = moto();
    let config = aws_config(&moto.url()).await;
    create_cluster(&config, "analytics-1").await;
    let pg = Postgres::start();
    // GetClusterCredentials with AutoCreate false returns the user prefixed `IAM:`; moto's
    // random password is accepted by the instance's trust authentication.
    pg.create_user("IAM:idgraph_reader", false);
    pg.create_user("awsuser", true);
    pg.create_user("IAMA:alice@example.com", false);
    pg.create_user("IAMR:loader", false);
    pg.create_user("bob@example.com", true);

    let target = ProvisionedTarget::from_sdk_config(
        provisioned(&moto.url(), "analytics-1", pg.port),
        &config,
    );
    assert_eq!((target.name(), target.kind()), ("analytics", "provisioned"));
    let snapshot = target.fetch().await.expect("a complete snapshot");

    assert_eq!(snapshot.name, "analytics");
    assert_eq!(
        snapshot_names(&snapshot),
        user_names(&pg),
        "the whole pg_user"
    );
    assert_eq!(snapshot.master_user.as_deref(), Some("awsuser"));
    assert_eq!(snapshot.login_user.as_deref(), Some("IAM:idgraph_reader"));
    assert!(snapshot.namespaces.is_empty(), "PostgreSQL declares none");
    let superusers: BTreeSet<_> = snapshot
        .users
        .iter()
        .filter(|u| u.superuser)
        .map(|u| u.name.as_str())
        .collect();
    assert_eq!(
        superusers,
        BTreeSet::from(["awsuser", "bob@example.com", "postgres"])
    );

    // A watched run reads only the names it asks for, folded, however they are spelled.
    pg.create_user("IAMA:O'Brien\";--@example.com", false);
    let wanted = [
        "iama:alice@example.com".to_owned(),
        "bob@example.com".to_owned(),
        "iama:o'brien\";--@example.com".to_owned(),
        "nobody".to_owned(),
    ];
    let some = target
        .fetch_wanted(&Wanted::DbUsers(&wanted))
        .await
        .expect("the named users");
    assert_eq!(
        snapshot_names(&some),
        BTreeSet::from([
            "IAMA:alice@example.com".to_owned(),
            "bob@example.com".to_owned(),
            "IAMA:O'Brien\";--@example.com".to_owned(),
        ])
    );
    assert_eq!(some.login_user.as_deref(), Some("IAM:idgraph_reader"));
}

#[tokio::test]
async fn a_wrong_cluster_identifier_is_a_remote_error_naming_the_cluster() {
    let moto = moto();
    let config = aws_config(&moto.url()).await;
    create_cluster(&config, "analytics-1").await;
    let target = ProvisionedTarget::from_sdk_config(
        provisioned(&moto.url(), "no-such-cluster", free_port()),
        &config,
    );
    let error = target.fetch().await.expect_err("no such cluster");
    match &error {
        SourceError::Remote {
            origin,
            status,
            detail,
        } => {
            assert_eq!(origin, "redshift DescribeClusters no-such-cluster");
            // The model's ClusterNotFoundFault is a 404.
            assert_eq!(*status, Some(404));
            assert!(detail.starts_with("ClusterNotFound: "), "{detail}");
            assert!(detail.contains("no-such-cluster"), "{detail}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_url_is_unreachable() {
    // Nothing listens here: every try is refused, the SDK retries, then gives up.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let config = aws_config(&nowhere).await;
    let mut options = IdentityCenterOptions::new(STORE);
    options.endpoint_url = Some(nowhere.clone());
    let identity_center =
        IdentityCenterSource::from_sdk_config(options, &config, Arc::new(NoProgress));
    let cluster = ProvisionedTarget::from_sdk_config(
        provisioned(&nowhere, "analytics-1", free_port()),
        &config,
    );
    let (a, b) = tokio::join!(identity_center.fetch(), cluster.fetch());
    let a = a.expect_err("nothing listens");
    let b = b.expect_err("nothing listens");
    assert_eq!(a.kind(), "unreachable", "{a}");
    assert!(
        a.to_string()
            .starts_with(&format!("identitystore ListUsers {STORE}: unreachable: ")),
        "{a}"
    );
    assert_eq!(b.kind(), "unreachable", "{b}");
    assert!(
        b.to_string()
            .starts_with("redshift DescribeClusters analytics-1: unreachable: "),
        "{b}"
    );
}

#[tokio::test]
async fn serverless_target_reads_the_standin_endpoint_admin_and_catalog() {
    let pg = Postgres::start();
    pg.create_user("IAMR:idgraph-reader", false);
    pg.create_user("sls_admin", true);
    pg.create_user("AWSIDC:carol@example.com", false);
    let log = tempfile::NamedTempFile::new().unwrap();
    let pg_port = pg.port.to_string();
    let standin = redshift_serverless_standin(&[
        "--workgroup",
        "finance-wg",
        "--namespace",
        "finance-ns",
        // The endpoint the API reports is the test's database: no host/port override.
        "--address",
        "127.0.0.1",
        "--endpoint-port",
        &pg_port,
        "--admin",
        "sls_admin",
        "--db-user",
        "IAMR:idgraph-reader",
        "--log",
        log.path().to_str().unwrap(),
    ]);
    let config = aws_config(&standin.url()).await;
    let options = ServerlessOptions {
        target: TargetOptions {
            name: "finance".into(),
            database: "postgres".into(),
            region: Some(REGION.into()),
            endpoint_url: Some(standin.url()),
            host: None,
            port: None,
            sslmode: SslMode::Disable,
            timeout: idgraph_aws::SQL_TIMEOUT,
        },
        workgroup_name: "finance-wg".into(),
        credentials: ServerlessCredentials::GetCredentials,
    };

    let target_source = ServerlessTarget::from_sdk_config(options.clone(), &config);
    assert_eq!(
        (target_source.name(), target_source.kind()),
        ("finance", "serverless")
    );
    let snapshot = target_source.fetch().await.expect("a complete snapshot");
    assert_eq!(snapshot.name, "finance");
    assert_eq!(snapshot_names(&snapshot), user_names(&pg));
    assert_eq!(snapshot.master_user.as_deref(), Some("sls_admin"));
    assert_eq!(snapshot.login_user.as_deref(), Some("IAMR:idgraph-reader"));

    let requests: Vec<serde_json::Value> = std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let operations: Vec<_> = requests
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        ["GetWorkgroup", "GetNamespace", "GetCredentials"]
    );
    assert_eq!(
        requests[2]["body"],
        serde_json::json!({"workgroupName": "finance-wg", "dbName": "postgres", "durationSeconds": 900})
    );

    // Another workgroup: the API's error, naming it.
    let mut options = options;
    options.workgroup_name = "other-wg".into();
    let error = ServerlessTarget::from_sdk_config(options, &config)
        .fetch()
        .await
        .expect_err("no such workgroup");
    assert_eq!(error.kind(), "remote", "{error}");
    assert_eq!(
        error.to_string(),
        "redshift-serverless GetWorkgroup other-wg: ResourceNotFoundException: Workgroup other-wg not found"
    );
}

/// A PostgreSQL server that asks for a cleartext password, keeps it, and refuses the
/// login: it shows exactly which password the target sent.
fn password_catcher() -> (u16, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let read_i32 = |stream: &mut std::net::TcpStream| {
            let mut b = [0; 4];
            stream.read_exact(&mut b).unwrap();
            i32::from_be_bytes(b)
        };
        // The startup packet; answer "no" to TLS and GSS encryption requests.
        loop {
            let len = read_i32(&mut stream);
            let mut payload = vec![0; usize::try_from(len - 4).unwrap()];
            stream.read_exact(&mut payload).unwrap();
            let code = i32::from_be_bytes(payload[..4].try_into().unwrap());
            if code == 80_877_103 || code == 80_877_104 {
                stream.write_all(b"N").unwrap();
            } else {
                break;
            }
        }
        // AuthenticationCleartextPassword.
        stream.write_all(b"R").unwrap();
        stream.write_all(&8_i32.to_be_bytes()).unwrap();
        stream.write_all(&3_i32.to_be_bytes()).unwrap();
        // PasswordMessage.
        let mut kind = [0; 1];
        stream.read_exact(&mut kind).unwrap();
        assert_eq!(&kind, b"p");
        let len = read_i32(&mut stream);
        let mut password = vec![0; usize::try_from(len - 4).unwrap()];
        stream.read_exact(&mut password).unwrap();
        password.pop(); // the terminating NUL
                        // ErrorResponse: 28P01 invalid_password.
        let fields: &[u8] = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0\0";
        stream.write_all(b"E").unwrap();
        stream
            .write_all(&i32::try_from(fields.len() + 4).unwrap().to_be_bytes())
            .unwrap();
        stream.write_all(fields).unwrap();
        stream.flush().unwrap();
        String::from_utf8(password).unwrap()
    });
    (port, handle)
}

/// Everything logged, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// A current-thread runtime (the default of `tokio::test`): the SDK's and sqlx's tasks run
// on this thread, so the thread's default subscriber sees all their logs.
#[tokio::test]
async fn the_cluster_credentials_password_never_leaks() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // With a single dispatcher alive, tracing decides whether a callsite is interesting by
    // asking the default subscriber of whichever thread reaches it first: another test's
    // thread, without one, would make the SDK's callsites silent here. A second dispatcher
    // makes tracing ask every dispatcher alive instead.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());

    let moto = moto();
    let config = aws_config(&moto.url()).await;
    create_cluster(&config, "analytics-1").await;
    let (port, catcher) = password_catcher();
    // Callsites another thread registered while the dispatchers above were being set up.
    tracing::callsite::rebuild_interest_cache();
    let target =
        ProvisionedTarget::from_sdk_config(provisioned(&moto.url(), "analytics-1", port), &config);
    let error = target
        .fetch()
        .await
        .expect_err("the database refuses the login");
    let password = catcher.join().expect("the catcher got a password");

    assert_eq!(password.len(), 32, "moto's GetClusterCredentials password");
    assert_eq!(error.kind(), "credentials", "{error}");
    let shown = format!("{error} {error:?} {target:?}");
    assert!(
        !shown.contains(&password),
        "the password is in the error: {shown}"
    );
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("GetClusterCredentials"),
        "the SDK's logs were captured"
    );
    assert!(!logs.contains(&password), "the password is in the logs");
}

const PROCESS_SECRET: &str = "process-secret-5e1d0c9b77";
const PROCESS_TOKEN: &str = "process-session-token-a41f2e";

// Regression: aws-config was built without `credentials-process` (and `sso`), so the
// profiles engineers have (aws-vault, granted, `aws sso login`) gave no credentials.
#[tokio::test]
async fn a_credential_process_profile_reaches_identity_center_and_its_keys_stay_hidden() {
    let moto = moto();
    let seed = identitystore::Client::new(&aws_config(&moto.url()).await);
    seed.create_user()
        .identity_store_id(STORE)
        .user_name("ann@example.com")
        .display_name("Ann")
        .name(Name::builder().given_name("Ann").family_name("A").build())
        .send()
        .await
        .expect("moto creates the user");

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    // What aws-vault or granted print: credentials with an expiry, as JSON on stdout.
    std::fs::write(
        path("credentials.sh"),
        format!(
            "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"AKIDPROCESS\", \
             \"SecretAccessKey\": \"{PROCESS_SECRET}\", \"SessionToken\": \"{PROCESS_TOKEN}\", \
             \"Expiration\": \"2099-01-01T00:00:00Z\"}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        path("credentials.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        path("aws-config"),
        format!(
            "[profile engineer]\nregion = {REGION}\ncredential_process = {}\n",
            path("credentials.sh").display()
        ),
    )
    .unwrap();
    let scim = crate::util::Org::ann_and_bob().scim_json().to_string();
    std::fs::write(path("scim.json"), scim).unwrap();
    std::fs::write(
        path("idgraph.toml"),
        format!(
            "[store]\npath = \"idgraph.db\"\n\n[idp]\nkind = \"file\"\npath = \"scim.json\"\n\n\
             [identity_center]\nkind = \"aws\"\nidentity_store_id = \"{STORE}\"\n\
             endpoint_url = \"{}\"\n",
            moto.url()
        ),
    )
    .unwrap();

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_idgraph"));
    for variable in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        command.env_remove(variable);
    }
    let output = command
        .args(["check", "--config"])
        .arg(path("idgraph.toml"))
        .env("AWS_CONFIG_FILE", path("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", path("no-credentials"))
        .env("AWS_PROFILE", "engineer")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "trace")
        .output()
        .expect("the idgraph binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("identity_center "))
        .unwrap_or_else(|| panic!("no line for identity_center: {stdout}"));
    assert!(line.contains(" ok ") && line.contains("1 users"), "{line}");
    assert!(stderr.contains("TRACE"), "trace logging was on");
    for secret in [PROCESS_SECRET, PROCESS_TOKEN] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "the profile's {secret} was printed"
        );
    }
}
