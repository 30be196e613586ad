//! The users of an IAM Identity Center identity store, from `identitystore:ListUsers`.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use aws_sdk_identitystore::types::{AlternateIdentifier, Email, UniqueAttribute, User};
use aws_sdk_identitystore::Client;
use aws_smithy_types::Document;
use idgraph_model::focus::IcLookup;
use idgraph_model::{ExternalId, IcUser};
use idgraph_sources::{primary_value, Progress, Source, SourceError, Wanted};
use tracing::{debug, warn};

use crate::config::{sdk_config, with_overrides, SdkConfig};
use crate::error::sdk_error;
use crate::limiter::RateLimiter;

/// Identity Store's documented limit: 20 requests a second per API and identity store.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 20;

/// The largest page `ListUsers` returns.
const PAGE_SIZE: i32 = 100;

/// The source's name in metrics, history rows and progress.
const NAME: &str = "identity_center";

/// Which identity store to read, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityCenterOptions {
    /// The identity store, `d-1234567890`.
    pub identity_store_id: String,
    /// The region of the identity store; `None` takes the standard region chain.
    pub region: Option<String>,
    /// Sends requests here instead of the public endpoint (a VPC endpoint, an emulator).
    pub endpoint_url: Option<String>,
    /// Client-side limit on `ListUsers` calls a second ([`DEFAULT_REQUESTS_PER_SECOND`]);
    /// 0 is taken as 1.
    pub requests_per_second: u32,
}

impl IdentityCenterOptions {
    /// Options for `identity_store_id` with the standard region chain, the public endpoint
    /// and the default rate.
    pub fn new(identity_store_id: impl Into<String>) -> Self {
        Self {
            identity_store_id: identity_store_id.into(),
            region: None,
            endpoint_url: None,
            requests_per_second: DEFAULT_REQUESTS_PER_SECOND,
        }
    }
}

/// Every user of an IAM Identity Center identity store (name `identity_center`, kind
/// `aws`).
///
/// `fetch` pages through `ListUsers` 100 users at a time, following `NextToken` until the
/// service returns none, at most `requests_per_second` calls a second. A throttled call
/// is retried by the SDK with backoff; a page that still fails fails the whole fetch.
pub struct IdentityCenterSource {
    client: Client,
    identity_store_id: String,
    limiter: RateLimiter,
    progress: Arc<dyn Progress>,
}

impl fmt::Debug for IdentityCenterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityCenterSource")
            .field("identity_store_id", &self.identity_store_id)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl IdentityCenterSource {
    /// A source with credentials and, unless the options set it, the region from the
    /// standard AWS chain ([`sdk_config`]). Async because it loads that chain's
    /// configuration; it does not call AWS and cannot fail: missing credentials or region
    /// are the error of the first `fetch`.
    pub async fn new(options: IdentityCenterOptions, progress: Arc<dyn Progress>) -> Self {
        let config = sdk_config(
            options.region.as_deref(),
            options.endpoint_url.as_deref(),
            None,
        )
        .await;
        Self::from_sdk_config(options, &config, progress)
    }

    /// A source using `config` (its credentials, HTTP client, retries and timeouts), with
    /// the region and endpoint of `options` where they are set.
    pub fn from_sdk_config(
        options: IdentityCenterOptions,
        config: &SdkConfig,
        progress: Arc<dyn Progress>,
    ) -> Self {
        let config = with_overrides(
            config,
            options.region.as_deref(),
            options.endpoint_url.as_deref(),
        );
        Self {
            client: Client::new(&config),
            identity_store_id: options.identity_store_id,
            limiter: RateLimiter::per_second(options.requests_per_second),
            progress,
        }
    }

    async fn list_users(&self) -> Result<Vec<IcUser>, SourceError> {
        let origin = format!("identitystore ListUsers {}", self.identity_store_id);
        let mut users = Vec::new();
        let mut seen = HashSet::new();
        let mut duplicates = 0_u64;
        let mut pages = 0_u64;
        let mut next_token: Option<String> = None;
        loop {
            self.limiter.acquire().await;
            let page = self
                .client
                .list_users()
                .identity_store_id(&self.identity_store_id)
                .max_results(PAGE_SIZE)
                .set_next_token(next_token.clone())
                .send()
                .await
                .map_err(|e| sdk_error(origin.clone(), e))?;
            pages += 1;
            for user in page.users() {
                let user = ic_user(&origin, user)?;
                // A user listed twice (the store changed while we paged) is still one user.
                if seen.insert(user.user_id.clone()) {
                    users.push(user);
                } else {
                    duplicates += 1;
                }
            }
            self.progress.update(NAME, pages, users.len() as u64, None);
            match page.next_token() {
                // An empty token cannot be sent back (its minimum length is 1): it means done.
                None | Some("") => break,
                // The same token again would page forever.
                Some(token) if next_token.as_deref() == Some(token) => {
                    return Err(SourceError::InvalidResponse {
                        origin,
                        detail: format!("page {pages} returned the NextToken it was sent"),
                    });
                }
                Some(token) => next_token = Some(token.to_owned()),
            }
        }
        if duplicates > 0 {
            warn!(
                identity_store_id = %self.identity_store_id,
                duplicates,
                "ListUsers returned some users more than once; each is counted once."
            );
        }
        debug!(
            identity_store_id = %self.identity_store_id,
            pages,
            users = users.len(),
            "Listed the Identity Center users."
        );
        Ok(users)
    }
}

