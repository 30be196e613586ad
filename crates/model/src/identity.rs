//! The identities each source reports, as plain values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user of the identity provider, as its SCIM `/Users` endpoint reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpUser {
    /// The SCIM `id`, assigned by the IdP.
    pub id: String,
    /// The SCIM `externalId`, if the IdP sets one.
    pub external_id: Option<String>,
    /// The SCIM `userName`.
    pub user_name: String,
    /// The primary email: the one marked `primary`, else the first.
    pub email: Option<String>,
    /// SCIM `active`; a user without the attribute is active.
    pub active: bool,
    /// SCIM `meta.lastModified`, when the IdP sends it: for an inactive user, an upper
    /// bound of when the person was deactivated. Not part of the snapshot's digest: a
    /// directory whose users were only touched has not drifted.
    #[serde(default)]
    pub last_modified: Option<DateTime<Utc>>,
}

/// An external id an Identity Center user carries (`ExternalIds[]`), set by SCIM provisioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalId {
    /// Who issued the id, e.g. the SCIM endpoint.
    pub issuer: String,
    /// The id, equal to the IdP's `externalId` or `id`.
    pub id: String,
}

/// A user of the IAM Identity Center identity store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcUser {
    /// `UserId`, unique within the identity store.
    pub user_id: String,
    /// `UserName`.
    pub user_name: String,
    /// The primary email: the one marked `Primary`, else the first.
    pub email: Option<String>,
    /// `ExternalIds`, empty for users created in Identity Center itself.
    pub external_ids: Vec<ExternalId>,
}

/// A database user read from a target's `pg_user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbUser {
    /// `usename`, exactly as the catalog holds it.
    pub name: String,
    /// `usesysid`, when the source reports it.
    pub sysid: Option<i64>,
    /// `usesuper`.
    pub superuser: bool,
}

/// Everything read from one database target (a cluster, workgroup or database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSnapshot {
    /// The target's configured name.
    pub name: String,
    /// Every row of `pg_user`.
    pub users: Vec<DbUser>,
    /// The master user of a cluster or the admin user of a serverless namespace.
    pub master_user: Option<String>,
    /// The login name idgraph itself used on this target.
    pub login_user: Option<String>,
    /// Identity Center namespaces the target declares (`SVV_IDENTITY_PROVIDERS`), without the colon.
    pub namespaces: Vec<String>,
}

impl TargetSnapshot {
    /// A snapshot of a target with these users and nothing else known about it.
    pub fn new(name: impl Into<String>, users: Vec<DbUser>) -> Self {
        Self {
            name: name.into(),
            users,
            master_user: None,
            login_user: None,
            namespaces: Vec::new(),
        }
    }
}

/// A snapshot of any role, borrowed: what digests and the guard read, whichever role's
/// type holds it.
#[derive(Debug, Clone, Copy)]
pub enum SnapshotRef<'a> {
    /// The identity provider's users.
    Idp(&'a [IdpUser]),
    /// The Identity Center users.
    IdentityCenter(&'a [IcUser]),
    /// One database target.
    Target(&'a TargetSnapshot),
}

/// What a source delivers: the snapshot of one role ([`Vec<IdpUser>`], [`Vec<IcUser>`],
/// [`TargetSnapshot`]).
pub trait AsSnapshot {
    /// The snapshot, borrowed.
    fn view(&self) -> SnapshotRef<'_>;

    /// How many objects (users) it holds.
    fn objects(&self) -> usize {
        match self.view() {
            SnapshotRef::Idp(users) => users.len(),
            SnapshotRef::IdentityCenter(users) => users.len(),
            SnapshotRef::Target(target) => target.users.len(),
        }
    }
}

impl AsSnapshot for Vec<IdpUser> {
    fn view(&self) -> SnapshotRef<'_> {
        SnapshotRef::Idp(self)
    }
}

impl AsSnapshot for Vec<IcUser> {
    fn view(&self) -> SnapshotRef<'_> {
        SnapshotRef::IdentityCenter(self)
    }
}

impl AsSnapshot for TargetSnapshot {
    fn view(&self) -> SnapshotRef<'_> {
        SnapshotRef::Target(self)
    }
}
