//! Whether a snapshot can be trusted (SPEC §3): a snapshot that lost a large part of what
//! the last complete one held, became empty, repeats an id, or lacks its target's master
//! user is more likely a broken export, an expired token or a half-read catalog than an
//! organisation that changed that much. Such a snapshot counts as failed, so that it can
//! neither open nor resolve findings, until an operator confirms it.
//!
//! In the manner of Azure AD Connect's "prevent accidental deletes".

use std::collections::HashSet;
use std::fmt;

use crate::identity::{AsSnapshot, SnapshotRef};

/// How far a source may shrink from its last complete snapshot before it is suspicious.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShrinkGuard {
    /// A shrink by more than this percentage of the last count is suspicious...
    pub max_percent: u8,
    /// ...when it also removes at least this many objects, so that dropping a few users
    /// from a small target after a remediation never trips it.
    pub max_count: u64,
}

impl Default for ShrinkGuard {
    fn default() -> Self {
        Self {
            max_percent: 20,
            max_count: 25,
        }
    }
}

impl ShrinkGuard {
    /// Checks a count of `now` objects against the `last` complete snapshot's, if any.
    ///
    /// # Errors
    ///
    /// [`Suspicion::Emptied`] when a source that had objects has none, and
    /// [`Suspicion::Shrank`] when it lost more than `max_percent` percent and at least
    /// `max_count` objects.
    pub fn check(&self, last: Option<u64>, now: u64) -> Result<(), Suspicion> {
        let Some(last) = last else { return Ok(()) };
        if now >= last {
            return Ok(());
        }
        if now == 0 {
            return Err(Suspicion::Emptied { last });
        }
        let lost = last - now;
        // lost / last > max_percent / 100, in integers.
        let too_many = u128::from(lost) * 100 > u128::from(last) * u128::from(self.max_percent);
        if too_many && lost >= self.max_count {
            return Err(Suspicion::Shrank {
                last,
                now,
                max_percent: self.max_percent,
                max_count: self.max_count,
            });
        }
        Ok(())
    }
}

/// Why a snapshot is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suspicion {
    /// The source had `last` objects in its last complete snapshot and now has none.
    Emptied {
        /// The last complete snapshot's count.
        last: u64,
    },
    /// The source lost more than the guard allows.
    Shrank {
        /// The last complete snapshot's count.
        last: u64,
        /// This snapshot's count.
        now: u64,
        /// The guard's percentage.
        max_percent: u8,
        /// The guard's count.
        max_count: u64,
    },
    /// Two objects share an id (IdP `id`, Identity Center `UserId`, `pg_user.usename`).
    DuplicateId {
        /// What the id is, e.g. `id`.
        field: &'static str,
        /// The id, as the source holds it.
        id: String,
    },
    /// A target's catalog does not hold the target's master/admin user, so the catalog
    /// was not really read (a wrong database, a view that hides rows, an empty export).
    MasterUserMissing {
        /// The master user.
        master_user: String,
    },
}

impl Suspicion {
    /// Whether an operator's `--accept-shrink` can confirm it: only a change in size can be
    /// real; a duplicate id or a missing master user never is.
    pub fn is_shrink(&self) -> bool {
        matches!(self, Suspicion::Emptied { .. } | Suspicion::Shrank { .. })
    }
}

impl fmt::Display for Suspicion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Suspicion::Emptied { last } => write!(
                f,
                "the snapshot is empty but the last complete one held {last} users"
            ),
            Suspicion::Shrank {
                last,
                now,
                max_percent,
                max_count,
            } => {
                let lost = last - now;
                // Rounded down, so that "21%" never reads as more than it is.
                let percent = u128::from(lost) * 100 / u128::from(*last);
                write!(
                    f,
                    "the snapshot shrank from {last} to {now} users (-{lost}, -{percent}%), \
                     more than max_shrink_percent = {max_percent} and max_shrink_count = \
                     {max_count} allow"
                )
            }
            Suspicion::DuplicateId { field, id } => {
                write!(f, "two users share the {field} {}", Excerpt(id))
            }
            Suspicion::MasterUserMissing { master_user } => write!(
                f,
                "the catalog lacks the target's master user {}, so it was not read completely",
                Excerpt(master_user)
            ),
        }
    }
}

/// A value quoted in a message (`Debug`-escaped, so control characters show), cut to 200
/// characters: values come from sources and may be arbitrarily long.
pub struct Excerpt<'a>(pub &'a str);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 200;
        match self.0.char_indices().nth(MAX) {
            None => write!(f, "{:?}", self.0),
            Some((end, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..end], self.0.len()),
        }
    }
}

