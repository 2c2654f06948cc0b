//! The rule over an account's current state (`keyguard audit`, the Lambda's scheduled sweep) and the row that
//! audit and replay both print.
//!
//! The credential report gives the whole account in one document; it only narrows down which users may be
//! affected. Their exact keys, password and tags are then read like the guard reads them, and the same
//! [`decide_key`] decides, with the creator unknown (so a key after the password is `suspect`).

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::report::Action;
use crate::rule::{Finding, Policy, Reason, UserState, Verdict, decide_key};
use crate::time::parse_time;

/// One line of `audit`/`replay` output: a key (or a user without keys) and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    pub account: String,
    pub user: String,
    pub access_key_id: Option<String>,
    pub verdict: Verdict,
    pub reason: String,
    pub user_created: DateTime<Utc>,
    pub key_created: Option<DateTime<Utc>>,
    /// Seconds from the user's creation to the key's.
    pub gap_seconds: Option<i64>,
    pub has_password: bool,
    /// Who created the key, when known (replay, or `--with-creators`).
    pub creator: Option<String>,
    /// When the key was last used; None when never (or not looked up).
    pub last_used: Option<DateTime<Utc>>,
    pub action: Action,
}

impl AuditRow {
    /// Rows for one user: each key decided (creator from `creator_of`, None when unknown), or one row without a key.
    pub fn for_user(
        policy: &Policy,
        account: &str,
        state: &UserState,
        creator_of: impl Fn(&str) -> Option<crate::event::Principal>,
    ) -> Vec<AuditRow> {
        if state.keys.is_empty() {
            let reason = if state.password_created.is_some() { Reason::NoKeys } else { Reason::NoPassword };
            return vec![AuditRow::from_finding(account, state, &Finding { access_key_id: None, reason }, None)];
        }
        state
            .keys
            .iter()
            .map(|key| {
                let creator = creator_of(&key.id);
                let finding = decide_key(policy, state, key, creator.as_ref());
                AuditRow::from_finding(account, state, &finding, creator.map(|c| c.label()))
            })
            .collect()
    }

    pub fn from_finding(account: &str, state: &UserState, finding: &Finding, creator: Option<String>) -> AuditRow {
        let key = finding.access_key_id.as_deref().and_then(|id| state.keys.iter().find(|k| k.id == id));
        AuditRow {
            account: account.to_string(),
            user: state.name.clone(),
            access_key_id: finding.access_key_id.clone(),
            verdict: finding.verdict(),
            reason: finding.reason.to_string(),
            user_created: state.created,
            key_created: key.map(|k| k.created),
            gap_seconds: key.map(|k| k.created.timestamp() - state.created.timestamp()),
            has_password: state.password_created.is_some(),
            creator,
            last_used: None,
            action: Action::None,
        }
    }
}

/// What an audit could not read: a whole account (its member role could not be assumed, ListUsers failed), or one
/// user of it. Reported beside the rows in every output format, never dropped: an account that was not audited
/// must not read as a clean one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditFailure {
    pub account: String,
    /// The user, when only that user could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub error: String,
}

/// One user's line of the IAM credential report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportUser {
    pub user: String,
    pub arn: String,
    pub created: Option<DateTime<Utc>>,
    pub password_enabled: bool,
    /// Key slots 1 and 2: (active, created). `access_key_N_last_rotated` is the key's creation time.
    pub keys: Vec<(bool, DateTime<Utc>)>,
}

impl ReportUser {
    /// Whether this user may have a setup key: a key created within the window of the user. The password is
    /// checked live, not here: a report up to 4 hours old may predate a password added since (whose event may
    /// have been lost, which is what the sweep is for).
    pub fn may_be_affected(&self, window: TimeDelta) -> bool {
        let Some(created) = self.created else { return true };
        self.keys.iter().any(|(_, k)| k.timestamp() - created.timestamp() <= window.num_seconds())
    }
}

/// The credential report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credential report: {0}")]
pub struct ReportError(String);

/// Parses the credential report (CSV). The root account's row (`<root_account>`) is left out: root is out of scope.
pub fn parse_credential_report(csv_text: &str) -> Result<Vec<ReportUser>, ReportError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv_text.as_bytes());
    let headers = reader.headers().map_err(|e| ReportError(e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(user), Some(arn), Some(created), Some(password)) =
        (column("user"), column("arn"), column("user_creation_time"), column("password_enabled"))
    else {
        return Err(ReportError("missing one of the columns user, arn, user_creation_time, password_enabled".into()));
    };
    let slots: Vec<(Option<usize>, Option<usize>)> = (1..=2)
        .map(|n| (column(&format!("access_key_{n}_active")), column(&format!("access_key_{n}_last_rotated"))))
        .collect();
    let mut users = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ReportError(e.to_string()))?;
        let field = |i: usize| record.get(i).unwrap_or("");
        if field(user) == "<root_account>" {
            continue;
        }
        let keys = slots
            .iter()
            .filter_map(|(active, rotated)| {
                let created = parse_time(field((*rotated)?))?; // "N/A": no key in this slot
                Some((active.map(|a| field(a) == "true").unwrap_or(false), created))
            })
            .collect();
        users.push(ReportUser {
            user: field(user).to_string(),
            arn: field(arn).to_string(),
            created: parse_time(field(created)),
            password_enabled: field(password) == "true",
            keys,
        });
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated
<root_account>,arn:aws:iam::111122223333:root,2020-01-01T00:00:00+00:00,not_supported,2025-03-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
maria.silva,arn:aws:iam::111122223333:user/maria.silva,2025-03-11T14:02:07+00:00,true,N/A,2025-03-11T14:02:08+00:00,N/A,false,true,2025-03-11T14:03:15+00:00,N/A,N/A,N/A,true,2025-04-01T09:00:00+00:00,2025-04-02T10:00:00+00:00,us-east-1,s3,false,N/A,false,N/A
svc-etl,arn:aws:iam::111122223333:user/service/svc-etl,2025-03-12T10:20:31+00:00,false,N/A,N/A,N/A,false,true,2025-03-12T10:21:05+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
\"odd,name\",\"arn:aws:iam::111122223333:user/odd,name\",2025-03-12T10:20:31+00:00,true,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
";

    #[test]
    fn reads_users_keys_and_skips_root() {
        let users = parse_credential_report(REPORT).unwrap();
        assert_eq!(users.iter().map(|u| u.user.as_str()).collect::<Vec<_>>(), ["maria.silva", "svc-etl", "odd,name"]);
        assert_eq!(users[0].keys.len(), 2);
        assert!(users[0].password_enabled);
        assert!(users[2].keys.is_empty());
    }

    #[test]
    fn only_password_users_with_an_early_key_may_be_affected() {
        let users = parse_credential_report(REPORT).unwrap();
        let w = TimeDelta::minutes(10);
        assert!(users[0].may_be_affected(w));
        assert!(users[1].may_be_affected(w), "no password in the report, but one may have been added since");
        assert!(!users[2].may_be_affected(w), "no keys");
        assert!(!users[0].may_be_affected(TimeDelta::seconds(30)), "key 68 s after the user");
    }

    #[test]
    fn a_report_without_its_columns_is_an_error() {
        assert!(parse_credential_report("a,b\n1,2\n").is_err());
    }
}
