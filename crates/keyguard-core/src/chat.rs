//! Alerts readable in Slack and Microsoft Teams, through Amazon Q Developer in chat applications (formerly AWS
//! Chatbot): its documented custom notification format (`"version": "1.0"`, `"source": "custom"`, `content`,
//! `metadata`), published to an SNS topic that a chat channel configuration subscribes to.
//!
//! One user's setup threads together: `metadata.threadId` is per account and user. Everything that comes from
//! outside KeyGuard (user names, ARNs, user agents, reasons that quote them) is shown in code spans with the
//! characters that could end the span, open a mention or a link (`` ` ``, `<`, `>`) replaced and line breaks
//! flattened, so no markdown in them is rendered.

use crate::text::clip;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::alert::{AlertFacts, RULE_ID};
use crate::event::Principal;
use crate::report::Action;
use crate::rule::Verdict;
use crate::time::human_span;

/// The documented limits of a custom notification's title and description.
const MAX_TITLE: usize = 250;
const MAX_DESCRIPTION: usize = 8000;
/// A quoted value longer than this is cut (user agents can be long).
const MAX_VALUE: usize = 300;

/// The thread a user's notifications go to: one per account and user (IAM user names are unique
/// case-insensitively).
pub fn thread_id(account: &str, user: &str) -> String {
    let user: String = user
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) { c } else { '_' })
        .collect();
    format!("keyguard-{account}-{user}")
}

/// The custom notification for one alert.
pub fn notification(f: &AlertFacts) -> Value {
    let (emoji, what, event_type) = match (f.verdict, f.action) {
        (_, Action::Deactivated) => (":lock:", "setup key deactivated", "KeyGuardKeyDeactivated"),
        (Verdict::Suspect, _) => (":warning:", "suspect setup key", "KeyGuardSuspect"),
        _ => (":rotating_light:", "setup key", "KeyGuardViolation"),
    };
    let title = clip(&format!("{emoji} KeyGuard {RULE_ID}: {what} of IAM user {}", code(&f.user_name)), MAX_TITLE);
    let creator = f.creator.as_ref().map(Principal::label);
    let gap = human_span(f.key_created.timestamp() - f.user_created.timestamp());
    let action = match f.action {
        Action::Deactivated => "deactivated: the key was set Inactive (not deleted)",
        Action::Notified => "notified: no change was made",
        Action::DryRun => "dry run: no change was made",
        Action::None => "none",
    };
    let lines = [
        format!("*Verdict:* {} ({RULE_ID}: no access key at the initial setup of a console user)", f.verdict.as_str()),
        format!("*Reason:* {}", code(&f.reason)),
        format!("*Action:* {action}"),
        format!("*Account:* {}", code(&f.account)),
        format!(
            "*User:* {} created {}, console password: {}",
            code(&f.user_name),
            stamp(f.user_created),
            if f.has_password { "yes" } else { "no" }
        ),
        format!("*Access key:* {} created {}, {gap} after the user", code(&f.access_key_id), stamp(f.key_created)),
        format!("*Created by:* {}", code_or_unknown(creator.as_deref())),
        format!(
            "*From:* {} with {}",
            code_or_unknown(f.source_ip.as_deref()),
            code_or_unknown(f.user_agent.as_deref())
        ),
        format!("*CloudTrail event:* {} {}", code(&f.event_name), code(&f.event_id)),
    ];
    let description = clip(&lines.join("\n"), MAX_DESCRIPTION);
    let user = command_arg(&f.user_name);
    let key = command_arg(&f.access_key_id);
    let next_steps: Vec<String> = match f.action {
        Action::Deactivated => vec![
            format!(
                "Re-enable only if the key is needed and approved: `aws iam update-access-key --user-name {user} \
                 --access-key-id {key} --status Active`"
            ),
            format!(
                "Then exempt the user, so KeyGuard leaves the key alone: `aws iam tag-user --user-name {user} \
                 --tags Key=keyguard:exempt,Value=approved`"
            ),
            "Better: the user creates their own key (console: Security credentials > Access keys).".to_string(),
        ],
        _ => vec![
            format!(
                "Ask whether the key is needed; if not, deactivate it: `aws iam update-access-key --user-name {user} \
                 --access-key-id {key} --status Inactive`"
            ),
            format!(
                "Delete it once confirmed unused: `aws iam delete-access-key --user-name {user} --access-key-id {key}`"
            ),
            "The user creates their own key when they need one (console: Security credentials > Access keys)."
                .to_string(),
        ],
    };
    let mut related = vec![f.access_key_id.clone()];
    related.extend(f.user_arn.clone());
    json!({
        "version": "1.0",
        "source": "custom",
        "id": format!("{}/{}", f.event_id, f.access_key_id),
        "content": {
            "textType": "client-markdown",
            "title": title,
            "description": description,
            "nextSteps": next_steps,
            "keywords": ["KeyGuard", RULE_ID, f.verdict.as_str(), f.action.as_str()],
        },
        "metadata": {
            "threadId": thread_id(&f.account, &f.user_name),
            // The summary shows in previews: no user-controlled text, so nothing to escape.
            "summary": format!("KeyGuard {RULE_ID} {} in account {}", f.verdict.as_str(), f.account),
            "eventType": event_type,
            "relatedResources": related,
            // For custom action buttons (e.g. one that deactivates the key): raw values, never rendered.
            "additionalContext": {
                "account": f.account,
                "userName": f.user_name,
                "accessKeyId": f.access_key_id,
                "verdict": f.verdict.as_str(),
                "action": f.action.as_str(),
            },
            "enableCustomActions": true,
        },
    })
}

