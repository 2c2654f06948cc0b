//! Configuration from the environment, parsed and checked once at start-up.
//!
//! The function reads a lookup (`std::env::var` in the binaries, a map in tests), so this stays pure.

use chrono::TimeDelta;
use serde::Serialize;

use crate::exempt::Exemptions;
use crate::rule::Policy;

pub const DEFAULT_EXEMPT_TAG: &str = "keyguard:exempt";
pub const DEFAULT_WINDOW: &str = "10m";
/// Longer windows stop meaning "initial setup"; a typo such as `10h` for `10m` should fail loudly.
const MAX_WINDOW_SECONDS: i64 = 7 * 24 * 3600;

/// What the guard does about a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Publish an alert.
    Notify,
    /// Set the key inactive, then publish an alert.
    Deactivate,
    /// Decide and log only.
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Notify => "notify",
            Mode::Deactivate => "deactivate",
            Mode::DryRun => "dry-run",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "notify" => Ok(Mode::Notify),
            "deactivate" => Ok(Mode::Deactivate),
            "dry-run" | "dryrun" | "dry_run" => Ok(Mode::DryRun),
            other => Err(format!("{other:?} is not one of notify, deactivate, dry-run")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub policy: Policy,
    /// Where alerts go; required unless the mode is dry-run.
    pub topic_arn: Option<String>,
    /// Whether the scheduled reconciliation sweep acts by `mode` (`KEYGUARD_RECONCILE=apply`) or only reports
    /// (`dry-run`, the default: the sweep sees keys without their creator, so it starts cautious).
    pub reconcile_apply: bool,
}

/// A bad setting: names the variable, so the operator knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn bad(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

impl Config {
    /// Reads the `KEYGUARD_*` variables through `get` (empty values count as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |name: &str| get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mode = match var("KEYGUARD_MODE") {
            Some(m) => m.parse().map_err(|e: String| bad("KEYGUARD_MODE", e))?,
            None => Mode::Notify,
        };
        let window_text = var("KEYGUARD_SETUP_WINDOW").unwrap_or_else(|| DEFAULT_WINDOW.to_string());
        let window = parse_window(&window_text).map_err(|e| bad("KEYGUARD_SETUP_WINDOW", e))?;
        let topic_arn = var("KEYGUARD_TOPIC_ARN");
        if let Some(arn) = &topic_arn {
            if !(arn.starts_with("arn:") && arn.split(':').nth(2) == Some("sns") && arn.split(':').count() == 6) {
                return Err(bad("KEYGUARD_TOPIC_ARN", format!("{arn:?} is not an SNS topic ARN")));
            }
        } else if mode != Mode::DryRun {
            return Err(bad(
                "KEYGUARD_TOPIC_ARN",
                format!("required in mode {} (set it, or KEYGUARD_MODE=dry-run)", mode.as_str()),
            ));
        }
        let tag = var("KEYGUARD_EXEMPT_TAG").unwrap_or_else(|| DEFAULT_EXEMPT_TAG.to_string());
        let paths = list(var("KEYGUARD_EXEMPT_PATHS"));
        if let Some(p) = paths.iter().find(|p| !p.starts_with('/')) {
            return Err(bad("KEYGUARD_EXEMPT_PATHS", format!("{p:?} is not an IAM path (must start with /)")));
        }
        let users = list(var("KEYGUARD_EXEMPT_USERS"));
        let creators = list(var("KEYGUARD_EXEMPT_CREATORS"));
        let exemptions = Exemptions::new(&tag, &paths, &users, &creators).map_err(|e| {
            let variable =
                if users.contains(&e.pattern) { "KEYGUARD_EXEMPT_USERS" } else { "KEYGUARD_EXEMPT_CREATORS" };
            bad(variable, e.to_string())
        })?;
        let reconcile_apply = match var("KEYGUARD_RECONCILE").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("dry-run") => false,
            Some("apply") => true,
            Some(other) => return Err(bad("KEYGUARD_RECONCILE", format!("{other:?} is not one of dry-run, apply"))),
        };
        Ok(Config { mode, policy: Policy { window, exemptions }, topic_arn, reconcile_apply })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }
}

