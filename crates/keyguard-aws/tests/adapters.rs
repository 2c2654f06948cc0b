#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Adapter tests (DESIGN.md §4): `SdkIam` and `SdkSns` over `aws-smithy-mocks` clients, and the `Guard` running
//! on top of them. The SDK really serializes every request and deserializes every wire error (IAM/SNS XML bodies),
//! so the error mapping is tested against what the SDK produces, not against hand-built error values.
//!
//! Every guard run also records which API actions the clients actually sent (from the query body's `Action=`),
//! and checks each against `keyguard_aws::required_actions()`: a new call without a declared permission fails here.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_iam::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_iam::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_iam::error::BoxError;
use aws_sdk_iam::operation::get_access_key_last_used::GetAccessKeyLastUsedOutput;
use aws_sdk_iam::operation::get_login_profile::GetLoginProfileOutput;
use aws_sdk_iam::operation::get_user::{GetUserError, GetUserOutput};
use aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput;
use aws_sdk_iam::operation::update_access_key::UpdateAccessKeyOutput;
use aws_sdk_iam::types::{AccessKeyLastUsed, AccessKeyMetadata, LoginProfile, StatusType, Tag, User};
use aws_sdk_sns::operation::publish::{PublishInput, PublishOutput};
use aws_smithy_mocks::{Rule, RuleBuilder, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use keyguard_aws::accounts::OneAccount;
use keyguard_aws::ports::{AlertPublisher, Deactivation, IamReader, KeyDeactivator};
use keyguard_aws::{
    AwsError, AwsErrorKind, Consistency, DynamoLedger, Guard, GuardError, SdkIam, SdkSns, SdkSweepQueue,
};
use keyguard_core::{Action, Alert, AlertFacts, Config, EventReport, Principal, Verdict};
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";
const USER: &str = "maria.silva";
const USER_ID: &str = "AIDAYQ3EXAMPLEMARIA01";
const KEY: &str = "AKIAYQ3EXAMPLEMARIA1";
const OTHER_KEY: &str = "AKIAYQ3EXAMPLEMARIA2";
const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:keyguard";
const ADMIN: &str =
    "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_AdministratorAccess_4f7c2a9e1b3d5c60/priya.nair@example.com";

/// Fast re-reads, so that the lagging-IAM tests take tens of milliseconds.
const FAST: Consistency =
    Consistency { reads: 4, first_delay: Duration::from_millis(10), horizon: TimeDelta::seconds(60) };

// ---------------------------------------------------------------------------------------------------------------
// Mock plumbing
// ---------------------------------------------------------------------------------------------------------------

/// `iam:GetUser`, `sns:Publish`, ... as sent on the wire.
type Seen = Arc<Mutex<BTreeSet<String>>>;

/// Records the action of every request a client transmits. IAM and SNS speak the query protocol, so the body is
/// `Action=<Operation>&Version=...&...`; the action is read from the request itself, whatever rule answers it.
#[derive(Debug)]
struct Recorder {
    service: &'static str,
    seen: Seen,
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "KeyGuardActionRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = String::from_utf8_lossy(context.request().body().bytes().unwrap_or_default()).into_owned();
        let action = body.split('&').find_map(|pair| pair.strip_prefix("Action=")).unwrap_or("<no Action in body>");
        self.seen.lock().unwrap().insert(format!("{}:{action}", self.service));
        Ok(())
    }
}

fn new_seen() -> Seen {
    Arc::new(Mutex::new(BTreeSet::new()))
}

/// An IAM client answered by `rules`. SDK retries are off unless asked for, so `num_calls` counts API calls.
fn iam_client_with(rules: &[&Rule], seen: &Seen, retry: RetryConfig) -> aws_sdk_iam::Client {
    let seen = seen.clone();
    mock_client!(aws_sdk_iam, RuleMode::MatchAny, rules, move |c| c
        .retry_config(retry.clone())
        .interceptor(Recorder { service: "iam", seen: seen.clone() }))
}

fn iam_client(rules: &[&Rule], seen: &Seen) -> aws_sdk_iam::Client {
    iam_client_with(rules, seen, RetryConfig::disabled())
}

fn sns_client(rules: &[&Rule], seen: &Seen) -> aws_sdk_sns::Client {
    let seen = seen.clone();
    mock_client!(aws_sdk_sns, RuleMode::MatchAny, rules, move |c| c
        .retry_config(RetryConfig::disabled())
        .interceptor(Recorder { service: "sns", seen: seen.clone() }))
}

/// A query-protocol error body, as IAM and SNS send it.
fn query_error(xmlns: &str, code: &str, message: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="{xmlns}"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId></ErrorResponse>"#
    )
}

/// A rule answering every matching call with an HTTP error carrying the service's XML error body.
fn http_error<I, O, E>(builder: RuleBuilder<I, O, E>, status: u16, xmlns: &str, code: &str, message: &str) -> Rule
where
    I: std::fmt::Debug + Send + Sync + 'static,
    O: std::fmt::Debug + Send + Sync + 'static,
    E: std::fmt::Debug + Send + Sync + std::error::Error + 'static,
{
    builder.sequence().http_status(status, Some(query_error(xmlns, code, message))).repeatedly().build()
}

const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const SNS_NS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

