//! The safety valve (issue 8 §3): at most `KEYGUARD_MAX_DEACTIVATIONS` deactivations per event, per sweep and per
//! `keyguard audit --apply` run. Beyond the cap nothing more is deactivated, every further violation is still
//! alerted, and exactly one alert says the valve closed and why. In the guard and the sweep over the twin, in the CLI
//! on moto through the built binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::TimeDelta;
use keyguard_core::{Action, Alert, Verdict};
use keyguard_tests::twin::{guard, role, twin};
use keyguard_tests::{AlertSink, Caller, Iam, Moto, aws_env, built_binary, repo};
use serde_json::{Value, json};

/// Checks the one alert that says the valve closed: its scope, its cap, and why.
fn the_valve_alert<'a>(alerts: impl IntoIterator<Item = &'a Value>, cap: u64, scope: &str) {
    let valve: Vec<&Value> = alerts.into_iter().filter(|a| a["kind"] == "safety-valve").collect();
    assert_eq!(valve.len(), 1, "exactly one alert says the valve closed: {valve:#?}");
    assert_eq!(valve[0]["max_deactivations"], cap);
    assert!(valve[0]["scope"].as_str().unwrap().contains(scope), "{}", valve[0]);
}

fn valve_text(alerts: &[Alert]) -> &str {
    &alerts.iter().find(|a| a.json["kind"] == "safety-valve").unwrap().text
}

#[tokio::test]
async fn in_the_guard_one_event_deactivates_at_most_the_cap() {
    // One password event finds two violating keys whose creator the ledger knows (Terraform's order: both keys'
    // own events came first, before the password).
    let t = twin();
    let terraform = role("terraform");
    let g = guard(
        &t,
        &[("KEYGUARD_MODE", "deactivate"), ("KEYGUARD_LEDGER_TABLE", "ledger"), ("KEYGUARD_MAX_DEACTIVATIONS", "1")],
    );
    t.create_user(&terraform, "maria.silva", None, &[]).unwrap();
    let k1 = t.create_access_key(&terraform, "maria.silva").unwrap();
    let k2 = t.create_access_key(&terraform, "maria.silva").unwrap();
    for key in [&k1, &k2] {
        let report = g.handle(&key.event).await.unwrap();
        assert_eq!(report.decisions[0].verdict, Verdict::Compliant, "no password yet: {report:?}");
    }
    t.advance(TimeDelta::seconds(30));
    let password = t.create_login_profile(&terraform, "maria.silva").unwrap();
    let report = g.handle(&password).await.unwrap();

    let actions: Vec<(Verdict, Action)> = report.decisions.iter().map(|d| (d.verdict, d.action)).collect();
    assert_eq!(actions, [(Verdict::Violation, Action::Deactivated), (Verdict::Violation, Action::Notified)]);
    let held = &report.decisions[1];
    assert!(held.note.as_deref().unwrap().contains("safety valve closed"), "{held:?}");
    assert_eq!(t.deactivations(), [("maria.silva".to_string(), k1.id.clone())], "nothing beyond the cap");
    assert!(t.key("maria.silva", &k2.id).unwrap().active);

    let alerts = t.alerts();
    assert_eq!(alerts.len(), 3, "the deactivation, the key left active, the valve: {alerts:#?}");
    let about = |key: &str, action: &str| {
        alerts.iter().filter(|a| a.json["access_key"]["id"] == key && a.json["action"] == action).count()
    };
    assert_eq!((about(&k1.id, "deactivated"), about(&k2.id, "notified")), (1, 1));
    let k2_alert = alerts.iter().find(|a| a.json["access_key"]["id"] == k2.id.as_str()).unwrap();
    assert!(k2_alert.json["note"].as_str().unwrap().contains("safety valve closed"), "{k2_alert:?}");
    the_valve_alert(alerts.iter().map(|a| &a.json), 1, password["detail"]["eventID"].as_str().unwrap());
    let text = valve_text(&alerts);
    assert!(text.contains("Why:") && text.contains("logic error"), "says why: {text}");
    assert!(text.contains("KEYGUARD_MAX_DEACTIVATIONS"), "says what to do: {text}");
}

