//! At least one alert, at most one deactivation (issue 8 §2), whatever fails in between.
//!
//! Over the in-memory twin: each crash point the issue names (before the write, between the write and the publish,
//! after the publish), with and without the ledger, then every call of the event in turn failing before or after its
//! effect. The event is delivered again until it succeeds (Lambda's retries, then a re-drive from the failure
//! destination): the key is deactivated exactly once and the team gets at least one alert that says so, naming the
//! key, the user and the creator. On moto: the alert topic missing at the first attempt and created before the
//! retry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyguard_aws::AwsErrorKind;
use keyguard_aws::twin::{Failure, Op, Twin};
use keyguard_core::{Action, Alert, Config, Verdict};
use keyguard_tests::twin::{admin, guard, role, twin, until_done};
use keyguard_tests::{AlertSink, Caller, Iam, Moto, ledger_table, unique};
use serde_json::Value;

/// How a scenario's event reaches the violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// User, password, key by an admin: the key's own event deactivates it.
    KeyEvent,
    /// Terraform's order (user, key, password): the password's event deactivates the key whose creator the ledger
    /// learned from its own event (needs the ledger).
    PasswordEvent,
}

struct Scenario {
    twin: Twin,
    user: String,
    key: String,
    creator_arn: String,
    /// The event whose handling deactivates the key.
    event: Value,
}

fn vars(ledger: bool) -> Vec<(&'static str, &'static str)> {
    let mut vars = vec![("KEYGUARD_MODE", "deactivate")];
    if ledger {
        vars.push(("KEYGUARD_LEDGER_TABLE", "keyguard-ledger"));
    }
    vars
}

async fn scenario(order: Order, ledger: bool) -> Scenario {
    let t = twin();
    let user = "maria.silva".to_string();
    match order {
        Order::KeyEvent => {
            t.create_user(&admin(), &user, None, &[]).unwrap();
            t.create_login_profile(&admin(), &user).unwrap();
            let key = t.create_access_key(&admin(), &user).unwrap();
            let creator_arn = admin().arn.unwrap();
            Scenario { twin: t, user, key: key.id, creator_arn, event: key.event }
        }
        Order::PasswordEvent => {
            let terraform = role("terraform");
            t.create_user(&terraform, &user, None, &[]).unwrap();
            let key = t.create_access_key(&terraform, &user).unwrap();
            // The key's own event comes first: no password yet, compliant; the ledger learns its creator.
            let report = guard(&t, &vars(ledger)).handle(&key.event).await.unwrap();
            assert_eq!(report.decisions[0].verdict, Verdict::Compliant, "{report:?}");
            t.advance(chrono::TimeDelta::seconds(40));
            let password = t.create_login_profile(&terraform, &user).unwrap();
            assert!(t.ledger_record(&key.id).is_some_and(|r| r.creator.is_some()));
            Scenario { twin: t, user, key: key.id, creator_arn: terraform.arn.unwrap(), event: password }
        }
    }
}

/// The alerts that tell the team the key was deactivated, checked for their content.
fn deactivation_alerts(s: &Scenario, alerts: &[Alert]) -> usize {
    let mut n = 0;
    for a in alerts {
        assert_eq!(a.json["access_key"]["id"], s.key.as_str(), "every alert is about the key: {a:?}");
        assert_eq!(a.json["user"]["name"], s.user.as_str());
        assert_eq!(a.json["verdict"], "violation");
        if a.json["action"] == "deactivated" {
            assert!(a.subject.contains("deactivated") && a.subject.contains(&s.key), "{}", a.subject);
            assert!(
                a.text.contains(&s.creator_arn) || a.json["reason"].as_str().unwrap().contains(&s.creator_arn),
                "the alert names the creator {}: {a:?}",
                s.creator_arn
            );
            assert!(a.json["re_enable"].as_str().unwrap().contains(&s.key));
            n += 1;
        }
    }
    n
}

/// Delivers the scenario's event until it succeeds, then checks: one deactivation, at least one alert saying so,
/// every failed attempt retryable. Returns (attempts, alerts).
async fn settle(s: &Scenario, ledger: bool) -> (usize, usize) {
    let g = guard(&s.twin, &vars(ledger));
    let done = until_done(&g, &s.twin, &s.event, 6).await;
    let report = done.report.unwrap_or_else(|| panic!("never succeeded: {:?}", done.errors));
    for e in &done.errors {
        assert!(e.retryable(), "a failed attempt must be retryable: {e}");
    }
    assert_eq!(report.decisions.len(), 1, "{report:?}");
    assert!(!s.twin.key(&s.user, &s.key).unwrap().active, "the key ends inactive");
    assert_eq!(s.twin.deactivations(), [(s.user.clone(), s.key.clone())], "exactly one deactivation");
    let alerts = s.twin.alerts();
    assert!(deactivation_alerts(s, &alerts) >= 1, "at least one alert says the key was deactivated: {alerts:#?}");
    // A duplicate delivery afterwards changes nothing and sends nothing more once the alert went out.
    let before = alerts.len();
    let again = g.handle(&s.event).await.unwrap();
    assert!(again.decisions.iter().all(|d| d.action != Action::Deactivated), "{again:?}");
    assert_eq!(s.twin.deactivations().len(), 1);
    assert_eq!(s.twin.alerts().len(), before, "nothing more after the alert went out");
    (done.errors.len() + 1, before)
}