fn iam_error<I, O, E>(builder: RuleBuilder<I, O, E>, status: u16, code: &str) -> Rule
where
    I: std::fmt::Debug + Send + Sync + 'static,
    O: std::fmt::Debug + Send + Sync + 'static,
    E: std::fmt::Debug + Send + Sync + std::error::Error + 'static,
{
    let message = match code {
        "NoSuchEntity" => format!("The user with name {USER} cannot be found."),
        "Throttling" => "Rate exceeded".to_string(),
        "AccessDenied" => format!(
            "User: arn:aws:sts::{ACCOUNT}:assumed-role/keyguard-guard/fn is not authorized to perform this action"
        ),
        other => format!("{other} (test)"),
    };
    http_error(builder, status, IAM_NS, code, &message)
}

fn aws_time(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(t.timestamp())
}

/// Whole seconds: what IAM returns and what the guard compares.
fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

// Outputs --------------------------------------------------------------------------------------------------------

fn user_output(created: DateTime<Utc>) -> GetUserOutput {
    let user = User::builder()
        .path("/people/")
        .user_name(USER)
        .user_id(USER_ID)
        .arn(format!("arn:aws:iam::{ACCOUNT}:user/people/{USER}"))
        .create_date(aws_time(created))
        .tags(Tag::builder().key("team").value("payments").build().unwrap())
        .build()
        .unwrap();
    GetUserOutput::builder().user(user).build()
}

fn login_profile_output(created: DateTime<Utc>) -> GetLoginProfileOutput {
    let profile = LoginProfile::builder()
        .user_name(USER)
        .create_date(aws_time(created))
        .password_reset_required(true)
        .build()
        .unwrap();
    GetLoginProfileOutput::builder().login_profile(profile).build()
}

fn keys_output(keys: &[(&str, DateTime<Utc>, StatusType)]) -> ListAccessKeysOutput {
    let metadata = keys
        .iter()
        .map(|(id, created, status)| {
            AccessKeyMetadata::builder()
                .user_name(USER)
                .access_key_id(*id)
                .status(status.clone())
                .create_date(aws_time(*created))
                .build()
        })
        .collect();
    ListAccessKeysOutput::builder().set_access_key_metadata(Some(metadata)).is_truncated(false).build().unwrap()
}

// Rules ---------------------------------------------------------------------------------------------------------

fn get_user_ok(created: DateTime<Utc>) -> Rule {
    mock!(aws_sdk_iam::Client::get_user)
        .match_requests(|r| r.user_name() == Some(USER))
        .then_output(move || user_output(created))
}

fn login_profile_ok(created: DateTime<Utc>) -> Rule {
    mock!(aws_sdk_iam::Client::get_login_profile)
        .match_requests(|r| r.user_name() == Some(USER))
        .then_output(move || login_profile_output(created))
}

fn keys_ok(keys: Vec<(&'static str, DateTime<Utc>, StatusType)>) -> Rule {
    mock!(aws_sdk_iam::Client::list_access_keys)
        .match_requests(|r| r.user_name() == Some(USER))
        .then_output(move || keys_output(&keys))
}

/// Answers only the request the guard must send: this user, this key, Inactive.
fn update_ok() -> Rule {
    mock!(aws_sdk_iam::Client::update_access_key)
        .match_requests(|r| {
            r.user_name() == Some(USER) && r.access_key_id() == Some(KEY) && r.status() == Some(&StatusType::Inactive)
        })
        .then_output(|| UpdateAccessKeyOutput::builder().build())
}

/// GetAccessKeyLastUsed: `used` Some(when) or never.
fn last_used(used: Option<DateTime<Utc>>) -> Rule {
    mock!(aws_sdk_iam::Client::get_access_key_last_used).then_output(move || {
        let mut last = AccessKeyLastUsed::builder().service_name("N/A").region("N/A");
        if let Some(t) = used {
            last = last.last_used_date(aws_smithy_types::DateTime::from_secs(t.timestamp())).service_name("s3");
        }
        GetAccessKeyLastUsedOutput::builder().user_name(USER).access_key_last_used(last.build().unwrap()).build()
    })
}

/// Succeeds and keeps every request, for inspection.
fn publish_capturing(captured: &Arc<Mutex<Vec<PublishInput>>>) -> Rule {
    let captured = captured.clone();
    mock!(aws_sdk_sns::Client::publish).then_compute_output(move |req| {
        captured.lock().unwrap().push(req.clone());
        PublishOutput::builder().message_id("6f1c4d2e-0000-4000-8000-00000000a1e7").build()
    })
}

// ---------------------------------------------------------------------------------------------------------------
// 1. SdkIam: the adapter's mapping
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_user_maps_every_field() {
    let created = secs(Utc::now() - TimeDelta::minutes(5));
    let rule = get_user_ok(created);
    let iam = SdkIam::new(iam_client(&[&rule], &new_seen()));
    let user = iam.get_user(USER).await.unwrap().expect("the user exists");
    assert_eq!(user.name, USER);
    assert_eq!(user.user_id, USER_ID);
    assert_eq!(user.arn, format!("arn:aws:iam::{ACCOUNT}:user/people/{USER}"));
    assert_eq!(user.path, "/people/");
    assert_eq!(user.created, created);
    assert_eq!(user.tags, vec![("team".to_string(), "payments".to_string())]);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn get_user_no_such_entity_is_none() {
    let rule = iam_error(mock!(aws_sdk_iam::Client::get_user), 404, "NoSuchEntity");
    let iam = SdkIam::new(iam_client(&[&rule], &new_seen()));
    assert_eq!(iam.get_user(USER).await, Ok(None));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn get_login_profile_maps_create_date_and_no_such_entity_is_none() {
    let created = secs(Utc::now() - TimeDelta::seconds(90));
    let present = login_profile_ok(created);
    let iam = SdkIam::new(iam_client(&[&present], &new_seen()));
    assert_eq!(iam.get_login_profile(USER).await, Ok(Some(created)));

    let absent = iam_error(mock!(aws_sdk_iam::Client::get_login_profile), 404, "NoSuchEntity");
    let iam = SdkIam::new(iam_client(&[&absent], &new_seen()));
    assert_eq!(iam.get_login_profile(USER).await, Ok(None));
    assert_eq!(absent.num_calls(), 1);
}

#[tokio::test]
async fn list_access_keys_maps_status_and_create_date() {
    let first = secs(Utc::now() - TimeDelta::days(3));
    let second = secs(Utc::now() - TimeDelta::seconds(7));
    let rule = keys_ok(vec![(KEY, first, StatusType::Active), (OTHER_KEY, second, StatusType::Inactive)]);
    let iam = SdkIam::new(iam_client(&[&rule], &new_seen()));
    let keys = iam.list_access_keys(USER).await.unwrap().expect("the user exists");
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0].id.as_str(), keys[0].created, keys[0].active), (KEY, first, true));
    assert_eq!((keys[1].id.as_str(), keys[1].created, keys[1].active), (OTHER_KEY, second, false));

    let none = keys_ok(vec![]);
    let iam = SdkIam::new(iam_client(&[&none], &new_seen()));
    assert_eq!(iam.list_access_keys(USER).await, Ok(Some(vec![])));

    let gone = iam_error(mock!(aws_sdk_iam::Client::list_access_keys), 404, "NoSuchEntity");
    let iam = SdkIam::new(iam_client(&[&gone], &new_seen()));
    assert_eq!(iam.list_access_keys(USER).await, Ok(None));
}

