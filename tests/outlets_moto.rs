//! The outlets through the guard (issue 9): Security Hub findings filed, updated, resolved and archived, and chat
//! notifications, as the deployed function files them (sdk_guard with KEYGUARD_SECURITY_HUB=on and
//! KEYGUARD_CHAT_TOPIC_ARN), against a moto server of its own (the sweep audits the whole account).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_securityhub::types::AwsSecurityFinding;
use keyguard_aws::SdkGuard;
use keyguard_core::{Action, Config, Verdict};
use keyguard_tests::{ACCOUNT, AlertSink, Caller, Iam, Moto, ledger_table, unique};
use serde_json::json;

fn admin() -> Caller {
    Caller::IamUser("jordan.admin".into())
}

async fn guard(sdk: &aws_config::SdkConfig, vars: &[(&str, String)]) -> SdkGuard {
    let map: HashMap<&str, String> = vars.iter().cloned().collect();
    let config = Config::from_lookup(|k| map.get(k).cloned()).unwrap();
    keyguard_aws::sdk_guard(&config, sdk).await.unwrap()
}

/// Every stored KeyGuard finding about `key` (moto ignores GetFindings filters: filtered here).
async fn findings(sdk: &aws_config::SdkConfig, key: &str) -> Vec<AwsSecurityFinding> {
    let id = keyguard_core::asff::finding_id(ACCOUNT, key);
    let client = aws_sdk_securityhub::Client::new(sdk);
    let mut pages = client.get_findings().max_results(100).into_paginator().send();
    let mut all = Vec::new();
    while let Some(page) = pages.next().await {
        all.extend(page.unwrap().findings().iter().filter(|f| f.id() == Some(id.as_str())).cloned());
    }
    all
}

fn compliance(f: &AwsSecurityFinding) -> &str {
    f.compliance().and_then(|c| c.status()).map(|s| s.as_str()).unwrap_or("")
}

