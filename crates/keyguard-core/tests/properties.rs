//! Property tests of the pure core (DESIGN.md §4): arbitrary JSON never panics the parser or the rule; any order
//! of events, and duplicates, give the same verdicts; the setup window's boundary is exact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod inputs;

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use inputs::{ACCOUNT, event_shaped, json, mutated_sample, samples, word};
use keyguard_core::alert::MAX_SUBJECT;
use keyguard_core::config::parse_window;
use keyguard_core::rule::Finding;
use keyguard_core::{
    Action, Alert, AlertFacts, Decision, Exemptions, Incoming, KeyState, Policy, Principal, Reason, Trigger, UserState,
    Verdict, decide_key, evaluate, parse_event,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

/// Modest case counts keep the suite fast; no regression files are written into the source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases) }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 11, 14, 2, 7).unwrap()
}

// Inputs (arbitrary JSON, event-shaped JSON, mutations of the real events) are in `inputs/`, shared with the whole
// handler's property tests (tests/bad_input.rs).

// ---------------------------------------------------------------------------------------------------------------
// A random user for whatever trigger the input turned out to be.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct World {
    window_seconds: i64,
    exemptions: usize,
    /// Seconds before the event that the user was created (negative: after it).
    user_before_event: i64,
    /// Seconds after the user that the password was created.
    password: Option<i64>,
    /// Per key: whether it takes the trigger's key id, seconds after the user, active.
    keys: Vec<(bool, i64, bool)>,
    path: &'static str,
    tags: Vec<(String, String)>,
    user_id: Option<&'static str>,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop_oneof![Just(600i64), 1i64..=7 * 24 * 3600],
        0usize..3,
        -3600i64..=3600,
        option::of(-60i64..=3600),
        vec((any::<bool>(), -60i64..=3600, any::<bool>()), 0..4),
        select(&["/", "/service/etl/", "/people/"][..]),
        vec((select(&["keyguard:exempt", "team", ""][..]).prop_map(str::to_string), word()), 0..3),
        option::of(select(&["AIDAEXAMPLE", "AIDAOTHER"][..])),
    )
        .prop_map(|(window_seconds, exemptions, user_before_event, password, keys, path, tags, user_id)| World {
            window_seconds,
            exemptions,
            user_before_event,
            password,
            keys,
            path,
            tags,
            user_id,
        })
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl World {
    fn policy(&self) -> Policy {
        let exemptions = match self.exemptions {
            0 => Exemptions::none(),
            1 => Exemptions::new(
                "keyguard:exempt",
                &strings(&["/service/"]),
                &strings(&["svc-*", "MARIA.*"]),
                &strings(&["arn:aws:sts::*:assumed-role/ci-*", "cloudformation.amazonaws.com"]),
            )
            .unwrap(),
            _ => Exemptions::new("", &[], &[], &strings(&["*"])).unwrap(),
        };
        Policy { window: TimeDelta::seconds(self.window_seconds), exemptions }
    }

    /// The user as IAM might show it when the trigger is handled; times are relative to the event, saturating at
    /// the ends of chrono's range (the event's own time may be anywhere a date can be written).
    fn state(&self, trigger: &Trigger, event_time: DateTime<Utc>) -> UserState {
        let shift = |t: DateTime<Utc>, s: i64| t.checked_add_signed(TimeDelta::seconds(s)).unwrap_or(t);
        let created = shift(event_time, -self.user_before_event);
        let trigger_key = trigger.key_id().map(str::to_string);
        let keys = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, &(takes_trigger_id, after, active))| KeyState {
                id: match (&trigger_key, takes_trigger_id) {
                    (Some(id), true) => id.clone(),
                    _ => format!("AKIAWORLDKEY{i}"),
                },
                created: shift(created, after),
                active,
            })
            .collect();
        UserState {
            name: trigger.user().to_string(),
            user_id: self.user_id.map(str::to_string),
            arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/{}", trigger.user())),
            path: self.path.to_string(),
            created,
            tags: self.tags.clone(),
            password_created: self.password.map(|p| shift(created, p)),
            keys,
        }
    }
}