/// What each wire error becomes, for every read.
#[tokio::test]
async fn read_errors_map_to_kinds() {
    let cases: &[(u16, &str, AwsErrorKind)] = &[
        (400, "Throttling", AwsErrorKind::Throttled),
        (403, "AccessDenied", AwsErrorKind::AccessDenied),
        (500, "ServiceFailure", AwsErrorKind::Other),
        (409, "ConcurrentModification", AwsErrorKind::Other),
    ];
    for &(status, code, kind) in cases {
        let get_user = iam_error(mock!(aws_sdk_iam::Client::get_user), status, code);
        let get_login_profile = iam_error(mock!(aws_sdk_iam::Client::get_login_profile), status, code);
        let list_access_keys = iam_error(mock!(aws_sdk_iam::Client::list_access_keys), status, code);
        let iam = SdkIam::new(iam_client(&[&get_user, &get_login_profile, &list_access_keys], &new_seen()));

        let e = iam.get_user(USER).await.unwrap_err();
        assert_eq!((e.operation, e.kind), ("iam:GetUser", kind), "{code}: {e}");
        assert!(e.message.contains(code), "the message keeps the service's code: {e}");
        let e = iam.get_login_profile(USER).await.unwrap_err();
        assert_eq!((e.operation, e.kind), ("iam:GetLoginProfile", kind), "{code}: {e}");
        let e = iam.list_access_keys(USER).await.unwrap_err();
        assert_eq!((e.operation, e.kind), ("iam:ListAccessKeys", kind), "{code}: {e}");
        assert_eq!(
            (get_user.num_calls(), get_login_profile.num_calls(), list_access_keys.num_calls()),
            (1, 1, 1),
            "{code}: retries are off in this test"
        );
    }
}

/// The same code reached another way: a modeled (unhandled) error, no HTTP body involved.
#[tokio::test]
async fn modeled_throttling_error_is_throttled() {
    let rule = mock!(aws_sdk_iam::Client::get_user).then_error(|| {
        GetUserError::generic(ErrorMetadata::builder().code("Throttling").message("Rate exceeded").build())
    });
    let iam = SdkIam::new(iam_client(&[&rule], &new_seen()));
    let e = iam.get_user(USER).await.unwrap_err();
    assert_eq!(e.kind, AwsErrorKind::Throttled, "{e}");
}

/// With the SDK's standard retries on (as deployed), throttling is retried first and still classified after.
#[tokio::test]
async fn throttling_survives_sdk_retries_as_throttled() {
    let rule = iam_error(mock!(aws_sdk_iam::Client::get_user), 400, "Throttling");
    let retry = RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1));
    let iam = SdkIam::new(iam_client_with(&[&rule], &new_seen(), retry));
    let e = iam.get_user(USER).await.unwrap_err();
    assert_eq!(e.kind, AwsErrorKind::Throttled, "{e}");
    assert_eq!(rule.num_calls(), 3, "the SDK retried twice before giving up");
}

