//! The identity model of idgraph: the identities each source reports, the identity graph
//! that links them, and the findings the graph implies. No I/O: everything here is tested
//! and benchmarked with plain values.
//!
//! # Layout
//! - [`identity`]: IdP, Identity Center and database users; snapshots.
//! - [`mapping`]: how database user names map to identities (prefixes, `match_on`).
//! - [`graph`]: the petgraph identity graph, matching, and findings.
//! - [`finding`]: the finding vocabulary (kind, reason, severity) and finding keys.
//! - [`diff`]: which findings a run opens, updates and resolves.
//! - [`focus`]: a targeted re-check of the people who changed, against the last full run.
//! - [`activity`]: logins and sessions, and the findings they imply
//!   (`post_deprovisioning_login`, `dormant_db_user`).
//! - [`digest`]: order-independent snapshot digests.
//! - [`guard`]: whether a snapshot can be trusted: shrinks, duplicate ids, a missing master user.

/// Gives a fieldless enum its stable snake_case names: `ALL`, `as_str`, `parse` and
/// `Display`, from one list, so that a name is written once. For the vocabularies that JSON,
/// the store and metric labels share.
///
/// ```
/// # use std::fmt;
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// enum Light { Red, Green }
/// idgraph_model::str_enum!(Light { Red => "red", Green => "green" });
/// assert_eq!(Light::parse("green"), Some(Light::Green));
/// assert_eq!(Light::Red.to_string(), "red");
/// ```
#[macro_export]
macro_rules! str_enum {
    ($ty:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stable snake_case name used in JSON, the store and metric labels.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }

            /// Parses the name [`Self::as_str`] returns.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($ty::$variant),)+ _ => None }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod activity;
pub mod diff;
pub mod digest;
pub mod finding;
pub mod focus;
pub mod graph;
pub mod guard;
pub mod identity;
pub mod mapping;

#[cfg(test)]
mod tests;

pub use activity::{ActivityRun, Login, LoginEvidence, LoginHistory};
pub use diff::{diff, diff_within, Changes};
pub use digest::{digest, Canonical};
pub use finding::{
    Finding, FindingKey, FindingKind, MatchRule, Reason, Resolution, Scope, Severity, Subject,
};
pub use graph::{Accounting, DbClass, Graph};
pub use guard::{check_snapshot, Excerpt, ShrinkGuard, Suspicion};
pub use identity::{AsSnapshot, DbUser, ExternalId, IcUser, IdpUser, SnapshotRef, TargetSnapshot};
pub use mapping::{Mapping, MatchOn, NameForm};
