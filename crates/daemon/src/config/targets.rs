//! Validating `[[targets]]`: unique names, and a function per kind that turns a table
//! into a [`TargetSource`], pushing one problem per bad key.

use std::collections::HashSet;
use std::path::Path;

use idgraph_aws::{
    ProvisionedCredentials, ProvisionedOptions, ServerlessCredentials, ServerlessOptions,
    TargetOptions,
};
use idgraph_sources::postgres::Connection;
use idgraph_sources::Secret;

use super::raw::TargetSection;
use super::settings::{TargetSettings, TargetSource};
use super::settings::{DEFAULT_DEADLINE, DEFAULT_SQL_TIMEOUT};
use super::validate::{from_env, required, required_path, seconds, sslmode};

/// Source names reserved for the IdP and Identity Center; no target may take them.
const RESERVED_NAMES: [&str; 2] = ["idp", "identity_center"];

/// `[[targets]]`: unique names that no source reserves, and each table's kind. A target
/// with a problem is left out, so the result only counts when `problems` stays empty.
pub(super) fn target_settings(
    sections: Vec<TargetSection>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Vec<TargetSettings> {
    let mut names = HashSet::new();
    let mut targets = Vec::with_capacity(sections.len());
    for (i, target) in sections.into_iter().enumerate() {
        let key = format!("targets[{i}]");
        let name = target.name.clone();
        if target.name.trim().is_empty() {
            problems.push(format!("{key}.name must not be empty"));
        } else if RESERVED_NAMES.contains(&target.name.as_str()) {
            problems.push(format!(
                "{key}.name = \"{}\" is reserved for a source; choose another name",
                target.name
            ));
        } else if !names.insert(target.name.clone()) {
            problems.push(format!(
                "{key}.name = \"{}\" is used by another target",
                target.name
            ));
        }
        let deadline = seconds(
            &format!("{key}.deadline_seconds"),
            target.deadline_seconds,
            DEFAULT_DEADLINE,
            problems,
        );
        if let Some(source) = target_source(&key, target, base, env, problems) {
            targets.push(TargetSettings {
                name,
                source,
                deadline,
            });
        }
    }
    targets
}

/// One `[[targets]]` table (`key`): its kind decides which keys apply.
fn target_source(
    key: &str,
    target: TargetSection,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<TargetSource> {
    match target.kind.as_str() {
        "file" => required_path(&format!("{key}.path"), base, target.path, problems).map(|path| {
            TargetSource::File {
                path,
                master_user: target.master_user,
            }
        }),
        "postgres" => postgres_target(key, target, env, problems),
        "provisioned" | "serverless" => redshift_target(key, target, env, problems),
        other => {
            problems.push(format!(
                "{key}.kind = \"{other}\" is unknown: expected \"provisioned\", \"serverless\", \"postgres\" or \"file\""
            ));
            None
        }
    }
}

/// The user and password of static credentials, read from the variables `user_env` and
/// `password_env` name; the password may be optional (trust authentication).
fn static_credentials(
    key: &str,
    target: &TargetSection,
    password_required: bool,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<(String, Option<Secret>)> {
    let user_key = format!("{key}.user_env");
    let password_key = format!("{key}.password_env");
    let kind = "static credentials";
    let user_env = required(&user_key, kind, target.user_env.clone(), problems);
    let password_env = match password_required {
        true => required(&password_key, kind, target.password_env.clone(), problems),
        false => target.password_env.clone(),
    };
    let user = from_env(&user_key, user_env.as_deref(), env, problems);
    let password = from_env(&password_key, password_env.as_deref(), env, problems).map(Secret::new);
    if password_required && password.is_none() {
        return None;
    }
    Some((user?, password))
}

/// A `[[targets]]` table of kind `postgres`: a PostgreSQL-protocol endpoint with static
/// credentials.
fn postgres_target(
    key: &str,
    target: TargetSection,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<TargetSource> {
    let kind = "postgres";
    let host = required(&format!("{key}.host"), kind, target.host.clone(), problems);
    let database = required(
        &format!("{key}.database"),
        kind,
        target.database.clone(),
        problems,
    );
    if let Some(other) = target.credentials.as_deref().filter(|c| *c != "static") {
        problems.push(format!(
            "{key}.credentials = \"{other}\" does not apply: a postgres target uses \"static\" credentials from user_env and password_env"
        ));
    }
    let login = static_credentials(key, &target, false, env, problems);
    let sslmode = sslmode(
        &format!("{key}.sslmode"),
        target.sslmode.as_deref(),
        problems,
    );
    let timeout = seconds(
        &format!("{key}.timeout_seconds"),
        target.timeout_seconds,
        DEFAULT_SQL_TIMEOUT,
        problems,
    );
    let (user, password) = login?;
    Some(TargetSource::Postgres {
        connection: Connection {
            host: host?,
            port: target.port.unwrap_or(5432),
            database: database?,
            user,
            password,
            sslmode,
        },
        master_user: target.master_user,
        timeout,
    })
}

/// A `[[targets]]` table of kind `provisioned` or `serverless`.
fn redshift_target(
    key: &str,
    target: TargetSection,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<TargetSource> {
    let kind = target.kind.as_str();
    let database = required(
        &format!("{key}.database"),
        kind,
        target.database.clone(),
        problems,
    );
    let sslmode = sslmode(
        &format!("{key}.sslmode"),
        target.sslmode.as_deref(),
        problems,
    );
    let timeout = seconds(
        &format!("{key}.timeout_seconds"),
        target.timeout_seconds,
        DEFAULT_SQL_TIMEOUT,
        problems,
    );
    let options = database.map(|database| TargetOptions {
        name: target.name.clone(),
        database,
        region: target.region.clone(),
        endpoint_url: target.endpoint_url.clone(),
        host: target.host.clone(),
        port: target.port,
        sslmode,
        timeout,
    });
    if kind == "provisioned" {
        let cluster_identifier = required(
            &format!("{key}.cluster_identifier"),
            kind,
            target.cluster_identifier.clone(),
            problems,
        );
        let credentials = provisioned_credentials(key, &target, env, problems);
        Some(TargetSource::Provisioned(ProvisionedOptions {
            cluster_identifier: cluster_identifier?,
            credentials: credentials?,
            target: options?,
        }))
    } else {
        let workgroup_name = required(
            &format!("{key}.workgroup_name"),
            kind,
            target.workgroup_name.clone(),
            problems,
        );
        let credentials = serverless_credentials(key, &target, env, problems);
        Some(TargetSource::Serverless(ServerlessOptions {
            workgroup_name: workgroup_name?,
            credentials: credentials?,
            target: options?,
        }))
    }
}

/// `credentials` of a provisioned target, `get_cluster_credentials` when absent.
fn provisioned_credentials(
    key: &str,
    target: &TargetSection,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<ProvisionedCredentials> {
    match target
        .credentials
        .as_deref()
        .unwrap_or("get_cluster_credentials")
    {
        "get_cluster_credentials" => required(
            &format!("{key}.db_user"),
            "get_cluster_credentials",
            target.db_user.clone(),
            problems,
        )
        .map(|db_user| ProvisionedCredentials::GetClusterCredentials { db_user }),
        "get_cluster_credentials_with_iam" => {
            Some(ProvisionedCredentials::GetClusterCredentialsWithIam)
        }
        "static" => static_login(key, target, env, problems)
            .map(|(user, password)| ProvisionedCredentials::Static { user, password }),
        other => {
            problems.push(format!(
                "{key}.credentials = \"{other}\" does not apply to a provisioned target: expected \"get_cluster_credentials\", \"get_cluster_credentials_with_iam\" or \"static\""
            ));
            None
        }
    }
}

/// `credentials` of a serverless target, `serverless_get_credentials` when absent.
fn serverless_credentials(
    key: &str,
    target: &TargetSection,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<ServerlessCredentials> {
    match target
        .credentials
        .as_deref()
        .unwrap_or("serverless_get_credentials")
    {
        "serverless_get_credentials" => Some(ServerlessCredentials::GetCredentials),
        "static" => static_login(key, target, env, problems)
            .map(|(user, password)| ServerlessCredentials::Static { user, password }),
        other => {
            problems.push(format!(
                "{key}.credentials = \"{other}\" does not apply to a serverless target: expected \"serverless_get_credentials\" or \"static\""
            ));
            None
        }
    }
}

/// Static credentials of a Redshift target, where the password is required.
fn static_login(
    key: &str,
    target: &TargetSection,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<(String, Secret)> {
    match static_credentials(key, target, true, env, problems) {
        Some((user, Some(password))) => Some((user, password)),
        _ => None,
    }
}