#[tokio::test]
async fn update_access_key_sends_user_key_and_inactive() {
    let rule = update_ok();
    let iam = SdkIam::new(iam_client(&[&rule], &new_seen()));
    assert_eq!(iam.deactivate(USER, KEY).await, Ok(Deactivation::Done));
    // The rule matches only UserName + AccessKeyId + Status=Inactive; any other request would find no rule.
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn update_access_key_no_such_entity_is_gone_and_denied_is_access_denied() {
    let gone = iam_error(mock!(aws_sdk_iam::Client::update_access_key), 404, "NoSuchEntity");
    let iam = SdkIam::new(iam_client(&[&gone], &new_seen()));
    assert_eq!(iam.deactivate(USER, KEY).await, Ok(Deactivation::Gone));

    let denied = iam_error(mock!(aws_sdk_iam::Client::update_access_key), 403, "AccessDenied");
    let iam = SdkIam::new(iam_client(&[&denied], &new_seen()));
    let e = iam.deactivate(USER, KEY).await.unwrap_err();
    assert_eq!((e.operation, e.kind), ("iam:UpdateAccessKey", AwsErrorKind::AccessDenied), "{e}");
}

// ---------------------------------------------------------------------------------------------------------------
// 2. SdkSns
// ---------------------------------------------------------------------------------------------------------------

fn sample_alert() -> Alert {
    let user_created = secs(Utc::now() - TimeDelta::seconds(42));
    Alert::render(&AlertFacts {
        account: ACCOUNT.into(),
        user_name: USER.into(),
        user_arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/{USER}")),
        user_created,
        access_key_id: KEY.into(),
        key_created: user_created + TimeDelta::seconds(42),
        has_password: true,
        creator: Some(Principal {
            kind: "AssumedRole".into(),
            arn: Some(ADMIN.into()),
            account_id: Some(ACCOUNT.into()),
            user_name: None,
            issuer_arn: None,
            invoked_by: None,
        }),
        source_ip: Some("203.0.113.7".into()),
        user_agent: Some("aws-cli/2.15.0".into()),
        event_id: "0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a".into(),
        event_name: "CreateAccessKey".into(),
        verdict: Verdict::Violation,
        reason: "access key created 42 seconds after the user, during setup of a console user".into(),
        action: Action::Notified,
        note: None,
        kind: keyguard_core::AlertKind::Finding,
        account_alias: None,
        exempt_tag: ("keyguard:exempt".into(), "true".into()),
    })
}

#[tokio::test]
async fn publish_sends_json_structure_subject_attributes_and_default() {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let rule = publish_capturing(&captured);
    let sns = SdkSns::new(sns_client(&[&rule], &new_seen()), TOPIC);
    let alert = sample_alert();

    let id = sns.publish(&alert).await.unwrap();
    assert_eq!(id, "6f1c4d2e-0000-4000-8000-00000000a1e7");
    assert_eq!(rule.num_calls(), 1);

    let sent = captured.lock().unwrap().pop().expect("one request");
    assert_eq!(sent.topic_arn(), Some(TOPIC));
    assert_eq!(sent.message_structure(), Some("json"));

    let subject = sent.subject().expect("a subject");
    assert_eq!(subject, alert.subject);
    assert!(!subject.is_empty() && subject.len() < 100, "{subject:?}");
    assert!(subject.chars().all(|c| (' '..='~').contains(&c)), "printable ASCII, no newline: {subject:?}");
    assert!(subject.contains(KEY) && subject.contains(USER), "{subject:?}");

    let attributes = sent.message_attributes().expect("message attributes");
    let names: BTreeSet<&str> = attributes.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["account", "action", "kind", "rule", "user", "verdict"]));
    for (name, value) in &alert.attributes {
        let sent_value = &attributes[name];
        assert_eq!(sent_value.data_type(), "String", "{name}");
        assert_eq!(sent_value.string_value(), Some(value.as_str()), "{name}");
    }
    assert_eq!(attributes["user"].string_value(), Some(USER));
    assert_eq!(attributes["verdict"].string_value(), Some("violation"));
    assert_eq!(attributes["action"].string_value(), Some("notified"));
    assert_eq!(attributes["account"].string_value(), Some(ACCOUNT));

    let message: Value = serde_json::from_str(sent.message().expect("a message")).expect("the message is JSON");
    assert_eq!(message["default"].as_str(), Some(alert.text.as_str()), "MessageStructure=json needs `default`");
    let machine: Value = serde_json::from_str(message["sqs"].as_str().expect("an sqs entry")).unwrap();
    assert_eq!(machine, alert.json);
    assert!(sent.message().unwrap().len() <= 256 * 1024);
}

#[tokio::test]
async fn publish_errors_map_to_kinds() {
    let cases: &[(u16, &str, AwsErrorKind)] = &[
        (400, "Throttled", AwsErrorKind::Throttled),
        (403, "AuthorizationError", AwsErrorKind::AccessDenied),
        (404, "NotFound", AwsErrorKind::NotFound),
        (500, "InternalError", AwsErrorKind::Other),
    ];
    for &(status, code, kind) in cases {
        let rule = http_error(mock!(aws_sdk_sns::Client::publish), status, SNS_NS, code, "test");
        let sns = SdkSns::new(sns_client(&[&rule], &new_seen()), TOPIC);
        let e = sns.publish(&sample_alert()).await.unwrap_err();
        assert_eq!((e.operation, e.kind), ("sns:Publish", kind), "{code}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 3. The Guard over the SDK adapters
// ---------------------------------------------------------------------------------------------------------------

fn config(mode: &str) -> Config {
    let vars: HashMap<&str, &str> = HashMap::from([("KEYGUARD_MODE", mode), ("KEYGUARD_TOPIC_ARN", TOPIC)]);
    Config::from_lookup(|name| vars.get(name).map(|v| v.to_string())).unwrap()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn envelope(event_time: DateTime<Utc>, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": "3d4e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": ACCOUNT,
        "time": stamp(event_time),
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    })
}

fn admin_identity() -> Value {
    json!({
        "type": "AssumedRole",
        "principalId": "AROAYQ3EXAMPLEA7KX2PQ:priya.nair@example.com",
        "arn": ADMIN,
        "accountId": ACCOUNT,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "arn": "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdministratorAccess_4f7c2a9e1b3d5c60",
                "accountId": ACCOUNT,
                "userName": "AWSReservedSSO_AdministratorAccess_4f7c2a9e1b3d5c60"
            },
            "attributes": {"creationDate": "2025-03-13T15:10:44Z", "mfaAuthenticated": "false"}
        }
    })
}

