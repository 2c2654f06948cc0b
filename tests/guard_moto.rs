//! The Guard end to end through the real aws-sdk-iam/aws-sdk-sns clients against moto server: each scenario
//! creates real IAM objects, builds the CloudTrail events from the real responses, runs the Guard, and checks the
//! IAM end state and the alerts as an SQS subscriber of the topic receives them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use chrono::TimeDelta;
use keyguard_aws::{Consistency, GuardError, SdkGuard};
use keyguard_core::{Action, Config, EventReport, Verdict};
use keyguard_tests::{AlertSink, Caller, Iam, Moto, unique};
use serde_json::json;

fn admin() -> Caller {
    Caller::IamUser("jordan.admin".into())
}

struct Setup {
    iam: Iam,
    alerts: AlertSink,
    sdk: aws_config::SdkConfig,
}

async fn setup() -> Setup {
    let sdk = Moto::shared().sdk().await;
    Setup { iam: Iam::new(&sdk), alerts: AlertSink::new(&sdk).await.unwrap(), sdk }
}

impl Setup {
    async fn guard(&self, vars: &[(&str, &str)]) -> SdkGuard {
        let mut map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        map.entry("KEYGUARD_TOPIC_ARN".into()).or_insert_with(|| self.alerts.topic_arn.clone());
        let config = Config::from_lookup(|k| map.get(k).cloned()).unwrap();
        keyguard_aws::sdk_guard(&config, &self.sdk).await.unwrap()
    }

    /// A console user set up by an admin: user, password, and (optionally) a key, all within seconds.
    async fn console_user_with_key(&self, prefix: &str) -> (String, Vec<serde_json::Value>, String) {
        let name = unique(prefix);
        let e1 = self.iam.create_user(&admin(), &name, None, &[]).await.unwrap();
        let e2 = self.iam.create_password(&admin(), &name).await.unwrap();
        let key = self.iam.create_key(&admin(), &name).await.unwrap();
        (name, vec![e1, e2, key.event], key.id)
    }
}

fn only(report: &EventReport) -> (&str, Verdict, Action, &str) {
    assert_eq!(report.decisions.len(), 1, "{report:?}");
    let d = &report.decisions[0];
    (d.access_key_id.as_deref().unwrap_or(""), d.verdict, d.action, d.reason.as_str())
}

#[tokio::test]
async fn admin_key_for_new_console_user_notify_mode_alerts_and_changes_nothing() {
    let s = setup().await;
    let (user, events, key) = s.console_user_with_key("maria").await;
    let guard = s.guard(&[]).await;
    let report = guard.handle(&events[2]).await.unwrap();
    let (id, verdict, action, reason) = only(&report);
    assert_eq!((id, verdict, action), (key.as_str(), Verdict::Violation, Action::Notified), "{reason}");
    assert_eq!(report.user.as_deref(), Some(user.as_str()));
    assert_eq!(s.iam.key_status(&user, &key).await.unwrap(), "Active");

    let alerts = s.alerts.drain().await.unwrap();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert!(a.subject.contains(&key) && a.subject.contains("violation"), "{}", a.subject);
    assert_eq!(a.body["verdict"], "violation");
    assert_eq!(a.body["action"], "notified");
    assert_eq!(a.body["access_key"]["id"], key.as_str());
    assert_eq!(a.body["user"]["name"], user.as_str());
    assert_eq!(a.body["creator"]["arn"], admin().arn());
    assert_eq!(a.attributes["verdict"]["Value"], "violation");
    assert_eq!(a.attributes["user"]["Value"], user.as_str());
    assert_eq!(a.attributes["rule"]["Value"], "CIS-1.11");
}

#[tokio::test]
async fn admin_key_for_new_console_user_deactivate_mode_deactivates_exactly_that_key() {
    let s = setup().await;
    let (user, events, key) = s.console_user_with_key("maria").await;
    let guard = s.guard(&[("KEYGUARD_MODE", "deactivate")]).await;
    let report = guard.handle(&events[2]).await.unwrap();
    assert_eq!(only(&report).2, Action::Deactivated);
    assert_eq!(s.iam.key_status(&user, &key).await.unwrap(), "Inactive");
    let alerts = s.alerts.drain().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].body["action"], "deactivated");
    assert!(alerts[0].subject.contains("deactivated"), "{}", alerts[0].subject);
    assert!(alerts[0].body["re_enable"].as_str().unwrap().contains(&key));
}

