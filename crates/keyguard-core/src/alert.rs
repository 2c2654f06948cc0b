//! Alerts an on-call engineer can act on: an SNS subject, a text body, a machine-readable JSON, and message
//! attributes for subscription filters. Built only from the facts below, none of which is a secret (the secret
//! access key never appears in CloudTrail, and nothing here could carry it).
//!
//! Four kinds of message come from here: an alert about one key ([`Alert::render`]: a finding, an exempt would-be
//! violation reported for information, a re-enabled key), the safety valve closing ([`Alert::valve_closed`]), and
//! the sweep's daily digest ([`Alert::digest`]). User-controlled text (names, tags, user agents) is made inert:
//! the subject is printable ASCII, and the text body has no control characters, so nothing a user puts in a
//! name or an agent string can forge a line of the alert.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::event::Principal;
use crate::report::Action;
use crate::rule::{Reason, Verdict};
use crate::time::human_span;

/// SNS: a subject is printable ASCII, no newline, under 100 characters.
pub const MAX_SUBJECT: usize = 99;

pub const RULE_ID: &str = "CIS-1.11";

/// What an alert about one key is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// A violation or a suspect.
    Finding,
    /// A would-be violation an exemption let through: reported so that an exemption cannot hide anything.
    Exempt,
    /// A key KeyGuard deactivated was set `Active` again.
    ReEnabled,
}

impl AlertKind {
    pub fn of(reason: &Reason) -> AlertKind {
        match reason {
            Reason::ReEnabled { .. } => AlertKind::ReEnabled,
            Reason::Exempt(_) => AlertKind::Exempt,
            _ => AlertKind::Finding,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Finding => "finding",
            AlertKind::Exempt => "exempt",
            AlertKind::ReEnabled => "re-enabled",
        }
    }
}

