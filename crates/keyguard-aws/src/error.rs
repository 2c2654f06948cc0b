//! Typed errors: what failed, and whether trying again later can help.

use keyguard_core::ParseError;

/// The class of an AWS call's failure, as far as the guard cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The user, login profile or key does not exist (IAM `NoSuchEntity`).
    NotFound,
    /// Throttled after the SDK's own retries.
    Throttled,
    /// The role lacks a permission: fix the deployment, retrying will not help.
    AccessDenied,
    /// Anything else (network, timeout, service error).
    Other,
}

/// A failed AWS call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed ({kind:?}): {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    pub message: String,
}

impl AwsError {
    pub fn new(operation: &'static str, code: Option<&str>, message: String) -> AwsError {
        let kind = match code {
            Some("NoSuchEntity" | "NoSuchEntityException" | "NotFound" | "NotFoundException") => AwsErrorKind::NotFound,
            Some("Throttling" | "ThrottlingException" | "TooManyRequestsException" | "Throttled") => {
                AwsErrorKind::Throttled
            }
            Some("AccessDenied" | "AccessDeniedException" | "AuthorizationError" | "UnauthorizedOperation") => {
                AwsErrorKind::AccessDenied
            }
            _ => AwsErrorKind::Other,
        };
        AwsError { operation, kind, message }
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
