//! The live SCIM source against a stand-in server on a local port.

use super::client::{okta_wait, retry_after};
use super::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use idgraph_model::IdpUser;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const TOKEN: &str = "s3cr3t-t0ken-value";

// ----- a stand-in SCIM server ---------------------------------------------------------

/// A request as the stand-in saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    at: std::time::Instant,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn start(&self) -> u64 {
        self.param("startIndex")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    fn count(&self) -> usize {
        self.param("count")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100)
    }
}

/// What the stand-in answers.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    delay: Duration,
    /// After `body`, send users without end and without a Content-Length, until the
    /// client hangs up.
    endless: bool,
    /// Announce the whole body's length but send only this many bytes of it, then close:
    /// a connection that breaks mid-answer.
    cut: Option<usize>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), SCIM_JSON.into())],
            body: body.to_string(),
            delay: Duration::ZERO,
            endless: false,
            cut: None,
        }
    }

    /// A 200 answer that starts like a ListResponse and never ends.
    fn endless() -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), SCIM_JSON.into())],
            body: r#"{"totalResults": 1, "Resources": [{"id": "u", "userName": "u"},"#.into(),
            delay: Duration::ZERO,
            endless: true,
            cut: None,
        }
    }

    fn scim_error(status: u16, detail: &str) -> Self {
        Self::json(
            status,
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": status.to_string(),
                "detail": detail,
            }),
        )
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn cut_after(mut self, bytes: usize) -> Self {
        self.cut = Some(bytes);
        self
    }
}

/// A stand-in server on a port of its own; `handler` gets each request and its
/// 0-based number.
struct Stub {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The most requests the stand-in was answering at once.
    max_in_flight: Arc<AtomicUsize>,
    /// The body bytes the stand-in got out before the client hung up or the body
    /// ended.
    sent: Arc<AtomicUsize>,
}

impl Stub {
    async fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/scim/v2", listener.local_addr().expect("addr"));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler = Arc::new(handler);
        let counter = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight: Arc<AtomicUsize> = Arc::default();
        let (in_flight_server, max_server) = (Arc::clone(&in_flight), Arc::clone(&max_in_flight));
        let seen_by_server = Arc::clone(&seen);
        let sent: Arc<AtomicUsize> = Arc::default();
        let sent_by_server = Arc::clone(&sent);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = Arc::clone(&handler);
                let counter = Arc::clone(&counter);
                let seen = Arc::clone(&seen_by_server);
                let in_flight = Arc::clone(&in_flight_server);
                let max_in_flight = Arc::clone(&max_server);
                let sent = Arc::clone(&sent_by_server);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let Ok(Some(request_line)) = lines.next_line().await else {
                        return;
                    };
                    let mut headers = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            headers.push((name.trim().to_owned(), value.trim().to_owned()));
                        }
                    }
                    let target = request_line.split(' ').nth(1).unwrap_or("/");
                    let parsed = Url::parse(&format!("http://stub{target}")).expect("target");
                    let request = Seen {
                        path: parsed.path().to_owned(),
                        query: parsed.query_pairs().into_owned().collect(),
                        headers,
                        at: std::time::Instant::now(),
                    };
                    seen.lock().expect("lock").push(request.clone());
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let reply = handler(&request, n);
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max_in_flight.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(reply.delay).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let mut head = format!("HTTP/1.1 {} Stub\r\n", reply.status);
                    // Without a length, the body ends when the connection closes.
                    if !reply.endless {
                        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
                    }
                    head.push_str("Connection: close\r\n");
                    for (name, value) in &reply.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = write.write_all(head.as_bytes()).await;
                    let more = r#"{"id": "u", "userName": "u"},"#.repeat(2048);
                    let mut chunk = match reply.cut {
                        Some(n) => &reply.body[..n.min(reply.body.len())],
                        None => reply.body.as_str(),
                    };
                    while write.write_all(chunk.as_bytes()).await.is_ok() {
                        sent.fetch_add(chunk.len(), Ordering::SeqCst);
                        if !reply.endless {
                            break;
                        }
                        chunk = &more;
                    }
                    let _ = write.shutdown().await;
                });
            }
        });
        Self {
            url,
            seen,
            max_in_flight,
            sent,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn user_requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.ends_with("/Users"))
            .collect()
    }

    fn options(&self) -> ScimOptions {
        ScimOptions {
            token: Some(Secret::new(TOKEN)),
            paging: Paging::Index,
            page_size: 10,
            ..ScimOptions::new(&self.url)
        }
    }

    /// A source with millisecond backoffs, so retry tests run fast.
    fn source(&self, options: ScimOptions) -> ScimSource {
        self.source_with_progress(options, Arc::new(crate::NoProgress))
    }

    /// Fetches with the stub's options and `paging`.
    async fn fetch_paging(&self, paging: Paging) -> Result<Vec<IdpUser>, SourceError> {
        fetch(&self.source(ScimOptions {
            paging,
            ..self.options()
        }))
        .await
    }

    fn source_with_progress(
        &self,
        options: ScimOptions,
        progress: Arc<dyn Progress>,
    ) -> ScimSource {
        ScimSource::new(options, progress)
            .expect("valid options")
            .with_retry_timing(
                Duration::from_millis(1),
                Duration::from_millis(5),
                Duration::from_secs(5),
            )
    }
}

/// `n` users `u1`…`un`; every third one is inactive, every fourth has no `active`.
fn directory(n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            let mut user = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": format!("u{i}"),
                "userName": format!("user{i}@example.com"),
                "emails": [
                    {"value": format!("alt{i}@example.com")},
                    {"value": format!("user{i}@example.com"), "primary": true},
                ],
                "meta": {"resourceType": "User"},
            });
            if i % 4 != 0 {
                user["active"] = json!(i % 3 != 0);
            }
            user
        })
        .collect()
}

