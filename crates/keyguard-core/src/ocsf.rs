//! `audit` and `replay` rows as OCSF Compliance Findings (class 2003, category Findings), one JSON object per
//! row, so that they load into Amazon Security Lake or a SIEM as they are.
//!
//! The events follow OCSF 1.6.0, the version AWS Security Hub's own OCSF findings use, with the `cloud` profile.
//! Each evaluated key is one finding (`finding_info.uid` is stable per key, as the Security Hub finding's `Id`);
//! the rule's verdict becomes `compliance.status_id` (Fail, Warning, Pass, or Other for an exempt key).
//! An account (or a user) the audit could not read is a finding too, with `compliance.status_id` Unknown and the
//! error as its detail ([`not_assessed`]): a SIEM then sees that the account was not checked, instead of nothing.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::asff::{FINDING_TYPE, ID_PREFIX, RELATED_REQUIREMENTS, finding_id};
use crate::audit::{AuditFailure, AuditRow};
use crate::report::Action;
use crate::rule::Verdict;

pub const OCSF_VERSION: &str = "1.6.0";
pub const CLASS_UID: u32 = 2003;
pub const CATEGORY_UID: u32 = 2;
/// Finding activity 1: Create (each row is a fresh evaluation).
const ACTIVITY_CREATE: u32 = 1;
/// `cloud.account.type_id` 10: AWS Account.
const AWS_ACCOUNT: u32 = 10;
const CONTROL: &str = "CIS AWS Foundations Benchmark 1.11 - Do not set up access keys during initial user setup for \
                       all IAM users that have a console password";

/// One row as an OCSF Compliance Finding. `now` is when the evaluation ran (the event's `time`).
pub fn compliance_finding(row: &AuditRow, now: DateTime<Utc>) -> Value {
    let (compliance_status_id, compliance_status) = match row.verdict {
        Verdict::Violation => (3, "Fail"),
        Verdict::Suspect => (2, "Warning"),
        Verdict::Compliant => (1, "Pass"),
        Verdict::Exempt | Verdict::Ignored => (99, "Exempt"),
    };
    let (severity_id, severity) = match row.verdict {
        Verdict::Violation => (3, "Medium"),
        Verdict::Suspect => (2, "Low"),
        _ => (1, "Informational"),
    };
    // The finding's own status: resolved once KeyGuard deactivated the key, suppressed when exempt.
    let (status_id, status) = match (row.action, row.verdict) {
        (Action::Deactivated, _) => (4, "Resolved"),
        (_, Verdict::Exempt) => (3, "Suppressed"),
        _ => (1, "New"),
    };
    let account = json!({"uid": row.account, "type": "AWS Account", "type_id": AWS_ACCOUNT});
    let (uid, title) = match &row.access_key_id {
        Some(key) => (finding_id(&row.account, key), format!("Access key {key} of IAM user {}", row.user)),
        None => (format!("{ID_PREFIX}{}/user/{}", row.account, row.user), format!("IAM user {}", row.user)),
    };
    let mut resources = Vec::new();
    let owner = json!({"name": row.user, "type": "User", "type_id": 1, "account": account});
    if let (Some(key), Some(created)) = (&row.access_key_id, row.key_created) {
        resources.push(json!({
            "type": "AwsIamAccessKey",
            "uid": key,
            "name": key,
            "owner": owner,
            "created_time": created.timestamp_millis(),
            "data": key_data(row),
        }));
    }
    resources.push(json!({
        "type": "AwsIamUser",
        "name": row.user,
        "owner": owner,
        "created_time": row.user_created.timestamp_millis(),
        "data": {"has_console_password": row.has_password},
    }));
    let message = match &row.access_key_id {
        Some(key) => format!("{}: access key {key} of IAM user {}: {}", row.verdict.as_str(), row.user, row.reason),
        None => format!("{}: IAM user {}: {}", row.verdict.as_str(), row.user, row.reason),
    };
    let mut event = Map::new();
    let mut put = |k: &str, v: Value| {
        event.insert(k.to_string(), v);
    };
    put("activity_id", json!(ACTIVITY_CREATE));
    put("activity_name", json!("Create"));
    put("category_uid", json!(CATEGORY_UID));
    put("category_name", json!("Findings"));
    put("class_uid", json!(CLASS_UID));
    put("class_name", json!("Compliance Finding"));
    put("type_uid", json!(CLASS_UID * 100 + ACTIVITY_CREATE));
    put("type_name", json!("Compliance Finding: Create"));
    put("time", json!(now.timestamp_millis()));
    put("timezone_offset", json!(0));
    put("severity_id", json!(severity_id));
    put("severity", json!(severity));
    put("status_id", json!(status_id));
    put("status", json!(status));
    put("message", json!(message));
    put(
        "metadata",
        json!({
            "version": OCSF_VERSION,
            "profiles": ["cloud"],
            "product": {
                "name": "KeyGuard",
                "vendor_name": "KeyGuard",
                "uid": "keyguard",
                "version": env!("CARGO_PKG_VERSION"),
            },
        }),
    );
    put("cloud", json!({"provider": "AWS", "account": account}));
    put(
        "finding_info",
        json!({
            "uid": uid,
            "title": title,
            "desc": row.reason,
            "types": [FINDING_TYPE],
            "created_time": row.key_created.unwrap_or(row.user_created).timestamp_millis(),
        }),
    );
    put(
        "compliance",
        json!({
            "standards": ["CIS AWS Foundations Benchmark"],
            "requirements": RELATED_REQUIREMENTS,
            "control": CONTROL,
            "status_id": compliance_status_id,
            "status": compliance_status,
            "status_detail": row.reason,
        }),
    );
    put("resources", Value::Array(resources));
    if row.verdict.is_finding()
        && let Some(key) = &row.access_key_id
    {
        let desc = if row.action == Action::Deactivated {
            format!(
                "KeyGuard set the key Inactive. Re-enable only if needed and approved: aws iam update-access-key \
                 --user-name {u} --access-key-id {key} --status Active (and tag the user keyguard:exempt).",
                u = row.user
            )
        } else {
            format!(
                "Deactivate the key: aws iam update-access-key --user-name {u} --access-key-id {key} --status \
                 Inactive. The user creates their own key when they need one.",
                u = row.user
            )
        };
        put("remediation", json!({"desc": desc}));
    }
    // KeyGuard's own words, kept beside the standard attributes.
    let mut keyguard = Map::new();
    keyguard.insert("verdict".into(), json!(row.verdict.as_str()));
    keyguard.insert("action".into(), json!(row.action.as_str()));
    if let Some(creator) = &row.creator {
        keyguard.insert("creator".into(), json!(creator));
    }
    put("unmapped", json!({"keyguard": keyguard}));
    Value::Object(event)
}

