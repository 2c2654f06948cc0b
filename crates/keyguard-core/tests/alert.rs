//! Alert rendering (DESIGN.md §1 actions, §2 SNS limits): what an on-call engineer reads, what a subscriber
//! filters on, and that the secret access key never gets in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use keyguard_core::alert::{AlertKind, MAX_SUBJECT, RULE_ID};
use keyguard_core::{
    Action, Alert, AlertFacts, Exemptions, Incoming, KeyState, Policy, Principal, Reason, Trigger, UserState, Verdict,
    evaluate, parse_event,
};
use serde_json::Value;

const ACCOUNT: &str = "111122223333";
/// SNS's limit on a message, in bytes.
const MAX_MESSAGE: usize = 256 * 1024;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 11, 14, 2, 7).unwrap()
}

/// 64 characters, IAM's maximum for a user name, from IAM's own alphabet.
fn long_name() -> String {
    let name = "firstname.middlename.lastname+contractor=ext,team@example-org_01";
    assert_eq!(name.len(), 64);
    name.to_string()
}

fn admin() -> Principal {
    Principal {
        kind: "IAMUser".into(),
        arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/jordan.admin")),
        account_id: Some(ACCOUNT.into()),
        user_name: Some("jordan.admin".into()),
        issuer_arn: None,
        invoked_by: None,
    }
}

fn cloudformation() -> Principal {
    Principal {
        kind: "AssumedRole".into(),
        arn: Some(format!("arn:aws:sts::{ACCOUNT}:assumed-role/cfn-iam-stack-exec/AWSCloudFormation")),
        account_id: Some(ACCOUNT.into()),
        user_name: None,
        issuer_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/cfn-iam-stack-exec")),
        invoked_by: Some("cloudformation.amazonaws.com".into()),
    }
}

/// (a) A deactivated violation of a user with a 64-character name; the key came 68 s after the user.
fn deactivated_long_name() -> AlertFacts {
    let user = long_name();
    AlertFacts {
        account: ACCOUNT.into(),
        user_arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/{user}")),
        user_name: user,
        user_created: t0(),
        access_key_id: "AKIAYQ3EXAMPLELONG64".into(),
        key_created: t0() + TimeDelta::seconds(68),
        has_password: true,
        creator: Some(admin()),
        source_ip: Some("198.51.100.24".into()),
        user_agent: Some("aws-cli/2.24.10 md/command#iam.create-access-key".into()),
        event_id: "4b5c6d7e-8f9a-4b0c-9d1e-f2a3b4c5d6e7".into(),
        event_name: "CreateAccessKey".into(),
        verdict: Verdict::Violation,
        reason: "access key created 1m 08s after the user, during setup of a console user, by \
                 arn:aws:iam::111122223333:user/jordan.admin (not the user)"
            .into(),
        action: Action::Deactivated,
        note: None,
        kind: AlertKind::Finding,
        account_alias: Some("acme-prod".into()),
        exempt_tag: ("keyguard:exempt".into(), "true".into()),
    }
}

/// (b) A suspect in notify mode: a non-ASCII user name, a key made by CloudFormation (`invokedBy`), 1h 02m 03s
/// after the user.
fn notified_suspect_accented() -> AlertFacts {
    AlertFacts {
        account: ACCOUNT.into(),
        user_name: "rené.dupont".into(),
        user_arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/ops/rené.dupont")),
        user_created: t0(),
        access_key_id: "AKIAYQ3EXAMPLERENE01".into(),
        key_created: t0() + TimeDelta::seconds(3723),
        has_password: true,
        creator: Some(cloudformation()),
        source_ip: Some("cloudformation.amazonaws.com".into()),
        user_agent: Some("cloudformation.amazonaws.com".into()),
        event_id: "6f7a8b9c-0d1e-4f2a-b3c4-d5e6f7a8b9c0".into(),
        event_name: "CreateAccessKey".into(),
        verdict: Verdict::Suspect,
        reason: "access key created 1h 02m 03s after the user, after the console password, by an unknown creator: \
                 may be self-service"
            .into(),
        action: Action::Notified,
        note: Some("not deactivated: the key's creator is unknown".into()),
        kind: AlertKind::Finding,
        account_alias: None,
        exempt_tag: ("security:approved".into(), "yes".into()),
    }
}