#[tokio::test]
async fn the_same_event_twice_deactivates_once_without_error() {
    let s = setup().await;
    let (user, events, key) = s.console_user_with_key("dup").await;
    let guard = s.guard(&[("KEYGUARD_MODE", "deactivate")]).await;
    let first = guard.handle(&events[2]).await.unwrap();
    let second = guard.handle(&events[2]).await.unwrap();
    assert_eq!(only(&first).2, Action::Deactivated);
    let (_, verdict, action, reason) = only(&second);
    assert_eq!((verdict, action), (Verdict::Compliant, Action::None));
    assert!(reason.contains("already inactive"), "{reason}");
    assert_eq!(s.iam.key_status(&user, &key).await.unwrap(), "Inactive");
    assert_eq!(s.alerts.drain().await.unwrap().len(), 1, "one alert for one deactivation");
}

#[tokio::test]
async fn key_already_inactive_is_left_alone() {
    let s = setup().await;
    let (user, events, key) = s.console_user_with_key("inactive").await;
    s.iam
        .client
        .update_access_key()
        .user_name(&user)
        .access_key_id(&key)
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .unwrap();
    let report = s.guard(&[("KEYGUARD_MODE", "deactivate")]).await.handle(&events[2]).await.unwrap();
    let (_, verdict, action, reason) = only(&report);
    assert_eq!((verdict, action), (Verdict::Compliant, Action::None), "{reason}");
    assert!(s.alerts.drain().await.unwrap().is_empty());
}

#[tokio::test]
async fn password_added_after_the_key_is_caught_by_the_login_profile_event() {
    let s = setup().await;
    let name = unique("later-password");
    let _ = s.iam.create_user(&admin(), &name, None, &[]).await.unwrap();
    let key = s.iam.create_key(&admin(), &name).await.unwrap();
    let guard = s.guard(&[("KEYGUARD_MODE", "deactivate")]).await;
    // When the key event is handled the user has no password yet: compliant, for now.
    let first = guard.handle(&key.event).await.unwrap();
    let (_, verdict, _, reason) = only(&first);
    assert_eq!(verdict, Verdict::Compliant);
    assert!(reason.contains("no console password"), "{reason}");
    // Then the password arrives: the key created before it becomes a violation. The password's event does not
    // say who created the key, so the guard alerts and does not deactivate (it might be the user's own key under
    // an earlier password, or an exempt provisioner's).
    let password = s.iam.create_password(&admin(), &name).await.unwrap();
    let report = guard.handle(&password).await.unwrap();
    let (id, verdict, action, reason) = only(&report);
    assert_eq!((id, verdict, action), (key.id.as_str(), Verdict::Violation, Action::Notified), "{reason}");
    assert!(reason.contains("before the console password"), "{reason}");
    assert_eq!(s.iam.key_status(&name, &key.id).await.unwrap(), "Active");
    let alerts = s.alerts.drain().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].body["action"], "notified");
    assert_eq!(alerts[0].body["creator"]["arn"], serde_json::Value::Null, "the creator is unknown here");
}

#[tokio::test]
async fn keys_outside_the_window_are_compliant_and_stay_active() {
    // moto cannot back-date: a 1 s window and a real 2.5 s wait separate the setup key from the later one.
    let s = setup().await;
    let name = unique("two-keys");
    let _ = s.iam.create_user(&admin(), &name, None, &[]).await.unwrap();
    let _ = s.iam.create_password(&admin(), &name).await.unwrap();
    let setup_key = s.iam.create_key(&admin(), &name).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later_key = s.iam.create_key(&admin(), &name).await.unwrap();
    let guard = s.guard(&[("KEYGUARD_MODE", "deactivate"), ("KEYGUARD_SETUP_WINDOW", "1s")]).await;

    let later = guard.handle(&later_key.event).await.unwrap();
    let (_, verdict, action, reason) = only(&later);
    assert_eq!((verdict, action), (Verdict::Compliant, Action::None));
    assert!(reason.contains("outside the 1s setup window"), "{reason}");
    let report = guard.handle(&setup_key.event).await.unwrap();
    assert_eq!(only(&report).1, Verdict::Violation);

    assert_eq!(s.iam.key_status(&name, &setup_key.id).await.unwrap(), "Inactive");
    assert_eq!(s.iam.key_status(&name, &later_key.id).await.unwrap(), "Active", "the other key is never touched");
}

