//! A PostgreSQL instance of a test's own: `pg_user` is cluster-wide, so a test that
//! asserts on a target's whole user list cannot share the machine's server.
//!
//! `initdb` refuses to run as root, so as root the instance belongs to the `postgres`
//! OS user (which Debian's `postgresql` package creates).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::free_port;

/// The directory of the newest installed PostgreSQL server binaries.
fn bindir() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.retain(|p| p.join("initdb").exists() && p.join("pg_ctl").exists());
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.pop().expect(
        "PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql: run ./scripts/test, which installs them",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Runs a server binary, as the `postgres` OS user when we are root.
fn run_as_owner(program: &Path, args: &[&str]) -> Output {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// A running PostgreSQL instance with trust authentication on 127.0.0.1, stopped and
/// deleted on drop. Its bootstrap superuser is `postgres`.
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Postgres {
    /// `initdb` into a temporary directory and start on a free port, trusting every login.
    pub fn start() -> Self {
        Self::start_with("trust")
    }

    /// As [`Postgres::start`], but logins over TCP must give their password
    /// (SCRAM-SHA-256), so a test can see that a password really travels.
    pub fn start_scram() -> Self {
        Self::start_with("scram-sha-256")
    }

    fn start_with(auth_host: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot give the data directory to the postgres user"
            );
        }
        let data = dir.path().join("data");
        let data_arg = data.to_str().unwrap();
        let bin = bindir();
        let out = run_as_owner(
            &bin.join("initdb"),
            &[
                "-D",
                data_arg,
                "-U",
                "postgres",
                "--auth-local=trust",
                &format!("--auth-host={auth_host}"),
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        let log = dir.path().join("postgres.log");
        let out = run_as_owner(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data_arg,
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Self { dir, port }
    }

    /// Runs SQL through `psql` as the superuser over the Unix socket (trusted whatever the
    /// TCP authentication), stopping at the first error.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let mut child = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-At",
                "-h",
            ])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-d"])
            // As a connection string, so that a database name holding `=` stays a name.
            .arg(format!(
                "dbname='{}'",
                database.replace('\\', "\\\\").replace('\'', "\\'")
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Creates a login role; `name` is quoted, so hostile names work.
    pub fn create_user(&self, name: &str, superuser: bool) {
        let attrs = if superuser {
            "SUPERUSER"
        } else {
            "NOSUPERUSER"
        };
        self.sql(
            "postgres",
            &format!("CREATE ROLE {} LOGIN {attrs};", quote_ident(name)),
        );
    }

    /// Creates a login role with a password.
    pub fn create_user_with_password(&self, name: &str, password: &str) {
        self.sql(
            "postgres",
            &format!(
                "CREATE ROLE {} LOGIN PASSWORD '{}';",
                quote_ident(name),
                password.replace('\'', "''")
            ),
        );
    }

    /// How idgraph reaches `database` as `user`, over TCP without TLS or password.
    pub fn connection(&self, database: &str, user: &str) -> idgraph_sources::postgres::Connection {
        idgraph_sources::postgres::Connection {
            host: "127.0.0.1".into(),
            port: self.port,
            database: database.into(),
            user: user.into(),
            password: None,
            sslmode: idgraph_sources::postgres::SslMode::Disable,
        }
    }

    /// Makes `database` look like Redshift to `login`: the Redshift catalog surface idgraph
    /// reads (`redshift_catalog.sql`), in a schema first on the login's `search_path`
    /// there, before `pg_catalog` (named, so that the fixture shadows it).
    pub fn redshift_catalog(&self, database: &str, login: &str) {
        self.sql(database, include_str!("redshift_catalog.sql"));
        self.sql(
            database,
            &format!(
                "ALTER ROLE {} IN DATABASE {} SET search_path = redshift_catalog, pg_catalog, public;",
                quote_ident(login),
                quote_ident(database)
            ),
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = run_as_owner(
            &bindir().join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

/// A SQL identifier, double-quoted with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