/// Whether `subject` names `user`: the whole name, or (when the subject was cut, ending in `...`) a prefix of at
/// least 8 characters running up to the cut. A non-ASCII character of the name may stand as any one printable
/// ASCII character (the subject must be ASCII).
fn names_user(subject: &str, user: &str) -> bool {
    let want: Vec<char> = user.chars().collect();
    let have: Vec<char> = subject.chars().collect();
    let same = |w: char, h: char| if w.is_ascii() { w == h } else { (' '..='~').contains(&h) };
    let matches_at = |start: usize, len: usize| (0..len).all(|i| same(want[i], have[start + i]));
    let whole = want.len() <= have.len() && (0..=have.len() - want.len()).any(|s| matches_at(s, want.len()));
    let cut = subject.strip_suffix("...").is_some_and(|kept| {
        let end = kept.chars().count();
        (8..want.len()).any(|len| len <= end && matches_at(end - len, len))
    });
    whole || cut
}

#[test]
fn the_subject_helper_tells_names_apart() {
    assert!(names_user("KeyGuard x: key K of IAM user bob", "bob"));
    assert!(names_user("KeyGuard x: key K of IAM user ren?.dupont", "rené.dupont"));
    assert!(names_user("KeyGuard x: key K of IAM user firstname.mid...", "firstname.middlename"));
    assert!(!names_user("KeyGuard x: key K of IAM user bob", "alice"));
    assert!(!names_user("KeyGuard x: key K of IAM user renxx.dupont", "rené.dupont"));
    assert!(!names_user("KeyGuard x: key K of IAM user fi...", "firstname.middlename"));
    assert!(!names_user("KeyGuard x: key K of IAM user firstname.mid", "firstname.middlename"));
}

fn assert_subject(alert: &Alert, f: &AlertFacts) {
    let s = &alert.subject;
    assert!(!s.is_empty());
    assert!(s.len() <= MAX_SUBJECT, "{} characters: {s:?}", s.len());
    assert!(s.len() < 100, "SNS wants under 100: {s:?}");
    assert!(s.bytes().all(|b| (0x20..=0x7e).contains(&b)), "not printable ASCII: {s:?}");
    assert!(!s.contains('\n') && !s.contains('\r'), "{s:?}");
    assert!(s.contains(&f.access_key_id), "key id missing: {s:?}");
    assert!(names_user(s, &f.user_name), "user {:?} missing: {s:?}", f.user_name);
    // The subject tells what happened: a deactivation says so, anything else must not claim it, and names the
    // finding instead.
    if f.action == Action::Deactivated {
        assert!(s.contains("deactivated"), "{s:?}");
    } else {
        assert!(!s.contains("deactivated"), "{s:?}");
        assert!(s.contains(f.verdict.as_str()), "{s:?}");
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn assert_text(alert: &Alert, f: &AlertFacts, gap: &str) {
    let text = &alert.text;
    let mut wants = vec![
        f.account.clone(),
        f.user_name.clone(),
        f.access_key_id.clone(),
        stamp(f.user_created),
        stamp(f.key_created),
        gap.to_string(),
        f.event_id.clone(),
        f.event_name.clone(),
        f.action.as_str().to_string(),
        f.verdict.as_str().to_string(),
        f.reason.clone(),
        format!(
            "aws iam update-access-key --user-name {} --access-key-id {} --status Active",
            f.user_name, f.access_key_id
        ),
    ];
    // The re-enable advice exempts the user with the configured tag and value, not a hard-coded one.
    wants.push(format!(
        "aws iam tag-user --user-name {} --tags Key={},Value={}",
        f.user_name, f.exempt_tag.0, f.exempt_tag.1
    ));
    wants.extend(f.account_alias.clone());
    wants.extend(f.note.clone());
    wants.extend(f.user_arn.clone());
    wants.extend(f.creator.as_ref().and_then(|c| c.arn.clone()));
    wants.extend(f.source_ip.clone());
    wants.extend(f.user_agent.clone());
    for want in wants {
        assert!(text.contains(&want), "text lacks {want:?}:\n{text}");
    }
    let password_line = text
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("password:"))
        .unwrap_or_else(|| panic!("no password line:\n{text}"));
    let yes_no = if f.has_password { "yes" } else { "no" };
    assert_eq!(password_line.split_whitespace().last(), Some(yes_no), "{password_line:?}");
    // How the user gets a key of their own instead.
    let lower = text.to_lowercase();
    assert!(lower.contains("their own key") || lower.contains("own key"), "no self-service advice:\n{text}");
    assert!(lower.contains("aws iam create-access-key"), "no self-service command:\n{text}");
}

/// `sns_message()` for `MessageStructure=json`: people get the text, machines a JSON document.
fn assert_sns_message(alert: &Alert, f: &AlertFacts) {
    let message = alert.sns_message();
    assert!(message.len() < MAX_MESSAGE, "{} bytes", message.len());
    let v: Value = serde_json::from_str(&message).unwrap_or_else(|e| panic!("not JSON ({e}): {message}"));
    let obj = v.as_object().unwrap();
    assert_eq!(obj["default"].as_str(), Some(alert.text.as_str()), "SNS requires `default`");
    assert_eq!(obj["email"].as_str(), Some(alert.text.as_str()));
    for protocol in ["sqs", "lambda", "https"] {
        let inner = obj
            .get(protocol)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{protocol} is not a string: {message}"));
        let doc: Value = serde_json::from_str(inner).unwrap_or_else(|e| panic!("{protocol} is not JSON ({e})"));
        assert_eq!(doc["rule"], RULE_ID, "{protocol}");
        assert_eq!(doc["rule"], "CIS-1.11", "{protocol}");
        assert_eq!(doc["verdict"], f.verdict.as_str(), "{protocol}");
        assert_eq!(doc["action"], f.action.as_str(), "{protocol}");
        assert_eq!(doc["account"], f.account.as_str(), "{protocol}");
        assert_eq!(doc["access_key"]["id"], f.access_key_id.as_str(), "{protocol}");
        assert_eq!(doc["user"]["name"], f.user_name.as_str(), "{protocol}");
        assert_eq!(doc, alert.json, "{protocol}");
    }
}

fn assert_attributes(alert: &Alert, f: &AlertFacts) {
    let mut names: Vec<&str> = alert.attributes.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["account", "action", "kind", "rule", "user", "verdict"]);
    let get = |name: &str| alert.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(get("rule"), Some(RULE_ID));
    assert_eq!(get("verdict"), Some(f.verdict.as_str()));
    assert_eq!(get("action"), Some(f.action.as_str()));
    assert_eq!(get("account"), Some(f.account.as_str()));
    assert_eq!(get("user"), Some(f.user_name.as_str()));
    assert!(alert.attributes.iter().all(|(_, v)| !v.is_empty()), "{:?}", alert.attributes);
}

