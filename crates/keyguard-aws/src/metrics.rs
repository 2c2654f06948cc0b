//! KeyGuard's metrics, named in one place, through the `metrics` facade.
//!
//! The Lambda installs `metrics_cloudwatch_embedded` as the recorder (namespace `KeyGuard`): each invocation ends
//! with one CloudWatch Embedded Metric Format line in the function's log, which CloudWatch turns into metrics (no
//! PutMetricData, no extra permission, nothing on the event's path). Without a recorder (the CLI, tests) these
//! calls do nothing. The template's dashboard and alarms use exactly these names.

use keyguard_core::Verdict;
use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

pub const NAMESPACE: &str = "KeyGuard";
pub const EVENTS: &str = "EventsHandled";
pub const DECISIONS: &str = "Decisions";
pub const DEACTIVATIONS: &str = "Deactivations";
pub const ALERTS: &str = "AlertsSent";
pub const OWED_ALERTS: &str = "OwedAlertsResent";
/// Errors that need a person (the total, for the alarm; and by `Kind`, for the dashboard); IAM lag, which a retry
/// settles, is counted apart.
pub const ERRORS: &str = "Errors";
pub const ERRORS_BY_KIND: &str = "ErrorsByKind";
pub const CONSISTENCY_RETRIES: &str = "ConsistencyRetries";
pub const VALVE: &str = "SafetyValveWithheld";
pub const OUTLET_ERRORS: &str = "OutletErrors";
pub const LATENCY: &str = "EventLatency";
pub const SWEEP_SECONDS: &str = "SweepDuration";
pub const SWEEP_USERS: &str = "SweepUsers";
pub const SWEEP_FINDINGS: &str = "SweepFindings";
pub const SWEEP_FAILURES: &str = "SweepFailures";
pub const SWEEP_ACCOUNTS: &str = "SweepAccountsQueued";

/// Units for the recorder (EMF carries them to CloudWatch).
pub fn describe() {
    for name in
        [EVENTS, DECISIONS, DEACTIVATIONS, ALERTS, OWED_ALERTS, ERRORS, ERRORS_BY_KIND, CONSISTENCY_RETRIES, VALVE]
    {
        describe_counter!(name, Unit::Count, "");
    }
    for name in [OUTLET_ERRORS, SWEEP_USERS, SWEEP_FINDINGS, SWEEP_FAILURES, SWEEP_ACCOUNTS] {
        describe_counter!(name, Unit::Count, "");
    }
    describe_histogram!(LATENCY, Unit::Milliseconds, "");
    describe_histogram!(SWEEP_SECONDS, Unit::Seconds, "");
}

pub fn event(latency_ms: f64) {
    counter!(EVENTS).increment(1);
    histogram!(LATENCY).record(latency_ms);
}

pub fn decision(verdict: Verdict) {
    counter!(DECISIONS, "Verdict" => verdict.as_str()).increment(1);
}

pub fn deactivation() {
    counter!(DEACTIVATIONS).increment(1);
}

pub fn alert_sent() {
    counter!(ALERTS).increment(1);
}

pub fn owed_alert_resent() {
    counter!(OWED_ALERTS).increment(1);
}

/// An event or sweep that failed, by error type (`KeyGuard.AwsError`, ...). IAM lag is not an error a person must
/// look at: it is counted as a consistency retry, so that the errors alarm does not trip on it.
pub fn error(kind: &'static str) {
    if kind == "KeyGuard.NotYetConsistent" {
        counter!(CONSISTENCY_RETRIES).increment(1);
    } else {
        counter!(ERRORS).increment(1);
        counter!(ERRORS_BY_KIND, "Kind" => kind).increment(1);
    }
}

pub fn valve_withheld() {
    counter!(VALVE).increment(1);
}

pub fn outlet_error(outlet: &'static str) {
    counter!(OUTLET_ERRORS, "Outlet" => outlet).increment(1);
}

/// One account's sweep.
pub fn sweep(seconds: f64, users: usize, findings: usize, failures: usize) {
    histogram!(SWEEP_SECONDS).record(seconds);
    counter!(SWEEP_USERS).increment(users as u64);
    counter!(SWEEP_FINDINGS).increment(findings as u64);
    counter!(SWEEP_FAILURES).increment(failures as u64);
}

pub fn accounts_queued(n: usize) {
    counter!(SWEEP_ACCOUNTS).increment(n as u64);
}