impl IdentityCenterSource {
    /// The users `lookup` asks about, one at a time: `GetUserId` for each external id,
    /// user name and email, then `DescribeUser` for each id found or already known. A user
    /// that does not exist (`ResourceNotFoundException`) is simply not in the answer. The
    /// only valid unique attributes are `userName` and `emails.value`:
    /// <https://docs.aws.amazon.com/singlesignon/latest/IdentityStoreAPIReference/API_GetUserId.html>
    async fn look_up(&self, lookup: &IcLookup) -> Result<Vec<IcUser>, SourceError> {
        let origin = format!("identitystore {}", self.identity_store_id);
        let mut alternates: Vec<AlternateIdentifier> = lookup
            .external_ids
            .iter()
            .map(|e| {
                let id = aws_sdk_identitystore::types::ExternalId::builder()
                    .issuer(&e.issuer)
                    .id(&e.id)
                    .build()
                    .expect("issuer and id are set");
                AlternateIdentifier::ExternalId(id)
            })
            .collect();
        for (path, values) in [
            ("userName", &lookup.user_names),
            ("emails.value", &lookup.emails),
        ] {
            alternates.extend(values.iter().map(|value| {
                AlternateIdentifier::UniqueAttribute(
                    UniqueAttribute::builder()
                        .attribute_path(path)
                        .attribute_value(Document::String(value.clone()))
                        .build()
                        .expect("path and value are set"),
                )
            }));
        }
        let mut ids: BTreeSet<String> = lookup.user_ids.clone();
        for alternate in alternates {
            self.limiter.acquire().await;
            let found = self
                .client
                .get_user_id()
                .identity_store_id(&self.identity_store_id)
                .alternate_identifier(alternate)
                .send()
                .await;
            match found {
                Ok(found) => {
                    ids.insert(found.user_id().to_owned());
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) => {}
                Err(e) => return Err(sdk_error(format!("{origin} GetUserId"), e)),
            }
        }
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            self.limiter.acquire().await;
            let described = self
                .client
                .describe_user()
                .identity_store_id(&self.identity_store_id)
                .user_id(&id)
                .send()
                .await;
            let user = match described {
                Ok(user) => user,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    continue
                }
                Err(e) => return Err(sdk_error(format!("{origin} DescribeUser"), e)),
            };
            users.push(ic_user_of(
                &origin,
                user.user_id(),
                user.user_name(),
                user.emails(),
                user.external_ids(),
            )?);
        }
        debug!(
            identity_store_id = %self.identity_store_id,
            users = users.len(),
            "Looked up the Identity Center users of the changed people."
        );
        Ok(users)
    }
}

