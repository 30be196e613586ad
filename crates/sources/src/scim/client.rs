//! One SCIM request: retries with backoff for 429, 5xx and transport errors, honouring
//! `Retry-After` and Okta's rate limit headers; the body read under its size cap; error
//! details from a SCIM `Error` or an excerpt; and the token redacted from all of it.

use std::sync::PoisonError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, DATE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::wire::ScimErrorBody;
use super::ScimSource;
use crate::{Secret, SourceError};

/// When to try a failed request again.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryPolicy {
    pub(super) max_attempts: u32,
    /// The first backoff; each further attempt doubles it, up to `cap`.
    pub(super) base: Duration,
    pub(super) cap: Duration,
    /// The longest wait a server may ask for (`Retry-After`, Okta's reset). A longer
    /// `Retry-After` fails the fetch rather than stall the run; Okta's reset is waited
    /// for at most this long.
    pub(super) max_wait: Duration,
}

impl ScimSource {
    /// GETs `url` and parses the JSON answer, retrying what may pass.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        url: &Url,
        origin: &str,
    ) -> Result<T, SourceError> {
        let mut attempt = 1;
        loop {
            self.wait_for_rate_limit(url).await;
            let failure = match self.try_get(url, origin).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let Failure::Retryable { error, asked } = failure else {
                return Err(failure.into_error());
            };
            if attempt >= self.retry.max_attempts {
                return Err(gave_up(error, attempt));
            }
            let delay = match asked {
                Some(asked) if asked > self.retry.max_wait => {
                    return Err(too_long(error, asked, self.retry.max_wait));
                }
                Some(asked) => asked,
                None => self.backoff(attempt),
            };
            tracing::debug!(
                path = url.path(),
                attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error_kind = error.kind(),
                "Retrying a SCIM request."
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn try_get<T: DeserializeOwned>(&self, url: &Url, origin: &str) -> Result<T, Failure> {
        /// Enough of an error body for its SCIM `detail` or an excerpt; the rest is left
        /// unread.
        const ERROR_BODY_BYTES: u64 = 64 * 1024;

        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| self.transport_failure(e, origin))?;
        let status = response.status();
        let headers = response.headers().clone();
        self.note_rate_limit(&headers);

        if status.is_success() {
            let limit = self.max_response_bytes;
            // An oversized answer is not retried: it would only come back as large.
            let too_large = |what: String| {
                Failure::Fatal(SourceError::InvalidResponse {
                    origin: origin.to_owned(),
                    detail: format!(
                        "{what} the limit of {limit} bytes (idp.max_response_bytes); the \
                         answer was abandoned"
                    ),
                })
            };
            if let Some(length) = response.content_length().filter(|&n| n > limit) {
                return Err(too_large(format!(
                    "the {status} answer announces {length} bytes (Content-Length), more than"
                )));
            }
            let (body, cut) = read_body(&mut response, limit)
                .await
                .map_err(|e| self.transport_failure(e, origin))?;
            if cut {
                return Err(too_large(format!("the {status} answer exceeded")));
            }
            return serde_json::from_slice(&body).map_err(|e| {
                Failure::Fatal(SourceError::InvalidResponse {
                    origin: origin.to_owned(),
                    detail: self.redact(format!(
                        "the {status} answer is not the expected SCIM JSON: {e}"
                    )),
                })
            });
        }
        // An error body is only excerpted, so one that never ends is cut off rather than
        // failing the request in its own way: the status decides what happens next.
        let limit = ERROR_BODY_BYTES.min(self.max_response_bytes);
        let (body, _cut) = read_body(&mut response, limit)
            .await
            .map_err(|e| self.transport_failure(e, origin))?;
        let error = SourceError::Remote {
            origin: origin.to_owned(),
            status: Some(status.as_u16()),
            detail: self.redact(error_detail(status, &body)),
        };
        if is_retryable(status) {
            Err(Failure::Retryable {
                error,
                asked: retry_after(&headers, SystemTime::now()),
            })
        } else {
            Err(Failure::Fatal(error))
        }
    }

    fn transport_failure(&self, error: reqwest::Error, origin: &str) -> Failure {
        // Timeouts, refused or reset connections, bodies cut short: worth another try.
        // reqwest reports a body that ends before its Content-Length while reading it as a
        // decode error; the JSON is parsed apart from reqwest, so a decode error here is
        // always the transport's.
        let retryable = error.is_timeout()
            || error.is_connect()
            || error.is_request()
            || error.is_body()
            || error.is_decode();
        let what = if error.is_timeout() {
            "no complete answer in time: "
        } else {
            ""
        };
        // The origin names the endpoint already; reqwest's URL would add the query and
        // any user info.
        let error = SourceError::Unreachable {
            origin: origin.to_owned(),
            detail: self.redact(format!("{what}{}", error_chain(&error.without_url()))),
        };
        if retryable {
            Failure::Retryable { error, asked: None }
        } else {
            Failure::Fatal(error)
        }
    }

    /// Exponential backoff with "equal jitter": half the delay fixed so retries never
    /// bunch at zero, half random so concurrent clients spread out.
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self
            .retry
            .base
            .saturating_mul(1 << exponent)
            .min(self.retry.cap);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Okta announces the end of its rate limit window instead of answering 429 first.
    fn note_rate_limit(&self, headers: &HeaderMap) {
        let Some(wait) = okta_wait(headers, SystemTime::now()) else {
            return;
        };
        let until = Instant::now() + wait.min(self.retry.max_wait);
        let mut not_before = self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if not_before.is_none_or(|current| current < until) {
            *not_before = Some(until);
        }
    }

    async fn wait_for_rate_limit(&self, url: &Url) {
        let until = *self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                tracing::debug!(
                    path = url.path(),
                    wait_ms = u64::try_from((until - now).as_millis()).unwrap_or(u64::MAX),
                    "Waiting for the SCIM server's rate limit window to reset."
                );
                tokio::time::sleep_until(until).await;
            }
        }
    }

    /// `text` without the token, for anything a server or a library may have echoed it
    /// into.
    pub(super) fn redact(&self, text: String) -> String {
        match &self.token {
            Some(token) if !token.expose().is_empty() && text.contains(token.expose()) => {
                text.replace(token.expose(), "[redacted]")
            }
            _ => text,
        }
    }
}

