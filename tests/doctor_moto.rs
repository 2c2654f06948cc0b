//! `keyguard doctor` against moto: a healthy deployment passes, and each part broken in turn gives its ✘ line
//! and a non-zero exit. Two services moto cannot answer the SDK for are mocked with aws-smithy-mocks where a test
//! needs them: IAM's `SimulatePrincipalPolicy` (moto: HTTP 500) and CloudWatch (the SDK speaks Smithy RPC v2 CBOR,
//! moto does not). Against plain moto both are warnings ("unproven", "unknown"), never failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::types::{Dimension, MetricAlarm, StateValue};
use aws_sdk_iam::operation::simulate_principal_policy::{SimulatePrincipalPolicyInput, SimulatePrincipalPolicyOutput};
use aws_sdk_iam::types::{EvaluationResult, PolicyEvaluationDecisionType};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use keyguard_doctor::{Clients, Doctor, LiveOptions, Options, Report, Status};
use keyguard_tests::doctor::{Account, Deployed, deploy};
use keyguard_tests::{Moto, run_keyguard, unique};
use serde_json::Value;

async fn setup() -> (Account, Deployed) {
    let account = Account::fresh(Moto::shared()).await.unwrap();
    let deployed = deploy(&account.sdk, "keyguard").await.unwrap();
    (account, deployed)
}

async fn doctor(account: &Account) -> Report {
    Doctor::new(&account.sdk).run(&Options::default()).await
}

fn status(report: &Report, check: &str) -> Status {
    report.get(check).unwrap_or_else(|| panic!("no {check} line in\n{}", report.to_text())).status
}

/// The check failed, says `why`, and the doctor's verdict is "not live".
fn assert_fails(report: &Report, check: &str, why: &str) {
    let line = report.get(check).unwrap_or_else(|| panic!("no {check} line in\n{}", report.to_text()));
    assert_eq!(line.status, Status::Fail, "{}", report.to_text());
    assert!(line.detail.contains(why), "{check}: {:?} lacks {why:?}", line.detail);
    assert!(line.fix.as_deref().is_some_and(|f| !f.is_empty()), "{line:?}");
    assert!(!report.healthy(false));
}

/// What the policy simulator was asked: (resource, actions) per call.
type Asked = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// An IAM client whose policy simulator allows every action except `denied`, recording what it was asked.
fn simulator(denied: &'static [&'static str]) -> (aws_sdk_iam::Client, Asked) {
    let asked: Asked = Arc::default();
    let record = asked.clone();
    let rule = mock!(aws_sdk_iam::Client::simulate_principal_policy)
        .match_requests(move |req: &SimulatePrincipalPolicyInput| {
            let resource = req.resource_arns().first().cloned().unwrap_or_default();
            record.lock().unwrap().push((resource, req.action_names().to_vec()));
            true
        })
        .then_compute_output(move |req: &SimulatePrincipalPolicyInput| {
            let results = req
                .action_names()
                .iter()
                .map(|a| {
                    let decision = if denied.contains(&a.as_str()) {
                        PolicyEvaluationDecisionType::ImplicitDeny
                    } else {
                        PolicyEvaluationDecisionType::Allowed
                    };
                    EvaluationResult::builder().eval_action_name(a).eval_decision(decision).build().unwrap()
                })
                .collect();
            SimulatePrincipalPolicyOutput::builder().set_evaluation_results(Some(results)).is_truncated(false).build()
        });
    (mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&rule]), asked)
}

/// A CloudWatch client whose DescribeAlarms shows alarms on `function`, in the given states.
fn alarms(function: &str, states: &[(&str, StateValue)]) -> aws_sdk_cloudwatch::Client {
    let alarms: Vec<MetricAlarm> = states
        .iter()
        .map(|(name, state)| {
            MetricAlarm::builder()
                .alarm_name(*name)
                .alarm_description("KeyGuard guard invocations failed: read the function's log group.")
                .namespace("AWS/Lambda")
                .metric_name("Errors")
                .dimensions(Dimension::builder().name("FunctionName").value(function).build())
                .state_value(state.clone())
                .state_reason(if *state == StateValue::Alarm {
                    "Threshold Crossed: 1 datapoint [3.0] > 0.0"
                } else {
                    "no errors"
                })
                .build()
        })
        .collect();
    let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .then_output(move || DescribeAlarmsOutput::builder().set_metric_alarms(Some(alarms.clone())).build());
    mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule])
}

