//! A SCIM 2.0 `/Users` export: a `ListResponse`, an array of users, or an array of
//! `ListResponse` pages, walked as it is read.

use std::fmt;
use std::io::Read;
use std::path::Path;

use idgraph_model::IdpUser;

use super::{open_json, unexpected_start, Problem};
use crate::json_stream::JsonStream;
use crate::scim::wire::{idp_user, LenientBool, ScimEmail, ScimMeta, ScimUser};

/// An element of the top-level value, walked by [`scim_item`]: either a `ListResponse`
/// page (its users were handed on as they were read) or a User resource.
#[derive(Debug, Default)]
struct ScimItem {
    // ListResponse attributes.
    resources: bool,
    total_results: Option<u64>,
    // User attributes.
    id: Option<String>,
    external_id: Option<String>,
    user_name: Option<String>,
    active: Option<LenientBool>,
    emails: Option<Vec<ScimEmail>>,
    meta: Option<ScimMeta>,
}

impl ScimItem {
    /// A page is anything with ListResponse attributes; a page of an empty directory may
    /// carry `totalResults: 0` and no `Resources`.
    fn is_page(&self) -> bool {
        self.resources || self.total_results.is_some()
    }

    fn into_user(self) -> ScimUser {
        ScimUser {
            id: self.id,
            external_id: self.external_id,
            user_name: self.user_name,
            active: self.active,
            emails: self.emails,
            // When an inactive user last changed bounds when the person left.
            meta: self.meta,
        }
    }
}

/// Where a user sits in the file, for error messages.
#[derive(Debug, Clone, Copy)]
enum ScimLocation {
    /// `Resources[i]` of the single top-level ListResponse.
    Resource(usize),
    /// Element `i` of a top-level array of users.
    Element(usize),
    /// `Resources[i]` of page `p` of a top-level array of pages.
    PageResource(usize, usize),
}

impl fmt::Display for ScimLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ScimLocation::Resource(i) => write!(f, "Resources[{i}]"),
            ScimLocation::Element(i) => write!(f, "[{i}]"),
            ScimLocation::PageResource(page, i) => write!(f, "[{page}].Resources[{i}]"),
        }
    }
}

pub(super) fn parse_scim(path: &Path) -> Result<Vec<IdpUser>, Problem> {
    let mut s = open_json(path)?;
    let mut users = Vec::new();
    let mut add = |user: ScimUser, location: ScimLocation| -> Result<(), Problem> {
        let index = users.len();
        let user = idp_user(user).map_err(|missing| {
            Problem::Malformed(format!(
                "user {index} (0-based index within the file), at {location}, {missing}"
            ))
        })?;
        users.push(user);
        Ok(())
    };

    let total_results = match s.peek()? {
        None => return Err(Problem::Malformed("the file is empty".to_owned())),
        Some(b'{') => {
            let page = scim_item(&mut s, &mut |user, i| add(user, ScimLocation::Resource(i)))?;
            if !page.is_page() {
                return Err(Problem::Malformed(
                    "the top-level object is not a SCIM ListResponse: it has neither \
                     `Resources` nor `totalResults`"
                        .to_owned(),
                ));
            }
            page.total_results
        }
        Some(b'[') => scim_array(&mut s, &mut add)?,
        Some(_) => {
            return Err(unexpected_start(
                &s,
                "a SCIM ListResponse object or a JSON array",
            ))
        }
    };
    s.end()?;

    if let Some(total) = total_results {
        if (users.len() as u64) < total {
            return Err(Problem::Incomplete(format!(
                "totalResults is {total} but the file holds {} users",
                users.len()
            )));
        }
    }
    Ok(users)
}

/// Walks a SCIM export that is a JSON array: of ListResponse pages or of User resources,
/// never both, each user going to `add` with where it stands. Returns the first page's
/// `totalResults`, the count the listing started from.
fn scim_array<R: Read>(
    s: &mut JsonStream<R>,
    add: &mut dyn FnMut(ScimUser, ScimLocation) -> Result<(), Problem>,
) -> Result<Option<u64>, Problem> {
    let mut total_results = None;
    let mut pages_of_users = None;
    s.array(|s, p| {
        let item = scim_item(s, &mut |user, i| {
            add(user, ScimLocation::PageResource(p, i))
        })?;
        let pages_of_users = *pages_of_users.get_or_insert(item.is_page());
        if item.is_page() != pages_of_users {
            let (this, first) = if pages_of_users {
                ("a User resource", "a ListResponse page")
            } else {
                ("a ListResponse page", "a User resource")
            };
            return Err(Problem::Malformed(format!(
                "element [{p}] is {this} but element [0] is {first}; the array must \
                 hold only users or only pages"
            )));
        }
        if pages_of_users {
            total_results = total_results.or(item.total_results);
        } else {
            add(item.into_user(), ScimLocation::Element(p))?;
        }
        Ok(())
    })?;
    Ok(total_results)
}

