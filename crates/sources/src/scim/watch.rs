//! Asking a SCIM server which users changed since a watermark: RFC 7644 filtering on
//! `meta.lastModified gt "<RFC 3339>"`, paged like any listing, through the same client
//! (retries, rate limits, size caps).
//!
//! The watermark is the newest `meta.lastModified` seen. Each look asks from
//! [`OVERLAP`] before it, because clocks differ and several users can share a timestamp
//! (a `gt` filter on the exact watermark would skip a user written in the same instant
//! but listed after); what the overlap brings back again is dropped by id and
//! `lastModified`, so a user is reported once per change.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use idgraph_model::IdpUser;

use super::paging::Discovered;
use super::{Paging, ScimSource};
use crate::SourceError;

/// How far before the watermark each look starts.
pub const OVERLAP: TimeDelta = TimeDelta::seconds(5);

/// The RFC 7644 filter selecting the users changed after `since`.
pub fn changed_since_filter(since: DateTime<Utc>) -> String {
    format!(
        "meta.lastModified gt \"{}\"",
        since.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// A user the server reports changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedUser {
    /// The user as a listing delivers it.
    pub user: IdpUser,
    /// Its `meta.lastModified`, when the server sent a valid one.
    pub last_modified: Option<DateTime<Utc>>,
}

/// What one look for changes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// The users changed since the last look that were not reported before; empty when
    /// nothing changed.
    Changed(Vec<ChangedUser>),
    /// The server cannot filter users by `meta.lastModified`; the reason says how it
    /// told. Asking again would only get the same answer.
    Unsupported(String),
}

/// The users of a SCIM server that changed since a watermark, one look at a time.
///
/// The first look reads `/ServiceProviderConfig` once (paging, page size and
/// `filter.supported`); every look after that is one request when nothing changed. A
/// clone taken before a look can replace the feed to look at the same changes again.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    watermark: DateTime<Utc>,
    /// The users (id, `lastModified`) already reported whose change lies within the
    /// overlap of the watermark: the next look brings them back.
    seen: HashSet<(String, Option<DateTime<Utc>>)>,
    /// How to page, once read from `/ServiceProviderConfig`.
    plan: Option<(Paging, u32)>,
    /// Whether a filtered request has been answered: after that a 400 is a failure
    /// like any other, not a server that cannot filter.
    confirmed: bool,
}

impl ChangeFeed {
    /// A feed reporting the users changed after `watermark` (less the overlap).
    pub fn new(watermark: DateTime<Utc>) -> Self {
        Self {
            watermark,
            seen: HashSet::new(),
            plan: None,
            confirmed: false,
        }
    }

    /// The newest `meta.lastModified` seen, or the starting watermark.
    pub fn watermark(&self) -> DateTime<Utc> {
        self.watermark
    }

    /// Asks `source` for the users changed since the watermark and moves the watermark
    /// to the newest `meta.lastModified` among them.
    ///
    /// # Errors
    ///
    /// What [`Source::fetch`](crate::Source::fetch) fails with, for the filtered listing
    /// or `/ServiceProviderConfig`; the watermark then stays where it was.
    pub async fn poll(&mut self, source: &ScimSource) -> Result<Poll, SourceError> {
        let (paging, page_size) = match self.plan {
            Some(plan) => plan,
            None => {
                let found = source.discover().await?;
                if found.filter == Some(false) {
                    return Ok(Poll::Unsupported(
                        "/ServiceProviderConfig says filter.supported is false".to_owned(),
                    ));
                }
                let plan = plan(source, found);
                self.plan = Some(plan);
                plan
            }
        };
        let filter = changed_since_filter(self.watermark - OVERLAP);
        let listed = match source.list(paging, page_size, Some(&filter)).await {
            Ok(listed) => listed,
            Err(SourceError::Remote {
                status: Some(status @ (400 | 501)),
                detail,
                ..
            }) if !self.confirmed => {
                return Ok(Poll::Unsupported(format!(
                    "the first filtered request was answered {status}: {detail}"
                )));
            }
            Err(error) => return Err(error),
        };
        self.confirmed = true;
        let mut changed = Vec::new();
        for listed in listed {
            let at = listed.last_modified;
            if self.seen.insert((listed.user.id.clone(), at)) {
                changed.push(ChangedUser {
                    user: listed.user,
                    last_modified: at,
                });
            }
            if let Some(at) = at {
                self.watermark = self.watermark.max(at);
            }
        }
        let cutoff = self.watermark - OVERLAP;
        self.seen.retain(|(_, at)| at.is_none_or(|at| at >= cutoff));
        Ok(Poll::Changed(changed))
    }
}

/// The paging and page size a look uses: what the configuration says, or what the
/// server advertises when it says `auto`.
fn plan(source: &ScimSource, found: Discovered) -> (Paging, u32) {
    match source.paging {
        Paging::Auto => (found.paging, found.page_size),
        paging => (paging, source.page_size),
    }
}
