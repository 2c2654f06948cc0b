//! Faults between KeyGuard and AWS (issue 8 §4). A proxy in front of moto (tests/harness/faults.rs) throttles,
//! fails, slows down or drops IAM and SNS requests by schedule; the guard runs through the real SDK clients with
//! KeyGuard's SDK settings (short test timeouts). For each scenario under each fault profile: every violation ends
//! acted on or as a retryable error, no compliant key is deactivated, nothing panics, and re-running the failed
//! events once the faults stop completes them. The matrix of outcomes is printed (`--nocapture`) and written to
//! target/fault-matrix.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::config::retry::RetryPartition;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::operation::RequestId;
use keyguard_aws::{AwsError, AwsErrorKind, GuardError, SdkGuard, SdkSettings};
use keyguard_core::{Action, Config, EventReport, Verdict};
use keyguard_tests::faults::Fault::{Drop, ServerError, Slow, Throttle};
use keyguard_tests::faults::{self, FaultProxy, IAM, SNS, Schedule, Seen, TEST_SETTINGS, When};
use keyguard_tests::{AlertSink, Caller, Iam, Moto, unique};
use serde_json::Value;

/// Longer than [`TEST_SETTINGS`]' attempt timeout (1 s): the SDK gives up on the attempt before the answer comes.
const SLOW: Duration = Duration::from_millis(2500);

// ---------------------------------------------------------------------------------------------------------------
// The proxy itself: the error shapes the SDK parses, and what each fault does to one call.

/// IAM and SNS clients through the proxy with `attempts` attempts per call and their own retry quota (the SDK
/// shares one per service and region across a process, and the matrix below must not depend on these tests).
async fn clients(proxy: &FaultProxy, attempts: u32) -> (aws_sdk_iam::Client, aws_sdk_sns::Client) {
    let sdk = faults::sdk_config_with(&proxy.endpoint, SdkSettings { max_attempts: attempts, ..TEST_SETTINGS }).await;
    let partition = RetryPartition::new(unique("proxy-selftest"));
    let iam = aws_sdk_iam::config::Builder::from(&sdk).retry_partition(partition.clone()).build();
    let sns = aws_sdk_sns::config::Builder::from(&sdk).retry_partition(partition).build();
    (aws_sdk_iam::Client::from_conf(iam), aws_sdk_sns::Client::from_conf(sns))
}

fn status<E>(err: &SdkError<E, HttpResponse>) -> u16 {
    err.raw_response().map(|r| r.status().as_u16()).unwrap_or_default()
}

#[tokio::test]
async fn throttling_and_server_errors_come_in_each_services_query_error_format() {
    let proxy = FaultProxy::start(&Moto::shared().endpoint).await.unwrap();
    let (iam, sns) = clients(&proxy, 1).await;
    let topic = "arn:aws:sns:us-east-1:123456789012:nowhere";

    proxy.install(Schedule::none().on(IAM, When::Always, Throttle).on(SNS, When::Always, ServerError));
    let err = iam.get_user().user_name("anyone").send().await.unwrap_err();
    assert_eq!((err.code(), err.message(), status(&err)), (Some("Throttling"), Some("Rate exceeded"), 400), "{err:?}");
    assert!(err.request_id().is_some_and(|id| id.starts_with("fa017000-")), "the error's RequestId: {err:?}");
    assert_eq!(AwsError::new("iam:GetUser", err.code(), String::new()).kind, AwsErrorKind::Throttled);
    let err = sns.publish().topic_arn(topic).message("m").send().await.unwrap_err();
    assert_eq!((err.code(), status(&err)), (Some("InternalError"), 500), "{err:?}");
    assert!(err.as_service_error().unwrap().is_internal_error_exception(), "SNS's modelled 500: {err:?}");

    proxy.install(Schedule::none().on(IAM, When::Always, ServerError).on(SNS, When::Always, Throttle));
    let err = iam.get_user().user_name("anyone").send().await.unwrap_err();
    assert_eq!((err.code(), status(&err)), (Some("ServiceFailure"), 500), "{err:?}");
    assert!(err.as_service_error().unwrap().is_service_failure_exception(), "IAM's modelled 500: {err:?}");
    let err = sns.publish().topic_arn(topic).message("m").send().await.unwrap_err();
    assert_eq!((err.code(), err.message(), status(&err)), (Some("Throttling"), Some("Rate exceeded"), 400), "{err:?}");

    let seen = proxy.take_seen();
    let routed: Vec<(&str, &str)> = seen.iter().map(|s| (s.service.as_str(), s.action.as_str())).collect();
    assert_eq!(routed, [(IAM, "GetUser"), (SNS, "Publish"), (IAM, "GetUser"), (SNS, "Publish")]);
}

