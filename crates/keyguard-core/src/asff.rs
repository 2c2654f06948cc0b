//! What KeyGuard files in AWS Security Hub (CSPM): one finding per flagged key, in the AWS Security Finding Format
//! (ASFF), built from the same facts as the alert.
//!
//! A finding is a custom-integration finding of the account's default product
//! (`arn:aws:securityhub:<region>:<account>:product/<account>/default`), which only the account itself may import
//! (DESIGN.md §2). Its `Id` is stable per key, so that a re-delivered event updates the same finding with a newer
//! `UpdatedAt` instead of adding a duplicate. `Workflow`, `Note`, `UserDefinedFields` and `VerificationState` are
//! the customer's and are never set here.
//!
//! Every fact a later run needs to rebuild the finding (the sweep archives findings of keys that are gone) is kept
//! in `ProductFields` under `keyguard/`, and read back by [`facts_from_product_fields`].

use crate::text::clip;
use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::alert::{AlertFacts, AlertKind, RULE_ID};
use crate::event::Principal;
use crate::report::Action;
use crate::rule::Verdict;
use crate::time::{human_span, parse_time};

pub const SCHEMA_VERSION: &str = "2018-10-08";
/// The rule that produced the finding: constant, so that KeyGuard's findings can be filtered on it.
pub const GENERATOR_ID: &str = "keyguard/cis-aws-foundations-benchmark/1.11";
/// The ASFF finding type (namespace/category/classifier) of CIS benchmark checks.
pub const FINDING_TYPE: &str =
    "Software and Configuration Checks/Industry and Regulatory Standards/CIS AWS Foundations Benchmark";
/// The control as Security Hub names CIS requirements (`CIS AWS Foundations Benchmark v<version>/<control>`), in
/// each benchmark version Security Hub offers: 1.21 in v1.2.0, 1.11 in v1.4.0 and v3.0.0, 1.10 in v5.0.0.
pub const RELATED_REQUIREMENTS: [&str; 4] = [
    "CIS AWS Foundations Benchmark v1.2.0/1.21",
    "CIS AWS Foundations Benchmark v1.4.0/1.11",
    "CIS AWS Foundations Benchmark v3.0.0/1.11",
    "CIS AWS Foundations Benchmark v5.0.0/1.10",
];
pub const PRODUCT_NAME: &str = "KeyGuard";
/// Every finding id KeyGuard files starts with this.
pub const ID_PREFIX: &str = "keyguard/cis-1.11/";

// ASFF limits (BatchImportFindings rejects a finding over them).
const MAX_TITLE: usize = 256;
const MAX_DESCRIPTION: usize = 1024;
const MAX_RECOMMENDATION: usize = 512;
const MAX_PRODUCT_FIELD: usize = 2048;

/// The stable id of the finding about one key: one finding per key, whatever event or sweep reports it.
pub fn finding_id(account: &str, access_key_id: &str) -> String {
    format!("{ID_PREFIX}{account}/{access_key_id}")
}

/// Where the finding stands, as far as KeyGuard (the provider) is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingState {
    /// The key is there and flagged: compliance FAILED (violation) or WARNING (suspect).
    Active,
    /// KeyGuard set the key inactive: compliance PASSED, so Security Hub resolves the workflow by itself.
    ResolvedByDeactivation,
    /// Nothing to look at any more: `RecordState: ARCHIVED`.
    Archived(ArchiveReason),
}

impl FindingState {
    /// The state a decision just taken puts its finding in: resolved when KeyGuard deactivated the key.
    pub fn of(facts: &AlertFacts) -> FindingState {
        if facts.action == Action::Deactivated { FindingState::ResolvedByDeactivation } else { FindingState::Active }
    }
}

/// Why a finding is archived (the sweep and `audit --apply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveReason {
    KeyGone,
    KeyInactive,
    /// The user or the key's creator is exempt now.
    Exempt,
    /// The key is no longer flagged (for example, the user no longer has a console password).
    NoLongerFlagged,
}

