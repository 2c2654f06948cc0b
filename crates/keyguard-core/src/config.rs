//! Configuration from the environment, parsed and checked once at start-up.
//!
//! The function reads a lookup (`std::env::var` in the binaries, a map in tests), so this stays pure.

use chrono::TimeDelta;
use serde::Serialize;

use crate::exempt::Exemptions;
use crate::rule::Policy;

pub const DEFAULT_EXEMPT_TAG: &str = "keyguard:exempt";
/// Only this value of the tag exempts (`keyguard:exempt=false` must not).
pub const DEFAULT_EXEMPT_TAG_VALUE: &str = "true";
pub const DEFAULT_WINDOW: &str = "10m";
/// The safety valve: at most this many deactivations per event, per sweep and per `audit --apply` run.
pub const DEFAULT_MAX_DEACTIVATIONS: usize = 5;
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

/// Which accounts the guard acts in (DESIGN.md §2: an event from any other account is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The function's own account only (no `KEYGUARD_MEMBER_ROLE`): the single-account deployment.
    Own,
    /// These accounts (`KEYGUARD_ACCOUNTS`), each through the member role (the own account with its own credentials).
    Listed { role: String, accounts: Vec<String> },
    /// Every account of the organization (`KEYGUARD_MEMBER_ROLE` without `KEYGUARD_ACCOUNTS`).
    Organization { role: String },
}

impl Scope {
    /// The member role's name, in organization deployments.
    pub fn member_role(&self) -> Option<&str> {
        match self {
            Scope::Own => None,
            Scope::Listed { role, .. } | Scope::Organization { role } => Some(role),
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
    /// The safety valve (`KEYGUARD_MAX_DEACTIVATIONS`): deactivations allowed per event, per sweep, per run.
    pub max_deactivations: usize,
    /// The DynamoDB ledger (`KEYGUARD_LEDGER_TABLE`); without it the guard is stateless.
    pub ledger_table: Option<String>,
    /// Which accounts are guarded (`KEYGUARD_MEMBER_ROLE`, `KEYGUARD_ACCOUNTS`).
    pub scope: Scope,
    /// The sweep queue (`KEYGUARD_SWEEP_QUEUE_URL`): the schedule sends one message per account to it.
    pub sweep_queue_url: Option<String>,
    /// File findings in Security Hub (`KEYGUARD_SECURITY_HUB=on`).
    pub security_hub: bool,
    /// A second SNS topic carrying chat-formatted alerts (`KEYGUARD_CHAT_TOPIC_ARN`).
    pub chat_topic_arn: Option<String>,
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
            if !is_topic_arn(arn) {
                return Err(bad("KEYGUARD_TOPIC_ARN", format!("{arn:?} is not an SNS topic ARN")));
            }
        } else if mode != Mode::DryRun {
            return Err(bad(
                "KEYGUARD_TOPIC_ARN",
                format!("required in mode {} (set it, or KEYGUARD_MODE=dry-run)", mode.as_str()),
            ));
        }
        let tag = var("KEYGUARD_EXEMPT_TAG").unwrap_or_else(|| DEFAULT_EXEMPT_TAG.to_string());
        let tag_value = var("KEYGUARD_EXEMPT_TAG_VALUE").unwrap_or_else(|| DEFAULT_EXEMPT_TAG_VALUE.to_string());
        if tag_value.chars().count() > 256 {
            return Err(bad("KEYGUARD_EXEMPT_TAG_VALUE", "longer than an IAM tag value (256 characters)"));
        }
        let paths = list(var("KEYGUARD_EXEMPT_PATHS"));
        if let Some(p) = paths.iter().find(|p| !p.starts_with('/')) {
            return Err(bad("KEYGUARD_EXEMPT_PATHS", format!("{p:?} is not an IAM path (must start with /)")));
        }
        let users = list(var("KEYGUARD_EXEMPT_USERS"));
        let creators = list(var("KEYGUARD_EXEMPT_CREATORS"));
        let exemptions = Exemptions::new(&tag, &paths, &users, &creators)
            .map_err(|e| {
                let variable =
                    if users.contains(&e.pattern) { "KEYGUARD_EXEMPT_USERS" } else { "KEYGUARD_EXEMPT_CREATORS" };
                bad(variable, e.to_string())
            })?
            .with_tag_value(&tag_value);
        let reconcile_apply = match var("KEYGUARD_RECONCILE").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("dry-run") => false,
            Some("apply") => true,
            Some(other) => return Err(bad("KEYGUARD_RECONCILE", format!("{other:?} is not one of dry-run, apply"))),
        };
        let max_deactivations = match var("KEYGUARD_MAX_DEACTIVATIONS") {
            None => DEFAULT_MAX_DEACTIVATIONS,
            Some(n) => n.parse::<usize>().ok().filter(|n| *n <= 10_000).ok_or_else(|| {
                bad("KEYGUARD_MAX_DEACTIVATIONS", format!("{n:?} is not a whole number from 0 to 10000"))
            })?,
        };
        let ledger_table = var("KEYGUARD_LEDGER_TABLE");
        if let Some(table) = &ledger_table
            && !((3..=255).contains(&table.len())
                && table.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
        {
            return Err(bad("KEYGUARD_LEDGER_TABLE", format!("{table:?} is not a DynamoDB table name")));
        }
        let scope = scope(var("KEYGUARD_MEMBER_ROLE"), var("KEYGUARD_ACCOUNTS"))?;
        let sweep_queue_url = var("KEYGUARD_SWEEP_QUEUE_URL");
        if let Some(url) = &sweep_queue_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(bad("KEYGUARD_SWEEP_QUEUE_URL", format!("{url:?} is not an SQS queue URL")));
        }
        let security_hub = match var("KEYGUARD_SECURITY_HUB").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("off" | "false" | "0") => false,
            Some("on" | "true" | "1") => true,
            Some(other) => return Err(bad("KEYGUARD_SECURITY_HUB", format!("{other:?} is not one of on, off"))),
        };
        let chat_topic_arn = var("KEYGUARD_CHAT_TOPIC_ARN");
        if let Some(arn) = &chat_topic_arn
            && !is_topic_arn(arn)
        {
            return Err(bad("KEYGUARD_CHAT_TOPIC_ARN", format!("{arn:?} is not an SNS topic ARN")));
        }
        Ok(Config {
            mode,
            policy: Policy { window, exemptions },
            topic_arn,
            reconcile_apply,
            max_deactivations,
            ledger_table,
            scope,
            sweep_queue_url,
            security_hub,
            chat_topic_arn,
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }
}

