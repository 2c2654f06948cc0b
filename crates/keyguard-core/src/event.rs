//! Lenient parsing of CloudTrail IAM events into a small model.
//!
//! Two inputs share one reader: EventBridge events (the Lambda and `keyguard handle`) and the bare CloudTrail
//! records of log archives (`keyguard replay`). Real events vary (DESIGN.md §2): `"sessionIssuer": {}`,
//! `requestParameters: null`, no `userAgent`, string booleans, three date formats. So the detail is read field by
//! field from a `serde_json::Value` and a missing or odd field never fails the parse; only an input that is not
//! an event at all is an error.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::parse_time;

const IAM_SOURCE: &str = "iam.amazonaws.com";

/// What the guard was handed.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A CloudTrail record of an API call (any service, any name, failed or not).
    Call(Box<IamCall>),
    /// The daily schedule's event: run the reconciliation sweep.
    Scheduled { id: String, time: Option<DateTime<Utc>> },
    /// An EventBridge event of another kind; not ours to act on.
    Other { id: String, source: String, detail_type: String },
}

/// An input that is not an event at all. Names the event id when the input has one, so it can be found again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", event_label(.event_id))]
pub struct ParseError {
    pub event_id: Option<String>,
    pub problem: String,
}

fn event_label(id: &Option<String>) -> String {
    match id {
        Some(id) => format!("event {id}"),
        None => "input without an event id".to_string(),
    }
}

/// Who made a call (`userIdentity`). Deserialize: replay spills calls to disk and reads them back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// `userIdentity.type`: `IAMUser`, `AssumedRole`, `Root`, `FederatedUser`, `AWSService`, `IdentityCenterUser`, ...
    pub kind: String,
    pub arn: Option<String>,
    pub account_id: Option<String>,
    /// The IAM user's name, for `IAMUser` callers only.
    pub user_name: Option<String>,
    /// For assumed roles: the role behind the session.
    pub issuer_arn: Option<String>,
    /// A service acting for the caller (`invokedBy`, e.g. `cloudformation.amazonaws.com`).
    pub invoked_by: Option<String>,
}

impl Principal {
    /// Whether this caller is the IAM user `name` itself (IAM names are unique case-insensitively).
    pub fn is_iam_user(&self, name: &str) -> bool {
        self.kind == "IAMUser" && self.user_name.as_deref().is_some_and(|own| own.eq_ignore_ascii_case(name))
    }

    pub fn is_root(&self) -> bool {
        self.kind == "Root"
    }

    /// The best single name for humans and for creator exemptions: the ARN, else the service, else the type.
    pub fn label(&self) -> String {
        self.arn.clone().or_else(|| self.invoked_by.clone()).unwrap_or_else(|| self.kind.clone())
    }
}

/// One CloudTrail API call, reduced to what the rule and the alert need.
#[derive(Debug, Clone, PartialEq)]
pub struct IamCall {
    /// `detail.eventID` (unique per CloudTrail record; the key for deduplication).
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    /// When the call happened (`detail.eventTime`): the creation time of what it created.
    pub event_time: DateTime<Utc>,
    /// The account the call changed: `detail.recipientAccountId` (else the envelope's, else the caller's).
    pub account: Option<String>,
    /// The EventBridge envelope's `account`, when there is one: on AWS it agrees with `recipientAccountId`, also
    /// after forwarding between buses; the guard refuses an event where they disagree.
    pub envelope_account: Option<String>,
    pub region: Option<String>,
    pub caller: Principal,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Present on failed calls, which are never acted on.
    pub error_code: Option<String>,
    /// The IAM user the call is about, by DESIGN.md §2's order of evidence.
    pub target_user: Option<String>,
    /// For `CreateAccessKey`: the new key's id; for `UpdateAccessKey`: the key changed.
    pub access_key_id: Option<String>,
    /// For `UpdateAccessKey`: the status set (`Active` or `Inactive`).
    pub key_status: Option<String>,
    /// For `CreateUser`: the new user's id, ARN, path and tags as the response gave them.
    pub user_id: Option<String>,
    pub user_arn: Option<String>,
    pub user_path: Option<String>,
    pub tags: Vec<(String, String)>,
    /// `addendum.reason == DELIVERY_DELAY`: the event arrived late.
    pub delivery_delayed: bool,
}

impl IamCall {
    pub fn is_iam(&self) -> bool {
        self.event_source == IAM_SOURCE
    }
}

