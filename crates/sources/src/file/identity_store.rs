//! The output of `aws identitystore list-users`: one page, pages concatenated, or an
//! array of pages, walked as it is read.

use std::path::Path;

use idgraph_model::{ExternalId, IcUser};
use serde::Deserialize;

use super::{open_json, unexpected_start, Problem};
use crate::json_stream::JsonStream;
use crate::primary_value;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IcRawUser {
    // Optional for the same reason as in `ScimUser`: errors name the user's index.
    user_id: Option<String>,
    user_name: Option<String>,
    emails: Option<Vec<IcEmail>>,
    external_ids: Option<Vec<IcExternalId>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IcEmail {
    value: Option<String>,
    primary: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IcExternalId {
    issuer: Option<String>,
    id: Option<String>,
}

pub(super) fn parse_identity_store(path: &Path) -> Result<Vec<IcUser>, Problem> {
    let mut s = open_json(path)?;
    let mut users = Vec::new();
    let mut next_token: Option<String> = None;
    let mut page = |s: &mut JsonStream<_>, p: usize| -> Result<(), Problem> {
        let mut has_users = false;
        next_token = None;
        s.object(|s, key| -> Result<(), Problem> {
            match key.as_str() {
                "Users" if s.peek()? == Some(b'[') => {
                    has_users = true;
                    s.array(|s, i| {
                        let user = ic_user(s.value()?).map_err(|missing| {
                            Problem::Malformed(format!(
                                "user {} (0-based index within the file), at page {p} \
                                 Users[{i}], {missing}",
                                users.len()
                            ))
                        })?;
                        users.push(user);
                        Ok::<_, Problem>(())
                    })?;
                }
                "NextToken" => next_token = s.value()?,
                _ => s.skip()?,
            }
            Ok(())
        })?;
        if has_users {
            Ok(())
        } else {
            Err(Problem::Malformed(format!(
                "page {p} (0-based) has no `Users` array; expected the output of \
                 `aws identitystore list-users`"
            )))
        }
    };
    match s.peek()? {
        None => return Err(Problem::Malformed("the file is empty".to_owned())),
        // One page, or pages appended one after another: a stream of objects.
        Some(b'{') => {
            let mut p = 0;
            while s.peek()?.is_some() {
                page(&mut s, p)?;
                p += 1;
            }
        }
        Some(b'[') => {
            s.array(|s, p| page(s, p))?;
            s.end()?;
        }
        Some(_) => {
            return Err(unexpected_start(
                &s,
                "a `list-users` page object or a JSON array of them",
            ))
        }
    }
    if next_token.is_some_and(|token| !token.is_empty()) {
        return Err(Problem::Incomplete(
            "the last page carries a NextToken: the listing stopped before its end. Export \
             every page (`aws identitystore list-users` without --max-items)"
                .to_owned(),
        ));
    }
    Ok(users)
}

/// The model user, or what is missing, e.g. "has no `UserName`".
fn ic_user(user: IcRawUser) -> Result<IcUser, String> {
    let user_id = user
        .user_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| "has no `UserId`".to_owned())?;
    let user_name = user
        .user_name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| "has no `UserName`".to_owned())?;
    let email = user
        .emails
        .and_then(|emails| primary_value(emails, |e| (e.value, e.primary.unwrap_or(false))));
    let external_ids = user
        .external_ids
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, ext)| match (ext.issuer, ext.id) {
            (Some(issuer), Some(id)) => Ok(ExternalId { issuer, id }),
            (None, _) => Err(format!("has no `Issuer` in ExternalIds[{i}]")),
            (_, None) => Err(format!("has no `Id` in ExternalIds[{i}]")),
        })
        .collect::<Result<_, _>>()?;
    Ok(IcUser {
        user_id,
        user_name,
        email,
        external_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::file::testing::{file, malformed_detail};
    use crate::file::FileIdentityCenter;
    use crate::{Source, SourceError};

    async fn ic(content: impl AsRef<[u8]>) -> Result<Vec<IcUser>, SourceError> {
        let f = file(content);
        FileIdentityCenter::new(f.path()).fetch().await
    }

    const IC_PAGE_1: &str = r#"{
        "Users": [
            {
                "UserName": "alice@example.com", "UserId": "u-1",
                "IdentityStoreId": "d-123", "DisplayName": "Alice",
                "Name": {"FamilyName": "A", "GivenName": "Alice"},
                "Emails": [
                    {"Value": "alice.home@example.com", "Type": "home", "Primary": false},
                    {"Value": "alice@example.com", "Type": "work", "Primary": true}
                ],
                "ExternalIds": [{"Issuer": "https://scim.example.com/x", "Id": "00u1"}]
            },
            {"UserName": "local", "UserId": "u-2", "IdentityStoreId": "d-123"}
        ],
        "NextToken": "token-1"
    }"#;
    const IC_PAGE_2: &str = r#"{"Users": [
        {"UserName": "local2", "UserId": "u-4"},
        {"UserName": "carol", "UserId": "u-3", "Emails": [{"Value": "c1@x"}, {"Value": "c2@x"}]}
    ]}"#;

    fn ic_ids(users: &[IcUser]) -> Vec<&str> {
        users.iter().map(|u| u.user_id.as_str()).collect()
    }

    #[tokio::test]
    async fn identity_store_single_page_maps_every_attribute() {
        let users = ic(IC_PAGE_2).await.expect("parses");
        assert_eq!(ic_ids(&users), ["u-4", "u-3"]);
        assert_eq!(users[1].email.as_deref(), Some("c1@x"));

        // The last page of a listing has no NextToken.
        let users = ic(IC_PAGE_1.replace(r#""NextToken": "token-1""#, r#""NextToken": null"#))
            .await
            .expect("parses");
        assert_eq!(
            users[0],
            IcUser {
                user_id: "u-1".into(),
                user_name: "alice@example.com".into(),
                email: Some("alice@example.com".into()),
                external_ids: vec![ExternalId {
                    issuer: "https://scim.example.com/x".into(),
                    id: "00u1".into(),
                }],
            }
        );
        assert!(users[1].external_ids.is_empty());
        assert_eq!(users[1].email, None);
    }

    #[tokio::test]
    async fn identity_store_concatenated_pages() {
        let users = ic(format!("{IC_PAGE_1}\n{IC_PAGE_2}\n"))
            .await
            .expect("parses");
        assert_eq!(ic_ids(&users), ["u-1", "u-2", "u-4", "u-3"]);
        // Adjacent without whitespace, as `cat` of files without a final newline gives.
        let users = ic(format!("{IC_PAGE_1}{IC_PAGE_2}")).await.expect("parses");
        assert_eq!(ic_ids(&users), ["u-1", "u-2", "u-4", "u-3"]);
    }

    // Regression: a repeated UserId was silently dropped, so one of two people vanished.
    #[tokio::test]
    async fn identity_store_repeated_users_are_kept_for_the_guard_to_reject() {
        let f = file(format!("{IC_PAGE_2}{IC_PAGE_2}"));
        let snapshot = FileIdentityCenter::new(f.path())
            .fetch()
            .await
            .expect("parses");
        assert_eq!(snapshot.len(), 4);
        let suspicion = idgraph_model::check_snapshot(&snapshot).expect_err("repeats u-4");
        assert!(suspicion.to_string().contains("\"u-4\""), "{suspicion}");
    }

    #[tokio::test]
    async fn identity_store_array_of_pages() {
        let users = ic(format!("[{IC_PAGE_1}, {IC_PAGE_2}]"))
            .await
            .expect("parses");
        assert_eq!(ic_ids(&users), ["u-1", "u-2", "u-4", "u-3"]);
    }

    // Regression: a NextToken on the last page was only a warning, so a listing with its
    // last pages missing made their users look deleted.
    #[tokio::test]
    async fn identity_store_next_token_on_the_last_page_is_incomplete() {
        let err = ic(IC_PAGE_1).await.expect_err("a page is missing");
        assert!(
            matches!(&err, SourceError::Incomplete { detail, .. } if detail.contains("NextToken")),
            "{err}"
        );
        let users = ic(format!("{IC_PAGE_1}{IC_PAGE_2}"))
            .await
            .expect("complete");
        assert_eq!(ic_ids(&users), ["u-1", "u-2", "u-4", "u-3"]);
    }

    #[tokio::test]
    async fn identity_store_errors_say_where() {
        let err = ic(format!("{IC_PAGE_1}\n{{\"Users\": [}}"))
            .await
            .expect_err("bad JSON");
        let line = IC_PAGE_1.lines().count() + 1;
        assert!(
            malformed_detail(&err).starts_with(&format!("line {line}, column ")),
            "{err}"
        );

        let err = ic(r#"{"Users": [{"UserId": "u-1"}]}"#)
            .await
            .expect_err("no name");
        assert!(malformed_detail(&err).contains("`UserName`"), "{err}");

        let err = ic(r#"{"Groups": []}"#).await.expect_err("not list-users");
        assert!(malformed_detail(&err).contains("page 0"), "{err}");

        let err = ic("").await.expect_err("empty");
        assert_eq!(malformed_detail(&err), "the file is empty");
    }
}
