//! Typed errors: what failed, and whether trying again later can help.

use aws_credential_types::provider::error::CredentialsError;
use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use keyguard_core::ParseError;

/// The class of an AWS call's failure: what the guard does next, and what a person should do about it
/// ([`crate::advice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The user, login profile or key does not exist (IAM `NoSuchEntity`).
    NotFound,
    /// Throttled after the SDK's own retries.
    Throttled,
    /// The role lacks a permission: fix the deployment, retrying will not help.
    AccessDenied,
    /// No credentials could be loaded: none in the environment, the profiles, SSO or an instance role, or the
    /// profile that names them is not usable.
    NoCredentials,
    /// The credentials have expired: an SSO session whose token is out of date, or temporary credentials past
    /// their end (`ExpiredToken`). Signing in again fixes it.
    SessionExpired,
    /// AWS does not accept the credentials: an unknown or deleted access key, or a secret that does not match.
    BadCredentials,
    /// No region is configured, and the call needs one.
    NoRegion,
    /// The endpoint could not be reached: DNS, connection refused, TLS, or no response in time.
    Unreachable,
    /// Anything else (a service error without a class of its own, an unreadable response).
    Other,
}

impl AwsErrorKind {
    /// Whether the failure is the caller's environment (credentials, region, network) rather than this call: every
    /// other call fails the same way, so a command stops at the first one instead of reporting each.
    pub fn affects_every_call(self) -> bool {
        matches!(
            self,
            AwsErrorKind::NoCredentials
                | AwsErrorKind::SessionExpired
                | AwsErrorKind::BadCredentials
                | AwsErrorKind::NoRegion
                | AwsErrorKind::Unreachable
        )
    }
}

/// A failed AWS call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed ({kind:?}): {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    pub message: String,
}

/// Service error codes of expired credentials (STS session tokens, and the services that check them).
const EXPIRED_CODES: &[&str] = &["ExpiredToken", "ExpiredTokenException"];
/// Service error codes of credentials AWS does not know or cannot verify.
const BAD_CREDENTIAL_CODES: &[&str] =
    &["InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId", "SignatureDoesNotMatch"];

impl AwsError {
    /// Classifies a service's error `code` (the SDK's own list of throttling codes is used as it is).
    pub fn new(operation: &'static str, code: Option<&str>, message: String) -> AwsError {
        let kind = match code {
            Some("NoSuchEntity" | "NoSuchEntityException" | "NotFound" | "NotFoundException") => AwsErrorKind::NotFound,
            Some(code) if THROTTLING_ERRORS.contains(&code) || code == "Throttled" => AwsErrorKind::Throttled,
            Some("AccessDenied" | "AccessDeniedException" | "AuthorizationError" | "UnauthorizedOperation") => {
                AwsErrorKind::AccessDenied
            }
            Some(code) if EXPIRED_CODES.contains(&code) => AwsErrorKind::SessionExpired,
            Some(code) if BAD_CREDENTIAL_CODES.contains(&code) => AwsErrorKind::BadCredentials,
            _ => AwsErrorKind::Other,
        };
        AwsError { operation, kind, message }
    }

