//! SDK errors as one line a person can read, and the few error codes the checks tell apart.

use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The longest error text a checklist line carries; the SDK's transport errors can run to kilobytes.
const MAX_LEN: usize = 300;

/// A failed call in one line: the service's code and message, or the transport error's chain.
/// (Every `aws-sdk-*` crate re-exports the same `SdkError`, so this serves all of them.)
pub fn one_line<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(err).to_string(),
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