/// An index page of `users` as RFC 7644 pages, returning at most `cap` users.
fn index_page(users: &[Value], request: &Seen, cap: usize) -> Reply {
    let start = usize::try_from(request.start()).expect("start");
    let count = request.count().min(cap);
    let page: Vec<Value> = users.iter().skip(start - 1).take(count).cloned().collect();
    Reply::json(
        200,
        &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": users.len(),
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    )
}

fn list(total: usize, resources: &[Value]) -> Reply {
    Reply::json(
        200,
        &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": total,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

async fn fetch(source: &ScimSource) -> Result<Vec<IdpUser>, SourceError> {
    // A bound on every fetch: a paging loop that does not end fails the test
    // instead of hanging it.
    match tokio::time::timeout(Duration::from_secs(20), source.fetch()).await {
        Ok(Ok(users)) => Ok(users),
        Ok(Err(error)) => Err(error),
        Err(_) => panic!("the fetch did not end"),
    }
}

fn ids(users: &[IdpUser]) -> Vec<String> {
    users.iter().map(|u| u.id.clone()).collect()
}

fn expected_ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("u{i}")).collect()
}

fn starts(stub: &Stub) -> Vec<u64> {
    let mut starts: Vec<u64> = stub.user_requests().iter().map(Seen::start).collect();
    starts.sort_unstable();
    starts
}

// ----- index paging -------------------------------------------------------------------

// Regression: a body cut off mid-answer (the connection broke after the headers) failed
// the fetch at once instead of being tried again like any other broken connection.
#[tokio::test]
async fn an_answer_cut_off_mid_body_is_tried_again() {
    let users = directory(5);
    let stub = Stub::start(move |req, n| {
        let page = index_page(&users, req, 1000);
        match n {
            0 => page.cut_after(40),
            _ => page,
        }
    })
    .await;
    let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
    assert_eq!(ids(&fetched), expected_ids(5));
    assert_eq!(stub.user_requests().len(), 2);
}

#[tokio::test]
async fn index_paging_fetches_every_user_once_with_the_file_mapping() {
    let users = directory(25);
    let stub = Stub::start(move |req, _| index_page(&users, req, 1000)).await;
    let source = stub.source(stub.options());
    assert_eq!((source.name(), source.kind()), ("idp", "scim"));

    let fetched = fetch(&source).await.expect("fetches");
    assert_eq!(ids(&fetched), expected_ids(25));
    // The mapping is the file source's: primary email, missing `active` is active.
    assert_eq!(
        fetched[2],
        IdpUser {
            id: "u3".into(),
            external_id: None,
            user_name: "user3@example.com".into(),
            email: Some("user3@example.com".into()),
            active: false,
            last_modified: None,
        }
    );
    assert!(fetched[3].active, "u4 has no `active`");
    assert_eq!(starts(&stub), [1, 11, 21]);
    let requests = stub.user_requests();
    assert!(requests.iter().all(|r| r.path == "/scim/v2/Users"));
    let last = requests
        .iter()
        .find(|r| r.start() == 21)
        .expect("last page");
    assert_eq!(last.param("count"), Some("5"), "asks only for what is left");
}

#[tokio::test]
async fn a_server_returning_fewer_than_count_is_followed_by_what_it_returned() {
    // itemsPerPage 7 of count 10: continuing from startIndex + 10 would skip users.
    let users = directory(25);
    let stub = Stub::start(move |req, _| index_page(&users, req, 7)).await;
    let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
    assert_eq!(ids(&fetched), expected_ids(25));
    assert_eq!(starts(&stub), [1, 8, 15, 22]);
}

#[tokio::test]
async fn a_short_page_in_the_middle_leaves_a_gap_that_is_fetched() {
    let users = directory(25);
    let stub = Stub::start(move |req, _| {
        let cap = if req.start() == 8 { 3 } else { 7 };
        index_page(&users, req, cap)
    })
    .await;
    let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
    assert_eq!(ids(&fetched), expected_ids(25));
    assert_eq!(starts(&stub), [1, 8, 11, 15, 22]);
}

#[tokio::test]
async fn pages_without_users_while_more_are_due_are_incomplete_not_a_loop() {
    // Regression: a server answering 0 Resources with totalResults larger must not
    // be asked again forever.
    let users = directory(10);
    let stub = Stub::start(move |req, _| {
        if req.start() == 1 {
            list(20, &users)
        } else {
            list(20, &[])
        }
    })
    .await;
    let err = fetch(&stub.source(stub.options()))
        .await
        .expect_err("incomplete");
    assert!(
        matches!(&err, SourceError::Incomplete { detail, .. }
            if detail.contains("totalResults is 20 but the page at startIndex 11 holds no users")),
        "{err}"
    );
    assert_eq!(stub.user_requests().len(), 2);

    // The same on the very first page.
    let stub = Stub::start(|_, _| list(5, &[])).await;
    let err = fetch(&stub.source(stub.options()))
        .await
        .expect_err("incomplete");
    assert!(matches!(err, SourceError::Incomplete { .. }), "{err}");
    assert_eq!(stub.user_requests().len(), 1);
}

#[tokio::test]
async fn users_added_during_the_fetch_make_it_incomplete() {
    let users = directory(21);
    let stub = Stub::start(move |req, _| {
        // The 21st user appears after the first page was served.
        let visible = if req.start() == 1 { 20 } else { 21 };
        index_page(&users[..visible], req, 1000)
    })
    .await;
    let err = fetch(&stub.source(stub.options()))
        .await
        .expect_err("incomplete");
    assert!(
        matches!(&err, SourceError::Incomplete { detail, .. }
            if detail.contains("totalResults changed from 20 to 21")
                && detail.contains("rerun")),
        "{err}"
    );
}

#[tokio::test]
async fn fewer_distinct_users_than_total_results_is_incomplete() {
    // The second page repeats half the first: 20 entries, 15 distinct.
    let users = directory(20);
    let stub = Stub::start(move |req, _| {
        let start = if req.start() == 1 { 0 } else { 5 };
        let page = &users[start..start + 10];
        list(20, page)
    })
    .await;
    let err = fetch(&stub.source(stub.options()))
        .await
        .expect_err("incomplete");
    assert!(
        matches!(&err, SourceError::Incomplete { detail, .. }
            if detail.contains("totalResults is 20 but 15 distinct users arrived")),
        "{err}"
    );
}