    /// A failed SDK call as our error: its class, and one line that says what happened (the service's code and
    /// message, or the cause of a call that never got an answer). The SDK's whole report (every credential provider
    /// tried, the response structs) is logged at debug level only, for `keyguard -v` or `RUST_LOG=debug`.
    pub fn from_sdk<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        tracing::debug!(operation, error = %DisplayErrorContext(err), "AWS call failed");
        let (code, message) = match (err.code(), err.message()) {
            (Some(code), message) => (Some(code.to_string()), message.map(str::to_string)),
            // An error envelope the SDK does not read: moto's query-protocol errors wrap <Error> in <Errors>.
            _ => match err.raw_response().and_then(|r| r.body().bytes()).map(String::from_utf8_lossy) {
                Some(body) => (xml_text(&body, "Code"), xml_text(&body, "Message")),
                None => (None, None),
            },
        };
        if let Some(code) = code {
            let message = match message {
                Some(message) => format!("{code}: {message}"),
                None => code.clone(),
            };
            return AwsError::new(operation, Some(&code), one_line(&message));
        }
        let (kind, message) = unanswered(err);
        AwsError { operation, kind, message: one_line(&message) }
    }

    /// Whether the SDK configuration's credentials can be loaded, as the error a call would get: a command checks
    /// this first where its calls' failures would otherwise be reported one input at a time (replay's sources).
    pub async fn check_credentials(sdk: &aws_config::SdkConfig) -> Result<(), AwsError> {
        use aws_credential_types::provider::ProvideCredentials;
        let Some(provider) = sdk.credentials_provider() else {
            return Err(AwsError {
                operation: "loading credentials",
                kind: AwsErrorKind::NoCredentials,
                message: NOT_FOUND.to_string(),
            });
        };
        match provider.provide_credentials().await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %DisplayErrorContext(&e), "no credentials");
                let chain: Vec<&(dyn std::error::Error + 'static)> =
                    std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| e.source()).collect();
                let (kind, message) = credentials_failure(&e, &chain);
                Err(AwsError { operation: "loading credentials", kind, message: one_line(&message) })
            }
        }
    }
}

/// The text of the first `<tag>` element in an XML body.
fn xml_text(body: &str, tag: &str) -> Option<String> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..end].trim().to_string()).filter(|t| !t.is_empty())
}

/// What the SDK's credentials chain tried, in words (its own message lists each provider on a line of its own).
const NOT_FOUND: &str = "no credentials found (tried the environment, the shared config and credentials files, web \
                         identity, the container and the instance metadata)";

/// The class and cause of a credentials provider's failure; `chain` is the error and its causes from it on.
fn credentials_failure(
    credentials: &CredentialsError,
    chain: &[&(dyn std::error::Error + 'static)],
) -> (AwsErrorKind, String) {
    let text = causes(chain);
    // The SSO providers' errors are private types; their messages are stable ("the SSO token has expired
    // and cannot be refreshed", "failed to load the cached SSO token": never signed in on this machine).
    let sso = text.contains("SSO token") || text.contains("SSO session");
    let kind = match credentials {
        _ if sso => AwsErrorKind::SessionExpired,
        _ if EXPIRED_CODES.iter().any(|code| text.contains(code)) => AwsErrorKind::SessionExpired,
        _ => AwsErrorKind::NoCredentials,
    };
    let text = match credentials {
        CredentialsError::CredentialsNotLoaded(_) if !sso => NOT_FOUND.to_string(),
        // The SSO cause alone: the layers above it only say "an error occurred while loading ...".
        _ if sso => chain.iter().rev().map(|e| e.to_string()).find(|t| t.contains("SSO")).unwrap_or(text),
        _ => text,
    };
    (kind, text)
}

/// The class and cause of a call that got no service error: credentials, region or endpoint resolution, the
/// connection, a timeout, or a response the SDK could not read.
fn unanswered<E, R>(err: &SdkError<E, R>) -> (AwsErrorKind, String)
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let chain: Vec<&(dyn std::error::Error + 'static)> =
        std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| e.source()).collect();
    for (i, e) in chain.iter().enumerate() {
        if let Some(credentials) = e.downcast_ref::<CredentialsError>() {
            return credentials_failure(credentials, &chain[i..]);
        }
        // The endpoint resolver's error type differs between crates; its message is the one the rules define.
        if e.to_string().contains("Missing Region") {
            return (AwsErrorKind::NoRegion, "no region configured".to_string());
        }
    }
    let unreachable = match err {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(failure) => failure.as_connector_error().is_some_and(|c| c.is_io() || c.is_timeout()),
        _ => false,
    };
    let kind = if unreachable { AwsErrorKind::Unreachable } else { AwsErrorKind::Other };
    let text = match err {
        SdkError::ResponseError(_) => format!("unreadable response: {}", causes(&chain)),
        _ => causes(&chain),
    };
    (kind, text)
}

/// The messages of an error and its causes, each once (the SDK's layers often repeat their cause's message), joined
/// with ": ". The SDK's own `DisplayErrorContext` appends the whole `Debug` dump, which is for logs, not people.
fn causes(chain: &[&(dyn std::error::Error + 'static)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain {
        let text = e.to_string();
        let text = text.trim();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(text)) {
            parts.push(text.to_string());
        }
    }
    parts.join(": ")
}

/// The longest message an [`AwsError`] carries: transport errors can run to kilobytes.
const MAX_MESSAGE: usize = 400;

/// One line: whitespace (newlines included) collapsed, at most [`MAX_MESSAGE`] characters.
fn one_line(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}
/// Why the guard could not finish an event. Every one is returned to Lambda as an error, so that its retries and
/// failure destination keep the event; `retryable` says whether a retry can succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Not an event at all (logged with its id; the failure destination keeps it for a person to look at).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// IAM does not show yet what the event says was created: read again later.
    #[error("event {event_id}: IAM does not show {what} yet (eventual consistency); retry later")]
    NotYetConsistent { event_id: String, what: String },
    /// An AWS call failed; nothing was acted on after it.
    #[error("event {event_id}: {source}")]
    Aws { event_id: String, source: AwsError },
    /// The event is from an account this guard does not guard: refused, nothing read or changed anywhere.
    #[error("event {event_id}: account {account} is not guarded by this KeyGuard ({why}); refused, nothing was done")]
    AccountNotGuarded { event_id: String, account: String, why: String },
    /// An event that must not be acted on (oversized, or its accounts disagree).
    #[error("event {event_id}: refused: {why}")]
    Refused { event_id: String, why: String },
}

