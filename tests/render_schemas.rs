//! KeyGuard's machine outputs against the schemas their consumers use:
//! - `keyguard audit --format ocsf` (against moto) and `keyguard replay --format ocsf` (on the fixtures), through
//!   the real binary, validated against OCSF 1.6.0's Compliance Finding class (`ocsf-json-schema`'s packaged
//!   OCSF export, strict JSON Schema, checked by `jsonschema`: tools/validate_json.py);
//! - chat notifications against the documented custom notification format
//!   (tests/fixtures/schemas/chat-custom-notification.schema.json).
//!
//! Each validation also feeds the validator a broken document, so a validator that accepts anything fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use chrono::{TimeZone, Utc};
use keyguard_core::{Action, AlertFacts, AuditFailure, Principal, Verdict, chat, ocsf};
use keyguard_tests::{Caller, Iam, Moto, aws_env, repo, run_keyguard};
use serde_json::Value;

const OCSF: [&str; 6] = ["--ocsf", "1.6.0", "--class", "compliance_finding", "--profile", "cloud"];

fn python() -> PathBuf {
    std::env::var("KEYGUARD_VENV").map(PathBuf::from).unwrap_or_else(|_| repo().join(".venv")).join("bin/python")
}

/// Runs tools/validate_json.py on JSON lines; returns whether all were valid, and its report.
fn validate(args: &[&str], lines: &[Value]) -> (bool, String) {
    let mut child = Command::new(python())
        .arg(repo().join("tools/validate_json.py"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python (make venv)");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// The validator must refuse what the schema forbids: an unknown attribute and a missing required one.
fn broken(mut doc: Value, unknown: &str, required: &[&str]) -> Value {
    doc.as_object_mut().unwrap().insert(unknown.into(), Value::Bool(true));
    let (parent, leaf) = required.split_at(required.len() - 1);
    let mut at = &mut doc;
    for p in parent {
        at = &mut at[*p];
    }
    at.as_object_mut().unwrap().remove(leaf[0]);
    doc
}

#[test]
fn replay_ocsf_lines_are_valid_ocsf_compliance_findings() {
    let out = run_keyguard(&["replay", "--format", "ocsf", "tests/fixtures/samples"], &[]);
    let lines = json_lines(&out.stdout);
    assert!(!lines.is_empty(), "replay found setup keys: {}", String::from_utf8_lossy(&out.stderr));
    let rows = json_lines(&run_keyguard(&["replay", "--format", "json", "tests/fixtures/samples"], &[]).stdout);
    assert_eq!(lines.len(), rows.len(), "one finding per row");
    assert!(lines.iter().any(|l| l["compliance"]["status_id"] == 3), "a violation (Fail) among them");
    let (ok, report) = validate(&OCSF, &lines);
    assert!(ok, "{report}");

    let (ok, report) = validate(&OCSF, &[broken(lines[0].clone(), "bogus", &["finding_info", "uid"])]);
    assert!(!ok && report.contains("bogus") && report.contains("'uid' is a required property"), "{report}");
}

#[tokio::test]
async fn audit_ocsf_lines_are_valid_ocsf_compliance_findings() {
    let moto = Moto::start().unwrap();
    let iam = Iam::new(&moto.sdk().await);
    let admin = Caller::IamUser("jordan.admin".into());
    iam.create_user(&admin, "maria.silva", None, &[]).await.unwrap();
    iam.create_password(&admin, "maria.silva").await.unwrap();
    iam.create_key(&admin, "maria.silva").await.unwrap();
    iam.create_user(&admin, "svc-etl", Some("/service/"), &[]).await.unwrap();
    iam.create_key(&admin, "svc-etl").await.unwrap();
    iam.create_user(&admin, "no.keys", None, &[]).await.unwrap();

    let out = run_keyguard(&["audit", "--format", "ocsf"], &aws_env(&moto.endpoint));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 3, "one per key or keyless user: {}", String::from_utf8_lossy(&out.stderr));
    let users: Vec<&str> = lines.iter().filter_map(|l| l["resources"].as_array()?.last()?["name"].as_str()).collect();
    for user in ["maria.silva", "svc-etl", "no.keys"] {
        assert!(users.contains(&user), "{user} in {users:?}");
    }
    let (ok, report) = validate(&OCSF, &lines);
    assert!(ok, "{report}");
}

#[test]
fn an_account_or_user_not_audited_is_a_valid_ocsf_compliance_finding() {
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 3, 0, 0).single().unwrap();
    let account = AuditFailure {
        account: "444455556666".into(),
        user: None,
        error: "sts:AssumeRole failed (AccessDenied): account 444455556666: cannot assume the member role".into(),
    };
    let user = AuditFailure { user: Some("maria.silva".into()), ..account.clone() };
    let lines = [ocsf::not_assessed(&account, now), ocsf::not_assessed(&user, now)];
    let (ok, report) = validate(&OCSF, &lines);
    assert!(ok, "{report}");
    let (ok, report) = validate(&OCSF, &[broken(lines[0].clone(), "bogus", &["compliance", "status_id"])]);
    assert!(!ok && report.contains("bogus"), "{report}");
}

fn facts(verdict: Verdict, action: Action) -> AlertFacts {
    let at = |m, s| Utc.with_ymd_and_hms(2025, 3, 11, 14, m, s).single().unwrap();
    AlertFacts {
        account: "111122223333".into(),
        user_name: "maria.silva".into(),
        user_arn: Some("arn:aws:iam::111122223333:user/maria.silva".into()),
        user_created: at(2, 7),
        access_key_id: "AKIAYQ3EXAMPLEMARIA1".into(),
        key_created: at(3, 15),
        has_password: true,
        creator: Some(Principal {
            kind: "AssumedRole".into(),
            arn: Some("arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_4f7c/priya.nair@example.com".into()),
            account_id: Some("111122223333".into()),
            user_name: None,
            issuer_arn: None,
            invoked_by: None,
        }),
        source_ip: Some("203.0.113.7".into()),
        user_agent: Some("aws-cli/2.15.30 Python/3.11.8 Linux/6.1 exe/x86_64".into()),
        event_id: "6f1c0f8e-0d2b-4c1e-9a55-3f1f0f1e2d3c".into(),
        event_name: "CreateAccessKey".into(),
        verdict,
        reason: "access key created 1m 08s after the user, during setup of a console user, by an admin".into(),
        action,
        note: None,
        kind: keyguard_core::AlertKind::Finding,
        account_alias: None,
        exempt_tag: ("keyguard:exempt".into(), "true".into()),
    }
}

#[test]
fn chat_notifications_match_the_documented_schema() {
    let schema = "tests/fixtures/schemas/chat-custom-notification.schema.json";
    let mut hostile = facts(Verdict::Violation, Action::Notified);
    hostile.user_agent = Some("*x* <!channel> [l](https://e.example) `t`\n# h".repeat(200));
    hostile.creator = None;
    hostile.source_ip = None;
    hostile.user_arn = None;
    let payloads: Vec<Value> = [
        facts(Verdict::Violation, Action::Notified),
        facts(Verdict::Suspect, Action::Notified),
        facts(Verdict::Violation, Action::Deactivated),
        facts(Verdict::Violation, Action::DryRun),
        hostile,
    ]
    .iter()
    .map(chat::notification)
    .collect();
    let (ok, report) = validate(&["--schema", schema], &payloads);
    assert!(ok, "{report}");
    assert!(report.contains("5 passed, 0 failed"), "{report}");

    let (ok, report) =
        validate(&["--schema", schema], &[broken(payloads[0].clone(), "extra", &["content", "description"])]);
    assert!(!ok && report.contains("'description' is a required property"), "{report}");
    let mut wrong_version = payloads[0].clone();
    wrong_version["version"] = Value::from("2.0");
    assert!(!validate(&["--schema", schema], &[wrong_version]).0);
}