#[tokio::test]
async fn a_dropped_request_never_arrives_and_a_late_answer_arrives_after_the_sdk_gave_up() {
    let moto = Moto::shared();
    let direct = Iam::new(&moto.sdk().await);
    let proxy = FaultProxy::start(&moto.endpoint).await.unwrap();
    let (iam, _) = clients(&proxy, 1).await;

    proxy.install(Schedule::none().on(IAM, When::Always, Drop));
    let dropped = unique("dropped");
    let err = iam.create_user().user_name(&dropped).send().await.unwrap_err();
    assert!(matches!(err, SdkError::DispatchFailure(_)), "a closed connection: {err:?}");
    let absent = direct.client.get_user().user_name(&dropped).send().await.unwrap_err();
    assert_eq!(absent.code(), Some("NoSuchEntity"), "the dropped request never reached IAM");

    proxy.install(Schedule::none().on(IAM, When::Always, Slow(SLOW)));
    let late = unique("late");
    let err = iam.create_user().user_name(&late).send().await.unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "the attempt timed out: {err:?}");
    direct.client.get_user().user_name(&late).send().await.expect("the late request took effect all the same");
}

#[tokio::test]
async fn sdk_retries_absorb_a_burst_but_not_a_sustained_fault_and_schedules_go_by_count_or_time() {
    let proxy = FaultProxy::start(&Moto::shared().endpoint).await.unwrap();
    let (iam, _) = clients(&proxy, 3).await;
    let faulted = |seen: &[Seen]| seen.iter().map(|s| s.fault.is_some()).collect::<Vec<bool>>();

    proxy.install(Schedule::none().on(IAM, When::Requests(1..=2), Throttle));
    iam.list_users().send().await.expect("the third attempt succeeds");
    assert_eq!(faulted(&proxy.take_seen()), [true, true, false]);

    proxy.install(Schedule::none().on(IAM, When::Always, Throttle));
    let err = iam.list_users().send().await.unwrap_err();
    assert_eq!(err.code(), Some("Throttling"));
    assert_eq!(faulted(&proxy.take_seen()), [true, true, true], "three attempts, then the error");

    let hour = Duration::from_secs(3600);
    proxy.install(Schedule::none().on(IAM, When::During(Duration::ZERO..hour), ServerError));
    assert_eq!(iam.list_users().send().await.unwrap_err().code(), Some("ServiceFailure"));
    proxy.install(Schedule::none().on(IAM, When::During(hour..hour * 2), ServerError));
    iam.list_users().send().await.expect("not yet in the fault's time span");
    assert_eq!(faulted(&proxy.take_seen()), [true, true, true, false]);

    proxy.install(Schedule::none().on(SNS, When::Always, Drop));
    iam.list_users().send().await.expect("a fault of SNS leaves IAM alone");
    assert!(proxy.take_seen().iter().all(|s| s.fault.is_none()));
}

// ---------------------------------------------------------------------------------------------------------------
// The matrix: scenarios x fault profiles through the guard.

fn admin() -> Caller {
    Caller::IamUser("jordan.admin".into())
}

/// What a scenario must end as once the faults are over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A violation whose key the guard deactivates, with an alert.
    Deactivated,
    /// A decision with this verdict (a violation, or an exempt would-be violation) alerted, the key left active.
    Alerted(Verdict),
    /// No alert, key untouched, with this verdict.
    Quiet(Verdict),
}

struct Scenario {
    name: &'static str,
    mode: &'static str,
    expect: Expect,
}

