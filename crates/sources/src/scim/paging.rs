//! Paging through `/Users`: RFC 7644 index paging, RFC 9865 cursor paging, and the
//! collector that checks the pages add up to a complete, bounded listing.

use std::collections::{BTreeMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use idgraph_model::IdpUser;

use super::wire::{idp_user, ListResponse, ServiceProviderConfig};
use super::{Paging, ScimSource, NAME};
use crate::SourceError;

impl ScimSource {
    pub(super) async fn fetch_users(&self) -> Result<Vec<IdpUser>, SourceError> {
        let (paging, page_size) = match self.paging {
            Paging::Auto => {
                let found = self.discover().await?;
                (found.paging, found.page_size)
            }
            paging => (paging, self.page_size),
        };
        let users = self.list(paging, page_size, None).await?;
        tracing::debug!(
            path = self.users_url.path(),
            users = users.len(),
            paging = ?paging,
            "Fetched every SCIM user."
        );
        Ok(users.into_iter().map(|listed| listed.user).collect())
    }

    /// Every user `filter` selects (every user without one), paged as `paging` says.
    pub(super) async fn list(
        &self,
        paging: Paging,
        page_size: u32,
        filter: Option<&str>,
    ) -> Result<Vec<Listed>, SourceError> {
        match paging {
            Paging::Cursor => self.fetch_by_cursor(page_size, filter).await,
            Paging::Index | Paging::Auto => self.fetch_by_index(page_size, filter).await,
        }
    }

    /// The paging style, page size and filter support `/ServiceProviderConfig`
    /// advertises.
    pub(super) async fn discover(&self) -> Result<Discovered, SourceError> {
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
            config.filter.as_ref().and_then(|f| f.max_results),
        ]
        .into_iter()
        .flatten()
        .filter(|&max| max > 0)
        .fold(self.page_size, |size, max| {
            size.min(u32::try_from(max).unwrap_or(u32::MAX))
        });
        let filter = config.filter.and_then(|f| f.supported).map(|s| s.0);
        tracing::debug!(
            path = self.config_url.path(),
            paging = ?paging,
            page_size,
            filter = ?filter,
            "Read the SCIM service provider configuration."
        );
        Ok(Discovered {
            paging,
            page_size,
            filter,
        })
    }

    /// RFC 7644 index paging: the first page gives the total and the server's real page
    /// size; the rest follow concurrently.
    async fn fetch_by_index(
        &self,
        page_size: u32,
        filter: Option<&str>,
    ) -> Result<Vec<Listed>, SourceError> {
        let first = self.index_page(1, page_size, filter).await?;
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
                    (slot, self.index_page(slot.start, count, filter).await)
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
    async fn fetch_by_cursor(
        &self,
        page_size: u32,
        filter: Option<&str>,
    ) -> Result<Vec<Listed>, SourceError> {
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
            let page = self
                .cursor_page(&cursor, page_number, page_size, filter)
                .await?;
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

    async fn index_page(
        &self,
        start: u64,
        count: u32,
        filter: Option<&str>,
    ) -> Result<ListResponse, SourceError> {
        self.page(
            &[
                ("startIndex", start.to_string()),
                ("count", count.to_string()),
            ],
            filter,
            &format!("startIndex {start}"),
        )
        .await
    }

    async fn cursor_page(
        &self,
        cursor: &str,
        page_number: u64,
        count: u32,
        filter: Option<&str>,
    ) -> Result<ListResponse, SourceError> {
        // The log names the page by number: a cursor is opaque and long, and says nothing.
        self.page(
            &[("cursor", cursor.to_owned()), ("count", count.to_string())],
            filter,
            &format!("cursor page {page_number}"),
        )
        .await
    }

    /// GETs the page of `/Users` that `query` selects among the users `filter` selects;
    /// `position` names it in the log.
    async fn page(
        &self,
        query: &[(&str, String)],
        filter: Option<&str>,
        position: &str,
    ) -> Result<ListResponse, SourceError> {
        let mut url = self.users_url.clone();
        url.query_pairs_mut().extend_pairs(query);
        if let Some(filter) = filter {
            url.query_pairs_mut().append_pair("filter", filter);
        }
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
}

/// What `/ServiceProviderConfig` advertises.
#[derive(Debug, Clone, Copy)]
pub(super) struct Discovered {
    pub(super) paging: Paging,
    pub(super) page_size: u32,
    /// `filter.supported`; `None` when the server does not say.
    pub(super) filter: Option<bool>,
}

/// A user of a listing, with when the server says it last changed.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub(super) user: IdpUser,
    pub(super) last_modified: Option<DateTime<Utc>>,
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
    pages: BTreeMap<u64, Vec<Listed>>,
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
                let last_modified = user.last_modified();
                idp_user(user)
                    .map(|user| Listed {
                        user,
                        last_modified,
                    })
                    .map_err(|missing| SourceError::InvalidResponse {
                        origin: self.source.users_origin.clone(),
                        detail: self
                            .source
                            .redact(format!("the user at Resources[{i}] of {label} {missing}")),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fresh = users
            .iter()
            .filter(|listed| self.ids.insert(listed.user.id.clone()))
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
    fn finish(mut self) -> Result<Vec<Listed>, SourceError> {
        let mut users = Vec::with_capacity(self.ids.len());
        for user in std::mem::take(&mut self.pages).into_values().flatten() {
            // Index paging over a set that changes underneath shows a user twice; the
            // first time counts.
            if self.ids.remove(&user.user.id) {
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