#[tokio::test]
async fn self_service_key_is_compliant() {
    let s = setup().await;
    let name = unique("kenji");
    let _ = s.iam.create_user(&admin(), &name, None, &[]).await.unwrap();
    let _ = s.iam.create_password(&admin(), &name).await.unwrap();
    let key = s.iam.create_key(&Caller::IamUser(name.clone()), &name).await.unwrap();
    assert!(key.event["detail"]["requestParameters"].is_null());
    let report = s.guard(&[("KEYGUARD_MODE", "deactivate")]).await.handle(&key.event).await.unwrap();
    let (_, verdict, _, reason) = only(&report);
    assert_eq!(verdict, Verdict::Compliant);
    assert!(reason.contains("self-service"), "{reason}");
    assert_eq!(s.iam.key_status(&name, &key.id).await.unwrap(), "Active");
    assert!(s.alerts.drain().await.unwrap().is_empty());
}

#[tokio::test]
async fn programmatic_service_account_is_compliant() {
    let s = setup().await;
    let name = unique("svc-etl");
    let created = s
        .iam
        .create_user(&Caller::Role("ci-iam-provisioner".into()), &name, Some("/service-accounts/"), &[])
        .await
        .unwrap();
    let key = s.iam.create_key(&Caller::Role("ci-iam-provisioner".into()), &name).await.unwrap();
    let guard = s.guard(&[("KEYGUARD_MODE", "deactivate")]).await;
    for event in [&created, &key.event] {
        let report = guard.handle(event).await.unwrap();
        let (_, verdict, _, reason) = only(&report);
        assert_eq!(verdict, Verdict::Compliant);
        assert!(reason.contains("no console password"), "{reason}");
    }
    assert_eq!(s.iam.key_status(&name, &key.id).await.unwrap(), "Active");
}

#[tokio::test]
async fn exemptions_by_tag_path_name_and_creator_are_reported_never_silent() {
    let s = setup().await;
    let provisioner = Caller::Role("hr-provisioner".into());
    // (user, who sets it up, path, tags, what the reason must say)
    type Case = (String, Caller, Option<&'static str>, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<Case> = vec![
        (unique("tagged"), admin(), None, vec![("keyguard:exempt", "true")], "tag keyguard:exempt=true"),
        (unique("pathed"), admin(), Some("/service/"), vec![], "path under /service/"),
        (unique("breakglass"), admin(), None, vec![], "name matches breakglass-*"),
        (unique("hired"), provisioner.clone(), None, vec![], "creator matches"),
    ];
    let guard = s
        .guard(&[
            ("KEYGUARD_MODE", "deactivate"),
            ("KEYGUARD_EXEMPT_PATHS", "/service"),
            ("KEYGUARD_EXEMPT_USERS", "breakglass-*"),
            ("KEYGUARD_EXEMPT_CREATORS", "arn:aws:sts::*:assumed-role/hr-provisioner/*"),
        ])
        .await;
    for (name, by, path, tags, why) in &cases {
        let _ = s.iam.create_user(by, name, *path, tags).await.unwrap();
        let _ = s.iam.create_password(by, name).await.unwrap();
        let key = s.iam.create_key(by, name).await.unwrap();
        let report = guard.handle(&key.event).await.unwrap();
        let (_, verdict, action, reason) = only(&report);
        // Exempt: never deactivated, but reported to the security team (an exemption must not hide a violation).
        assert_eq!((verdict, action), (Verdict::Exempt, Action::Notified), "{name}: {reason}");
        assert!(reason.contains(why), "{name}: {reason}");
        assert_eq!(s.iam.key_status(name, &key.id).await.unwrap(), "Active");
    }
    let alerts = s.alerts.drain().await.unwrap();
    assert_eq!(alerts.len(), cases.len(), "one informational alert per exempt would-be violation");
    assert!(alerts.iter().all(|a| a.body["kind"] == "exempt" && a.subject.contains("exempt (info)")), "{alerts:#?}");

    // The tag with any other value, `false` included, and a path that only starts alike, exempt nothing.
    for (name, path, tags) in [
        (unique("tag-false"), None, vec![("keyguard:exempt", "false")]),
        (unique("desk"), Some("/service-desk/"), vec![]),
    ] {
        let _ = s.iam.create_user(&admin(), &name, path, &tags).await.unwrap();
        let _ = s.iam.create_password(&admin(), &name).await.unwrap();
        let key = s.iam.create_key(&admin(), &name).await.unwrap();
        let report = guard.handle(&key.event).await.unwrap();
        let (_, verdict, action, reason) = only(&report);
        assert_eq!((verdict, action), (Verdict::Violation, Action::Deactivated), "{name}: {reason}");
        assert_eq!(s.iam.key_status(&name, &key.id).await.unwrap(), "Inactive");
    }
}

