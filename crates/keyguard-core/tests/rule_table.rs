//! One test per row of the rule (DESIGN.md §1), including the window's boundary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::collections::HashMap;

use keyguard_core::rule::{Exemption, Finding, IgnoreReason};
use keyguard_core::{
    Exemptions, KeyHistory, KeyState, Policy, Principal, Reason, Trigger, UserState, Verdict, decide_key, evaluate,
};

/// No ledger: nothing known of any key.
fn none() -> HashMap<String, KeyHistory> {
    HashMap::new()
}

/// The ledger knows who created AKIAKEY1 (and whether KeyGuard deactivated it).
fn ledger(creator: Option<Principal>, deactivated_by_keyguard: bool) -> HashMap<String, KeyHistory> {
    HashMap::from([("AKIAKEY1".to_string(), KeyHistory { creator, deactivated_by_keyguard })])
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 11, 14, 2, 7).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(seconds)
}

fn policy() -> Policy {
    Policy { window: TimeDelta::minutes(10), exemptions: Exemptions::none() }
}

fn policy_with(users: &[&str], paths: &[&str], creators: &[&str]) -> Policy {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Policy {
        window: TimeDelta::minutes(10),
        exemptions: Exemptions::new("keyguard:exempt", &s(paths), &s(users), &s(creators)).unwrap(),
    }
}

/// maria.silva: created at t0, password 1 s later, one active key at `key_at`.
fn maria(key_at: i64) -> UserState {
    UserState {
        name: "maria.silva".into(),
        user_id: Some("AIDAEXAMPLE".into()),
        arn: Some("arn:aws:iam::111122223333:user/maria.silva".into()),
        path: "/".into(),
        created: t0(),
        tags: vec![],
        password_created: Some(at(1)),
        keys: vec![KeyState { id: "AKIAKEY1".into(), created: at(key_at), active: true }],
    }
}

fn iam_user(name: &str) -> Principal {
    Principal {
        kind: "IAMUser".into(),
        arn: Some(format!("arn:aws:iam::111122223333:user/{name}")),
        account_id: Some("111122223333".into()),
        user_name: Some(name.into()),
        issuer_arn: None,
        invoked_by: None,
    }
}

fn role_session(role: &str) -> Principal {
    Principal {
        kind: "AssumedRole".into(),
        arn: Some(format!("arn:aws:sts::111122223333:assumed-role/{role}/session")),
        account_id: Some("111122223333".into()),
        user_name: None,
        issuer_arn: Some(format!("arn:aws:iam::111122223333:role/{role}")),
        invoked_by: None,
    }
}

fn decide(p: &Policy, u: &UserState, creator: Option<&Principal>) -> Reason {
    decide_key(p, u, &u.keys[0], creator).reason
}

#[test]
fn admin_key_within_window_of_console_user_is_a_violation() {
    let r = decide(&policy(), &maria(68), Some(&iam_user("jordan.admin")));
    assert_eq!(r.verdict(), Verdict::Violation);
    assert!(
        matches!(r, Reason::SetupKeyByOther { ref creator, gap } if creator.ends_with("user/jordan.admin") && gap == TimeDelta::seconds(68))
    );
}

#[test]
fn window_boundary_is_inclusive() {
    let admin = iam_user("jordan.admin");
    assert_eq!(decide(&policy(), &maria(600), Some(&admin)).verdict(), Verdict::Violation);
    let r = decide(&policy(), &maria(601), Some(&admin));
    assert_eq!(r, Reason::OutsideWindow { gap: TimeDelta::seconds(601), window: TimeDelta::minutes(10) });
    assert_eq!(r.verdict(), Verdict::Compliant);
}

#[test]
fn user_without_password_is_compliant() {
    let mut u = maria(5);
    u.password_created = None;
    assert_eq!(decide(&policy(), &u, Some(&iam_user("jordan.admin"))), Reason::NoPassword);
}

#[test]
fn self_service_is_compliant_case_insensitively() {
    assert_eq!(decide(&policy(), &maria(300), Some(&iam_user("Maria.Silva"))), Reason::SelfService);
}

