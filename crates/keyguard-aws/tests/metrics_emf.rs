//! The errors alarm watches `KeyGuard/Errors`: IAM lag (a retry Lambda makes a minute later, issue 12 §6) must not
//! count there, every other failure must, by kind. Through the same EMF recorder the Lambda installs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyguard_aws::metrics;
use serde_json::Value;

#[test]
fn iam_lag_is_a_consistency_retry_and_not_an_error() {
    let collector =
        metrics_cloudwatch_embedded::Builder::new().cloudwatch_namespace(metrics::NAMESPACE).init().unwrap();
    metrics::error("KeyGuard.NotYetConsistent");
    metrics::error("KeyGuard.NotYetConsistent");
    metrics::error("KeyGuard.AwsError");
    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let docs: Vec<Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let value = |name: &str| docs.iter().filter_map(|d| d.get(name)).filter_map(Value::as_f64).sum::<f64>();
    assert_eq!(value(metrics::CONSISTENCY_RETRIES), 2.0, "{docs:#?}");
    assert_eq!(value(metrics::ERRORS), 1.0, "only the real failure trips the alarm: {docs:#?}");
    let by_kind: Vec<&Value> = docs.iter().filter(|d| d.get(metrics::ERRORS_BY_KIND).is_some()).collect();
    assert_eq!(by_kind.len(), 1, "{docs:#?}");
    assert_eq!(by_kind[0]["Kind"], "KeyGuard.AwsError");
}