fn assert_alert(f: &AlertFacts, gap: &str) -> Alert {
    let alert = Alert::render(f);
    assert_subject(&alert, f);
    assert_text(&alert, f, gap);
    assert_sns_message(&alert, f);
    assert_attributes(&alert, f);
    alert
}

#[test]
fn deactivated_violation_with_a_64_character_user_name() {
    let f = deactivated_long_name();
    let alert = assert_alert(&f, "1m 08s");
    // The name is too long for the subject: it is cut, and marked so.
    assert!(!alert.subject.contains(&f.user_name), "{:?}", alert.subject);
    assert!(alert.subject.ends_with("..."), "{:?}", alert.subject);
    assert!(alert.text.contains("The key was set Inactive"), "{}", alert.text);
    assert_eq!(alert.json["access_key"]["seconds_after_user"], 68);
    assert_eq!(alert.json["user"]["has_password"], true);
    assert_eq!(alert.json["creator"]["arn"], format!("arn:aws:iam::{ACCOUNT}:user/jordan.admin"));
}

#[test]
fn password_line_says_no_without_a_password() {
    let f = AlertFacts { has_password: false, ..deactivated_long_name() };
    assert_alert(&f, "1m 08s");
}

#[test]
fn notified_suspect_with_non_ascii_user_and_invoked_by_creator() {
    let f = notified_suspect_accented();
    let alert = assert_alert(&f, "1h 02m 03s");
    // The subject could not carry the é; the text and the JSON carry the name unchanged.
    assert!(!alert.subject.contains('é'));
    assert!(alert.text.contains("rené.dupont"));
    assert!(!alert.text.contains("The key was set Inactive"), "{}", alert.text);
    assert_eq!(alert.json["user"]["name"], "rené.dupont");
    assert_eq!(alert.json["creator"]["invoked_by"], "cloudformation.amazonaws.com");
    assert_eq!(alert.json["creator"]["type"], "AssumedRole");
    assert_eq!(
        alert.json["creator"]["arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/cfn-iam-stack-exec/AWSCloudFormation")
    );
    // The JSON message survives a round trip with the non-ASCII name intact.
    let outer: Value = serde_json::from_str(&alert.sns_message()).unwrap();
    let inner: Value = serde_json::from_str(outer["sqs"].as_str().unwrap()).unwrap();
    assert_eq!(inner["user"]["name"], "rené.dupont");
}