/// An administrator (SSO session) creates an access key for `maria.silva`.
fn create_access_key_event(event_time: DateTime<Utc>) -> Value {
    envelope(
        event_time,
        json!({
            "eventVersion": "1.11",
            "userIdentity": admin_identity(),
            "eventTime": stamp(event_time),
            "eventSource": "iam.amazonaws.com",
            "eventName": "CreateAccessKey",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": {"userName": USER},
            "responseElements": {"accessKey": {
                "userName": USER, "accessKeyId": KEY, "status": "Active",
                "createDate": event_time.format("%b %-d, %Y %-I:%M:%S %p").to_string()
            }},
            "requestID": "8e7f6a5b-4c3d-4e2f-9a1b-0c9d8e7f6a5b",
            "eventID": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management"
        }),
    )
}

/// The administrator gives `maria.silva` a console password.
fn create_login_profile_event(event_time: DateTime<Utc>) -> Value {
    envelope(
        event_time,
        json!({
            "eventVersion": "1.11",
            "userIdentity": admin_identity(),
            "eventTime": stamp(event_time),
            "eventSource": "iam.amazonaws.com",
            "eventName": "CreateLoginProfile",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": {"userName": USER, "passwordResetRequired": true},
            "responseElements": {"loginProfile": {
                "userName": USER, "passwordResetRequired": true,
                "createDate": event_time.format("%b %-d, %Y %-I:%M:%S %p").to_string()
            }},
            "eventID": "6f7a8b9c-0d1e-4f2a-b3c4-d5e6f7a8b9c0",
            "eventType": "AwsApiCall",
            "recipientAccountId": ACCOUNT
        }),
    )
}

/// The guard over one mocked account, without a ledger or a sweep queue.
type MockGuard = Guard<OneAccount<SdkIam>, DynamoLedger, SdkSns, SdkSweepQueue>;

/// One account's IAM and SNS as the mocks show them, and what the guard did to them.
struct World {
    get_user: Rule,
    get_login_profile: Rule,
    list_access_keys: Rule,
    update_access_key: Rule,
    last_used: Rule,
    alias: Rule,
    publish: Rule,
    published: Arc<Mutex<Vec<PublishInput>>>,
    seen: Seen,
}

impl World {
    /// A console user created 30 s before `event_time` (its password with it), whose key was created by an
    /// administrator at `event_time`: a violation, once IAM shows the key.
    fn violation(event_time: DateTime<Utc>) -> World {
        let user_created = secs(event_time - TimeDelta::seconds(30));
        let published = Arc::new(Mutex::new(Vec::new()));
        World {
            get_user: get_user_ok(user_created),
            get_login_profile: login_profile_ok(user_created),
            list_access_keys: keys_ok(vec![(KEY, secs(event_time), StatusType::Active)]),
            update_access_key: update_ok(),
            last_used: last_used(None),
            alias: mock!(aws_sdk_iam::Client::list_account_aliases).then_output(|| {
                aws_sdk_iam::operation::list_account_aliases::ListAccountAliasesOutput::builder()
                    .account_aliases("acme-prod")
                    .is_truncated(false)
                    .build()
                    .unwrap()
            }),
            publish: publish_capturing(&published),
            published,
            seen: new_seen(),
        }
    }

    fn guard(&self, mode: &str) -> MockGuard {
        let iam = iam_client(
            &[
                &self.get_user,
                &self.get_login_profile,
                &self.list_access_keys,
                &self.update_access_key,
                &self.last_used,
                &self.alias,
            ],
            &self.seen,
        );
        let sns = sns_client(&[&self.publish], &self.seen);
        let accounts = OneAccount::new(ACCOUNT, SdkIam::new(iam));
        Guard::new(accounts, None, Some(SdkSns::new(sns, TOPIC)), None, &config(mode)).unwrap().with_consistency(FAST)
    }

    /// Runs one event through a fresh guard, then checks every call it sent is a declared permission.
    async fn run(&self, mode: &str, event: &Value) -> Result<EventReport, GuardError> {
        let result = self.guard(mode).handle(event).await;
        let declared = keyguard_aws::required_actions();
        for action in self.seen() {
            assert!(declared.contains(&action.as_str()), "{action} was called but is not in required_actions()");
        }
        result
    }

    fn seen(&self) -> BTreeSet<String> {
        self.seen.lock().unwrap().clone()
    }