impl GuardError {
    pub fn retryable(&self) -> bool {
        match self {
            GuardError::Parse(_) => false,
            GuardError::NotYetConsistent { .. } => true,
            GuardError::Aws { source, .. } => source.kind != AwsErrorKind::AccessDenied,
            GuardError::AccountNotGuarded { .. } | GuardError::Refused { .. } => false,
        }
    }

    /// A short name for Lambda's `errorType` and for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            GuardError::Parse(_) => "KeyGuard.BadEvent",
            GuardError::NotYetConsistent { .. } => "KeyGuard.NotYetConsistent",
            GuardError::Aws { source, .. } if source.kind == AwsErrorKind::AccessDenied => "KeyGuard.AccessDenied",
            GuardError::Aws { .. } => "KeyGuard.AwsError",
            GuardError::AccountNotGuarded { .. } => "KeyGuard.AccountNotGuarded",
            GuardError::Refused { .. } => "KeyGuard.Refused",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use aws_sdk_iam::error::ConnectorError;
    use aws_sdk_iam::operation::get_user::GetUserError;

    type Failed = SdkError<GetUserError, HttpResponse>;

    /// How the SDK reports a call that never left: its connector fails with the credential provider's error.
    fn credentials_failed(e: CredentialsError) -> Failed {
        SdkError::dispatch_failure(ConnectorError::other(Box::new(e), None))
    }

    #[test]
    fn no_credentials_is_one_short_line_without_the_debug_dump() {
        let chain = "no credentials found in chain. Attempted:\n  Environment: the credential provider was not \
                     enabled: environment variable not set\n  Profile: the credential provider was not enabled";
        let e = AwsError::from_sdk("sts:GetCallerIdentity", &credentials_failed(CredentialsError::not_loaded(chain)));
        assert_eq!((e.operation, e.kind), ("sts:GetCallerIdentity", AwsErrorKind::NoCredentials));
        assert!(e.message.starts_with("no credentials found"), "{e}");
        assert!(!e.message.contains('\n') && !e.message.contains("CredentialsNotLoaded"), "{e}");
    }

