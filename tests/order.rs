//! Order, duplication and delay, through the whole handler (issue 8 §5).
//!
//! A user's whole setup (CreateUser, CreateLoginProfile, CreateAccessKey ×2, DeleteAccessKey, DeleteUser, a
//! re-created namesake) is applied to the twin's IAM in order, at generated times, while its CloudTrail events reach
//! the handler in any order: each one late by a generated delay (seconds to hours), some two or three times, with an
//! IAM view that lags behind the writes, and a failed delivery retried as Lambda retries it. The outcome is compared
//! with the same setup handled in order: each event right after its call, once, with a consistent IAM.
//!
//! **"The same", precisely** (see [`compare`]):
//! - no event is lost: every delivery succeeds within Lambda's two retries;
//! - the final IAM state is identical (users, passwords, keys and their status);
//! - no key is deactivated twice: at most one Active→Inactive switch by KeyGuard per key, and, with the ledger, at
//!   most one decision reporting `deactivated` per key (without it, a duplicate delivered while IAM's reads still
//!   lag behind the deactivation repeats the UpdateAccessKey, a no-op, and its alert: at least once);
//! - with the ledger, no alert is sent twice (duplicates are suppressed by the ledger's record of what was sent);
//! - the alerts, as (key, kind, verdict, action), are the same for every key that still exists at the end, with one
//!   allowed difference: a `violation`/`notified` alert that a password or user event sent about a key created before
//!   the password, before the key's own CreateAccessKey event was handled (its reason: "before the console password:
//!   not self-service", the creator unknown).
//!   That alert is right when sent (the key is a violation whose creator the guard cannot know yet) and changes
//!   nothing in IAM; in order, the key's own event came first;
//! - for a key deleted by the end, the alerts out of order are a subset of those in order: an event handled after its
//!   key was deleted finds nothing to act on (a `compliant (gone)` outcome, not a lost violation).
//!
//! Without the ledger the guard is stateless and the final state may legitimately differ (a key whose own event
//! arrives after the password is deactivated, where in order the password's event could only alert): there the
//! property is that no violation is lost and no good key is hurt.
//!
//! The IAM lag stays below the guard's consistency horizon (60 s), which is the design's assumption (IAM converges
//! in seconds): an event whose object IAM does not show yet fails as retryable and is retried a minute later.
//!
//! A sample of generated cases is replayed on moto with the real SDK clients and checked with the same relation
//! against the twin's in-order run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use keyguard_aws::twin::{Lag, Twin, TwinUser};
use keyguard_core::{Action, EventReport, Principal};
use keyguard_tests::twin::{LAMBDA_RETRIES, admin, guard, itself, role, twin};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

const USER: &str = "maria.silva";
const EXEMPT_CREATOR: &str = "arn:aws:iam::*:role/hr-provisioner";

// ---------------------------------------------------------------------------------------------------------------
// The script: one user's setup, as calls at times.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Admin,
    /// A pipeline role (Terraform): not exempt.
    Terraform,
    /// An exempt provisioning role (`KEYGUARD_EXEMPT_CREATORS`).
    Provisioner,
    /// The user itself (self-service; only once it has a password).
    Itself,
}

impl Who {
    fn principal(self, user: &str) -> Principal {
        match self {
            Who::Admin => admin(),
            Who::Terraform => role("terraform"),
            Who::Provisioner => role("hr-provisioner"),
            Who::Itself => itself(user),
        }
    }