#[tokio::test]
async fn index_pages_repeating_the_same_users_fail_at_once() {
    // Regression: a server ignoring startIndex with a large totalResults was asked
    // for page after page of the same users, for hours.
    let users = directory(10);
    let stub = Stub::start(move |_, _| list(1_000_000, &users)).await;
    let err = fetch(&stub.source(stub.options()))
        .await
        .expect_err("repeats");
    assert!(
        matches!(&err, SourceError::InvalidResponse { detail, .. }
            if detail.contains("the page at startIndex")
                && detail.contains("holds only users earlier pages held")),
        "{err}"
    );
    // The first page, and at most the pages already in flight.
    let requests = stub.user_requests().len();
    assert!(
        requests <= 1 + ScimOptions::DEFAULT_CONCURRENCY,
        "{requests} requests"
    );
}

#[tokio::test]
async fn index_pages_of_one_user_each_stop_at_the_page_bound() {
    // 10 users on the first page, then one a page: 91 pages for 100 users, more
    // than the 2 × 10 + 10 pages a listing of 100 can need at 10 a page.
    let users = directory(100);
    let stub = Stub::start(move |req, _| {
        let cap = if req.start() == 1 { 1000 } else { 1 };
        index_page(&users, req, cap)
    })
    .await;
    let err = fetch(&stub.source(ScimOptions {
        concurrency: 1,
        ..stub.options()
    }))
    .await
    .expect_err("too many pages");
    assert!(
        matches!(&err, SourceError::InvalidResponse { detail, .. }
            if detail.contains("31 pages arrived, more than the 30 pages the totalResults 100 users can need at 10 a page")),
        "{err}"
    );
    assert_eq!(stub.user_requests().len(), 31);
}

#[tokio::test]
async fn a_total_beyond_max_users_fails_at_once() {
    // Regression: totalResults 1000000000 and the same users on every page paged
    // for hours.
    for paging in [Paging::Index, Paging::Cursor] {
        let users = directory(10);
        let stub = Stub::start(move |_, n| {
            Reply::json(
                200,
                &json!({
                    "totalResults": 1_000_000_000u64,
                    "itemsPerPage": 10,
                    "Resources": users,
                    "nextCursor": format!("c{n}"),
                }),
            )
        })
        .await;
        let err = stub.fetch_paging(paging).await.expect_err("too many");
        assert!(
            matches!(&err, SourceError::InvalidResponse { detail, .. }
                if detail.contains("totalResults 1000000000 exceeds idp.max_users 1000000")),
            "{paging:?}: {err}"
        );
        assert_eq!(stub.user_requests().len(), 1, "{paging:?}");
    }
}

#[tokio::test]
async fn pages_are_fetched_concurrently_up_to_the_bound() {
    let users = directory(100);
    let stub = Stub::start(move |req, _| {
        // Long enough that requests overlap even on a busy machine.
        index_page(&users, req, 1000).delayed(Duration::from_millis(200))
    })
    .await;
    let fetched = fetch(&stub.source(ScimOptions {
        concurrency: 3,
        ..stub.options()
    }))
    .await
    .expect("fetches");
    assert_eq!(fetched.len(), 100);
    assert_eq!(stub.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_empty_directory_is_an_empty_snapshot() {
    let stub = Stub::start(|_, _| list(0, &[])).await;
    let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
    assert!(fetched.is_empty());
}

// ----- cursor paging ------------------------------------------------------------------

/// A cursor server: cursor `cN` starts at user N+1 (0-based), pages of `count`.
fn cursor_page(users: &[Value], request: &Seen) -> Reply {
    let offset: usize = match request.param("cursor") {
        Some("") => 0,
        Some(cursor) => cursor[1..].parse().expect("a cursor of ours"),
        None => return Reply::scim_error(400, "cursor paging only"),
    };
    let page: Vec<Value> = users
        .iter()
        .skip(offset)
        .take(request.count())
        .cloned()
        .collect();
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": users.len(),
        "itemsPerPage": page.len(),
        "Resources": page,
    });
    if offset + request.count() < users.len() {
        body["nextCursor"] = json!(format!("c{}", offset + request.count()));
    }
    Reply::json(200, &body)
}

#[tokio::test]
async fn cursor_paging_follows_next_cursor_until_there_is_none() {
    let users = directory(23);
    let stub = Stub::start(move |req, _| cursor_page(&users, req)).await;
    let fetched = stub.fetch_paging(Paging::Cursor).await.expect("fetches");
    assert_eq!(ids(&fetched), expected_ids(23));
    let cursors: Vec<String> = stub
        .user_requests()
        .iter()
        .map(|r| r.param("cursor").expect("cursor param").to_owned())
        .collect();
    assert_eq!(cursors, ["", "c10", "c20"]);
    assert!(stub
        .user_requests()
        .iter()
        .all(|r| r.param("startIndex").is_none() && r.param("count") == Some("10")));
}

#[tokio::test]
async fn a_repeated_cursor_is_an_error_not_a_loop() {
    let users = directory(3);
    let stub = Stub::start(move |_, _| {
        let mut reply = json!({"totalResults": 30, "Resources": users, "nextCursor": "again"});
        reply["itemsPerPage"] = json!(3);
        Reply::json(200, &reply)
    })
    .await;
    let err = stub.fetch_paging(Paging::Cursor).await.expect_err("loops");
    assert!(matches!(err, SourceError::InvalidResponse { .. }), "{err}");
    assert_eq!(stub.user_requests().len(), 2);
}

#[tokio::test]
async fn empty_cursor_pages_in_a_row_are_incomplete() {
    let stub = Stub::start(|_, n| {
        Reply::json(
            200,
            &json!({"totalResults": 5, "Resources": [], "nextCursor": format!("c{n}")}),
        )
    })
    .await;
    let err = stub.fetch_paging(Paging::Cursor).await.expect_err("stuck");
    assert!(matches!(err, SourceError::Incomplete { .. }), "{err}");
    assert_eq!(stub.user_requests().len(), 3);
}

