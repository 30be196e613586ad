use std::path::{Path, PathBuf};
use std::time::Duration;

use idgraph_aws::{ProvisionedCredentials, ServerlessCredentials};
use idgraph_model::Mapping;
use idgraph_sources::postgres::SslMode;
use idgraph_sources::scim::ScimOptions;
use idgraph_sources::Secret;

use super::*;

const MINIMAL: &str = r#"
[idp]
kind = "file"
path = "exports/scim.json"

[identity_center]
kind = "file"
path = "/abs/ic.json"

[[targets]]
name = "analytics"
kind = "file"
path = "exports/analytics.csv"
master_user = "awsuser"
"#;

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("idgraph.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn load_text(text: &str) -> (tempfile::TempDir, Result<Settings, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), text);
    let result = load_with_env(&path, Some(Default::default()));
    (dir, result)
}

#[test]
fn minimal_file_config_resolves_paths_against_the_config_directory() {
    let (dir, settings) = load_text(MINIMAL);
    let settings = settings.unwrap();
    assert!(
        matches!(&settings.idp, IdpSettings::File { path } if *path == dir.path().join("exports/scim.json")),
        "{:?}",
        settings.idp
    );
    assert_eq!(
        settings.identity_center,
        IdentityCenterSettings::File {
            path: PathBuf::from("/abs/ic.json")
        }
    );
    assert_eq!(settings.store_path, dir.path().join("idgraph.db"));
    assert_eq!(settings.cron, "0 */15 * * * *");
    assert_eq!(settings.mapping, Mapping::default());
    assert_eq!(
        settings.targets[0].source,
        TargetSource::File {
            path: dir.path().join("exports/analytics.csv"),
            master_user: Some("awsuser".into())
        }
    );
}

#[test]
fn target_concurrency_defaults_to_4_and_must_be_positive() {
    let (_dir, settings) = load_text(MINIMAL);
    assert_eq!(settings.unwrap().target_concurrency, 4);
    let (_dir, settings) = load_text(&format!(
        "{MINIMAL}\n[reconcile]\ntarget_concurrency = 16\n"
    ));
    assert_eq!(settings.unwrap().target_concurrency, 16);
    let (_dir, err) = load_text(&format!("{MINIMAL}\n[reconcile]\ntarget_concurrency = 0\n"));
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("reconcile.target_concurrency must be at least 1"),
        "{message}"
    );
}

#[test]
fn unknown_key_is_named() {
    let (_dir, err) = load_text(&format!("{MINIMAL}\n[mapping]\nprefixs = [\"IAM:\"]\n"));
    let message = err.unwrap_err().to_string();
    assert!(message.contains("prefixs"), "{message}");
}

#[test]
fn missing_section_is_named() {
    let (_dir, err) = load_text("[idp]\nkind = \"file\"\npath = \"x\"\n");
    let message = err.unwrap_err().to_string();
    assert!(message.contains("identity_center"), "{message}");
}

#[test]
fn unsupported_and_inconsistent_values_are_all_listed() {
    let text = r#"
[idp]
kind = "scim"
url = "https://idp.example.com/scim/v2"
token_env = "NOT_SET_ANYWHERE"
paging = "pages"

[identity_center]
kind = "file"

[[targets]]
name = "idp"
kind = "provisioned"
sslmode = "verify_full"

[[targets]]
name = "wg"
kind = "serverless"
workgroup_name = "finance"
database = "dev"
credentials = "get_cluster_credentials"

[[targets]]
name = "a"
kind = "file"
path = "a.csv"

[[targets]]
name = "a"
kind = "redshift"
"#;
    let (_dir, err) = load_text(text);
    let message = err.unwrap_err().to_string();
    for expected in [
        "idp.token_env names the environment variable NOT_SET_ANYWHERE, which is not set",
        "idp.paging: unknown variant `pages`, expected one of `auto`, `index`, `cursor`",
        "identity_center.path is required",
        "targets[0].name = \"idp\" is reserved",
        "targets[0].cluster_identifier is required for kind \"provisioned\"",
        "targets[0].database is required for kind \"provisioned\"",
        "targets[0].db_user is required for kind \"get_cluster_credentials\"",
        "targets[0].sslmode: unknown variant `verify_full`, expected one of `disable`, \
         `prefer`, `require`, `verify-full`",
        "targets[1].credentials: unknown variant `get_cluster_credentials`, expected \
         `serverless_get_credentials` or `static`",
        "targets[3].name = \"a\" is used by another target",
        "targets[3].kind: unknown variant `redshift`, expected one of `provisioned`, \
         `serverless`, `postgres`, `file`",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in {message}"
        );
    }
}