#[test]
fn same_name_under_a_role_is_not_self_service() {
    let r = decide(&policy(), &maria(300), Some(&role_session("maria.silva")));
    assert_eq!(r.verdict(), Verdict::Violation);
}

#[test]
fn unknown_creator_before_password_is_a_violation() {
    let mut u = maria(1);
    u.password_created = Some(at(30));
    assert_eq!(decide(&policy(), &u, None), Reason::SetupKeyBeforePassword { gap: TimeDelta::seconds(1) });
}

#[test]
fn unknown_creator_in_the_same_second_as_the_password_is_a_violation() {
    // One-second timestamps: a key in the password's own second cannot come from the user's first sign-in.
    let r = decide(&policy(), &maria(1), None);
    assert_eq!(r.verdict(), Verdict::Violation);
}

#[test]
fn unknown_creator_after_password_is_suspect() {
    let r = decide(&policy(), &maria(120), None);
    assert_eq!(r, Reason::SetupKeyCreatorUnknown { gap: TimeDelta::seconds(120) });
    assert_eq!(r.verdict(), Verdict::Suspect);
}

#[test]
fn inactive_key_is_not_flagged_again() {
    let mut u = maria(10);
    u.keys[0].active = false;
    assert_eq!(decide(&policy(), &u, Some(&iam_user("jordan.admin"))), Reason::AlreadyInactive);
}

#[test]
fn exempt_by_tag() {
    let mut u = maria(10);
    u.tags = vec![("keyguard:exempt".into(), "true".into())];
    let r = decide(&policy(), &u, Some(&iam_user("jordan.admin")));
    assert_eq!(r, Reason::Exempt(Exemption::Tag { key: "keyguard:exempt".into(), value: "true".into() }));
    assert_eq!(r.verdict(), Verdict::Exempt);
}

#[test]
fn the_exempt_tag_set_to_anything_but_its_value_exempts_nothing() {
    let mut u = maria(10);
    for value in ["false", "", "break-glass", "no"] {
        u.tags = vec![("keyguard:exempt".into(), value.into())];
        let r = decide(&policy(), &u, Some(&iam_user("jordan.admin")));
        assert_eq!(r.verdict(), Verdict::Violation, "keyguard:exempt={value:?} must not exempt");
    }
}

#[test]
fn exempt_by_path_prefix() {
    let mut u = maria(10);
    u.path = "/service/etl/".into();
    let r = decide(&policy_with(&[], &["/service/"], &[]), &u, Some(&iam_user("jordan.admin")));
    assert_eq!(r, Reason::Exempt(Exemption::Path { prefix: "/service/".into() }));
}

#[test]
fn exempt_by_user_name_glob() {
    let r = decide(&policy_with(&["maria.*"], &[], &[]), &maria(10), Some(&iam_user("jordan.admin")));
    assert_eq!(r, Reason::Exempt(Exemption::UserName { pattern: "maria.*".into() }));
}

#[test]
fn exempt_by_creator_arn_glob() {
    let p = policy_with(&[], &[], &["arn:aws:sts::*:assumed-role/ci-iam-provisioner/*"]);
    let r = decide(&p, &maria(10), Some(&role_session("ci-iam-provisioner")));
    assert_eq!(r.verdict(), Verdict::Exempt);
    let r = decide(&p, &maria(10), Some(&role_session("someone-else")));
    assert_eq!(r.verdict(), Verdict::Violation);
}

#[test]
fn exemption_is_reported_only_where_it_changed_the_outcome() {
    let mut u = maria(10);
    u.password_created = None;
    u.tags = vec![("keyguard:exempt".into(), "true".into())];
    assert_eq!(decide(&policy(), &u, Some(&iam_user("jordan.admin"))), Reason::NoPassword);
}