#[async_trait::async_trait]
impl Source for IdentityCenterSource {
    type Snapshot = Vec<IcUser>;

    fn name(&self) -> &str {
        NAME
    }

    fn kind(&self) -> &str {
        "aws"
    }

    /// # Errors
    ///
    /// [`SourceError::Remote`] when a page fails with a service error (after the SDK's
    /// retries for throttling), [`SourceError::Unreachable`] when the service cannot be
    /// reached, [`SourceError::Credentials`] without AWS credentials,
    /// [`SourceError::InvalidResponse`] for a user without `UserId` or `UserName`.
    async fn fetch(&self) -> Result<Vec<IcUser>, SourceError> {
        let result = self.list_users().await;
        self.progress.finish(NAME);
        result
    }

    async fn fetch_wanted(&self, wanted: &Wanted<'_>) -> Result<Vec<IcUser>, SourceError> {
        match wanted {
            Wanted::IcUsers(lookup) => self.look_up(lookup).await,
            Wanted::DbUsers(_) => self.fetch().await,
        }
    }
}

/// A user as the model holds it. A user without id or name cannot be matched to
/// anything; leaving it out would make it look deleted, so it fails the fetch.
fn ic_user(origin: &str, user: &User) -> Result<IcUser, SourceError> {
    ic_user_of(
        origin,
        user.user_id(),
        user.user_name(),
        user.emails(),
        user.external_ids(),
    )
}

/// [`ic_user`] from the fields `ListUsers` and `DescribeUser` both answer with.
fn ic_user_of(
    origin: &str,
    user_id: &str,
    user_name: Option<&str>,
    emails: &[Email],
    external_ids: &[aws_sdk_identitystore::types::ExternalId],
) -> Result<IcUser, SourceError> {
    // The SDK fills a missing required UserId with "".
    if user_id.is_empty() {
        return Err(SourceError::InvalidResponse {
            origin: origin.to_owned(),
            detail: "a user without UserId".to_owned(),
        });
    }
    let user_name = match user_name {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => {
            return Err(SourceError::InvalidResponse {
                origin: origin.to_owned(),
                detail: format!("user {user_id} has no UserName"),
            })
        }
    };
    Ok(IcUser {
        user_id: user_id.to_owned(),
        user_name,
        email: primary_email(emails),
        external_ids: external_ids
            .iter()
            .map(|e| ExternalId {
                issuer: e.issuer().to_owned(),
                id: e.id().to_owned(),
            })
            .collect(),
    })
}