#[tokio::test]
async fn in_the_sweep_five_violations_with_a_cap_of_two() {
    // Five users set up in Terraform's order whose password events were lost: only the sweep finds them. The ledger
    // knows each key's creator (from the keys' own events), so `KEYGUARD_RECONCILE=apply` may deactivate them.
    let t = twin();
    let terraform = role("terraform");
    let g = guard(
        &t,
        &[
            ("KEYGUARD_MODE", "deactivate"),
            ("KEYGUARD_LEDGER_TABLE", "ledger"),
            ("KEYGUARD_RECONCILE", "apply"),
            ("KEYGUARD_MAX_DEACTIVATIONS", "2"),
        ],
    );
    let mut keys = Vec::new();
    for i in 0..5 {
        let name = format!("hire-{i}");
        t.create_user(&terraform, &name, None, &[]).unwrap();
        let key = t.create_access_key(&terraform, &name).unwrap();
        g.handle(&key.event).await.unwrap();
        t.advance(TimeDelta::seconds(20));
        t.create_login_profile(&terraform, &name).unwrap(); // its event is lost
        keys.push((name, key.id));
    }
    t.advance(TimeDelta::hours(20));
    let scheduled = json!({"version": "0", "id": "sweep-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": keyguard_tests::ACCOUNT, "time": "2025-03-12T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}});
    let report = g.handle(&scheduled).await.unwrap();
    assert_eq!(report.decisions.iter().filter(|d| d.verdict == Verdict::Violation).count(), 5, "{report:?}");

    assert_eq!(t.deactivations().len(), 2, "nothing beyond the cap: {:?}", t.deactivations());
    let inactive = keys.iter().filter(|(u, k)| !t.key(u, k).unwrap().active).count();
    assert_eq!(inactive, 2);

    let alerts = t.alerts();
    let deactivated: Vec<&Alert> = alerts.iter().filter(|a| a.json["action"] == "deactivated").collect();
    assert_eq!(deactivated.len(), 2, "each deactivation alerted key by key: {alerts:#?}");
    // Every violation is alerted: the three left active in the day's digest, with why they were left.
    let digest: Vec<&Alert> = alerts.iter().filter(|a| a.json["kind"] == "digest").collect();
    assert_eq!(digest.len(), 1, "{alerts:#?}");
    let findings = digest[0].json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 5, "{findings:#?}");
    let held: Vec<&Value> =
        findings.iter().filter(|f| f["reason"].as_str().unwrap().contains("safety valve closed")).collect();
    assert_eq!(held.len(), 3, "{findings:#?}");
    for (user, key) in &keys {
        assert!(findings.iter().any(|f| f["user"] == user.as_str() && f["access_key_id"] == key.as_str()));
    }
    the_valve_alert(alerts.iter().map(|a| &a.json), 2, "sweep");
    assert!(valve_text(&alerts).contains("Why:"));
    assert_eq!(alerts.len(), 4, "2 deactivations, the valve, the digest: {alerts:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn in_the_cli_audit_apply_deactivates_at_most_the_cap() {
    let moto = Moto::start().unwrap();
    let sdk = moto.sdk().await;
    let iam = Iam::new(&sdk);
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let admin = Caller::IamUser("jordan.admin".into());
    let mut keys = Vec::new();
    for i in 0..4 {
        let name = format!("console-{i}");
        keyguard_tests::align_to_second().await;
        iam.create_user(&admin, &name, None, &[]).await.unwrap();
        iam.create_password(&admin, &name).await.unwrap();
        keys.push((name.clone(), iam.create_key(&admin, &name).await.unwrap().id));
    }
    let out = std::process::Command::new(built_binary("keyguard-cli", "keyguard"))
        .args(["audit", "--apply", "--format", "json"])
        .env_clear()
        .envs(aws_env(&moto.endpoint))
        .env("KEYGUARD_MODE", "deactivate")
        .env("KEYGUARD_TOPIC_ARN", &alerts.topic_arn)
        .env("KEYGUARD_MAX_DEACTIVATIONS", "2")
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "violations found: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let violations: Vec<&Value> = rows.iter().filter(|r| r["verdict"] == "violation").collect();
    assert_eq!(violations.len(), 4, "{rows:#?}");
    assert_eq!(violations.iter().filter(|r| r["action"] == "deactivated").count(), 2, "{rows:#?}");
    let held: Vec<&&Value> = violations.iter().filter(|r| r["action"] == "notified").collect();
    assert_eq!(held.len(), 2, "{rows:#?}");
    assert!(held.iter().all(|r| r["reason"].as_str().unwrap().contains("safety valve closed")), "{held:#?}");

    let mut inactive = 0;
    for (user, key) in &keys {
        if iam.key_status(user, key).await.unwrap() == "Inactive" {
            inactive += 1;
        }
    }
    assert_eq!(inactive, 2, "nothing beyond the cap");

    let received = alerts.drain().await.unwrap();
    let bodies: Vec<&Value> = received.iter().map(|a| &a.body).collect();
    assert_eq!(bodies.iter().filter(|b| b["action"] == "deactivated").count(), 2, "{bodies:#?}");
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b["verdict"] == "violation" && b["action"] == "notified" && b["kind"] == "finding")
            .count(),
        2,
        "every further violation alerted: {bodies:#?}"
    );
    the_valve_alert(bodies.iter().copied(), 2, "keyguard audit --apply");
    let valve = received.iter().find(|a| a.body["kind"] == "safety-valve").unwrap();
    assert!(valve.subject.contains("safety valve closed"), "{}", valve.subject);
    assert_eq!(received.len(), 5, "{received:#?}");
}