/// A cursor page: the users, the total if any, and a new cursor every time.
fn endless_cursor_page(n: usize, total: Option<u64>, users: &[Value]) -> Reply {
    let mut body = json!({"Resources": users, "nextCursor": format!("c{n}")});
    if let Some(total) = total {
        body["totalResults"] = json!(total);
    }
    Reply::json(200, &body)
}

/// `n` users no other call returns, named after `page`.
fn fresh_users(page: usize, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("p{page}-{i}"), "userName": format!("p{page}-{i}")}))
        .collect()
}

#[tokio::test]
async fn endless_new_cursors_stop_at_max_users() {
    // Regression: a new cursor on every page paged without end.
    let stub = Stub::start(|_, n| endless_cursor_page(n, None, &fresh_users(n, 10))).await;
    let err = fetch(&stub.source(ScimOptions {
        paging: Paging::Cursor,
        max_users: 50,
        ..stub.options()
    }))
    .await
    .expect_err("endless");
    assert!(
        matches!(&err, SourceError::InvalidResponse { detail, .. }
            if detail.contains("more than idp.max_users 50 distinct users had arrived by cursor page 6")),
        "{err}"
    );
    assert_eq!(stub.user_requests().len(), 6);

    // With a total, more users than it fail at once.
    let stub = Stub::start(|_, n| endless_cursor_page(n, Some(25), &fresh_users(n, 10))).await;
    let err = stub
        .fetch_paging(Paging::Cursor)
        .await
        .expect_err("endless");
    assert!(
        matches!(&err, SourceError::Incomplete { detail, .. }
            if detail.contains("30 distinct users had arrived by cursor page 3, more than totalResults 25")),
        "{err}"
    );
    assert_eq!(stub.user_requests().len(), 3);
}

#[tokio::test]
async fn endless_new_cursors_over_the_same_users_stop_as_stalled() {
    let users = directory(10);
    let stub = Stub::start(move |_, n| endless_cursor_page(n, Some(100), &users)).await;
    let err = stub
        .fetch_paging(Paging::Cursor)
        .await
        .expect_err("stalled");
    assert!(
        matches!(&err, SourceError::Incomplete { detail, .. }
            if detail.contains("3 cursor pages in a row up to page 4 brought no new users")),
        "{err}"
    );
    assert_eq!(stub.user_requests().len(), 4);
}

#[tokio::test]
async fn endless_new_cursors_trickling_users_stop_at_the_page_bound() {
    // 10 users, then one new user a page: more pages than a listing of 100 can need
    // at the 10 a page the server has shown it returns.
    let stub = Stub::start(|_, n| {
        let users = fresh_users(n, if n == 0 { 10 } else { 1 });
        endless_cursor_page(n, Some(100), &users)
    })
    .await;
    let err = stub
        .fetch_paging(Paging::Cursor)
        .await
        .expect_err("endless");
    assert!(
        matches!(&err, SourceError::InvalidResponse { detail, .. }
            if detail.contains("31 pages arrived, more than the 30 pages the totalResults 100 users can need at 10 a page")),
        "{err}"
    );
    assert_eq!(stub.user_requests().len(), 31);
}

// ----- Auto: /ServiceProviderConfig ---------------------------------------------------

#[tokio::test]
async fn auto_paging_uses_cursors_when_advertised_and_caps_the_page_size() {
    let users = directory(7);
    let stub = Stub::start(move |req, _| {
        if req.path.ends_with("/ServiceProviderConfig") {
            return Reply::json(
                200,
                &json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                    "filter": {"supported": true, "maxResults": 1000},
                    "pagination": {"cursor": true, "index": true, "maxPageSize": 3},
                }),
            );
        }
        cursor_page(&users, req)
    })
    .await;
    let fetched = stub.fetch_paging(Paging::Auto).await.expect("fetches");
    assert_eq!(ids(&fetched), expected_ids(7));
    let seen = stub.seen();
    assert_eq!(seen[0].path, "/scim/v2/ServiceProviderConfig");
    assert!(seen[1..]
        .iter()
        .all(|r| r.param("cursor").is_some() && r.param("count") == Some("3")));
    assert_eq!(seen.len(), 4);
}

#[tokio::test]
async fn auto_paging_uses_the_index_otherwise() {
    let users = directory(9);
    let stub = Stub::start(move |req, _| {
        if req.path.ends_with("/ServiceProviderConfig") {
            return Reply::json(
                200,
                &json!({"filter": {"supported": true, "maxResults": 4}}),
            );
        }
        index_page(&users, req, 1000)
    })
    .await;
    let fetched = stub.fetch_paging(Paging::Auto).await.expect("fetches");
    assert_eq!(ids(&fetched), expected_ids(9));
    assert_eq!(starts(&stub), [1, 5, 9]);

    // A server without the endpoint pages by index too.
    let users = directory(3);
    let stub = Stub::start(move |req, _| {
        if req.path.ends_with("/ServiceProviderConfig") {
            return Reply::scim_error(404, "not here");
        }
        index_page(&users, req, 1000)
    })
    .await;
    let fetched = stub.fetch_paging(Paging::Auto).await.expect("fetches");
    assert_eq!(fetched.len(), 3);
}

// ----- retries ------------------------------------------------------------------------

#[tokio::test]
async fn a_429_waits_for_a_fractional_retry_after_then_succeeds() {
    let users = directory(3);
    let stub = Stub::start(move |req, n| {
        if n == 0 {
            Reply::scim_error(429, "Too many requests").header("Retry-After", "0.2")
        } else {
            index_page(&users, req, 1000)
        }
    })
    .await;
    let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
    assert_eq!(fetched.len(), 3);
    let seen = stub.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(200), "{gap:?}");
    assert!(gap < Duration::from_secs(2), "{gap:?}");
}

