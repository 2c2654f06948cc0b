//! `--live`: a harmless canary. A tagged, exempt user is created with a password and a key, the function's log
//! group is read until the guard logs its decision about that key, and the user is deleted again. The only
//! check that writes anything.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::errors;
use crate::report::Check;

pub const ACTIONS: &[&str] = &[
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:CreateUser",
    "iam:DeleteAccessKey",
    "iam:DeleteLoginProfile",
    "iam:DeleteUser",
    "iam:ListAccessKeys",
    "iam:TagUser",
    "logs:FilterLogEvents",
];

/// Where canaries live: a path of their own, so they are easy to find and to exempt.
pub const CANARY_PATH: &str = "/keyguard-canary/";

const NAME: &str = "live";

#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// How long to wait for the function's decision (CloudTrail delivers within minutes).
    pub timeout: Duration,
    /// How often to read the log group.
    pub poll: Duration,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions { timeout: Duration::from_secs(300), poll: Duration::from_secs(5) }
    }
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// A password nobody knows, good for any password policy (upper, lower, digit, symbol, 40 characters); the user
/// is deleted within minutes and must change it at first sign-in anyway.
fn throwaway_password() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let mut words = Vec::new();
    for i in 0..2u64 {
        let mut h = state.build_hasher();
        h.write_u64(i);
        h.write_i64(now_millis());
        words.push(format!("{:016x}", h.finish()));
    }
    format!("Kg-{}-{}!aZ9", words[0], words[1])
}

/// The guard's decision line about the canary's key: `{"message": "decision", "access_key_id": ..., "verdict": ...}`
/// (flattened or under `fields`, as the log format puts it). Returns the verdict.
pub fn decision_about(message: &str, key_id: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(message).ok()?;
    let fields = if v.get("access_key_id").is_some() { &v } else { v.get("fields")? };
    let is_decision = v.get("message").or_else(|| fields.get("message")).and_then(|m| m.as_str()) == Some("decision");
    (is_decision && fields.get("access_key_id").and_then(|k| k.as_str()) == Some(key_id))
        .then(|| fields.get("verdict").and_then(|x| x.as_str()).unwrap_or("?").to_string())
}

/// Runs the canary. `exempt_tag` is the function's KEYGUARD_EXEMPT_TAG, so the guard leaves the canary alone.
pub async fn check(
    iam: &aws_sdk_iam::Client,
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
    exempt_tag: &str,
    options: &LiveOptions,
) -> Vec<Check> {
    let user = format!("keyguard-canary-{}", now_millis());
    let created = create(iam, &user, exempt_tag).await;
    let mut out = Vec::new();
    match &created {
        Ok((key_id, at)) => out.push(wait_for_decision(logs, log_group, &user, key_id, *at, options).await),
        Err(e) => out.push(Check::fail(
            NAME,
            format!("could not create the canary {user}: {e}"),
            "grant the doctor the --live actions (`keyguard permissions --doctor --live`)",
        )),
    }
    if let Err(e) = delete(iam, &user).await {
        out.push(Check::fail(
            "live-cleanup",
            format!("the canary {user} could not be deleted: {e}"),
            format!("delete it: `aws iam delete-login-profile --user-name {user}`, its access key, then `aws iam delete-user --user-name {user}`"),
        ));
    } else if let Some(first) = out.first_mut()
        && first.check == NAME
    {
        first.detail.push_str("; canary deleted");
    }
    out
}

/// Creates the canary user (tagged exempt, under CANARY_PATH), its password and a key; returns the key id and
/// when the key was created. The secret key is dropped unread.
async fn create(iam: &aws_sdk_iam::Client, user: &str, exempt_tag: &str) -> Result<(String, i64), String> {
    let tag = aws_sdk_iam::types::Tag::builder().key(exempt_tag).value("true").build().map_err(|e| e.to_string())?;
    iam.create_user().user_name(user).path(CANARY_PATH).tags(tag).send().await.map_err(|e| errors::one_line(&e))?;
    iam.create_login_profile()
        .user_name(user)
        .password(throwaway_password())
        .password_reset_required(true)
        .send()
        .await
        .map_err(|e| errors::one_line(&e))?;
    let at = now_millis();
    let key = iam.create_access_key().user_name(user).send().await.map_err(|e| errors::one_line(&e))?;
    let key_id = key.access_key().map(|k| k.access_key_id().to_string()).ok_or("CreateAccessKey returned no key")?;
    Ok((key_id, at))
}