#[test]
fn every_action_and_verdict_keeps_the_subject_within_sns_limits() {
    for action in [Action::Deactivated, Action::Notified, Action::DryRun, Action::None] {
        for verdict in [Verdict::Violation, Verdict::Suspect] {
            for base in [deactivated_long_name(), notified_suspect_accented()] {
                let f = AlertFacts { action, verdict, ..base };
                let alert = Alert::render(&f);
                assert_subject(&alert, &f);
                assert_attributes(&alert, &f);
                assert!(alert.sns_message().len() < MAX_MESSAGE);
            }
        }
    }
}

#[test]
fn the_secret_access_key_never_reaches_an_alert() {
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/events/ev-create-access-key-with-secret.json")).unwrap(),
    )
    .unwrap();
    let secret = event["detail"]["responseElements"]["accessKey"]["secretAccessKey"].as_str().unwrap().to_string();
    assert!(secret.len() >= 20, "the fixture is meant to carry a secret");
    let Incoming::Call(call) = parse_event(&event).unwrap() else { panic!("not a call") };
    let user = call.target_user.clone().unwrap();
    let key_id = call.access_key_id.clone().unwrap();

    // The real decision for this event: aisha.khan was created 68 s earlier and got her password at once.
    let state = UserState {
        name: user.clone(),
        user_id: Some("AIDAYQ3EXAMPLEA1SHA1".into()),
        arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/{user}")),
        path: "/".into(),
        created: call.event_time - TimeDelta::seconds(68),
        tags: vec![],
        password_created: Some(call.event_time - TimeDelta::seconds(67)),
        keys: vec![KeyState { id: key_id.clone(), created: call.event_time, active: true }],
    };
    let policy = Policy { window: TimeDelta::minutes(10), exemptions: Exemptions::none() };
    let trigger = Trigger::of(&call).unwrap();
    let findings = evaluate(&policy, &trigger, &state, &Default::default());
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].verdict(), Verdict::Violation);

    for action in [Action::Deactivated, Action::Notified, Action::DryRun] {
        let f = AlertFacts {
            account: call.account.clone().unwrap(),
            user_name: user.clone(),
            user_arn: state.arn.clone(),
            user_created: state.created,
            access_key_id: key_id.clone(),
            key_created: call.event_time,
            has_password: true,
            creator: Some(call.caller.clone()),
            source_ip: call.source_ip.clone(),
            user_agent: call.user_agent.clone(),
            event_id: call.event_id.clone(),
            event_name: call.event_name.clone(),
            verdict: findings[0].verdict(),
            reason: findings[0].reason.to_string(),
            action,
            note: None,
            kind: AlertKind::Finding,
            account_alias: None,
            exempt_tag: ("keyguard:exempt".into(), "true".into()),
        };
        let alert = assert_alert(&f, "1m 08s");
        let attributes = format!("{:?}", alert.attributes);
        for (what, rendered) in [
            ("subject", &alert.subject),
            ("text", &alert.text),
            ("sns_message", &alert.sns_message()),
            ("json", &alert.json.to_string()),
            ("attributes", &attributes),
        ] {
            assert!(!rendered.contains(&secret), "the secret leaked into the {what}");
        }
    }
}

/// The rule measures the gap in whole seconds (`rule.rs`: "times are compared in whole seconds"), and the alert
/// prints both creation times to the second; its own gap line subtracts the exact times instead, so with sub-second
/// fractions (moto adds them) one alert says "10m 00s" in its reason and "9m 59s" on its key line, and the JSON's
/// `seconds_after_user` disagrees with the verdict's gap.
#[test]
fn the_alerts_gap_is_the_rules_gap() {
    let user_created = t0() + TimeDelta::milliseconds(900);
    let key_created = t0() + TimeDelta::seconds(600);
    let state = UserState {
        name: "maria.silva".into(),
        user_id: None,
        arn: None,
        path: "/".into(),
        created: user_created,
        tags: vec![],
        password_created: Some(t0() + TimeDelta::seconds(1)),
        keys: vec![KeyState { id: "AKIAKEY1".into(), created: key_created, active: true }],
    };
    let policy = Policy { window: TimeDelta::minutes(10), exemptions: Exemptions::none() };
    let trigger = Trigger::AccessKeyCreated { user: state.name.clone(), key_id: "AKIAKEY1".into(), creator: admin() };
    let finding = evaluate(&policy, &trigger, &state, &Default::default()).remove(0);
    let Reason::SetupKeyByOther { gap, .. } = finding.reason.clone() else { panic!("{:?}", finding.reason) };
    assert_eq!(gap, TimeDelta::seconds(600));
    let f = AlertFacts {
        user_created,
        key_created,
        verdict: finding.verdict(),
        reason: finding.reason.to_string(),
        action: Action::Notified,
        ..deactivated_long_name()
    };
    let alert = Alert::render(&f);
    assert_eq!(alert.json["access_key"]["seconds_after_user"], 600, "{}", alert.json);
    assert!(alert.text.contains("(10m 00s after the user)"), "{}", alert.text);
}

