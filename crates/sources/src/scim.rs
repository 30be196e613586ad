//! A live SCIM 2.0 `/Users` endpoint as a source.
//!
//! [`ScimSource`] pages through `GET {url}/Users` with a bearer token and returns every
//! user or an error, never a short list: a missing page would make present users look
//! deleted, and every database user they own look orphaned.
//!
//! - Paging is RFC 7644 index paging (`startIndex`, `count`) or RFC 9865 cursor paging
//!   (`cursor`, `nextCursor`), chosen by [`Paging`]; `Auto` asks
//!   `/ServiceProviderConfig` which the server supports.
//! - Index paging trusts what the server says (`totalResults`, `itemsPerPage`), not what
//!   was asked for: servers cap `count` silently. Once the first page gives the total,
//!   the remaining pages are fetched [`concurrency`](ScimOptions::concurrency) at a time.
//! - The snapshot is checked: the number of distinct user ids must equal `totalResults`,
//!   and `totalResults` must not change while paging. Otherwise the fetch fails with
//!   [`SourceError::Incomplete`]; users added or removed meanwhile make that transient,
//!   so the next run succeeds. (Index paging cannot see a removal and an addition that
//!   leave the total unchanged between two pages, and may then skip a user; a server's
//!   cursor paging keys on the last user seen and does not.)
//! - Paging ends even when the server would page on: a `totalResults` beyond
//!   [`max_users`](ScimOptions::max_users) fails at once; so do more distinct users than
//!   `totalResults` (or than `max_users` without one), more pages than that many users
//!   can need, an index page holding only users seen before, a repeated cursor, and three
//!   cursor pages in a row without a new user.
//! - 429 and 5xx answers, timeouts and connection errors are retried a bounded number of
//!   times, honouring `Retry-After` (seconds, fractional seconds, or an HTTP date) and
//!   Okta's `X-Rate-Limit-Remaining`/`X-Rate-Limit-Reset`; otherwise with exponential
//!   backoff and jitter. Other 4xx answers fail at once.
//! - A response body is read chunk by chunk up to
//!   [`max_response_bytes`](ScimOptions::max_response_bytes): a larger answer fails the
//!   fetch as soon as it passes the limit (at once when its `Content-Length` says so),
//!   without a retry, so a server streaming without end cannot exhaust memory. An error
//!   body is read only as far as its excerpt needs.
//!
//! The token never leaves the `Authorization` header: errors name the endpoint as
//! `SCIM GET https://host/scim/v2/Users`, logs carry the path and the paging position,
//! and anything a server echoes back is scrubbed of it. A URL with user info is refused
//! ([`parse_base_url`]): the HTTP client would send it as Basic auth in place of the token.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{FuturesUnordered, StreamExt};
use idgraph_model::{IdpUser, Snapshot};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, DATE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::time::Instant;

use crate::file::{idp_user, LenientBool, ScimUser};
use crate::{Progress, Secret, Source, SourceError};

/// The media type of SCIM (RFC 7644 §3.1).
const SCIM_JSON: &str = "application/scim+json";

/// The source's name in progress reports, metrics and history rows.
const NAME: &str = "idp";

/// How [`ScimSource`] pages through `/Users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paging {
    /// Reads `/ServiceProviderConfig` first: cursor paging when the server advertises
    /// it (RFC 9865 `pagination.cursor`), index paging otherwise. The page size is also
    /// capped by the advertised `pagination.maxPageSize` and `filter.maxResults`.
    #[default]
    Auto,
    /// RFC 7644 index paging: `startIndex` (1-based) and `count`. Pages after the first
    /// are fetched concurrently.
    Index,
    /// RFC 9865 cursor paging: `cursor` (empty on the first request), then each page's
    /// `nextCursor` until a page has none. Sequential by nature. IAM Identity Center's
    /// own SCIM endpoint supports only this.
    Cursor,
}

/// How to reach a SCIM 2.0 service provider and page through its users.
///
/// [`ScimOptions::new`] gives the defaults for everything but the URL.
#[derive(Debug, Clone)]
pub struct ScimOptions {
    /// The SCIM base URL, e.g. `https://idp.example.com/scim/v2`; users are read from
    /// `{url}/Users`. A trailing slash is ignored; user info, a query or a fragment is
    /// refused.
    pub url: String,
    /// The bearer token, sent as `Authorization: Bearer …`. `None` sends no
    /// `Authorization` header.
    pub token: Option<Secret>,
    /// The `count` asked for per page; the server may return fewer. 0 counts as 1.
    pub page_size: u32,
    /// How to page; see [`Paging`].
    pub paging: Paging,
    /// How many pages are in flight at once once the first page has given the total
    /// (index paging only). 0 counts as 1.
    pub concurrency: usize,
    /// The limit on one request, from connecting to the last byte of the body.
    pub timeout: Duration,
    /// How many times one request is tried before the fetch fails. 0 counts as 1.
    pub max_attempts: u32,
    /// The largest response body read; a larger one fails the fetch as soon as it
    /// passes this, so a server streaming an endless answer cannot exhaust memory.
    /// 0 counts as 1.
    pub max_response_bytes: u64,
    /// The most users a listing may hold: a larger `totalResults` fails at once, and
    /// paging stops with an error once more distinct users arrive (cursor paging without
    /// a total) or more pages than this many users can fill. 0 counts as 1.
    pub max_users: u64,
}

impl ScimOptions {
    /// The default `count` per page.
    pub const DEFAULT_PAGE_SIZE: u32 = 100;
    /// The default number of pages in flight.
    pub const DEFAULT_CONCURRENCY: usize = 4;
    /// The default limit on one request.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default number of attempts per request.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
    /// The default limit on a response body: 64 MiB, some sixty times a page of 1,000
    /// users.
    pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
    /// The default limit on the users of a listing.
    pub const DEFAULT_MAX_USERS: u64 = 1_000_000;

    /// Options for the service provider at `url`, without a token, with the defaults:
    /// [`Paging::Auto`], 100 users a page, 4 pages in flight, 30 s per request, 5
    /// attempts, 64 MiB per response, 1,000,000 users.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            page_size: Self::DEFAULT_PAGE_SIZE,
            paging: Paging::Auto,
            concurrency: Self::DEFAULT_CONCURRENCY,
            timeout: Self::DEFAULT_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            max_response_bytes: Self::DEFAULT_MAX_RESPONSE_BYTES,
            max_users: Self::DEFAULT_MAX_USERS,
        }
    }
}

/// When to try a failed request again.
#[derive(Debug, Clone, Copy)]
struct RetryPolicy {
    max_attempts: u32,
    /// The first backoff; each further attempt doubles it, up to `cap`.
    base: Duration,
    cap: Duration,
    /// The longest wait a server may ask for (`Retry-After`, Okta's reset). A longer
    /// `Retry-After` fails the fetch rather than stall the run; Okta's reset is waited
    /// for at most this long.
    max_wait: Duration,
}

/// The users of a live SCIM 2.0 service provider, as a [`Source`] named `idp` of kind
/// `scim`.
///
/// See the [module documentation](self) for paging, retries and completeness checks.
pub struct ScimSource {
    client: reqwest::Client,
    users_url: Url,
    config_url: Url,
    users_origin: String,
    config_origin: String,
    token: Option<Secret>,
    page_size: u32,
    paging: Paging,
    concurrency: usize,
    retry: RetryPolicy,
    max_response_bytes: u64,
    max_users: u64,
    progress: Arc<dyn Progress>,
    /// No request leaves before this instant: set when Okta says the rate limit window
    /// is used up, shared by every request in flight.
    not_before: Mutex<Option<Instant>>,
}

impl fmt::Debug for ScimSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimSource")
            .field("users", &self.users_origin)
            .field("token", &self.token)
            .field("page_size", &self.page_size)
            .field("paging", &self.paging)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_users", &self.max_users)
            .finish_non_exhaustive()
    }
}