/// `10m`, `90s`, `1h 30m` (humantime's syntax); a bare number is seconds.
pub fn parse_window(text: &str) -> Result<TimeDelta, String> {
    let std_duration = match text.parse::<u64>() {
        Ok(seconds) => std::time::Duration::from_secs(seconds),
        Err(_) => {
            humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration like 10m or 90s ({e})"))?
        }
    };
    let window = TimeDelta::from_std(std_duration).map_err(|_| format!("{text:?} is too long"))?;
    if window <= TimeDelta::zero() {
        return Err(format!("{text:?} must be longer than zero"));
    }
    if window.num_seconds() > MAX_WINDOW_SECONDS {
        return Err(format!("{text:?} is longer than 7 days; a setup window is minutes"));
    }
    Ok(window)
}

fn list(value: Option<String>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:keyguard";

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = from(&[("KEYGUARD_TOPIC_ARN", TOPIC)]).unwrap();
        assert_eq!(c.mode, Mode::Notify);
        assert_eq!(c.policy.window, TimeDelta::minutes(10));
        assert_eq!(c.topic_arn.as_deref(), Some(TOPIC));
        assert!(c.policy.exemptions.for_user("u", "/", &[("keyguard:exempt".into(), "x".into())]).is_some());
    }

    #[test]
    fn every_setting_is_read() {
        let c = from(&[
            ("KEYGUARD_MODE", "Deactivate"),
            ("KEYGUARD_SETUP_WINDOW", "90s"),
            ("KEYGUARD_TOPIC_ARN", TOPIC),
            ("KEYGUARD_EXEMPT_TAG", "security:skip"),
            ("KEYGUARD_EXEMPT_USERS", "svc-*, break-glass"),
            ("KEYGUARD_EXEMPT_PATHS", "/service/"),
            ("KEYGUARD_EXEMPT_CREATORS", "arn:aws:iam::*:role/provisioner"),
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Deactivate);
        assert_eq!(c.policy.window, TimeDelta::seconds(90));
        let e = &c.policy.exemptions;
        assert!(e.for_user("break-glass", "/", &[]).is_some());
        assert!(e.for_user("x", "/service/a/", &[]).is_some());
        assert!(e.for_user("x", "/", &[("security:skip".into(), "".into())]).is_some());
        assert!(e.for_user("x", "/", &[("keyguard:exempt".into(), "".into())]).is_none());
        let role = crate::event::Principal {
            kind: "AssumedRole".into(),
            arn: Some("arn:aws:sts::1:assumed-role/provisioner/s".into()),
            account_id: None,
            user_name: None,
            issuer_arn: Some("arn:aws:iam::1:role/provisioner".into()),
            invoked_by: None,
        };
        assert!(e.for_creator(&role).is_some());
    }

    #[test]
    fn dry_run_needs_no_topic() {
        let c = from(&[("KEYGUARD_MODE", "dry-run")]).unwrap();
        assert_eq!(c.mode, Mode::DryRun);
        assert_eq!(c.topic_arn, None);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("KEYGUARD_MODE", "loud"), ("KEYGUARD_TOPIC_ARN", TOPIC)], "KEYGUARD_MODE"),
            (&[("KEYGUARD_SETUP_WINDOW", "ten minutes"), ("KEYGUARD_TOPIC_ARN", TOPIC)], "KEYGUARD_SETUP_WINDOW"),
            (&[("KEYGUARD_SETUP_WINDOW", "0s"), ("KEYGUARD_TOPIC_ARN", TOPIC)], "KEYGUARD_SETUP_WINDOW"),
            (&[("KEYGUARD_SETUP_WINDOW", "30d"), ("KEYGUARD_TOPIC_ARN", TOPIC)], "KEYGUARD_SETUP_WINDOW"),
            (&[], "KEYGUARD_TOPIC_ARN"),
            (&[("KEYGUARD_TOPIC_ARN", "keyguard-topic")], "KEYGUARD_TOPIC_ARN"),
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_EXEMPT_USERS", "a[")], "KEYGUARD_EXEMPT_USERS"),
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_EXEMPT_CREATORS", "{x")], "KEYGUARD_EXEMPT_CREATORS"),
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_EXEMPT_PATHS", "service/")], "KEYGUARD_EXEMPT_PATHS"),
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_RECONCILE", "yes")], "KEYGUARD_RECONCILE"),
        ];
        for (vars, variable) in cases {
            let err = from(vars).unwrap_err();
            assert_eq!(err.variable, *variable, "{vars:?}");
            assert!(err.to_string().starts_with(variable), "{err}");
        }
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("10m"), Ok(TimeDelta::minutes(10)));
        assert_eq!(parse_window("1h 30m"), Ok(TimeDelta::minutes(90)));
        assert_eq!(parse_window("45"), Ok(TimeDelta::seconds(45)));
        assert!(parse_window("-5s").is_err());
    }
}
