//! The parser on every reference event (`tests/fixtures/samples`, copied from the project's reference events) and every project fixture (`tests/fixtures`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use keyguard_core::{Incoming, Trigger, parse_event};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_reference_sample_parses() {
    let dir = repo().join("tests/fixtures/samples");
    let files = json_files(&dir);
    assert!(files.len() >= 9, "expected the reference samples in {}", dir.display());
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let Incoming::Call(call) = parse_event(&read(&f)).unwrap_or_else(|e| panic!("{name}: {e}")) else {
            panic!("{name}: not a call");
        };
        assert!(!call.event_id.is_empty(), "{name}");
        assert_eq!(call.account.as_deref(), Some("111122223333"), "{name}");
        let trigger = Trigger::of(&call);
        match name.as_str() {
            "create-access-key-admin-for-other-user.json" => {
                let Ok(Trigger::AccessKeyCreated { user, key_id, creator }) = trigger else { panic!("{name}") };
                assert_eq!((user.as_str(), key_id.as_str()), ("maria.silva", "AKIAYQ3EXAMPLEM4R1A1"));
                assert!(!creator.is_iam_user("maria.silva"));
            }
            "create-access-key-self-service.json" => {
                let Ok(Trigger::AccessKeyCreated { user, creator, .. }) = trigger else { panic!("{name}") };
                assert!(creator.is_iam_user(&user));
            }
            "create-access-key-assumed-role-automation.json" => {
                let Ok(Trigger::AccessKeyCreated { creator, .. }) = trigger else { panic!("{name}") };
                assert_eq!(creator.issuer_arn.as_deref(), Some("arn:aws:iam::111122223333:role/ci-iam-provisioner"));
            }
            "create-access-key-failed-access-denied.json" => {
                assert_eq!(
                    trigger.unwrap_err().to_owned(),
                    keyguard_core::rule::IgnoreReason::FailedCall { code: "AccessDenied".into() }
                );
            }
            "create-login-profile.json" => assert!(matches!(trigger, Ok(Trigger::LoginProfileCreated { .. }))),
            "create-user-console.json" | "create-user-cli-tags.json" => {
                assert!(matches!(trigger, Ok(Trigger::UserCreated { user_id: Some(_), .. })), "{name}")
            }
            "delete-user.json" | "update-access-key.json" => assert!(trigger.is_err(), "{name}"),
            other => panic!("new sample {other}: add it here"),
        }
    }
}

#[test]
fn every_project_fixture_parses_as_expected() {
    let dir = repo().join("tests/fixtures/events");
    let expected = read(&dir.join("expected.json"));
    let expected = expected.as_object().unwrap();
    let files: Vec<_> = json_files(&dir).into_iter().filter(|p| !p.ends_with("expected.json")).collect();
    assert_eq!(files.len(), expected.len(), "every fixture has an expectation");
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let want = &expected[&name];
        let got = parse_event(&read(&f)).unwrap_or_else(|e| panic!("{name}: {e}"));
        match got {
            Incoming::Scheduled { id, .. } => {
                assert_eq!(want["kind"], "scheduled", "{name}");
                assert_eq!(want["event_id"], id.as_str(), "{name}");
            }
            Incoming::Other { .. } => assert_eq!(want["kind"], "other", "{name}"),
            Incoming::Call(call) if !call.is_iam() => assert_eq!(want["kind"], "other", "{name}"),
            Incoming::Call(call) => {
                assert_eq!(want["kind"], "call", "{name}");
                assert_eq!(want["event_id"], call.event_id.as_str(), "{name}");
                assert_eq!(want["event_name"], call.event_name.as_str(), "{name}");
                assert_eq!(want["caller_type"], call.caller.kind.as_str(), "{name}");
                assert_eq!(want["target_user"].as_str(), call.target_user.as_deref(), "{name}");
                assert_eq!(want["access_key_id"].as_str(), call.access_key_id.as_deref(), "{name}");
                assert_eq!(want["error_code"].as_str(), call.error_code.as_deref(), "{name}");
                let self_service = call.target_user.as_deref().is_some_and(|u| call.caller.is_iam_user(u));
                assert_eq!(want["self_service"], self_service, "{name}");
                assert_eq!(want["handled"], Trigger::of(&call).is_ok(), "{name}");
            }
        }
    }
}

#[test]
fn json_lines_fixture_holds_one_user_setup() {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/events/ev-eventbridge-lines.jsonl")).unwrap();
    let names: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match parse_event(&serde_json::from_str(l).unwrap()).unwrap() {
            Incoming::Call(c) => {
                assert_eq!(c.target_user.as_deref(), Some("tomas.novak"));
                c.event_name
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["CreateUser", "CreateLoginProfile", "CreateAccessKey"]);
}

#[test]
fn invalid_inputs_are_clear_errors() {
    let dir = repo().join("tests/fixtures/invalid");
    for (file, id) in [
        ("array.json", None),
        ("empty-object.json", None),
        ("no-detail.json", Some("0bad0bad-1111-2222-3333-444455556666")),
        ("detail-not-object.json", Some("0bad0bad-2222-3333-4444-555566667777")),
    ] {
        let err = parse_event(&read(&dir.join(file))).unwrap_err();
        assert_eq!(err.event_id.as_deref(), id, "{file}: {err}");
    }
    let bad_time = read(&dir.join("bad-time.json"));
    let err = parse_event(&bad_time).unwrap_err();
    assert!(err.event_id.as_deref().unwrap().starts_with("0bad0bad"), "{err}");
    assert!(err.to_string().contains("eventTime"), "{err}");
    for file in ["not-json.txt", "truncated.json"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{file} is meant to be broken JSON");
    }
}

#[test]
fn the_secret_never_enters_the_model() {
    let v = read(&repo().join("tests/fixtures/events/ev-create-access-key-with-secret.json"));
    let secret = v["detail"]["responseElements"]["accessKey"]["secretAccessKey"].as_str().unwrap().to_string();
    let Incoming::Call(call) = parse_event(&v).unwrap() else { panic!() };
    assert!(!format!("{call:?}").contains(&secret));
}