impl ScimSource {
    /// A source reading `{options.url}/Users`, reporting pages to `progress`.
    ///
    /// Nothing is sent until [`fetch`](Source::fetch).
    ///
    /// # Errors
    ///
    /// - [`SourceError::Unreachable`] when `url` is not usable (see [`parse_base_url`]),
    ///   or the HTTP client cannot be set up (no TLS backend).
    /// - [`SourceError::Credentials`] when the token is empty or cannot be sent in an
    ///   HTTP header (a control character, a newline).
    pub fn new(options: ScimOptions, progress: Arc<dyn Progress>) -> Result<Self, SourceError> {
        let base = parse_base_url(&options.url).map_err(|e| SourceError::Unreachable {
            origin: "SCIM".to_owned(),
            detail: format!("the configured URL is not usable: {e}"),
        })?;
        let users_url = endpoint(&base, "Users");
        let config_url = endpoint(&base, "ServiceProviderConfig");
        let users_origin = origin(&users_url);
        let config_origin = origin(&config_url);

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(SCIM_JSON));
        if let Some(token) = &options.token {
            headers.insert(AUTHORIZATION, bearer(token, &users_origin)?);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("idgraph/", env!("CARGO_PKG_VERSION")))
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .build()
            .map_err(|e| SourceError::Unreachable {
                origin: users_origin.clone(),
                detail: format!("cannot set up the HTTP client: {}", error_chain(&e)),
            })?;

        Ok(Self {
            client,
            users_url,
            config_url,
            users_origin,
            config_origin,
            token: options.token,
            page_size: options.page_size.max(1),
            paging: options.paging,
            concurrency: options.concurrency.max(1),
            retry: RetryPolicy {
                max_attempts: options.max_attempts.max(1),
                base: Duration::from_millis(200),
                cap: Duration::from_secs(10),
                max_wait: Duration::from_secs(60),
            },
            max_response_bytes: options.max_response_bytes.max(1),
            max_users: options.max_users.max(1),
            progress,
            not_before: Mutex::new(None),
        })
    }

    /// Shorter waits for tests that provoke retries.
    #[cfg(test)]
    fn with_retry_timing(mut self, base: Duration, cap: Duration, max_wait: Duration) -> Self {
        self.retry.base = base;
        self.retry.cap = cap;
        self.retry.max_wait = max_wait;
        self
    }

    async fn fetch_users(&self) -> Result<Vec<IdpUser>, SourceError> {
        let (paging, page_size) = match self.paging {
            Paging::Auto => self.discover().await?,
            paging => (paging, self.page_size),
        };
        let users = match paging {
            Paging::Cursor => self.fetch_by_cursor(page_size).await?,
            Paging::Index | Paging::Auto => self.fetch_by_index(page_size).await?,
        };
        tracing::debug!(
            path = self.users_url.path(),
            users = users.len(),
            paging = ?paging,
            "Fetched every SCIM user."
        );
        Ok(users)
    }

    /// The paging style and page size `/ServiceProviderConfig` advertises.
    async fn discover(&self) -> Result<(Paging, u32), SourceError> {
        let config: ServiceProviderConfig =
            match self.get(&self.config_url, &self.config_origin).await {
                Ok(config) => config,
                // A server without the endpoint still pages by index: RFC 7644 makes
                // index paging the baseline every provider supports.
                Err(SourceError::Remote {
                    status: Some(404 | 501),
                    ..
                }) => {
                    tracing::warn!(
                        path = self.config_url.path(),
                        "The SCIM server has no /ServiceProviderConfig; paging by index."
                    );
                    ServiceProviderConfig::default()
                }
                Err(error) => return Err(error),
            };
        let pagination = config.pagination.unwrap_or_default();
        let paging = if pagination.cursor.is_some_and(|c| c.0) {
            Paging::Cursor
        } else {
            Paging::Index
        };
        // Asking for more than the advertised maximum only makes the server cap it.
        let page_size = [
            pagination.max_page_size,
            config.filter.and_then(|f| f.max_results),
        ]
        .into_iter()
        .flatten()
        .filter(|&max| max > 0)
        .fold(self.page_size, |size, max| {
            size.min(u32::try_from(max).unwrap_or(u32::MAX))
        });
        tracing::debug!(
            path = self.config_url.path(),
            paging = ?paging,
            page_size,
            "Read the SCIM service provider configuration."
        );
        Ok((paging, page_size))
    }

    /// RFC 7644 index paging: the first page gives the total and the server's real page
    /// size; the rest follow concurrently.
    async fn fetch_by_index(&self, page_size: u32) -> Result<Vec<IdpUser>, SourceError> {
        let first = self.index_page(1, page_size).await?;
        let total = first
            .total_results
            .ok_or_else(|| SourceError::InvalidResponse {
                origin: self.users_origin.clone(),
                detail: "the first page has no `totalResults`, so there is no telling whether \
                     the listing is complete"
                    .to_owned(),
            })?;
        let mut run = Run::new(self);
        run.expect_total(Some(total))?;
        let stride = first.advance();
        run.add(1, "the page at startIndex 1", first)?;
        if stride == 0 && total > 0 {
            return Err(run.no_users_at(1));
        }

        // The stride is what the server really returns per page, which may be less than
        // the `count` asked for: continuing from startIndex + itemsPerPage skips nobody.
        let mut next_start = 1 + stride;
        // Pages that came back shorter than their slot leave a gap, fetched before
        // anything new.
        let mut gaps: VecDeque<Slot> = VecDeque::new();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.concurrency {
                let slot = match gaps.pop_front() {
                    Some(gap) => gap,
                    None if stride > 0 && next_start <= total => {
                        let slot = Slot {
                            start: next_start,
                            want: stride.min(total - next_start + 1),
                        };
                        next_start += stride;
                        slot
                    }
                    None => break,
                };
                in_flight.push(async move {
                    let count = u32::try_from(slot.want).unwrap_or(u32::MAX);
                    (slot, self.index_page(slot.start, count).await)
                });
            }
            // Dropping `in_flight` on an error cancels the other requests.
            let Some((slot, page)) = in_flight.next().await else {
                break;
            };
            let page = page?;
            let got = page.advance();
            let label = format!("the page at startIndex {}", slot.start);
            let fresh = run.add(slot.start, &label, page)?;
            // A page that makes no progress while the total says more would otherwise
            // be asked for again forever.
            if got == 0 {
                return Err(run.no_users_at(slot.start));
            }
            // Slots do not overlap, so a page of users seen before is a server that
            // ignores startIndex, which would repeat them up to totalResults.
            if fresh == 0 {
                return Err(run.invalid(format!(
                    "{label} holds only users earlier pages held; the server seems to \
                     ignore startIndex"
                )));
            }
            run.check_pages(stride)?;
            if got < slot.want {
                gaps.push_back(Slot {
                    start: slot.start + got,
                    want: slot.want - got,
                });
            }
        }
        run.finish()
    }

    /// RFC 9865 cursor paging: each page names the next until one does not.
    async fn fetch_by_cursor(&self, page_size: u32) -> Result<Vec<IdpUser>, SourceError> {
        // Servers may return an empty page with a next cursor (a page of filtered-out
        // resources); many in a row, or pages of users already seen, mean the listing is
        // not moving.
        const MAX_STALLED_PAGES_IN_A_ROW: u32 = 3;

        let mut run = Run::new(self);
        let mut cursor = String::new();
        let mut seen = HashSet::new();
        let mut stalled = 0;
        // The largest page the server returned: it may cap the page size silently.
        let mut largest = 0;
        for page_number in 1u64.. {
            let page = self.cursor_page(&cursor, page_number, page_size).await?;
            if page_number == 1 {
                run.expect_total(page.total_results)?;
            }
            let next = page.next_cursor.clone().filter(|next| !next.is_empty());
            largest = largest.max(page.held());
            let fresh = run.add(page_number, &format!("cursor page {page_number}"), page)?;
            let Some(next) = next else {
                break;
            };
            if !seen.insert(next.clone()) {
                return Err(run.invalid(format!(
                    "cursor page {page_number} names a nextCursor an earlier page named; \
                     paging would never end"
                )));
            }
            stalled = if fresh == 0 { stalled + 1 } else { 0 };
            if stalled >= MAX_STALLED_PAGES_IN_A_ROW {
                return Err(run.incomplete(format!(
                    "{stalled} cursor pages in a row up to page {page_number} brought no new \
                     users but named a next cursor"
                )));
            }
            run.check_pages(u64::from(page_size).min(largest))?;
            cursor = next;
        }
        run.finish()
    }

    async fn index_page(&self, start: u64, count: u32) -> Result<ListResponse, SourceError> {
        self.page(
            &[
                ("startIndex", start.to_string()),
                ("count", count.to_string()),
            ],
            &format!("startIndex {start}"),
        )
        .await
    }

    async fn cursor_page(
        &self,
        cursor: &str,
        page_number: u64,
        count: u32,
    ) -> Result<ListResponse, SourceError> {
        // The log names the page by number: a cursor is opaque and long, and says nothing.
        self.page(
            &[("cursor", cursor.to_owned()), ("count", count.to_string())],
            &format!("cursor page {page_number}"),
        )
        .await
    }

    /// GETs the page of `/Users` that `query` selects; `position` names it in the log.
    async fn page(
        &self,
        query: &[(&str, String)],
        position: &str,
    ) -> Result<ListResponse, SourceError> {
        let mut url = self.users_url.clone();
        url.query_pairs_mut().extend_pairs(query);
        let page: ListResponse = self.get(&url, &self.users_origin).await?;
        tracing::debug!(
            path = self.users_url.path(),
            position,
            users = page.resources.as_ref().map_or(0, Vec::len),
            total = page.total_results,
            "Fetched a SCIM page."
        );
        Ok(page)
    }

    /// GETs `url` and parses the JSON answer, retrying what may pass.
    async fn get<T: DeserializeOwned>(&self, url: &Url, origin: &str) -> Result<T, SourceError> {
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
        let retryable =
            error.is_timeout() || error.is_connect() || error.is_request() || error.is_body();
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
    fn backoff(&self, attempt: u32) -> Duration {
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
    fn redact(&self, text: String) -> String {
        match &self.token {
            Some(token) if !token.expose().is_empty() && text.contains(token.expose()) => {
                text.replace(token.expose(), "[redacted]")
            }
            _ => text,
        }
    }
}

#[async_trait::async_trait]
impl Source for ScimSource {
    fn name(&self) -> &str {
        NAME
    }

    fn kind(&self) -> &str {
        "scim"
    }

    /// Fetches every user of `{url}/Users`.
    ///
    /// # Errors
    ///
    /// - [`SourceError::Remote`] for an HTTP error (a SCIM `Error` body's `detail` is
    ///   the detail), after the retries for 429 and 5xx.
    /// - [`SourceError::Unreachable`] when the server cannot be reached or does not
    ///   answer within the timeout, after the retries.
    /// - [`SourceError::InvalidResponse`] for an answer that is not a SCIM
    ///   `ListResponse` of users with `id` and `userName`, or a cursor that repeats.
    /// - [`SourceError::Incomplete`] when the users delivered do not add up to
    ///   `totalResults`, `totalResults` changed while paging, or a page holds no users
    ///   although more are due.
    async fn fetch(&self) -> Result<Snapshot, SourceError> {
        // `finish` is due even when the fetch fails or is cancelled.
        let _finish = FinishOnDrop(self.progress.as_ref());
        let users = self.fetch_users().await?;
        Ok(Snapshot::Idp(users))
    }
}

struct FinishOnDrop<'a>(&'a dyn Progress);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finish(NAME);
    }
}