const SCENARIOS: &[Scenario] = &[
    Scenario { name: "admin key, notify", mode: "notify", expect: Expect::Alerted(Verdict::Violation) },
    Scenario { name: "admin key, deactivate", mode: "deactivate", expect: Expect::Deactivated },
    Scenario { name: "admin key, deactivate, ledger", mode: "deactivate+ledger", expect: Expect::Deactivated },
    Scenario {
        name: "key before password (creator unknown)",
        mode: "deactivate",
        expect: Expect::Alerted(Verdict::Violation),
    },
    Scenario {
        name: "key before password, ledger (Terraform order)",
        mode: "deactivate+ledger",
        expect: Expect::Deactivated,
    },
    Scenario { name: "self-service key", mode: "deactivate", expect: Expect::Quiet(Verdict::Compliant) },
    Scenario { name: "service account, no password", mode: "deactivate", expect: Expect::Quiet(Verdict::Compliant) },
    // Exempt: never deactivated, reported for information (an exemption must not hide a violation).
    Scenario { name: "exempt by tag", mode: "deactivate", expect: Expect::Alerted(Verdict::Exempt) },
];

/// A scenario set up in moto: the user, the key, and the event the guard gets.
struct Case {
    user: String,
    key: String,
    event: Value,
}

/// `guard` handles, without faults, the events that come before the scenario's (the Terraform order's key event).
async fn set_up(scenario: &Scenario, iam: &Iam, guard: &SdkGuard) -> Case {
    let user = unique("fault");
    let event = match scenario.name {
        "admin key, notify" | "admin key, deactivate" | "admin key, deactivate, ledger" => {
            iam.create_user(&admin(), &user, None, &[]).await.unwrap();
            iam.create_password(&admin(), &user).await.unwrap();
            iam.create_key(&admin(), &user).await.unwrap()
        }
        "key before password (creator unknown)" => {
            iam.create_user(&admin(), &user, None, &[]).await.unwrap();
            let key = iam.create_key(&admin(), &user).await.unwrap();
            let password = iam.create_password(&admin(), &user).await.unwrap();
            keyguard_tests::NewKey { event: password, ..key }
        }
        "key before password, ledger (Terraform order)" => {
            iam.create_user(&admin(), &user, None, &[]).await.unwrap();
            let key = iam.create_key(&admin(), &user).await.unwrap();
            // The key's own event comes first (compliant then: no password) and teaches the ledger its creator.
            let first = guard.handle(&key.event).await.unwrap();
            assert_eq!(first.decisions[0].verdict, Verdict::Compliant, "{first:?}");
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let password = iam.create_password(&admin(), &user).await.unwrap();
            keyguard_tests::NewKey { event: password, ..key }
        }
        "self-service key" => {
            iam.create_user(&admin(), &user, None, &[]).await.unwrap();
            iam.create_password(&admin(), &user).await.unwrap();
            iam.create_key(&Caller::IamUser(user.clone()), &user).await.unwrap()
        }
        "service account, no password" => {
            let ci = Caller::Role("ci-iam-provisioner".into());
            iam.create_user(&ci, &user, Some("/service-accounts/"), &[]).await.unwrap();
            iam.create_key(&ci, &user).await.unwrap()
        }
        "exempt by tag" => {
            iam.create_user(&admin(), &user, None, &[("keyguard:exempt", "true")]).await.unwrap();
            iam.create_password(&admin(), &user).await.unwrap();
            iam.create_key(&admin(), &user).await.unwrap()
        }
        other => panic!("no set-up for {other}"),
    };
    Case { user, key: event.id, event: event.event }
}

struct Profile {
    name: &'static str,
    schedule: fn() -> Schedule,
}