/// Every variable [`Config::from_lookup`] reads.
pub const VARIABLES: &[&str] = &[
    "KEYGUARD_MODE",
    "KEYGUARD_SETUP_WINDOW",
    "KEYGUARD_TOPIC_ARN",
    "KEYGUARD_EXEMPT_TAG",
    "KEYGUARD_EXEMPT_TAG_VALUE",
    "KEYGUARD_EXEMPT_PATHS",
    "KEYGUARD_EXEMPT_USERS",
    "KEYGUARD_EXEMPT_CREATORS",
    "KEYGUARD_RECONCILE",
    "KEYGUARD_MAX_DEACTIVATIONS",
    "KEYGUARD_LEDGER_TABLE",
    "KEYGUARD_MEMBER_ROLE",
    "KEYGUARD_ACCOUNTS",
    "KEYGUARD_SWEEP_QUEUE_URL",
    "KEYGUARD_SECURITY_HUB",
    "KEYGUARD_CHAT_TOPIC_ARN",
];

/// Checks one setting's value on its own: its syntax, not how it combines with the others (a topic the mode needs,
/// a role the accounts need). A command whose flag replaces a variable, or that reads none, still rejects a typo in
/// the environment with this.
pub fn check_setting(variable: &'static str, value: &str) -> Result<(), ConfigError> {
    if variable == "KEYGUARD_MODE" {
        return value.parse::<Mode>().map(|_| ()).map_err(|e| bad(variable, e));
    }
    // The rules live in `from_lookup`, once: run it with this value alone, in dry-run (which needs no topic) and
    // with a member role (which the accounts need), so that only this value can be wrong.
    Config::from_lookup(|name| match name {
        _ if name == variable => Some(value.to_string()),
        "KEYGUARD_MODE" => Some(Mode::DryRun.as_str().to_string()),
        "KEYGUARD_MEMBER_ROLE" => Some("KeyGuardMember".to_string()),
        _ => None,
    })
    .map(|_| ())
}

