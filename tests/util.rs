//! Helpers for the integration tests: an organisation builder that writes the three
//! exports, a temporary workspace with a config, and a runner for the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

/// A person in the IdP and Identity Center, written as the exports idgraph reads.
#[derive(Clone)]
pub struct Person {
    pub login: String,
    pub active: bool,
    pub in_idp: bool,
    pub in_ic: bool,
}

/// An organisation: people plus database users per target.
#[derive(Clone, Default)]
pub struct Org {
    pub people: Vec<Person>,
    /// (target, usename, superuser)
    pub db_users: Vec<(String, String, bool)>,
}

impl Org {
    /// Ann, active, and Bob, deactivated in the IdP (he left): where most tests start.
    pub fn ann_and_bob() -> Self {
        Org::default()
            .person("ann@example.com")
            .person("bob@example.com")
            .edit(|p| p.active = false)
    }

    /// Adds an active person `login` present in both the IdP and Identity Center.
    pub fn person(mut self, login: &str) -> Self {
        self.people.push(Person {
            login: login.to_owned(),
            active: true,
            in_idp: true,
            in_ic: true,
        });
        self
    }

    /// Changes the last added person.
    pub fn edit(mut self, f: impl FnOnce(&mut Person)) -> Self {
        f(self.people.last_mut().expect("a person to edit"));
        self
    }

    pub fn db(mut self, target: &str, name: &str, superuser: bool) -> Self {
        self.db_users
            .push((target.to_owned(), name.to_owned(), superuser));
        self
    }

    pub fn without_db(mut self, target: &str, name: &str) -> Self {
        self.db_users
            .retain(|(t, n, _)| !(t == target && n == name));
        self
    }

    pub fn scim_json(&self) -> Value {
        let users: Vec<Value> = self
            .people
            .iter()
            .filter(|p| p.in_idp)
            .map(|p| {
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "id": format!("idp-{}", p.login),
                    "externalId": format!("ext-{}", p.login),
                    "userName": p.login,
                    "active": p.active,
                    "emails": [{"value": p.login, "type": "work", "primary": true}],
                })
            })
            .collect();
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": users.len(),
            "Resources": users,
        })
    }

    pub fn identity_store_json(&self) -> Value {
        let users: Vec<Value> = self
            .people
            .iter()
            .filter(|p| p.in_ic)
            .map(|p| {
                json!({
                    "IdentityStoreId": "d-1234567890",
                    "UserId": format!("ic-{}", p.login),
                    "UserName": p.login,
                    "Emails": [{"Value": p.login, "Type": "work", "Primary": true}],
                    "ExternalIds": [{"Issuer": "scim", "Id": format!("ext-{}", p.login)}],
                })
            })
            .collect();
        json!({ "Users": users })
    }

    /// The target's `pg_user`, with the master user `awsuser` first, as every real catalog
    /// holds it (a catalog without it fails as not read).
    pub fn pg_user_csv(&self, target: &str) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["usename", "usesysid", "usecreatedb", "usesuper", "valuntil"])
            .unwrap();
        w.write_record(["awsuser", "100", "t", "t", ""]).unwrap();
        for (i, (_, name, superuser)) in self
            .db_users
            .iter()
            .filter(|(t, n, _)| t == target && n != "awsuser")
            .enumerate()
        {
            let flag = if *superuser { "t" } else { "f" };
            w.write_record([name.as_str(), &(101 + i).to_string(), flag, flag, ""])
                .unwrap();
        }
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }

    pub fn targets(&self) -> Vec<String> {
        let mut targets: Vec<String> = self.db_users.iter().map(|(t, _, _)| t.clone()).collect();
        targets.sort();
        targets.dedup();
        targets
    }
}

/// A temporary directory holding a config, the exports, and the store.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    targets: Vec<String>,
    mapping: String,
    /// `[[targets]]` tables written verbatim after the file targets.
    extra_targets: String,
}

impl Workspace {
    /// Writes `org`'s exports and a config with file sources for them.
    pub fn new(org: &Org) -> Self {
        Self::with_mapping(org, "")
    }

    /// As [`Workspace::new`], with a `[mapping]` section body.
    pub fn with_mapping(org: &Org, mapping: &str) -> Self {
        Self::build(org, mapping, "")
    }

    /// The IdP and Identity Center exports of `org`, its file targets, and the
    /// `[[targets]]` tables of `targets` (live targets).
    pub fn with_targets(org: &Org, targets: &str) -> Self {
        Self::build(org, "", targets)
    }

    /// As [`Workspace::with_targets`], with a `[mapping]` section body.
    pub fn with_targets_and_mapping(org: &Org, targets: &str, mapping: &str) -> Self {
        Self::build(org, mapping, targets)
    }

    fn build(org: &Org, mapping: &str, extra_targets: &str) -> Self {
        let ws = Self {
            dir: tempfile::tempdir().unwrap(),
            targets: org.targets(),
            mapping: mapping.to_owned(),
            extra_targets: extra_targets.to_owned(),
        };
        ws.write_config();
        ws.write_org(org);
        ws
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("idgraph.toml")
    }