/// Each profile holds for the whole first run of an event (installed afresh per event, so its counts start
/// again), then stops for the re-run. The transient ones come first: the SDK's retry quota is per process and
/// the sustained ones drain it (which is what it is for), so fewer attempts are made after them.
const PROFILES: &[Profile] = &[
    Profile { name: "none", schedule: Schedule::none },
    Profile {
        name: "IAM throttled (burst of 2)",
        schedule: || Schedule::none().on(IAM, When::Requests(1..=2), Throttle),
    },
    Profile {
        name: "mix",
        schedule: || {
            Schedule::none()
                .on_action(IAM, "UpdateAccessKey", When::Requests(1..=1), ServerError)
                .on(IAM, When::Requests(1..=1), Throttle)
                .on(IAM, When::Requests(3..=3), Drop)
                .on(SNS, When::Requests(1..=1), Slow(SLOW))
                .on(SNS, When::Requests(2..=2), ServerError)
        },
    },
    Profile { name: "SNS slow", schedule: || Schedule::none().on(SNS, When::Always, Slow(SLOW)) },
    Profile {
        name: "IAM UpdateAccessKey slow",
        schedule: || Schedule::none().on_action(IAM, "UpdateAccessKey", When::Always, Slow(SLOW)),
    },
    Profile { name: "IAM throttled", schedule: || Schedule::none().on(IAM, When::Always, Throttle) },
    Profile { name: "SNS throttled", schedule: || Schedule::none().on(SNS, When::Always, Throttle) },
    Profile { name: "IAM 500", schedule: || Schedule::none().on(IAM, When::Always, ServerError) },
    Profile { name: "SNS 500", schedule: || Schedule::none().on(SNS, When::Always, ServerError) },
    Profile { name: "IAM slow", schedule: || Schedule::none().on(IAM, When::Always, Slow(SLOW)) },
    Profile {
        name: "dropped connections",
        schedule: || Schedule::none().on(IAM, When::Always, Drop).on(SNS, When::Always, Drop),
    },
];

/// Cells where today's guard loses the alert: `UpdateAccessKey` took effect, then the alert failed (Publish
/// failed, or the SDK never heard UpdateAccessKey's answer), and the re-run finds the key inactive and stays
/// silent. Issue 8 §2 (at-least-once alerts) closes this; the test fails when a cell listed here gets its alert,
/// so that the list is emptied then.
/// Empty since the alert is owed before the deactivation (with a ledger) or sent before it (without one).
const KNOWN_LOST_ALERTS: &[(&str, &str)] = &[];

/// How one run of the guard ended.
enum Run {
    Done(EventReport),
    Failed(GuardError),
    Panicked(String),
}

async fn run(guard: &Arc<SdkGuard>, event: &Value) -> Run {
    let (guard, event) = (guard.clone(), event.clone());
    match tokio::spawn(async move { guard.handle(&event).await }).await {
        Ok(Ok(report)) => Run::Done(report),
        Ok(Err(e)) => Run::Failed(e),
        Err(e) => Run::Panicked(e.to_string()),
    }
}

/// One cell: what happened, and what is wrong with it (empty when every invariant holds).
struct Cell {
    text: String,
    problems: Vec<String>,
}

struct Observed<'a> {
    first: &'a Run,
    rerun: Option<&'a Run>,
    status: &'a str,
    alerts: usize,
    /// UpdateAccessKey requests for this key that reached IAM (forwarded, on time or late).
    updates: usize,
}