/// Everything an alert about one key says.
#[derive(Debug, Clone)]
pub struct AlertFacts {
    pub kind: AlertKind,
    pub account: String,
    /// The account's alias (`iam:ListAccountAliases`), when readable.
    pub account_alias: Option<String>,
    pub user_name: String,
    pub user_arn: Option<String>,
    pub user_created: DateTime<Utc>,
    pub access_key_id: String,
    pub key_created: DateTime<Utc>,
    pub has_password: bool,
    /// Who created the key (or, for a re-enabled key, who re-enabled it), when known.
    pub creator: Option<Principal>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub event_id: String,
    pub event_name: String,
    pub verdict: Verdict,
    pub reason: String,
    pub action: Action,
    /// Why KeyGuard did not do more (creator unknown, key in use, safety valve closed), or what else it did.
    pub note: Option<String>,
    /// The exemption tag (key, value) the re-enable advice tells to set: the configured one.
    pub exempt_tag: (String, String),
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Alert {
    pub subject: String,
    pub text: String,
    pub json: Value,
    /// SNS message attributes (all strings): `rule`, `kind`, `verdict`, `action`, `account`, `user`.
    pub attributes: Vec<(String, String)>,
}

/// What the safety valve's alert says.
#[derive(Debug, Clone)]
pub struct ValveFacts {
    /// What the valve bounded: an event id, `reconciliation`, `keyguard audit --apply`.
    pub scope: String,
    pub account: String,
    pub cap: usize,
    /// Violations left active because the valve was closed (so far).
    pub withheld: usize,
}

/// What the sweep's daily digest says about one account.
#[derive(Debug, Clone)]
pub struct DigestFacts {
    pub account: String,
    pub account_alias: Option<String>,
    pub generated: DateTime<Utc>,
    /// `dry-run` or the mode the sweep acted in.
    pub mode: String,
    pub users: usize,
    /// The open findings: (user, key id, verdict, reason, action).
    pub findings: Vec<DigestLine>,
    /// Users the sweep could not read (name: error).
    pub failures: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DigestLine {
    pub user: String,
    pub access_key_id: Option<String>,
    pub verdict: Verdict,
    pub reason: String,
    pub action: Action,
}

/// The digest lists this many findings in its text, and [`DIGEST_JSON_LINES`] in its JSON: SNS carries 256 KiB, and
/// the structured message holds the JSON four times (one per machine protocol). `keyguard audit` has the rest.
const DIGEST_LINES: usize = 50;
const DIGEST_JSON_LINES: usize = 100;

impl Alert {
    pub fn render(f: &AlertFacts) -> Alert {
        // Whole seconds, as the rule counts them.
        let gap = f.key_created.timestamp() - f.user_created.timestamp();
        let what = match (f.kind, f.verdict, f.action) {
            (AlertKind::ReEnabled, _, _) => "re-enabled",
            (AlertKind::Exempt, _, _) => "exempt (info)",
            (_, _, Action::Deactivated) => "deactivated",
            (_, Verdict::Suspect, _) => "suspect",
            _ => "violation",
        };
        let noun = if f.kind == AlertKind::ReEnabled { "key" } else { "setup key" };
        let subject =
            subject(&format!("KeyGuard {RULE_ID} {what}: {noun} {} of IAM user {}", f.access_key_id, f.user_name));
        let creator = f.creator.as_ref().map(Principal::label).unwrap_or_else(|| "unknown".to_string());
        let user_arn = f.user_arn.clone().unwrap_or_else(|| "unknown".to_string());
        let action_line = match f.action {
            Action::Deactivated => "The key was set Inactive (not deleted).",
            Action::Notified => "No change was made: alert only.",
            Action::DryRun => "No change was made: dry run.",
            Action::None => "No change was made.",
        };
        let headline = match f.kind {
            AlertKind::Finding => {
                "KeyGuard found an access key created during the initial setup of an IAM user with a console \
                 password (CIS AWS Foundations Benchmark 1.11)."
            }
            AlertKind::Exempt => {
                "For information: KeyGuard found an access key created during the initial setup of an IAM user with \
                 a console password (CIS AWS Foundations Benchmark 1.11), and an exemption let it through. Check that \
                 the exemption is intended: whoever can set it can silence the guard."
            }
            AlertKind::ReEnabled => {
                "An access key that KeyGuard deactivated (CIS AWS Foundations Benchmark 1.11) was set Active again by \
                 someone who is not exempt."
            }
        };
        let account = account_label(&f.account, f.account_alias.as_deref());
        let (tag_key, tag_value) = (&f.exempt_tag.0, &f.exempt_tag.1);
        let user = inert(&f.user_name);
        let key = inert(&f.access_key_id);
        let note = f.note.as_deref().map(|n| format!("Note:           {}\n", inert(n))).unwrap_or_default();
        let creator_label = if f.kind == AlertKind::ReEnabled { "Re-enabled by: " } else { "Key created by:" };
        let text = format!(
            "{headline}\n\
             \n\
             Verdict:        {verdict}\n\
             Reason:         {reason}\n\
             Action taken:   {action} - {action_line}\n\
             {note}\
             \n\
             Account:        {account}\n\
             User:           {user} ({user_arn})\n\
             User created:   {user_created}\n\
             Access key:     {key}\n\
             Key created:    {key_created} ({gap} after the user)\n\
             Console password: {password}\n\
             {creator_label} {creator}\n\
             Source IP:      {ip}\n\
             User agent:     {agent}\n\
             CloudTrail event: {event_name} {event_id}\n\
             \n\
             To re-enable the key, if it is needed and approved, and exempt the user so that KeyGuard leaves the key \
             alone from then on (KeyGuard reports exempt keys for information):\n\
             \x20 aws iam update-access-key --user-name {user} --access-key-id {key} --status Active\n\
             \x20 aws iam tag-user --user-name {user} --tags Key={tag_key},Value={tag_value}\n\
             \n\
             The safe practice: the user creates their own key when they need one, so that its creation is logged \
             under their own name. Delete this setup key once it is confirmed unused:\n\
             \x20 aws iam delete-access-key --user-name {user} --access-key-id {key}\n\
             Then the user signs in to the console and creates a key under Security credentials > Access keys, or runs \
             `aws iam create-access-key` with their own credentials.\n",
            verdict = f.verdict.as_str(),
            reason = inert(&f.reason),
            action = f.action.as_str(),
            user_arn = inert(&user_arn),
            user_created = stamp(f.user_created),
            key_created = stamp(f.key_created),
            gap = human_span(gap),
            password = if f.has_password { "yes" } else { "no" },
            creator = inert(&creator),
            ip = inert(f.source_ip.as_deref().unwrap_or("unknown")),
            agent = inert(f.user_agent.as_deref().unwrap_or("unknown")),
            event_name = inert(&f.event_name),
            event_id = inert(&f.event_id),
        );
        let json = json!({
            "rule": RULE_ID,
            "kind": f.kind.as_str(),
            "verdict": f.verdict.as_str(),
            "reason": f.reason,
            "action": f.action.as_str(),
            "note": f.note,
            "account": f.account,
            "account_alias": f.account_alias,
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
            "exempt_with": format!("aws iam tag-user --user-name {} --tags Key={tag_key},Value={tag_value}", f.user_name),
        });
        let attributes = vec![
            ("rule".to_string(), RULE_ID.to_string()),
            ("kind".to_string(), f.kind.as_str().to_string()),
            ("verdict".to_string(), f.verdict.as_str().to_string()),
            ("action".to_string(), f.action.as_str().to_string()),
            ("account".to_string(), f.account.clone()),
            ("user".to_string(), f.user_name.clone()),
        ];
        Alert { subject, text, json, attributes }
    }