    fn caller(self, user: &str) -> keyguard_tests::Caller {
        match self {
            Who::Admin => keyguard_tests::Caller::IamUser("jordan.admin".into()),
            Who::Terraform => keyguard_tests::Caller::Role("terraform".into()),
            Who::Provisioner => keyguard_tests::Caller::Role("hr-provisioner".into()),
            Who::Itself => keyguard_tests::Caller::IamUser(user.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    CreateUser {
        tagged: bool,
    },
    CreateLoginProfile,
    CreateKey(Who),
    /// Deletes the n-th key the user still has (in creation order).
    DeleteKey(usize),
    /// Deletes the keys, the password, then the user (each call its own event).
    DeleteUser,
}

/// The calls, each `gap` seconds after the previous one.
#[derive(Debug, Clone)]
struct Script {
    steps: Vec<(i64, Step)>,
}

#[derive(Debug, Clone)]
struct Namesake {
    password: bool,
    key: Option<Who>,
}

#[allow(clippy::too_many_arguments)]
fn build(
    tagged: bool,
    password_at: usize,
    key1: Who,
    key2: Option<Who>,
    key2_late: bool,
    delete_key: Option<usize>,
    delete_user: Option<Option<Namesake>>,
    gaps: Vec<i64>,
) -> Script {
    let mut gaps = gaps.into_iter().cycle();
    let mut steps = vec![(0, Step::CreateUser { tagged })];
    let mut has_password = false;
    let mut keys = 0usize;
    let push = |steps: &mut Vec<(i64, Step)>, step: Step, gap: i64| steps.push((gap, step));
    // A key by the user itself needs a console password to sign in with; before one, an admin makes it.
    let who = |w: Who, has_password: bool| if w == Who::Itself && !has_password { Who::Admin } else { w };
    for slot in 0..=2 {
        if password_at == slot + 1 {
            push(&mut steps, Step::CreateLoginProfile, gaps.next().unwrap_or(1));
            has_password = true;
        }
        match slot {
            0 => {
                push(&mut steps, Step::CreateKey(who(key1, has_password)), gaps.next().unwrap_or(1));
                keys += 1;
            }
            1 => {
                if let Some(k2) = key2 {
                    // Outside the 10-minute window, or within it.
                    let gap = if key2_late { 11 * 60 + gaps.next().unwrap_or(1) } else { gaps.next().unwrap_or(1) };
                    push(&mut steps, Step::CreateKey(who(k2, has_password)), gap);
                    keys += 1;
                }
            }
            _ => {}
        }
    }
    if let Some(n) = delete_key {
        push(&mut steps, Step::DeleteKey(n % keys), gaps.next().unwrap_or(1));
    }
    if let Some(namesake) = delete_user {
        push(&mut steps, Step::DeleteUser, gaps.next().unwrap_or(1));
        if let Some(n) = namesake {
            push(&mut steps, Step::CreateUser { tagged: false }, gaps.next().unwrap_or(1));
            if n.password {
                push(&mut steps, Step::CreateLoginProfile, gaps.next().unwrap_or(1));
            }
            if let Some(k) = n.key {
                push(&mut steps, Step::CreateKey(who(k, n.password)), gaps.next().unwrap_or(1));
            }
        }
    }
    Script { steps }
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![4 => Just(Who::Admin), 3 => Just(Who::Terraform), 1 => Just(Who::Provisioner), 2 => Just(Who::Itself)]
}

/// `late`: whether the second key may be created outside the setup window (not on moto, which cannot wait).
fn script(late: bool) -> impl Strategy<Value = Script> {
    let namesake = (any::<bool>(), proptest::option::of(who())).prop_map(|(password, key)| Namesake { password, key });
    (
        prop::bool::weighted(0.15),
        0usize..=3,
        who(),
        proptest::option::of(who()),
        if late { prop::bool::weighted(0.3).boxed() } else { Just(false).boxed() },
        proptest::option::weighted(0.3, 0usize..2),
        proptest::option::weighted(0.3, proptest::option::weighted(0.7, namesake)),
        prop::collection::vec(1i64..=120, 12),
    )
        .prop_map(|(tagged, password_at, key1, key2, late, delete_key, delete_user, gaps)| {
            build(tagged, password_at, key1, key2, late, delete_key, delete_user, gaps)
        })
}

// ---------------------------------------------------------------------------------------------------------------
// The delivery schedule.

/// When each event is delivered (seconds after its call; several for duplicates), and how far IAM lags.
#[derive(Debug, Clone)]
struct Schedule {
    /// For the n-th event of the script: its deliveries' delays.
    delays: Vec<Vec<i64>>,
    lag_seconds: i64,
}

impl Schedule {
    /// Each event once, right after its call, with a consistent IAM.
    fn in_order() -> Schedule {
        Schedule { delays: Vec::new(), lag_seconds: 0 }
    }

    fn delays_of(&self, n: usize) -> Vec<i64> {
        self.delays.get(n).cloned().unwrap_or_else(|| vec![0])
    }
}

fn delay() -> impl Strategy<Value = i64> {
    prop_oneof![3 => Just(0i64), 3 => 1i64..=30, 2 => 60i64..=900, 1 => 3600i64..=4 * 3600]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (prop::collection::vec(prop::collection::vec(delay(), 1..=3), 20), prop_oneof![Just(0i64), 1i64..=20])
        .prop_map(|(delays, lag_seconds)| Schedule { delays, lag_seconds })
}

// ---------------------------------------------------------------------------------------------------------------
// Running a script on the twin.

/// What a run ended with.
#[derive(Debug, Clone)]
struct Outcome {
    users: BTreeMap<String, TwinUser>,
    /// Every alert about a key: (key, kind, verdict, action) and whether it was sent with the creator unknown.
    alerts: Vec<(AlertId, bool)>,
    /// Keys KeyGuard switched Active→Inactive, in order.
    switched: Vec<String>,
    /// Decisions reporting `deactivated`, per key.
    deactivated_decisions: BTreeMap<String, usize>,
    /// Events that failed every attempt (they would be in the failure destination).
    lost: Vec<String>,
    reports: Vec<EventReport>,
}

type AlertId = (String, String, String, String);

fn alert_id(json: &Value) -> Option<(AlertId, bool)> {
    let key = json["access_key"]["id"].as_str()?;
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    // The rule's reason for a key created before the password whose creator is unknown.
    let unknown = json["reason"].as_str().unwrap_or_default().contains("before the console password: not self-service");
    Some(((key.to_string(), s(&json["kind"]), s(&json["verdict"]), s(&json["action"])), unknown))
}

fn config_vars(ledger: bool, mode: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut vars = vec![("KEYGUARD_MODE", mode), ("KEYGUARD_EXEMPT_CREATORS", EXEMPT_CREATOR)];
    if ledger {
        vars.push(("KEYGUARD_LEDGER_TABLE", "ledger"));
    }
    vars
}

/// One step on the twin: the events of its calls.
fn apply(t: &Twin, step: &Step) -> Vec<Value> {
    match step {
        Step::CreateUser { tagged } => {
            let tags: &[(&str, &str)] = if *tagged { &[("keyguard:exempt", "true")] } else { &[] };
            vec![t.create_user(&admin(), USER, None, tags).unwrap()]
        }
        Step::CreateLoginProfile => vec![t.create_login_profile(&admin(), USER).unwrap()],
        Step::CreateKey(who) => vec![t.create_access_key(&who.principal(USER), USER).unwrap().event],
        Step::DeleteKey(n) => {
            let keys = t.user(USER).map(|u| u.keys).unwrap_or_default();
            keys.get(*n).map(|k| vec![t.delete_access_key(&admin(), USER, &k.id).unwrap()]).unwrap_or_default()
        }
        Step::DeleteUser => {
            let mut events = Vec::new();
            for k in t.user(USER).map(|u| u.keys).unwrap_or_default() {
                events.push(t.delete_access_key(&admin(), USER, &k.id).unwrap());
            }
            if t.user(USER).is_some_and(|u| u.password.is_some()) {
                events.push(t.delete_login_profile(&admin(), USER).unwrap());
            }
            events.push(t.delete_user(&admin(), USER).unwrap());
            events
        }
    }
}

/// A moment of the run, in time order; at one time, calls come before deliveries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Moment {
    Call(usize),
    /// (event number, attempt)
    Deliver(usize, usize),
}

async fn run(script: &Script, schedule: &Schedule, ledger: bool, mode: &'static str) -> Outcome {
    let t = twin();
    let g = guard(&t, &config_vars(ledger, mode));
    let start = t.now();
    let mut at = start;
    let mut timeline: BTreeMap<(DateTime<Utc>, Moment, u64), ()> = BTreeMap::new();
    for (i, (gap, _)) in script.steps.iter().enumerate() {
        at += TimeDelta::seconds(*gap);
        timeline.insert((at, Moment::Call(i), 0), ());
    }
    let mut events: Vec<Value> = Vec::new();
    let mut seq = 0u64;
    let mut outcome = Outcome {
        users: BTreeMap::new(),
        alerts: Vec::new(),
        switched: Vec::new(),
        deactivated_decisions: BTreeMap::new(),
        lost: Vec::new(),
        reports: Vec::new(),
    };
    while let Some(((when, moment, _), ())) = timeline.pop_first() {
        t.advance_to(when);
        match moment {
            Moment::Call(i) => {
                // The world changes; only then may IAM lag behind it.
                for event in apply(&t, &script.steps[i].1) {
                    let n = events.len();
                    for d in schedule.delays_of(n) {
                        seq += 1;
                        timeline.insert((when + TimeDelta::seconds(d), Moment::Deliver(n, 0), seq), ());
                    }
                    events.push(event);
                }
                t.set_lag(if schedule.lag_seconds > 0 {
                    Lag::For(TimeDelta::seconds(schedule.lag_seconds))
                } else {
                    Lag::None
                });
            }
            Moment::Deliver(n, attempt) => match g.handle(&events[n]).await {
                Ok(report) => {
                    for d in report.decisions.iter().filter(|d| d.action == Action::Deactivated) {
                        *outcome
                            .deactivated_decisions
                            .entry(d.access_key_id.clone().unwrap_or_default())
                            .or_default() += 1;
                    }
                    outcome.reports.push(report);
                }
                Err(e) => {
                    assert!(e.retryable(), "event {n}: {e}");
                    if attempt < LAMBDA_RETRIES {
                        seq += 1;
                        let later = when + TimeDelta::minutes(attempt as i64 + 1);
                        timeline.insert((later, Moment::Deliver(n, attempt + 1), seq), ());
                    } else {
                        outcome.lost.push(format!("{}: {e}", events[n]["detail"]["eventName"]));
                    }
                }
            },
        }
    }
    outcome.users = t.users();
    outcome.alerts = t.alerts().iter().filter_map(|a| alert_id(&a.json)).collect();
    outcome.switched = t.deactivations().into_iter().map(|(_, k)| k).collect();
    outcome
}

// ---------------------------------------------------------------------------------------------------------------
// The relation: "the same as in order".

fn existing_keys(users: &BTreeMap<String, TwinUser>) -> BTreeSet<String> {
    users.values().flat_map(|u| u.keys.iter().map(|k| k.id.clone())).collect()
}

/// The alerts about `key` as a set, without the one allowed extra when `allow` (see the module's comment).
fn alert_set(alerts: &[(AlertId, bool)], key: &str, allow: bool) -> BTreeSet<AlertId> {
    alerts
        .iter()
        .filter(|(id, _)| id.0 == key)
        .map(|(id, _)| id.clone())
        .filter(|id| !(allow && id.1 == "finding" && id.2 == "violation" && id.3 == "notified"))
        .collect()
}

/// Checks `out` (out of order) against `ordered` (in order); see the module's comment. Returns why not, if not.
fn compare(out: &Outcome, ordered: &Outcome, ledger: bool) -> Result<(), String> {
    if !ordered.lost.is_empty() {
        return Err(format!("in order, events were lost: {:?}", ordered.lost));
    }
    if !out.lost.is_empty() {
        return Err(format!("out of order, events were lost: {:?}", out.lost));
    }
    for o in [out, ordered] {
        let mut seen = BTreeSet::new();
        if let Some(twice) = o.switched.iter().find(|k| !seen.insert(*k)) {
            return Err(format!("key {twice} switched off twice: {:?}", o.switched));
        }
        // Without a ledger nothing remembers a deactivation: a duplicate delivered while IAM still shows the key
        // active repeats the UpdateAccessKey (a no-op) and its alert. With the ledger it must not.
        if let Some((key, n)) = o.deactivated_decisions.iter().find(|(_, n)| **n > 1)
            && ledger
        {
            return Err(format!("key {key} reported deactivated {n} times"));
        }
    }
    let keys: BTreeSet<String> = out
        .alerts
        .iter()
        .chain(&ordered.alerts)
        .map(|(id, _)| id.0.clone())
        .chain(existing_keys(&ordered.users))
        .collect();
    let existing = existing_keys(&ordered.users);
    if ledger {
        if out.users != ordered.users {
            return Err(format!("final IAM differs:\n out of order {:#?}\n in order {:#?}", out.users, ordered.users));
        }
        let mut seen = BTreeSet::new();
        if let Some((twice, _)) = out.alerts.iter().find(|(id, _)| !seen.insert(id.clone())) {
            return Err(format!("alert sent twice despite the ledger: {twice:?}"));
        }
        if let Some((id, _)) = ordered.alerts.iter().find(|(_, unknown)| *unknown) {
            return Err(format!("in order with the ledger, no alert should lack its creator: {id:?}"));
        }
        for key in &keys {
            let allow = out.alerts.iter().any(|(id, unknown)| *unknown && &id.0 == key);
            let (o, i) = (alert_set(&out.alerts, key, allow), alert_set(&ordered.alerts, key, allow));
            let same = if existing.contains(key) { o == i } else { o.is_subset(&i) };
            if !same {
                return Err(format!(
                    "alerts about {key} (still exists: {}):\n out of order {o:?}\n in order {i:?}",
                    existing.contains(key)
                ));
            }
        }
    } else {
        // Stateless: no violation lost, no good key hurt.
        let flagged = |o: &Outcome, key: &str| o.alerts.iter().any(|(id, _)| id.0 == key && id.2 == "violation");
        let active =
            |o: &Outcome, key: &str| o.users.values().flat_map(|u| &u.keys).find(|k| k.id == key).map(|k| k.active);
        for key in &existing {
            if flagged(ordered, key) && active(out, key) == Some(true) && !flagged(out, key) {
                return Err(format!("violation {key} lost out of order"));
            }
        }
        for key in &out.switched {
            if !flagged(ordered, key) && !flagged(out, key) {
                return Err(format!("key {key} deactivated without a violation"));
            }
        }
        // The user, the password and the keys exist alike; only statuses may differ.
        let shape = |o: &Outcome| -> Vec<(String, bool, Vec<String>)> {
            o.users
                .values()
                .map(|u| (u.user_id.clone(), u.password.is_some(), u.keys.iter().map(|k| k.id.clone()).collect()))
                .collect()
        };
        if shape(out) != shape(ordered) {
            return Err("the users, passwords and keys differ".into());
        }
    }
    Ok(())
}

fn check(script: &Script, schedule: &Schedule, ledger: bool, mode: &'static str) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let ordered = rt.block_on(run(script, &Schedule::in_order(), ledger, mode));
    let out = rt.block_on(run(script, schedule, ledger, mode));
    compare(&out, &ordered, ledger)
        .map_err(|why| TestCaseError::fail(format!("{why}\nout of order: {:#?}", out.reports)))
}

/// `cases` unless `PROPTEST_CASES` asks for more (a longer hunt than `make test`'s); no regression files.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases) }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn with_the_ledger_any_order_duplicates_and_lag_give_the_same_outcome(
        script in script(true),
        schedule in schedule(),
        deactivate in any::<bool>(),
    ) {
        check(&script, &schedule, true, if deactivate { "deactivate" } else { "notify" })?;
    }

