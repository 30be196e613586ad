//! A fake AWS endpoint inside the process for unit tests: requests go through the real
//! SDK (serialization, signing, retries, parsing) to a function that answers by action.

use std::fmt;
use std::sync::{Arc, Mutex};

use aws_credential_types::Credentials;
use aws_sdk_redshift::config::http::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_types::body::SdkBody;

use crate::config::{load, SdkConfig};

/// What the fake answers.
pub(crate) enum Reply {
    /// 200 with this body (XML for `redshift`, JSON for the JSON APIs).
    Ok(String),
    /// An error of the service's protocol.
    Error {
        status: u16,
        code: String,
        message: String,
    },
}

impl Reply {
    pub(crate) fn ok(body: impl Into<String>) -> Self {
        Self::Ok(body.into())
    }

    pub(crate) fn error(status: u16, code: &str, message: &str) -> Self {
        Self::Error {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

type Handler = dyn Fn(&str, &str) -> Reply + Send + Sync;

#[derive(Clone)]
struct Fake {
    handler: Arc<Handler>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for Fake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fake")
    }
}

impl HttpConnector for Fake {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.requests.lock().unwrap().push(body.clone());
        // awsJson names the action in a header, awsQuery in the form body.
        let (json, action) = match request.headers().get("x-amz-target") {
            Some(target) => (true, target.rsplit('.').next().unwrap_or("").to_owned()),
            None => (
                false,
                body.split('&')
                    .find_map(|kv| kv.strip_prefix("Action="))
                    .unwrap_or("")
                    .to_owned(),
            ),
        };
        let (status, body) = match (self.handler)(&action, &body) {
            Reply::Ok(body) => (200, body),
            Reply::Error {
                status,
                code,
                message,
            } if json => (
                status,
                format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
            ),
            Reply::Error {
                status,
                code,
                message,
            } => (
                status,
                format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                     <Message>{message}</Message></Error><RequestId>1</RequestId></ErrorResponse>"
                ),
            ),
        };
        let mut response = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body));
        let content_type = if json {
            "application/x-amz-json-1.1"
        } else {
            "text/xml"
        };
        response.headers_mut().insert("content-type", content_type);
        HttpConnectorFuture::ready(Ok(response))
    }
}

/// An [`SdkConfig`] as [`crate::sdk_config`] makes it, with test credentials and region,
/// whose requests `handler(action, body)` answers; and the bodies of the requests made.
pub(crate) async fn fake_config(
    handler: impl Fn(&str, &str) -> Reply + Send + Sync + 'static,
) -> (SdkConfig, Arc<Mutex<Vec<String>>>) {
    let fake = Fake {
        handler: Arc::new(handler),
        requests: Arc::default(),
    };
    let requests = fake.requests.clone();
    let config = load(
        Some("us-east-1"),
        None,
        Some(Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "tests",
        )),
    )
    .await;
    let client = http_client_fn(move |_, _| SharedHttpConnector::new(fake.clone()));
    (config.to_builder().http_client(client).build(), requests)
}

/// The options of target `name` in us-east-1 over the API's endpoint, without TLS.
pub(crate) fn target_options(name: &str) -> crate::TargetOptions {
    crate::TargetOptions {
        name: name.into(),
        database: "dev".into(),
        region: Some("us-east-1".into()),
        endpoint_url: None,
        host: None,
        port: None,
        sslmode: idgraph_sources::postgres::SslMode::Disable,
        timeout: crate::SQL_TIMEOUT,
    }
}