#[tokio::test]
async fn crash_before_the_write_update_access_key_fails() {
    for ledger in [true, false] {
        let s = scenario(Order::KeyEvent, ledger).await;
        s.twin.fail(Op::UpdateAccessKey, 1, AwsErrorKind::Throttled);
        let (attempts, alerts) = settle(&s, ledger).await;
        assert_eq!(attempts, 2, "ledger {ledger}");
        // Without a ledger the alert goes first, so the failed attempt already alerted: two alerts, one per attempt.
        assert_eq!(alerts, if ledger { 1 } else { 2 }, "ledger {ledger}");
    }
}

#[tokio::test]
async fn crash_between_the_write_and_the_publish_publish_fails_after_the_deactivation() {
    // With the ledger the key is deactivated first, then the alert published: the publish fails, the retry finds
    // the key inactive and the alert still owed, and sends it.
    let s = scenario(Order::KeyEvent, true).await;
    s.twin.fail(Op::Publish, 1, AwsErrorKind::Other);
    let (attempts, alerts) = settle(&s, true).await;
    assert_eq!((attempts, alerts), (2, 1));
    assert_eq!(s.twin.ledger_record(&s.key).unwrap().owed_alert, None, "the debt is paid");
    // Without the ledger the alert is published first; the deactivation's answer is lost after it took effect.
    let s = scenario(Order::KeyEvent, false).await;
    s.twin.crash(Op::UpdateAccessKey, 1);
    let (attempts, alerts) = settle(&s, false).await;
    assert_eq!((attempts, alerts), (2, 1));
}

#[tokio::test]
async fn crash_after_the_publish_the_ledgers_sent_fails() {
    // The alert went out, recording it failed: the retry sends it again (at least once, never lost).
    let s = scenario(Order::KeyEvent, true).await;
    s.twin.fail(Op::LedgerSent, 1, AwsErrorKind::Throttled);
    let (attempts, alerts) = settle(&s, true).await;
    assert_eq!((attempts, alerts), (2, 2));
    // Without the ledger, "after the publish" is the deactivation failing after its alert went out.
    let s = scenario(Order::KeyEvent, false).await;
    s.twin.fail(Op::UpdateAccessKey, 1, AwsErrorKind::Other);
    let (attempts, alerts) = settle(&s, false).await;
    assert_eq!((attempts, alerts), (2, 2));
}

#[tokio::test]
async fn an_sns_outage_longer_than_lambdas_retries_loses_nothing_once_the_event_is_re_driven() {
    let s = scenario(Order::KeyEvent, true).await;
    s.twin.inject(Op::Publish, 1..=3, Failure::Before(AwsErrorKind::Other));
    let g = guard(&s.twin, &vars(true));
    let lambda = keyguard_tests::twin::deliver(&g, &s.twin, &s.event).await;
    assert!(lambda.report.is_none(), "three failed attempts: the failure destination keeps the event");
    assert_eq!(lambda.errors.len(), 3);
    assert!(!s.twin.key(&s.user, &s.key).unwrap().active, "deactivated on the first attempt");
    assert!(s.twin.alerts().is_empty());
    assert!(s.twin.ledger_record(&s.key).unwrap().owed_alert.is_some(), "the alert is owed");
    // Re-driven from the failure destination once SNS is back: the owed alert goes out, nothing is done twice.
    let (attempts, alerts) = settle(&s, true).await;
    assert_eq!((attempts, alerts), (1, 1));
    assert_eq!(s.twin.count(Op::UpdateAccessKey), 1, "one UpdateAccessKey in all");
}