/// The first problem that makes `snapshot` untrustworthy on its own, without history:
/// a repeated id, or a target without its master user.
///
/// # Errors
///
/// [`Suspicion::DuplicateId`] or [`Suspicion::MasterUserMissing`].
pub fn check_snapshot(snapshot: &(impl AsSnapshot + ?Sized)) -> Result<(), Suspicion> {
    match snapshot.view() {
        SnapshotRef::Idp(users) => first_duplicate(users.iter().map(|u| u.id.as_str()), "id"),
        SnapshotRef::IdentityCenter(users) => {
            first_duplicate(users.iter().map(|u| u.user_id.as_str()), "UserId")
        }
        SnapshotRef::Target(target) => {
            first_duplicate(target.users.iter().map(|u| u.name.as_str()), "usename")?;
            match &target.master_user {
                // Redshift folds unquoted names to lower case; the API reports the master
                // user as created.
                Some(master)
                    if !target
                        .users
                        .iter()
                        .any(|u| u.name.eq_ignore_ascii_case(master)) =>
                {
                    Err(Suspicion::MasterUserMissing {
                        master_user: master.clone(),
                    })
                }
                _ => Ok(()),
            }
        }
    }
}

fn first_duplicate<'a>(
    ids: impl ExactSizeIterator<Item = &'a str>,
    field: &'static str,
) -> Result<(), Suspicion> {
    let mut seen =
        HashSet::with_capacity_and_hasher(ids.len(), foldhash::fast::RandomState::default());
    for id in ids {
        if !seen.insert(id) {
            return Err(Suspicion::DuplicateId {
                field,
                id: id.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DbUser, IdpUser, TargetSnapshot};

    fn guard() -> ShrinkGuard {
        ShrinkGuard::default()
    }

    #[test]
    fn a_first_snapshot_or_growth_is_never_suspicious() {
        assert_eq!(guard().check(None, 0), Ok(()));
        assert_eq!(guard().check(Some(10), 10), Ok(()));
        assert_eq!(guard().check(Some(10), 500), Ok(()));
    }

    #[test]
    fn a_shrink_needs_both_the_percentage_and_the_count() {
        // 30 of 100 lost: over 20 % and at least 25.
        assert!(matches!(
            guard().check(Some(100), 70),
            Err(Suspicion::Shrank {
                last: 100,
                now: 70,
                ..
            })
        ));
        // Exactly 20 % is allowed; more than 20 % is not.
        assert_eq!(guard().check(Some(200), 160), Ok(()));
        assert!(guard().check(Some(200), 159).is_err());
        // 24 lost: over 20 % of 100 but fewer than 25.
        assert_eq!(guard().check(Some(30), 6), Ok(()));
        // 25 lost of 10,000: many, but 0.25 %.
        assert_eq!(guard().check(Some(10_000), 9_975), Ok(()));
    }

    #[test]
    fn becoming_empty_is_suspicious_whatever_the_size() {
        assert_eq!(
            guard().check(Some(3), 0),
            Err(Suspicion::Emptied { last: 3 })
        );
        assert_eq!(guard().check(Some(0), 0), Ok(()));
    }

    #[test]
    fn the_message_says_what_shrank_by_how_much() {
        let message = guard().check(Some(100), 70).unwrap_err().to_string();
        assert!(message.contains("from 100 to 70"), "{message}");
        assert!(message.contains("-30"), "{message}");
        assert!(message.contains("max_shrink_percent = 20"), "{message}");
    }

    fn idp(id: &str) -> IdpUser {
        IdpUser {
            id: id.to_owned(),
            external_id: None,
            user_name: format!("{id}@example.com"),
            email: None,
            active: true,
            last_modified: None,
        }
    }

    fn db(name: &str) -> DbUser {
        DbUser {
            name: name.to_owned(),
            sysid: None,
            superuser: false,
        }
    }

    #[test]
    fn a_repeated_id_is_named() {
        let snapshot = vec![idp("a"), idp("b"), idp("a")];
        assert_eq!(
            check_snapshot(&snapshot),
            Err(Suspicion::DuplicateId {
                field: "id",
                id: "a".to_owned()
            })
        );
        let message = check_snapshot(&snapshot).unwrap_err().to_string();
        assert!(message.contains("\"a\""), "{message}");
    }

    #[test]
    fn a_long_id_is_quoted_as_an_excerpt() {
        let long = "x".repeat(20_000);
        let snapshot = vec![idp(&long), idp(&long)];
        let message = check_snapshot(&snapshot).unwrap_err().to_string();
        assert!(message.len() < 400, "{} bytes", message.len());
        assert!(message.contains("20000 bytes"), "{message}");
    }

    #[test]
    fn a_catalog_must_hold_its_master_user() {
        let mut target = TargetSnapshot::new("t", vec![db("awsuser"), db("IAMA:ann")]);
        target.master_user = Some("awsuser".to_owned());
        assert_eq!(check_snapshot(&target.clone()), Ok(()));
        target.master_user = Some("AWSUSER".to_owned());
        assert_eq!(check_snapshot(&target.clone()), Ok(()));
        target.users.remove(0);
        assert_eq!(
            check_snapshot(&target),
            Err(Suspicion::MasterUserMissing {
                master_user: "AWSUSER".to_owned()
            })
        );
    }

    #[test]
    fn usenames_that_differ_only_in_case_are_different_users() {
        let target = TargetSnapshot::new("t", vec![db("IAMA:Ann"), db("IAMA:ann")]);
        assert_eq!(check_snapshot(&target), Ok(()));
        let target = TargetSnapshot::new("t", vec![db("bob"), db("bob")]);
        assert!(matches!(
            check_snapshot(&target),
            Err(Suspicion::DuplicateId {
                field: "usename",
                ..
            })
        ));
    }
}