/// An account, or one user of it, that could not be audited, as an OCSF Compliance Finding whose compliance status
/// is Unknown (0) and whose detail is the error. Its `finding_info.uid` is stable per account (and user), so the
/// next successful audit's findings stand beside it rather than replace it.
pub fn not_assessed(failure: &AuditFailure, now: DateTime<Utc>) -> Value {
    let account = json!({"uid": failure.account, "type": "AWS Account", "type_id": AWS_ACCOUNT});
    let (uid, title, resource) = match &failure.user {
        Some(user) => (
            format!("{ID_PREFIX}{}/user/{user}/not-assessed", failure.account),
            format!("IAM user {user} could not be audited"),
            json!({"type": "AwsIamUser", "name": user, "owner": {"name": user, "type": "User", "type_id": 1,
                   "account": account}}),
        ),
        None => (
            format!("{ID_PREFIX}{}/not-assessed", failure.account),
            format!("Account {} could not be audited", failure.account),
            json!({"type": "AwsAccount", "uid": failure.account, "name": failure.account}),
        ),
    };
    json!({
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Compliance Finding",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Compliance Finding: Create",
        "time": now.timestamp_millis(),
        "timezone_offset": 0,
        // Medium, as a violation: an account nobody could check may hold any number of them.
        "severity_id": 3,
        "severity": "Medium",
        "status_id": 1,
        "status": "New",
        "message": format!("error: {title}: {}", failure.error),
        "metadata": {
            "version": OCSF_VERSION,
            "profiles": ["cloud"],
            "product": {"name": "KeyGuard", "vendor_name": "KeyGuard", "uid": "keyguard", "version": env!("CARGO_PKG_VERSION")},
        },
        "cloud": {"provider": "AWS", "account": account},
        "finding_info": {"uid": uid, "title": title, "desc": failure.error, "types": [FINDING_TYPE],
                         "created_time": now.timestamp_millis()},
        "compliance": {
            "standards": ["CIS AWS Foundations Benchmark"],
            "requirements": RELATED_REQUIREMENTS,
            "control": CONTROL,
            "status_id": 0,
            "status": "Unknown",
            "status_detail": failure.error,
        },
        "resources": [resource],
        "unmapped": {"keyguard": {"verdict": "error", "error": failure.error}},
    })
}