/// Every call the event makes, failing in turn before and after its effect: the invariants hold for each.
#[tokio::test]
async fn every_call_failing_before_or_after_its_effect_still_ends_in_one_deactivation_and_an_alert() {
    let mut matrix =
        String::from("| scenario | failing call | failure | attempts | alerts |\n| --- | --- | --- | --- | --- |\n");
    let mut cells = 0;
    for (order, ledger) in [(Order::KeyEvent, true), (Order::KeyEvent, false), (Order::PasswordEvent, true)] {
        // A clean run lists the calls the event makes.
        let clean = scenario(order, ledger).await;
        let before = clean.twin.calls().len();
        guard(&clean.twin, &vars(ledger)).handle(&clean.event).await.unwrap();
        let calls: Vec<Op> = clean.twin.calls()[before..].iter().map(|c| c.op).collect();
        assert!(calls.contains(&Op::UpdateAccessKey) && calls.contains(&Op::Publish), "{calls:?}");
        // Each call of the event by position: which occurrence of its operation it is.
        let mut seen = std::collections::BTreeMap::<Op, u32>::new();
        let positions: Vec<(Op, u32)> = calls
            .iter()
            .map(|op| {
                let n = seen.entry(*op).or_default();
                *n += 1;
                (*op, *n)
            })
            .collect();
        for (op, nth) in positions {
            let failures: &[Failure] = if op.has_effect() {
                &[Failure::Before(AwsErrorKind::Throttled), Failure::Before(AwsErrorKind::Other), Failure::After]
            } else {
                &[Failure::Before(AwsErrorKind::Throttled)]
            };
            for failure in failures {
                let s = scenario(order, ledger).await;
                s.twin.inject(op, nth..=nth, *failure);
                let (attempts, alerts) = settle(&s, ledger).await;
                cells += 1;
                matrix.push_str(&format!(
                    "| {order:?}, ledger {ledger} | {} #{nth} | {failure:?} | {attempts} | {alerts} |\n",
                    op.name()
                ));
            }
        }
    }
    println!("{matrix}");
    assert!(cells >= 30, "{cells} cells");
}

// ---------------------------------------------------------------------------------------------------------------
// On moto: the alert topic does not exist at the first attempt.

async fn guard_on_moto(sdk: &aws_config::SdkConfig, topic_arn: &str, table: Option<&str>) -> keyguard_aws::SdkGuard {
    let mut vars = vec![("KEYGUARD_MODE".to_string(), "deactivate".to_string())];
    vars.push(("KEYGUARD_TOPIC_ARN".into(), topic_arn.to_string()));
    if let Some(table) = table {
        vars.push(("KEYGUARD_LEDGER_TABLE".into(), table.to_string()));
    }
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
    keyguard_aws::sdk_guard(&config, sdk).await.unwrap()
}

#[tokio::test]
async fn on_moto_an_alert_that_could_not_be_published_is_sent_on_the_retry() {
    let sdk = Moto::shared().sdk().await;
    let iam = Iam::new(&sdk);
    let admin = Caller::IamUser("jordan.admin".into());
    let table = ledger_table(&sdk).await;
    for ledger in [Some(table.as_str()), None] {
        let name = unique("owed");
        iam.create_user(&admin, &name, None, &[]).await.unwrap();
        iam.create_password(&admin, &name).await.unwrap();
        let key = iam.create_key(&admin, &name).await.unwrap();
        // The topic is named but not there yet: SNS answers NotFound.
        let topic = unique("late-topic");
        let guard = guard_on_moto(&sdk, &AlertSink::topic_arn_of(&topic), ledger).await;
        let err = guard.handle(&key.event).await.unwrap_err();
        assert!(err.retryable(), "{err}");
        assert!(err.to_string().contains("sns:Publish"), "{err}");
        let status = iam.key_status(&name, &key.id).await.unwrap();
        // With the ledger the key was deactivated first and its alert is owed; without, the alert goes first, so
        // nothing was deactivated.
        assert_eq!(status, if ledger.is_some() { "Inactive" } else { "Active" }, "ledger {ledger:?}");

        let sink = AlertSink::named(&sdk, &topic).await.unwrap();
        let report = guard.handle(&key.event).await.unwrap();
        let d = &report.decisions[0];
        assert_eq!(iam.key_status(&name, &key.id).await.unwrap(), "Inactive");
        let alerts = sink.drain().await.unwrap();
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].body["action"], "deactivated");
        assert_eq!(alerts[0].body["access_key"]["id"], key.id.as_str());
        assert_eq!(alerts[0].body["creator"]["arn"], admin.arn());
        if ledger.is_some() {
            assert_eq!((d.verdict, d.action), (Verdict::Compliant, Action::Notified), "{d:?}");
            assert!(d.note.as_deref().unwrap_or("").contains("still owed"), "{d:?}");
        } else {
            assert_eq!(d.action, Action::Deactivated, "{d:?}");
        }
        // And once more: nothing more to do.
        guard.handle(&key.event).await.unwrap();
        assert!(sink.drain().await.unwrap().is_empty());
    }
}