/// The doctor on moto, with the clients moto cannot serve replaced by mocks.
async fn doctor_with(
    account: &Account,
    iam: Option<aws_sdk_iam::Client>,
    cloudwatch: Option<aws_sdk_cloudwatch::Client>,
) -> Report {
    let mut clients = Clients::new(&account.sdk);
    if let Some(iam) = iam {
        clients.iam = iam;
    }
    if let Some(cloudwatch) = cloudwatch {
        clients.cloudwatch = cloudwatch;
    }
    Doctor::with_clients(clients).run(&Options::default()).await
}

// ------------------------------------------------------------------------------------------------ healthy

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_deployment_passes_every_check() {
    let (account, d) = setup().await;
    let report = doctor(&account).await;
    let text = report.to_text();
    for check in
        ["credentials", "cloudtrail", "stack", "function", "rule", "rule-pattern", "rule-target", "subscriptions"]
    {
        assert_eq!(status(&report, check), Status::Pass, "{check}\n{text}");
    }
    assert!(report.get("credentials").unwrap().detail.contains(&account.id), "{text}");
    assert!(
        report.get("cloudtrail").unwrap().detail.contains("trail management-events: logging, multi-region"),
        "{text}"
    );
    assert!(
        report.get("function").unwrap().detail.contains(&format!("{}: mode notify, window 10m", d.function_name)),
        "{text}"
    );
    assert!(report.get("rule-target").unwrap().detail.contains(&d.function_arn), "{text}");
    assert!(report.get("subscriptions").unwrap().detail.contains("1 confirmed (sqs)"), "{text}");
    // moto has no policy simulator and no CBOR CloudWatch: permissions unproven, alarms unknown, both warnings.
    assert_eq!(status(&report, "permissions"), Status::Warn, "{text}");
    assert_eq!(status(&report, "alarms"), Status::Warn, "{text}");
    assert!(report.healthy(false) && !report.healthy(true), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_policy_simulator_every_line_passes_and_it_is_asked_exactly_the_guard_s_actions() {
    let (account, d) = setup().await;
    let (iam, asked) = simulator(&[]);
    let cloudwatch = alarms(
        &d.function_name,
        &[
            ("keyguard-GuardErrorsAlarm", StateValue::Ok),
            ("keyguard-GuardThrottlesAlarm", StateValue::InsufficientData),
        ],
    );
    let report = doctor_with(&account, Some(iam), Some(cloudwatch)).await;
    assert!(report.healthy(true), "{}", report.to_text());
    assert_eq!(report.get("alarms").unwrap().detail, "2 alarm(s), none in ALARM (1 without data yet)");
    let line = report.get("permissions").unwrap();
    assert!(
        line.detail.contains(&format!("may call all {} actions", keyguard_aws::required_actions().len())),
        "{line:?}"
    );
    // Exactly the list of `keyguard permissions`, each asked about a resource its policy statement covers.
    let asked = asked.lock().unwrap().clone();
    let all: BTreeSet<String> = asked.iter().flat_map(|(_, a)| a.clone()).collect();
    let expected: BTreeSet<String> = keyguard_aws::required_actions().iter().map(|a| a.to_string()).collect();
    assert_eq!(all, expected);
    let publish = asked.iter().find(|(_, a)| a.contains(&"sns:Publish".to_string())).unwrap();
    assert_eq!(publish.0, d.topic_arn);
    let update = asked.iter().find(|(_, a)| a.contains(&"iam:UpdateAccessKey".to_string())).unwrap();
    assert!(update.0.starts_with(&format!("arn:aws:iam::{}:user/", account.id)), "{update:?}");
}

// ------------------------------------------------------------------------------------------------ broken, one part at a time

#[tokio::test(flavor = "multi_thread")]
async fn no_trail() {
    let (account, d) = setup().await;
    aws_sdk_cloudtrail::Client::new(&account.sdk).delete_trail().name("management-events").send().await.unwrap();
    let _ = &d;
    assert_fails(&doctor(&account).await, "cloudtrail", "no CloudTrail trail");
}

#[tokio::test(flavor = "multi_thread")]
async fn trail_stopped() {
    let (account, d) = setup().await;
    aws_sdk_cloudtrail::Client::new(&account.sdk).stop_logging().name(&d.trail_arn).send().await.unwrap();
    let report = doctor(&account).await;
    assert_fails(&report, "cloudtrail", "trail management-events is not logging");
    assert!(report.get("cloudtrail").unwrap().fix.as_deref().unwrap().contains("start-logging"));
}

#[tokio::test(flavor = "multi_thread")]
async fn trail_with_read_only_selectors() {
    use aws_sdk_cloudtrail::types::{EventSelector, ReadWriteType};
    let (account, d) = setup().await;
    let selector =
        EventSelector::builder().read_write_type(ReadWriteType::ReadOnly).include_management_events(true).build();
    aws_sdk_cloudtrail::Client::new(&account.sdk)
        .put_event_selectors()
        .trail_name(&d.trail_arn)
        .event_selectors(selector)
        .send()
        .await
        .unwrap();
    assert_fails(&doctor(&account).await, "cloudtrail", "logs, but not IAM's write events: ReadWriteType ReadOnly");
}

#[tokio::test(flavor = "multi_thread")]
async fn trail_with_advanced_selectors_for_read_events_only() {
    use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector};
    let (account, d) = setup().await;
    let field = |name: &str, value: &str| AdvancedFieldSelector::builder().field(name).equals(value).build().unwrap();
    let selector = AdvancedEventSelector::builder()
        .name("management reads")
        .field_selectors(field("eventCategory", "Management"))
        .field_selectors(field("readOnly", "true"))
        .build()
        .unwrap();
    aws_sdk_cloudtrail::Client::new(&account.sdk)
        .put_event_selectors()
        .trail_name(&d.trail_arn)
        .advanced_event_selectors(selector)
        .send()
        .await
        .unwrap();
    assert_fails(&doctor(&account).await, "cloudtrail", "advanced event selectors exclude IAM's CreateUser");
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_disabled() {
    let (account, d) = setup().await;
    aws_sdk_eventbridge::Client::new(&account.sdk).disable_rule().name(&d.rule_name).send().await.unwrap();
    let report = doctor(&account).await;
    assert_fails(&report, "rule", "is DISABLED");
    assert_eq!(
        report.get("rule").unwrap().fix.as_deref(),
        Some(format!("aws events enable-rule --name {}", d.rule_name).as_str())
    );
    assert_eq!(status(&report, "rule-target"), Status::Pass);
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_with_a_wrong_pattern() {
    let (account, d) = setup().await;
    // The pattern of an older template: no UpdateAccessKey, and failed calls let through.
    let pattern = r#"{"source": ["aws.iam"], "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": ["CreateUser", "CreateLoginProfile", "CreateAccessKey"]}}"#;
    aws_sdk_eventbridge::Client::new(&account.sdk)
        .put_rule()
        .name(&d.rule_name)
        .event_pattern(pattern)
        .send()
        .await
        .unwrap();
    let report = doctor(&account).await;
    assert_fails(&report, "rule-pattern", "detail.eventName UpdateAccessKey");
    assert!(report.get("rule-pattern").unwrap().detail.contains("errorCode"));
    assert_eq!(status(&report, "rule"), Status::Pass);
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_without_a_target() {
    let (account, d) = setup().await;
    aws_sdk_eventbridge::Client::new(&account.sdk)
        .remove_targets()
        .rule(&d.rule_name)
        .ids("keyguard-guard")
        .send()
        .await
        .unwrap();
    assert_fails(&doctor(&account).await, "rule-target", "has no target, not the function");
}

#[tokio::test(flavor = "multi_thread")]
async fn function_with_a_bad_environment() {
    use aws_sdk_lambda::types::Environment;
    let (account, d) = setup().await;
    let env =
        Environment::builder().variables("KEYGUARD_MODE", "loud").variables("KEYGUARD_TOPIC_ARN", &d.topic_arn).build();
    aws_sdk_lambda::Client::new(&account.sdk)
        .update_function_configuration()
        .function_name(&d.function_name)
        .environment(env)
        .send()
        .await
        .unwrap();
    let report = doctor(&account).await;
    assert_fails(
        &report,
        "function",
        "would refuse to start: KEYGUARD_MODE: \"loud\" is not one of notify, deactivate, dry-run",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_without_a_confirmed_subscription() {
    let (account, d) = setup().await;
    aws_sdk_sns::Client::new(&account.sdk).unsubscribe().subscription_arn(&d.subscription_arn).send().await.unwrap();
    assert_fails(&doctor(&account).await, "subscriptions", "has no subscription: alerts reach nobody");
}

#[tokio::test(flavor = "multi_thread")]
async fn alarm_in_alarm() {
    let (account, d) = setup().await;
    let cloudwatch = alarms(
        &d.function_name,
        &[("keyguard-GuardErrorsAlarm", StateValue::Alarm), ("keyguard-GuardThrottlesAlarm", StateValue::Ok)],
    );
    let report = doctor_with(&account, None, Some(cloudwatch)).await;
    assert_fails(&report, "alarms", "keyguard-GuardErrorsAlarm is in ALARM (Threshold Crossed");
    assert!(!report.get("alarms").unwrap().detail.contains("Throttles"));
    assert_eq!(
        report.get("alarms").unwrap().fix.as_deref(),
        Some("KeyGuard guard invocations failed: read the function's log group.")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_action_in_the_policy_simulation() {
    let (account, d) = setup().await;
    let (iam, _) = simulator(&["iam:UpdateAccessKey"]);
    let report = doctor_with(
        &account,
        Some(iam),
        Some(alarms(&d.function_name, &[("keyguard-GuardErrorsAlarm", StateValue::Ok)])),
    )
    .await;
    assert_fails(&report, "permissions", "is denied iam:UpdateAccessKey (implicitDeny)");
    assert_eq!(report.checks.iter().filter(|c| c.status == Status::Fail).count(), 1, "{}", report.to_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_stack_but_the_function_is_found_by_its_environment() {
    let (account, d) = setup().await;
    let report = Doctor::new(&account.sdk).run(&Options { stack: "keyguard-prod".into(), ..Options::default() }).await;
    let line = report.get("stack").unwrap();
    assert_eq!(line.status, Status::Warn, "{}", report.to_text());
    assert!(
        line.detail.contains(&format!("found function {} by its KEYGUARD_* environment", d.function_name)),
        "{line:?}"
    );
    // The rest is found from the function: its rule by target, its topic from its environment.
    for check in ["function", "rule", "rule-pattern", "rule-target", "subscriptions"] {
        assert_eq!(status(&report, check), Status::Pass, "{check}\n{}", report.to_text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_deployed() {
    let account = Account::fresh(Moto::shared()).await.unwrap();
    let report = doctor(&account).await;
    assert_fails(&report, "stack", "the guard is not deployed here");
    assert_fails(&report, "cloudtrail", "no CloudTrail trail");
}

// ------------------------------------------------------------------------------------------------ organization

#[tokio::test(flavor = "multi_thread")]
async fn organization_mode_assumes_the_member_role_in_each_account() {
    use aws_sdk_lambda::types::Environment;
    let (account, d) = setup().await;
    let members = ["210987654321", "310987654321"];
    let env = Environment::builder()
        .variables("KEYGUARD_TOPIC_ARN", &d.topic_arn)
        .variables("KEYGUARD_MEMBER_ROLE", "keyguard-member")
        .variables("KEYGUARD_ACCOUNTS", format!("{},{}", members.join(","), account.id))
        .build();
    aws_sdk_lambda::Client::new(&account.sdk)
        .update_function_configuration()
        .function_name(&d.function_name)
        .environment(env)
        .send()
        .await
        .unwrap();
    let report = doctor(&account).await;
    // The function's own account is not a member; each member's role was assumed (moto grants any AssumeRole)
    // and its simulation attempted (moto: HTTP 500, so unproven).
    assert!(report.get(&format!("member {}", account.id)).is_none());
    for member in members {
        let line = report.get(&format!("member {member}")).unwrap_or_else(|| panic!("{}", report.to_text()));
        assert_eq!(line.status, Status::Warn, "{line:?}");
        assert!(line.detail.contains(&format!("arn:aws:iam::{member}:role/keyguard-member")), "{line:?}");
    }
}

// ------------------------------------------------------------------------------------------------ --live

/// Plays the function for the canary: when a user appears under /keyguard-canary/ with a key, writes the
/// decision line the guard logs about it into the function's log group.
async fn stand_in_function(account_sdk: aws_config::SdkConfig, log_group: String) {
    let iam = aws_sdk_iam::Client::new(&account_sdk);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&account_sdk);
    let stream = unique("2025/03/11/[$LATEST]stand-in");
    logs.create_log_stream().log_group_name(&log_group).log_stream_name(&stream).send().await.unwrap();
    loop {
        let users = iam.list_users().path_prefix("/keyguard-canary/").send().await.unwrap();
        for user in users.users() {
            let keys = iam.list_access_keys().user_name(user.user_name()).send().await.unwrap();
            if let Some(key) = keys.access_key_metadata().first().and_then(|k| k.access_key_id()) {
                let line = serde_json::json!({
                    "timestamp": "2025-03-11T14:02:09.118Z", "level": "INFO", "message": "decision",
                    "event_id": "0b6b8b1e-canary", "event_name": "CreateAccessKey", "user": user.user_name(),
                    "access_key_id": key, "verdict": "exempt", "action": "none",
                    "reason": "exempt (tag keyguard:exempt)", "latency_ms": 38
                });
                let event = aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(chrono::Utc::now().timestamp_millis())
                    .message(line.to_string())
                    .build()
                    .unwrap();
                logs.put_log_events()
                    .log_group_name(&log_group)
                    .log_stream_name(&stream)
                    .log_events(event)
                    .send()
                    .await
                    .unwrap();
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn canaries_left(account: &Account) -> usize {
    let iam = aws_sdk_iam::Client::new(&account.sdk);
    iam.list_users().path_prefix("/keyguard-canary/").send().await.unwrap().users().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn live_canary_reaches_the_function_and_is_deleted() {
    let (account, d) = setup().await;
    let function = tokio::spawn(stand_in_function(account.sdk.clone(), d.log_group.clone()));
    let options = Options {
        live: Some(LiveOptions { timeout: Duration::from_secs(30), poll: Duration::from_millis(100) }),
        ..Options::default()
    };
    let report = Doctor::new(&account.sdk).run(&options).await;
    function.await.unwrap();
    let line = report.get("live").unwrap();
    assert_eq!(line.status, Status::Pass, "{}", report.to_text());
    assert!(line.detail.contains("the function logged its decision (exempt)"), "{line:?}");
    assert!(line.detail.ends_with("canary deleted"), "{line:?}");
    assert_eq!(canaries_left(&account).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn live_canary_without_an_answer_fails_and_is_still_deleted() {
    let (account, d) = setup().await;
    let options = Options {
        live: Some(LiveOptions { timeout: Duration::from_millis(500), poll: Duration::from_millis(100) }),
        ..Options::default()
    };
    let report = Doctor::new(&account.sdk).run(&options).await;
    assert_fails(&report, "live", &format!("in {} within 0.5 s", d.log_group));
    assert!(report.get("live").unwrap().detail.ends_with("canary deleted"));
    assert_eq!(canaries_left(&account).await, 0);
}

// ------------------------------------------------------------------------------------------------ its own permissions

/// Records every operation the doctor's clients send, as IAM action names (`lambda:ListFunctions`).
#[derive(Debug, Clone, Default)]
struct Sent(Arc<Mutex<BTreeSet<String>>>);

impl aws_sdk_iam::config::Intercept for Sent {
    fn name(&self) -> &'static str {
        "DoctorActionRecorder"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_iam::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_iam::config::RuntimeComponents,
        cfg: &mut aws_sdk_iam::config::ConfigBag,
    ) -> Result<(), aws_sdk_iam::error::BoxError> {
        if let Some(m) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            let prefix = match m.service() {
                "IAM" => "iam",
                "STS" => "sts",
                "CloudTrail" => "cloudtrail",
                "CloudFormation" => "cloudformation",
                "Lambda" => "lambda",
                "EventBridge" => "events",
                "SNS" => "sns",
                "CloudWatch" => "cloudwatch",
                "CloudWatch Logs" => "logs",
                other => other,
            };
            self.0.lock().unwrap().insert(format!("{prefix}:{}", m.name()));
        }
        Ok(())
    }
}

/// The doctor's clients, each recording what it sends.
fn recording_clients(sdk: &aws_config::SdkConfig, sent: &Sent) -> Clients {
    let sdk = sdk.to_builder().region(aws_config::Region::new("us-east-1")).build();
    let mut c = Clients::new(&sdk);
    c.sts = aws_sdk_sts::Client::from_conf(aws_sdk_sts::config::Builder::from(&sdk).interceptor(sent.clone()).build());
    c.iam = aws_sdk_iam::Client::from_conf(aws_sdk_iam::config::Builder::from(&sdk).interceptor(sent.clone()).build());
    c.cloudtrail = aws_sdk_cloudtrail::Client::from_conf(
        aws_sdk_cloudtrail::config::Builder::from(&sdk).interceptor(sent.clone()).build(),
    );
    c.cloudformation = aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::config::Builder::from(&sdk).interceptor(sent.clone()).build(),
    );
    c.lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk).interceptor(sent.clone()).build(),
    );
    c.events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk).interceptor(sent.clone()).build(),
    );
    c.sns = aws_sdk_sns::Client::from_conf(aws_sdk_sns::config::Builder::from(&sdk).interceptor(sent.clone()).build());
    c.cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(&sdk).interceptor(sent.clone()).build(),
    );
    c.logs = aws_sdk_cloudwatchlogs::Client::from_conf(
        aws_sdk_cloudwatchlogs::config::Builder::from(&sdk).interceptor(sent.clone()).build(),
    );
    c
}

fn sent(s: &Sent) -> BTreeSet<String> {
    s.0.lock().unwrap().clone()
}

fn declared(live: bool) -> BTreeSet<String> {
    keyguard_doctor::required_actions(live).iter().map(|a| a.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_the_doctor_makes_is_in_permissions_doctor() {
    let (account, d) = setup().await;
    // Read-only runs: through the stack, and without it (functions listed, the rule found by its target).
    let reads = Sent::default();
    let doctor = Doctor::with_clients(recording_clients(&account.sdk, &reads));
    doctor.run(&Options::default()).await;
    doctor.run(&Options { stack: "elsewhere".into(), ..Options::default() }).await;
    let read_calls = sent(&reads);
    for expected in [
        "cloudtrail:GetEventSelectors",
        "events:ListRuleNamesByTarget",
        "lambda:ListFunctions",
        "iam:SimulatePrincipalPolicy",
    ] {
        assert!(read_calls.contains(expected), "{expected} not exercised: {read_calls:?}");
    }
    let undeclared: Vec<String> = read_calls.difference(&declared(false)).cloned().collect();
    assert!(undeclared.is_empty(), "called but not in `keyguard permissions --doctor`: {undeclared:?}");

    // --live, with the canary answered.
    let live = Sent::default();
    let function = tokio::spawn(stand_in_function(account.sdk.clone(), d.log_group.clone()));
    let options = Options {
        live: Some(LiveOptions { timeout: Duration::from_secs(30), poll: Duration::from_millis(100) }),
        ..Options::default()
    };
    let report = Doctor::with_clients(recording_clients(&account.sdk, &live)).run(&options).await;
    function.await.unwrap();
    assert_eq!(status(&report, "live"), Status::Pass, "{}", report.to_text());
    let live_calls = sent(&live);
    assert!(
        live_calls.contains("iam:CreateAccessKey") && live_calls.contains("logs:FilterLogEvents"),
        "{live_calls:?}"
    );
    let undeclared: Vec<String> = live_calls.difference(&declared(true)).cloned().collect();
    assert!(undeclared.is_empty(), "called but not in `keyguard permissions --doctor --live`: {undeclared:?}");
}

// ------------------------------------------------------------------------------------------------ the binary

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_prints_the_checklist_and_exits_by_it() {
    let (account, d) = setup().await;
    let env = account.env.clone();
    let out =
        tokio::task::spawn_blocking(move || run_keyguard(&["doctor", "--format", "json", "--allow-warnings"], &env))
            .await
            .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = checks.as_array().unwrap();
    for c in checks {
        let mut keys = c.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        keys.sort();
        assert_eq!(keys, ["check", "detail", "fix", "status"]);
    }
    let by_name = |n: &str| checks.iter().find(|c| c["check"] == n).unwrap().clone();
    assert_eq!(by_name("cloudtrail")["status"], "pass");
    assert_eq!(by_name("rule")["status"], "pass");
    assert_eq!(by_name("permissions")["status"], "warn");
    assert_eq!(by_name("alarms")["status"], "warn");

    // By default the unproven permissions (a warning) are enough to fail: exit 0 only when every check passed.
    let env = account.env.clone();
    let out = tokio::task::spawn_blocking(move || run_keyguard(&["doctor"], &env)).await.unwrap();
    assert_eq!(out.status.code(), Some(1));

    // One part broken: its ✘ line, the fix under it, exit code 1.
    aws_sdk_eventbridge::Client::new(&account.sdk).disable_rule().name(&d.rule_name).send().await.unwrap();
    let env = account.env.clone();
    let out = tokio::task::spawn_blocking(move || run_keyguard(&["doctor"], &env)).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("✘ rule           {} is DISABLED", d.rule_name)), "{text}");
    assert!(text.contains(&format!("fix: aws events enable-rule --name {}", d.rule_name)), "{text}");
    assert!(text.contains("✔ cloudtrail"), "{text}");
    assert!(text.contains("the guardrail is NOT live"), "{text}");
}

#[test]
fn without_credentials_one_line_says_what_to_do() {
    let env = vec![
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
        ("AWS_CONFIG_FILE".to_string(), "/nonexistent/keyguard-config".to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE".to_string(), "/nonexistent/keyguard-credentials".to_string()),
    ];
    let out = run_keyguard(&["doctor"], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("✘ credentials  no usable AWS credentials"), "{text}");
    assert!(text.contains("fix: sign in: `aws sso login"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with('✘')).count(), 1, "{text}");
}

#[test]
fn permissions_doctor_prints_the_doctor_s_read_only_list() {
    let out = run_keyguard(&["permissions", "--doctor"], &[]);
    let actions: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(actions, keyguard_doctor::required_actions(false));
    let out = run_keyguard(&["permissions", "--doctor", "--live"], &[]);
    let actions: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(actions, keyguard_doctor::required_actions(true));
    let out = run_keyguard(&["permissions"], &[]);
    let actions: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(actions, keyguard_aws::required_actions());
}