#[test]
fn live_sources_read_their_secrets_from_the_environment() {
    let text = r#"
[idp]
kind = "scim"
url = "https://idp.example.com/scim/v2"
token_env = "SCIM_TOKEN"
page_size = 50

[identity_center]
kind = "aws"
identity_store_id = "d-1234567890"
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:5000"

[[targets]]
name = "analytics"
kind = "provisioned"
cluster_identifier = "analytics"
database = "dev"
db_user = "idgraph_reader"
host = "127.0.0.1"
port = 5439

[[targets]]
name = "finance"
kind = "serverless"
workgroup_name = "finance-wg"
database = "dev"
credentials = "static"
user_env = "FIN_USER"
password_env = "FIN_PASSWORD"
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), text);
    let env = config::Map::from([
        ("SCIM_TOKEN".to_owned(), "tok-123".to_owned()),
        ("FIN_USER".to_owned(), "reader".to_owned()),
        ("FIN_PASSWORD".to_owned(), "pw-456".to_owned()),
    ]);
    let settings = load_with_env(&path, Some(env)).unwrap();
    let IdpSettings::Scim(scim) = &settings.idp else {
        panic!("{:?}", settings.idp)
    };
    assert_eq!(scim.token.as_ref().map(Secret::expose), Some("tok-123"));
    assert_eq!(scim.page_size, 50);
    assert!(matches!(
        &settings.identity_center,
        IdentityCenterSettings::Aws(o) if o.identity_store_id == "d-1234567890" && o.region.as_deref() == Some("eu-west-1")
    ));
    assert!(matches!(
        &settings.targets[0].source,
        TargetSource::Provisioned(o) if o.credentials == ProvisionedCredentials::GetClusterCredentials { db_user: "idgraph_reader".into() } && o.target.port == Some(5439) && o.target.sslmode == SslMode::Require
    ));
    assert!(matches!(
        &settings.targets[1].source,
        TargetSource::Serverless(o) if o.credentials == ServerlessCredentials::Static { user: "reader".into(), password: Secret::new("pw-456") }
    ));
    // Secrets never show in the settings' Debug form.
    let shown = format!("{settings:?}");
    assert!(
        !shown.contains("tok-123") && !shown.contains("pw-456"),
        "{shown}"
    );
}

const SCIM: &str = r#"
[idp]
kind = "scim"
url = "https://idp.example.com/scim/v2"

[identity_center]
kind = "file"
path = "ic.json"
"#;

/// [`SCIM`] with `lines` added to its `[idp]` table.
fn load_scim(lines: &str) -> (tempfile::TempDir, Result<Settings, ConfigError>) {
    load_text(&SCIM.replace(
        "[identity_center]",
        &format!("{lines}\n\n[identity_center]"),
    ))
}

fn scim(settings: &Settings) -> &ScimOptions {
    match &settings.idp {
        IdpSettings::Scim(options) => options,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_scim_response_limit_defaults_to_64_mib_and_must_be_positive() {
    let (_dir, settings) = load_scim("");
    assert_eq!(
        scim(&settings.unwrap()).max_response_bytes,
        64 * 1024 * 1024
    );
    let (_dir, settings) = load_scim("max_response_bytes = 1000");
    assert_eq!(scim(&settings.unwrap()).max_response_bytes, 1000);
    let (_dir, err) = load_scim("max_response_bytes = 0");
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("idp.max_response_bytes must be at least 1"),
        "{message}"
    );
}

#[test]
fn the_scim_user_limit_defaults_to_a_million_and_must_be_positive() {
    let (_dir, settings) = load_scim("");
    assert_eq!(scim(&settings.unwrap()).max_users, 1_000_000);
    let (_dir, settings) = load_scim("max_users = 300000");
    assert_eq!(scim(&settings.unwrap()).max_users, 300_000);
    let (_dir, err) = load_scim("max_users = 0");
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("idp.max_users must be at least 1"),
        "{message}"
    );
}

