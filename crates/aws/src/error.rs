//! AWS SDK errors as [`SourceError`]s: service errors keep their code and message,
//! everything else says why the service could not be asked.
//!
//! Nothing here prints a request or a response: a raw response of a credentials call
//! would hold a password. Only the error's code, message and cause chain are used.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_redshift::config::http::HttpResponse;
use aws_sdk_redshift::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use idgraph_sources::SourceError;

/// Converts an SDK error of any service (all SDK crates share these types) into a
/// [`SourceError`] naming `origin`.
///
/// - a service error (`ClusterNotFound`, `ThrottlingException` after the last retry,
///   `AccessDeniedException`): [`SourceError::Remote`] with the HTTP status,
///   `code: message`;
/// - AWS credentials that could not be loaded: [`SourceError::Credentials`];
/// - no connection, a timeout, or a request that could not be built (no region):
///   [`SourceError::Unreachable`];
/// - an answer that does not parse: [`SourceError::InvalidResponse`].
pub(crate) fn sdk_error<E>(origin: String, error: SdkError<E, HttpResponse>) -> SourceError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if let Some(credentials) = find_credentials_error(&error) {
        return SourceError::Credentials {
            origin,
            detail: format!(
                "cannot load AWS credentials: {}",
                DisplayErrorContext(credentials)
            ),
        };
    }
    match &error {
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("UnknownError");
            let detail = match context.err().message() {
                Some(message) if !message.is_empty() => format!("{code}: {message}"),
                _ => code.to_owned(),
            };
            SourceError::Remote {
                origin,
                status: Some(context.raw().status().as_u16()),
                detail,
            }
        }
        SdkError::ResponseError(_) => SourceError::InvalidResponse {
            origin,
            detail: DisplayErrorContext(&error).to_string(),
        },
        SdkError::ConstructionFailure(_) => SourceError::Unreachable {
            origin,
            detail: format!(
                "cannot build the request (is a region configured?): {}",
                DisplayErrorContext(&error)
            ),
        },
        // Timeouts, refused connections, DNS and TLS failures.
        _ => SourceError::Unreachable {
            origin,
            detail: DisplayErrorContext(&error).to_string(),
        },
    }
}

/// The SDK reports credentials that could not be loaded as a failure to dispatch the
/// request; the cause chain tells them apart from a network failure.
fn find_credentials_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a CredentialsError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<CredentialsError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}