    #[test]
    fn without_the_ledger_no_violation_is_lost_and_no_good_key_hurt(
        script in script(true),
        schedule in schedule(),
        deactivate in any::<bool>(),
    ) {
        check(&script, &schedule, false, if deactivate { "deactivate" } else { "notify" })?;
    }
}

/// Every order, literally: each permutation of a script's events, all delivered after the last call.
#[test]
fn every_permutation_of_the_common_setups() {
    let scripts = [
        // The console user's setup: user, password, an admin's key.
        build(false, 1, Who::Admin, None, false, None, None, vec![5]),
        // Terraform's order: user, key, password.
        build(false, 2, Who::Terraform, None, false, None, None, vec![5]),
        // Two keys (one exempt provisioner's, one admin's), the first deleted.
        build(false, 1, Who::Provisioner, Some(Who::Admin), false, Some(0), None, vec![5]),
        // A user deleted and re-created under the same name, with a password and an admin's key.
        build(
            false,
            1,
            Who::Admin,
            None,
            false,
            None,
            Some(Some(Namesake { password: true, key: Some(Who::Admin) })),
            vec![5],
        ),
    ];
    let mut cases = 0;
    for script in &scripts {
        let events = {
            let t = twin();
            script.steps.iter().map(|(_, s)| apply(&t, s).len()).sum::<usize>()
        };
        let last_call: i64 = script.steps.iter().map(|(g, _)| g).sum();
        for order in permutations(events.min(6)) {
            // All events after the last call, in this order (events beyond the sixth keep their place).
            let mut delays = vec![vec![0]; events];
            for (rank, n) in order.iter().enumerate() {
                delays[*n] = vec![last_call + 10 + rank as i64];
            }
            for ledger in [true, false] {
                for mode in ["deactivate", "notify"] {
                    check(script, &Schedule { delays: delays.clone(), lag_seconds: 0 }, ledger, mode)
                        .unwrap_or_else(|e| panic!("{script:?} order {order:?} ledger {ledger} {mode}: {e}"));
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 500, "{cases}");
}

/// The ledger tells IAM's lag from a re-enable by the event, not by the time: a duplicate of the key's event seconds
/// after KeyGuard deactivated it, while IAM still shows it active, is nothing to do; the user's own UpdateAccessKey
/// setting it Active at the same moment is alerted.
#[tokio::test]
async fn a_lagging_read_is_not_a_re_enable_but_a_re_enable_seconds_later_is_alerted() {
    let t = twin();
    let g = guard(&t, &config_vars(true, "deactivate"));
    t.create_user(&admin(), USER, None, &[]).unwrap();
    t.create_login_profile(&admin(), USER).unwrap();
    let key = t.create_access_key(&admin(), USER).unwrap();
    t.advance(TimeDelta::seconds(10));
    g.handle(&key.event).await.unwrap();
    // IAM's reads now lag 5 s: they show the key, not its deactivation a moment ago.
    t.set_lag(Lag::For(TimeDelta::seconds(5)));
    let duplicate = g.handle(&key.event).await.unwrap();
    let d = &duplicate.decisions[0];
    assert_eq!(d.action, Action::None, "{d:?}");
    assert!(d.note.as_deref().unwrap().contains("does not show it inactive yet"), "{d:?}");
    assert_eq!(t.alerts().len(), 1, "one alert, for the deactivation");
    t.set_lag(Lag::None);
    let re_enable = t.update_access_key(&itself(USER), USER, &key.id, true).unwrap();
    let report = g.handle(&re_enable).await.unwrap();
    assert_eq!(report.decisions[0].verdict, keyguard_core::Verdict::Violation, "{report:?}");
    let alerts = t.alerts();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[1].json["kind"], "re-enabled");
    assert!(t.key(USER, &key.id).unwrap().active, "a re-enable is alerted, never undone");
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for i in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(i, n - 1);
            all.push(p);
        }
    }
    all
}