/// [`check_setting`] for every variable `get` has a value for.
pub fn check_settings(get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    for &variable in VARIABLES {
        if let Some(value) = get(variable) {
            check_setting(variable, &value)?;
        }
    }
    Ok(())
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

fn is_topic_arn(arn: &str) -> bool {
    arn.starts_with("arn:") && arn.split(':').nth(2) == Some("sns") && arn.split(':').count() == 6
}

/// `KEYGUARD_MEMBER_ROLE` (a role name) and `KEYGUARD_ACCOUNTS` (12-digit ids) into the guarded scope.
fn scope(role: Option<String>, accounts: Option<String>) -> Result<Scope, ConfigError> {
    let accounts = list(accounts);
    if let Some(a) = accounts.iter().find(|a| !(a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))) {
        return Err(bad("KEYGUARD_ACCOUNTS", format!("{a:?} is not a 12-digit AWS account id")));
    }
    let Some(role) = role else {
        return if accounts.is_empty() {
            Ok(Scope::Own)
        } else {
            Err(bad("KEYGUARD_ACCOUNTS", "needs KEYGUARD_MEMBER_ROLE, the role the guard assumes in those accounts"))
        };
    };
    let valid =
        (1..=64).contains(&role.len()) && role.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if !valid {
        return Err(bad("KEYGUARD_MEMBER_ROLE", format!("{role:?} is not an IAM role name (not an ARN, no path)")));
    }
    Ok(if accounts.is_empty() { Scope::Organization { role } } else { Scope::Listed { role, accounts } })
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
        assert!(c.policy.exemptions.for_user("u", "/", &[("keyguard:exempt".into(), "true".into())]).is_some());
        assert!(c.policy.exemptions.for_user("u", "/", &[("keyguard:exempt".into(), "false".into())]).is_none());
        assert_eq!(c.max_deactivations, 5);
        assert_eq!(c.scope, Scope::Own);
        assert_eq!(c.ledger_table, None);
        assert!(!c.security_hub);
    }

    #[test]
    fn every_setting_is_read() {
        let c = from(&[
            ("KEYGUARD_MODE", "Deactivate"),
            ("KEYGUARD_SETUP_WINDOW", "90s"),
            ("KEYGUARD_TOPIC_ARN", TOPIC),
            ("KEYGUARD_EXEMPT_TAG", "security:skip"),
            ("KEYGUARD_EXEMPT_TAG_VALUE", "approved"),
            ("KEYGUARD_MAX_DEACTIVATIONS", "2"),
            ("KEYGUARD_LEDGER_TABLE", "keyguard-ledger"),
            ("KEYGUARD_MEMBER_ROLE", "KeyGuardMember"),
            ("KEYGUARD_ACCOUNTS", "111122223333, 444455556666"),
            ("KEYGUARD_SWEEP_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/111122223333/sweep"),
            ("KEYGUARD_SECURITY_HUB", "on"),
            ("KEYGUARD_CHAT_TOPIC_ARN", "arn:aws:sns:us-east-1:111122223333:chat"),
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
        assert!(e.for_user("x", "/", &[("security:skip".into(), "approved".into())]).is_some());
        assert!(e.for_user("x", "/", &[("security:skip".into(), "true".into())]).is_none());
        assert!(e.for_user("x", "/", &[("keyguard:exempt".into(), "true".into())]).is_none());
        assert_eq!(c.max_deactivations, 2);
        assert_eq!(c.ledger_table.as_deref(), Some("keyguard-ledger"));
        assert_eq!(
            c.scope,
            Scope::Listed {
                role: "KeyGuardMember".into(),
                accounts: vec!["111122223333".into(), "444455556666".into()]
            }
        );
        assert!(c.security_hub);
        assert!(c.sweep_queue_url.is_some() && c.chat_topic_arn.is_some());
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
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_MAX_DEACTIVATIONS", "-1")], "KEYGUARD_MAX_DEACTIVATIONS"),
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_MAX_DEACTIVATIONS", "five")], "KEYGUARD_MAX_DEACTIVATIONS"),
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_LEDGER_TABLE", "a b")], "KEYGUARD_LEDGER_TABLE"),
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_ACCOUNTS", "111122223333")], "KEYGUARD_ACCOUNTS"),
            (
                &[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_MEMBER_ROLE", "R"), ("KEYGUARD_ACCOUNTS", "12345")],
                "KEYGUARD_ACCOUNTS",
            ),
            (
                &[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_MEMBER_ROLE", "arn:aws:iam::1:role/R")],
                "KEYGUARD_MEMBER_ROLE",
            ),
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_SWEEP_QUEUE_URL", "sweep")], "KEYGUARD_SWEEP_QUEUE_URL"),
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_SECURITY_HUB", "maybe")], "KEYGUARD_SECURITY_HUB"),
            (&[("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_CHAT_TOPIC_ARN", "chat")], "KEYGUARD_CHAT_TOPIC_ARN"),
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

    #[test]
    fn settings_are_checked_one_by_one() {
        // Each value alone: what it combines with does not matter here.
        assert_eq!(check_setting("KEYGUARD_MODE", "notify"), Ok(()), "a topic is another variable's business");
        assert_eq!(check_setting("KEYGUARD_ACCOUNTS", "111122223333"), Ok(()), "so is the role");
        for (variable, value) in [
            ("KEYGUARD_MODE", "loud"),
            ("KEYGUARD_SETUP_WINDOW", "soon"),
            ("KEYGUARD_TOPIC_ARN", "keyguard"),
            ("KEYGUARD_EXEMPT_PATHS", "service/"),
            ("KEYGUARD_EXEMPT_USERS", "a[b"),
            ("KEYGUARD_EXEMPT_CREATORS", "arn:[x"),
            ("KEYGUARD_RECONCILE", "yes"),
            ("KEYGUARD_MAX_DEACTIVATIONS", "many"),
            ("KEYGUARD_LEDGER_TABLE", "a"),
            ("KEYGUARD_MEMBER_ROLE", "arn:aws:iam::111122223333:role/KeyGuardMember"),
            ("KEYGUARD_ACCOUNTS", "1234"),
            ("KEYGUARD_SWEEP_QUEUE_URL", "sweep"),
            ("KEYGUARD_SECURITY_HUB", "maybe"),
            ("KEYGUARD_CHAT_TOPIC_ARN", "chat"),
        ] {
            let e = check_setting(variable, value).unwrap_err();
            assert_eq!(e.variable, variable, "{value}: {e}");
        }
        let env: HashMap<&str, &str> = [("KEYGUARD_MODE", "notify"), ("KEYGUARD_SETUP_WINDOW", "10 fortnights")].into();
        let e = check_settings(|name| env.get(name).map(|v| v.to_string())).unwrap_err();
        assert_eq!(e.variable, "KEYGUARD_SETUP_WINDOW");
    }

    #[test]
    fn the_list_of_variables_is_what_the_configuration_reads() {
        let read = std::cell::RefCell::new(Vec::new());
        // A configuration that is valid to the end, so that every variable is read.
        let config = Config::from_lookup(|name| {
            read.borrow_mut().push(name.to_string());
            match name {
                "KEYGUARD_MODE" => Some(Mode::DryRun.as_str().to_string()),
                _ => None,
            }
        });
        assert!(config.is_ok(), "{config:?}");
        let mut read = read.into_inner();
        read.sort();
        read.dedup();
        let mut listed: Vec<String> = VARIABLES.iter().map(|v| v.to_string()).collect();
        listed.sort();
        assert_eq!(read, listed);
    }
}