/// The SNS message for a chat topic: the notification as JSON text.
pub fn message(f: &AlertFacts) -> String {
    notification(f).to_string()
}

/// A value shown as inline code that no chat client can render as anything else: the span cannot be closed
/// early (no backtick), nothing can open a mention, a channel link or a URL (no `<`, `>`), and it stays on one line.
fn code(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '<' => '\u{2039}',
            '>' => '\u{203a}',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    let clean = clip(clean.trim(), MAX_VALUE);
    if clean.is_empty() { "`-`".to_string() } else { format!("`{clean}`") }
}

fn code_or_unknown(text: Option<&str>) -> String {
    text.map(code).unwrap_or_else(|| "unknown".to_string())
}

/// A user name or key id inside a command that is itself in a code span. IAM restricts both to
/// `[A-Za-z0-9+=,.@_-]`; anything else is dropped rather than risk breaking out of the span or the shell word.
fn command_arg(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c)).collect()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn facts(action: Action) -> AlertFacts {
        let at = |m, s| Utc.with_ymd_and_hms(2025, 3, 11, 14, m, s).single().unwrap();
        AlertFacts {
            account: "111122223333".into(),
            user_name: "maria.silva".into(),
            user_arn: Some("arn:aws:iam::111122223333:user/maria.silva".into()),
            user_created: at(2, 7),
            access_key_id: "AKIAYQ3EXAMPLEMARIA1".into(),
            key_created: at(3, 15),
            has_password: true,
            creator: Some(Principal {
                kind: "AssumedRole".into(),
                arn: Some("arn:aws:sts::111122223333:assumed-role/admin/priya".into()),
                account_id: None,
                user_name: None,
                issuer_arn: None,
                invoked_by: None,
            }),
            source_ip: Some("203.0.113.7".into()),
            user_agent: Some("aws-cli/2.15.30".into()),
            event_id: "evt-1".into(),
            event_name: "CreateAccessKey".into(),
            verdict: Verdict::Violation,
            reason: "access key created 1m 08s after the user".into(),
            action,
            note: None,
            kind: crate::alert::AlertKind::Finding,
            account_alias: None,
            exempt_tag: ("keyguard:exempt".into(), "true".into()),
        }
    }

    #[test]
    fn the_documented_envelope_and_a_thread_per_user() {
        let n = notification(&facts(Action::Notified));
        assert_eq!(n["version"], "1.0");
        assert_eq!(n["source"], "custom");
        assert_eq!(n["content"]["textType"], "client-markdown");
        assert_eq!(n["metadata"]["threadId"], "keyguard-111122223333-maria.silva");
        assert!(n["content"]["title"].as_str().unwrap().contains("`maria.silva`"));
        let steps = n["content"]["nextSteps"].as_array().unwrap();
        assert!(steps[0].as_str().unwrap().contains(
            "aws iam update-access-key --user-name maria.silva --access-key-id AKIAYQ3EXAMPLEMARIA1 --status Inactive"
        ));
        assert_eq!(n["metadata"]["eventType"], "KeyGuardViolation");
        // The same user threads together whatever the case of the name and the key.
        let mut other = facts(Action::Deactivated);
        other.user_name = "Maria.Silva".into();
        other.access_key_id = "AKIAYQ3EXAMPLEMARIA2".into();
        let d = notification(&other);
        assert_eq!(d["metadata"]["threadId"], n["metadata"]["threadId"]);
        assert_eq!(d["metadata"]["eventType"], "KeyGuardKeyDeactivated");
        assert!(d["content"]["nextSteps"][0].as_str().unwrap().contains("--status Active"));
        assert_eq!(serde_json::from_str::<Value>(&message(&other)).unwrap(), d);
    }

    #[test]
    fn markdown_mentions_and_links_in_outside_values_are_inert() {
        let mut f = facts(Action::Notified);
        f.user_agent =
            Some("*bold* _it_ ~x~ [click](https://evil.example) <!channel> <@U123> `tick`\n# heading".into());
        f.reason = "by arn:aws:sts::1:assumed-role/r/<!here>".into();
        let n = notification(&f);
        let description = n["content"]["description"].as_str().unwrap();
        let agent_line = description.lines().find(|l| l.starts_with("*From:*")).unwrap();
        // The value is one code span: two backticks around it and none inside, no angle brackets, one line.
        let value = agent_line.split(" with ").nth(1).unwrap();
        assert!(value.starts_with('`') && value.ends_with('`'), "{value}");
        assert_eq!(value.matches('`').count(), 2, "{value}");
        assert!(!description.contains('<') && !description.contains('>'), "{description}");
        assert!(!description.contains("# heading\n") && description.lines().count() == 9, "{description}");
        assert!(description.contains("\u{2039}!channel\u{203a}"));
    }

    #[test]
    fn limits_hold_and_unknowns_are_said() {
        let mut f = facts(Action::Notified);
        f.user_agent = Some("a".repeat(20_000));
        f.creator = None;
        f.source_ip = None;
        let n = notification(&f);
        assert!(n["content"]["description"].as_str().unwrap().chars().count() <= MAX_DESCRIPTION);
        assert!(n["content"]["title"].as_str().unwrap().chars().count() <= MAX_TITLE);
        assert!(n["content"]["description"].as_str().unwrap().contains("*Created by:* unknown"));
        assert_eq!(command_arg("a`b;rm -rf /"), "abrm-rf");
        assert_eq!(thread_id("1", "a b/c"), "keyguard-1-a_b_c");
    }
}
