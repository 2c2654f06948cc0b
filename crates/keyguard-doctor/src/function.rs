//! The guard function's configuration, validated by the same code the function runs at start-up
//! (`keyguard_core::Config::from_lookup`), so that the doctor and the function agree on what is valid.

use std::collections::HashMap;

use keyguard_core::{Config, Mode};

use crate::errors;
use crate::report::Check;

pub const ACTIONS: &[&str] = &["lambda:GetFunctionConfiguration"];

const NAME: &str = "function";

/// What the doctor read about the function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionFacts {
    pub name: String,
    pub arn: String,
    pub role: String,
    pub env: HashMap<String, String>,
    /// `Active`, `Pending`, `Inactive`, `Failed`.
    pub state: Option<String>,
    pub state_reason: Option<String>,
    pub last_update_failed: Option<String>,
    /// Its log group when its logging configuration names one (else Lambda's default `/aws/lambda/<name>`).
    pub log_group: Option<String>,
}

pub async fn read(lambda: &aws_sdk_lambda::Client, function: &str) -> Result<FunctionFacts, String> {
    let out =
        lambda.get_function_configuration().function_name(function).send().await.map_err(|e| errors::one_line(&e))?;
    let name = out.function_name().unwrap_or(function).to_string();
    let failed = out.last_update_status().is_some_and(|s| s.as_str() == "Failed");
    Ok(FunctionFacts {
        arn: out.function_arn().unwrap_or_default().to_string(),
        role: out.role().unwrap_or_default().to_string(),
        env: out.environment().and_then(|e| e.variables()).cloned().unwrap_or_default(),
        state: out.state().map(|s| s.as_str().to_string()),
        state_reason: out.state_reason().map(str::to_string),
        last_update_failed: failed.then(|| out.last_update_status_reason().unwrap_or("no reason given").to_string()),
        log_group: out.logging_config().and_then(|l| l.log_group()).map(str::to_string),
        name,
    })
}

/// The function's own configuration, as its start-up would parse it.
pub fn config(facts: &FunctionFacts) -> Result<Config, keyguard_core::ConfigError> {
    Config::from_lookup(|name| facts.env.get(name).cloned())
}

pub fn check(facts: &FunctionFacts) -> Check {
    let name = &facts.name;
    if let Some(state @ ("Failed" | "Inactive")) = facts.state.as_deref() {
        return Check::fail(
            NAME,
            format!("{name} is {state}: {}", facts.state_reason.as_deref().unwrap_or("no reason given")),
            "redeploy the stack (`make deploy`)",
        );
    }
    if let Some(reason) = &facts.last_update_failed {
        return Check::fail(
            NAME,
            format!("{name}: its last update failed: {reason}"),
            "redeploy the stack (`make deploy`)",
        );
    }
    let config = match config(facts) {
        Ok(c) => c,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("{name} would refuse to start: {e}"),
                format!(
                    "set a valid {} (stack parameter, then `make deploy`; or `aws lambda update-function-configuration \
                     --function-name {name} --environment ...`)",
                    e.variable
                ),
            );
        }
    };
    let window = humanize(config.policy.window.num_seconds());
    let topic = config.topic_arn.as_deref().unwrap_or("no topic");
    let detail = format!("{name}: mode {}, window {window}, alerts to {topic}", config.mode.as_str());
    if config.mode == Mode::DryRun {
        return Check::warn(
            NAME,
            format!("{detail}; dry-run decides and logs only: nobody is alerted"),
            "set Mode=notify (or deactivate) and redeploy once you have read the decision log",
        );
    }
    if facts.state.as_deref() == Some("Pending") {
        return Check::warn(NAME, format!("{detail}; still Pending"), "wait a minute and run the doctor again");
    }
    Check::pass(NAME, detail)
}

fn humanize(seconds: i64) -> String {
    match seconds {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::report::Status;

    const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:keyguard-alerts";

    fn facts(env: &[(&str, &str)]) -> FunctionFacts {
        FunctionFacts {
            name: "keyguard-guard".into(),
            state: Some("Active".into()),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..FunctionFacts::default()
        }
    }

    #[test]
    fn a_valid_environment_passes_and_is_summarized() {
        let c = check(&facts(&[
            ("KEYGUARD_MODE", "deactivate"),
            ("KEYGUARD_SETUP_WINDOW", "600"),
            ("KEYGUARD_TOPIC_ARN", TOPIC),
        ]));
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert_eq!(c.detail, format!("keyguard-guard: mode deactivate, window 10m, alerts to {TOPIC}"));
    }

    #[test]
    fn bad_values_fail_naming_the_variable_as_the_function_would() {
        for (env, variable) in [
            (vec![("KEYGUARD_MODE", "loud"), ("KEYGUARD_TOPIC_ARN", TOPIC)], "KEYGUARD_MODE"),
            (vec![("KEYGUARD_SETUP_WINDOW", "10 parsecs"), ("KEYGUARD_TOPIC_ARN", TOPIC)], "KEYGUARD_SETUP_WINDOW"),
            (vec![("KEYGUARD_MODE", "notify")], "KEYGUARD_TOPIC_ARN"),
            (vec![("KEYGUARD_TOPIC_ARN", "keyguard-alerts")], "KEYGUARD_TOPIC_ARN"),
        ] {
            let c = check(&facts(&env));
            assert_eq!(c.status, Status::Fail, "{env:?}");
            assert!(c.detail.contains(variable) && c.fix.as_deref().unwrap().contains(variable), "{c:?}");
        }
    }

    #[test]
    fn dry_run_and_a_failed_function_are_reported() {
        assert_eq!(check(&facts(&[("KEYGUARD_MODE", "dry-run")])).status, Status::Warn);
        let failed = FunctionFacts { state: Some("Failed".into()), ..facts(&[("KEYGUARD_TOPIC_ARN", TOPIC)]) };
        assert_eq!(check(&failed).status, Status::Fail);
    }
}
