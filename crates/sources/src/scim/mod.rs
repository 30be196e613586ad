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
//!
//! # Layout
//! - `client`: one request with its retries, backoff and rate limits, the body read
//!   under its size cap, error details, and the token kept out of every message.
//! - `paging`: index and cursor paging, and the collector that checks the pages add up.
//! - `wire`: the SCIM JSON the client reads, shared with the file source.
//! - `watch`: [`ChangeFeed`], the users changed since a watermark
//!   (`meta.lastModified gt`), for the daemon's watcher.

mod client;
mod paging;
#[cfg(test)]
mod tests;
mod watch;
pub(crate) mod wire;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use idgraph_model::IdpUser;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::Url;
use tokio::time::Instant;

use crate::{Progress, Secret, Source, SourceError};

use client::{bearer, endpoint, error_chain, origin, RetryPolicy};
pub use client::{parse_base_url, BaseUrlError};
pub use watch::{changed_since_filter, ChangeFeed, ChangedUser, Poll, OVERLAP};

/// The media type of SCIM (RFC 7644 §3.1).
const SCIM_JSON: &str = "application/scim+json";

/// The source's name in progress reports, metrics and history rows.
const NAME: &str = "idp";

/// How [`ScimSource`] pages through `/Users`; configured as `auto`, `index` or `cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
}

#[async_trait::async_trait]
impl Source for ScimSource {
    type Snapshot = Vec<IdpUser>;

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
    async fn fetch(&self) -> Result<Vec<IdpUser>, SourceError> {
        // `finish` is due even when the fetch fails or is cancelled.
        let _finish = FinishOnDrop(self.progress.as_ref());
        self.fetch_users().await
    }
}

struct FinishOnDrop<'a>(&'a dyn Progress);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finish(NAME);
    }
}
