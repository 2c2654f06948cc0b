//! `keyguard audit` and the Lambda's scheduled sweep against moto, through the real binary and SDK.
//!
//! moto cannot back-date: the cases are separated by a 3 s window and real waits. moto also dates a login profile
//! at its user's creation, so a key in its user's own second is "before the password" (a violation even with the
//! creator unknown), one 1.3 s later is a suspect, and one 4.2 s later is outside the window. Each test runs its
//! own moto, because the audit reads the whole account (and moto's credential report is generated once).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use aws_sdk_iam::types::StatusType;
use keyguard_core::Config;
use keyguard_tests::{AlertSink, Caller, Iam, Moto, aws_env, built_binary, repo};
use serde_json::{Value, json};

const WINDOW: &str = "3s";

struct Account {
    moto: Moto,
    iam: Iam,
    keys: BTreeMap<&'static str, String>,
}

async fn seed() -> Account {
    let moto = Moto::start().unwrap();
    let sdk = moto.sdk().await;
    let iam = Iam::new(&sdk);
    let admin = Caller::IamUser("jordan.admin".into());
    let mut keys = BTreeMap::new();
    let console = |name: &'static str, tags: &'static [(&'static str, &'static str)]| {
        let iam = &iam;
        let admin = admin.clone();
        async move {
            iam.create_user(&admin, name, None, tags).await.unwrap();
            iam.create_password(&admin, name).await.unwrap();
        }
    };
    // Users the credential report settles: created well before the newest user (see audit.rs: the report is at
    // least as new as the newest user it lists).
    iam.create_user(&admin, "svc", Some("/service/"), &[]).await.unwrap();
    keys.insert("svc", iam.create_key(&admin, "svc").await.unwrap().id);
    console("nokeys", &[]).await;
    iam.create_user(&admin, "settled", None, &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(4300)).await;
    // A key outside its user's window: the report alone settles this user.
    keys.insert("settled", iam.create_key(&admin, "settled").await.unwrap().id);

    keyguard_tests::align_to_second().await;
    for (name, key) in [("maria", "maria"), ("dual", "dual-setup"), ("used", "used"), ("idle", "idle")] {
        console(name, &[]).await;
        keys.insert(key, iam.create_key(&admin, name).await.unwrap().id);
    }
    console("tagged", &[("keyguard:exempt", "true")]).await;
    keys.insert("tagged", iam.create_key(&admin, "tagged").await.unwrap().id);
    // The tag with another value exempts nothing (a violator could set `false`). Key before password: a violation.
    iam.create_user(&admin, "tagged-false", None, &[("keyguard:exempt", "false")]).await.unwrap();
    keys.insert("tagged-false", iam.create_key(&admin, "tagged-false").await.unwrap().id);
    iam.create_password(&admin, "tagged-false").await.unwrap();
    console("kenji", &[]).await;
    console("late", &[]).await;
    iam.client
        .update_access_key()
        .user_name("idle")
        .access_key_id(&keys["idle"])
        .status(StatusType::Inactive)
        .send()
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(1300)).await;
    keys.insert("kenji", iam.create_key(&admin, "kenji").await.unwrap().id);
    tokio::time::sleep(Duration::from_millis(2900)).await;
    keys.insert("dual-later", iam.create_key(&admin, "dual").await.unwrap().id);
    keys.insert("late", iam.create_key(&admin, "late").await.unwrap().id);

    Account { moto, iam, keys }
}

/// Marks `key` as used: moto records the last use of the access key that signs a request.
fn audit(account: &Account, args: &[&str], extra_env: &[(&str, &str)]) -> (Output, Vec<Value>) {
    let out = Command::new(built_binary("keyguard-cli", "keyguard"))
        .args(["audit", "--format", "json", "--window", WINDOW])
        .args(args)
        .env_clear()
        .envs(aws_env(&account.moto.endpoint))
        .envs(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .current_dir(repo())
        .output()
        .unwrap();
    let rows = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out, rows)
}