/// Parses an EventBridge event (as the Lambda receives it).
pub fn parse_event(input: &Value) -> Result<Incoming, ParseError> {
    let envelope_id = input.get("id").and_then(Value::as_str).map(str::to_string);
    let fail = |problem: String| ParseError {
        event_id: input
            .get("detail")
            .and_then(|d| d.get("eventID"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| envelope_id.clone()),
        problem,
    };
    if !input.is_object() {
        return Err(fail(format!("expected a JSON object, got {}", json_kind(input))));
    }
    // The crate's envelope type checks the EventBridge fields; the detail stays a Value we read leniently.
    let envelope: EventBridgeEvent<Value> =
        serde_json::from_value(input.clone()).map_err(|e| fail(format!("not an EventBridge event: {e}")))?;
    let id = envelope.id.clone().unwrap_or_default();
    if envelope.detail_type == "Scheduled Event" && envelope.source == "aws.events" {
        return Ok(Incoming::Scheduled { id, time: envelope.time });
    }
    // Only IAM's own CloudTrail events are calls the guard reads; anything else is refused by the guard with its
    // source and detail-type in the log.
    if envelope.detail_type != "AWS API Call via CloudTrail" || envelope.source != "aws.iam" {
        return Ok(Incoming::Other { id, source: envelope.source, detail_type: envelope.detail_type });
    }
    if !envelope.detail.is_object() {
        return Err(fail(format!("`detail` is {}, not a CloudTrail record", json_kind(&envelope.detail))));
    }
    let call = parse_record(&envelope.detail, envelope.time, envelope.account.as_deref())
        .map_err(|problem| fail(problem.to_string()))?;
    Ok(Incoming::Call(Box::new(IamCall {
        event_id: if call.event_id.is_empty() { id } else { call.event_id.clone() },
        envelope_account: envelope.account.clone().filter(|a| !a.is_empty()),
        ..call
    })))
}

/// Parses one CloudTrail record (an element of a log file's `Records`, or an EventBridge event's `detail`).
/// `fallback_time` and `fallback_account` come from an envelope, when there is one.
pub fn parse_record(
    detail: &Value,
    fallback_time: Option<DateTime<Utc>>,
    fallback_account: Option<&str>,
) -> Result<IamCall, &'static str> {
    if !detail.is_object() {
        return Err("a CloudTrail record must be a JSON object");
    }
    let event_time =
        text(detail, &["eventTime"]).and_then(|t| parse_time(&t)).or(fallback_time).ok_or("no readable `eventTime`")?;
    let event_name = text(detail, &["eventName"]).ok_or("no `eventName`")?;
    let identity = detail.get("userIdentity").unwrap_or(&Value::Null);
    let caller = Principal {
        kind: text(identity, &["type"]).unwrap_or_else(|| "Unknown".to_string()),
        arn: text(identity, &["arn"]),
        account_id: text(identity, &["accountId"]),
        user_name: if text(identity, &["type"]).as_deref() == Some("IAMUser") {
            text(identity, &["userName"])
        } else {
            None
        },
        issuer_arn: text(identity, &["sessionContext", "sessionIssuer", "arn"]),
        invoked_by: text(identity, &["invokedBy"]),
    };
    let request = detail.get("requestParameters").unwrap_or(&Value::Null);
    let response = detail.get("responseElements").unwrap_or(&Value::Null);
    let target_user = text(request, &["userName"])
        .or_else(|| text(response, &["accessKey", "userName"]))
        .or_else(|| text(response, &["loginProfile", "userName"]))
        .or_else(|| text(response, &["user", "userName"]))
        // A self-service IAM call names no user: the target is the calling IAM user. Root's own key has none.
        .or_else(|| {
            (text(detail, &["eventSource"]).as_deref() == Some(IAM_SOURCE)).then(|| caller.user_name.clone()).flatten()
        });
    let tags = tags_of(response.get("user").and_then(|u| u.get("tags")))
        .or_else(|| tags_of(request.get("tags")))
        .unwrap_or_default();
    Ok(IamCall {
        event_id: text(detail, &["eventID"]).unwrap_or_default(),
        event_source: text(detail, &["eventSource"]).unwrap_or_default(),
        event_name,
        event_time,
        account: text(detail, &["recipientAccountId"])
            .or_else(|| fallback_account.map(str::to_string))
            .or_else(|| caller.account_id.clone()),
        envelope_account: None,
        region: text(detail, &["awsRegion"]),
        source_ip: text(detail, &["sourceIPAddress"]),
        user_agent: text(detail, &["userAgent"]),
        error_code: text(detail, &["errorCode"]),
        target_user,
        access_key_id: text(response, &["accessKey", "accessKeyId"]).or_else(|| text(request, &["accessKeyId"])),
        key_status: text(request, &["status"]),
        user_id: text(response, &["user", "userId"]),
        user_arn: text(response, &["user", "arn"]),
        user_path: text(response, &["user", "path"]).or_else(|| text(request, &["path"])),
        tags,
        delivery_delayed: text(detail, &["addendum", "reason"]).as_deref() == Some("DELIVERY_DELAY"),
        caller,
    })
}

