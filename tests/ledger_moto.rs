//! The ledger closes the bypasses (issue 12) and makes alerts at-least-once (issue 8 §2), through the real SDK
//! against moto (DynamoDB, IAM, SNS): each invocation is a fresh guard, as separate Lambda invocations are.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use keyguard_aws::SdkGuard;
use keyguard_core::{Action, Config, EventReport, Verdict};
use keyguard_tests::{AlertSink, Caller, Iam, Moto, ledger_table, unique};

fn admin() -> Caller {
    Caller::IamUser("jordan.admin".into())
}

struct Setup {
    iam: Iam,
    alerts: AlertSink,
    sdk: aws_config::SdkConfig,
    table: String,
}

async fn setup() -> Setup {
    let sdk = Moto::shared().sdk().await;
    let table = ledger_table(&sdk).await;
    Setup { iam: Iam::new(&sdk), alerts: AlertSink::new(&sdk).await.unwrap(), sdk, table }
}

impl Setup {
    /// A new guard (a new Lambda invocation) in deactivate mode with the ledger, plus `vars`.
    async fn guard(&self, vars: &[(&str, &str)]) -> SdkGuard {
        let mut map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        map.entry("KEYGUARD_TOPIC_ARN".into()).or_insert_with(|| self.alerts.topic_arn.clone());
        map.entry("KEYGUARD_MODE".into()).or_insert_with(|| "deactivate".into());
        map.entry("KEYGUARD_LEDGER_TABLE".into()).or_insert_with(|| self.table.clone());
        let config = Config::from_lookup(|k| map.get(k).cloned()).unwrap();
        keyguard_aws::sdk_guard(&config, &self.sdk).await.unwrap()
    }
}

fn only(report: &EventReport) -> (&str, Verdict, Action, &str) {
    assert_eq!(report.decisions.len(), 1, "{report:?}");
    let d = &report.decisions[0];
    (d.access_key_id.as_deref().unwrap_or(""), d.verdict, d.action, d.reason.as_str())
}

/// CreateUser -> CreateAccessKey -> CreateLoginProfile a moment later (Terraform's order), each event in its own
/// invocation: the key's event finds no password (compliant), the ledger keeps its creator, and the password's
/// event deactivates the key.
#[tokio::test]
async fn the_terraform_order_is_deactivated_by_the_password_event() {
    let s = setup().await;
    let name = unique("tf-user");
    let user_event = s.iam.create_user(&Caller::Role("terraform".into()), &name, None, &[]).await.unwrap();
    let key = s.iam.create_key(&Caller::Role("terraform".into()), &name).await.unwrap();
    let first = s.guard(&[]).await.handle(&user_event).await.unwrap();
    assert_eq!(first.decisions[0].verdict, Verdict::Compliant, "{first:?}");
    let report = s.guard(&[]).await.handle(&key.event).await.unwrap();
    let (_, verdict, action, reason) = only(&report);
    assert_eq!((verdict, action), (Verdict::Compliant, Action::None), "{reason}");
    assert!(reason.contains("no console password"), "{reason}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let password = s.iam.create_password(&Caller::Role("terraform".into()), &name).await.unwrap();
    let report = s.guard(&[]).await.handle(&password).await.unwrap();
    let (id, verdict, action, reason) = only(&report);
    assert_eq!((id, verdict, action), (key.id.as_str(), Verdict::Violation, Action::Deactivated), "{reason}");
    assert!(reason.contains("assumed-role/terraform"), "the ledger named the creator: {reason}");
    assert_eq!(s.iam.key_status(&name, &key.id).await.unwrap(), "Inactive");
    let alerts = s.alerts.drain().await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].body["action"], "deactivated");

    // Without the key's event in the ledger (another user), the password event alerts and says why it did not act.
    let other = unique("tf-user");
    s.iam.create_user(&admin(), &other, None, &[]).await.unwrap();
    let lost = s.iam.create_key(&admin(), &other).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let password = s.iam.create_password(&admin(), &other).await.unwrap();
    let report = s.guard(&[]).await.handle(&password).await.unwrap();
    let d = &report.decisions[0];
    assert_eq!((d.verdict, d.action), (Verdict::Violation, Action::Notified), "{d:?}");
    assert!(d.note.as_deref().unwrap_or("").contains("creator is unknown"), "{d:?}");
    assert_eq!(s.iam.key_status(&other, &lost.id).await.unwrap(), "Active");
}