    /// (UpdateAccessKey, Publish) calls: what the guard acted on.
    fn effects(&self) -> (usize, usize) {
        (self.update_access_key.num_calls(), self.publish.num_calls())
    }
}

fn only_decision(report: &EventReport) -> &keyguard_core::Decision {
    assert_eq!(report.decisions.len(), 1, "{report:?}");
    &report.decisions[0]
}

/// 3a. IAM does not show the new key at first: the guard re-reads, then decides.
#[tokio::test]
async fn guard_rereads_while_iam_lags_then_decides_violation() {
    let now = Utc::now();
    let lagging = mock!(aws_sdk_iam::Client::list_access_keys)
        .match_requests(|r| r.user_name() == Some(USER))
        .sequence()
        .output(|| keys_output(&[]))
        .output(move || keys_output(&[(KEY, secs(now), StatusType::Active)]))
        .repeatedly()
        .build();
    let w = World { list_access_keys: lagging, ..World::violation(now) };

    let report = w.run("notify", &create_access_key_event(now)).await.unwrap();
    let d = only_decision(&report);
    assert_eq!(d.verdict, Verdict::Violation, "{d:?}");
    assert_eq!(d.access_key_id.as_deref(), Some(KEY));
    assert_eq!(d.action, Action::Notified);
    assert_eq!(report.user.as_deref(), Some(USER));
    assert_eq!(w.list_access_keys.num_calls(), 2, "one read without the key, one with it");
    assert_eq!(w.effects(), (0, 1));
}

/// 3a'. Same for the password after CreateLoginProfile: a key created before it becomes a violation (alerted).
#[tokio::test]
async fn guard_rereads_lagging_password_after_create_login_profile() {
    let now = Utc::now();
    let user_created = secs(now - TimeDelta::seconds(60));
    let lagging = mock!(aws_sdk_iam::Client::get_login_profile)
        .match_requests(|r| r.user_name() == Some(USER))
        .sequence()
        .http_status(
            404,
            Some(query_error(IAM_NS, "NoSuchEntity", "Login Profile for User maria.silva cannot be found.")),
        )
        .output(move || login_profile_output(secs(now)))
        .repeatedly()
        .build();
    let w = World {
        get_user: get_user_ok(user_created),
        get_login_profile: lagging,
        list_access_keys: keys_ok(vec![(KEY, secs(now - TimeDelta::seconds(30)), StatusType::Active)]),
        ..World::violation(now)
    };

    let report = w.run("deactivate", &create_login_profile_event(now)).await.unwrap();
    let d = only_decision(&report);
    // The password's event does not name the key's creator: alert, never deactivate.
    assert_eq!((d.verdict, d.action), (Verdict::Violation, Action::Notified), "{d:?}");
    assert!(d.reason.contains("before the console password"), "{}", d.reason);
    assert_eq!(w.get_login_profile.num_calls(), 2);
    assert_eq!(w.effects(), (0, 1));
}

/// 3b. IAM keeps lagging and the event is young: retry later, act on nothing.
#[tokio::test]
async fn guard_young_event_still_inconsistent_is_retryable_and_acts_on_nothing() {
    let now = Utc::now();
    let w = World { list_access_keys: keys_ok(vec![]), ..World::violation(now) };

    let err = w.run("deactivate", &create_access_key_event(now)).await.unwrap_err();
    assert!(matches!(&err, GuardError::NotYetConsistent { what, .. } if what.contains(KEY)), "{err:?}");
    assert!(err.retryable());
    assert_eq!(err.kind(), "KeyGuard.NotYetConsistent");
    assert_eq!(w.list_access_keys.num_calls(), FAST.reads as usize, "every read was tried");
    assert_eq!(w.effects(), (0, 0));
}

/// 3c. The same, but the event is an hour old: the key was deleted meanwhile, an outcome, not an error.
#[tokio::test]
async fn guard_old_event_with_key_missing_is_compliant_gone() {
    let then = Utc::now() - TimeDelta::hours(1);
    let w = World { list_access_keys: keys_ok(vec![]), ..World::violation(then) };

    let report = w.run("deactivate", &create_access_key_event(then)).await.unwrap();
    let d = only_decision(&report);
    assert_eq!((d.verdict, d.action), (Verdict::Compliant, Action::None), "{d:?}");
    assert!(d.reason.contains("no longer exists"), "{}", d.reason);
    assert_eq!(w.effects(), (0, 0));
}

/// 3c'. A young event with a zero horizon: also gone.
#[tokio::test]
async fn guard_zero_horizon_treats_missing_key_as_gone() {
    let now = Utc::now();
    let w = World { list_access_keys: keys_ok(vec![]), ..World::violation(now) };
    let guard = w.guard("deactivate").with_consistency(Consistency { horizon: TimeDelta::zero(), ..FAST });

    let report = guard.handle(&create_access_key_event(now)).await.unwrap();
    let d = only_decision(&report);
    assert_eq!(d.verdict, Verdict::Compliant, "{d:?}");
    assert!(d.reason.contains("no longer exists"), "{}", d.reason);
    assert_eq!(w.effects(), (0, 0));
}