/// A non-empty string at `path`, or None (a missing field, null, or another type all read as absent).
fn text(value: &Value, path: &[&str]) -> Option<String> {
    let mut at = value;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// CloudTrail writes tags as `[{"key": .., "value": ..}]`.
fn tags_of(value: Option<&Value>) -> Option<Vec<(String, String)>> {
    let list = value?.as_array()?;
    Some(list.iter().filter_map(|t| Some((text(t, &["key"])?, text(t, &["value"]).unwrap_or_default()))).collect())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(v: Value) -> IamCall {
        match parse_event(&v).unwrap() {
            Incoming::Call(c) => *c,
            other => panic!("not a call: {other:?}"),
        }
    }

    fn envelope(detail: Value) -> Value {
        json!({"version": "0", "id": "env-1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam",
               "account": "111122223333", "time": "2025-03-11T14:03:15Z", "region": "us-east-1",
               "resources": [], "detail": detail})
    }

    #[test]
    fn self_service_key_targets_the_caller() {
        let c = call(envelope(json!({
            "eventID": "e1", "eventName": "CreateAccessKey", "eventSource": "iam.amazonaws.com",
            "eventTime": "2025-03-11T14:03:15Z",
            "userIdentity": {"type": "IAMUser", "userName": "kenji", "arn": "arn:aws:iam::1:user/kenji"},
            "requestParameters": null,
            "responseElements": {"accessKey": {"accessKeyId": "AKIA1", "status": "Active"}}
        })));
        assert_eq!(c.target_user.as_deref(), Some("kenji"));
        assert!(c.caller.is_iam_user("KENJI"));
        assert_eq!(c.access_key_id.as_deref(), Some("AKIA1"));
        assert_eq!(c.account.as_deref(), Some("111122223333"));
    }

    #[test]
    fn roots_own_key_has_no_target() {
        let c = call(envelope(json!({
            "eventID": "e2", "eventName": "CreateAccessKey", "eventSource": "iam.amazonaws.com",
            "eventTime": "2025-03-11T14:03:15Z",
            "userIdentity": {"type": "Root", "arn": "arn:aws:iam::1:root", "sessionContext": {"sessionIssuer": {}}},
            "requestParameters": null,
            "responseElements": {"accessKey": {"accessKeyId": "AKIA2", "status": "Active"}}
        })));
        assert_eq!(c.target_user, None);
        assert!(c.caller.is_root());
    }

    #[test]
    fn missing_event_time_falls_back_to_the_envelope() {
        let c = call(envelope(json!({"eventID": "e3", "eventName": "CreateUser"})));
        assert_eq!(c.event_time.to_rfc3339(), "2025-03-11T14:03:15+00:00");
    }

    #[test]
    fn errors_name_the_event_id() {
        let mut v = envelope(json!({"eventID": "e4", "eventName": "CreateUser", "eventTime": "yesterday"}));
        v.as_object_mut().unwrap().remove("time");
        let err = parse_event(&v).unwrap_err();
        assert_eq!(err.event_id.as_deref(), Some("e4"));
        assert!(err.to_string().contains("event e4"), "{err}");
        let err = parse_event(&json!([1, 2])).unwrap_err();
        assert_eq!(err.event_id, None);
        assert!(err.to_string().contains("input without an event id"));
    }

    #[test]
    fn other_event_kinds_are_not_calls() {
        let v = json!({"id": "s1", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert!(matches!(parse_event(&v), Ok(Incoming::Scheduled { .. })));
        let v = json!({"id": "x1", "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}});
        assert!(matches!(parse_event(&v), Ok(Incoming::Other { .. })));
    }
}