#[test]
fn user_controlled_text_is_inert_in_the_subject_and_the_body() {
    let mut f = deactivated_long_name();
    f.user_name = "eve\nVerdict:        compliant".into();
    f.user_agent = Some("curl/8\r\nAction taken:   none <script>alert(1)</script> **bold**".into());
    let alert = Alert::render(&f);
    assert!(alert.subject.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{:?}", alert.subject);
    // No forged line: every line of the body that starts like a field is the real one.
    assert_eq!(alert.text.lines().filter(|l| l.starts_with("Verdict:")).count(), 1, "{}", alert.text);
    assert_eq!(alert.text.lines().filter(|l| l.starts_with("Action taken:")).count(), 1, "{}", alert.text);
    assert!(alert.text.contains("eve?Verdict:"), "{}", alert.text);
    // The JSON keeps the values exactly (JSON strings are escaped by construction).
    assert_eq!(alert.json["user"]["name"], "eve\nVerdict:        compliant");
}

#[test]
fn exempt_and_re_enabled_alerts_say_what_they_are() {
    let exempt = AlertFacts {
        kind: AlertKind::Exempt,
        verdict: Verdict::Exempt,
        action: Action::Notified,
        reason: "exempt: user has tag keyguard:exempt=true".into(),
        ..notified_suspect_accented()
    };
    let alert = Alert::render(&exempt);
    assert!(alert.subject.contains("exempt (info)"), "{}", alert.subject);
    assert!(alert.text.starts_with("For information"), "{}", alert.text);
    assert_eq!(alert.json["kind"], "exempt");
    let re_enabled = AlertFacts {
        kind: AlertKind::ReEnabled,
        verdict: Verdict::Violation,
        action: Action::Notified,
        reason: "access key that KeyGuard deactivated was set Active again by x".into(),
        ..deactivated_long_name()
    };
    let alert = Alert::render(&re_enabled);
    assert!(alert.subject.contains("re-enabled"), "{}", alert.subject);
    assert!(alert.text.contains("Re-enabled by:"), "{}", alert.text);
}

#[test]
fn the_valve_and_digest_alerts_stay_within_sns_limits() {
    let valve = Alert::valve_closed(&keyguard_core::ValveFacts {
        scope: "the sweep of 111122223333".into(),
        account: ACCOUNT.into(),
        cap: 5,
        withheld: 1,
    });
    assert!(valve.subject.len() < 100 && valve.subject.contains("safety valve closed"), "{}", valve.subject);
    assert!(valve.text.contains("KEYGUARD_MAX_DEACTIVATIONS"));
    let lines: Vec<keyguard_core::DigestLine> = (0..5000)
        .map(|i| keyguard_core::DigestLine {
            user: format!("user-{i}"),
            access_key_id: Some(format!("AKIA{i:016}")),
            verdict: if i % 2 == 0 { Verdict::Violation } else { Verdict::Suspect },
            reason: "access key created 5s after the user and before the console password: not self-service".into(),
            action: Action::None,
        })
        .collect();
    let digest = Alert::digest(&keyguard_core::DigestFacts {
        account: ACCOUNT.into(),
        account_alias: Some("acme".into()),
        generated: t0(),
        mode: "report only".into(),
        users: 10_000,
        findings: lines,
        failures: vec!["bob: throttled".into()],
    });
    assert!(digest.subject.len() < 100, "{}", digest.subject);
    assert!(digest.subject.contains("2500 violation(s), 2500 suspect(s), 1 failure(s)"), "{}", digest.subject);
    assert!(digest.text.contains("and 4950 more"), "the text lists 50 lines");
    assert!(digest.text.contains("bob: throttled"));
    assert!(digest.sns_message().len() < MAX_MESSAGE, "{} bytes", digest.sns_message().len());
    assert_eq!(digest.json["findings_total"], 5000);
}