/// Why one attempt at a request failed.
enum Failure {
    /// Worth another attempt, after `asked` if the server said how long to wait.
    Retryable {
        error: SourceError,
        asked: Option<Duration>,
    },
    /// Another attempt would fail the same way.
    Fatal(SourceError),
}

impl Failure {
    fn into_error(self) -> SourceError {
        match self {
            Failure::Retryable { error, .. } | Failure::Fatal(error) => error,
        }
    }
}

/// 429 and the 5xx answers proxies and overloaded servers give are transient; other
/// answers (401, 403, 404, a 400 for a bad query) would only repeat.
fn is_retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

fn gave_up(mut error: SourceError, attempts: u32) -> SourceError {
    if let SourceError::Remote { detail, .. } | SourceError::Unreachable { detail, .. } = &mut error
    {
        detail.push_str(&format!(" (gave up after {attempts} attempts)"));
    }
    error
}

fn too_long(mut error: SourceError, asked: Duration, max_wait: Duration) -> SourceError {
    if let SourceError::Remote { detail, .. } | SourceError::Unreachable { detail, .. } = &mut error
    {
        detail.push_str(&format!(
            " (the server asks to retry after {:.1} s, longer than the {} s idgraph waits)",
            asked.as_secs_f64(),
            max_wait.as_secs()
        ));
    }
    error
}