// ---------------------------------------------------------------------------------------------------------------
// A sample of generated cases on moto.

/// The generated cases of a few fixed seeds (all keys within the window: moto cannot back-date).
fn sample() -> Vec<(Script, Schedule)> {
    (1u8..=5)
        .map(|seed| {
            let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
            let mut runner = TestRunner::new_with_rng(ProptestConfig::default(), rng);
            let tree = (script(false), schedule()).new_tree(&mut runner).unwrap();
            tree.current()
        })
        .collect()
}

/// The script on moto, its events delivered in the schedule's order (no lag: moto is consistent; no waiting: the
/// guard treats a missing object as gone, as it does once an event is older than its horizon). Key ids are mapped to
/// the twin's, by order of creation, so that the outcomes compare.
async fn run_on_moto(script: &Script, schedule: &Schedule, twin_ids: &[String]) -> Outcome {
    use keyguard_tests::{AlertSink, Iam, Moto, unique};
    let sdk = Moto::shared().sdk().await;
    let iam = Iam::new(&sdk);
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let table = keyguard_tests::ledger_table(&sdk).await;
    let user = unique("order");
    let vars = [
        ("KEYGUARD_MODE", "deactivate"),
        ("KEYGUARD_EXEMPT_CREATORS", EXEMPT_CREATOR),
        ("KEYGUARD_LEDGER_TABLE", table.as_str()),
        ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.as_str()),
    ];
    let config =
        keyguard_core::Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap();
    let g = keyguard_aws::sdk_guard(&config, &sdk).await.unwrap().with_consistency(keyguard_aws::Consistency {
        reads: 1,
        first_delay: Duration::ZERO,
        horizon: TimeDelta::zero(),
    });
    // The twin's order of moments, without the times: calls and deliveries interleave as they did there.
    let mut order: Vec<(i64, Moment, u64)> = Vec::new();
    let mut at = 0i64;
    let mut n = 0usize;
    let mut seq = 0u64;
    let counts: Vec<usize> = {
        let t = twin();
        script.steps.iter().map(|(_, s)| apply(&t, s).len()).collect()
    };
    for (i, (gap, _)) in script.steps.iter().enumerate() {
        at += gap;
        order.push((at, Moment::Call(i), 0));
        for _ in 0..counts[i] {
            for d in schedule.delays_of(n) {
                seq += 1;
                order.push((at + d, Moment::Deliver(n, 0), seq));
            }
            n += 1;
        }
    }
    order.sort();
    let mut ids: BTreeMap<String, String> = BTreeMap::new(); // moto id -> twin id
    let mut events: Vec<Value> = Vec::new();
    let mut outcome = Outcome {
        users: BTreeMap::new(),
        alerts: Vec::new(),
        switched: Vec::new(),
        deactivated_decisions: BTreeMap::new(),
        lost: Vec::new(),
        reports: Vec::new(),
    };
    let admin = Who::Admin.caller(&user);
    let gone = |name: &str| keyguard_tests::event(name, &admin, Utc::now(), json!({"userName": user}), Value::Null);
    for (_, moment, _) in order {
        match moment {
            Moment::Call(i) => match &script.steps[i].1 {
                Step::CreateUser { tagged } => {
                    let tags: &[(&str, &str)] = if *tagged { &[("keyguard:exempt", "true")] } else { &[] };
                    events.push(iam.create_user(&admin, &user, None, tags).await.unwrap());
                }
                Step::CreateLoginProfile => events.push(iam.create_password(&admin, &user).await.unwrap()),
                Step::CreateKey(who) => {
                    let key = iam.create_key(&who.caller(&user), &user).await.unwrap();
                    ids.insert(key.id.clone(), twin_ids[ids.len()].clone());
                    events.push(key.event);
                }
                Step::DeleteKey(k) => {
                    let keys = iam.key_statuses(&user).await.unwrap();
                    if let Some((id, _)) = keys.get(*k) {
                        iam.client.delete_access_key().user_name(&user).access_key_id(id).send().await.unwrap();
                        events.push(gone("DeleteAccessKey"));
                    }
                }
                Step::DeleteUser => {
                    for _ in iam.key_statuses(&user).await.unwrap() {
                        events.push(gone("DeleteAccessKey"));
                    }
                    if iam.client.get_login_profile().user_name(&user).send().await.is_ok() {
                        events.push(gone("DeleteLoginProfile"));
                    }
                    iam.delete_user(&user).await.unwrap();
                    events.push(gone("DeleteUser"));
                }
            },
            Moment::Deliver(n, _) => match g.handle(&events[n]).await {
                Ok(report) => {
                    for d in report.decisions.iter().filter(|d| d.action == Action::Deactivated) {
                        let id = d.access_key_id.clone().unwrap_or_default();
                        *outcome.deactivated_decisions.entry(ids[&id].clone()).or_default() += 1;
                    }
                    outcome.reports.push(report);
                }
                Err(e) => outcome.lost.push(format!("{}: {e}", events[n]["detail"]["eventName"])),
            },
        }
    }
    // The final state, in the twin's terms (only what the relation compares: keys and their status).
    let mut keys = Vec::new();
    for (id, status) in iam.key_statuses(&user).await.unwrap_or_default() {
        keys.push(keyguard_aws::twin::TwinKey {
            id: ids[&id].clone(),
            created: DateTime::<Utc>::MIN_UTC,
            active: status == "Active",
            last_used: None,
        });
    }
    if iam.client.get_user().user_name(&user).send().await.is_ok() {
        let password = iam.client.get_login_profile().user_name(&user).send().await.is_ok();
        outcome.users.insert(
            USER.into(),
            TwinUser {
                name: USER.into(),
                user_id: String::new(),
                arn: String::new(),
                path: "/".into(),
                created: DateTime::<Utc>::MIN_UTC,
                tags: vec![],
                password: password.then_some(DateTime::<Utc>::MIN_UTC),
                keys,
            },
        );
        iam.delete_user(&user).await.unwrap();
    }
    outcome.alerts = alerts
        .drain()
        .await
        .unwrap()
        .iter()
        .filter_map(|a| alert_id(&a.body))
        .map(|((k, kind, v, a), u)| ((ids[&k].clone(), kind, v, a), u))
        .collect();
    outcome
}