#[test]
fn create_access_key_trigger_evaluates_only_its_key() {
    let mut u = maria(10);
    u.keys.push(KeyState { id: "AKIAKEY2".into(), created: at(20), active: true });
    let t = Trigger::AccessKeyCreated {
        user: u.name.clone(),
        key_id: "AKIAKEY2".into(),
        creator: iam_user("jordan.admin"),
    };
    let f = evaluate(&policy(), &t, &u, &none());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].access_key_id.as_deref(), Some("AKIAKEY2"));
    assert_eq!(f[0].verdict(), Verdict::Violation);
}

#[test]
fn create_access_key_trigger_for_a_missing_key_is_gone() {
    let t = Trigger::AccessKeyCreated { user: "maria.silva".into(), key_id: "AKIAGONE".into(), creator: iam_user("x") };
    assert_eq!(
        evaluate(&policy(), &t, &maria(10), &none()),
        vec![Finding { access_key_id: Some("AKIAGONE".into()), reason: Reason::KeyGone }]
    );
}

#[test]
fn password_added_after_the_key_makes_it_a_violation() {
    // Key at +5 s by an admin, password at +40 s: CreateAccessKey saw no password, CreateLoginProfile catches it.
    let mut u = maria(5);
    u.password_created = Some(at(40));
    let f = evaluate(&policy(), &Trigger::LoginProfileCreated { user: u.name.clone() }, &u, &none());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].reason, Reason::SetupKeyBeforePassword { gap: TimeDelta::seconds(5) });
}

#[test]
fn login_profile_trigger_leaves_later_keys_to_their_own_event() {
    let mut u = maria(5);
    u.password_created = Some(at(40));
    u.keys.push(KeyState { id: "AKIALATE".into(), created: at(200), active: true });
    let f = evaluate(&policy(), &Trigger::LoginProfileCreated { user: u.name.clone() }, &u, &none());
    assert_eq!(f.iter().map(|f| f.access_key_id.as_deref()).collect::<Vec<_>>(), vec![Some("AKIAKEY1")]);
    let mut only_late = maria(200);
    only_late.keys[0].id = "AKIALATE".into();
    let f = evaluate(&policy(), &Trigger::LoginProfileCreated { user: "maria.silva".into() }, &only_late, &none());
    assert_eq!(f, vec![Finding { access_key_id: None, reason: Reason::NoKeyBeforePassword }]);
}

#[test]
fn create_user_trigger_without_keys_or_password() {
    let mut u = maria(5);
    u.keys.clear();
    let t = Trigger::UserCreated { user: u.name.clone(), user_id: None };
    assert_eq!(evaluate(&policy(), &t, &u, &none()), vec![Finding { access_key_id: None, reason: Reason::NoKeys }]);
    let mut service = maria(5);
    service.password_created = None;
    let f = evaluate(&policy(), &t, &service, &none());
    assert_eq!(f[0].reason, Reason::NoPassword);
}

#[test]
fn event_time_is_preferred_for_the_triggering_object_only() {
    let mut u = maria(500);
    let t = Trigger::AccessKeyCreated { user: u.name.clone(), key_id: "AKIAKEY1".into(), creator: iam_user("a") };
    t.apply_evidence(at(30), &mut u);
    assert_eq!(u.keys[0].created, at(30));
    assert_eq!(u.created, t0());
    // A CreateUser event of an earlier user of the same name (different id) does not rewrite this one.
    let old = Trigger::UserCreated { user: u.name.clone(), user_id: Some("AIDAOLD".into()) };
    old.apply_evidence(at(-9999), &mut u);
    assert_eq!(u.created, t0());
    let same = Trigger::UserCreated { user: u.name.clone(), user_id: Some("AIDAEXAMPLE".into()) };
    same.apply_evidence(at(-3), &mut u);
    assert_eq!(u.created, at(-3));
}