/// A range of index positions still to fetch.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: u64,
    want: u64,
}

/// The pages of one fetch, kept in listing order, with the checks that make a snapshot
/// complete and keep a server from paging without end.
struct Run<'a> {
    source: &'a ScimSource,
    /// The first page's `totalResults`.
    total: Option<u64>,
    /// Pages by position (startIndex or cursor page number), so the snapshot's order
    /// does not depend on which concurrent request finished first.
    pages: BTreeMap<u64, Vec<IdpUser>>,
    /// The id of every user delivered so far.
    ids: HashSet<String>,
    pages_fetched: u64,
    received: u64,
}

impl<'a> Run<'a> {
    fn new(source: &'a ScimSource) -> Self {
        Self {
            source,
            total: None,
            pages: BTreeMap::new(),
            ids: HashSet::new(),
            pages_fetched: 0,
            received: 0,
        }
    }

    /// Takes the first page's `totalResults` as what the listing holds; one beyond
    /// `max_users` fails before a second request.
    fn expect_total(&mut self, total: Option<u64>) -> Result<(), SourceError> {
        let max_users = self.source.max_users;
        if let Some(total) = total.filter(|&total| total > max_users) {
            return Err(self.invalid(format!(
                "totalResults {total} exceeds idp.max_users {max_users}; raise \
                 idp.max_users if the directory really holds that many users"
            )));
        }
        self.total = total;
        Ok(())
    }

    /// Adds a page and returns how many of its users no earlier page held.
    fn add(&mut self, position: u64, label: &str, page: ListResponse) -> Result<u64, SourceError> {
        if let (Some(first), Some(now)) = (self.total, page.total_results) {
            if first != now {
                return Err(self.incomplete(format!(
                    "totalResults changed from {first} to {now} by {label}: users were \
                     added or removed during the fetch; a rerun should succeed"
                )));
            }
        }
        let users = page
            .resources
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, user)| {
                idp_user(user).map_err(|missing| SourceError::InvalidResponse {
                    origin: self.source.users_origin.clone(),
                    detail: self
                        .source
                        .redact(format!("the user at Resources[{i}] of {label} {missing}")),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fresh = users
            .iter()
            .filter(|user| self.ids.insert(user.id.clone()))
            .count() as u64;
        self.pages_fetched += 1;
        self.received += users.len() as u64;
        self.pages.entry(position).or_default().extend(users);
        self.source
            .progress
            .update(NAME, self.pages_fetched, self.received, self.total);

        let distinct = self.ids.len() as u64;
        match self.total {
            Some(total) if distinct > total => Err(self.incomplete(format!(
                "{distinct} distinct users had arrived by {label}, more than totalResults \
                 {total}; users may have been added during the fetch, so a rerun may succeed"
            ))),
            None if distinct > self.source.max_users => Err(self.invalid(format!(
                "more than idp.max_users {} distinct users had arrived by {label}; raise \
                 idp.max_users if the directory really holds that many users",
                self.source.max_users
            ))),
            _ => Ok(fresh),
        }
    }

    /// Fails once more pages arrived than the listing can need at `page_size` users a
    /// page: twice the full pages (each may come back short and leave a gap) and a few
    /// more, for `totalResults` users, or for `max_users` without a total.
    fn check_pages(&self, page_size: u64) -> Result<(), SourceError> {
        const SLACK: u64 = 10;

        let (capacity, of) = match self.total {
            Some(total) => (total, format!("totalResults {total}")),
            None => (
                self.source.max_users,
                format!("idp.max_users {}", self.source.max_users),
            ),
        };
        let page_size = page_size.max(1);
        let max_pages = capacity
            .div_ceil(page_size)
            .saturating_mul(2)
            .saturating_add(SLACK);
        if self.pages_fetched <= max_pages {
            return Ok(());
        }
        Err(self.invalid(format!(
            "{} pages arrived, more than the {max_pages} pages the {of} users can need at \
             {page_size} a page; paging stopped",
            self.pages_fetched
        )))
    }

    fn no_users_at(&self, start: u64) -> SourceError {
        let total = self.total.unwrap_or_default();
        self.incomplete(format!(
            "totalResults is {total} but the page at startIndex {start} holds no users"
        ))
    }

    fn incomplete(&self, detail: String) -> SourceError {
        SourceError::Incomplete {
            origin: self.source.users_origin.clone(),
            detail,
        }
    }

    fn invalid(&self, detail: String) -> SourceError {
        SourceError::InvalidResponse {
            origin: self.source.users_origin.clone(),
            detail,
        }
    }

    /// Every user once, in listing order, if they add up to `totalResults`.
    fn finish(mut self) -> Result<Vec<IdpUser>, SourceError> {
        let mut users = Vec::with_capacity(self.ids.len());
        for user in std::mem::take(&mut self.pages).into_values().flatten() {
            // Index paging over a set that changes underneath shows a user twice; the
            // first time counts.
            if self.ids.remove(&user.id) {
                users.push(user);
            }
        }
        let unique = users.len() as u64;
        match self.total {
            Some(total) if total != unique => Err(self.incomplete(format!(
                "totalResults is {total} but {unique} distinct users arrived ({} entries in \
                 {} pages); users may have been added or removed during the fetch, so a \
                 rerun may succeed",
                self.received, self.pages_fetched
            ))),
            _ => Ok(users),
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
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
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
fn okta_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
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
fn endpoint(base: &Url, resource: &str) -> Url {
    let path = format!("{}/{resource}", base.path().trim_end_matches('/'));
    let mut url = base.clone();
    url.set_path(&path);
    url
}

/// How errors name an endpoint: method and URL, without user info or query.
fn origin(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have user info, which then has none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    format!("SCIM GET {shown}")
}

fn bearer(token: &Secret, origin: &str) -> Result<HeaderValue, SourceError> {
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

// ---------------------------------------------------------------------------------------
// Wire types: only what is read is declared, serde skips the rest.
// ---------------------------------------------------------------------------------------

/// A SCIM `ListResponse` page of users (RFC 7644 §3.4.2, RFC 9865 §2).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse {
    total_results: Option<u64>,
    items_per_page: Option<u64>,
    // Attribute names are case-insensitive in SCIM (RFC 7643 §2.1).
    #[serde(rename = "Resources", alias = "resources")]
    resources: Option<Vec<ScimUser>>,
    next_cursor: Option<String>,
}

impl ListResponse {
    /// How many users the page holds.
    fn held(&self) -> u64 {
        self.resources.as_ref().map_or(0, Vec::len) as u64
    }

    /// How far this page moves the listing: `itemsPerPage`, but never more than the
    /// users it holds, so a server that overstates it cannot make us skip users.
    fn advance(&self) -> u64 {
        let held = self.held();
        self.items_per_page
            .filter(|&n| n > 0)
            .map_or(held, |n| n.min(held))
    }
}

/// A SCIM `Error` (RFC 7644 §3.12). `status` is not read: the HTTP status is
/// authoritative, and servers disagree on whether it is a string or a number.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScimErrorBody {
    detail: Option<String>,
    scim_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceProviderConfig {
    pagination: Option<PaginationConfig>,
    filter: Option<FilterConfig>,
}

/// RFC 9865 §4.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaginationConfig {
    cursor: Option<LenientBool>,
    max_page_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterConfig {
    max_results: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::{json, Value};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    const TOKEN: &str = "s3cr3t-t0ken-value";

    // ----- a stand-in SCIM server ---------------------------------------------------------

    /// A request as the stand-in saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        query: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        at: std::time::Instant,
    }

    impl Seen {
        fn param(&self, name: &str) -> Option<&str> {
            self.query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }

        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn start(&self) -> u64 {
            self.param("startIndex")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1)
        }

        fn count(&self) -> usize {
            self.param("count")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100)
        }
    }

    /// What the stand-in answers.
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
        delay: Duration,
        /// After `body`, send users without end and without a Content-Length, until the
        /// client hangs up.
        endless: bool,
    }

    impl Reply {
        fn json(status: u16, body: &Value) -> Self {
            Self {
                status,
                headers: vec![("Content-Type".into(), SCIM_JSON.into())],
                body: body.to_string(),
                delay: Duration::ZERO,
                endless: false,
            }
        }

        /// A 200 answer that starts like a ListResponse and never ends.
        fn endless() -> Self {
            Self {
                status: 200,
                headers: vec![("Content-Type".into(), SCIM_JSON.into())],
                body: r#"{"totalResults": 1, "Resources": [{"id": "u", "userName": "u"},"#.into(),
                delay: Duration::ZERO,
                endless: true,
            }
        }

        fn scim_error(status: u16, detail: &str) -> Self {
            Self::json(
                status,
                &json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": status.to_string(),
                    "detail": detail,
                }),
            )
        }