/// What OCSF has no attribute for: the gap the rule measured, and when the key was last used (omitted, not null,
/// when unknown: OCSF has no nulls).
fn key_data(row: &AuditRow) -> Value {
    let mut data = Map::new();
    if let Some(gap) = row.gap_seconds {
        data.insert("seconds_after_user".into(), json!(gap));
    }
    if let Some(used) = row.last_used {
        data.insert("last_used".into(), json!(used.to_rfc3339()));
    }
    Value::Object(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(verdict: Verdict, action: Action) -> AuditRow {
        let at = |m, s| Utc.with_ymd_and_hms(2025, 3, 11, 14, m, s).single().unwrap();
        AuditRow {
            account: "111122223333".into(),
            user: "maria.silva".into(),
            access_key_id: Some("AKIAYQ3EXAMPLEMARIA1".into()),
            verdict,
            reason: "access key created 1m 08s after the user and before the console password: not self-service".into(),
            user_created: at(2, 7),
            key_created: Some(at(3, 15)),
            gap_seconds: Some(68),
            has_password: true,
            creator: Some("arn:aws:sts::111122223333:assumed-role/admin/priya".into()),
            last_used: None,
            action,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 12, 9, 0, 0).single().unwrap()
    }

    #[test]
    fn a_violation_is_a_failed_compliance_finding() {
        let e = compliance_finding(&row(Verdict::Violation, Action::None), now());
        assert_eq!(
            (e["class_uid"].as_u64(), e["category_uid"].as_u64(), e["type_uid"].as_u64()),
            (Some(2003), Some(2), Some(200301))
        );
        assert_eq!(e["compliance"]["status_id"], 3);
        assert_eq!(e["compliance"]["status"], "Fail");
        assert!(
            e["compliance"]["requirements"]
                .as_array()
                .unwrap()
                .contains(&json!("CIS AWS Foundations Benchmark v1.4.0/1.11"))
        );
        assert_eq!(e["finding_info"]["uid"], "keyguard/cis-1.11/111122223333/AKIAYQ3EXAMPLEMARIA1");
        assert_eq!(e["cloud"]["provider"], "AWS");
        assert_eq!(e["cloud"]["account"]["uid"], "111122223333");
        assert_eq!(e["metadata"]["version"], OCSF_VERSION);
        assert_eq!(e["metadata"]["product"]["name"], "KeyGuard");
        assert_eq!(e["time"], now().timestamp_millis());
        assert_eq!(e["resources"][0]["type"], "AwsIamAccessKey");
        assert_eq!(e["resources"][1]["type"], "AwsIamUser");
        assert!(e["remediation"]["desc"].as_str().unwrap().contains("--status Inactive"));
        assert_eq!(e["unmapped"]["keyguard"]["creator"], "arn:aws:sts::111122223333:assumed-role/admin/priya");
        assert_eq!(e["severity_id"], 3);
    }

    #[test]
    fn verdicts_and_actions_map_to_statuses() {
        let suspect = compliance_finding(&row(Verdict::Suspect, Action::None), now());
        assert_eq!((suspect["compliance"]["status_id"].as_u64(), suspect["severity_id"].as_u64()), (Some(2), Some(2)));
        let deactivated = compliance_finding(&row(Verdict::Violation, Action::Deactivated), now());
        assert_eq!(deactivated["status_id"], 4);
        assert!(deactivated["remediation"]["desc"].as_str().unwrap().contains("--status Active"));
        let exempt = compliance_finding(&row(Verdict::Exempt, Action::None), now());
        assert_eq!((exempt["compliance"]["status_id"].as_u64(), exempt["status_id"].as_u64()), (Some(99), Some(3)));
        let compliant = compliance_finding(&row(Verdict::Compliant, Action::None), now());
        assert_eq!(compliant["compliance"]["status_id"], 1);
        assert!(compliant.get("remediation").is_none(), "nothing to remediate");
    }

    #[test]
    fn an_account_not_audited_is_a_finding_of_unknown_compliance() {
        let failure = AuditFailure {
            account: "444455556666".into(),
            user: None,
            error: "sts:AssumeRole failed (AccessDenied): account 444455556666: cannot assume ...".into(),
        };
        let e = not_assessed(&failure, now());
        assert_eq!((e["class_uid"].as_u64(), e["compliance"]["status_id"].as_u64()), (Some(2003), Some(0)));
        assert_eq!(e["compliance"]["status"], "Unknown");
        assert_eq!(e["compliance"]["status_detail"], failure.error.as_str());
        assert_eq!(e["cloud"]["account"]["uid"], "444455556666");
        assert_eq!(e["finding_info"]["uid"], "keyguard/cis-1.11/444455556666/not-assessed");
        assert_eq!(e["unmapped"]["keyguard"]["verdict"], "error");
        let user = not_assessed(&AuditFailure { user: Some("maria".into()), ..failure }, now());
        assert_eq!(user["finding_info"]["uid"], "keyguard/cis-1.11/444455556666/user/maria/not-assessed");
        assert_eq!(user["resources"][0]["type"], "AwsIamUser");
    }

    #[test]
    fn a_user_without_keys_is_one_finding_about_the_user() {
        let mut r = row(Verdict::Compliant, Action::None);
        r.access_key_id = None;
        r.key_created = None;
        r.gap_seconds = None;
        r.creator = None;
        let e = compliance_finding(&r, now());
        assert_eq!(e["finding_info"]["uid"], "keyguard/cis-1.11/111122223333/user/maria.silva");
        assert_eq!(e["resources"].as_array().unwrap().len(), 1);
        assert!(e["unmapped"]["keyguard"].get("creator").is_none());
    }
}