#[test]
fn the_terraform_order_is_a_violation_by_the_key_event_creator_when_the_ledger_knows_it() {
    // User, then the key by an admin (no password yet: compliant then), then the password a minute later.
    let mut u = maria(5);
    u.password_created = Some(at(65));
    let trigger = Trigger::LoginProfileCreated { user: u.name.clone() };
    let unknown = evaluate(&policy(), &trigger, &u, &none());
    assert_eq!(unknown[0].reason, Reason::SetupKeyBeforePassword { gap: TimeDelta::seconds(5) });
    let known = evaluate(&policy(), &trigger, &u, &ledger(Some(role_session("terraform")), false));
    assert!(
        matches!(&known[0].reason, Reason::SetupKeyByOther { creator, .. } if creator.contains("assumed-role/terraform")),
        "{:?}",
        known[0].reason
    );
    // The ledger's creator is judged like the event's: the user's own key stays compliant, an exempt one exempt.
    let own = evaluate(&policy(), &trigger, &u, &ledger(Some(iam_user("maria.silva")), false));
    assert_eq!(own[0].reason, Reason::SelfService);
    let p = policy_with(&[], &[], &["arn:aws:iam::*:role/terraform"]);
    let exempt = evaluate(&p, &trigger, &u, &ledger(Some(role_session("terraform")), false));
    assert_eq!(exempt[0].verdict(), Verdict::Exempt);
}

#[test]
fn a_key_keyguard_deactivated_and_set_active_again_is_a_violation() {
    let u = maria(10);
    let t = Trigger::AccessKeyReactivated {
        user: u.name.clone(),
        key_id: "AKIAKEY1".into(),
        caller: iam_user("maria.silva"),
    };
    let f = evaluate(&policy(), &t, &u, &ledger(Some(iam_user("jordan.admin")), true));
    assert!(matches!(&f[0].reason, Reason::ReEnabled { by } if by.ends_with("user/maria.silva")), "{:?}", f[0].reason);
    assert_eq!(f[0].verdict(), Verdict::Violation);
    // Not KeyGuard's deactivation (or no ledger): not ours to watch.
    assert_eq!(evaluate(&policy(), &t, &u, &none())[0].reason, Reason::NotDeactivatedByKeyGuard);
    // An exempt principal may re-enable (reported as exempt).
    let p = policy_with(&[], &[], &["arn:aws:iam::*:user/maria.silva"]);
    assert_eq!(evaluate(&p, &t, &u, &ledger(None, true))[0].verdict(), Verdict::Exempt);
    // Set inactive again meanwhile: nothing to alert.
    let mut inactive = maria(10);
    inactive.keys[0].active = false;
    assert_eq!(evaluate(&policy(), &t, &inactive, &ledger(None, true))[0].reason, Reason::AlreadyInactive);
}

#[test]
fn update_access_key_to_inactive_and_roots_own_password_are_ignored() {
    let call = |name: &str, status: Option<&str>, target: Option<&str>, kind: &str| keyguard_core::IamCall {
        event_id: "e".into(),
        event_name: name.into(),
        event_source: "iam.amazonaws.com".into(),
        event_time: t0(),
        account: Some("111122223333".into()),
        envelope_account: None,
        region: None,
        caller: Principal { kind: kind.into(), ..iam_user("jordan.admin") },
        source_ip: None,
        user_agent: None,
        error_code: None,
        target_user: target.map(str::to_string),
        access_key_id: Some("AKIAKEY1".into()),
        key_status: status.map(str::to_string),
        user_id: None,
        user_arn: None,
        user_path: None,
        tags: vec![],
        delivery_delayed: false,
    };
    assert_eq!(
        Trigger::of(&call("UpdateAccessKey", Some("Inactive"), Some("maria"), "IAMUser")),
        Err(IgnoreReason::KeySetInactive)
    );
    assert!(matches!(
        Trigger::of(&call("UpdateAccessKey", Some("Active"), Some("maria"), "IAMUser")),
        Ok(Trigger::AccessKeyReactivated { .. })
    ));
    assert_eq!(
        Trigger::of(&call("CreateLoginProfile", None, None, "Root")),
        Err(IgnoreReason::RootOwn { event_name: "CreateLoginProfile".into() })
    );
    assert_eq!(Trigger::of(&call("CreateAccessKey", None, None, "Root")), Err(IgnoreReason::RootKey));
}