/// 3d. A failed read is never acted on: GetUser throttled.
#[tokio::test]
async fn guard_throttled_read_is_retryable_and_acts_on_nothing() {
    let now = Utc::now();
    let w =
        World { get_user: iam_error(mock!(aws_sdk_iam::Client::get_user), 400, "Throttling"), ..World::violation(now) };

    let err = w.run("deactivate", &create_access_key_event(now)).await.unwrap_err();
    match &err {
        GuardError::Aws { source: AwsError { operation, kind, .. }, .. } => {
            assert_eq!((*operation, *kind), ("iam:GetUser", AwsErrorKind::Throttled));
        }
        other => panic!("expected an AWS error, got {other:?}"),
    }
    assert!(err.retryable());
    assert_eq!(err.kind(), "KeyGuard.AwsError");
    assert_eq!(w.effects(), (0, 0));
}

/// 3d'. A denied read: not retryable (fix the role), nothing acted on.
#[tokio::test]
async fn guard_denied_read_is_not_retryable_and_acts_on_nothing() {
    let now = Utc::now();
    let w = World {
        get_login_profile: iam_error(mock!(aws_sdk_iam::Client::get_login_profile), 403, "AccessDenied"),
        ..World::violation(now)
    };

    let err = w.run("deactivate", &create_access_key_event(now)).await.unwrap_err();
    assert!(matches!(&err, GuardError::Aws { source, .. } if source.kind == AwsErrorKind::AccessDenied), "{err:?}");
    assert!(!err.retryable());
    assert_eq!(err.kind(), "KeyGuard.AccessDenied");
    assert_eq!(w.effects(), (0, 0));
}

/// 3e. UpdateAccessKey denied in deactivate mode without a ledger: the alert went first (it cannot be lost), saying
/// so; the event fails, not retryable (fix the role).
#[tokio::test]
async fn guard_denied_deactivation_without_a_ledger_is_not_retryable_after_its_alert() {
    let now = Utc::now();
    let w = World {
        update_access_key: iam_error(mock!(aws_sdk_iam::Client::update_access_key), 403, "AccessDenied"),
        ..World::violation(now)
    };

    let err = w.run("deactivate", &create_access_key_event(now)).await.unwrap_err();
    assert!(
        matches!(&err, GuardError::Aws { source, .. }
            if source.kind == AwsErrorKind::AccessDenied && source.operation == "iam:UpdateAccessKey"),
        "{err:?}"
    );
    assert!(!err.retryable());
    assert_eq!(err.kind(), "KeyGuard.AccessDenied");
    assert_eq!(w.effects(), (1, 1));
    let sent = w.published.lock().unwrap().pop().unwrap();
    assert!(sent.message().unwrap().contains("no ledger: this alert goes out first"));
}

/// 3f. Without a ledger the alert goes before the deactivation: when it cannot be sent, nothing is deactivated and
/// the event fails (retryable), so the retry alerts and deactivates (never a silent deactivation).
#[tokio::test]
async fn guard_without_a_ledger_failed_publish_deactivates_nothing_and_is_retryable() {
    let now = Utc::now();
    let w = World {
        publish: http_error(mock!(aws_sdk_sns::Client::publish), 500, SNS_NS, "InternalError", "try again"),
        ..World::violation(now)
    };

    let err = w.run("deactivate", &create_access_key_event(now)).await.unwrap_err();
    assert!(
        matches!(&err, GuardError::Aws { source, .. } if source.operation == "sns:Publish"
            && source.kind == AwsErrorKind::Other),
        "{err:?}"
    );
    assert!(err.retryable());
    assert_eq!(w.effects(), (0, 1), "publish tried once, nothing deactivated");
}

/// 3f'. A violation whose key has been used is not deactivated (a late event must not switch off a key in use):
/// it is alerted "would deactivate, key in use".
#[tokio::test]
async fn guard_does_not_deactivate_a_key_in_use() {
    let now = Utc::now();
    let w = World { last_used: last_used(Some(now - TimeDelta::minutes(3))), ..World::violation(now) };
    let report = w.run("deactivate", &create_access_key_event(now)).await.unwrap();
    let d = only_decision(&report);
    assert_eq!((d.verdict, d.action), (Verdict::Violation, Action::Notified), "{d:?}");
    assert!(d.note.as_deref().unwrap_or("").contains("would deactivate, key in use"), "{d:?}");
    assert_eq!(w.effects(), (0, 1));
    let sent = w.published.lock().unwrap().pop().unwrap();
    assert!(sent.message().unwrap().contains("would deactivate, key in use"));
}

/// 3g. Dry-run decides and changes nothing.
#[tokio::test]
async fn guard_dry_run_changes_and_publishes_nothing() {
    let now = Utc::now();
    let w = World::violation(now);

    let report = w.run("dry-run", &create_access_key_event(now)).await.unwrap();
    let d = only_decision(&report);
    assert_eq!((d.verdict, d.action), (Verdict::Violation, Action::DryRun), "{d:?}");
    assert_eq!(w.effects(), (0, 0));
}

/// 3g'. Notify publishes one alert and changes nothing.
#[tokio::test]
async fn guard_notify_publishes_once_and_changes_nothing() {
    let now = Utc::now();
    let w = World::violation(now);

    let report = w.run("notify", &create_access_key_event(now)).await.unwrap();
    let d = only_decision(&report);
    assert_eq!((d.verdict, d.action), (Verdict::Violation, Action::Notified), "{d:?}");
    assert!(d.reason.contains(ADMIN), "the creator is named: {}", d.reason);
    assert_eq!(w.effects(), (0, 1));
    let sent = w.published.lock().unwrap().pop().unwrap();
    let attributes = sent.message_attributes().unwrap();
    assert_eq!(attributes["action"].string_value(), Some("notified"));
    assert_eq!(attributes["verdict"].string_value(), Some("violation"));
}