/// Everything downstream of the parser, as the guard runs it: trigger, evidence, rule, decision, alert.
fn exercise(input: &Value, world: &World) -> Result<(), TestCaseError> {
    let call = match parse_event(input) {
        Ok(Incoming::Call(call)) => call,
        Ok(_) => return Ok(()),
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            return Ok(());
        }
    };
    let trigger = match Trigger::of(&call) {
        Ok(t) => t,
        Err(reason) => {
            prop_assert_eq!(Reason::Ignored(reason).verdict(), Verdict::Ignored);
            return Ok(());
        }
    };
    let policy = world.policy();
    let mut state = world.state(&trigger, call.event_time);
    trigger.apply_evidence(call.event_time, &mut state);
    let findings = evaluate(&policy, &trigger, &state, &Default::default());
    prop_assert!(!findings.is_empty());
    if let Some(key_id) = trigger.key_id() {
        // CreateAccessKey, and UpdateAccessKey to Active: a decision about that key alone.
        prop_assert_eq!(findings.len(), 1);
        prop_assert_eq!(findings[0].access_key_id.as_deref(), Some(key_id));
    } else {
        let ids: BTreeSet<&str> = state.keys.iter().map(|k| k.id.as_str()).collect();
        let user_level = findings.iter().all(|f| f.access_key_id.is_none());
        let key_level = findings.iter().all(|f| f.access_key_id.as_deref().is_some_and(|id| ids.contains(id)));
        prop_assert!((user_level && findings.len() == 1) || key_level, "{:?}", findings);
    }
    for finding in &findings {
        let decision = Decision::new(finding, Action::DryRun);
        prop_assert_eq!(decision.verdict, finding.verdict());
        prop_assert!(!decision.reason.is_empty());
        if !finding.verdict().is_finding() {
            continue;
        }
        let key = state.keys.iter().find(|k| Some(&k.id) == finding.access_key_id.as_ref());
        let facts = AlertFacts {
            account: call.account.clone().unwrap_or_default(),
            user_name: state.name.clone(),
            user_arn: state.arn.clone(),
            user_created: state.created,
            access_key_id: finding.access_key_id.clone().unwrap_or_default(),
            key_created: key.map_or(call.event_time, |k| k.created),
            has_password: state.password_created.is_some(),
            creator: match &trigger {
                Trigger::AccessKeyCreated { creator, .. } => Some(creator.clone()),
                _ => None,
            },
            source_ip: call.source_ip.clone(),
            user_agent: call.user_agent.clone(),
            event_id: call.event_id.clone(),
            event_name: call.event_name.clone(),
            verdict: finding.verdict(),
            reason: decision.reason.clone(),
            action: Action::Notified,
            note: None,
            kind: keyguard_core::AlertKind::of(&finding.reason),
            account_alias: None,
            exempt_tag: ("keyguard:exempt".into(), "true".into()),
        };
        let alert = Alert::render(&facts);
        let subject = &alert.subject;
        prop_assert!(subject.len() <= MAX_SUBJECT, "{:?}", subject);
        prop_assert!(subject.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{:?}", subject);
        prop_assert!(serde_json::from_str::<Value>(&alert.sns_message()).is_ok());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// (a) Arbitrary JSON never panics the parser, and what parses as a call never panics the rule.
    #[test]
    fn arbitrary_json_never_panics(input in json(), world in world()) {
        exercise(&input, &world)?;
    }

    #[test]
    fn arbitrary_event_shaped_json_never_panics(input in event_shaped(), world in world()) {
        exercise(&input, &world)?;
    }

    #[test]
    fn mutated_real_events_never_panic(input in mutated_sample(), world in world()) {
        exercise(&input, &world)?;
    }
}

#[test]
fn every_unmutated_sample_goes_through_the_rule() {
    let world = World {
        window_seconds: 600,
        exemptions: 0,
        user_before_event: 60,
        password: Some(1),
        keys: vec![(true, 60, true), (false, 30, true)],
        path: "/",
        tags: vec![],
        user_id: None,
    };
    for sample in samples() {
        exercise(sample, &world).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// (b) Order independence and duplicates.
// ---------------------------------------------------------------------------------------------------------------

/// Who created a key.
#[derive(Debug, Clone, Copy)]
enum Who {
    Admin,
    AdminRole,
    Itself,
    ItselfOtherCase,
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![Just(Who::Admin), Just(Who::AdminRole), Just(Who::Itself), Just(Who::ItselfOtherCase)]
}

const USER: &str = "maria.silva";

impl Who {
    fn principal(self) -> Principal {
        let iam_user = |name: &str| Principal {
            kind: "IAMUser".into(),
            arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/{name}")),
            account_id: Some(ACCOUNT.into()),
            user_name: Some(name.into()),
            issuer_arn: None,
            invoked_by: None,
        };
        match self {
            Who::Admin => iam_user("jordan.admin"),
            Who::AdminRole => Principal {
                kind: "AssumedRole".into(),
                arn: Some(format!(
                    "arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/jordan"
                )),
                account_id: Some(ACCOUNT.into()),
                user_name: None,
                issuer_arn: Some(format!(
                    "arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdministratorAccess_0123456789abcdef"
                )),
                invoked_by: None,
            },
            Who::Itself => iam_user(USER),
            Who::ItselfOtherCase => iam_user(&USER.to_uppercase()),
        }
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    window_seconds: i64,
    /// Seconds after the user that the password was created.
    password: Option<i64>,
    /// Per key: seconds after the user, active, creator.
    keys: Vec<(i64, bool, Who)>,
    /// Indices into [`Scenario::triggers`]: each at least once, some twice or more, shuffled.
    order: Vec<usize>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop_oneof![3 => Just(600i64), 1 => 1i64..=1800],
        option::of(0i64..=1200),
        vec((0i64..=1200, any::<bool>(), who()), 1..=2),
    )
        .prop_flat_map(|(window_seconds, password, keys)| {
            let n = 2 + keys.len();
            let order = vec(0..n, 0..=n).prop_map(move |dups| (0..n).chain(dups).collect::<Vec<_>>()).prop_shuffle();
            (Just(window_seconds), Just(password), Just(keys), order)
        })
        .prop_map(|(window_seconds, password, keys, order)| Scenario { window_seconds, password, keys, order })
}

impl Scenario {
    fn at(seconds: i64) -> DateTime<Utc> {
        t0() + TimeDelta::seconds(seconds)
    }

    fn state(&self) -> UserState {
        UserState {
            name: USER.into(),
            user_id: Some("AIDAEXAMPLE".into()),
            arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/{USER}")),
            path: "/".into(),
            created: t0(),
            tags: vec![],
            password_created: self.password.map(Scenario::at),
            keys: self
                .keys
                .iter()
                .enumerate()
                .map(|(i, &(after, active, _))| KeyState {
                    id: format!("AKIAKEY{i}"),
                    created: Scenario::at(after),
                    active,
                })
                .collect(),
        }
    }

    /// Every event of the user's setup, each with its own `eventTime`.
    fn triggers(&self) -> Vec<(Trigger, DateTime<Utc>)> {
        let mut triggers = vec![
            (Trigger::UserCreated { user: USER.into(), user_id: Some("AIDAEXAMPLE".into()) }, t0()),
            (Trigger::LoginProfileCreated { user: USER.into() }, Scenario::at(self.password.unwrap_or(0))),
        ];
        for (i, &(after, _, who)) in self.keys.iter().enumerate() {
            let trigger = Trigger::AccessKeyCreated {
                user: USER.into(),
                key_id: format!("AKIAKEY{i}"),
                creator: who.principal(),
            };
            triggers.push((trigger, Scenario::at(after)));
        }
        triggers
    }

    fn policy(&self) -> Policy {
        Policy { window: TimeDelta::seconds(self.window_seconds), exemptions: Exemptions::none() }
    }
}

/// The (key id, verdict) pairs of one evaluation.
type Outcome = BTreeSet<(Option<String>, Verdict)>;

fn outcome(findings: &[Finding]) -> Outcome {
    findings.iter().map(|f| (f.access_key_id.clone(), f.verdict())).collect()
}

proptest! {
    #![proptest_config(config(256))]

    /// (b) Each trigger's verdicts depend on the trigger and the state only: not on which events came before it,
    /// nor on whether it was delivered before. The evidence of every event handled so far is kept (as replay
    /// does), and it agrees with IAM, so it changes nothing either.
    #[test]
    fn any_order_and_duplicates_give_the_same_verdicts(s in scenario()) {
        let policy = s.policy();
        let state = s.state();
        let triggers = s.triggers();
        let reference: Vec<Vec<Finding>> = triggers.iter().map(|(t, _)| evaluate(&policy, t, &state, &Default::default())).collect();

        let mut seen: Vec<Vec<Outcome>> = vec![Vec::new(); triggers.len()];
        let mut evidenced = state.clone();
        for &i in &s.order {
            let (trigger, event_time) = &triggers[i];
            // A fresh read of IAM for this event, as the guard does.
            let mut fresh = state.clone();
            trigger.apply_evidence(*event_time, &mut fresh);
            prop_assert_eq!(&evaluate(&policy, trigger, &fresh, &Default::default()), &reference[i], "trigger {:?}", trigger);
            // The same, with the evidence of every earlier event kept.
            trigger.apply_evidence(*event_time, &mut evidenced);
            seen[i].push(outcome(&evaluate(&policy, trigger, &evidenced, &Default::default())));
        }
        prop_assert_eq!(&evidenced, &state);
        for (i, outcomes) in seen.iter().enumerate() {
            prop_assert!(!outcomes.is_empty(), "trigger {} never ran", i);
            for got in outcomes {
                prop_assert_eq!(got, &outcome(&reference[i]), "trigger {:?} in order {:?}", triggers[i].0, s.order);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// (c) The window's boundary.
// ---------------------------------------------------------------------------------------------------------------

fn admin() -> Principal {
    Who::Admin.principal()
}

proptest! {
    #![proptest_config(config(256))]

    /// (c) `created(K) - created(U) <= W`, in the whole seconds CloudTrail and IAM date things to: a key exactly W
    /// after the user is a setup key, one second later it is outside the window, whoever created it and whatever
    /// else holds. Sub-second fractions (emulators add them) move nothing across the boundary.
    #[test]
    fn the_window_boundary_is_exact(
        window_seconds in prop_oneof![Just(600i64), 1i64..=7 * 24 * 3600],
        base in 946_684_800i64..4_102_444_800,
        user_ms in prop_oneof![Just(0i64), 0i64..1000],
        key_ms in prop_oneof![Just(0i64), 0i64..1000],
        password_after in option::of(0i64..=60),
        creator in option::of(who()),
        active in any::<bool>(),
        probe in any::<u64>(),
    ) {
        let policy =
            Policy { window: parse_window(&window_seconds.to_string()).unwrap(), exemptions: Exemptions::none() };
        prop_assert_eq!(policy.window, TimeDelta::seconds(window_seconds));
        let second = Utc.timestamp_opt(base, 0).unwrap();
        let created = second + TimeDelta::milliseconds(user_ms);
        // The key `after` whole seconds after the user's second, plus its own fraction.
        let user = |after: i64| UserState {
            name: USER.into(),
            user_id: None,
            arn: None,
            path: "/".into(),
            created,
            tags: vec![],
            password_created: password_after.map(|p| second + TimeDelta::seconds(p)),
            keys: vec![KeyState {
                id: "AKIAKEY0".into(),
                created: second + TimeDelta::seconds(after) + TimeDelta::milliseconds(key_ms),
                active,
            }],
        };
        let creator = creator.map(Who::principal);
        let decide = |after: i64| {
            let u = user(after);
            decide_key(&policy, &u, &u.keys[0], creator.as_ref()).reason
        };
        let w = TimeDelta::seconds(window_seconds);

        let at_edge = decide(window_seconds);
        prop_assert!(!matches!(at_edge, Reason::OutsideWindow { .. }), "{:?}", at_edge);
        let past = decide(window_seconds + 1);
        prop_assert_eq!(past, Reason::OutsideWindow { gap: w + TimeDelta::seconds(1), window: w });

        // At the edge an admin's active key of a console user is a violation, exactly as well inside.
        let by_admin = |after: i64| {
            let u = UserState { password_created: Some(second), ..user(after) };
            let k = KeyState { active: true, ..u.keys[0].clone() };
            decide_key(&policy, &u, &k, Some(&admin())).verdict()
        };
        prop_assert_eq!(by_admin(window_seconds), Verdict::Violation);
        prop_assert_eq!(by_admin(0), Verdict::Violation);
        prop_assert_eq!(by_admin(window_seconds + 1), Verdict::Compliant);

        // Monotone: any gap up to W is inside, any gap beyond is outside. The same through `evaluate`.
        let gap = (probe % (2 * window_seconds as u64 + 2)) as i64;
        let outside = matches!(decide(gap), Reason::OutsideWindow { .. });
        prop_assert_eq!(outside, gap > window_seconds, "gap {}s, window {}s", gap, window_seconds);
        if let Some(c) = &creator {
            let t = Trigger::AccessKeyCreated { user: USER.into(), key_id: "AKIAKEY0".into(), creator: c.clone() };
            let f = evaluate(&policy, &t, &user(gap), &Default::default());
            prop_assert_eq!(f.len(), 1);
            prop_assert_eq!(matches!(f[0].reason, Reason::OutsideWindow { .. }), gap > window_seconds);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Found while writing the properties above.
// ---------------------------------------------------------------------------------------------------------------

/// `ParseError` promises to name the event id "when the input has one, so it can be found again", and the success
/// path treats an empty `detail.eventID` as absent (falling back to the envelope's `id`). The error path does not:
/// it names the empty string (`event : no readable ...`) although the envelope has an id.
#[test]
fn a_parse_error_never_names_an_empty_event_id() {
    let input = serde_json::json!({
        "version": "0", "id": "env-1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam",
        "account": ACCOUNT, "region": "us-east-1", "resources": [],
        "detail": {"eventID": "", "eventName": "CreateUser", "eventTime": "yesterday"}
    });
    let err = parse_event(&input).unwrap_err();
    assert_eq!(err.event_id.as_deref(), Some("env-1"), "{err}");
}
