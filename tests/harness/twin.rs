//! Helpers for tests over the in-memory twin (`keyguard_aws::twin`): a twin at a fixed start in the harness's
//! account, the principals of the scenarios, and delivery as Lambda's asynchronous invocation does it (the event,
//! then up to two retries a minute and two minutes later while the handler returns an error).

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use keyguard_aws::GuardError;
use keyguard_aws::twin::{Twin, TwinGuard, assumed_role, iam_user};
use keyguard_core::{EventReport, Principal};
use serde_json::Value;

use crate::ACCOUNT;

/// Lambda retries a failed asynchronous invocation twice, then hands it to the failure destination.
pub const LAMBDA_RETRIES: usize = 2;

/// When every twin starts.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 11, 14, 0, 0).single().unwrap_or_default()
}

/// An empty account (the harness's) at [`start`].
pub fn twin() -> Twin {
    Twin::new(ACCOUNT, start())
}

pub fn admin() -> Principal {
    iam_user(ACCOUNT, "jordan.admin")
}

/// The IAM user `name` itself, as a caller (self-service).
pub fn itself(name: &str) -> Principal {
    iam_user(ACCOUNT, name)
}

pub fn role(name: &str) -> Principal {
    assumed_role(ACCOUNT, name)
}

/// The guard over `twin` with `vars` (see [`Twin::config`]).
pub fn guard(twin: &Twin, vars: &[(&str, &str)]) -> TwinGuard {
    let config = twin.config(vars).unwrap();
    twin.guard(&config).unwrap()
}

/// What became of one event's delivery.
#[derive(Debug)]
pub struct Delivered {
    /// The report of the attempt that succeeded; None when every attempt failed (the failure destination has it).
    pub report: Option<EventReport>,
    /// The errors of the attempts that failed, in order.
    pub errors: Vec<GuardError>,
}

/// Delivers `event` as Lambda does: retried up to [`LAMBDA_RETRIES`] times while it fails, the clock moving on by
/// Lambda's back-off between attempts.
pub async fn deliver(guard: &TwinGuard, twin: &Twin, event: &Value) -> Delivered {
    until_done(guard, twin, event, LAMBDA_RETRIES + 1).await
}

/// Delivers `event` until it succeeds, at most `attempts` times (a failed event re-driven from the failure
/// destination counts as more attempts).
pub async fn until_done(guard: &TwinGuard, twin: &Twin, event: &Value, attempts: usize) -> Delivered {
    let mut errors = Vec::new();
    for attempt in 0..attempts {
        match guard.handle(event).await {
            Ok(report) => return Delivered { report: Some(report), errors },
            Err(e) => {
                errors.push(e);
                twin.advance(TimeDelta::minutes(attempt as i64 + 1));
            }
        }
    }
    Delivered { report: None, errors }
}