/// Reading findings back deserializes deep SDK types: a debug build needs a large stack (see securityhub_moto.rs).
fn on_big_stack(scenario: impl std::future::Future<Output = ()> + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(32 << 20)
                .enable_all()
                .build()
                .unwrap()
                .block_on(scenario)
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn security_hub_findings_follow_each_decision_and_the_sweep_archives_closed_ones() {
    on_big_stack(async {
        let moto = Moto::start().unwrap();
        let sdk = moto.sdk().await;
        let iam = Iam::new(&sdk);
        let alerts = AlertSink::new(&sdk).await.unwrap();
        let table = ledger_table(&sdk).await;
        let vars = |mode: &str| {
            vec![
                ("KEYGUARD_MODE", mode.to_string()),
                ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.clone()),
                ("KEYGUARD_LEDGER_TABLE", table.clone()),
                ("KEYGUARD_SECURITY_HUB", "on".to_string()),
                ("KEYGUARD_RECONCILE", "dry-run".to_string()),
            ]
        };
        // Notify: an open finding, FAILED; the same event again updates it (one finding, newer UpdatedAt).
        let name = unique("hub-notify");
        iam.create_user(&admin(), &name, None, &[]).await.unwrap();
        iam.create_password(&admin(), &name).await.unwrap();
        let key = iam.create_key(&admin(), &name).await.unwrap();
        let report = guard(&sdk, &vars("notify")).await.handle(&key.event).await.unwrap();
        assert_eq!(report.decisions[0].action, Action::Notified);
        let filed = findings(&sdk, &key.id).await;
        assert_eq!(filed.len(), 1, "{filed:#?}");
        assert_eq!(compliance(&filed[0]), "FAILED");
        assert_eq!(filed[0].aws_account_id(), Some(ACCOUNT));
        assert!(filed[0].product_arn().unwrap().ends_with(&format!("product/{ACCOUNT}/default")));
        let first_update = filed[0].updated_at().unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        guard(&sdk, &vars("notify")).await.handle(&key.event).await.unwrap();
        let again = findings(&sdk, &key.id).await;
        assert_eq!(again.len(), 1, "a re-delivered event updates the same finding");
        assert!(again[0].updated_at().unwrap() > first_update.as_str(), "UpdatedAt increases");
        assert_eq!(alerts.drain().await.unwrap().len(), 1, "one alert for the duplicate delivery");

        // Deactivate: the finding records it, compliance PASSED (Security Hub resolves the workflow).
        let other = unique("hub-deactivate");
        iam.create_user(&admin(), &other, None, &[]).await.unwrap();
        iam.create_password(&admin(), &other).await.unwrap();
        let deactivated = iam.create_key(&admin(), &other).await.unwrap();
        let report = guard(&sdk, &vars("deactivate")).await.handle(&deactivated.event).await.unwrap();
        assert_eq!(
            (report.decisions[0].verdict, report.decisions[0].action),
            (Verdict::Violation, Action::Deactivated)
        );
        let resolved = findings(&sdk, &deactivated.id).await;
        assert_eq!(resolved.len(), 1);
        assert_eq!(compliance(&resolved[0]), "PASSED");
        assert!(
            resolved[0].description().unwrap_or_default().contains("deactivated"),
            "{:?}",
            resolved[0].description()
        );

        // The key of the first finding is deleted; the daily sweep (report only) archives its finding, and keeps
        // the open ones open.
        let third = unique("hub-open");
        iam.create_user(&admin(), &third, None, &[]).await.unwrap();
        iam.create_password(&admin(), &third).await.unwrap();
        let open = iam.create_key(&admin(), &third).await.unwrap();
        guard(&sdk, &vars("notify")).await.handle(&open.event).await.unwrap();
        iam.client.delete_access_key().user_name(&name).access_key_id(&key.id).send().await.unwrap();
        let scheduled = json!({"version": "0", "id": unique("sched"), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT, "time": "2026-01-01T03:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {}});
        guard(&sdk, &vars("notify")).await.handle(&scheduled).await.unwrap();
        let archived = findings(&sdk, &key.id).await;
        assert_eq!(archived[0].record_state().map(|s| s.as_str()), Some("ARCHIVED"), "{archived:#?}");
        let still = findings(&sdk, &open.id).await;
        assert_eq!(still[0].record_state().map(|s| s.as_str()), Some("ACTIVE"), "{still:#?}");
        assert_eq!(compliance(&still[0]), "FAILED");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_gets_one_custom_notification_per_alert() {
    let sdk = Moto::shared().sdk().await;
    let iam = Iam::new(&sdk);
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let chat = AlertSink::new(&sdk).await.unwrap();
    let vars = vec![
        ("KEYGUARD_MODE", "notify".to_string()),
        ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.clone()),
        ("KEYGUARD_CHAT_TOPIC_ARN", chat.topic_arn.clone()),
        ("KEYGUARD_LEDGER_TABLE", ledger_table(&sdk).await),
    ];
    let name = unique("chat");
    iam.create_user(&admin(), &name, None, &[]).await.unwrap();
    iam.create_password(&admin(), &name).await.unwrap();
    let key = iam.create_key(&admin(), &name).await.unwrap();
    guard(&sdk, &vars).await.handle(&key.event).await.unwrap();
    guard(&sdk, &vars).await.handle(&key.event).await.unwrap();
    let posted = chat.drain().await.unwrap();
    assert_eq!(posted.len(), 1, "one notification, none for the duplicate delivery: {posted:#?}");
    let n = &posted[0].body;
    assert_eq!((n["version"].as_str(), n["source"].as_str()), (Some("1.0"), Some("custom")), "{n}");
    assert!(n["content"]["title"].as_str().unwrap().contains(&name), "{n}");
    assert!(n["content"]["description"].as_str().unwrap().contains(&key.id), "{n}");
    assert!(n["content"]["nextSteps"].as_array().is_some_and(|s| !s.is_empty()), "{n}");
    assert_eq!(n["metadata"]["threadId"], keyguard_core::chat::thread_id(ACCOUNT, &name));
    // The alert topic's subscribers keep their own format.
    let alert = alerts.drain().await.unwrap();
    assert_eq!(alert.len(), 1);
    assert_eq!(alert[0].body["rule"], "CIS-1.11");
}
