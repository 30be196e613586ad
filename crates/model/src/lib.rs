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
//! - [`digest`]: order-independent snapshot digests.
//! - [`guard`]: whether a snapshot can be trusted: shrinks, duplicate ids, a missing master user.

pub mod diff;
pub mod digest;
pub mod finding;
pub mod graph;
pub mod guard;
pub mod identity;
pub mod mapping;

#[cfg(test)]
mod tests;

pub use diff::{diff, Changes};
pub use digest::{digest, Canonical};
pub use finding::{
    Finding, FindingKey, FindingKind, MatchRule, Reason, Resolution, Scope, Severity,
};
pub use graph::{Accounting, DbClass, Graph};
pub use guard::{check_snapshot, Excerpt, ShrinkGuard, Suspicion};
pub use identity::{DbUser, ExternalId, IcUser, IdpUser, Snapshot, TargetSnapshot};
pub use mapping::{Mapping, MatchOn, NameForm};
