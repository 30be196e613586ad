//! The finding vocabulary: what is wrong, why, and how badly.

use serde::{Deserialize, Serialize};

use crate::activity::LoginEvidence;

/// What kind of problem a finding reports. The set is fixed: alerts and exports key on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A person's database user whose person has left or was never provisioned.
    OrphanedDbUser,
    /// A local database user nobody accounts for.
    UnmanagedDbUser,
    /// An Identity Center user with no active IdP user behind it.
    StaleIdentityCenterUser,
    /// A database user that matches more than one Identity Center user.
    AmbiguousMapping,
    /// An orphaned database user that logged in, or held a session, after its person
    /// was deactivated: an incident, not drift.
    PostDeprovisioningLogin,
    /// A database user with no login for `mapping.dormant_after_days`.
    DormantDbUser,
}

impl FindingKind {
    /// Whether the identity graph derives findings of this kind: what a targeted re-check
    /// ([`crate::focus`]) evaluates again, and the only kinds a scoped run may open or resolve.
    pub fn from_graph(self) -> bool {
        matches!(
            self,
            FindingKind::OrphanedDbUser
                | FindingKind::UnmanagedDbUser
                | FindingKind::StaleIdentityCenterUser
                | FindingKind::AmbiguousMapping
        )
    }
}

/// Why a finding was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No Identity Center user matches the database user.
    NoIdentityCenterUser,
    /// The Identity Center user has no IdP user.
    IdpUserMissing,
    /// The IdP user is deactivated.
    IdpUserInactive,
    /// An unprefixed database user matches no identity and is not allowlisted.
    NoMatchingIdentity,
    /// More than one Identity Center user matches.
    MultipleIdentityCenterUsers,
    /// No login observed for `mapping.dormant_after_days`.
    NoRecentLogin,
}

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A control to review periodically (a dormant user).
    Low,
    /// Can wait for the next review.
    Medium,
    /// Act this week.
    High,
    /// Act now: a superuser nobody owns.
    Critical,
}

crate::str_enum!(FindingKind {
    OrphanedDbUser => "orphaned_db_user",
    UnmanagedDbUser => "unmanaged_db_user",
    StaleIdentityCenterUser => "stale_identity_center_user",
    AmbiguousMapping => "ambiguous_mapping",
    PostDeprovisioningLogin => "post_deprovisioning_login",
    DormantDbUser => "dormant_db_user",
});

crate::str_enum!(Reason {
    NoIdentityCenterUser => "no_identity_center_user",
    IdpUserMissing => "idp_user_missing",
    IdpUserInactive => "idp_user_inactive",
    NoMatchingIdentity => "no_matching_identity",
    MultipleIdentityCenterUsers => "multiple_identity_center_users",
    NoRecentLogin => "no_recent_login",
});

crate::str_enum!(Resolution {
    NotSeen => "not_seen",
    TargetRemoved => "target_removed",
});

crate::str_enum!(Severity {
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
});

/// Why an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A run that evaluated the finding's scope no longer saw it.
    NotSeen,
    /// The finding's target was removed from (or renamed in) the configuration.
    TargetRemoved,
}

/// The rule that linked two identities, recorded on every graph edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchRule {
    /// An Identity Center `ExternalIds[].Id` equals the IdP user's `externalId`.
    ExternalId,
    /// An Identity Center `ExternalIds[].Id` equals the IdP user's `id`.
    IdpId,
    /// Case-insensitive user name.
    UserName,
    /// Case-insensitive primary email.
    Email,
    /// A configured prefix stripped from `usename`, the rest matched by user name.
    PrefixUserName,
    /// A configured prefix stripped from `usename`, the rest matched by email.
    PrefixEmail,
    /// An unprefixed `usename` matched by user name.
    BareUserName,
    /// An unprefixed `usename` matched by email.
    BareEmail,
}

crate::str_enum!(MatchRule {
    ExternalId => "external_id",
    IdpId => "idp_id",
    UserName => "user_name",
    Email => "email",
    PrefixUserName => "prefix_user_name",
    PrefixEmail => "prefix_email",
    BareUserName => "bare_user_name",
    BareEmail => "bare_email",
});

/// One problem the graph found in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// Why.
    pub reason: Reason,
    /// How urgent.
    pub severity: Severity,
    /// The target holding the database user; `None` for Identity Center findings.
    pub target: Option<String>,
    /// The database user, exactly as the catalog holds it; `None` for Identity Center findings.
    pub db_user: Option<String>,
    /// The Identity Center user involved, when there is exactly one.
    pub ic_user_id: Option<String>,
    /// The IdP user involved, when there is one.
    pub idp_user_id: Option<String>,
    /// The person's user name: the Identity Center `UserName` when matched, else the name
    /// the database user implies.
    pub user_name: Option<String>,
    /// Whether the database user is a superuser.
    pub superuser: bool,
    /// The rule that linked the database user to its Identity Center user, if any.
    pub matched_by: Option<MatchRule>,
    /// For `ambiguous_mapping`: every Identity Center user that matched, sorted.
    pub candidates: Vec<String>,
    /// For `post_deprovisioning_login` and `dormant_db_user`: the login evidence.
    pub logins: Option<LoginEvidence>,
}

impl Finding {
    /// The identity of a finding across runs: a finding with the same key in the next run
    /// is the same finding, still open, even when its reason or severity changed.
    pub fn key(&self) -> FindingKey {
        FindingKey {
            kind: self.kind,
            target: self.target.clone().unwrap_or_default(),
            subject: self
                .db_user
                .clone()
                .or_else(|| self.ic_user_id.clone())
                .unwrap_or_default(),
        }
    }

    /// The part of the run that must have been evaluated for this finding to open or resolve.
    pub fn scope(&self) -> Scope {
        match &self.target {
            Some(target) => Scope::Target(target.clone()),
            None => Scope::IdentityCenter,
        }
    }
}

/// What a finding is about, whatever its kind: a database user of a target, or an
/// Identity Center user (target empty). A targeted re-check names the subjects it evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    /// The target name, empty for an Identity Center user.
    pub target: String,
    /// The database user name, or the Identity Center user id.
    pub subject: String,
}

impl FindingKey {
    /// What the finding is about.
    pub fn subject(&self) -> Subject {
        Subject {
            target: self.target.clone(),
            subject: self.subject.clone(),
        }
    }
}

/// See [`Finding::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FindingKey {
    /// The finding kind.
    pub kind: FindingKind,
    /// The target name, empty for Identity Center findings.
    pub target: String,
    /// The database user name, or the Identity Center user id.
    pub subject: String,
}

/// A part of a run whose findings are evaluated together: only a fully fetched part may
/// open or resolve findings (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Findings about Identity Center users themselves.
    IdentityCenter,
    /// Findings about the database users of one target.
    Target(String),
    /// A target that is no longer configured: its open findings resolve, as
    /// [`Resolution::TargetRemoved`], since nothing will ever evaluate them again.
    RemovedTarget(String),
}

impl Scope {
    /// The target name, empty for Identity Center: the form the store keeps.
    pub fn target_name(&self) -> &str {
        match self {
            Scope::IdentityCenter => "",
            Scope::Target(name) | Scope::RemovedTarget(name) => name,
        }
    }
}