#[test]
fn credentials_in_the_scim_url_are_refused_without_being_shown() {
    // Regression: user info replaced the bearer token with Basic auth, and errors
    // showed it.
    let (_dir, err) = load_text(&SCIM.replace(
        "https://idp.example.com",
        "https://admin:hunter2@idp.example.com",
    ));
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("idp.url is not usable: it holds credentials"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn a_scim_url_is_checked_as_the_source_parses_it() {
    // Regression: `idgraph check` said "config ok" for a URL the source then refused.
    for url in [
        "http://exa mple.com/scim/v2",
        "idp.example.com/scim/v2",
        "https://idp.example.com/scim/v2?tenant=1",
        "ftp://idp.example.com/scim/v2",
    ] {
        let (_dir, err) = load_text(&SCIM.replace("https://idp.example.com/scim/v2", url));
        let message = err.expect_err(url).to_string();
        assert!(message.contains("idp.url is not usable: "), "{message}");
    }
}

#[test]
fn a_secret_where_a_variable_name_belongs_is_not_shown() {
    // Regression: `token_env = "<the token>"` echoed the token in the error.
    let (_dir, err) = load_scim("token_env = \"eyJhbGciOiJIUzI1NiJ9.s3cr3t-t0ken\"");
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains(
            "idp.token_env does not name an environment variable (it should hold a \
             variable's name, not the secret itself)"
        ),
        "{message}"
    );
    assert!(!message.contains("s3cr3t-t0ken"), "{message}");

    let text = format!(
        "{MINIMAL}\n[[targets]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"h\"\n\
         database = \"d\"\nuser_env = \"DB_USER\"\npassword_env = \"hunter2!\"\n"
    );
    let (_dir, err) = load_text(&text);
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("targets[1].user_env names the environment variable DB_USER"),
        "{message}"
    );
    assert!(
        message.contains("targets[1].password_env does not name an environment variable"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn a_timeout_of_zero_is_refused() {
    // Regression: timeout_seconds = 0 was accepted, and then every request timed out.
    let text = format!(
        "{MINIMAL}\n[[targets]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"h\"\n\
         database = \"d\"\nuser_env = \"DB_USER\"\ntimeout_seconds = 0\n\n\
         [[targets]]\nname = \"rs\"\nkind = \"provisioned\"\ncluster_identifier = \"c\"\n\
         database = \"d\"\ndb_user = \"u\"\ntimeout_seconds = 0\n"
    );
    let (_dir, err) = load_text(&text);
    let message = err.unwrap_err().to_string();
    for key in ["targets[1]", "targets[2]"] {
        assert!(
            message.contains(&format!("{key}.timeout_seconds must be at least 1")),
            "{message}"
        );
    }
    let (_dir, err) = load_scim("timeout_seconds = 0");
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("idp.timeout_seconds must be at least 1"),
        "{message}"
    );
    let (_dir, settings) = load_scim("timeout_seconds = 1");
    assert_eq!(scim(&settings.unwrap()).timeout, Duration::from_secs(1));
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), MINIMAL);
    let env = config::Map::from([
        (
            "IDGRAPH__STORE__PATH".to_owned(),
            "/var/lib/idgraph/x.db".to_owned(),
        ),
        (
            "IDGRAPH__HTTP__LISTEN".to_owned(),
            "0.0.0.0:9999".to_owned(),
        ),
    ]);
    let settings = load_with_env(&path, Some(env)).unwrap();
    assert_eq!(settings.store_path, PathBuf::from("/var/lib/idgraph/x.db"));
    assert_eq!(settings.http.addresses[0].port(), 9999);
}