    #[test]
    fn an_expired_sso_token_is_an_expired_session() {
        let sso = std::io::Error::other("the SSO token has expired and cannot be refreshed");
        let e = AwsError::from_sdk("iam:ListUsers", &credentials_failed(CredentialsError::provider_error(sso)));
        assert_eq!(e.kind, AwsErrorKind::SessionExpired, "{e}");
        assert!(e.message.contains("the SSO token has expired"), "{e}");
        // Never signed in on this machine: no cached token at all; the fix is the same.
        let missing = std::io::Error::other("failed to load the cached SSO token");
        let e = AwsError::from_sdk("iam:ListUsers", &credentials_failed(CredentialsError::provider_error(missing)));
        assert_eq!(e.kind, AwsErrorKind::SessionExpired, "{e}");
        // A profile that cannot be used is a configuration problem, told in the SDK's own words.
        let bad = CredentialsError::invalid_configuration("profile `ops` was not defined");
        let e = AwsError::from_sdk("iam:ListUsers", &credentials_failed(bad));
        assert_eq!(e.kind, AwsErrorKind::NoCredentials, "{e}");
        assert!(e.message.contains("profile `ops` was not defined"), "{e}");
    }

    #[test]
    fn transport_failures_are_unreachable_and_a_missing_region_is_named() {
        let dns = std::io::Error::other("dns error: failed to lookup address information");
        let e = AwsError::from_sdk("sts:GetCallerIdentity", &Failed::dispatch_failure(ConnectorError::io(dns.into())));
        assert_eq!(e.kind, AwsErrorKind::Unreachable, "{e}");
        assert!(e.message.contains("failed to lookup address"), "{e}");
        let e = AwsError::from_sdk("iam:GetUser", &Failed::timeout_error("operation timeout (all attempts) exceeded"));
        assert_eq!(e.kind, AwsErrorKind::Unreachable, "{e}");
        let region = std::io::Error::other("Invalid Configuration: Missing Region");
        let e = AwsError::from_sdk(
            "athena:StartQueryExecution",
            &Failed::dispatch_failure(ConnectorError::other(region.into(), None)),
        );
        assert_eq!(e.kind, AwsErrorKind::NoRegion, "{e}");
    }

    #[test]
    fn an_error_envelope_the_sdk_does_not_read_is_read_for_its_code() {
        // moto 5.2.5's query-protocol denial: <Error> inside <Errors>, which the SDK leaves without a code.
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse><Errors><Error><Code>AccessDenied</Code>\
                    <Message>User: arn:aws:iam::123456789012:user/u is not authorized to perform: iam:ListUsers\
                    </Message><Type>Sender</Type></Error></Errors></ErrorResponse>";
        let raw = HttpResponse::new(403.try_into().unwrap(), aws_smithy_types::body::SdkBody::from(body));
        let unread = GetUserError::generic(aws_smithy_types::error::ErrorMetadata::builder().build());
        let e = AwsError::from_sdk("iam:ListUsers", &Failed::service_error(unread, raw));
        assert_eq!(e.kind, AwsErrorKind::AccessDenied, "{e}");
        assert_eq!(
            e.message,
            "AccessDenied: User: arn:aws:iam::123456789012:user/u is not authorized to perform: iam:ListUsers"
        );
    }

    #[test]
    fn service_codes_of_credentials_and_throttling() {
        for (code, kind) in [
            ("ExpiredToken", AwsErrorKind::SessionExpired),
            ("InvalidClientTokenId", AwsErrorKind::BadCredentials),
            ("SignatureDoesNotMatch", AwsErrorKind::BadCredentials),
            ("Throttling", AwsErrorKind::Throttled),
            ("SlowDown", AwsErrorKind::Throttled),
            ("Throttled", AwsErrorKind::Throttled),
            ("AccessDenied", AwsErrorKind::AccessDenied),
            ("NoSuchEntity", AwsErrorKind::NotFound),
            ("ServiceFailure", AwsErrorKind::Other),
        ] {
            assert_eq!(AwsError::new("iam:GetUser", Some(code), code.into()).kind, kind, "{code}");
        }
        assert!(AwsErrorKind::SessionExpired.affects_every_call());
        assert!(!AwsErrorKind::AccessDenied.affects_every_call() && !AwsErrorKind::Throttled.affects_every_call());
    }
}