    fn write_config(&self) {
        let mut text = String::from(
            "[store]\npath = \"store/idgraph.db\"\n\n\
             [idp]\nkind = \"file\"\npath = \"exports/scim.json\"\n\n\
             [identity_center]\nkind = \"file\"\npath = \"exports/identitystore.json\"\n\n",
        );
        for t in &self.targets {
            text.push_str(&format!(
                "[[targets]]\nname = {}\nkind = \"file\"\npath = \"exports/{}.csv\"\nmaster_user = \"awsuser\"\n\n",
                toml_string(t),
                file_stem(t)
            ));
        }
        text.push_str(&self.extra_targets);
        text.push_str(&format!("\n[mapping]\n{}\n", self.mapping));
        std::fs::create_dir_all(self.path("store")).unwrap();
        std::fs::write(self.config(), text).unwrap();
    }

    /// (Re)writes every export from `org`.
    pub fn write_org(&self, org: &Org) {
        std::fs::create_dir_all(self.path("exports")).unwrap();
        self.write("exports/scim.json", &org.scim_json().to_string());
        self.write(
            "exports/identitystore.json",
            &org.identity_store_json().to_string(),
        );
        for t in &self.targets {
            self.write(
                &format!("exports/{}.csv", file_stem(t)),
                &org.pg_user_csv(t),
            );
        }
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path(rel)).unwrap();
    }

    /// Runs `idgraph ARGS --config <this config>`.
    pub fn idgraph(&self, args: &[&str]) -> Output {
        idgraph_with_config(&self.config(), args)
    }

    /// Runs `idgraph ARGS --config <this config>` with extra environment variables.
    pub fn idgraph_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_idgraph"))
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .output()
            .expect("the idgraph binary runs")
    }

    /// Runs `export` over all of history into the directory `rel` of the workspace.
    pub fn export_everything(&self, rel: &str) -> Output {
        let out = self.path(rel);
        self.idgraph(&[
            "export",
            "--since",
            "2000-01-01",
            "--until",
            "2099-12-31",
            "--out",
            out.to_str().expect("a UTF-8 path"),
        ])
    }

    /// Asserts that each of `commands` exits 0, showing its stderr when not.
    pub fn assert_succeeds(&self, commands: &[&[&str]]) {
        for args in commands {
            let output = self.idgraph(args);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// Runs `reconcile --format json`; returns the exit status and the parsed report.
    pub fn reconcile(&self) -> (i32, Value) {
        json_output(self.idgraph(&["reconcile", "--format", "json"]))
    }

    /// Bytes the store occupies on disk, its WAL included.
    pub fn store_size(&self) -> u64 {
        ["store/idgraph.db", "store/idgraph.db-wal"]
            .iter()
            .filter_map(|p| std::fs::metadata(self.path(p)).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Runs the real binary with `--config` after the subcommand's own arguments.
pub fn idgraph_with_config(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idgraph"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .output()
        .expect("the idgraph binary runs")
}

/// The exit status and stdout parsed as JSON, with stderr in the panic message if not.
pub fn json_output(output: Output) -> (i32, Value) {
    let code = output.status.code().expect("exited, not killed");
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (code, value)
}

/// `(kind, reason, severity, target, db_user or user_name)` of every finding in `list`,
/// sorted, for comparing with an expected set.
pub fn summary(list: &Value) -> Vec<(String, String, String, String, String)> {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_owned();
    let mut out: Vec<_> = list
        .as_array()
        .expect("an array of findings")
        .iter()
        .map(|f| {
            let subject = if f["db_user"].is_null() {
                s(f, "user_name")
            } else {
                s(f, "db_user")
            };
            (
                s(f, "kind"),
                s(f, "reason"),
                s(f, "severity"),
                s(f, "target"),
                subject,
            )
        })
        .collect();
    out.sort();
    out
}

/// Owned tuple for [`summary`] comparisons.
pub fn row(
    kind: &str,
    reason: &str,
    severity: &str,
    target: &str,
    subject: &str,
) -> (String, String, String, String, String) {
    (
        kind.into(),
        reason.into(),
        severity.into(),
        target.into(),
        subject.into(),
    )
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn file_stem(target: &str) -> String {
    target
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A PostgreSQL port that accepts connections (the kernel's backlog completes them) and
/// never answers, and a `postgres` target named `silent` pointing at it with
/// `deadline_seconds`; its user comes from `SILENT_USER`. Keep the listener alive.
pub fn silent_target(deadline_seconds: u64) -> (std::net::TcpListener, String) {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let target = format!(
        "[[targets]]\nname = \"silent\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         database = \"postgres\"\nuser_env = \"SILENT_USER\"\nsslmode = \"disable\"\n\
         timeout_seconds = 600\ndeadline_seconds = {deadline_seconds}\n"
    );
    (silent, target)
}