#[tokio::test]
async fn failed_create_access_key_is_ignored() {
    let s = setup().await;
    let mut event = keyguard_tests::event(
        "CreateAccessKey",
        &Caller::IamUser("dev.intern".into()),
        chrono::Utc::now(),
        serde_json::Value::Null,
        serde_json::Value::Null,
    );
    event["detail"]["errorCode"] = json!("AccessDenied");
    let report = s.guard(&[("KEYGUARD_MODE", "deactivate")]).await.handle(&event).await.unwrap();
    let (_, verdict, action, reason) = only(&report);
    assert_eq!((verdict, action), (Verdict::Ignored, Action::None));
    assert!(reason.contains("AccessDenied"), "{reason}");
}

#[tokio::test]
async fn user_deleted_before_the_event_is_an_outcome_once_iam_has_caught_up() {
    let s = setup().await;
    let (user, events, _) = s.console_user_with_key("gone").await;
    s.iam.delete_user(&user).await.unwrap();
    // Young event: IAM might still be lagging, so the guard asks Lambda to retry.
    let young = s.guard(&[("KEYGUARD_MODE", "deactivate")]).await.with_consistency(Consistency {
        reads: 2,
        first_delay: Duration::from_millis(50),
        horizon: TimeDelta::seconds(60),
    });
    let err = young.handle(&events[2]).await.unwrap_err();
    assert!(matches!(err, GuardError::NotYetConsistent { .. }), "{err}");
    assert!(err.retryable());
    // Once the event is older than the horizon (as on Lambda's retry a minute later), the user is gone.
    let later = s.guard(&[("KEYGUARD_MODE", "deactivate")]).await.with_consistency(Consistency {
        reads: 2,
        first_delay: Duration::from_millis(50),
        horizon: TimeDelta::zero(),
    });
    for event in &events {
        let report = later.handle(event).await.unwrap();
        let (_, verdict, action, reason) = only(&report);
        assert_eq!((verdict, action), (Verdict::Compliant, Action::None));
        assert!(reason.contains("user no longer exists"), "{reason}");
    }
    assert!(s.alerts.drain().await.unwrap().is_empty());
}

#[tokio::test]
async fn create_user_event_of_a_recreated_namesake_is_about_a_gone_user() {
    let s = setup().await;
    let name = unique("recreated");
    let old = s.iam.create_user(&admin(), &name, None, &[]).await.unwrap();
    s.iam.delete_user(&name).await.unwrap();
    let _ = s.iam.create_user(&admin(), &name, None, &[]).await.unwrap();
    let report = s.guard(&[]).await.handle(&old).await.unwrap();
    assert!(only(&report).3.contains("user no longer exists"));
}

#[tokio::test]
async fn dry_run_decides_and_changes_nothing() {
    let s = setup().await;
    let (user, events, key) = s.console_user_with_key("dry").await;
    let guard = s.guard(&[("KEYGUARD_MODE", "dry-run")]).await;
    for event in &events {
        guard.handle(event).await.unwrap();
    }
    let report = guard.handle(&events[2]).await.unwrap();
    assert_eq!((only(&report).1, only(&report).2), (Verdict::Violation, Action::DryRun));
    assert_eq!(s.iam.key_status(&user, &key).await.unwrap(), "Active");
    assert!(s.alerts.drain().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_exempt_provisioners_key_is_not_deactivated_by_a_later_password_event() {
    // The exempt role creates the user and a key, then the password: the key's own event says exempt; the
    // password's event cannot tell who created the key, so it alerts but never deactivates.
    let s = setup().await;
    let provisioner = Caller::Role("hr-provisioner".into());
    let name = unique("hired");
    s.iam.create_user(&provisioner, &name, None, &[]).await.unwrap();
    let key = s.iam.create_key(&provisioner, &name).await.unwrap();
    let password = s.iam.create_password(&provisioner, &name).await.unwrap();
    let guard = s
        .guard(&[("KEYGUARD_MODE", "deactivate"), ("KEYGUARD_EXEMPT_CREATORS", "arn:aws:iam::*:role/hr-provisioner")])
        .await;
    let own = guard.handle(&key.event).await.unwrap();
    assert_eq!(only(&own).1, Verdict::Exempt, "matched by the role's ARN: {own:?}");
    let later = guard.handle(&password).await.unwrap();
    assert_eq!(only(&later).2, Action::Notified, "{later:?}");
    assert_eq!(s.iam.key_status(&name, &key.id).await.unwrap(), "Active");
}