/// Only what moto can be compared on: which keys exist and their status, and whether there is a password.
fn comparable(o: &Outcome) -> Outcome {
    let mut o = o.clone();
    for u in o.users.values_mut() {
        *u = TwinUser {
            name: u.name.clone(),
            user_id: String::new(),
            arn: String::new(),
            path: "/".into(),
            created: DateTime::<Utc>::MIN_UTC,
            tags: vec![],
            password: u.password.map(|_| DateTime::<Utc>::MIN_UTC),
            keys: u
                .keys
                .iter()
                .map(|k| keyguard_aws::twin::TwinKey { created: DateTime::<Utc>::MIN_UTC, ..k.clone() })
                .collect(),
        };
    }
    o
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sample_of_generated_cases_holds_on_moto() {
    let cases = sample();
    assert_eq!(cases.len(), 5);
    for (i, (script, schedule)) in cases.iter().enumerate() {
        let ordered = run(script, &Schedule::in_order(), true, "deactivate").await;
        let in_twin = run(script, schedule, true, "deactivate").await;
        compare(&in_twin, &ordered, true).unwrap_or_else(|e| panic!("case {i} on the twin: {e}"));
        // The twin's key ids in order of creation.
        let twin_ids: Vec<String> = {
            let t = twin();
            let mut ids = Vec::new();
            for (_, step) in &script.steps {
                for e in apply(&t, step) {
                    if e["detail"]["eventName"] == "CreateAccessKey" {
                        ids.push(
                            e["detail"]["responseElements"]["accessKey"]["accessKeyId"].as_str().unwrap().to_string(),
                        );
                    }
                }
            }
            ids
        };
        let on_moto = run_on_moto(script, schedule, &twin_ids).await;
        compare(&on_moto, &comparable(&ordered), true)
            .unwrap_or_else(|e| panic!("case {i} on moto: {e}\n{script:#?}\n{schedule:?}\n{:#?}", on_moto.reports));
    }
}