fn judge(scenario: &Scenario, profile: &str, o: &Observed) -> Cell {
    let mut problems = vec![];
    let mut reports = vec![];
    for (phase, run) in [("first run", Some(o.first)), ("re-run", o.rerun)] {
        match run {
            None => {}
            Some(Run::Done(report)) => reports.push(report),
            Some(Run::Panicked(why)) => problems.push(format!("{phase} panicked: {why}")),
            Some(Run::Failed(e)) if phase == "re-run" => problems.push(format!("re-run without faults failed: {e}")),
            Some(Run::Failed(e)) if !e.retryable() => problems.push(format!("not retryable: {} {e}", e.kind())),
            Some(Run::Failed(_)) => {}
        }
    }
    let deactivations = reports.iter().flat_map(|r| &r.decisions).filter(|d| d.action == Action::Deactivated).count();
    if deactivations > 1 {
        problems.push(format!("deactivated {deactivations} times"));
    }
    // A completed first run must have decided as without faults.
    if let Run::Done(report) = o.first {
        let got: Vec<(Verdict, Action)> = report.decisions.iter().map(|d| (d.verdict, d.action)).collect();
        let want = match scenario.expect {
            Expect::Deactivated => (Verdict::Violation, Action::Deactivated),
            Expect::Alerted(v) => (v, Action::Notified),
            Expect::Quiet(v) => (v, Action::None),
        };
        if got != [want] {
            problems.push(format!("decided {got:?}, expected {want:?}"));
        }
    }
    let known_lost = KNOWN_LOST_ALERTS.contains(&(scenario.name, profile));
    match scenario.expect {
        Expect::Deactivated if o.status != "Inactive" => problems.push(format!("key is {}", o.status)),
        Expect::Alerted(_) | Expect::Quiet(_) if o.status != "Active" => {
            problems.push(format!("a key that must stay active is {}", o.status))
        }
        _ => {}
    }
    match scenario.expect {
        Expect::Quiet(_) if o.alerts > 0 => problems.push(format!("{} alert(s) for a quiet key", o.alerts)),
        Expect::Deactivated | Expect::Alerted(_) if known_lost && o.alerts > 0 => problems.push(
            "alert delivered where it used to be lost: remove this cell from KNOWN_LOST_ALERTS (issue 8 §2)".into(),
        ),
        Expect::Deactivated | Expect::Alerted(_) if !known_lost && o.alerts == 0 => {
            problems.push("violation without an alert".into())
        }
        _ => {}
    }
    let first = match o.first {
        Run::Done(_) => "ok".to_string(),
        Run::Failed(e) => format!("{} (retryable)", e.kind().trim_start_matches("KeyGuard.")),
        Run::Panicked(_) => "PANIC".to_string(),
    };
    let then = match o.rerun {
        Some(Run::Done(_)) => " → ok",
        Some(_) => " → FAILED",
        None => "",
    };
    let alerts = match o.alerts {
        0 => "no alert".to_string(),
        1 => "1 alert".to_string(),
        n => format!("{n} alerts"),
    };
    let end = match scenario.expect {
        Expect::Deactivated if known_lost && o.alerts == 0 => {
            format!("inactive ({}× UpdateAccessKey), **alert lost** (§2)", o.updates)
        }
        Expect::Deactivated => format!("inactive ({}× UpdateAccessKey), {alerts}", o.updates),
        Expect::Alerted(_) => format!("active, {alerts}"),
        Expect::Quiet(v) => format!("{}, active, {alerts}", v.as_str()),
    };
    Cell { text: format!("{first}{then}: {end}"), problems }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_violation_is_acted_on_or_retryable_under_each_fault_profile_and_completes_once_faults_stop() {
    let moto = Moto::shared();
    let direct = moto.sdk().await;
    let iam = Iam::new(&direct);
    let sink = AlertSink::new(&direct).await.unwrap();
    let proxy = FaultProxy::start(&moto.endpoint).await.unwrap();
    let via_proxy = faults::sdk_config_with(&proxy.endpoint, TEST_SETTINGS).await;
    let table = unique("ledger");
    keyguard_aws::DynamoLedger::new(aws_sdk_dynamodb::Client::new(&direct), &table).create_table().await.unwrap();
    let guard = async |mode: &str, ledger: bool| {
        let mut vars =
            HashMap::from([("KEYGUARD_MODE", mode.to_string()), ("KEYGUARD_TOPIC_ARN", sink.topic_arn.clone())]);
        if ledger {
            vars.insert("KEYGUARD_LEDGER_TABLE", table.clone());
        }
        let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
        Arc::new(keyguard_aws::sdk_guard(&config, &via_proxy).await.unwrap())
    };
    let guards = HashMap::from([
        ("notify", guard("notify", false).await),
        ("deactivate", guard("deactivate", false).await),
        ("deactivate+ledger", guard("deactivate", true).await),
    ]);

    let mut rows = vec![];
    let mut problems = vec![];
    let mut traffic = vec![];
    for profile in PROFILES {
        let mut cases = vec![];
        proxy.clear();
        for scenario in SCENARIOS {
            cases.push(set_up(scenario, &iam, &guards[scenario.mode]).await);
        }
        proxy.take_seen();
        // The faults hold for each event's first run...
        let mut firsts = vec![];
        for (scenario, case) in SCENARIOS.iter().zip(&cases) {
            proxy.install((profile.schedule)());
            firsts.push(run(&guards[scenario.mode], &case.event).await);
        }
        // ...and are over for the re-run of those that failed, as on Lambda's retry a minute later.
        proxy.clear();
        let mut reruns = vec![];
        for ((scenario, case), first) in SCENARIOS.iter().zip(&cases).zip(&firsts) {
            let failed = matches!(first, Run::Failed(_));
            reruns.push(if failed { Some(run(&guards[scenario.mode], &case.event).await) } else { None });
        }
        let seen = proxy.take_seen();
        traffic.push((profile.name, seen.len(), seen.iter().filter(|s| s.fault.is_some()).count()));
        let alerts = sink.drain().await.unwrap();
        let mut row = vec![];
        for (i, (scenario, case)) in SCENARIOS.iter().zip(&cases).enumerate() {
            let status = iam.key_status(&case.user, &case.key).await.unwrap();
            let observed = Observed {
                first: &firsts[i],
                rerun: reruns[i].as_ref(),
                status: &status,
                alerts: alerts.iter().filter(|a| a.body["access_key"]["id"] == case.key.as_str()).count(),
                updates: seen
                    .iter()
                    .filter(|s| s.action == "UpdateAccessKey" && matches!(s.fault, None | Some(Slow(_))))
                    .filter(|s| s.param("AccessKeyId").as_deref() == Some(&case.key))
                    .count(),
            };
            let cell = judge(scenario, profile.name, &observed);
            problems.extend(cell.problems.iter().map(|p| format!("{} / {}: {p}", profile.name, scenario.name)));
            row.push(cell.text);
        }
        rows.push((profile.name, row));
    }

    let matrix = render(&rows, &traffic);
    println!("{matrix}");
    let target = keyguard_tests::target_dir();
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("fault-matrix.md"), &matrix).unwrap();
    assert!(problems.is_empty(), "invariants broken:\n{}", problems.join("\n"));
}

