//! Alerts an on-call engineer can act on: an SNS subject, a text body, a machine-readable JSON, and message
//! attributes for subscription filters. Built only from the facts below, none of which is a secret (the secret
//! access key never appears in CloudTrail, and nothing here could carry it).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::event::Principal;
use crate::report::Action;
use crate::rule::Verdict;
use crate::time::human_span;

/// SNS: a subject is printable ASCII, no newline, under 100 characters.
pub const MAX_SUBJECT: usize = 99;

/// Everything an alert says.
#[derive(Debug, Clone)]
pub struct AlertFacts {
    pub account: String,
    pub user_name: String,
    pub user_arn: Option<String>,
    pub user_created: DateTime<Utc>,
    pub access_key_id: String,
    pub key_created: DateTime<Utc>,
    pub has_password: bool,
    pub creator: Option<Principal>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub event_id: String,
    pub event_name: String,
    pub verdict: Verdict,
    pub reason: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub subject: String,
    pub text: String,
    pub json: Value,
    /// SNS message attributes (all strings): `rule`, `verdict`, `action`, `account`, `user`.
    pub attributes: Vec<(&'static str, String)>,
}

pub const RULE_ID: &str = "CIS-1.11";

impl Alert {
    pub fn render(f: &AlertFacts) -> Alert {
        // Whole seconds, as the rule counts them.
        let gap = f.key_created.timestamp() - f.user_created.timestamp();
        let what = match (f.verdict, f.action) {
            (_, Action::Deactivated) => "deactivated",
            (Verdict::Suspect, _) => "suspect",
            _ => "violation",
        };
        let subject =
            subject(&format!("KeyGuard {RULE_ID} {what}: setup key {} of IAM user {}", f.access_key_id, f.user_name));
        let creator = f.creator.as_ref().map(Principal::label).unwrap_or_else(|| "unknown".to_string());
        let user_arn = f.user_arn.clone().unwrap_or_else(|| "unknown".to_string());
        let action_line = match f.action {
            Action::Deactivated => "The key was set Inactive (not deleted).",
            Action::Notified => "No change was made: alert only.",
            Action::DryRun => "No change was made: dry run.",
            Action::None => "No change was made.",
        };
        let text = format!(
            "KeyGuard found an access key created during the initial setup of an IAM user with a console password \
             (CIS AWS Foundations Benchmark 1.11).\n\
             \n\
             Verdict:        {verdict}\n\
             Reason:         {reason}\n\
             Action taken:   {action} - {action_line}\n\
             \n\
             Account:        {account}\n\
             User:           {user} ({user_arn})\n\
             User created:   {user_created}\n\
             Access key:     {key}\n\
             Key created:    {key_created} ({gap} after the user)\n\
             Console password: {password}\n\
             Key created by: {creator}\n\
             Source IP:      {ip}\n\
             User agent:     {agent}\n\
             CloudTrail event: {event_name} {event_id}\n\
             \n\
             To re-enable the key, if it is needed and approved (and tag the user with KeyGuard's exemption tag, \
             by default keyguard:exempt, so that KeyGuard leaves the key alone from then on):\n\
             \x20 aws iam update-access-key --user-name {user} --access-key-id {key} --status Active\n\
             \x20 aws iam tag-user --user-name {user} --tags Key=keyguard:exempt,Value=approved\n\
             \n\
             The safe practice: the user creates their own key when they need one, so that its creation is logged \
             under their own name. Delete this setup key once it is confirmed unused:\n\
             \x20 aws iam delete-access-key --user-name {user} --access-key-id {key}\n\
             Then the user signs in to the console and creates a key under Security credentials > Access keys, or runs \
             `aws iam create-access-key` with their own credentials.\n",
            verdict = f.verdict.as_str(),
            reason = f.reason,
            action = f.action.as_str(),
            account = f.account,
            user = f.user_name,
            user_created = stamp(f.user_created),
            key = f.access_key_id,
            key_created = stamp(f.key_created),
            gap = human_span(gap),
            password = if f.has_password { "yes" } else { "no" },
            ip = f.source_ip.as_deref().unwrap_or("unknown"),
            agent = f.user_agent.as_deref().unwrap_or("unknown"),
            event_name = f.event_name,
            event_id = f.event_id,
        );
        let json = json!({
            "rule": RULE_ID,
            "verdict": f.verdict.as_str(),
            "reason": f.reason,
            "action": f.action.as_str(),
            "account": f.account,
            "user": {"name": f.user_name, "arn": f.user_arn, "created": stamp(f.user_created), "has_password": f.has_password},
            "access_key": {"id": f.access_key_id, "created": stamp(f.key_created), "seconds_after_user": gap},
            "creator": {
                "arn": f.creator.as_ref().and_then(|c| c.arn.clone()),
                "type": f.creator.as_ref().map(|c| c.kind.clone()),
                "invoked_by": f.creator.as_ref().and_then(|c| c.invoked_by.clone()),
                "source_ip": f.source_ip,
                "user_agent": f.user_agent,
            },
            "event": {"id": f.event_id, "name": f.event_name},
            "re_enable": format!("aws iam update-access-key --user-name {} --access-key-id {} --status Active", f.user_name, f.access_key_id),
        });
        let attributes = vec![
            ("rule", RULE_ID.to_string()),
            ("verdict", f.verdict.as_str().to_string()),
            ("action", f.action.as_str().to_string()),
            ("account", f.account.clone()),
            ("user", f.user_name.clone()),
        ];
        Alert { subject, text, json, attributes }
    }

    /// The SNS message for `MessageStructure=json`: text for people (`default`, `email`), JSON for machines.
    pub fn sns_message(&self) -> String {
        let machine = self.json.to_string();
        json!({
            "default": self.text,
            "email": self.text,
            "sqs": machine,
            "lambda": machine,
            "http": machine,
            "https": machine,
        })
        .to_string()
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Printable ASCII only, within SNS's limit; a long user name is cut, marked with `...`.
fn subject(raw: &str) -> String {
    let clean: String = raw.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).collect();
    if clean.len() <= MAX_SUBJECT { clean } else { format!("{}...", &clean[..MAX_SUBJECT - 3]) }
}
