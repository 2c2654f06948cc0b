//! Replay timelines: order, duplicates, re-created users, the creator known.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::TimeDelta;
use keyguard_core::{Exemptions, IamCall, Policy, Timeline, Verdict, parse_record};
use serde_json::{Value, json};

fn policy() -> Policy {
    Policy { window: TimeDelta::minutes(10), exemptions: Exemptions::none() }
}

fn record(id: &str, name: &str, time: &str, caller: &str, user: &str, key: Option<&str>) -> IamCall {
    let mut response = Value::Null;
    if name == "CreateAccessKey" {
        response = json!({"accessKey": {"userName": user, "accessKeyId": key.unwrap(), "status": "Active"}});
    }
    if name == "CreateUser" {
        response = json!({"user": {"userName": user, "userId": format!("AIDA{id}"), "path": "/"}});
    }
    let request = if caller == user && name == "CreateAccessKey" { Value::Null } else { json!({"userName": user}) };
    parse_record(
        &json!({
            "eventID": id, "eventName": name, "eventSource": "iam.amazonaws.com", "eventTime": time,
            "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "userName": caller, "arn": format!("arn:aws:iam::111122223333:user/{caller}")},
            "requestParameters": request, "responseElements": response
        }),
        None,
        None,
    )
    .unwrap()
}

fn maria_setup() -> Vec<IamCall> {
    vec![
        record("1", "CreateUser", "2025-03-11T14:02:07Z", "admin", "maria", None),
        record("2", "CreateLoginProfile", "2025-03-11T14:02:08Z", "admin", "maria", None),
        record("3", "CreateAccessKey", "2025-03-11T14:03:15Z", "admin", "maria", Some("AKIA1")),
        // maria's own second key, later in the window: self-service.
        record("4", "CreateAccessKey", "2025-03-11T14:08:00Z", "maria", "maria", Some("AKIA2")),
    ]
}

fn verdicts(rows: &[keyguard_core::AuditRow]) -> Vec<(String, String, Verdict)> {
    rows.iter().map(|r| (r.user.clone(), r.access_key_id.clone().unwrap_or_default(), r.verdict)).collect()
}

#[test]
fn setup_keys_are_judged_with_their_creator() {
    let mut t = Timeline::new();
    for c in maria_setup() {
        assert!(t.add(&c));
    }
    let rows = t.rows(&policy());
    assert_eq!(
        verdicts(&rows),
        vec![
            ("maria".into(), "AKIA1".into(), Verdict::Violation),
            ("maria".into(), "AKIA2".into(), Verdict::Compliant)
        ]
    );
    assert_eq!(rows[0].creator.as_deref(), Some("arn:aws:iam::111122223333:user/admin"));
    assert_eq!(rows[0].gap_seconds, Some(68));
}

#[test]
fn order_and_duplicates_do_not_matter() {
    let mut forward = Timeline::new();
    maria_setup().iter().for_each(|c| {
        forward.add(c);
    });
    let mut shuffled = Timeline::new();
    let mut calls = maria_setup();
    calls.reverse();
    calls.extend(maria_setup());
    calls.swap(0, 5);
    calls.iter().for_each(|c| {
        shuffled.add(c);
    });
    assert_eq!(forward.rows(&policy()), shuffled.rows(&policy()));
}

#[test]
fn merged_halves_equal_the_whole() {
    let calls = maria_setup();
    let (mut a, mut b, mut whole) = (Timeline::new(), Timeline::new(), Timeline::new());
    calls[..2].iter().for_each(|c| {
        a.add(c);
    });
    calls[1..].iter().for_each(|c| {
        b.add(c);
    });
    calls.iter().for_each(|c| {
        whole.add(c);
    });
    a.merge(b);
    assert_eq!(a.rows(&policy()), whole.rows(&policy()));
}

#[test]
fn a_recreated_user_is_a_new_user() {
    let mut t = Timeline::new();
    for c in [
        record("1", "CreateUser", "2025-03-01T10:00:00Z", "admin", "sam", None),
        record("2", "CreateLoginProfile", "2025-03-01T10:00:01Z", "admin", "sam", None),
        record("3", "DeleteUser", "2025-03-02T10:00:00Z", "admin", "sam", None),
        // Re-created a day later, as a service account: this key belongs to the new user, who has no password.
        record("4", "CreateUser", "2025-03-02T10:00:00Z", "admin", "SAM", None),
        record("5", "CreateAccessKey", "2025-03-02T10:00:30Z", "admin", "sam", Some("AKIASAM")),
    ] {
        t.add(&c);
    }
    let rows = t.rows(&policy());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].verdict, Verdict::Compliant);
    assert!(!rows[0].has_password);
}

#[test]
fn users_created_before_the_history_and_failed_calls_are_left_out() {
    let mut t = Timeline::new();
    t.add(&record("1", "CreateAccessKey", "2025-03-02T10:00:30Z", "admin", "old", Some("AKIAOLD")));
    let mut failed = record("2", "CreateAccessKey", "2025-03-02T10:00:30Z", "admin", "x", Some("AKIAX"));
    failed.error_code = Some("AccessDenied".into());
    assert!(!t.add(&failed));
    assert!(!t.add(&record("3", "ListUsers", "2025-03-02T10:00:30Z", "admin", "x", None)));
    assert!(t.rows(&policy()).is_empty());
}

#[test]
fn a_password_added_after_the_key_makes_it_a_violation() {
    let mut t = Timeline::new();
    for c in [
        record("1", "CreateUser", "2025-03-01T10:00:00Z", "admin", "late", None),
        record("2", "CreateAccessKey", "2025-03-01T10:00:05Z", "admin", "late", Some("AKIALATE")),
        record("3", "CreateLoginProfile", "2025-03-05T10:00:00Z", "admin", "late", None),
    ] {
        t.add(&c);
    }
    assert_eq!(t.rows(&policy())[0].verdict, Verdict::Violation);
}

#[test]
fn calls_before_their_users_creation_wait_as_pending_and_come_back() {
    // The keys arrive first (another file, another worker): pending until the CreateUser comes.
    let mut t = Timeline::new();
    let calls = maria_setup();
    for c in calls.iter().rev() {
        t.add(c);
    }
    assert_eq!(t.pending_len(), 0, "the CreateUser took its pending calls along");
    let whole = t.rows(&policy());

    // Taken out (spilled) before the CreateUser arrives, then restored after the merge: the same rows.
    let mut early = Timeline::new();
    for c in &calls[1..] {
        early.add(c);
    }
    early.add(&record("9", "CreateAccessKey", "2025-03-02T10:00:30Z", "admin", "old", Some("AKIAOLD")));
    assert_eq!(early.pending_len(), 4);
    let taken = early.take_pending();
    assert_eq!((taken.len(), early.pending_len()), (4, 0));
    let mut late = Timeline::new();
    late.add(&calls[0]);
    late.merge(early);
    let restored = taken.into_iter().filter(|p| late.restore(p.clone())).count();
    assert_eq!(restored, 3, "old's key is dropped: old was created before the history");
    assert_eq!(late.rows(&policy()), whole);
}

#[test]
fn merging_joins_pending_calls_to_users_known_on_either_side() {
    let calls = maria_setup();
    let (mut keys, mut user) = (Timeline::new(), Timeline::new());
    for c in &calls[1..] {
        keys.add(c);
    }
    user.add(&calls[0]);
    let mut a = keys.clone();
    a.merge(user.clone());
    assert_eq!(a.pending_len(), 0);
    user.merge(keys);
    assert_eq!(user.pending_len(), 0);
    assert_eq!(a.rows(&policy()), user.rows(&policy()));
}