fn render(rows: &[(&str, Vec<String>)], traffic: &[(&str, usize, usize)]) -> String {
    let mut out = String::new();
    let s = TEST_SETTINGS;
    writeln!(out, "# KeyGuard under faults between it and AWS\n").unwrap();
    writeln!(
        out,
        "Produced by `cargo test -p keyguard-tests --test faults -- --nocapture`: the guard through the real SDK \
         clients and a fault-injecting proxy in front of moto. SDK settings of the test: {} attempts, attempt \
         timeout {} ms, operation timeout {} ms; a slow response comes {} ms late. Each profile holds during an \
         event's first run; an event that failed (`AwsError (retryable)`) is then run again without faults \
         (`→ ok`), as Lambda does a minute later. A cell gives the end state: the key's status, how many \
         `UpdateAccessKey` requests reached IAM, and how many alerts the topic's subscriber received.\n",
        s.max_attempts,
        s.attempt_timeout.as_millis(),
        s.operation_timeout.as_millis(),
        SLOW.as_millis()
    )
    .unwrap();
    write!(out, "| profile |").unwrap();
    for scenario in SCENARIOS {
        write!(out, " {} |", scenario.name).unwrap();
    }
    write!(out, "\n|---|").unwrap();
    for _ in SCENARIOS {
        write!(out, "---|").unwrap();
    }
    writeln!(out).unwrap();
    for (profile, cells) in rows {
        writeln!(out, "| {profile} | {} |", cells.join(" | ")).unwrap();
    }
    writeln!(
        out,
        "\nRequests through the proxy per profile (both runs, all scenarios). The SDK's retry quota is one per \
         process and service: once the sustained profiles have drained it, later failing calls get fewer attempts \
         (IAM slow, dropped connections), as in a long-lived Lambda instance during an outage.\n"
    )
    .unwrap();
    for (profile, seen, faulted) in traffic {
        writeln!(out, "- {profile}: {seen} requests, {faulted} faulted").unwrap();
    }
    out
}
