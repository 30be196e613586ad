//! The SCIM JSON idgraph reads (RFC 7643, RFC 7644, RFC 9865): only what is read is
//! declared, serde skips the rest. The User resource is shared with the file source.

use std::fmt;

use chrono::{DateTime, Utc};

use idgraph_model::IdpUser;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::Deserialize;

use crate::primary_value;

/// A SCIM `ListResponse` page of users (RFC 7644 §3.4.2, RFC 9865 §2).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListResponse {
    pub(crate) total_results: Option<u64>,
    pub(crate) items_per_page: Option<u64>,
    // Attribute names are case-insensitive in SCIM (RFC 7643 §2.1).
    #[serde(rename = "Resources", alias = "resources")]
    pub(crate) resources: Option<Vec<ScimUser>>,
    pub(crate) next_cursor: Option<String>,
}

impl ListResponse {
    /// How many users the page holds.
    pub(crate) fn held(&self) -> u64 {
        self.resources.as_ref().map_or(0, Vec::len) as u64
    }

    /// How far this page moves the listing: `itemsPerPage`, but never more than the
    /// users it holds, so a server that overstates it cannot make us skip users.
    pub(crate) fn advance(&self) -> u64 {
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
pub(crate) struct ScimErrorBody {
    pub(crate) detail: Option<String>,
    pub(crate) scim_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceProviderConfig {
    pub(crate) pagination: Option<PaginationConfig>,
    pub(crate) filter: Option<FilterConfig>,
}

/// RFC 9865 §4.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaginationConfig {
    pub(crate) cursor: Option<LenientBool>,
    pub(crate) max_page_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FilterConfig {
    pub(crate) supported: Option<LenientBool>,
    pub(crate) max_results: Option<u64>,
}

/// A SCIM User resource; attributes not declared here are skipped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScimUser {
    // Optional here so a missing attribute is reported with the user's index rather than
    // as serde's "missing field" at the position of the closing brace.
    pub(crate) id: Option<String>,
    pub(crate) external_id: Option<String>,
    pub(crate) user_name: Option<String>,
    pub(crate) active: Option<LenientBool>,
    pub(crate) emails: Option<Vec<ScimEmail>>,
    pub(crate) meta: Option<ScimMeta>,
}

/// A resource's `meta` (RFC 7643 §3.1); only `lastModified` is read, as text, so a
/// server's odd timestamp never fails a full listing that does not need it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScimMeta {
    pub(crate) last_modified: Option<String>,
}

impl ScimUser {
    /// `meta.lastModified`, when present and an RFC 3339 date-time.
    pub(crate) fn last_modified(&self) -> Option<DateTime<Utc>> {
        let text = self.meta.as_ref()?.last_modified.as_deref()?;
        DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ScimEmail {
    pub(crate) value: Option<String>,
    pub(crate) primary: Option<LenientBool>,
}

/// The model user, or what is missing, e.g. "has no `userName`".
pub(crate) fn idp_user(user: ScimUser) -> Result<IdpUser, &'static str> {
    let last_modified = user.last_modified();
    let id = user.id.filter(|id| !id.is_empty()).ok_or("has no `id`")?;
    let user_name = user
        .user_name
        .filter(|name| !name.is_empty())
        .ok_or("has no `userName`")?;
    let email = user
        .emails
        .and_then(|emails| primary_value(emails, |e| (e.value, e.primary.is_some_and(|p| p.0))));
    Ok(IdpUser {
        id,
        external_id: user.external_id,
        user_name,
        email,
        // SCIM: a user without `active` is active.
        active: user.active.is_none_or(|a| a.0),
        last_modified,
    })
}

/// A JSON boolean, or the string `"true"` or `"false"` in any case: some IdPs send
/// SCIM booleans as strings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LenientBool(pub(crate) bool);

impl<'de> Deserialize<'de> for LenientBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientBoolVisitor;

        impl Visitor<'_> for LenientBoolVisitor {
            type Value = LenientBool;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean or the string \"true\" or \"false\"")
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<LenientBool, E> {
                Ok(LenientBool(value))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<LenientBool, E> {
                if value.eq_ignore_ascii_case("true") {
                    Ok(LenientBool(true))
                } else if value.eq_ignore_ascii_case("false") {
                    Ok(LenientBool(false))
                } else {
                    Err(E::invalid_value(Unexpected::Str(value), &self))
                }
            }
        }

        deserializer.deserialize_any(LenientBoolVisitor)
    }
}