/// 3g''. Deactivate sets exactly that key inactive, then alerts saying so and how to re-enable it.
#[tokio::test]
async fn guard_deactivate_sets_the_key_inactive_then_alerts() {
    let now = Utc::now();
    let w = World {
        // The user's other (older) key must never be touched: update_ok() matches only KEY.
        list_access_keys: keys_ok(vec![
            (OTHER_KEY, secs(now - TimeDelta::seconds(20)), StatusType::Active),
            (KEY, secs(now), StatusType::Active),
        ]),
        ..World::violation(now)
    };

    let report = w.run("deactivate", &create_access_key_event(now)).await.unwrap();
    let d = only_decision(&report);
    assert_eq!((d.verdict, d.action), (Verdict::Violation, Action::Deactivated), "{d:?}");
    assert_eq!(w.effects(), (1, 1));
    let sent = w.published.lock().unwrap().pop().unwrap();
    let attributes = sent.message_attributes().unwrap();
    assert_eq!(attributes["action"].string_value(), Some("deactivated"));
    assert_eq!(attributes["account"].string_value(), Some(ACCOUNT));
    assert_eq!(report.account_alias.as_deref(), Some("acme-prod"), "the alias is read once there is something to tell");
    let message: Value = serde_json::from_str(sent.message().unwrap()).unwrap();
    let text = message["default"].as_str().unwrap();
    assert!(
        text.contains(&format!("aws iam update-access-key --user-name {USER} --access-key-id {KEY} --status Active")),
        "{text}"
    );
}

/// A duplicate delivery after a deactivation finds the key inactive: nothing is done twice, nothing fails.
#[tokio::test]
async fn guard_duplicate_delivery_finds_key_inactive_and_does_nothing() {
    let now = Utc::now();
    let w = World { list_access_keys: keys_ok(vec![(KEY, secs(now), StatusType::Inactive)]), ..World::violation(now) };

    let report = w.run("deactivate", &create_access_key_event(now)).await.unwrap();
    let d = only_decision(&report);
    assert_eq!((d.verdict, d.action), (Verdict::Compliant, Action::None), "{d:?}");
    assert!(d.reason.contains("already inactive"), "{}", d.reason);
    assert_eq!(w.effects(), (0, 0));
}

/// The key was deleted between the read and the deactivation: compliant (gone), no alert, no error.
#[tokio::test]
async fn guard_key_deleted_before_deactivation_is_gone_not_error() {
    let now = Utc::now();
    let w = World {
        update_access_key: iam_error(mock!(aws_sdk_iam::Client::update_access_key), 404, "NoSuchEntity"),
        ..World::violation(now)
    };

    let report = w.run("deactivate", &create_access_key_event(now)).await.unwrap();
    let d = only_decision(&report);
    assert_eq!((d.verdict, d.action), (Verdict::Compliant, Action::None), "{d:?}");
    assert!(d.reason.contains("no longer exists"), "{}", d.reason);
    // Without a ledger the alert went before the deactivation (so that it can never be lost).
    assert_eq!(w.effects(), (1, 1));
}

/// Only dry-run may run without a topic.
#[test]
fn guard_without_topic_needs_dry_run() {
    let iam = iam_client(&[], &new_seen());
    let accounts = || OneAccount::new(ACCOUNT, SdkIam::new(iam.clone()));
    let err = MockGuard::new(accounts(), None, None, None, &config("notify"))
        .err()
        .expect("notify without a topic is refused");
    assert_eq!(err.variable, "KEYGUARD_TOPIC_ARN");
    assert!(MockGuard::new(accounts(), None, None, None, &config("dry-run")).is_ok());
}

// ---------------------------------------------------------------------------------------------------------------
// 3h. Declared permissions
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn required_actions_cover_the_ports_and_every_call_the_guard_makes() {
    let declared = keyguard_aws::required_actions();
    assert!(declared.windows(2).all(|pair| pair[0] < pair[1]), "sorted, no duplicates: {declared:?}");
    // Every port's declared actions are in the list (more ports, e.g. the audit's, may add to it).
    for port in
        [<SdkIam as IamReader>::ACTIONS, <SdkIam as KeyDeactivator>::ACTIONS, <SdkSns as AlertPublisher>::ACTIONS]
    {
        for action in port {
            assert!(declared.contains(action), "{action} is declared by a port but missing from {declared:?}");
        }
    }

    // A deactivation with an alert exercises every call the guard makes. What the clients really sent must be
    // declared (World::run checks this in every guard test); the exact set pins the recorder and the guard's calls.
    let now = Utc::now();
    let w = World::violation(now);
    w.run("deactivate", &create_access_key_event(now)).await.unwrap();
    let seen = w.seen();
    let expected: BTreeSet<String> = [
        "iam:GetAccessKeyLastUsed",
        "iam:GetLoginProfile",
        "iam:GetUser",
        "iam:ListAccessKeys",
        "iam:ListAccountAliases",
        "iam:UpdateAccessKey",
        "sns:Publish",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(seen, expected);
    for action in &seen {
        assert!(declared.contains(&action.as_str()), "{action} was called but is not in required_actions()");
    }
}