async fn wait_for_decision(
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
    user: &str,
    key_id: &str,
    created_at: i64,
    options: &LiveOptions,
) -> Check {
    let started = std::time::Instant::now();
    let mut last_error = None;
    loop {
        let found = logs
            .filter_log_events()
            .log_group_name(log_group)
            .start_time(created_at - 60_000)
            .filter_pattern(format!("\"{key_id}\""))
            .send()
            .await;
        match found {
            Ok(out) => {
                for e in out.events() {
                    if let Some(verdict) = decision_about(e.message().unwrap_or_default(), key_id) {
                        let seconds = (e.timestamp().unwrap_or(created_at) - created_at).max(0) as f64 / 1000.0;
                        return Check::pass(
                            NAME,
                            format!(
                                "canary {user}: the function logged its decision ({verdict}) {seconds:.1} s after CreateAccessKey"
                            ),
                        );
                    }
                }
            }
            Err(e) => last_error = Some(errors::one_line(&e)),
        }
        if started.elapsed() >= options.timeout {
            let mut detail = format!(
                "canary {user}: no decision about key {key_id} in {log_group} within {} s",
                options.timeout.as_secs_f64()
            );
            if let Some(e) = last_error {
                detail.push_str(&format!(" (last read failed: {e})"));
            }
            return Check::fail(
                NAME,
                detail,
                "IAM events are not reaching the function (see the trail and rule lines above) or it fails on them \
                 (read its log group); CloudTrail can take several minutes: try --live-timeout 15m",
            );
        }
        tokio::time::sleep(options.poll).await;
    }
}

/// Deletes the canary with its keys and password; a canary already gone is fine.
async fn delete(iam: &aws_sdk_iam::Client, user: &str) -> Result<(), String> {
    let keys: Vec<String> = match iam.list_access_keys().user_name(user).send().await {
        Ok(out) => out.access_key_metadata().iter().filter_map(|k| k.access_key_id().map(str::to_string)).collect(),
        Err(e) if errors::code(&e) == Some("NoSuchEntity") => return Ok(()),
        Err(e) => return Err(errors::one_line(&e)),
    };
    for key in keys {
        iam.delete_access_key().user_name(user).access_key_id(key).send().await.map_err(|e| errors::one_line(&e))?;
    }
    match iam.delete_login_profile().user_name(user).send().await {
        Err(e) if errors::code(&e) != Some("NoSuchEntity") => return Err(errors::one_line(&e)),
        _ => {}
    }
    iam.delete_user().user_name(user).send().await.map_err(|e| errors::one_line(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_guard_s_decision_line_is_recognized() {
        let line = r#"{"timestamp":"2025-03-11T14:02:09Z","level":"INFO","message":"decision","event_id":"e1",
            "event_name":"CreateAccessKey","user":"keyguard-canary-1","access_key_id":"AKIACANARY","verdict":"exempt",
            "action":"none","reason":"exempt (tag keyguard:exempt)","latency_ms":41}"#;
        assert_eq!(decision_about(line, "AKIACANARY").as_deref(), Some("exempt"));
        assert_eq!(decision_about(line, "AKIAOTHER"), None);
        let nested =
            r#"{"level":"INFO","fields":{"message":"decision","access_key_id":"AKIACANARY","verdict":"exempt"}}"#;
        assert_eq!(decision_about(nested, "AKIACANARY").as_deref(), Some("exempt"));
        assert_eq!(decision_about(r#"{"message":"alert published","access_key_id":"AKIACANARY"}"#, "AKIACANARY"), None);
        assert_eq!(decision_about("START RequestId: 1", "AKIACANARY"), None);
    }

    #[test]
    fn throwaway_passwords_meet_a_strict_policy_and_differ() {
        let (a, b) = (throwaway_password(), throwaway_password());
        assert_ne!(a, b);
        assert!(a.len() >= 32);
        assert!(a.chars().any(|c| c.is_ascii_uppercase()) && a.chars().any(|c| c.is_ascii_lowercase()));
        assert!(a.chars().any(|c| c.is_ascii_digit()) && a.chars().any(|c| !c.is_ascii_alphanumeric()));
    }
}