/// A key KeyGuard deactivated, set back to Active by its user (the self-service policy no longer allows it, but an
/// older one did, or an admin may): the UpdateAccessKey event is alerted, the key is not fought over.
#[tokio::test]
async fn a_re_enabled_key_is_alerted_and_not_deactivated_again() {
    let s = setup().await;
    let name = unique("reenable");
    s.iam.create_user(&admin(), &name, None, &[]).await.unwrap();
    s.iam.create_password(&admin(), &name).await.unwrap();
    let key = s.iam.create_key(&admin(), &name).await.unwrap();
    let report = s.guard(&[]).await.handle(&key.event).await.unwrap();
    assert_eq!(only(&report).2, Action::Deactivated);
    assert_eq!(s.alerts.drain().await.unwrap().len(), 1);

    // KeyGuard's own UpdateAccessKey (Inactive) triggers nothing.
    let own = s.iam.set_key_status(&Caller::Role("keyguard".into()), &name, &key.id, "Inactive").await.unwrap();
    let report = s.guard(&[]).await.handle(&own).await.unwrap();
    assert_eq!(only(&report).1, Verdict::Ignored, "{report:?}");

    let user = Caller::IamUser(name.clone());
    let re_enabled = s.iam.set_key_status(&user, &name, &key.id, "Active").await.unwrap();
    let report = s.guard(&[]).await.handle(&re_enabled).await.unwrap();
    let (id, verdict, action, reason) = only(&report);
    assert_eq!((id, verdict, action), (key.id.as_str(), Verdict::Violation, Action::Notified), "{reason}");
    assert!(reason.contains("set Active again") && reason.contains(&format!("user/{name}")), "{reason}");
    assert_eq!(s.iam.key_status(&name, &key.id).await.unwrap(), "Active", "not fought over");
    let alerts = s.alerts.drain().await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert!(alerts[0].subject.contains("re-enabled"), "{}", alerts[0].subject);
    assert_eq!(alerts[0].body["kind"], "re-enabled");

    // A late duplicate of the key's CreateAccessKey event does not deactivate it again either.
    let report = s.guard(&[]).await.handle(&key.event).await.unwrap();
    let d = &report.decisions[0];
    assert_eq!((d.verdict, d.action), (Verdict::Violation, Action::None), "{d:?}");
    assert_eq!(s.iam.key_status(&name, &key.id).await.unwrap(), "Active");
    assert!(s.alerts.drain().await.unwrap().is_empty(), "no second alert for the same key");

    // An exempt principal (the security team's role) re-enabling is reported for information only.
    let exempt = s.iam.set_key_status(&Caller::Role("security-team".into()), &name, &key.id, "Active").await.unwrap();
    let guard = s.guard(&[("KEYGUARD_EXEMPT_CREATORS", "arn:aws:iam::*:role/security-team")]).await;
    let report = guard.handle(&exempt).await.unwrap();
    assert_eq!(only(&report).1, Verdict::Exempt, "{report:?}");
}

/// A late event (DELIVERY_DELAY, or replayed from the failure queue days later) whose key production now uses: the
/// same rule as the audit, alerted "would deactivate, key in use", never switched off.
#[tokio::test]
async fn a_late_event_does_not_deactivate_a_key_in_use() {
    let s = setup().await;
    let name = unique("late");
    s.iam.create_user(&admin(), &name, None, &[]).await.unwrap();
    s.iam.create_password(&admin(), &name).await.unwrap();
    let created = s.iam.client.create_access_key().user_name(&name).send().await.unwrap();
    let created = created.access_key().unwrap();
    let mut event = keyguard_tests::event(
        "CreateAccessKey",
        &admin(),
        chrono::Utc::now(),
        serde_json::json!({"userName": name}),
        serde_json::json!({"accessKey": {"userName": name, "accessKeyId": created.access_key_id(), "status": "Active"}}),
    );
    event["detail"]["addendum"] = serde_json::json!({"reason": "DELIVERY_DELAY"});
    keyguard_tests::use_key(&Moto::shared().endpoint, created.access_key_id(), created.secret_access_key()).await;
    let report = s.guard(&[]).await.handle(&event).await.unwrap();
    let d = &report.decisions[0];
    assert_eq!((d.verdict, d.action), (Verdict::Violation, Action::Notified), "{d:?}");
    assert!(d.note.as_deref().unwrap_or("").contains("would deactivate, key in use"), "{d:?}");
    assert_eq!(s.iam.key_status(&name, created.access_key_id()).await.unwrap(), "Active");
    let alerts = s.alerts.drain().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].body["note"].as_str().unwrap().contains("key in use"), "{}", alerts[0].body);
}

/// A duplicate delivery in notify mode: one alert (the ledger remembers it went out).
#[tokio::test]
async fn a_duplicate_delivery_is_alerted_once() {
    let s = setup().await;
    let name = unique("dup");
    s.iam.create_user(&admin(), &name, None, &[]).await.unwrap();
    s.iam.create_password(&admin(), &name).await.unwrap();
    let key = s.iam.create_key(&admin(), &name).await.unwrap();
    let first = s.guard(&[("KEYGUARD_MODE", "notify")]).await.handle(&key.event).await.unwrap();
    let second = s.guard(&[("KEYGUARD_MODE", "notify")]).await.handle(&key.event).await.unwrap();
    assert_eq!(only(&first).2, Action::Notified);
    let d = &second.decisions[0];
    assert_eq!((d.verdict, d.action), (Verdict::Violation, Action::None), "{d:?}");
    assert!(d.note.as_deref().unwrap_or("").contains("already sent"), "{d:?}");
    assert_eq!(s.alerts.drain().await.unwrap().len(), 1);
}
