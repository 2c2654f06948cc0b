//! SDK errors as one line a person can read, and the few error codes the checks tell apart.

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};

/// The longest error text a checklist line carries; the SDK's transport errors can run to kilobytes.
const MAX_LEN: usize = 300;

/// A failed call in one line: the service's code and message, or the transport error's chain.
/// (Every `aws-sdk-*` crate re-exports the same `SdkError`, so this serves all of them.)
pub fn one_line<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => {
            // The chain's own messages ("dispatch failure: ... no credentials"), without the Debug dump that the
            // SDK's DisplayErrorContext appends; with the HTTP status when the service answered something unparseable.
            let mut parts: Vec<String> = Vec::new();
            let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
            while let Some(e) = next {
                let text = e.to_string();
                if parts.last() != Some(&text) {
                    parts.push(text);
                }
                next = e.source();
            }
            match err.raw_response().map(|r| r.status().as_u16()) {
                Some(status) => format!("HTTP {status}: {}", parts.join(": ")),
                None => parts.join(": "),
            }
        }
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(MAX_LEN) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// The service's error code, if the service answered.
pub fn code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    err.code()
}

/// Whether the caller lacks the permission for the call.
pub fn is_access_denied(code: Option<&str>) -> bool {
    matches!(code, Some("AccessDenied" | "AccessDeniedException" | "AuthorizationError" | "UnauthorizedOperation"))
}

/// Whether the credentials are missing, invalid or expired (the fix is to sign in again).
pub fn is_credentials_problem(code: Option<&str>, text: &str) -> bool {
    matches!(
        code,
        Some(
            "ExpiredToken"
                | "ExpiredTokenException"
                | "InvalidClientTokenId"
                | "UnrecognizedClientException"
                | "SignatureDoesNotMatch"
                | "InvalidAccessKeyId"
        )
    ) || text.contains("no credentials")
        || text.contains("credentials provider")
        || text.contains("the credential provider was not enabled")
}