#[tokio::test]
async fn a_503_is_retried_then_succeeds() {
    let users = directory(3);
    let stub = Stub::start(move |req, n| {
        if n < 2 {
            Reply::scim_error(503, "Service unavailable")
        } else {
            index_page(&users, req, 1000)
        }
    })
    .await;
    let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
    assert_eq!(fetched.len(), 3);
    assert_eq!(stub.seen().len(), 3);
}

#[tokio::test]
async fn attempts_are_bounded() {
    let stub = Stub::start(|_, _| Reply::scim_error(503, "down for maintenance")).await;
    let started = std::time::Instant::now();
    let err = fetch(&stub.source(ScimOptions {
        max_attempts: 3,
        ..stub.options()
    }))
    .await
    .expect_err("gives up");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(stub.seen().len(), 3);
    match &err {
        SourceError::Remote {
            status: Some(503),
            detail,
            ..
        } => {
            assert!(detail.contains("down for maintenance"), "{detail}");
            assert!(detail.contains("gave up after 3 attempts"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_fails_at_once() {
    let stub =
        Stub::start(|_, _| Reply::scim_error(429, "quota exhausted").header("Retry-After", "3600"))
            .await;
    let started = std::time::Instant::now();
    let err = fetch(&stub.source(stub.options()))
        .await
        .expect_err("gives up");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(stub.seen().len(), 1);
    assert!(
        matches!(&err, SourceError::Remote { status: Some(429), detail, .. }
            if detail.contains("3600.0 s")),
        "{err}"
    );
}

#[tokio::test]
async fn a_scim_error_403_is_remote_with_status_and_detail_and_not_retried() {
    let stub = Stub::start(|_, _| {
        Reply::json(
            403,
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "403",
                "scimType": "sensitive",
                "detail": "The client may not list users.",
            }),
        )
    })
    .await;
    let err = fetch(&stub.source(stub.options()))
        .await
        .expect_err("forbidden");
    assert_eq!(stub.seen().len(), 1, "a 403 would only repeat");
    match &err {
        SourceError::Remote {
            origin,
            status,
            detail,
        } => {
            assert_eq!(*status, Some(403));
            assert_eq!(
                detail,
                "HTTP 403 Forbidden: The client may not list users. (scimType sensitive)"
            );
            assert_eq!(origin, &format!("SCIM GET {}/Users", stub.url));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_non_scim_error_body_is_excerpted() {
    let stub = Stub::start(|_, _| Reply {
        status: 404,
        headers: vec![("Content-Type".into(), "text/html".into())],
        body: format!("<html>\n  <h1>Not   Found</h1>{}</html>", "x".repeat(500)),
        delay: Duration::ZERO,
        endless: false,
        cut: None,
    })
    .await;
    let err = fetch(&stub.source(stub.options()))
        .await
        .expect_err("not found");
    let SourceError::Remote { detail, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        detail.starts_with("HTTP 404 Not Found: <html> <h1>Not Found</h1>xx"),
        "{detail}"
    );
    assert!(detail.ends_with('…') && detail.len() < 300, "{detail}");
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let users = directory(3);
    let stub = Stub::start(move |req, n| {
        let reply = index_page(&users, req, 1000);
        if n == 0 {
            reply.delayed(Duration::from_secs(5))
        } else {
            reply
        }
    })
    .await;
    let fetched = fetch(&stub.source(ScimOptions {
        timeout: Duration::from_secs(1),
        ..stub.options()
    }))
    .await
    .expect("fetches");
    assert_eq!(fetched.len(), 3);
    assert_eq!(stub.seen().len(), 2);

    // Always too slow: Unreachable, saying so.
    let stub = Stub::start(|_, _| list(0, &[]).delayed(Duration::from_secs(3))).await;
    let err = fetch(&stub.source(ScimOptions {
        timeout: Duration::from_millis(200),
        max_attempts: 2,
        ..stub.options()
    }))
    .await
    .expect_err("times out");
    assert!(
        matches!(&err, SourceError::Unreachable { detail, .. }
            if detail.contains("in time") && detail.contains("gave up after 2 attempts")),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_unreachable_after_the_attempts() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let options = ScimOptions {
        max_attempts: 2,
        paging: Paging::Index,
        token: Some(Secret::new(TOKEN)),
        ..ScimOptions::new(format!("http://127.0.0.1:{port}/scim/v2/"))
    };
    let source = ScimSource::new(options, Arc::new(crate::NoProgress))
        .expect("valid")
        .with_retry_timing(
            Duration::from_millis(1),
            Duration::from_millis(5),
            Duration::from_secs(5),
        );
    let err = fetch(&source).await.expect_err("refused");
    match &err {
        SourceError::Unreachable { origin, detail } => {
            assert_eq!(
                origin,
                &format!("SCIM GET http://127.0.0.1:{port}/scim/v2/Users")
            );
            assert!(detail.contains("gave up after 2 attempts"), "{detail}");
            assert!(detail.contains("Connection refused"), "{detail}");
            assert!(!detail.contains("startIndex"), "no URL again: {detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn okta_rate_limit_headers_hold_the_next_request_until_the_reset() {
    let users = directory(4);
    let stub = Stub::start(move |req, _| {
        let now = SystemTime::now();
        let epoch = now
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        // The stand-in's clock reads whole seconds, so the reset is exactly 1 s away
        // by it.
        index_page(&users, req, 2)
            .header(
                "Date",
                &httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(epoch)),
            )
            .header("X-Rate-Limit-Limit", "600")
            .header(
                "X-Rate-Limit-Remaining",
                if req.start() == 1 { "0" } else { "5" },
            )
            .header("X-Rate-Limit-Reset", &(epoch + 1).to_string())
    })
    .await;
    let fetched = fetch(&stub.source(stub.options())).await.expect("fetches");
    assert_eq!(fetched.len(), 4);
    let seen = stub.seen();
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(900), "{gap:?}");
}

#[test]
fn retry_after_reads_seconds_fractions_and_http_dates() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let headers = |pairs: &[(&'static str, &str)]| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("value"));
        }
        map
    };
    assert_eq!(
        retry_after(&headers(&[("retry-after", "0.5")]), now),
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        retry_after(&headers(&[("retry-after", " 2 ")]), now),
        Some(Duration::from_secs(2))
    );
    let in_ten = httpdate::fmt_http_date(now + Duration::from_secs(10));
    assert_eq!(
        retry_after(&headers(&[("retry-after", &in_ten)]), now),
        Some(Duration::from_secs(10))
    );
    // Measured against the server's Date, not our clock.
    let server_date = httpdate::fmt_http_date(now + Duration::from_secs(4));
    assert_eq!(
        retry_after(
            &headers(&[("retry-after", &in_ten), ("date", &server_date)]),
            now
        ),
        Some(Duration::from_secs(6))
    );
    let past = httpdate::fmt_http_date(now - Duration::from_secs(10));
    assert_eq!(
        retry_after(&headers(&[("retry-after", &past)]), now),
        Some(Duration::ZERO)
    );
    for bad in ["-1", "NaN", "inf", "soon", ""] {
        assert_eq!(
            retry_after(&headers(&[("retry-after", bad)]), now),
            None,
            "{bad}"
        );
    }
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn okta_wait_needs_remaining_zero_and_a_future_reset() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let headers = |remaining: &str, reset: u64| {
        let mut map = HeaderMap::new();
        map.insert(
            "x-rate-limit-remaining",
            HeaderValue::from_str(remaining).expect("v"),
        );
        map.insert("x-rate-limit-reset", HeaderValue::from(reset));
        map
    };
    assert_eq!(
        okta_wait(&headers("0", 1_700_000_030), now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(okta_wait(&headers("1", 1_700_000_030), now), None);
    assert_eq!(okta_wait(&headers("0", 1_699_999_990), now), None);
    assert_eq!(okta_wait(&HeaderMap::new(), now), None);
}

#[test]
fn backoff_grows_with_jitter_up_to_the_cap() {
    let source = ScimSource::new(
        ScimOptions::new("https://idp.example.com/scim/v2"),
        Arc::new(crate::NoProgress),
    )
    .expect("valid");
    for _ in 0..100 {
        let first = source.backoff(1);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        let third = source.backoff(3);
        assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(800));
        let late = source.backoff(40);
        assert!(late >= Duration::from_secs(5) && late <= Duration::from_secs(10));
    }
}

// ----- secrets ------------------------------------------------------------------------

#[tokio::test]
// Logs are checked for the token end to end, in the integration tests that run the
// binary with RUST_LOG=debug: capturing them here depends on the process-wide tracing
// dispatchers other tests' threads share, which made this test flaky.
async fn the_token_is_sent_as_bearer_and_shown_nowhere() {
    // A hostile server echoes the credentials back, in the error and in a user.
    let stub = Stub::start(|req, n| {
        let auth = req.header("authorization").unwrap_or_default().to_owned();
        match n {
            0 => Reply::scim_error(503, &format!("busy; you sent {auth}")),
            1 => Reply::scim_error(401, &format!("invalid credentials: {auth}")),
            _ => list(1, &[json!({"userName": auth})]),
        }
    })
    .await;
    let options = stub.options();
    let source = stub.source(options.clone());
    let err = fetch(&source).await.expect_err("unauthorized");
    let seen = stub.seen();
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(seen[0].header("accept"), Some(SCIM_JSON));
    assert!(
        matches!(
            err,
            SourceError::Remote {
                status: Some(401),
                ..
            }
        ),
        "{err}"
    );
    let err_missing_id = fetch(&source).await.expect_err("user without id");
    assert!(
        matches!(err_missing_id, SourceError::InvalidResponse { .. }),
        "{err_missing_id}"
    );

    let shown = [
        format!("{err} {err:?}"),
        format!("{err_missing_id} {err_missing_id:?}"),
        format!("{source:?} {options:?}"),
    ];
    for text in &shown {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
    assert!(
        shown[0].contains("invalid credentials: Bearer [redacted]"),
        "{}",
        shown[0]
    );
}

#[test]
fn bad_options_fail_without_showing_secrets() {
    let new = |url: &str, token: Option<&str>| {
        ScimSource::new(
            ScimOptions {
                token: token.map(Secret::new),
                ..ScimOptions::new(url)
            },
            Arc::new(crate::NoProgress),
        )
    };
    for url in [
        "idp.example.com/scim",
        "ftp://idp.example.com/scim",
        "https://idp.example.com/scim?x=1",
        "https://user:hunter2@[::1/scim",
    ] {
        let err = new(url, None).expect_err(url);
        assert!(
            matches!(err, SourceError::Unreachable { .. }),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    let err =
        new("https://idp.example.com/scim", Some("line\nbreak-hunter2")).expect_err("newline");
    assert!(matches!(err, SourceError::Credentials { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
    let err = new("https://idp.example.com/scim", Some(" ")).expect_err("empty");
    assert!(matches!(err, SourceError::Credentials { .. }), "{err}");

    // Regression: user info replaced the bearer token with Basic auth.
    for url in [
        "https://user:hunter2@idp.example.com/scim/v2/",
        "https://hunter2@idp.example.com/scim/v2/",
    ] {
        let err = new(url, Some("t")).expect_err(url);
        assert!(
            matches!(&err, SourceError::Unreachable { detail, .. } if detail.contains("credentials")),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
    }
    // Nor would an origin show it.
    let base = Url::parse("https://user:hunter2@idp.example.com/scim/v2/").expect("URL");
    assert_eq!(
        origin(&endpoint(&base, "Users")),
        "SCIM GET https://idp.example.com/scim/v2/Users"
    );
}

// ----- progress -----------------------------------------------------------------------

/// One `Progress::update` call: source, pages, objects, total.
type Update = (String, u64, u64, Option<u64>);

#[derive(Default)]
struct Recorded {
    updates: Mutex<Vec<Update>>,
    finished: AtomicUsize,
}

impl Progress for Recorded {
    fn update(&self, source: &str, pages: u64, objects: u64, total: Option<u64>) {
        self.updates
            .lock()
            .expect("lock")
            .push((source.to_owned(), pages, objects, total));
    }
    fn finish(&self, source: &str) {
        assert_eq!(source, "idp");
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn progress_is_reported_per_page_and_finished_even_on_failure() {
    let users = directory(25);
    let stub = Stub::start(move |req, _| index_page(&users, req, 1000)).await;
    let progress = Arc::new(Recorded::default());
    let source = stub.source_with_progress(stub.options(), progress.clone());
    fetch(&source).await.expect("fetches");
    let updates = progress.updates.lock().expect("lock").clone();
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0], ("idp".to_owned(), 1, 10, Some(25)));
    assert_eq!(updates[2], ("idp".to_owned(), 3, 25, Some(25)));
    assert_eq!(progress.finished.load(Ordering::SeqCst), 1);

    let stub = Stub::start(|_, _| Reply::scim_error(401, "no")).await;
    let progress = Arc::new(Recorded::default());
    let source = stub.source_with_progress(stub.options(), progress.clone());
    fetch(&source).await.expect_err("unauthorized");
    assert_eq!(progress.finished.load(Ordering::SeqCst), 1);
}

// ----- malformed answers --------------------------------------------------------------

#[tokio::test]
async fn answers_that_are_not_scim_are_invalid_responses() {
    let cases: [(&str, Reply); 3] = [
        (
            "not the expected SCIM JSON",
            Reply {
                status: 200,
                headers: vec![],
                body: "<html>login</html>".into(),
                delay: Duration::ZERO,
                endless: false,
                cut: None,
            },
        ),
        (
            "no `totalResults`",
            Reply::json(200, &json!({"Resources": []})),
        ),
        (
            "Resources[1] of the page at startIndex 1 has no `id`",
            list(
                2,
                &[
                    json!({"id": "a", "userName": "a"}),
                    json!({"userName": "b"}),
                ],
            ),
        ),
    ];
    for (expected, reply) in cases {
        let reply = Arc::new(Mutex::new(Some(reply)));
        let stub = Stub::start(move |_, _| {
            reply
                .lock()
                .expect("lock")
                .take()
                .unwrap_or_else(|| list(0, &[]))
        })
        .await;
        let err = fetch(&stub.source(stub.options()))
            .await
            .expect_err(expected);
        assert!(
            matches!(&err, SourceError::InvalidResponse { detail, .. } if detail.contains(expected)),
            "{expected}: {err}"
        );
        assert_eq!(stub.seen().len(), 1, "{expected}: not retried");
    }
}

// ----- hostile servers ----------------------------------------------------------------

#[tokio::test]
async fn an_endless_body_fails_as_soon_as_it_passes_the_limit() {
    // Regression: a body that never ended grew the process until it was OOM-killed.
    let stub = Stub::start(|_, _| Reply::endless()).await;
    let err = fetch(&stub.source(ScimOptions {
        max_response_bytes: 1024 * 1024,
        ..stub.options()
    }))
    .await
    .expect_err("too large");
    assert!(
        matches!(&err, SourceError::InvalidResponse { detail, .. }
            if detail.contains("exceeded the limit of 1048576 bytes (idp.max_response_bytes)")),
        "{err}"
    );
    assert_eq!(stub.seen().len(), 1, "an oversized answer is not retried");
    // Reading stopped at the limit: what else got out sits in socket buffers.
    let sent = stub.sent.load(Ordering::SeqCst);
    assert!(sent < 32 * 1024 * 1024, "{sent} bytes sent");
}

#[tokio::test]
async fn a_content_length_beyond_the_limit_fails_before_the_body_is_read() {
    let users = directory(50);
    let stub = Stub::start(move |_, _| list(50, &users)).await;
    let err = fetch(&stub.source(ScimOptions {
        max_response_bytes: 1000,
        ..stub.options()
    }))
    .await
    .expect_err("too large");
    assert!(
        matches!(&err, SourceError::InvalidResponse { detail, .. }
            if detail.contains("(Content-Length), more than the limit of 1000 bytes")),
        "{err}"
    );
    assert_eq!(stub.seen().len(), 1, "not retried");
}

#[tokio::test]
async fn an_endless_error_body_is_cut_off_and_the_status_decides() {
    let stub = Stub::start(|_, _| Reply {
        status: 503,
        ..Reply::endless()
    })
    .await;
    let err = fetch(&stub.source(ScimOptions {
        max_attempts: 2,
        ..stub.options()
    }))
    .await
    .expect_err("unavailable");
    assert!(
        matches!(&err, SourceError::Remote { status: Some(503), detail, .. }
            if detail.contains("gave up after 2 attempts") && detail.len() < 400),
        "{err}"
    );
    assert_eq!(stub.seen().len(), 2, "retried as a 503");
}

// ----- the change feed: meta.lastModified gt ------------------------------------------

/// 2026-01-01T00:00:00Z plus `seconds`.
fn at(seconds: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_767_225_600 + seconds, 0).expect("a time")
}

/// A directory whose users carry `meta.lastModified`, shared with the test so it can
/// change users between looks.
type Changing = Arc<Mutex<Vec<Value>>>;

fn modified(users: &Changing, i: usize, seconds: i64) {
    let mut users = users.lock().expect("lock");
    users[i]["meta"]["lastModified"] = json!(at(seconds).to_rfc3339());
}

/// A stand-in that filters on `meta.lastModified gt "…"` and pages by index;
/// `/ServiceProviderConfig` answers `config` (404 when `None`).
async fn filtering_stub(users: &Changing, config: Option<Value>) -> Stub {
    let users = Arc::clone(users);
    Stub::start(move |req, _| {
        if req.path.ends_with("/ServiceProviderConfig") {
            return match &config {
                Some(config) => Reply::json(200, config),
                None => Reply::scim_error(404, "not here"),
            };
        }
        let users = users.lock().expect("lock").clone();
        let selected: Vec<Value> = match req.param("filter") {
            None => users,
            Some(filter) => {
                let since = filter
                    .strip_prefix("meta.lastModified gt \"")
                    .and_then(|rest| rest.strip_suffix('"'))
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .expect("the filter the feed sends");
                users
                    .into_iter()
                    .filter(|u| {
                        u["meta"]["lastModified"]
                            .as_str()
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                            .is_some_and(|t| t > since)
                    })
                    .collect()
            }
        };
        index_page(&selected, req, 1000)
    })
    .await
}

fn changed_ids(poll: &Poll) -> Vec<String> {
    match poll {
        Poll::Changed(users) => users.iter().map(|u| u.user.id.clone()).collect(),
        Poll::Unsupported(reason) => panic!("unsupported: {reason}"),
    }
}

#[test]
fn the_filter_is_rfc_7644_on_last_modified_in_utc() {
    assert_eq!(
        changed_since_filter(at(5)),
        "meta.lastModified gt \"2026-01-01T00:00:05.000Z\""
    );
}

#[tokio::test]
async fn a_look_pages_through_the_changed_users_and_moves_the_watermark() {
    let users: Changing = Arc::new(Mutex::new(directory(25)));
    for i in 0..25 {
        modified(&users, i, 100 + i64::try_from(i).expect("small"));
    }
    let stub = filtering_stub(&users, None).await;
    let source = stub.source(stub.options());
    let mut feed = ChangeFeed::new(at(50));
    let poll = feed.poll(&source).await.expect("looks");
    assert_eq!(changed_ids(&poll), expected_ids(25));
    assert_eq!(feed.watermark(), at(124), "the newest lastModified");
    let requests = stub.user_requests();
    assert_eq!(starts(&stub), [1, 11, 21], "paged like a listing");
    assert!(requests
        .iter()
        .all(|r| r.param("filter") == Some("meta.lastModified gt \"2026-01-01T00:00:45.000Z\"")));
}

#[tokio::test]
async fn the_overlap_brings_users_back_but_each_change_is_reported_once() {
    let users: Changing = Arc::new(Mutex::new(directory(3)));
    modified(&users, 0, 100);
    modified(&users, 1, 100);
    let stub = filtering_stub(&users, None).await;
    let source = stub.source(stub.options());
    let mut feed = ChangeFeed::new(at(90));
    assert_eq!(
        changed_ids(&feed.poll(&source).await.expect("looks")),
        ["u1", "u2"]
    );

    // Written in the same second as the watermark, after the last look: a filter on
    // the exact watermark would miss it.
    modified(&users, 2, 100);
    let poll = feed.poll(&source).await.expect("looks");
    assert_eq!(
        changed_ids(&poll),
        ["u3"],
        "u1 and u2 came back but were seen"
    );
    let last = stub.user_requests().pop().expect("a request");
    assert_eq!(
        last.param("filter"),
        Some("meta.lastModified gt \"2026-01-01T00:01:35.000Z\""),
        "five seconds before the watermark"
    );

    // A user changed again is reported again.
    modified(&users, 0, 103);
    assert_eq!(
        changed_ids(&feed.poll(&source).await.expect("looks")),
        ["u1"]
    );
    assert_eq!(feed.watermark(), at(103));
}

#[tokio::test]
async fn an_idle_look_is_one_request() {
    let users: Changing = Arc::new(Mutex::new(directory(5)));
    let config = json!({"filter": {"supported": true, "maxResults": 100}});
    let stub = filtering_stub(&users, Some(config)).await;
    let source = stub.source(stub.options());
    let mut feed = ChangeFeed::new(at(0));
    assert_eq!(
        changed_ids(&feed.poll(&source).await.expect("looks")),
        [""; 0]
    );
    let before = stub.seen().len();
    assert_eq!(before, 2, "/ServiceProviderConfig once, then the look");
    assert_eq!(
        changed_ids(&feed.poll(&source).await.expect("looks")),
        [""; 0]
    );
    assert_eq!(stub.seen().len(), before + 1);
    assert_eq!(feed.watermark(), at(0), "nothing seen, nothing moved");
}

#[tokio::test]
async fn a_server_that_says_it_cannot_filter_is_unsupported_without_asking() {
    let users: Changing = Arc::new(Mutex::new(directory(2)));
    let stub = filtering_stub(&users, Some(json!({"filter": {"supported": false}}))).await;
    let mut feed = ChangeFeed::new(at(0));
    let poll = feed
        .poll(&stub.source(stub.options()))
        .await
        .expect("looks");
    assert!(
        matches!(&poll, Poll::Unsupported(reason) if reason.contains("filter.supported")),
        "{poll:?}"
    );
    assert!(stub.user_requests().is_empty());
}

#[tokio::test]
async fn a_400_to_the_first_filtered_request_is_unsupported_later_a_failure() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let stub = Stub::start(move |req, _| {
        if req.path.ends_with("/ServiceProviderConfig") {
            return Reply::scim_error(404, "not here");
        }
        if counted.fetch_add(1, Ordering::SeqCst) == 1 {
            return Reply::scim_error(400, "no filtering today");
        }
        list(0, &[])
    })
    .await;
    let source = stub.source(stub.options());
    let mut feed = ChangeFeed::new(at(0));
    assert!(matches!(feed.poll(&source).await, Ok(Poll::Changed(_))));
    let err = feed.poll(&source).await.expect_err("a failure");
    assert!(
        matches!(
            err,
            SourceError::Remote {
                status: Some(400),
                ..
            }
        ),
        "{err}"
    );

    let stub = Stub::start(|req, _| {
        if req.path.ends_with("/ServiceProviderConfig") {
            return Reply::scim_error(404, "not here");
        }
        Reply::scim_error(501, "filtering is not implemented")
    })
    .await;
    let poll = ChangeFeed::new(at(0))
        .poll(&stub.source(stub.options()))
        .await
        .expect("looks");
    assert!(
        matches!(&poll, Poll::Unsupported(reason) if reason.contains("501")),
        "{poll:?}"
    );
}
