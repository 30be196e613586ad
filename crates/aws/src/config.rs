//! How every AWS client of this crate is configured.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region};
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::Provider;

pub use aws_config::SdkConfig;

/// How many times the SDK tries one request, the first try included. Throttling
/// (`ThrottlingException`) and transient errors (a 5xx, a refused connection) are retried
/// with exponential backoff and jitter (the SDK's `standard` retry mode).
pub const MAX_ATTEMPTS: u32 = 5;

/// How long a TCP/TLS connect to an AWS endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one try of a request may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may take, all tries and backoff included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Loads the shared AWS configuration the way the AWS CLI does
/// (`aws_config::defaults(BehaviorVersion::latest())`): region and credentials from the
/// environment, the profile files (`AWS_PROFILE`, including `aws sso login` profiles and
/// `credential_process` ones such as aws-vault's or granted's), web identity (EKS), the
/// ECS container endpoint or the instance metadata service, each overridden when given
/// here.
///
/// Every client built from it uses an HTTPS client on rustls (ring) with the system's
/// root certificates, the SDK's `standard` retry mode with [`MAX_ATTEMPTS`] tries, and
/// timeouts (5 s to connect, 30 s a try, 120 s a request).
///
/// - `region`: overrides the region chain.
/// - `endpoint_url`: sends every request to this URL (a VPC endpoint, a local emulator).
/// - `credentials`: fixed credentials instead of the chain, for tests and emulators.
///
/// Loading never fails: a missing region or missing credentials surface as the error of
/// the first request.
///
/// The SDK logs response bodies at `trace` level except for operations whose output is
/// sensitive (`GetClusterCredentials`, `GetCredentials`, `ListUsers`), unless the
/// environment sets `LOG_SENSITIVE_BODIES=true`: never set it where idgraph runs.
pub async fn sdk_config(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    credentials: Option<Credentials>,
) -> SdkConfig {
    load(region, endpoint_url, credentials).await
}

/// [`sdk_config`] with any credentials provider.
pub(crate) async fn load(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    credentials: Option<impl ProvideCredentials + 'static>,
) -> SdkConfig {
    let mut loader: ConfigLoader = aws_config::defaults(BehaviorVersion::latest())
        // The SDK's default HTTPS client builds aws-lc from C; ring is already in the build.
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    let config = loader.load().await;
    match config.credentials_provider() {
        Some(chain) => config
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(Remembered(chain)))
            .build(),
        None => config,
    }
}

/// A credentials provider that remembers the secret key and session token of whatever
/// credentials it hands out, so that [`idgraph_sources::scrub`] removes them from any log
/// line or error message, whichever provider of the chain obtained them (the environment,
/// a `credential_process`, SSO, web identity).
#[derive(Debug)]
struct Remembered(SharedCredentialsProvider);

impl ProvideCredentials for Remembered {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let credentials = self.0.provide_credentials().await?;
            idgraph_sources::secret::remember(credentials.secret_access_key());
            if let Some(token) = credentials.session_token() {
                idgraph_sources::secret::remember(token);
            }
            Ok(credentials)
        })
    }
}

/// `config` with `region` and `endpoint_url` in place of its own where they are given:
/// what a source builds its client from, whoever loaded the shared configuration.
pub(crate) fn with_overrides(
    config: &SdkConfig,
    region: Option<&str>,
    endpoint_url: Option<&str>,
) -> SdkConfig {
    let mut builder = config.to_builder();
    if let Some(region) = region {
        builder.set_region(Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint_url {
        builder.set_endpoint_url(Some(url.to_owned()));
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: credentials the SDK's chain obtained (a `credential_process`, SSO, web
    // identity) were unknown to the scrubber, so a peer that echoed them got them logged.
    #[tokio::test]
    async fn credentials_from_the_chain_are_scrubbed_from_any_text() {
        let given = Credentials::new(
            "AKIDSCRUBTEST",
            "chain-secret-3f9a1c",
            Some("chain-token-77b2e0".into()),
            None,
            "test",
        );
        let config = load(Some("us-east-1"), None, Some(given)).await;
        let provider = config.credentials_provider().expect("a provider");
        provider.provide_credentials().await.expect("credentials");
        assert_eq!(
            idgraph_sources::scrub("echoed chain-secret-3f9a1c and chain-token-77b2e0"),
            "echoed [redacted] and [redacted]"
        );
    }
}
