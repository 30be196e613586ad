//! Validating `[[targets]]`: unique names, and a function per kind that turns that kind's
//! table into a [`TargetSource`], pushing one problem per bad key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use idgraph_aws::{
    ProvisionedCredentials, ProvisionedOptions, ServerlessCredentials, ServerlessOptions,
    TargetOptions,
};
use idgraph_sources::postgres::Connection;
use idgraph_sources::Secret;

use super::raw::{
    FileTargetTable, PostgresLogin, PostgresTable, ProvisionedLogin, ProvisionedTable,
    ServerlessLogin, ServerlessTable, Table, TargetKind,
};
use super::settings::{TargetSettings, TargetSource, DEFAULT_SQL_TIMEOUT};
use super::validate::{
    deadline, from_env, kind, required, required_path, seconds, secret_from_env_or_file, typed,
};

/// Source names reserved for the IdP and Identity Center; no target may take them.
const RESERVED_NAMES: [&str; 2] = ["idp", "identity_center"];

/// Environment lookup, as [`super::validate::validate`] takes it.
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `[[targets]]`: unique names that no source reserves, and each table's kind. A target
/// with a problem is left out, so the result only counts when `problems` stays empty.
pub(super) fn target_settings(
    tables: Vec<Table>,
    base: &Path,
    env: Env<'_>,
    problems: &mut Vec<String>,
) -> Vec<TargetSettings> {
    let mut names = HashSet::new();
    let mut targets = Vec::with_capacity(tables.len());
    for (i, table) in tables.into_iter().enumerate() {
        let key = format!("targets[{i}]");
        // Read before the kind, so that a name is checked even in a table of no kind.
        if let Some(name) = table.get("name").and_then(|name| name.as_str()) {
            check_name(&key, name, &mut names, problems);
        }
        if let Some(target) = target(&key, table, base, env, problems) {
            targets.push(target);
        }
    }
    targets
}

/// A target's name: not empty, not a reserved source name, not another target's.
fn check_name(key: &str, name: &str, names: &mut HashSet<String>, problems: &mut Vec<String>) {
    if name.trim().is_empty() {
        problems.push(format!("{key}.name must not be empty"));
    } else if name.ends_with(crate::activity::SOURCE_SUFFIX) {
        problems.push(format!(
            "{key}.name = \"{name}\" ends with \"{}\", which names a target's logins; choose another name",
            crate::activity::SOURCE_SUFFIX
        ));
    } else if RESERVED_NAMES.contains(&name) {
        problems.push(format!(
            "{key}.name = \"{name}\" is reserved for a source; choose another name"
        ));
    } else if !names.insert(name.to_owned()) {
        problems.push(format!("{key}.name = \"{name}\" is used by another target"));
    }
}

/// One `[[targets]]` table (`key`): its kind decides its table.
fn target(
    key: &str,
    mut table: Table,
    base: &Path,
    env: Env<'_>,
    problems: &mut Vec<String>,
) -> Option<TargetSettings> {
    let (name, deadline_seconds, source) = match kind(key, &mut table, problems)? {
        TargetKind::File => {
            let file: FileTargetTable = typed(key, table, problems)?;
            let path = required_path(&format!("{key}.path"), base, file.path, problems);
            let source = path.map(|path| TargetSource::File {
                path,
                master_user: file.master_user,
            });
            (file.name, file.deadline_seconds, source)
        }
        TargetKind::Postgres => {
            postgres_target(key, typed(key, table, problems)?, (env, base), problems)
        }
        TargetKind::Provisioned => {
            provisioned_target(key, typed(key, table, problems)?, (env, base), problems)
        }
        TargetKind::Serverless => {
            serverless_target(key, typed(key, table, problems)?, (env, base), problems)
        }
    };
    let deadline = deadline(key, deadline_seconds, problems);
    Some(TargetSettings {
        name,
        deadline,
        source: source?,
    })
}

/// Where static credentials come from: the variables `user_env` and `password_env` name,
/// or `password_file`.
type StaticKeys = (Option<String>, Option<String>, Option<PathBuf>);