impl ArchiveReason {
    fn as_str(self) -> &'static str {
        match self {
            ArchiveReason::KeyGone => "key-gone",
            ArchiveReason::KeyInactive => "key-inactive",
            ArchiveReason::Exempt => "exempt",
            ArchiveReason::NoLongerFlagged => "no-longer-flagged",
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            ArchiveReason::KeyGone => "the access key no longer exists",
            ArchiveReason::KeyInactive => "the access key is inactive",
            ArchiveReason::Exempt => "the user or the key's creator is now exempt from KeyGuard",
            ArchiveReason::NoLongerFlagged => "the key is no longer flagged by the rule",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ComplianceStatus {
    Passed,
    Warning,
    Failed,
}

impl ComplianceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ComplianceStatus::Passed => "PASSED",
            ComplianceStatus::Warning => "WARNING",
            ComplianceStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeverityLabel {
    Informational,
    Low,
    Medium,
}

impl SeverityLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            SeverityLabel::Informational => "INFORMATIONAL",
            SeverityLabel::Low => "LOW",
            SeverityLabel::Medium => "MEDIUM",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordState {
    Active,
    Archived,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Active => "ACTIVE",
            RecordState::Archived => "ARCHIVED",
        }
    }
}

/// The ASFF fields KeyGuard sets, named as in ASFF (`to_json` gives the wire form).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityFinding {
    pub schema_version: String,
    pub id: String,
    pub product_arn: String,
    pub product_name: String,
    pub company_name: String,
    pub generator_id: String,
    pub aws_account_id: String,
    pub region: String,
    pub types: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub first_observed_at: String,
    pub last_observed_at: String,
    pub severity: Severity,
    /// The provider's own copy of severity and types: the top-level ones are the customer's to change once the
    /// finding exists, so updates go through here.
    pub finding_provider_fields: FindingProviderFields,
    pub title: String,
    pub description: String,
    pub remediation: Remediation,
    pub product_fields: BTreeMap<String, String>,
    pub compliance: Compliance,
    pub resources: Vec<Resource>,
    pub record_state: RecordState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Severity {
    pub label: SeverityLabel,
    pub original: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FindingProviderFields {
    pub severity: Severity,
    pub types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Remediation {
    pub recommendation: Recommendation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Recommendation {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Compliance {
    pub status: ComplianceStatus,
    pub related_requirements: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    #[serde(rename = "Type")]
    pub kind: String,
    pub id: String,
    pub partition: String,
    pub region: String,
    pub details: ResourceDetails,
}

/// Exactly one of the two is set, matching the resource's `Type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceDetails {
    #[serde(rename = "AwsIamAccessKey", skip_serializing_if = "Option::is_none")]
    pub access_key: Option<AccessKeyDetails>,
    #[serde(rename = "AwsIamUser", skip_serializing_if = "Option::is_none")]
    pub user: Option<UserDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyDetails {
    pub access_key_id: String,
    pub account_id: String,
    /// `Active` or `Inactive`; None when the key is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub created_at: String,
    /// The IAM user the key belongs to.
    pub principal_name: String,
    pub principal_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserDetails {
    pub user_name: String,
    pub create_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl SecurityFinding {
    /// The finding for one decision. `now` becomes `UpdatedAt` (Security Hub keeps an update only when it is newer
    /// than the stored one); `CreatedAt` and `FirstObservedAt` are the key's creation, so they stay the same
    /// however often the key is reported.
    pub fn new(f: &AlertFacts, now: DateTime<Utc>, region: &str, state: FindingState) -> SecurityFinding {
        let partition = partition(region);
        let status = compliance_status(f.verdict, state);
        let label = match status {
            ComplianceStatus::Failed => SeverityLabel::Medium,
            ComplianceStatus::Warning => SeverityLabel::Low,
            ComplianceStatus::Passed => SeverityLabel::Informational,
        };
        let severity = Severity { label, original: f.verdict.as_str().to_string() };
        let types = vec![FINDING_TYPE.to_string()];
        let gap = human_span(f.key_created.timestamp() - f.user_created.timestamp());
        let may = if f.verdict == Verdict::Suspect { "may have been" } else { "was" };
        let title = clip(
            &format!("CIS 1.11: access key {} {may} set up with console user {}", f.access_key_id, f.user_name),
            MAX_TITLE,
        );
        let state_sentence = match state {
            FindingState::Active => match f.action {
                Action::Notified => "KeyGuard alerted the security team; the key is unchanged.".to_string(),
                Action::DryRun => "KeyGuard ran as a dry run; the key is unchanged.".to_string(),
                _ => "The key is unchanged.".to_string(),
            },
            FindingState::ResolvedByDeactivation => {
                format!("KeyGuard deactivated the key (set Inactive, not deleted) at {}.", stamp(now))
            }
            FindingState::Archived(why) => format!("Archived by KeyGuard at {}: {}.", stamp(now), why.sentence()),
        };
        let description = clip(
            &format!(
                "{state_sentence} Access key {key} of IAM user {user} in account {account} was created {gap} after \
                 the user, during the initial setup of a user with a console password (CIS AWS Foundations \
                 Benchmark 1.11). Verdict: {verdict}: {reason}.",
                key = f.access_key_id,
                user = f.user_name,
                account = f.account,
                verdict = f.verdict.as_str(),
                reason = f.reason,
            ),
            MAX_DESCRIPTION,
        );
        let recommendation = clip(
            &format!(
                "The user creates their own key when needed. Deactivate this one: aws iam update-access-key \
                 --user-name {u} --access-key-id {k} --status Inactive. Re-enable only if approved: aws iam \
                 update-access-key --user-name {u} --access-key-id {k} --status Active, and tag the user \
                 keyguard:exempt so KeyGuard leaves it alone.",
                u = f.user_name,
                k = f.access_key_id,
            ),
            MAX_RECOMMENDATION,
        );
        let key_status = match state {
            FindingState::Archived(ArchiveReason::KeyGone) => None,
            FindingState::ResolvedByDeactivation | FindingState::Archived(ArchiveReason::KeyInactive) => {
                Some("Inactive")
            }
            FindingState::Active | FindingState::Archived(ArchiveReason::Exempt | ArchiveReason::NoLongerFlagged) => {
                Some("Active")
            }
        };
        let user_arn = f.user_arn.clone();
        let resources = vec![
            Resource {
                kind: "AwsIamAccessKey".into(),
                // As GuardDuty names access keys in its findings.
                id: format!("AWS::IAM::AccessKey:{}", f.access_key_id),
                partition: partition.into(),
                region: region.into(),
                details: ResourceDetails {
                    access_key: Some(AccessKeyDetails {
                        access_key_id: f.access_key_id.clone(),
                        account_id: f.account.clone(),
                        status: key_status.map(str::to_string),
                        created_at: stamp(f.key_created),
                        principal_name: f.user_name.clone(),
                        principal_type: "IAMUser".into(),
                        principal_id: None,
                    }),
                    user: None,
                },
            },
            Resource {
                kind: "AwsIamUser".into(),
                id: user_arn.clone().unwrap_or_else(|| format!("AWS::IAM::User:{}", f.user_name)),
                partition: partition.into(),
                region: region.into(),
                details: ResourceDetails {
                    access_key: None,
                    user: Some(UserDetails {
                        user_name: f.user_name.clone(),
                        create_date: stamp(f.user_created),
                        path: user_arn.as_deref().and_then(user_path),
                    }),
                },
            },
        ];
        SecurityFinding {
            schema_version: SCHEMA_VERSION.into(),
            id: finding_id(&f.account, &f.access_key_id),
            product_arn: product_arn(partition, region, &f.account),
            product_name: PRODUCT_NAME.into(),
            company_name: PRODUCT_NAME.into(),
            generator_id: GENERATOR_ID.into(),
            aws_account_id: f.account.clone(),
            region: region.into(),
            types: types.clone(),
            created_at: stamp(f.key_created),
            updated_at: stamp(now),
            first_observed_at: stamp(f.key_created),
            last_observed_at: stamp(now),
            severity: severity.clone(),
            finding_provider_fields: FindingProviderFields { severity, types },
            title,
            description,
            remediation: Remediation { recommendation: Recommendation { text: recommendation } },
            product_fields: product_fields(f, state),
            compliance: Compliance {
                status,
                related_requirements: RELATED_REQUIREMENTS.iter().map(|r| r.to_string()).collect(),
            },
            resources,
            record_state: match state {
                FindingState::Archived(_) => RecordState::Archived,
                _ => RecordState::Active,
            },
        }
    }

    /// The ASFF JSON, as BatchImportFindings takes it.
    pub fn to_json(&self) -> Value {
        // Plain data of strings, maps and lists: serializing it cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The account's default product, through which a custom integration files its own account's findings.
pub fn product_arn(partition: &str, region: &str, account: &str) -> String {
    format!("arn:{partition}:securityhub:{region}:{account}:product/{account}/default")
}

/// The partition a region belongs to.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

fn compliance_status(verdict: Verdict, state: FindingState) -> ComplianceStatus {
    match (state, verdict) {
        (FindingState::Active, Verdict::Violation) => ComplianceStatus::Failed,
        (FindingState::Active, Verdict::Suspect) => ComplianceStatus::Warning,
        _ => ComplianceStatus::Passed,
    }
}

/// `arn:aws:iam::111122223333:user/people/maria.silva` -> `/people/`.
fn user_path(arn: &str) -> Option<String> {
    let resource = arn.split_once(":user/")?.1;
    Some(match resource.rsplit_once('/') {
        Some((path, _)) => format!("/{path}/"),
        None => "/".to_string(),
    })
}

// ProductFields keys. Security Hub adds its own under `aws/`; ours are under `keyguard/`.
const PF_RULE: &str = "keyguard/Rule";
const PF_STATE: &str = "keyguard/State";
const PF_VERDICT: &str = "keyguard/Verdict";
const PF_REASON: &str = "keyguard/Reason";
const PF_ACTION: &str = "keyguard/Action";
const PF_ACCOUNT: &str = "keyguard/Account";
const PF_ACCOUNT_ALIAS: &str = "keyguard/AccountAlias";
const PF_NOTE: &str = "keyguard/Note";
const PF_USER: &str = "keyguard/UserName";
const PF_USER_ARN: &str = "keyguard/UserArn";
const PF_USER_CREATED: &str = "keyguard/UserCreated";
const PF_KEY: &str = "keyguard/AccessKeyId";
const PF_KEY_CREATED: &str = "keyguard/KeyCreated";
const PF_GAP: &str = "keyguard/SecondsAfterUser";
const PF_PASSWORD: &str = "keyguard/HasPassword";
const PF_CREATOR_ARN: &str = "keyguard/CreatorArn";
const PF_CREATOR_TYPE: &str = "keyguard/CreatorType";
const PF_CREATOR_INVOKED_BY: &str = "keyguard/CreatorInvokedBy";
const PF_SOURCE_IP: &str = "keyguard/SourceIp";
const PF_USER_AGENT: &str = "keyguard/UserAgent";
const PF_EVENT_ID: &str = "keyguard/EventId";
const PF_EVENT_NAME: &str = "keyguard/EventName";

fn product_fields(f: &AlertFacts, state: FindingState) -> BTreeMap<String, String> {
    let state = match state {
        FindingState::Active => "active".to_string(),
        FindingState::ResolvedByDeactivation => "resolved-by-deactivation".to_string(),
        FindingState::Archived(why) => format!("archived:{}", why.as_str()),
    };
    let creator = f.creator.as_ref();
    let fields: [(&str, Option<String>); 22] = [
        (PF_RULE, Some(RULE_ID.into())),
        (PF_STATE, Some(state)),
        (PF_VERDICT, Some(f.verdict.as_str().into())),
        (PF_REASON, Some(f.reason.clone())),
        (PF_ACTION, Some(f.action.as_str().into())),
        (PF_ACCOUNT, Some(f.account.clone())),
        (PF_USER, Some(f.user_name.clone())),
        (PF_USER_ARN, f.user_arn.clone()),
        (PF_USER_CREATED, Some(stamp(f.user_created))),
        (PF_KEY, Some(f.access_key_id.clone())),
        (PF_KEY_CREATED, Some(stamp(f.key_created))),
        (PF_GAP, Some((f.key_created.timestamp() - f.user_created.timestamp()).to_string())),
        (PF_PASSWORD, Some(f.has_password.to_string())),
        (PF_CREATOR_ARN, creator.and_then(|c| c.arn.clone())),
        (PF_CREATOR_TYPE, creator.map(|c| c.kind.clone())),
        (PF_CREATOR_INVOKED_BY, creator.and_then(|c| c.invoked_by.clone())),
        (PF_SOURCE_IP, f.source_ip.clone()),
        (PF_USER_AGENT, f.user_agent.clone()),
        (PF_EVENT_ID, Some(f.event_id.clone())),
        (PF_EVENT_NAME, Some(f.event_name.clone())),
        (PF_ACCOUNT_ALIAS, f.account_alias.clone()),
        (PF_NOTE, f.note.clone()),
    ];
    fields
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k.to_string(), clip(&v, MAX_PRODUCT_FIELD))))
        .collect()
}

/// The facts of a finding KeyGuard filed earlier, read back from its `ProductFields` (as `GetFindings` returns
/// them), so that the sweep can archive it with the same content. None when a field it needs is missing or odd.
pub fn facts_from_product_fields(fields: &BTreeMap<String, String>) -> Option<AlertFacts> {
    let get = |k: &str| fields.get(k).cloned();
    let time = |k: &str| fields.get(k).and_then(|v| parse_time(v));
    let verdict = match fields.get(PF_VERDICT)?.as_str() {
        "violation" => Verdict::Violation,
        "suspect" => Verdict::Suspect,
        "compliant" => Verdict::Compliant,
        "exempt" => Verdict::Exempt,
        "ignored" => Verdict::Ignored,
        _ => return None,
    };
    let action = match fields.get(PF_ACTION)?.as_str() {
        "none" => Action::None,
        "notified" => Action::Notified,
        "deactivated" => Action::Deactivated,
        "dry-run" => Action::DryRun,
        _ => return None,
    };
    let creator = get(PF_CREATOR_TYPE).map(|kind| Principal {
        kind,
        arn: get(PF_CREATOR_ARN),
        account_id: None,
        user_name: None,
        issuer_arn: None,
        invoked_by: get(PF_CREATOR_INVOKED_BY),
    });
    Some(AlertFacts {
        account: get(PF_ACCOUNT)?,
        user_name: get(PF_USER)?,
        user_arn: get(PF_USER_ARN),
        user_created: time(PF_USER_CREATED)?,
        access_key_id: get(PF_KEY)?,
        key_created: time(PF_KEY_CREATED)?,
        has_password: get(PF_PASSWORD)? == "true",
        creator,
        source_ip: get(PF_SOURCE_IP),
        user_agent: get(PF_USER_AGENT),
        event_id: get(PF_EVENT_ID).unwrap_or_default(),
        event_name: get(PF_EVENT_NAME).unwrap_or_default(),
        kind: if verdict == Verdict::Exempt { AlertKind::Exempt } else { AlertKind::Finding },
        account_alias: get(PF_ACCOUNT_ALIAS),
        verdict,
        reason: get(PF_REASON).unwrap_or_default(),
        action,
        note: get(PF_NOTE),
        exempt_tag: (
            crate::config::DEFAULT_EXEMPT_TAG.to_string(),
            crate::config::DEFAULT_EXEMPT_TAG_VALUE.to_string(),
        ),
    })
}

/// ASFF timestamps: RFC 3339 in UTC with milliseconds.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 11, h, m, s).single().unwrap()
    }

    fn facts(verdict: Verdict, action: Action) -> AlertFacts {
        AlertFacts {
            account: "111122223333".into(),
            user_name: "maria.silva".into(),
            user_arn: Some("arn:aws:iam::111122223333:user/people/maria.silva".into()),
            user_created: at(14, 2, 7),
            access_key_id: "AKIAYQ3EXAMPLEMARIA1".into(),
            key_created: at(14, 3, 15),
            has_password: true,
            creator: Some(Principal {
                kind: "AssumedRole".into(),
                arn: Some("arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123/priya.nair".into()),
                account_id: Some("111122223333".into()),
                user_name: None,
                issuer_arn: None,
                invoked_by: None,
            }),
            source_ip: Some("203.0.113.7".into()),
            user_agent: Some("aws-cli/2.15.30".into()),
            event_id: "6f1c0f8e-0d2b-4c1e-9a55-3f1f0f1e2d3c".into(),
            event_name: "CreateAccessKey".into(),
            verdict,
            reason: "access key created 1m 08s after the user, during setup of a console user, by X (not the user)"
                .into(),
            action,
            note: None,
            kind: crate::alert::AlertKind::Finding,
            account_alias: None,
            exempt_tag: ("keyguard:exempt".into(), "true".into()),
        }
    }

    const NOW: (u32, u32, u32) = (15, 0, 0);

    fn now() -> DateTime<Utc> {
        at(NOW.0, NOW.1, NOW.2)
    }

    #[test]
    fn a_violation_is_a_failed_cis_finding_of_the_default_product() {
        let f = facts(Verdict::Violation, Action::Notified);
        let finding = SecurityFinding::new(&f, now(), "us-east-1", FindingState::of(&f));
        let json = finding.to_json();
        assert_eq!(json["SchemaVersion"], "2018-10-08");
        assert_eq!(json["Id"], "keyguard/cis-1.11/111122223333/AKIAYQ3EXAMPLEMARIA1");
        assert_eq!(json["ProductArn"], "arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default");
        assert_eq!(json["GeneratorId"], GENERATOR_ID);
        assert_eq!(json["AwsAccountId"], "111122223333");
        assert_eq!(json["Types"][0], FINDING_TYPE);
        assert_eq!(json["FindingProviderFields"]["Types"][0], FINDING_TYPE);
        assert_eq!(json["Compliance"]["Status"], "FAILED");
        assert!(
            json["Compliance"]["RelatedRequirements"]
                .as_array()
                .unwrap()
                .contains(&Value::from("CIS AWS Foundations Benchmark v1.4.0/1.11"))
        );
        assert_eq!(json["Severity"]["Label"], "MEDIUM");
        assert_eq!(json["FindingProviderFields"]["Severity"]["Label"], "MEDIUM");
        assert_eq!(json["RecordState"], "ACTIVE");
        assert_eq!(json["CreatedAt"], "2025-03-11T14:03:15.000Z");
        assert_eq!(json["UpdatedAt"], "2025-03-11T15:00:00.000Z");
        for customers in ["Workflow", "Note", "UserDefinedFields", "VerificationState"] {
            assert!(json.get(customers).is_none(), "{customers} is the customer's");
        }
        let key = &json["Resources"][0];
        assert_eq!(key["Type"], "AwsIamAccessKey");
        assert_eq!(key["Id"], "AWS::IAM::AccessKey:AKIAYQ3EXAMPLEMARIA1");
        assert_eq!(key["Partition"], "aws");
        let details = &key["Details"]["AwsIamAccessKey"];
        assert_eq!(details["Status"], "Active");
        assert_eq!(details["PrincipalName"], "maria.silva");
        assert_eq!(details["PrincipalType"], "IAMUser");
        assert_eq!(details["CreatedAt"], "2025-03-11T14:03:15.000Z");
        let user = &json["Resources"][1];
        assert_eq!(user["Type"], "AwsIamUser");
        assert_eq!(user["Id"], "arn:aws:iam::111122223333:user/people/maria.silva");
        assert_eq!(user["Details"]["AwsIamUser"]["Path"], "/people/");
        let fields = &json["ProductFields"];
        assert_eq!(fields["keyguard/CreatorArn"], f.creator.as_ref().unwrap().arn.clone().unwrap().as_str());
        assert_eq!(fields["keyguard/CreatorType"], "AssumedRole");
        let text = json["Remediation"]["Recommendation"]["Text"].as_str().unwrap();
        assert!(text.contains(
            "aws iam update-access-key --user-name maria.silva --access-key-id AKIAYQ3EXAMPLEMARIA1 --status Inactive"
        ));
        assert!(text.contains("--status Active"));
        assert!(json["Description"].as_str().unwrap().contains("alerted"));
    }

    #[test]
    fn a_suspect_is_a_warning_and_a_deactivated_key_passes() {
        let suspect =
            SecurityFinding::new(&facts(Verdict::Suspect, Action::Notified), now(), "us-east-1", FindingState::Active);
        assert_eq!(
            (suspect.compliance.status, suspect.severity.label),
            (ComplianceStatus::Warning, SeverityLabel::Low)
        );
        assert!(suspect.title.contains("may have been"));

        let f = facts(Verdict::Violation, Action::Deactivated);
        assert_eq!(FindingState::of(&f), FindingState::ResolvedByDeactivation);
        let resolved = SecurityFinding::new(&f, now(), "us-east-1", FindingState::of(&f));
        assert_eq!(resolved.compliance.status, ComplianceStatus::Passed);
        assert_eq!(resolved.severity.label, SeverityLabel::Informational);
        assert_eq!(resolved.record_state, RecordState::Active);
        assert_eq!(resolved.resources[0].details.access_key.as_ref().unwrap().status.as_deref(), Some("Inactive"));
        assert!(resolved.description.starts_with("KeyGuard deactivated the key"), "{}", resolved.description);
    }

    #[test]
    fn archived_findings_say_why_and_a_gone_key_has_no_status() {
        let f = facts(Verdict::Violation, Action::Notified);
        let gone = SecurityFinding::new(&f, now(), "us-east-1", FindingState::Archived(ArchiveReason::KeyGone));
        assert_eq!(gone.record_state, RecordState::Archived);
        assert_eq!(gone.to_json()["RecordState"], "ARCHIVED");
        assert_eq!(gone.compliance.status, ComplianceStatus::Passed);
        assert!(gone.to_json()["Resources"][0]["Details"]["AwsIamAccessKey"].get("Status").is_none());
        assert!(gone.description.contains("no longer exists"));
        assert_eq!(gone.product_fields["keyguard/State"], "archived:key-gone");
        let exempt = SecurityFinding::new(&f, now(), "us-east-1", FindingState::Archived(ArchiveReason::Exempt));
        assert!(exempt.description.contains("exempt"));
    }

    #[test]
    fn the_id_is_stable_and_only_updated_at_moves() {
        let f = facts(Verdict::Violation, Action::Notified);
        let first = SecurityFinding::new(&f, now(), "us-east-1", FindingState::Active);
        let again = SecurityFinding::new(&f, now() + chrono::TimeDelta::minutes(5), "us-east-1", FindingState::Active);
        assert_eq!(first.id, again.id);
        assert_eq!(first.created_at, again.created_at);
        assert!(again.updated_at > first.updated_at);
    }

    #[test]
    fn other_partitions_and_unknown_user_arns() {
        let mut f = facts(Verdict::Violation, Action::Notified);
        f.user_arn = None;
        f.creator = None;
        let finding = SecurityFinding::new(&f, now(), "cn-north-1", FindingState::Active);
        assert_eq!(finding.product_arn, "arn:aws-cn:securityhub:cn-north-1:111122223333:product/111122223333/default");
        assert_eq!(finding.resources[1].id, "AWS::IAM::User:maria.silva");
        assert!(finding.description.contains("Verdict: violation: "));
        assert!(!finding.product_fields.contains_key("keyguard/CreatorArn"));
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }

    #[test]
    fn long_values_are_cut_to_asff_limits() {
        let mut f = facts(Verdict::Violation, Action::Notified);
        f.user_agent = Some("x".repeat(5000));
        f.reason = "r".repeat(5000);
        let finding = SecurityFinding::new(&f, now(), "us-east-1", FindingState::Active);
        assert!(finding.description.chars().count() <= MAX_DESCRIPTION);
        assert!(finding.title.chars().count() <= MAX_TITLE);
        assert!(finding.remediation.recommendation.text.chars().count() <= MAX_RECOMMENDATION);
        assert!(finding.product_fields.values().all(|v| v.chars().count() <= MAX_PRODUCT_FIELD));
        assert!(finding.product_fields["keyguard/UserAgent"].ends_with("..."));
    }

    #[test]
    fn product_fields_give_the_facts_back() {
        for action in [Action::Notified, Action::Deactivated, Action::DryRun] {
            let f = facts(Verdict::Violation, action);
            let finding = SecurityFinding::new(&f, now(), "us-east-1", FindingState::of(&f));
            let back = facts_from_product_fields(&finding.product_fields).expect("facts");
            // Rebuilt from the facts read back, the finding is the same one.
            assert_eq!(SecurityFinding::new(&back, now(), "us-east-1", FindingState::of(&back)), finding);
        }
        let mut fields = SecurityFinding::new(
            &facts(Verdict::Violation, Action::Notified),
            now(),
            "us-east-1",
            FindingState::Active,
        )
        .product_fields;
        fields.insert("keyguard/Verdict".into(), "bogus".into());
        assert!(facts_from_product_fields(&fields).is_none());
        fields.remove("keyguard/Verdict");
        assert!(facts_from_product_fields(&fields).is_none());
    }
}
