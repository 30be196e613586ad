//! The one validation pass: every key checked, every problem listed with its key, every
//! secret read from the environment, every source's table typed by its kind.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use idgraph_aws::IdentityCenterOptions;
use idgraph_model::{Mapping, ShrinkGuard};
use idgraph_sources::scim::{parse_base_url, ScimOptions};
use idgraph_sources::Secret;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use super::raw::{
    AwsIdentityCenterTable, FileTable, HttpSection, IdentityCenterKind, IdpKind, RawConfig,
    ReconcileSection, ScimIdpTable, Table, WatchSection,
};
use super::settings::{
    HttpSettings, IdentityCenterSettings, IdpSettings, Settings, DEFAULT_DEADLINE,
};

/// Checks everything that can be checked without network I/O (but for looking up a host
/// name in `http.listen`), reads the secrets the config names from the environment
/// (`env`), and resolves relative paths against `base`, the directory of the config file.
///
/// Problems are listed in the order the sections are checked here, every one of them.
pub(super) fn validate(
    raw: RawConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, Vec<String>> {
    let mut problems = Vec::new();
    let idp = idp_settings(raw.idp, base, env, &mut problems);
    let identity_center = identity_center_settings(raw.identity_center, base, &mut problems);
    let targets = super::targets::target_settings(raw.targets, base, env, &mut problems);
    check_mapping(&raw.mapping, &mut problems);
    let http = http_settings(raw.http, &mut problems);
    check_reconcile(&raw.reconcile, &mut problems);
    let watch_interval = watch_interval(&raw.watch, &mut problems);
    check_cron(&raw.schedule.cron, &mut problems);

    match (idp, identity_center, http) {
        (
            Some((idp, idp_deadline)),
            Some((identity_center, identity_center_deadline)),
            Some(http),
        ) if problems.is_empty() => Ok(Settings {
            store_path: base.join(&raw.store.path),
            retention: raw
                .store
                .retention_days
                .map(|days| chrono::Duration::days(i64::from(days))),
            cron: raw.schedule.cron,
            http,
            idp,
            identity_center,
            targets,
            mapping: raw.mapping,
            new_owner: raw.remediation.new_owner,
            target_concurrency: raw.reconcile.target_concurrency,
            shrink_guard: ShrinkGuard {
                max_percent: raw.reconcile.max_shrink_percent,
                max_count: raw.reconcile.max_shrink_count,
            },
            idp_deadline,
            identity_center_deadline,
            watch_interval,
        }),
        _ => Err(problems),
    }
}

/// `[idp]`: its kind decides its table; with the deadline of its fetch.
fn idp_settings(
    mut table: Table,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<(IdpSettings, Duration)> {
    match kind("idp", &mut table, problems)? {
        IdpKind::File => {
            let file: FileTable = typed("idp", table, problems)?;
            let deadline = deadline("idp", file.deadline_seconds, problems);
            let path = required_path("idp.path", base, file.path, problems)?;
            Some((IdpSettings::File { path }, deadline))
        }
        IdpKind::Scim => {
            let scim: ScimIdpTable = typed("idp", table, problems)?;
            let deadline = deadline("idp", scim.deadline_seconds, problems);
            let options = scim_options(scim, env, base, problems)?;
            Some((IdpSettings::Scim(options), deadline))
        }
    }
}

/// `[idp]` of kind `scim`.
fn scim_options(
    table: ScimIdpTable,
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
    problems: &mut Vec<String>,
) -> Option<ScimOptions> {
    let url = required("idp.url", "scim", table.url, problems)?;
    // The source's own check, so that what validates also connects. Its message leaves
    // the URL out, and so does this one: it may hold a password as user info.
    if let Err(e) = parse_base_url(&url) {
        problems.push(format!("idp.url is not usable: {e}"));
    }
    let mut options = ScimOptions::new(url);
    options.token = secret_from_env_or_file(
        "idp.token",
        (table.token_env, table.token_file),
        env,
        base,
        problems,
    );
    if let Some(page_size) = table.page_size {
        options.page_size = page_size;
    }
    options.paging = table.paging.unwrap_or_default();
    if let Some(concurrency) = table.concurrency {
        if concurrency == 0 {
            problems.push("idp.concurrency must be at least 1".into());
        }
        options.concurrency = concurrency;
    }
    options.timeout = seconds(
        "idp.timeout_seconds",
        table.timeout_seconds,
        options.timeout,
        problems,
    );
    if let Some(bytes) = table.max_response_bytes {
        if bytes == 0 {
            problems.push("idp.max_response_bytes must be at least 1".into());
        }
        options.max_response_bytes = bytes;
    }
    if let Some(users) = table.max_users {
        if users == 0 {
            problems.push("idp.max_users must be at least 1".into());
        }
        options.max_users = users;
    }
    Some(options)
}

/// A secret from the variable `{key}_env` names or from the file `{key}_file` (resolved
/// against `base`, its content trimmed): at most one of them, `None` when neither is set.
/// An unreadable or empty file is a problem naming `{key}_file`.
pub(super) fn secret_from_env_or_file(
    key: &str,
    (var, file): (Option<String>, Option<PathBuf>),
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
    problems: &mut Vec<String>,
) -> Option<Secret> {
    match (var, file) {
        (Some(_), Some(_)) => {
            problems.push(format!("{key}_env and {key}_file are both set; set one"));
            None
        }
        (Some(var), None) => {
            from_env(&format!("{key}_env"), Some(&var), env, problems).map(Secret::new)
        }
        (None, Some(file)) => {
            let file = base.join(file);
            match std::fs::read_to_string(&file) {
                Ok(secret) if !secret.trim().is_empty() => Some(Secret::new(secret.trim())),
                Ok(_) => {
                    problems.push(format!("{key}_file {} is empty", file.display()));
                    None
                }
                Err(e) => {
                    problems.push(format!("{key}_file {} cannot be read: {e}", file.display()));
                    None
                }
            }
        }
        (None, None) => None,
    }
}

/// `[identity_center]`: its kind decides its table; with the deadline of its fetch.
fn identity_center_settings(
    mut table: Table,
    base: &Path,
    problems: &mut Vec<String>,
) -> Option<(IdentityCenterSettings, Duration)> {
    let key = "identity_center";
    match kind(key, &mut table, problems)? {
        IdentityCenterKind::File => {
            let file: FileTable = typed(key, table, problems)?;
            let deadline = deadline(key, file.deadline_seconds, problems);
            let path = required_path("identity_center.path", base, file.path, problems)?;
            Some((IdentityCenterSettings::File { path }, deadline))
        }
        IdentityCenterKind::Aws => {
            let aws: AwsIdentityCenterTable = typed(key, table, problems)?;
            let deadline = deadline(key, aws.deadline_seconds, problems);
            let identity_store_id = required(
                "identity_center.identity_store_id",
                "aws",
                aws.identity_store_id,
                problems,
            )?;
            let mut options = IdentityCenterOptions::new(identity_store_id);
            options.region = aws.region;
            options.endpoint_url = aws.endpoint_url;
            if let Some(rate) = aws.requests_per_second {
                options.requests_per_second = rate;
            }
            Some((IdentityCenterSettings::Aws(options), deadline))
        }
    }
}

/// Takes the `kind` out of the source's table at `key`, typed as `K`: `None` and a problem
/// naming the key when it is missing or names no kind.
pub(super) fn kind<K: DeserializeOwned>(
    key: &str,
    table: &mut Table,
    problems: &mut Vec<String>,
) -> Option<K> {
    let Some(kind) = table.remove("kind") else {
        problems.push(format!("{key}.kind is required"));
        return None;
    };
    serde_json::from_value(kind)
        .map_err(|e| problems.push(format!("{key}.kind: {e}")))
        .ok()
}

/// The rest of the source's table at `key` as its kind's table `T`. Every key that does
/// not apply to the kind, or holds a value of the wrong type, is a problem that names it
/// (and is left out, so that the others are checked too); `None` when what is left still
/// does not make a `T` (a missing `name`).
pub(super) fn typed<T: DeserializeOwned>(
    key: &str,
    mut table: Table,
    problems: &mut Vec<String>,
) -> Option<T> {
    loop {
        let error = match serde_path_to_error::deserialize(Value::Object(table.clone())) {
            Ok(typed) => return Some(typed),
            Err(error) => error,
        };
        let field = match error.path().iter().next() {
            Some(Segment::Map { key: field }) => Some(field.clone()),
            _ => None,
        };
        match field {
            Some(field) if table.remove(&field).is_some() => {
                problems.push(format!("{key}.{field}: {}", error.inner()));
            }
            _ => {
                problems.push(format!("{key}: {}", error.inner()));
                return None;
            }
        }
    }
}

/// `{key}.deadline_seconds`, [`DEFAULT_DEADLINE`] when absent.
pub(super) fn deadline(key: &str, value: Option<u64>, problems: &mut Vec<String>) -> Duration {
    seconds(
        &format!("{key}.deadline_seconds"),
        value,
        DEFAULT_DEADLINE,
        problems,
    )
}

/// `[http]`: `listen` is an address and port, or a host name and port that resolves
/// (`localhost:10187`); the limits are positive.
fn http_settings(section: HttpSection, problems: &mut Vec<String>) -> Option<HttpSettings> {
    if section.header_timeout_seconds == 0 {
        problems.push("http.header_timeout_seconds must be at least 1".into());
    }
    if section.max_connections == 0 {
        problems.push("http.max_connections must be at least 1".into());
    }
    let listen = section.listen;
    // An address needs no lookup; `ToSocketAddrs` also takes `host:port`.
    let addresses =
        match listen.parse::<SocketAddr>() {
            Ok(address) => Ok(vec![address]),
            Err(_) => listen
                .to_socket_addrs()
                .map(Vec::from_iter)
                .and_then(|addresses| match addresses.is_empty() {
                    true => Err(std::io::Error::other("the name has no addresses")),
                    false => Ok(addresses),
                }),
        };
    match addresses {
        Ok(addresses) => Some(HttpSettings {
            listen,
            addresses,
            header_timeout: Duration::from_secs(section.header_timeout_seconds),
            max_connections: section.max_connections,
        }),
        Err(e) => {
            problems.push(format!(
                "http.listen = \"{listen}\" is neither an address and port nor a host name and port that resolves: {e}"
            ));
            None
        }
    }
}

/// `[mapping]`: at least one rule to match on, and no empty prefix (it would strip nothing
/// and match every name).
fn check_mapping(mapping: &Mapping, problems: &mut Vec<String>) {
    if mapping.match_on.is_empty() {
        problems.push("mapping.match_on must name at least one of \"user_name\", \"email\"".into());
    }
    if mapping.prefixes.iter().any(|p| p.is_empty()) {
        problems.push("mapping.prefixes must not contain an empty prefix".into());
    }
    if mapping.dormant_after_days == Some(0) {
        problems.push(
            "mapping.dormant_after_days must be at least 1; leave it out to turn dormant users off"
                .into(),
        );
    }
}

/// `[reconcile]`: a positive concurrency and a percentage.
fn check_reconcile(section: &ReconcileSection, problems: &mut Vec<String>) {
    if section.target_concurrency == 0 {
        problems.push("reconcile.target_concurrency must be at least 1".into());
    }
    if section.max_shrink_percent > 100 {
        problems.push(format!(
            "reconcile.max_shrink_percent = {} must be between 0 and 100",
            section.max_shrink_percent
        ));
    }
}

/// `watch.interval_seconds`: `None` for 0 (off); at most a day, beyond which the
/// schedule finds a change first.
fn watch_interval(section: &WatchSection, problems: &mut Vec<String>) -> Option<Duration> {
    const MAX_SECONDS: u64 = 86_400;
    match section.interval_seconds {
        0 => None,
        seconds if seconds > MAX_SECONDS => {
            problems.push(format!(
                "watch.interval_seconds = {seconds} must be at most {MAX_SECONDS} (a day); \
                 0 turns the watcher off"
            ));
            None
        }
        seconds => Some(Duration::from_secs(seconds)),
    }
}

/// `schedule.cron`, parsed by the scheduler's own parser, so that what validates also
/// schedules.
fn check_cron(cron: &str, problems: &mut Vec<String>) {
    let cron_ok = cron.split_whitespace().count() == 6
        && tokio_cron_scheduler::Job::new_async(cron, |_, _| Box::pin(async {})).is_ok();
    if !cron_ok {
        problems.push(format!(
            "schedule.cron = \"{cron}\" is not a 6-field cron expression (sec min hour day-of-month month day-of-week)"
        ));
    }
}

/// A required key of a kind: `None` and a problem naming it when absent.
pub(super) fn required<T>(
    key: &str,
    kind: &str,
    value: Option<T>,
    problems: &mut Vec<String>,
) -> Option<T> {
    if value.is_none() {
        problems.push(format!("{key} is required for kind \"{kind}\""));
    }
    value
}

/// The path of a `file` kind, resolved against `base`: `None` and a problem naming `key`
/// when absent or empty.
pub(super) fn required_path(
    key: &str,
    base: &Path,
    path: Option<PathBuf>,
    problems: &mut Vec<String>,
) -> Option<PathBuf> {
    match path {
        Some(p) if !p.as_os_str().is_empty() => Some(base.join(p)),
        _ => {
            problems.push(format!("{key} is required for kind \"file\""));
            None
        }
    }
}

/// Reads the environment variable that `key` names. A missing variable is a problem that
/// names the variable only when `var` looks like a variable's name: anything else may be
/// the secret itself, written where its variable's name belongs.
pub(super) fn from_env(
    key: &str,
    var: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<String> {
    let var = var?;
    match env(var) {
        Some(value) if !value.is_empty() => Some(value),
        _ if looks_like_env_var(var) => {
            problems.push(format!(
                "{key} names the environment variable {var}, which is not set"
            ));
            None
        }
        _ => {
            problems.push(format!(
                "{key} does not name an environment variable (it should hold a variable's \
                 name, not the secret itself)"
            ));
            None
        }
    }
}

/// Whether `name` has the shape environment variables are given, `[A-Z_][A-Z0-9_]*` of
/// at most 128 characters; tokens and passwords rarely do.
fn looks_like_env_var(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// A number of seconds at key `key`, `default` when absent. 0 is a problem: every request
/// (or fetch) would time out at once.
pub(super) fn seconds(
    key: &str,
    value: Option<u64>,
    default: Duration,
    problems: &mut Vec<String>,
) -> Duration {
    match value {
        None => default,
        Some(0) => {
            problems.push(format!("{key} must be at least 1"));
            default
        }
        Some(seconds) => Duration::from_secs(seconds),
    }
}