#[test]
fn http_defaults_bound_slow_clients() {
    let (_dir, settings) = load_text(MINIMAL);
    let http = settings.unwrap().http;
    assert_eq!(http.addresses, vec!["127.0.0.1:10187".parse().unwrap()]);
    assert_eq!(http.header_timeout, Duration::from_secs(10));
    assert_eq!(http.max_connections, 128);
}

// Regression: `listen = "localhost:10187"` was rejected as not an address.
#[test]
fn listen_takes_a_host_name() {
    let (_dir, settings) = load_text(&format!(
        "[http]\nlisten = \"localhost:10187\"\nheader_timeout_seconds = 2\nmax_connections = 8\n{MINIMAL}"
    ));
    let http = settings.unwrap().http;
    assert_eq!(http.listen, "localhost:10187");
    assert!(!http.addresses.is_empty());
    assert!(
        http.addresses
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 10187),
        "{:?}",
        http.addresses
    );
    assert_eq!(http.header_timeout, Duration::from_secs(2));
    assert_eq!(http.max_connections, 8);
}

#[test]
fn a_listen_that_is_no_address_and_zero_limits_are_named() {
    for listen in ["nonsense", "localhost", "localhost:http", "127.0.0.1:99999"] {
        let (_dir, err) = load_text(&format!("[http]\nlisten = \"{listen}\"\n{MINIMAL}"));
        let message = err.unwrap_err().to_string();
        assert!(
            message.contains(&format!("http.listen = \"{listen}\" is neither an address")),
            "{message}"
        );
    }
    let (_dir, err) = load_text(&format!(
        "[http]\nheader_timeout_seconds = 0\nmax_connections = 0\n{MINIMAL}"
    ));
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("http.header_timeout_seconds must be at least 1")
            && message.contains("http.max_connections must be at least 1"),
        "{message}"
    );
}

#[test]
fn missing_file_is_named() {
    let err = load_with_env(Path::new("/nonexistent/idgraph.toml"), None).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/idgraph.toml"));
}

#[test]
fn a_key_of_another_kind_is_refused_with_the_keys_that_apply() {
    // Regression: every kind's keys were accepted by every kind, and ignored.
    let text = format!(
        "{MINIMAL}\n[[targets]]\nname = \"db\"\nkind = \"file\"\npath = \"db.csv\"\n\
         cluster_identifier = \"c\"\nsslmode = \"require\"\n"
    )
    .replace(
        "path = \"exports/scim.json\"",
        "path = \"exports/scim.json\"\nurl = \"https://idp.example.com/scim/v2\"",
    );
    let (_dir, err) = load_text(&text);
    let message = err.unwrap_err().to_string();
    for expected in [
        "idp.url: unknown field `url`, expected `path` or `deadline_seconds`",
        "targets[1].cluster_identifier: unknown field `cluster_identifier`",
        "targets[1].sslmode: unknown field `sslmode`",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in {message}"
        );
    }
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    let (_dir, err) = load_scim("page_size = \"fifty\"\nconcurrency = -1");
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("idp.page_size: invalid type: string \"fifty\""),
        "{message}"
    );
    assert!(
        message.contains("idp.concurrency: invalid value"),
        "{message}"
    );
}

/// [`MINIMAL`] loaded with the environment `vars`.
fn load_env(
    text: &str,
    vars: &[(&str, &str)],
) -> (tempfile::TempDir, Result<Settings, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), text);
    let env = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let result = load_with_env(&path, Some(env));
    (dir, result)
}

