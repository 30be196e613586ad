//! Real peers the integration tests talk to, started by the tests themselves:
//! PostgreSQL instances of their own, `moto_server`, and `scim2-server`.
//!
//! The Python peers live in the virtualenv `scripts/test` creates (`IDGRAPH_TEST_VENV`,
//! default `.venv` at the repository root). Each peer is a child process stopped on drop.

pub mod postgres;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An executable of the test virtualenv, with a clear panic if `scripts/test` has not
/// created it.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("IDGRAPH_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let bin = venv.join("bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run the tests with ./scripts/test, which installs the test peers",
        bin.display()
    );
    bin
}

/// A TCP port free on the loopback interface right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something accepts connections on `port`, or panics after `limit`.
pub fn wait_for_port(port: u16, limit: Duration, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < limit,
            "{what} did not listen on port {port} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when dropped.
pub struct Process {
    child: Child,
    pub port: u16,
}

impl Process {
    /// Starts `program ARGS` and waits until it listens on `port`.
    pub fn spawn(program: &Path, args: &[&str], port: u16) -> Self {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut process = Self { child, port };
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("{} exited at once: {status}", program.display());
        }
        wait_for_port(
            port,
            Duration::from_secs(30),
            &program.display().to_string(),
        );
        process
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `moto_server` of its own on a free port, for the identitystore and redshift APIs.
pub fn moto() -> Process {
    let port = free_port();
    Process::spawn(
        &venv_bin("moto_server"),
        &["-H", "127.0.0.1", "-p", &port.to_string()],
        port,
    )
}

/// A `scim2-server` of its own on a free port; with `token`, it accepts only that bearer
/// token.
pub fn scim2_server(token: Option<&str>) -> Process {
    let port = free_port();
    let port_arg = port.to_string();
    let mut args = vec!["--hostname", "127.0.0.1", "--port", &port_arg];
    if let Some(token) = token {
        args.extend(["--bearer-token", token]);
    }
    Process::spawn(&venv_bin("scim2-server"), &args, port)
}

/// A `scim2-server` like [`scim2_server`] that announces the service provider
/// configuration `config` (a JSON `ServiceProviderConfig`), e.g. with RFC 9865 cursor
/// pagination turned on or a small `filter.maxResults`.
pub fn scim2_server_with_config(token: Option<&str>, config: &serde_json::Value) -> Process {
    // The server reads the file while it starts; once it listens, the file can go.
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), config.to_string()).expect("write the configuration");
    let path = file
        .path()
        .to_str()
        .expect("a UTF-8 temporary path")
        .to_owned();
    let port = free_port();
    let port_arg = port.to_string();
    let mut args = vec![
        "--hostname",
        "127.0.0.1",
        "--port",
        &port_arg,
        "--service-provider-config",
        &path,
    ];
    if let Some(token) = token {
        args.extend(["--bearer-token", token]);
    }
    Process::spawn(&venv_bin("scim2-server"), &args, port)
}

/// A stand-in for the Redshift Serverless API (moto has none) on a free port: one
/// workgroup in one namespace, described by `args` (see `redshift_serverless_standin.py`:
/// `--workgroup`, `--namespace`, `--address`, `--endpoint-port`, `--admin`, `--db-user`,
/// `--db-password`, `--log`).
pub fn redshift_serverless_standin(args: &[&str]) -> Process {
    let port = free_port();
    let port_arg = port.to_string();
    let script = repo().join("tests/peers/redshift_serverless_standin.py");
    let mut all = vec![
        script.to_str().expect("a UTF-8 path to the stand-in"),
        "--port",
        &port_arg,
    ];
    all.extend_from_slice(args);
    Process::spawn(Path::new("python3"), &all, port)
}

/// Sends `body` as SCIM JSON with `method` to `{scim}/v2/{path}` with bearer `token`;
/// the answer's status and JSON body (`Null` when it has none).
pub async fn scim_send(
    scim: &Process,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: &serde_json::Value,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}/v2/{path}", scim.url()))
        .bearer_auth(token)
        .header("Content-Type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .expect("a SCIM request");
    let status = response.status();
    let text = response.text().await.expect("a SCIM answer");
    (status, serde_json::from_str(&text).unwrap_or_default())
}
