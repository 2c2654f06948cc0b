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