    /// The one alert that says the safety valve closed: KeyGuard deactivated as many keys as it may in one scope
    /// and now only alerts. A logic error must not disable an account; a real wave of violations is still alerted
    /// key by key.
    pub fn valve_closed(f: &ValveFacts) -> Alert {
        let subject = subject(&format!(
            "KeyGuard {RULE_ID} safety valve closed: {} deactivations reached in account {}",
            f.cap, f.account
        ));
        let text = format!(
            "KeyGuard's safety valve closed: it deactivated {cap} access key(s) in {scope} (account {account}), the \
             most KEYGUARD_MAX_DEACTIVATIONS allows at once. It deactivates nothing more there and alerts on every \
             further violation instead ({withheld} so far).\n\
             \n\
             Why: so many violations at once is more often a logic error or a bulk provisioning run than a wave of \
             unsafe setups, and a guardrail must never disable a whole account.\n\
             \n\
             What to do: read the alerts of this run. If the keys are violations, deactivate them (the alerts give \
             the command), or raise KEYGUARD_MAX_DEACTIVATIONS; if they are not, add an exemption and tell the \
             KeyGuard maintainers.\n",
            cap = f.cap,
            scope = inert(&f.scope),
            account = f.account,
            withheld = f.withheld,
        );
        let json = json!({
            "rule": RULE_ID,
            "kind": "safety-valve",
            "scope": f.scope,
            "account": f.account,
            "max_deactivations": f.cap,
            "withheld": f.withheld,
        });
        let attributes = vec![
            ("rule".to_string(), RULE_ID.to_string()),
            ("kind".to_string(), "safety-valve".to_string()),
            ("verdict".to_string(), Verdict::Violation.as_str().to_string()),
            ("action".to_string(), Action::Notified.as_str().to_string()),
            ("account".to_string(), f.account.clone()),
        ];
        Alert { subject, text, json, attributes }
    }

    /// The sweep's one message a day per account with open findings or failures (never one alert per standing
    /// finding every day).
    pub fn digest(f: &DigestFacts) -> Alert {
        let count = |v: Verdict| f.findings.iter().filter(|l| l.verdict == v).count();
        let (violations, suspects) = (count(Verdict::Violation), count(Verdict::Suspect));
        let account = account_label(&f.account, f.account_alias.as_deref());
        let subject = subject(&format!(
            "KeyGuard {RULE_ID} daily sweep: {violations} violation(s), {suspects} suspect(s), {} failure(s) in {}",
            f.failures.len(),
            f.account
        ));
        let mut text = format!(
            "KeyGuard's daily sweep of account {account} ({users} users, {mode}) found setup access keys of console \
             users still active (CIS AWS Foundations Benchmark 1.11): {violations} violation(s), {suspects} \
             suspect(s).\n\n",
            users = f.users,
            mode = f.mode,
        );
        for line in f.findings.iter().take(DIGEST_LINES) {
            text.push_str(&format!(
                "- {} {} {} ({}): {}\n",
                line.verdict.as_str(),
                inert(&line.user),
                line.access_key_id.as_deref().map(inert).unwrap_or_else(|| "-".into()),
                line.action.as_str(),
                inert(&line.reason)
            ));
        }
        if f.findings.len() > DIGEST_LINES {
            text.push_str(&format!("... and {} more (see the JSON message)\n", f.findings.len() - DIGEST_LINES));
        }
        if !f.failures.is_empty() {
            text.push_str(&format!(
                "\n{} user(s) could not be read; they are checked again by the next sweep:\n",
                f.failures.len()
            ));
            for failure in f.failures.iter().take(DIGEST_LINES) {
                text.push_str(&format!("- {}\n", inert(failure)));
            }
        }
        text.push_str(
            "\nRun `keyguard audit` for the full picture, or `keyguard audit --apply` to act on what is still open.\n",
        );
        let findings: Vec<Value> = f
            .findings
            .iter()
            .take(DIGEST_JSON_LINES)
            .map(|l| {
                json!({"user": l.user, "access_key_id": l.access_key_id, "verdict": l.verdict.as_str(),
                       "reason": l.reason, "action": l.action.as_str()})
            })
            .collect();
        let json = json!({
            "rule": RULE_ID,
            "kind": "digest",
            "account": f.account,
            "account_alias": f.account_alias,
            "generated": stamp(f.generated),
            "mode": f.mode,
            "users": f.users,
            "violations": violations,
            "suspects": suspects,
            "findings_total": f.findings.len(),
            "findings": findings,
            "failures": f.failures.iter().take(DIGEST_JSON_LINES).collect::<Vec<_>>(),
            "failures_total": f.failures.len(),
        });
        let attributes = vec![
            ("rule".to_string(), RULE_ID.to_string()),
            ("kind".to_string(), "digest".to_string()),
            ("verdict".to_string(), if violations > 0 { "violation" } else { "suspect" }.to_string()),
            ("action".to_string(), "none".to_string()),
            ("account".to_string(), f.account.clone()),
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

fn account_label(account: &str, alias: Option<&str>) -> String {
    match alias {
        Some(alias) => format!("{account} ({})", inert(alias)),
        None => account.to_string(),
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Text that cannot break the body's lines: control characters (newlines included) become `?`.
pub fn inert(text: &str) -> String {
    text.chars().map(|c| if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') { '?' } else { c }).collect()
}

/// Printable ASCII only, within SNS's limit; a long user name is cut, marked with `...`.
fn subject(raw: &str) -> String {
    let clean: String = raw.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).collect();
    if clean.len() <= MAX_SUBJECT { clean } else { format!("{}...", &clean[..MAX_SUBJECT - 3]) }
}