// Regression: `IDGRAPH__MAPPING__LOCAL_ALLOWLIST=a,b` failed with "expected a sequence".
#[test]
fn lists_take_comma_separated_values_from_the_environment() {
    let (_dir, settings) = load_env(
        MINIMAL,
        &[
            ("IDGRAPH__MAPPING__LOCAL_ALLOWLIST", "a,b"),
            ("IDGRAPH__MAPPING__SYSTEM_USERS", "rdsdb, postgres"),
            ("IDGRAPH__MAPPING__MATCH_ON", "email"),
            ("IDGRAPH__MAPPING__PREFIXES", "IAM:,IAMA:,IAMR:,ns:"),
            ("IDGRAPH__MAPPING__ROLE_PREFIXES", ""),
        ],
    );
    let mapping = settings.unwrap().mapping;
    assert_eq!(mapping.local_allowlist, ["a", "b"]);
    assert_eq!(mapping.system_users, ["rdsdb", "postgres"]);
    assert_eq!(mapping.match_on, [idgraph_model::MatchOn::Email]);
    assert_eq!(mapping.prefixes, ["IAM:", "IAMA:", "IAMR:", "ns:"]);
    assert!(mapping.role_prefixes.is_empty(), "an empty value, no list");
    // A list of one that looks like a number is still a list of names.
    let (_dir, settings) = load_env(MINIMAL, &[("IDGRAPH__MAPPING__LOCAL_ALLOWLIST", "42")]);
    assert_eq!(settings.unwrap().mapping.local_allowlist, ["42"]);
}

#[test]
fn every_list_of_the_mapping_is_read_as_a_list_from_the_environment() {
    let lists: Vec<String> = serde_json::to_value(Mapping::default())
        .unwrap()
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_array())
        .map(|(k, _)| format!("mapping.{k}"))
        .collect();
    for list in &lists {
        assert!(
            LIST_KEYS.contains(&list.as_str()),
            "{list} is not in LIST_KEYS"
        );
    }
    assert_eq!(lists.len(), LIST_KEYS.len());
}

// Regression: a bad value from the environment was reported against the file.
#[test]
fn an_error_from_the_environment_names_the_variable_not_the_file() {
    for (variable, value, expected) in [
        ("IDGRAPH__MAPPING__MATCH_ON", "email,phone", "phone"),
        ("IDGRAPH__RECONCILE__TARGET_CONCURRENCY", "many", "many"),
        ("IDGRAPH__STORE__BOGUS", "x", "bogus"),
    ] {
        let (dir, err) = load_env(MINIMAL, &[(variable, value)]);
        let message = err.unwrap_err().to_string();
        assert!(message.contains(variable), "{message}");
        assert!(message.contains(expected), "{message}");
        let file = dir.path().join("idgraph.toml");
        assert!(!message.contains(&file.display().to_string()), "{message}");
    }
    // A value of the right type that validation refuses: the problem names the variable.
    let (_dir, err) = load_env(MINIMAL, &[("IDGRAPH__RECONCILE__TARGET_CONCURRENCY", "0")]);
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains(
            "reconcile.target_concurrency must be at least 1 (set by IDGRAPH__RECONCILE__TARGET_CONCURRENCY)"
        ),
        "{message}"
    );
    // A mistake in the file still names the file.
    let (dir, err) = load_env(&format!("{MINIMAL}\n[store]\nbogus = 1\n"), &[]);
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains(&dir.path().join("idgraph.toml").display().to_string()),
        "{message}"
    );
}

/// A target of `kind` with static credentials whose password comes from `password`
/// (`password_env = …` or `password_file = …` lines).
fn static_target(kind: &str, password: &str) -> String {
    let specific = match kind {
        "postgres" => "host = \"db.example.com\"\n",
        "provisioned" => "cluster_identifier = \"c1\"\ncredentials = \"static\"\n",
        _ => "workgroup_name = \"wg\"\ncredentials = \"static\"\n",
    };
    format!(
        "{MINIMAL}\n[[targets]]\nname = \"db\"\nkind = \"{kind}\"\ndatabase = \"dev\"\n\
         {specific}user_env = \"DB_USER\"\n{password}\n"
    )
}

