//! The live SCIM source (`idgraph_sources::scim`) against a real `scim2-server`: index
//! and cursor paging, a server that caps `count`, `/ServiceProviderConfig`, a wrong token.

use std::collections::BTreeMap;
use std::sync::Arc;

use idgraph_model::IdpUser;
use idgraph_sources::scim::{Paging, ScimOptions, ScimSource};
use idgraph_sources::{NoProgress, Secret, Source, SourceError};
use serde_json::{json, Value};

use crate::peers::{scim2_server, scim2_server_with_config, Process};

const TOKEN: &str = "idgraph-scim-test-token-5f1e9c";

/// userNames that break naive quoting, URL building or byte handling.
const HOSTILE: [&str; 6] = [
    "o'brien\"; DROP TABLE users; --",
    "semi;colon&amp=1+%20",
    "用户ü-Ωmega",
    "space d  name",
    "emoji-🦀",
    "back\\slash/and?query#frag",
];

/// The service provider configuration scim2-server announces by default, plus `extra`.
fn config(extra: Value) -> Value {
    let mut config = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576},
        "filter": {"supported": true, "maxResults": 1000},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": false},
    });
    for (key, value) in extra.as_object().expect("an object") {
        config[key] = value.clone();
    }
    config
}

/// The User resource of person `i`: every third inactive, every fifth without `active`
/// (which means active), a few with hostile names.
fn person(i: usize) -> Value {
    let user_name = match HOSTILE.get(i % 25) {
        Some(hostile) => format!("{hostile}-{i}"),
        None => format!("user{i:05}@example.com"),
    };
    let mut user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "externalId": format!("ext-{i}"),
        "emails": [
            {"value": format!("other{i}@example.com"), "type": "home"},
            {"value": format!("user{i}@example.com"), "type": "work", "primary": true},
        ],
    });
    if !i.is_multiple_of(5) {
        user["active"] = json!(!i.is_multiple_of(3));
    }
    user
}

/// What the server stored for each created user, by id, as idgraph should read it.
type Directory = BTreeMap<String, IdpUser>;

fn expected(created: &Value) -> IdpUser {
    IdpUser {
        id: created["id"].as_str().expect("an id").to_owned(),
        external_id: created["externalId"].as_str().map(str::to_owned),
        user_name: created["userName"].as_str().expect("a userName").to_owned(),
        email: created["emails"]
            .as_array()
            .and_then(|emails| emails.iter().find(|e| e["primary"] == json!(true)))
            .and_then(|e| e["value"].as_str())
            .map(str::to_owned),
        active: created["active"].as_bool().unwrap_or(true),
        last_modified: created["meta"]["lastModified"]
            .as_str()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.with_timezone(&chrono::Utc)),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn post(client: &reqwest::Client, url: String, body: &Value) -> reqwest::RequestBuilder {
    client
        .post(url)
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/scim+json")
        .body(body.to_string())
}

/// Creates people `0..n` one `POST /Users` at a time.
async fn create(server: &Process, n: usize) -> Directory {
    let client = client();
    let mut directory = Directory::new();
    for i in 0..n {
        let response = post(&client, format!("{}/v2/Users", server.url()), &person(i))
            .send()
            .await
            .expect("POST /Users");
        let status = response.status();
        let created: Value = response.json().await.expect("a JSON answer");
        assert_eq!(status, 201, "creating person {i}: {created}");
        let user = expected(&created);
        directory.insert(user.id.clone(), user);
    }
    assert_eq!(directory.len(), n);
    directory
}

fn options(server: &Process, paging: Paging, page_size: u32) -> ScimOptions {
    ScimOptions {
        token: Some(Secret::new(TOKEN)),
        paging,
        page_size,
        ..ScimOptions::new(format!("{}/v2/", server.url()))
    }
}

async fn fetch(options: ScimOptions) -> Result<Vec<IdpUser>, SourceError> {
    let source = ScimSource::new(options, Arc::new(NoProgress)).expect("valid options");
    source.fetch().await
}

/// Every user arrived exactly once, as created.
fn assert_same(fetched: Vec<IdpUser>, directory: &Directory) {
    let count = fetched.len();
    let by_id: Directory = fetched.into_iter().map(|u| (u.id.clone(), u)).collect();
    assert_eq!(by_id.len(), count, "a user arrived twice");
    assert_eq!(&by_id, directory);
}

#[tokio::test]
async fn scim_index_paging_fetches_every_user_exactly_once() {
    let server = scim2_server(Some(TOKEN));
    let directory = create(&server, 170).await;
    assert!(directory.values().any(|u| !u.active));
    assert!(directory
        .values()
        .any(|u| u.user_name.starts_with("o'brien\"")));

    let fetched = fetch(options(&server, Paging::Index, 50))
        .await
        .expect("fetches");
    assert_same(fetched, &directory);

    // Auto: scim2-server's default configuration announces no cursors, so by index.
    let fetched = fetch(options(&server, Paging::Auto, 50))
        .await
        .expect("fetches");
    assert_same(fetched, &directory);
}

#[tokio::test]
async fn scim_a_server_capping_count_is_followed_by_what_it_returns() {
    // maxResults 30 < count 50: scim2-server returns 30 a page.
    let server = scim2_server_with_config(
        Some(TOKEN),
        &config(json!({"filter": {"supported": true, "maxResults": 30}})),
    );
    let directory = create(&server, 170).await;
    let fetched = fetch(options(&server, Paging::Index, 50))
        .await
        .expect("fetches");
    assert_same(fetched, &directory);
}

#[tokio::test]
async fn scim_cursor_paging_against_scim2_server() {
    let server = scim2_server_with_config(
        Some(TOKEN),
        &config(json!({"pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "cursor",
            "maxPageSize": 1000,
            "cursorTimeout": 600,
        }})),
    );
    let directory = create(&server, 170).await;
    let fetched = fetch(options(&server, Paging::Cursor, 50))
        .await
        .expect("fetches");
    assert_same(fetched, &directory);
}

#[tokio::test]
async fn scim_auto_paging_reads_the_service_provider_config() {
    // Cursor paging only: a client that did not read the configuration would ask for
    // startIndex and be refused.
    let server = scim2_server_with_config(
        Some(TOKEN),
        &config(json!({"pagination": {"cursor": true, "index": false, "maxPageSize": 40}})),
    );
    let directory = create(&server, 95).await;

    let err = fetch(options(&server, Paging::Index, 50))
        .await
        .expect_err("index paging is refused");
    assert!(
        matches!(&err, SourceError::Remote { status: Some(501), detail, .. }
            if detail.contains("Pagination by index is not supported")),
        "{err}"
    );

    let fetched = fetch(options(&server, Paging::Auto, 50))
        .await
        .expect("fetches by cursor");
    assert_same(fetched, &directory);
}

#[tokio::test]
async fn scim_a_wrong_token_is_a_remote_401_that_does_not_show_it() {
    let server = scim2_server(Some(TOKEN));
    let wrong = "wrong-token-0c4d2b9e";
    for token in [Some(wrong), None] {
        let err = fetch(ScimOptions {
            token: token.map(Secret::new),
            ..options(&server, Paging::Auto, 50)
        })
        .await
        .expect_err("unauthorized");
        match &err {
            SourceError::Remote {
                origin,
                status,
                detail,
            } => {
                assert_eq!(*status, Some(401), "{err}");
                assert_eq!(origin, &format!("SCIM GET {}/v2/Users", server.url()));
                assert!(detail.contains("Authorization failure"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(wrong) && !shown.contains(TOKEN), "{shown}");
    }
}