/// The email marked `Primary`, else the first one with a value; an empty value is none.
fn primary_email(emails: &[Email]) -> Option<String> {
    primary_value(emails, |e| {
        let value = e.value().filter(|v| !v.is_empty()).map(str::to_owned);
        (value, e.primary())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(value: &str, primary: bool) -> Email {
        Email::builder().value(value).primary(primary).build()
    }

    #[test]
    fn primary_email_else_first() {
        assert_eq!(
            primary_email(&[email("a@x", false), email("b@x", true)]).as_deref(),
            Some("b@x")
        );
        assert_eq!(
            primary_email(&[email("a@x", false), email("b@x", false)]).as_deref(),
            Some("a@x")
        );
        assert_eq!(
            primary_email(&[email("", true), email("b@x", false)]).as_deref(),
            Some("b@x")
        );
        assert_eq!(primary_email(&[]), None);
    }

    #[test]
    fn a_user_without_name_fails() {
        let user = User::builder()
            .user_id("u-1")
            .identity_store_id("d-1")
            .user_arn("arn")
            .revision("1")
            .build()
            .unwrap();
        let error = ic_user("identitystore ListUsers d-1", &user).unwrap_err();
        assert_eq!(error.kind(), "invalid_response");
        assert!(error.to_string().contains("u-1"), "{error}");
    }

    use crate::testing::{fake_config, Reply};
    use idgraph_sources::NoProgress;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn user_json(id: &str, name: &str) -> String {
        format!(
            r#"{{"UserId":"{id}","IdentityStoreId":"d-1","UserName":"{name}",
               "Emails":[{{"Value":"{name}@x","Primary":true}}],
               "ExternalIds":[{{"Issuer":"https://scim.example.com","Id":"ext-{id}"}}]}}"#
        )
    }

    fn source(config: &SdkConfig) -> IdentityCenterSource {
        let mut options = IdentityCenterOptions::new("d-1");
        options.requests_per_second = 1000;
        IdentityCenterSource::from_sdk_config(options, config, Arc::new(NoProgress))
    }

    #[tokio::test]
    async fn follows_next_token_through_empty_pages_and_throttling() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let (config, requests) = fake_config(move |action, body| {
            assert_eq!(action, "ListUsers");
            let call = counter.fetch_add(1, Ordering::SeqCst);
            if call == 1 {
                // Retried by the SDK's standard retry mode.
                return Reply::error(400, "ThrottlingException", "Rate exceeded");
            }
            if body.contains(r#""NextToken":"t2""#) {
                // The last page repeats a user of an earlier one.
                Reply::ok(format!(
                    r#"{{"Users":[{},{}]}}"#,
                    user_json("u3", "carol"),
                    user_json("u1", "alice")
                ))
            } else if body.contains(r#""NextToken":"t1""#) {
                Reply::ok(r#"{"Users":[],"NextToken":"t2"}"#)
            } else {
                Reply::ok(format!(
                    r#"{{"Users":[{},{}],"NextToken":"t1"}}"#,
                    user_json("u1", "alice"),
                    user_json("u2", "bob")
                ))
            }
        })
        .await;
        let source = source(&config);
        assert_eq!((source.name(), source.kind()), ("identity_center", "aws"));
        let users = source.fetch().await.unwrap();
        let names: Vec<_> = users.iter().map(|u| u.user_name.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        assert_eq!(users[0].email.as_deref(), Some("alice@x"));
        assert_eq!(
            users[0].external_ids,
            [ExternalId {
                issuer: "https://scim.example.com".into(),
                id: "ext-u1".into()
            }]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        let requests = requests.lock().unwrap();
        assert!(requests[0].contains(r#""MaxResults":100"#), "{requests:?}");
        assert!(
            requests[0].contains(r#""IdentityStoreId":"d-1""#),
            "{requests:?}"
        );
        assert!(!requests[0].contains("NextToken"), "{requests:?}");
    }

    #[tokio::test]
    async fn a_repeated_token_fails_instead_of_looping() {
        let (config, _) = fake_config(|_, _| Reply::ok(r#"{"Users":[],"NextToken":"same"}"#)).await;
        let error = source(&config).fetch().await.unwrap_err();
        assert_eq!(error.kind(), "invalid_response", "{error}");
        assert!(
            error
                .to_string()
                .starts_with("identitystore ListUsers d-1: "),
            "{error}"
        );
    }

    #[tokio::test]
    async fn access_denied_is_a_remote_error_with_code_and_status() {
        let (config, _) = fake_config(|_, _| {
            Reply::error(400, "AccessDeniedException", "User is not authorized")
        })
        .await;
        let error = source(&config).fetch().await.unwrap_err();
        match &error {
            SourceError::Remote {
                origin,
                status,
                detail,
            } => {
                assert_eq!(origin, "identitystore ListUsers d-1");
                assert_eq!(*status, Some(400));
                assert_eq!(detail, "AccessDeniedException: User is not authorized");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn failing_aws_credentials_are_a_credentials_error() {
        #[derive(Debug)]
        struct NoCredentials;
        impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
            fn provide_credentials<'a>(
                &'a self,
            ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
            where
                Self: 'a,
            {
                aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                    aws_credential_types::provider::error::CredentialsError::not_loaded(
                        "no credentials in this test",
                    ),
                ))
            }
        }
        let config = crate::config::load(
            Some("us-east-1"),
            Some("http://127.0.0.1:9"),
            Some(NoCredentials),
        )
        .await;
        let error = source(&config).fetch().await.unwrap_err();
        assert_eq!(error.kind(), "credentials", "{error}");
        assert!(
            error.to_string().contains("no credentials in this test"),
            "{error}"
        );
    }
}