/// Walks an element of a SCIM export: a ListResponse page, whose `Resources` go to
/// `resource` one by one with their index as they are read, or a User resource.
fn scim_item<R: Read>(
    s: &mut JsonStream<R>,
    resource: &mut dyn FnMut(ScimUser, usize) -> Result<(), Problem>,
) -> Result<ScimItem, Problem> {
    let mut item = ScimItem::default();
    s.object(|s, key| -> Result<(), Problem> {
        match key.as_str() {
            "Resources" if s.peek()? == Some(b'[') => {
                item.resources = true;
                s.array(|s, i| resource(s.value()?, i))?;
            }
            // `null` is no Resources at all; anything else is the wrong type, as serde says.
            "Resources" => {
                let _: Option<Vec<ScimUser>> = s.value()?;
            }
            "totalResults" => item.total_results = s.value()?,
            "id" => item.id = s.value()?,
            "externalId" => item.external_id = s.value()?,
            "userName" => item.user_name = s.value()?,
            "active" => item.active = s.value()?,
            "emails" => item.emails = s.value()?,
            "meta" => item.meta = s.value()?,
            _ => s.skip()?,
        }
        Ok(())
    })?;
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::file::testing::{file, malformed_detail};
    use crate::file::FileIdp;
    use crate::{Source, SourceError};

    async fn idp(content: impl AsRef<[u8]>) -> Result<Vec<IdpUser>, SourceError> {
        let f = file(content);
        FileIdp::new(f.path()).fetch().await
    }

    fn user_names(users: &[IdpUser]) -> Vec<&str> {
        users.iter().map(|u| u.user_name.as_str()).collect()
    }

    const ALICE: &str = r#"{
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "00u1", "externalId": "ext-1", "userName": "alice@example.com",
        "name": {"givenName": "Alice", "familyName": "A"}, "displayName": "Alice",
        "active": true,
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
        "groups": [{"value": "g1", "display": "Admins"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "42", "manager": {"value": "00u9"}
        },
        "meta": {"resourceType": "User", "created": "2020-01-01T00:00:00Z"}
    }"#;
    const BOB: &str = r#"{"id": "00u2", "userName": "bob@example.com", "active": false}"#;

    fn list_response(total: usize, resources: &[&str]) -> String {
        format!(
            r#"{{"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": {total}, "itemsPerPage": {}, "startIndex": 1,
                "Resources": [{}]}}"#,
            resources.len(),
            resources.join(",")
        )
    }

    // ----- SCIM -------------------------------------------------------------------------

    #[tokio::test]
    async fn scim_list_response_maps_every_attribute() {
        let users = idp(list_response(2, &[ALICE, BOB])).await.expect("parses");
        assert_eq!(
            users,
            vec![
                IdpUser {
                    id: "00u1".into(),
                    external_id: Some("ext-1".into()),
                    user_name: "alice@example.com".into(),
                    email: Some("alice@example.com".into()),
                    active: true,
                    last_modified: None,
                },
                IdpUser {
                    id: "00u2".into(),
                    external_id: None,
                    user_name: "bob@example.com".into(),
                    email: None,
                    active: false,
                    last_modified: None,
                },
            ]
        );
    }

    #[tokio::test]
    async fn scim_empty_directory_with_null_resources() {
        let users = idp(r#"{"totalResults": 0, "Resources": null}"#)
            .await
            .unwrap();
        assert!(users.is_empty());
        let err = idp(r#"{"totalResults": 1, "Resources": "x"}"#)
            .await
            .expect_err("not a list");
        assert!(
            malformed_detail(&err).contains("expected a sequence"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn scim_array_of_users() {
        let users = idp(format!("[{ALICE}, {BOB}]")).await.expect("parses");
        assert_eq!(user_names(&users), ["alice@example.com", "bob@example.com"]);
    }

    #[tokio::test]
    async fn scim_array_of_pages() {
        let carol = r#"{"id": "00u3", "userName": "carol"}"#;
        let content = format!(
            "[{}, {}]",
            list_response(3, &[ALICE, BOB]),
            list_response(3, &[carol])
        );
        let users = idp(content).await.expect("parses");
        assert_eq!(
            user_names(&users),
            ["alice@example.com", "bob@example.com", "carol"]
        );
    }

    #[tokio::test]
    async fn scim_missing_active_means_active_and_string_booleans_are_accepted() {
        let content = r#"[
            {"id": "1", "userName": "no-attribute"},
            {"id": "2", "userName": "null", "active": null},
            {"id": "3", "userName": "string-false", "active": "False"},
            {"id": "4", "userName": "string-true", "active": "TRUE"},
            {"id": "5", "userName": "bool-false", "active": false}
        ]"#;
        let users = idp(content).await.expect("parses");
        let active: Vec<(&str, bool)> = users
            .iter()
            .map(|u| (u.user_name.as_str(), u.active))
            .collect();
        assert_eq!(
            active,
            [
                ("no-attribute", true),
                ("null", true),
                ("string-false", false),
                ("string-true", true),
                ("bool-false", false),
            ]
        );
    }

    #[tokio::test]
    async fn scim_active_of_another_string_is_malformed_with_position() {
        let content = "[\n{\"id\": \"1\", \"userName\": \"u\", \"active\": \"yes\"}\n]";
        let err = idp(content).await.expect_err("rejects");
        let detail = malformed_detail(&err);
        assert!(detail.starts_with("line 2, column "), "{detail}");
        assert!(detail.contains("\"yes\""), "{detail}");
    }

    #[tokio::test]
    async fn scim_primary_email_is_the_primary_one_else_the_first() {
        let content = r#"[
            {"id": "1", "userName": "a", "emails": [
                {"value": "home@example.com", "type": "home"},
                {"value": "work@example.com", "type": "work", "primary": true}]},
            {"id": "2", "userName": "b", "emails": [
                {"value": "first@example.com"}, {"value": "second@example.com"}]},
            {"id": "3", "userName": "c", "emails": [
                {"value": "x@example.com", "primary": false},
                {"value": "y@example.com", "primary": "true"}]},
            {"id": "4", "userName": "d", "emails": []}
        ]"#;
        let users = idp(content).await.expect("parses");
        let emails: Vec<Option<&str>> = users.iter().map(|u| u.email.as_deref()).collect();
        assert_eq!(
            emails,
            [
                Some("work@example.com"),
                Some("first@example.com"),
                Some("y@example.com"),
                None
            ]
        );
    }

    #[tokio::test]
    async fn scim_fewer_users_than_total_results_is_incomplete() {
        let err = idp(list_response(170, &[ALICE, BOB]))
            .await
            .expect_err("rejects");
        match &err {
            SourceError::Incomplete { detail, .. } => {
                assert!(detail.contains("totalResults is 170"), "{detail}");
                assert!(detail.contains("holds 2 users"), "{detail}");
            }
            other => panic!("expected Incomplete, got {other:?}"),
        }
        assert_eq!(err.kind(), "incomplete");
    }

    // Regression: a repeated `id` was kept once, so in an export without totalResults one
    // of two people vanished and findings followed.
    #[tokio::test]
    async fn scim_repeated_users_are_kept_for_the_guard_to_reject() {
        let other_bob = BOB.replace("bob@example.com", "robert@example.com");
        for content in [
            format!("[{ALICE}, {BOB}, {other_bob}]"),
            format!(
                "[{}, {}]",
                list_response(3, &[ALICE, BOB]),
                list_response(3, &[BOB])
            ),
        ] {
            let f = file(content);
            let snapshot = FileIdp::new(f.path()).fetch().await.expect("parses");
            assert_eq!(snapshot.len(), 3);
            let suspicion = idgraph_model::check_snapshot(&snapshot).expect_err("repeats an id");
            assert!(
                suspicion.to_string().contains("share the id"),
                "{suspicion}"
            );
        }
    }

    #[tokio::test]
    async fn scim_user_without_user_name_is_named_by_index() {
        let content = format!("[{ALICE}, {BOB}, {{\"id\": \"00u3\"}}]");
        let err = idp(content).await.expect_err("rejects");
        let detail = malformed_detail(&err);
        assert!(detail.contains("user 2 "), "{detail}");
        assert!(detail.contains("`userName`"), "{detail}");

        let content = format!("[{}]", list_response(2, &[ALICE, r#"{"userName": "x"}"#]));
        let err = idp(content).await.expect_err("rejects");
        let detail = malformed_detail(&err);
        assert!(detail.contains("[0].Resources[1]"), "{detail}");
        assert!(detail.contains("`id`"), "{detail}");
    }

    #[tokio::test]
    async fn scim_malformed_json_names_the_file_and_the_line() {
        let f =
            file("{\n  \"totalResults\": 1,\n  \"Resources\": [\n    {\"id\": \"1\",,}\n  ]\n}");
        let err = FileIdp::new(f.path()).fetch().await.expect_err("rejects");
        let message = err.to_string();
        assert!(
            message.contains(&f.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("line 4, column"), "{message}");
        assert_eq!(err.kind(), "malformed");
    }

    #[tokio::test]
    async fn scim_rejects_empty_files_other_values_and_mixed_arrays() {
        let err = idp(" \n\t").await.expect_err("empty");
        assert_eq!(malformed_detail(&err), "the file is empty");

        let err = idp("\n\"users\"").await.expect_err("a string");
        assert!(
            malformed_detail(&err).starts_with("line 2, column 1"),
            "{err}"
        );

        let err = idp(BOB)
            .await
            .expect_err("a lone user is not a ListResponse");
        assert!(
            malformed_detail(&err).contains("not a SCIM ListResponse"),
            "{err}"
        );

        let err = idp(format!("[{}, {BOB}]", list_response(1, &[ALICE])))
            .await
            .expect_err("mixed");
        assert!(malformed_detail(&err).contains("element [1]"), "{err}");

        let err = idp(format!("{} {}", list_response(1, &[ALICE]), "{}"))
            .await
            .expect_err("trailing data");
        assert!(malformed_detail(&err).contains("trailing"), "{err}");
    }

    #[tokio::test]
    async fn scim_tolerates_a_byte_order_mark() {
        let users = idp(format!("\u{feff}{}", list_response(1, &[BOB])))
            .await
            .expect("parses");
        assert_eq!(user_names(&users), ["bob@example.com"]);
    }
}