        fn header(mut self, name: &str, value: &str) -> Self {
            self.headers.push((name.into(), value.into()));
            self
        }

        fn delayed(mut self, delay: Duration) -> Self {
            self.delay = delay;
            self
        }
    }

    /// A stand-in server on a port of its own; `handler` gets each request and its
    /// 0-based number.
    struct Stub {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
        /// The most requests the stand-in was answering at once.
        max_in_flight: Arc<AtomicUsize>,
        /// The body bytes the stand-in got out before the client hung up or the body
        /// ended.
        sent: Arc<AtomicUsize>,
    }

    impl Stub {
        async fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("http://{}/scim/v2", listener.local_addr().expect("addr"));
            let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
            let handler = Arc::new(handler);
            let counter = Arc::new(AtomicUsize::new(0));
            let in_flight = Arc::new(AtomicUsize::new(0));
            let max_in_flight: Arc<AtomicUsize> = Arc::default();
            let (in_flight_server, max_server) =
                (Arc::clone(&in_flight), Arc::clone(&max_in_flight));
            let seen_by_server = Arc::clone(&seen);
            let sent: Arc<AtomicUsize> = Arc::default();
            let sent_by_server = Arc::clone(&sent);
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let handler = Arc::clone(&handler);
                    let counter = Arc::clone(&counter);
                    let seen = Arc::clone(&seen_by_server);
                    let in_flight = Arc::clone(&in_flight_server);
                    let max_in_flight = Arc::clone(&max_server);
                    let sent = Arc::clone(&sent_by_server);
                    tokio::spawn(async move {
                        let (read, mut write) = stream.into_split();
                        let mut lines = BufReader::new(read).lines();
                        let Ok(Some(request_line)) = lines.next_line().await else {
                            return;
                        };
                        let mut headers = Vec::new();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = line.split_once(':') {
                                headers.push((name.trim().to_owned(), value.trim().to_owned()));
                            }
                        }
                        let target = request_line.split(' ').nth(1).unwrap_or("/");
                        let parsed = Url::parse(&format!("http://stub{target}")).expect("target");
                        let request = Seen {
                            path: parsed.path().to_owned(),
                            query: parsed.query_pairs().into_owned().collect(),
                            headers,
                            at: std::time::Instant::now(),
                        };
                        seen.lock().expect("lock").push(request.clone());
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        let reply = handler(&request, n);
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        max_in_flight.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(reply.delay).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        let mut head = format!("HTTP/1.1 {} Stub\r\n", reply.status);
                        // Without a length, the body ends when the connection closes.
                        if !reply.endless {
                            head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
                        }
                        head.push_str("Connection: close\r\n");
                        for (name, value) in &reply.headers {
                            head.push_str(&format!("{name}: {value}\r\n"));
                        }
                        head.push_str("\r\n");
                        let _ = write.write_all(head.as_bytes()).await;
                        let more = r#"{"id": "u", "userName": "u"},"#.repeat(2048);
                        let mut chunk = reply.body.as_str();
                        while write.write_all(chunk.as_bytes()).await.is_ok() {
                            sent.fetch_add(chunk.len(), Ordering::SeqCst);
                            if !reply.endless {
                                break;
                            }
                            chunk = &more;
                        }
                        let _ = write.shutdown().await;
                    });
                }
            });
            Self {
                url,
                seen,
                max_in_flight,
                sent,
            }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().expect("lock").clone()
        }

        fn user_requests(&self) -> Vec<Seen> {
            self.seen()
                .into_iter()
                .filter(|s| s.path.ends_with("/Users"))
                .collect()
        }

        fn options(&self) -> ScimOptions {
            ScimOptions {
                token: Some(Secret::new(TOKEN)),
                paging: Paging::Index,
                page_size: 10,
                ..ScimOptions::new(&self.url)
            }
        }

        /// A source with millisecond backoffs, so retry tests run fast.
        fn source(&self, options: ScimOptions) -> ScimSource {
            self.source_with_progress(options, Arc::new(crate::NoProgress))
        }

        /// Fetches with the stub's options and `paging`.
        async fn fetch_paging(&self, paging: Paging) -> Result<Vec<IdpUser>, SourceError> {
            fetch(&self.source(ScimOptions {
                paging,
                ..self.options()
            }))
            .await
        }

        fn source_with_progress(
            &self,
            options: ScimOptions,
            progress: Arc<dyn Progress>,
        ) -> ScimSource {
            ScimSource::new(options, progress)
                .expect("valid options")
                .with_retry_timing(
                    Duration::from_millis(1),
                    Duration::from_millis(5),
                    Duration::from_secs(5),
                )
        }
    }

    /// `n` users `u1`…`un`; every third one is inactive, every fourth has no `active`.
    fn directory(n: usize) -> Vec<Value> {
        (1..=n)
            .map(|i| {
                let mut user = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "id": format!("u{i}"),
                    "userName": format!("user{i}@example.com"),
                    "emails": [
                        {"value": format!("alt{i}@example.com")},
                        {"value": format!("user{i}@example.com"), "primary": true},
                    ],
                    "meta": {"resourceType": "User"},
                });
                if i % 4 != 0 {
                    user["active"] = json!(i % 3 != 0);
                }
                user
            })
            .collect()
    }

    /// An index page of `users` as RFC 7644 pages, returning at most `cap` users.
    fn index_page(users: &[Value], request: &Seen, cap: usize) -> Reply {
        let start = usize::try_from(request.start()).expect("start");
        let count = request.count().min(cap);
        let page: Vec<Value> = users.iter().skip(start - 1).take(count).cloned().collect();
        Reply::json(
            200,
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": users.len(),
                "startIndex": start,
                "itemsPerPage": page.len(),
                "Resources": page,
            }),
        )
    }

    fn list(total: usize, resources: &[Value]) -> Reply {
        Reply::json(
            200,
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": total,
                "itemsPerPage": resources.len(),
                "Resources": resources,
            }),
        )
    }

    async fn fetch(source: &ScimSource) -> Result<Vec<IdpUser>, SourceError> {
        // A bound on every fetch: a paging loop that does not end fails the test
        // instead of hanging it.
        match tokio::time::timeout(Duration::from_secs(20), source.fetch()).await {
            Ok(Ok(Snapshot::Idp(users))) => Ok(users),
            Ok(Ok(other)) => panic!("not an IdP snapshot: {other:?}"),
            Ok(Err(error)) => Err(error),
            Err(_) => panic!("the fetch did not end"),
        }
    }

    fn ids(users: &[IdpUser]) -> Vec<String> {
        users.iter().map(|u| u.id.clone()).collect()
    }

    fn expected_ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("u{i}")).collect()
    }

    fn starts(stub: &Stub) -> Vec<u64> {
        let mut starts: Vec<u64> = stub.user_requests().iter().map(Seen::start).collect();
        starts.sort_unstable();
        starts
    }

    // ----- index paging -------------------------------------------------------------------

    #[tokio::test]
    async fn index_paging_fetches_every_user_once_with_the_file_mapping() {
        let users = directory(25);
        let stub = Stub::start(move |req, _| index_page(&users, req, 1000)).await;
        let source = stub.source(stub.options());
        assert_eq!((source.name(), source.kind()), ("idp", "scim"));

        let fetched = fetch(&source).await.expect("fetches");
        assert_eq!(ids(&fetched), expected_ids(25));
        // The mapping is the file source's: primary email, missing `active` is active.
        assert_eq!(
            fetched[2],
            IdpUser {
                id: "u3".into(),
                external_id: None,
                user_name: "user3@example.com".into(),
                email: Some("user3@example.com".into()),
                active: false,
            }
        );
        assert!(fetched[3].active, "u4 has no `active`");
        assert_eq!(starts(&stub), [1, 11, 21]);
        let requests = stub.user_requests();
        assert!(requests.iter().all(|r| r.path == "/scim/v2/Users"));
        let last = requests
            .iter()
            .find(|r| r.start() == 21)
            .expect("last page");
        assert_eq!(last.param("count"), Some("5"), "asks only for what is left");
    }

    #[tokio::test]
    async fn a_server_returning_fewer_than_count_is_followed_by_what_it_returned() {
        // itemsPerPage 7 of count 10: continuing from startIndex + 10 would skip users.
        let users = directory(25);
        let stub = Stub::start(move |req, _| index_page(&users, req, 7)).await;
        let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
        assert_eq!(ids(&fetched), expected_ids(25));
        assert_eq!(starts(&stub), [1, 8, 15, 22]);
    }

    #[tokio::test]
    async fn a_short_page_in_the_middle_leaves_a_gap_that_is_fetched() {
        let users = directory(25);
        let stub = Stub::start(move |req, _| {
            let cap = if req.start() == 8 { 3 } else { 7 };
            index_page(&users, req, cap)
        })
        .await;
        let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
        assert_eq!(ids(&fetched), expected_ids(25));
        assert_eq!(starts(&stub), [1, 8, 11, 15, 22]);
    }

    #[tokio::test]
    async fn pages_without_users_while_more_are_due_are_incomplete_not_a_loop() {
        // Regression: a server answering 0 Resources with totalResults larger must not
        // be asked again forever.
        let users = directory(10);
        let stub = Stub::start(move |req, _| {
            if req.start() == 1 {
                list(20, &users)
            } else {
                list(20, &[])
            }
        })
        .await;
        let err = fetch(&stub.source(stub.options()))
            .await
            .expect_err("incomplete");
        assert!(
            matches!(&err, SourceError::Incomplete { detail, .. }
                if detail.contains("totalResults is 20 but the page at startIndex 11 holds no users")),
            "{err}"
        );
        assert_eq!(stub.user_requests().len(), 2);

        // The same on the very first page.
        let stub = Stub::start(|_, _| list(5, &[])).await;
        let err = fetch(&stub.source(stub.options()))
            .await
            .expect_err("incomplete");
        assert!(matches!(err, SourceError::Incomplete { .. }), "{err}");
        assert_eq!(stub.user_requests().len(), 1);
    }

    #[tokio::test]
    async fn users_added_during_the_fetch_make_it_incomplete() {
        let users = directory(21);
        let stub = Stub::start(move |req, _| {
            // The 21st user appears after the first page was served.
            let visible = if req.start() == 1 { 20 } else { 21 };
            index_page(&users[..visible], req, 1000)
        })
        .await;
        let err = fetch(&stub.source(stub.options()))
            .await
            .expect_err("incomplete");
        assert!(
            matches!(&err, SourceError::Incomplete { detail, .. }
                if detail.contains("totalResults changed from 20 to 21")
                    && detail.contains("rerun")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn fewer_distinct_users_than_total_results_is_incomplete() {
        // The second page repeats half the first: 20 entries, 15 distinct.
        let users = directory(20);
        let stub = Stub::start(move |req, _| {
            let start = if req.start() == 1 { 0 } else { 5 };
            let page = &users[start..start + 10];
            list(20, page)
        })
        .await;
        let err = fetch(&stub.source(stub.options()))
            .await
            .expect_err("incomplete");
        assert!(
            matches!(&err, SourceError::Incomplete { detail, .. }
                if detail.contains("totalResults is 20 but 15 distinct users arrived")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn index_pages_repeating_the_same_users_fail_at_once() {
        // Regression: a server ignoring startIndex with a large totalResults was asked
        // for page after page of the same users, for hours.
        let users = directory(10);
        let stub = Stub::start(move |_, _| list(1_000_000, &users)).await;
        let err = fetch(&stub.source(stub.options()))
            .await
            .expect_err("repeats");
        assert!(
            matches!(&err, SourceError::InvalidResponse { detail, .. }
                if detail.contains("the page at startIndex")
                    && detail.contains("holds only users earlier pages held")),
            "{err}"
        );
        // The first page, and at most the pages already in flight.
        let requests = stub.user_requests().len();
        assert!(
            requests <= 1 + ScimOptions::DEFAULT_CONCURRENCY,
            "{requests} requests"
        );
    }

    #[tokio::test]
    async fn index_pages_of_one_user_each_stop_at_the_page_bound() {
        // 10 users on the first page, then one a page: 91 pages for 100 users, more
        // than the 2 × 10 + 10 pages a listing of 100 can need at 10 a page.
        let users = directory(100);
        let stub = Stub::start(move |req, _| {
            let cap = if req.start() == 1 { 1000 } else { 1 };
            index_page(&users, req, cap)
        })
        .await;
        let err = fetch(&stub.source(ScimOptions {
            concurrency: 1,
            ..stub.options()
        }))
        .await
        .expect_err("too many pages");
        assert!(
            matches!(&err, SourceError::InvalidResponse { detail, .. }
                if detail.contains("31 pages arrived, more than the 30 pages the totalResults 100 users can need at 10 a page")),
            "{err}"
        );
        assert_eq!(stub.user_requests().len(), 31);
    }

    #[tokio::test]
    async fn a_total_beyond_max_users_fails_at_once() {
        // Regression: totalResults 1000000000 and the same users on every page paged
        // for hours.
        for paging in [Paging::Index, Paging::Cursor] {
            let users = directory(10);
            let stub = Stub::start(move |_, n| {
                Reply::json(
                    200,
                    &json!({
                        "totalResults": 1_000_000_000u64,
                        "itemsPerPage": 10,
                        "Resources": users,
                        "nextCursor": format!("c{n}"),
                    }),
                )
            })
            .await;
            let err = stub.fetch_paging(paging).await.expect_err("too many");
            assert!(
                matches!(&err, SourceError::InvalidResponse { detail, .. }
                    if detail.contains("totalResults 1000000000 exceeds idp.max_users 1000000")),
                "{paging:?}: {err}"
            );
            assert_eq!(stub.user_requests().len(), 1, "{paging:?}");
        }
    }

    #[tokio::test]
    async fn pages_are_fetched_concurrently_up_to_the_bound() {
        let users = directory(100);
        let stub = Stub::start(move |req, _| {
            // Long enough that requests overlap even on a busy machine.
            index_page(&users, req, 1000).delayed(Duration::from_millis(200))
        })
        .await;
        let fetched = fetch(&stub.source(ScimOptions {
            concurrency: 3,
            ..stub.options()
        }))
        .await
        .expect("fetches");
        assert_eq!(fetched.len(), 100);
        assert_eq!(stub.max_in_flight.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_empty_directory_is_an_empty_snapshot() {
        let stub = Stub::start(|_, _| list(0, &[])).await;
        let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
        assert!(fetched.is_empty());
    }

    // ----- cursor paging ------------------------------------------------------------------

    /// A cursor server: cursor `cN` starts at user N+1 (0-based), pages of `count`.
    fn cursor_page(users: &[Value], request: &Seen) -> Reply {
        let offset: usize = match request.param("cursor") {
            Some("") => 0,
            Some(cursor) => cursor[1..].parse().expect("a cursor of ours"),
            None => return Reply::scim_error(400, "cursor paging only"),
        };
        let page: Vec<Value> = users
            .iter()
            .skip(offset)
            .take(request.count())
            .cloned()
            .collect();
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": users.len(),
            "itemsPerPage": page.len(),
            "Resources": page,
        });
        if offset + request.count() < users.len() {
            body["nextCursor"] = json!(format!("c{}", offset + request.count()));
        }
        Reply::json(200, &body)
    }

    #[tokio::test]
    async fn cursor_paging_follows_next_cursor_until_there_is_none() {
        let users = directory(23);
        let stub = Stub::start(move |req, _| cursor_page(&users, req)).await;
        let fetched = stub.fetch_paging(Paging::Cursor).await.expect("fetches");
        assert_eq!(ids(&fetched), expected_ids(23));
        let cursors: Vec<String> = stub
            .user_requests()
            .iter()
            .map(|r| r.param("cursor").expect("cursor param").to_owned())
            .collect();
        assert_eq!(cursors, ["", "c10", "c20"]);
        assert!(stub
            .user_requests()
            .iter()
            .all(|r| r.param("startIndex").is_none() && r.param("count") == Some("10")));
    }

    #[tokio::test]
    async fn a_repeated_cursor_is_an_error_not_a_loop() {
        let users = directory(3);
        let stub = Stub::start(move |_, _| {
            let mut reply = json!({"totalResults": 30, "Resources": users, "nextCursor": "again"});
            reply["itemsPerPage"] = json!(3);
            Reply::json(200, &reply)
        })
        .await;
        let err = stub.fetch_paging(Paging::Cursor).await.expect_err("loops");
        assert!(matches!(err, SourceError::InvalidResponse { .. }), "{err}");
        assert_eq!(stub.user_requests().len(), 2);
    }

    #[tokio::test]
    async fn empty_cursor_pages_in_a_row_are_incomplete() {
        let stub = Stub::start(|_, n| {
            Reply::json(
                200,
                &json!({"totalResults": 5, "Resources": [], "nextCursor": format!("c{n}")}),
            )
        })
        .await;
        let err = stub.fetch_paging(Paging::Cursor).await.expect_err("stuck");
        assert!(matches!(err, SourceError::Incomplete { .. }), "{err}");
        assert_eq!(stub.user_requests().len(), 3);
    }

    /// A cursor page: the users, the total if any, and a new cursor every time.
    fn endless_cursor_page(n: usize, total: Option<u64>, users: &[Value]) -> Reply {
        let mut body = json!({"Resources": users, "nextCursor": format!("c{n}")});
        if let Some(total) = total {
            body["totalResults"] = json!(total);
        }
        Reply::json(200, &body)
    }

    /// `n` users no other call returns, named after `page`.
    fn fresh_users(page: usize, n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"id": format!("p{page}-{i}"), "userName": format!("p{page}-{i}")}))
            .collect()
    }

    #[tokio::test]
    async fn endless_new_cursors_stop_at_max_users() {
        // Regression: a new cursor on every page paged without end.
        let stub = Stub::start(|_, n| endless_cursor_page(n, None, &fresh_users(n, 10))).await;
        let err = fetch(&stub.source(ScimOptions {
            paging: Paging::Cursor,
            max_users: 50,
            ..stub.options()
        }))
        .await
        .expect_err("endless");
        assert!(
            matches!(&err, SourceError::InvalidResponse { detail, .. }
                if detail.contains("more than idp.max_users 50 distinct users had arrived by cursor page 6")),
            "{err}"
        );
        assert_eq!(stub.user_requests().len(), 6);

        // With a total, more users than it fail at once.
        let stub = Stub::start(|_, n| endless_cursor_page(n, Some(25), &fresh_users(n, 10))).await;
        let err = stub
            .fetch_paging(Paging::Cursor)
            .await
            .expect_err("endless");
        assert!(
            matches!(&err, SourceError::Incomplete { detail, .. }
                if detail.contains("30 distinct users had arrived by cursor page 3, more than totalResults 25")),
            "{err}"
        );
        assert_eq!(stub.user_requests().len(), 3);
    }

    #[tokio::test]
    async fn endless_new_cursors_over_the_same_users_stop_as_stalled() {
        let users = directory(10);
        let stub = Stub::start(move |_, n| endless_cursor_page(n, Some(100), &users)).await;
        let err = stub
            .fetch_paging(Paging::Cursor)
            .await
            .expect_err("stalled");
        assert!(
            matches!(&err, SourceError::Incomplete { detail, .. }
                if detail.contains("3 cursor pages in a row up to page 4 brought no new users")),
            "{err}"
        );
        assert_eq!(stub.user_requests().len(), 4);
    }

    #[tokio::test]
    async fn endless_new_cursors_trickling_users_stop_at_the_page_bound() {
        // 10 users, then one new user a page: more pages than a listing of 100 can need
        // at the 10 a page the server has shown it returns.
        let stub = Stub::start(|_, n| {
            let users = fresh_users(n, if n == 0 { 10 } else { 1 });
            endless_cursor_page(n, Some(100), &users)
        })
        .await;
        let err = stub
            .fetch_paging(Paging::Cursor)
            .await
            .expect_err("endless");
        assert!(
            matches!(&err, SourceError::InvalidResponse { detail, .. }
                if detail.contains("31 pages arrived, more than the 30 pages the totalResults 100 users can need at 10 a page")),
            "{err}"
        );
        assert_eq!(stub.user_requests().len(), 31);
    }

    // ----- Auto: /ServiceProviderConfig ---------------------------------------------------

    #[tokio::test]
    async fn auto_paging_uses_cursors_when_advertised_and_caps_the_page_size() {
        let users = directory(7);
        let stub = Stub::start(move |req, _| {
            if req.path.ends_with("/ServiceProviderConfig") {
                return Reply::json(
                    200,
                    &json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                        "filter": {"supported": true, "maxResults": 1000},
                        "pagination": {"cursor": true, "index": true, "maxPageSize": 3},
                    }),
                );
            }
            cursor_page(&users, req)
        })
        .await;
        let fetched = stub.fetch_paging(Paging::Auto).await.expect("fetches");
        assert_eq!(ids(&fetched), expected_ids(7));
        let seen = stub.seen();
        assert_eq!(seen[0].path, "/scim/v2/ServiceProviderConfig");
        assert!(seen[1..]
            .iter()
            .all(|r| r.param("cursor").is_some() && r.param("count") == Some("3")));
        assert_eq!(seen.len(), 4);
    }

    #[tokio::test]
    async fn auto_paging_uses_the_index_otherwise() {
        let users = directory(9);
        let stub = Stub::start(move |req, _| {
            if req.path.ends_with("/ServiceProviderConfig") {
                return Reply::json(
                    200,
                    &json!({"filter": {"supported": true, "maxResults": 4}}),
                );
            }
            index_page(&users, req, 1000)
        })
        .await;
        let fetched = stub.fetch_paging(Paging::Auto).await.expect("fetches");
        assert_eq!(ids(&fetched), expected_ids(9));
        assert_eq!(starts(&stub), [1, 5, 9]);

        // A server without the endpoint pages by index too.
        let users = directory(3);
        let stub = Stub::start(move |req, _| {
            if req.path.ends_with("/ServiceProviderConfig") {
                return Reply::scim_error(404, "not here");
            }
            index_page(&users, req, 1000)
        })
        .await;
        let fetched = stub.fetch_paging(Paging::Auto).await.expect("fetches");
        assert_eq!(fetched.len(), 3);
    }

    // ----- retries ------------------------------------------------------------------------

    #[tokio::test]
    async fn a_429_waits_for_a_fractional_retry_after_then_succeeds() {
        let users = directory(3);
        let stub = Stub::start(move |req, n| {
            if n == 0 {
                Reply::scim_error(429, "Too many requests").header("Retry-After", "0.2")
            } else {
                index_page(&users, req, 1000)
            }
        })
        .await;
        let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
        assert_eq!(fetched.len(), 3);
        let seen = stub.seen();
        assert_eq!(seen.len(), 2);
        let gap = seen[1].at - seen[0].at;
        assert!(gap >= Duration::from_millis(200), "{gap:?}");
        assert!(gap < Duration::from_secs(2), "{gap:?}");
    }

    #[tokio::test]
    async fn a_503_is_retried_then_succeeds() {
        let users = directory(3);
        let stub = Stub::start(move |req, n| {
            if n < 2 {
                Reply::scim_error(503, "Service unavailable")
            } else {
                index_page(&users, req, 1000)
            }
        })
        .await;
        let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
        assert_eq!(fetched.len(), 3);
        assert_eq!(stub.seen().len(), 3);
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let stub = Stub::start(|_, _| Reply::scim_error(503, "down for maintenance")).await;
        let started = std::time::Instant::now();
        let err = fetch(&stub.source(ScimOptions {
            max_attempts: 3,
            ..stub.options()
        }))
        .await
        .expect_err("gives up");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(stub.seen().len(), 3);
        match &err {
            SourceError::Remote {
                status: Some(503),
                detail,
                ..
            } => {
                assert!(detail.contains("down for maintenance"), "{detail}");
                assert!(detail.contains("gave up after 3 attempts"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_limit_fails_at_once() {
        let stub = Stub::start(|_, _| {
            Reply::scim_error(429, "quota exhausted").header("Retry-After", "3600")
        })
        .await;
        let started = std::time::Instant::now();
        let err = fetch(&stub.source(stub.options()))
            .await
            .expect_err("gives up");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(stub.seen().len(), 1);
        assert!(
            matches!(&err, SourceError::Remote { status: Some(429), detail, .. }
                if detail.contains("3600.0 s")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_scim_error_403_is_remote_with_status_and_detail_and_not_retried() {
        let stub = Stub::start(|_, _| {
            Reply::json(
                403,
                &json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "403",
                    "scimType": "sensitive",
                    "detail": "The client may not list users.",
                }),
            )
        })
        .await;
        let err = fetch(&stub.source(stub.options()))
            .await
            .expect_err("forbidden");
        assert_eq!(stub.seen().len(), 1, "a 403 would only repeat");
        match &err {
            SourceError::Remote {
                origin,
                status,
                detail,
            } => {
                assert_eq!(*status, Some(403));
                assert_eq!(
                    detail,
                    "HTTP 403 Forbidden: The client may not list users. (scimType sensitive)"
                );
                assert_eq!(origin, &format!("SCIM GET {}/Users", stub.url));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_non_scim_error_body_is_excerpted() {
        let stub = Stub::start(|_, _| Reply {
            status: 404,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: format!("<html>\n  <h1>Not   Found</h1>{}</html>", "x".repeat(500)),
            delay: Duration::ZERO,
            endless: false,
        })
        .await;
        let err = fetch(&stub.source(stub.options()))
            .await
            .expect_err("not found");
        let SourceError::Remote { detail, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(
            detail.starts_with("HTTP 404 Not Found: <html> <h1>Not Found</h1>xx"),
            "{detail}"
        );
        assert!(detail.ends_with('…') && detail.len() < 300, "{detail}");
    }

    #[tokio::test]
    async fn a_timeout_is_retried() {
        let users = directory(3);
        let stub = Stub::start(move |req, n| {
            let reply = index_page(&users, req, 1000);
            if n == 0 {
                reply.delayed(Duration::from_secs(5))
            } else {
                reply
            }
        })
        .await;
        let fetched = fetch(&stub.source(ScimOptions {
            timeout: Duration::from_secs(1),
            ..stub.options()
        }))
        .await
        .expect("fetches");
        assert_eq!(fetched.len(), 3);
        assert_eq!(stub.seen().len(), 2);

        // Always too slow: Unreachable, saying so.
        let stub = Stub::start(|_, _| list(0, &[]).delayed(Duration::from_secs(3))).await;
        let err = fetch(&stub.source(ScimOptions {
            timeout: Duration::from_millis(200),
            max_attempts: 2,
            ..stub.options()
        }))
        .await
        .expect_err("times out");
        assert!(
            matches!(&err, SourceError::Unreachable { detail, .. }
                if detail.contains("in time") && detail.contains("gave up after 2 attempts")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_after_the_attempts() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let options = ScimOptions {
            max_attempts: 2,
            paging: Paging::Index,
            token: Some(Secret::new(TOKEN)),
            ..ScimOptions::new(format!("http://127.0.0.1:{port}/scim/v2/"))
        };
        let source = ScimSource::new(options, Arc::new(crate::NoProgress))
            .expect("valid")
            .with_retry_timing(
                Duration::from_millis(1),
                Duration::from_millis(5),
                Duration::from_secs(5),
            );
        let err = fetch(&source).await.expect_err("refused");
        match &err {
            SourceError::Unreachable { origin, detail } => {
                assert_eq!(
                    origin,
                    &format!("SCIM GET http://127.0.0.1:{port}/scim/v2/Users")
                );
                assert!(detail.contains("gave up after 2 attempts"), "{detail}");
                assert!(detail.contains("Connection refused"), "{detail}");
                assert!(!detail.contains("startIndex"), "no URL again: {detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn okta_rate_limit_headers_hold_the_next_request_until_the_reset() {
        let users = directory(4);
        let stub = Stub::start(move |req, _| {
            let now = SystemTime::now();
            let epoch = now
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            // The stand-in's clock reads whole seconds, so the reset is exactly 1 s away
            // by it.
            index_page(&users, req, 2)
                .header(
                    "Date",
                    &httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(epoch)),
                )
                .header("X-Rate-Limit-Limit", "600")
                .header(
                    "X-Rate-Limit-Remaining",
                    if req.start() == 1 { "0" } else { "5" },
                )
                .header("X-Rate-Limit-Reset", &(epoch + 1).to_string())
        })
        .await;
        let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
        assert_eq!(fetched.len(), 4);
        let seen = stub.seen();
        let gap = seen[1].at - seen[0].at;
        assert!(gap >= Duration::from_millis(900), "{gap:?}");
    }

    #[test]
    fn retry_after_reads_seconds_fractions_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_str(value).expect("value"));
            }
            map
        };
        assert_eq!(
            retry_after(&headers(&[("retry-after", "0.5")]), now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", " 2 ")]), now),
            Some(Duration::from_secs(2))
        );
        let in_ten = httpdate::fmt_http_date(now + Duration::from_secs(10));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &in_ten)]), now),
            Some(Duration::from_secs(10))
        );
        // Measured against the server's Date, not our clock.
        let server_date = httpdate::fmt_http_date(now + Duration::from_secs(4));
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", &in_ten), ("date", &server_date)]),
                now
            ),
            Some(Duration::from_secs(6))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(10));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        for bad in ["-1", "NaN", "inf", "soon", ""] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", bad)]), now),
                None,
                "{bad}"
            );
        }
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn okta_wait_needs_remaining_zero_and_a_future_reset() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = |remaining: &str, reset: u64| {
            let mut map = HeaderMap::new();
            map.insert(
                "x-rate-limit-remaining",
                HeaderValue::from_str(remaining).expect("v"),
            );
            map.insert("x-rate-limit-reset", HeaderValue::from(reset));
            map
        };
        assert_eq!(
            okta_wait(&headers("0", 1_700_000_030), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(okta_wait(&headers("1", 1_700_000_030), now), None);
        assert_eq!(okta_wait(&headers("0", 1_699_999_990), now), None);
        assert_eq!(okta_wait(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let source = ScimSource::new(
            ScimOptions::new("https://idp.example.com/scim/v2"),
            Arc::new(crate::NoProgress),
        )
        .expect("valid");
        for _ in 0..100 {
            let first = source.backoff(1);
            assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
            let third = source.backoff(3);
            assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(800));
            let late = source.backoff(40);
            assert!(late >= Duration::from_secs(5) && late <= Duration::from_secs(10));
        }
    }

    // ----- secrets ------------------------------------------------------------------------

    #[tokio::test]
    // Logs are checked for the token end to end, in the integration tests that run the
    // binary with RUST_LOG=debug: capturing them here depends on the process-wide tracing
    // dispatchers other tests' threads share, which made this test flaky.
    async fn the_token_is_sent_as_bearer_and_shown_nowhere() {
        // A hostile server echoes the credentials back, in the error and in a user.
        let stub = Stub::start(|req, n| {
            let auth = req.header("authorization").unwrap_or_default().to_owned();
            match n {
                0 => Reply::scim_error(503, &format!("busy; you sent {auth}")),
                1 => Reply::scim_error(401, &format!("invalid credentials: {auth}")),
                _ => list(1, &[json!({"userName": auth})]),
            }
        })
        .await;
        let options = stub.options();
        let source = stub.source(options.clone());
        let err = fetch(&source).await.expect_err("unauthorized");
        let seen = stub.seen();
        assert_eq!(
            seen[0].header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(seen[0].header("accept"), Some(SCIM_JSON));
        assert!(
            matches!(
                err,
                SourceError::Remote {
                    status: Some(401),
                    ..
                }
            ),
            "{err}"
        );
        let err_missing_id = fetch(&source).await.expect_err("user without id");
        assert!(
            matches!(err_missing_id, SourceError::InvalidResponse { .. }),
            "{err_missing_id}"
        );

        let shown = [
            format!("{err} {err:?}"),
            format!("{err_missing_id} {err_missing_id:?}"),
            format!("{source:?} {options:?}"),
        ];
        for text in &shown {
            assert!(!text.contains(TOKEN), "the token leaked: {text}");
        }
        assert!(
            shown[0].contains("invalid credentials: Bearer [redacted]"),
            "{}",
            shown[0]
        );
    }

    #[test]
    fn bad_options_fail_without_showing_secrets() {
        let new = |url: &str, token: Option<&str>| {
            ScimSource::new(
                ScimOptions {
                    token: token.map(Secret::new),
                    ..ScimOptions::new(url)
                },
                Arc::new(crate::NoProgress),
            )
        };
        for url in [
            "idp.example.com/scim",
            "ftp://idp.example.com/scim",
            "https://idp.example.com/scim?x=1",
            "https://user:hunter2@[::1/scim",
        ] {
            let err = new(url, None).expect_err(url);
            assert!(
                matches!(err, SourceError::Unreachable { .. }),
                "{url}: {err}"
            );
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        let err =
            new("https://idp.example.com/scim", Some("line\nbreak-hunter2")).expect_err("newline");
        assert!(matches!(err, SourceError::Credentials { .. }), "{err}");
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
        let err = new("https://idp.example.com/scim", Some(" ")).expect_err("empty");
        assert!(matches!(err, SourceError::Credentials { .. }), "{err}");

        // Regression: user info replaced the bearer token with Basic auth.
        for url in [
            "https://user:hunter2@idp.example.com/scim/v2/",
            "https://hunter2@idp.example.com/scim/v2/",
        ] {
            let err = new(url, Some("t")).expect_err(url);
            assert!(
                matches!(&err, SourceError::Unreachable { detail, .. } if detail.contains("credentials")),
                "{err}"
            );
            assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
        }
        // Nor would an origin show it.
        let base = Url::parse("https://user:hunter2@idp.example.com/scim/v2/").expect("URL");
        assert_eq!(
            origin(&endpoint(&base, "Users")),
            "SCIM GET https://idp.example.com/scim/v2/Users"
        );
    }

    // ----- progress -----------------------------------------------------------------------

    /// One `Progress::update` call: source, pages, objects, total.
    type Update = (String, u64, u64, Option<u64>);

    #[derive(Default)]
    struct Recorded {
        updates: Mutex<Vec<Update>>,
        finished: AtomicUsize,
    }

    impl Progress for Recorded {
        fn update(&self, source: &str, pages: u64, objects: u64, total: Option<u64>) {
            self.updates
                .lock()
                .expect("lock")
                .push((source.to_owned(), pages, objects, total));
        }
        fn finish(&self, source: &str) {
            assert_eq!(source, "idp");
            self.finished.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn progress_is_reported_per_page_and_finished_even_on_failure() {
        let users = directory(25);
        let stub = Stub::start(move |req, _| index_page(&users, req, 1000)).await;
        let progress = Arc::new(Recorded::default());
        let source = stub.source_with_progress(stub.options(), progress.clone());
        fetch(&source).await.expect("fetches");
        let updates = progress.updates.lock().expect("lock").clone();
        assert_eq!(updates.len(), 3);
        assert_eq!(updates[0], ("idp".to_owned(), 1, 10, Some(25)));
        assert_eq!(updates[2], ("idp".to_owned(), 3, 25, Some(25)));
        assert_eq!(progress.finished.load(Ordering::SeqCst), 1);

        let stub = Stub::start(|_, _| Reply::scim_error(401, "no")).await;
        let progress = Arc::new(Recorded::default());
        let source = stub.source_with_progress(stub.options(), progress.clone());
        fetch(&source).await.expect_err("unauthorized");
        assert_eq!(progress.finished.load(Ordering::SeqCst), 1);
    }

    // ----- malformed answers --------------------------------------------------------------

    #[tokio::test]
    async fn answers_that_are_not_scim_are_invalid_responses() {
        let cases: [(&str, Reply); 3] = [
            (
                "not the expected SCIM JSON",
                Reply {
                    status: 200,
                    headers: vec![],
                    body: "<html>login</html>".into(),
                    delay: Duration::ZERO,
                    endless: false,
                },
            ),
            (
                "no `totalResults`",
                Reply::json(200, &json!({"Resources": []})),
            ),
            (
                "Resources[1] of the page at startIndex 1 has no `id`",
                list(
                    2,
                    &[
                        json!({"id": "a", "userName": "a"}),
                        json!({"userName": "b"}),
                    ],
                ),
            ),
        ];
        for (expected, reply) in cases {
            let reply = Arc::new(Mutex::new(Some(reply)));
            let stub = Stub::start(move |_, _| {
                reply
                    .lock()
                    .expect("lock")
                    .take()
                    .unwrap_or_else(|| list(0, &[]))
            })
            .await;
            let err = fetch(&stub.source(stub.options()))
                .await
                .expect_err(expected);
            assert!(
                matches!(&err, SourceError::InvalidResponse { detail, .. } if detail.contains(expected)),
                "{expected}: {err}"
            );
            assert_eq!(stub.seen().len(), 1, "{expected}: not retried");
        }
    }

    // ----- hostile servers ----------------------------------------------------------------

    #[tokio::test]
    async fn an_endless_body_fails_as_soon_as_it_passes_the_limit() {
        // Regression: a body that never ended grew the process until it was OOM-killed.
        let stub = Stub::start(|_, _| Reply::endless()).await;
        let err = fetch(&stub.source(ScimOptions {
            max_response_bytes: 1024 * 1024,
            ..stub.options()
        }))
        .await
        .expect_err("too large");
        assert!(
            matches!(&err, SourceError::InvalidResponse { detail, .. }
                if detail.contains("exceeded the limit of 1048576 bytes (idp.max_response_bytes)")),
            "{err}"
        );
        assert_eq!(stub.seen().len(), 1, "an oversized answer is not retried");
        // Reading stopped at the limit: what else got out sits in socket buffers.
        let sent = stub.sent.load(Ordering::SeqCst);
        assert!(sent < 32 * 1024 * 1024, "{sent} bytes sent");
    }

    #[tokio::test]
    async fn a_content_length_beyond_the_limit_fails_before_the_body_is_read() {
        let users = directory(50);
        let stub = Stub::start(move |_, _| list(50, &users)).await;
        let err = fetch(&stub.source(ScimOptions {
            max_response_bytes: 1000,
            ..stub.options()
        }))
        .await
        .expect_err("too large");
        assert!(
            matches!(&err, SourceError::InvalidResponse { detail, .. }
                if detail.contains("(Content-Length), more than the limit of 1000 bytes")),
            "{err}"
        );
        assert_eq!(stub.seen().len(), 1, "not retried");
    }

    #[tokio::test]
    async fn an_endless_error_body_is_cut_off_and_the_status_decides() {
        let stub = Stub::start(|_, _| Reply {
            status: 503,
            ..Reply::endless()
        })
        .await;
        let err = fetch(&stub.source(ScimOptions {
            max_attempts: 2,
            ..stub.options()
        }))
        .await
        .expect_err("unavailable");
        assert!(
            matches!(&err, SourceError::Remote { status: Some(503), detail, .. }
                if detail.contains("gave up after 2 attempts") && detail.len() < 400),
            "{err}"
        );
        assert_eq!(stub.seen().len(), 2, "retried as a 503");
    }
}