/// The user and password of static credentials: the user from the variable `user_env`
/// names, the password from the variable `password_env` names or from `password_file`
/// (one of them); the password may be optional (trust authentication).
fn static_credentials(
    key: &str,
    (user_env, password_env, password_file): StaticKeys,
    password_required: bool,
    (env, base): (Env<'_>, &Path),
    problems: &mut Vec<String>,
) -> Option<(String, Option<Secret>)> {
    let user_key = format!("{key}.user_env");
    let kind = "static credentials";
    let user_env = required(&user_key, kind, user_env, problems);
    let user = from_env(&user_key, user_env.as_deref(), env, problems);
    if password_required && password_env.is_none() && password_file.is_none() {
        problems.push(format!(
            "{key}.password_env or {key}.password_file is required for kind \"{kind}\""
        ));
        return None;
    }
    let password = secret_from_env_or_file(
        &format!("{key}.password"),
        (password_env, password_file),
        env,
        base,
        problems,
    );
    if password_required && password.is_none() {
        return None;
    }
    Some((user?, password))
}

/// Static credentials of a Redshift target, where the password is required.
fn static_login(
    key: &str,
    keys: StaticKeys,
    sources: (Env<'_>, &Path),
    problems: &mut Vec<String>,
) -> Option<(String, Secret)> {
    match static_credentials(key, keys, true, sources, problems) {
        Some((user, Some(password))) => Some((user, password)),
        _ => None,
    }
}

/// `{key}.timeout_seconds` of a database target, [`DEFAULT_SQL_TIMEOUT`] when absent.
fn sql_timeout(key: &str, value: Option<u64>, problems: &mut Vec<String>) -> std::time::Duration {
    seconds(
        &format!("{key}.timeout_seconds"),
        value,
        DEFAULT_SQL_TIMEOUT,
        problems,
    )
}

/// What each kind's validation gives: the target's name, its `deadline_seconds`, and its
/// source unless a key had a problem.
type Validated = (String, Option<u64>, Option<TargetSource>);

/// A `[[targets]]` table of kind `postgres`: a PostgreSQL-protocol endpoint with static
/// credentials.
fn postgres_target(
    key: &str,
    table: PostgresTable,
    sources: (Env<'_>, &Path),
    problems: &mut Vec<String>,
) -> Validated {
    let kind = "postgres";
    // The one login a postgres target has; the enum refuses the others.
    let PostgresLogin::Static = table.credentials.unwrap_or(PostgresLogin::Static);
    let host = required(&format!("{key}.host"), kind, table.host, problems);
    let database = required(&format!("{key}.database"), kind, table.database, problems);
    let login = static_credentials(
        key,
        (table.user_env, table.password_env, table.password_file),
        false,
        sources,
        problems,
    );
    let timeout = sql_timeout(key, table.timeout_seconds, problems);
    let source = login.and_then(|(user, password)| {
        Some(TargetSource::Postgres {
            connection: Connection {
                host: host?,
                port: table.port.unwrap_or(5432),
                database: database?,
                user,
                password,
                sslmode: table.sslmode.unwrap_or_default(),
            },
            master_user: table.master_user,
            timeout,
        })
    });
    (table.name, table.deadline_seconds, source)
}

/// A `[[targets]]` table of kind `provisioned`.
fn provisioned_target(
    key: &str,
    table: ProvisionedTable,
    sources: (Env<'_>, &Path),
    problems: &mut Vec<String>,
) -> Validated {
    let kind = "provisioned";
    let cluster_identifier = required(
        &format!("{key}.cluster_identifier"),
        kind,
        table.cluster_identifier,
        problems,
    );
    let database = required(&format!("{key}.database"), kind, table.database, problems);
    let timeout = sql_timeout(key, table.timeout_seconds, problems);
    let keys = (table.user_env, table.password_env, table.password_file);
    let credentials = match table.credentials.unwrap_or_default() {
        ProvisionedLogin::GetClusterCredentials => required(
            &format!("{key}.db_user"),
            "get_cluster_credentials",
            table.db_user,
            problems,
        )
        .map(|db_user| ProvisionedCredentials::GetClusterCredentials { db_user }),
        ProvisionedLogin::GetClusterCredentialsWithIam => {
            Some(ProvisionedCredentials::GetClusterCredentialsWithIam)
        }
        ProvisionedLogin::Static => static_login(key, keys, sources, problems)
            .map(|(user, password)| ProvisionedCredentials::Static { user, password }),
    };
    let options = database.map(|database| TargetOptions {
        name: table.name.clone(),
        database,
        region: table.region,
        endpoint_url: table.endpoint_url,
        host: table.host,
        port: table.port,
        sslmode: table.sslmode.unwrap_or_default(),
        timeout,
    });
    let source = match (cluster_identifier, credentials, options) {
        (Some(cluster_identifier), Some(credentials), Some(target)) => {
            Some(TargetSource::Provisioned(ProvisionedOptions {
                cluster_identifier,
                credentials,
                target,
            }))
        }
        _ => None,
    };
    (table.name, table.deadline_seconds, source)
}

/// A `[[targets]]` table of kind `serverless`.
fn serverless_target(
    key: &str,
    table: ServerlessTable,
    sources: (Env<'_>, &Path),
    problems: &mut Vec<String>,
) -> Validated {
    let kind = "serverless";
    let workgroup_name = required(
        &format!("{key}.workgroup_name"),
        kind,
        table.workgroup_name,
        problems,
    );
    let database = required(&format!("{key}.database"), kind, table.database, problems);
    let timeout = sql_timeout(key, table.timeout_seconds, problems);
    let keys = (table.user_env, table.password_env, table.password_file);
    let credentials = match table.credentials.unwrap_or_default() {
        ServerlessLogin::ServerlessGetCredentials => Some(ServerlessCredentials::GetCredentials),
        ServerlessLogin::Static => static_login(key, keys, sources, problems)
            .map(|(user, password)| ServerlessCredentials::Static { user, password }),
    };
    let options = database.map(|database| TargetOptions {
        name: table.name.clone(),
        database,
        region: table.region,
        endpoint_url: table.endpoint_url,
        host: table.host,
        port: table.port,
        sslmode: table.sslmode.unwrap_or_default(),
        timeout,
    });
    let source = match (workgroup_name, credentials, options) {
        (Some(workgroup_name), Some(credentials), Some(target)) => {
            Some(TargetSource::Serverless(ServerlessOptions {
                workgroup_name,
                credentials,
                target,
            }))
        }
        _ => None,
    };
    (table.name, table.deadline_seconds, source)
}