/// The error's message with its causes: reqwest's own message ("error sending
/// request") says little without the cause below it ("Connection refused").
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and reqwest sometimes repeat the cause in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Reads `response`'s body chunk by chunk, stopping as soon as it passes `limit` bytes:
/// the bytes read up to `limit`, and whether the body went on beyond them.
async fn read_body(
    response: &mut reqwest::Response,
    limit: u64,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    /// An announced length is the server's word: no more is reserved on it up front.
    const RESERVE_AT_MOST: usize = 1024 * 1024;

    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let announced = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let mut body = Vec::with_capacity(announced.min(limit).min(RESERVE_AT_MOST));
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// "HTTP 403 Forbidden: <SCIM detail>", or a short excerpt of a body that is not a SCIM
/// `Error`.
fn error_detail(status: StatusCode, body: &[u8]) -> String {
    /// Enough of an HTML error page to recognise it, not enough to flood a log line.
    const EXCERPT_CHARS: usize = 200;

    let mut detail = format!("HTTP {status}");
    if let Ok(ScimErrorBody {
        detail: Some(what),
        scim_type,
    }) = serde_json::from_slice::<ScimErrorBody>(body)
    {
        detail.push_str(": ");
        detail.push_str(what.trim());
        if let Some(scim_type) = scim_type.filter(|t| !t.is_empty()) {
            detail.push_str(&format!(" (scimType {scim_type})"));
        }
        return detail;
    }
    let text = String::from_utf8_lossy(body);
    let words: Vec<&str> = text.split_whitespace().collect();
    if !words.is_empty() {
        let joined = words.join(" ");
        let mut excerpt: String = joined.chars().take(EXCERPT_CHARS).collect();
        if excerpt.len() < joined.len() {
            excerpt.push('…');
        }
        detail.push_str(": ");
        detail.push_str(&excerpt);
    }
    detail
}

/// The time the server's clock shows (its `Date` header), so waits measured against it
/// do not depend on how far our clock is off.
fn server_now(headers: &HeaderMap, now: SystemTime) -> SystemTime {
    headers
        .get(DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| httpdate::parse_http_date(value.trim()).ok())
        .unwrap_or(now)
}

/// The wait a `Retry-After` header asks for: seconds (Entra sends fractions like `0.5`)
/// or an HTTP date.
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(server_now(headers, now))
            .unwrap_or(Duration::ZERO),
    )
}

/// The wait Okta's `X-Rate-Limit-Remaining: 0` and `X-Rate-Limit-Reset` (epoch
/// seconds) ask for, if any.
pub(super) fn okta_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let number = |name: &str| -> Option<u64> {
        headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok()
    };
    if number("x-rate-limit-remaining")? != 0 {
        return None;
    }
    let reset = UNIX_EPOCH + Duration::from_secs(number("x-rate-limit-reset")?);
    reset
        .duration_since(server_now(headers, now))
        .ok()
        .filter(|wait| !wait.is_zero())
}

/// Why a SCIM base URL cannot be used. No message holds the URL: it may carry a
/// password as user info.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    /// The text is not a URL; the parser's reason, which never quotes the input.
    #[error("not a URL: {0}")]
    Unparseable(String),
    /// Not an `http` or `https` URL with a host.
    #[error("expected an http or https URL with a host")]
    NotHttp,
    /// A query or fragment, which the SCIM paths cannot be appended to.
    #[error("a query or fragment cannot be combined with the SCIM paths")]
    QueryOrFragment,
    /// User info (`user:password@`): the HTTP client would send it as Basic auth in
    /// place of the bearer token.
    #[error(
        "it holds credentials (user info before the host), which would replace the bearer \
         token; remove them and give the token with token_env or token_file"
    )]
    Credentials,
}

/// Checks a configured SCIM base URL: absolute `http` or `https` with a host, no query
/// or fragment, no user info. The configuration is validated with this, so what passes
/// there also builds a [`ScimSource`].
///
/// # Errors
///
/// A [`BaseUrlError`] saying what is wrong, without the URL.
pub fn parse_base_url(url: &str) -> Result<Url, BaseUrlError> {
    let parsed = Url::parse(url.trim()).map_err(|e| BaseUrlError::Unparseable(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(BaseUrlError::NotHttp);
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(BaseUrlError::QueryOrFragment);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(BaseUrlError::Credentials);
    }
    Ok(parsed)
}

/// `{base}/{resource}`, whether or not the base ends with a slash.
pub(super) fn endpoint(base: &Url, resource: &str) -> Url {
    let path = format!("{}/{resource}", base.path().trim_end_matches('/'));
    let mut url = base.clone();
    url.set_path(&path);
    url
}

/// How errors name an endpoint: method and URL, without user info or query.
pub(super) fn origin(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have user info, which then has none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    format!("SCIM GET {shown}")
}

pub(super) fn bearer(token: &Secret, origin: &str) -> Result<HeaderValue, SourceError> {
    let credentials = |detail: &str| SourceError::Credentials {
        origin: origin.to_owned(),
        detail: detail.to_owned(),
    };
    if token.expose().trim().is_empty() {
        return Err(credentials("the bearer token is empty"));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        credentials("the bearer token holds characters an HTTP header cannot carry")
    })?;
    // Keeps the value out of reqwest's and hyper's `Debug` output.
    value.set_sensitive(true);
    Ok(value)
}