fn verdict_of<'a>(rows: &'a [Value], user: &str, key: Option<&str>) -> &'a Value {
    rows.iter()
        .find(|r| r["user"] == user && key.is_none_or(|k| r["access_key_id"] == k))
        .unwrap_or_else(|| panic!("no row for {user} {key:?} in {rows:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_reports_every_key_of_every_user() {
    let account = seed().await;
    let (out, rows) = audit(&account, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "violations found: {}", String::from_utf8_lossy(&out.stderr));
    let k = |name: &str| account.keys[name].as_str();
    let expect = [
        ("maria", Some(k("maria")), "violation", "before the console password"),
        ("dual", Some(k("dual-setup")), "violation", "before the console password"),
        ("dual", Some(k("dual-later")), "compliant", "outside the 3s setup window"),
        ("used", Some(k("used")), "violation", ""),
        // Settled by the report (an inactive setup key, no ledger to owe its alert): no key id, no call.
        ("idle", None, "compliant", "already inactive"),
        ("tagged", Some(k("tagged")), "exempt", "tag keyguard:exempt=true"),
        ("tagged-false", Some(k("tagged-false")), "violation", "before the console password"),
        ("kenji", Some(k("kenji")), "suspect", "may be self-service"),
        ("svc", None, "compliant", "no console password"),
        ("nokeys", None, "compliant", "no access keys"),
        ("late", None, "compliant", "outside the 3s setup window"),
        ("settled", None, "compliant", "outside the 3s setup window"),
    ];
    for (user, key, verdict, reason) in expect {
        let row = verdict_of(&rows, user, key);
        assert_eq!(row["verdict"], verdict, "{row}");
        assert!(row["reason"].as_str().unwrap().contains(reason), "{row}");
        // Exempt would-be violations are reported too (an exemption must not hide anything).
        let action = if ["violation", "suspect", "exempt"].contains(&verdict) { "dry-run" } else { "none" };
        assert_eq!(row["action"], action, "no --apply: {row}");
        assert_eq!(row["account"], keyguard_tests::ACCOUNT);
        for field in ["user_created", "has_password", "last_used", "key_created", "access_key_id"] {
            assert!(row.get(field).is_some(), "{field} in {row}");
        }
    }
    assert_eq!(rows.len(), expect.len(), "one row per key, and per user without keys: {rows:#?}");
    // Without the credential report every user is read: the same verdicts, now with every key id.
    let (_, all_read) = audit(&account, &["--no-credential-report"], &[]);
    let summary = |rows: &[Value]| {
        let mut v: Vec<(String, String)> =
            rows.iter().map(|r| (r["user"].to_string(), r["verdict"].to_string())).collect();
        v.sort();
        v
    };
    assert_eq!(summary(&rows), summary(&all_read));
    // The report settled "settled" (no key ids in a report); reading every user gives its key id.
    assert!(verdict_of(&rows, "settled", None)["access_key_id"].is_null(), "settled by the credential report");
    assert_eq!(verdict_of(&all_read, "settled", None)["access_key_id"], k("settled"));
    // Nothing changed without --apply.
    assert_eq!(account.iam.key_status("maria", k("maria")).await.unwrap(), "Active");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_apply_deactivates_exactly_the_unused_violating_keys() {
    let account = seed().await;
    let sdk = account.moto.sdk().await;
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let env = [("KEYGUARD_MODE", "deactivate"), ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.as_str())];

    let (out, rows) = audit(&account, &["--apply"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let status = |user: &'static str, key: &'static str| {
        let iam = &account.iam;
        let id = account.keys[key].clone();
        async move { iam.key_status(user, &id).await.unwrap() }
    };
    assert_eq!(status("maria", "maria").await, "Inactive");
    assert_eq!(status("dual", "dual-setup").await, "Inactive");
    assert_eq!(status("used", "used").await, "Inactive");
    assert_eq!(status("tagged-false", "tagged-false").await, "Inactive");
    for (user, key) in
        [("dual", "dual-later"), ("kenji", "kenji"), ("tagged", "tagged"), ("svc", "svc"), ("late", "late")]
    {
        assert_eq!(status(user, key).await, "Active", "{user} {key}");
    }
    let kenji = verdict_of(&rows, "kenji", None);
    assert_eq!((kenji["verdict"].as_str(), kenji["action"].as_str()), (Some("suspect"), Some("notified")));
    let received = alerts.drain().await.unwrap();
    assert_eq!(
        received.len(),
        6,
        "4 deactivations (maria, dual, used, tagged-false), 1 suspect (kenji), 1 exempt for information (tagged): \
         {received:#?}"
    );
    assert_eq!(received.iter().filter(|a| a.body["kind"] == "exempt").count(), 1);
    assert!(received.iter().all(|a| a.body["event"]["id"] == "reconciliation"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_violating_key_is_kept_unless_include_used() {
    let account = seed().await;
    let sdk = account.moto.sdk().await;
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let env = [("KEYGUARD_MODE", "deactivate"), ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.as_str())];
    // A console user whose setup key has been used: moto records a use when the key signs a request.
    keyguard_tests::align_to_second().await;
    account.iam.create_user(&Caller::IamUser("jordan.admin".into()), "fresh", None, &[]).await.unwrap();
    account.iam.create_password(&Caller::IamUser("jordan.admin".into()), "fresh").await.unwrap();
    let key = account.iam.client.create_access_key().user_name("fresh").send().await.unwrap();
    let key = key.access_key().unwrap();
    keyguard_tests::use_key(&account.moto.endpoint, key.access_key_id(), key.secret_access_key()).await;

    let (_, rows) = audit(&account, &["--apply"], &env);
    let row = verdict_of(&rows, "fresh", Some(key.access_key_id()));
    assert_eq!(row["verdict"], "violation", "{row}");
    assert!(!row["last_used"].is_null(), "{row}");
    assert_eq!(row["action"], "notified", "{row}");
    assert!(row["reason"].as_str().unwrap().contains("would deactivate, key in use"), "{row}");
    assert_eq!(account.iam.key_status("fresh", key.access_key_id()).await.unwrap(), "Active");

    let (_, rows) = audit(&account, &["--apply", "--include-used"], &env);
    assert_eq!(verdict_of(&rows, "fresh", Some(key.access_key_id()))["action"], "deactivated");
    assert_eq!(account.iam.key_status("fresh", key.access_key_id()).await.unwrap(), "Inactive");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_sweep_audits_the_account_in_the_lambda() {
    let account = seed().await;
    let sdk = account.moto.sdk().await;
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let vars = [
        ("KEYGUARD_MODE", "deactivate"),
        ("KEYGUARD_SETUP_WINDOW", WINDOW),
        ("KEYGUARD_RECONCILE", "dry-run"),
        ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.as_str()),
    ];
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap();
    let guard = keyguard_aws::sdk_guard(&config, &sdk).await.unwrap();
    let scheduled = json!({"version": "0", "id": "sched-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": keyguard_tests::ACCOUNT, "time": "2026-01-01T03:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let report = guard.handle(&scheduled).await.unwrap();
    let flagged: Vec<(&str, &str)> =
        report.decisions.iter().map(|d| (d.access_key_id.as_deref().unwrap_or(""), d.verdict.as_str())).collect();
    let k = |n: &str| account.keys[n].as_str();
    for (key, verdict) in [(k("maria"), "violation"), (k("dual-setup"), "violation"), (k("kenji"), "suspect")] {
        assert!(flagged.contains(&(key, verdict)), "{key} {verdict} in {flagged:?}");
    }
    // Report only: nothing deactivated, no alert per standing finding, one digest that names them.
    assert!(report.decisions.iter().all(|d| d.action == keyguard_core::Action::None), "{report:?}");
    assert_eq!(account.iam.key_status("maria", k("maria")).await.unwrap(), "Active", "dry-run changes nothing");
    let received = alerts.drain().await.unwrap();
    assert_eq!(received.len(), 1, "one digest, not one alert per finding: {received:#?}");
    let digest = &received[0];
    assert_eq!(digest.body["kind"], "digest");
    assert!(digest.subject.contains("daily sweep"), "{}", digest.subject);
    let listed: Vec<&str> =
        digest.body["findings"].as_array().unwrap().iter().filter_map(|f| f["access_key_id"].as_str()).collect();
    for key in [k("maria"), k("dual-setup"), k("kenji")] {
        assert!(listed.contains(&key), "{key} in the digest: {listed:?}");
    }
    assert_eq!(
        digest.body["violations"].as_u64(),
        Some(flagged.iter().filter(|(_, v)| *v == "violation").count() as u64)
    );
}

/// CloudTrail's event history, stood in for by a mock client (moto has no LookupEvents): each key's creator.
fn cloudtrail_with(creators: Vec<(String, &'static str)>) -> keyguard_aws::SdkCloudTrail {
    use aws_sdk_cloudtrail::operation::lookup_events::LookupEventsOutput;
    use aws_sdk_cloudtrail::types::Event;
    let lookup = aws_smithy_mocks::mock!(aws_sdk_cloudtrail::Client::lookup_events).then_compute_output(move |req| {
        let key = req.lookup_attributes().first().map(|a| a.attribute_value().to_string()).unwrap_or_default();
        let events = creators
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(k, caller)| {
                let record = json!({
                    "eventID": format!("ct-{k}"), "eventName": "CreateAccessKey", "eventSource": "iam.amazonaws.com",
                    "eventTime": "2026-01-01T00:00:00Z", "recipientAccountId": keyguard_tests::ACCOUNT,
                    "userIdentity": {"type": "IAMUser", "userName": caller,
                                     "arn": format!("arn:aws:iam::{}:user/{caller}", keyguard_tests::ACCOUNT)},
                    "responseElements": {"accessKey": {"accessKeyId": k, "status": "Active"}}
                });
                Event::builder().event_name("CreateAccessKey").cloud_trail_event(record.to_string()).build()
            })
            .collect::<Vec<_>>();
        LookupEventsOutput::builder().set_events(Some(events)).build()
    });
    let client = aws_smithy_mocks::mock_client!(aws_sdk_cloudtrail, aws_smithy_mocks::RuleMode::MatchAny, &[&lookup]);
    keyguard_aws::SdkCloudTrail::new(client)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_creators_a_suspect_becomes_self_service_and_a_violation_names_its_creator() {
    let account = seed().await;
    let sdk = account.moto.sdk().await;
    let config = Config::from_lookup(|k| match k {
        "KEYGUARD_MODE" => Some("dry-run".into()),
        "KEYGUARD_SETUP_WINDOW" => Some(WINDOW.into()),
        _ => None,
    })
    .unwrap();
    let guard = keyguard_aws::sdk_guard(&config, &sdk).await.unwrap();
    let creators = cloudtrail_with(vec![
        (account.keys["kenji"].clone(), "kenji"),
        (account.keys["maria"].clone(), "jordan.admin"),
    ]);
    let outcome = guard
        .audit(
            keyguard_tests::ACCOUNT,
            &keyguard_aws::audit::Options::default(),
            Some(&creators),
            &keyguard_aws::act::Valve::new("test", 5),
            &|_, _| (),
        )
        .await
        .unwrap();
    let row = |key: &str| outcome.rows.iter().find(|r| r.access_key_id.as_deref() == Some(key)).unwrap();
    let kenji = row(&account.keys["kenji"]);
    assert_eq!(kenji.verdict, keyguard_core::Verdict::Compliant, "{kenji:?}");
    assert!(kenji.reason.contains("self-service"), "{kenji:?}");
    assert_eq!(kenji.creator.as_deref(), Some("arn:aws:iam::123456789012:user/kenji"));
    let maria = row(&account.keys["maria"]);
    assert_eq!(maria.verdict, keyguard_core::Verdict::Violation);
    assert!(maria.reason.contains("jordan.admin"), "{maria:?}");
    // A flagged key the history does not know keeps its verdict without a creator.
    let dual = row(&account.keys["dual-setup"]);
    assert_eq!((dual.verdict, dual.creator.as_deref()), (keyguard_core::Verdict::Violation, None));
}
