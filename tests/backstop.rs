//! The daily sweep is a backstop that reaches someone (issue 12 §5): one digest for the day's open findings, in
//! `KEYGUARD_RECONCILE=dry-run` too, and one user whose reads fail is named in that digest while the sweep goes on
//! with the others and does not fail as a whole (a failed sweep would be run three times by Lambda: three digests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::TimeDelta;
use keyguard_aws::AwsErrorKind;
use keyguard_aws::twin::Op;
use keyguard_core::{Action, Verdict};
use keyguard_tests::twin::{admin, guard, twin};
use serde_json::{Value, json};

fn scheduled() -> Value {
    json!({"version": "0", "id": "sweep-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": keyguard_tests::ACCOUNT, "time": "2025-03-12T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}})
}

#[tokio::test]
async fn a_failing_user_is_named_in_the_digest_and_the_sweep_goes_on() {
    let t = twin();
    // Report only (the default): the sweep deactivates nothing but still tells someone.
    let g = guard(&t, &[("KEYGUARD_MODE", "deactivate")]);
    let mut keys = Vec::new();
    for name in ["ana", "bruno", "carla"] {
        t.create_user(&admin(), name, None, &[]).unwrap();
        t.create_login_profile(&admin(), name).unwrap();
        keys.push(t.create_access_key(&admin(), name).unwrap().id); // its event is lost
        t.advance(TimeDelta::seconds(5));
    }
    t.advance(TimeDelta::hours(20));
    // The second user's key listing is denied (say, a permissions boundary on that user's path).
    t.fail(Op::ListAccessKeys, 2, AwsErrorKind::AccessDenied);

    let report = g.handle(&scheduled()).await.expect("one failing user does not fail the sweep");
    let violations: Vec<&str> = report
        .decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Violation)
        .filter_map(|d| d.access_key_id.as_deref())
        .collect();
    assert_eq!(violations.len(), 2, "the two readable users are still judged: {report:?}");
    assert!(report.decisions.iter().all(|d| d.action == Action::None), "report only: {report:?}");
    assert!(t.deactivations().is_empty());

    let alerts = t.alerts();
    assert_eq!(alerts.len(), 1, "one digest, not an alert per standing finding: {alerts:#?}");
    let digest = &alerts[0].json;
    assert_eq!(digest["kind"], "digest");
    assert_eq!(digest["findings"].as_array().unwrap().len(), 2, "{digest:#}");
    assert_eq!(digest["failures_total"], 1, "{digest:#}");
    let failure = digest["failures"][0].as_str().unwrap();
    assert!(failure.contains("ListAccessKeys") || failure.contains("AccessDenied"), "says what failed: {failure}");
    assert!(alerts[0].text.contains("could not be checked") || alerts[0].text.contains("fail"), "{}", alerts[0].text);
    for key in violations {
        assert!(alerts[0].text.contains(key), "the digest names {key}");
    }
}

#[tokio::test]
async fn a_clean_account_gets_no_digest() {
    let t = twin();
    let g = guard(&t, &[("KEYGUARD_MODE", "deactivate")]);
    t.create_user(&admin(), "dana", None, &[]).unwrap();
    t.create_login_profile(&admin(), "dana").unwrap();
    t.advance(TimeDelta::hours(20));
    let report = g.handle(&scheduled()).await.unwrap();
    assert!(report.decisions.iter().all(|d| !d.verdict.is_finding()), "{report:?}");
    assert!(t.alerts().is_empty(), "nothing to say, nothing sent: {:#?}", t.alerts());
}