/// The password of the second target, as validated.
fn static_password(settings: &Settings) -> Option<&Secret> {
    match &settings.targets[1].source {
        TargetSource::Postgres { connection, .. } => connection.password.as_ref(),
        TargetSource::Provisioned(o) => match &o.credentials {
            ProvisionedCredentials::Static { password, .. } => Some(password),
            other => panic!("{other:?}"),
        },
        TargetSource::Serverless(o) => match &o.credentials {
            ServerlessCredentials::Static { password, .. } => Some(password),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_database_password_may_come_from_a_file() {
    for kind in ["postgres", "provisioned", "serverless"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db-password"), "  pw-from-file\n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let env = config::Map::from([
            ("DB_USER".to_owned(), "reader".to_owned()),
            ("DB_PASSWORD".to_owned(), "pw-from-env".to_owned()),
        ]);
        let load = |password: &str| {
            let path = write(dir.path(), &static_target(kind, password));
            load_with_env(&path, Some(env.clone()))
        };

        let settings = load("password_file = \"db-password\"").unwrap();
        assert_eq!(
            static_password(&settings).map(Secret::expose),
            Some("pw-from-file"),
            "{kind}"
        );
        assert!(!format!("{settings:?}").contains("pw-from-file"));
        let settings = load("password_env = \"DB_PASSWORD\"").unwrap();
        assert_eq!(
            static_password(&settings).map(Secret::expose),
            Some("pw-from-env"),
            "{kind}"
        );

        for (password, expected) in [
            (
                "password_env = \"DB_PASSWORD\"\npassword_file = \"db-password\"",
                "targets[1].password_env and targets[1].password_file are both set; set one",
            ),
            ("password_file = \"empty\"", "targets[1].password_file"),
            ("password_file = \"missing\"", "targets[1].password_file"),
        ] {
            let message = load(password).unwrap_err().to_string();
            assert!(message.contains(expected), "{kind}: {message}");
        }
        let message = load("password_file = \"empty\"").unwrap_err().to_string();
        assert!(message.contains("is empty"), "{kind}: {message}");
        let message = load("password_file = \"missing\"").unwrap_err().to_string();
        assert!(message.contains("cannot be read"), "{kind}: {message}");

        // Commands that only read the store read no password file.
        let path = write(
            dir.path(),
            &static_target(kind, "password_file = \"missing\""),
        );
        assert!(for_store(&path).is_ok(), "{kind}");
    }
    // Redshift targets need a password from one place or the other.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &static_target("provisioned", ""));
    let env = config::Map::from([("DB_USER".to_owned(), "reader".to_owned())]);
    let message = load_with_env(&path, Some(env)).unwrap_err().to_string();
    assert!(
        message.contains("targets[1].password_env or targets[1].password_file"),
        "{message}"
    );
}

// Regression: the default port was 9187, postgres_exporter's.
#[test]
fn the_default_port_is_not_an_exporter_s_the_prometheus_wiki_lists() {
    let (_dir, settings) = load_text(MINIMAL);
    let port = settings.unwrap().http.addresses[0].port();
    assert_eq!(port, 10187);
    assert!(!(9100..=9999).contains(&port));
}

#[test]
fn the_watch_interval_defaults_to_30_seconds_0_turns_it_off_and_is_bounded() {
    let (_dir, settings) = load_text(MINIMAL);
    assert_eq!(
        settings.unwrap().watch_interval,
        Some(Duration::from_secs(30))
    );
    let (_dir, settings) = load_text(&format!("{MINIMAL}\n[watch]\ninterval_seconds = 2\n"));
    assert_eq!(
        settings.unwrap().watch_interval,
        Some(Duration::from_secs(2))
    );
    let (_dir, settings) = load_text(&format!("{MINIMAL}\n[watch]\ninterval_seconds = 0\n"));
    assert_eq!(settings.unwrap().watch_interval, None);
    let (_dir, err) = load_text(&format!("{MINIMAL}\n[watch]\ninterval_seconds = 100000\n"));
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("watch.interval_seconds = 100000 must be at most 86400"),
        "{message}"
    );
    for bad in [
        "interval_seconds = -1",
        "interval_seconds = \"fast\"",
        "every = 5",
    ] {
        let (_dir, err) = load_text(&format!("{MINIMAL}\n[watch]\n{bad}\n"));
        let message = err.unwrap_err().to_string();
        assert!(message.contains("watch"), "{bad}: {message}");
    }
}
