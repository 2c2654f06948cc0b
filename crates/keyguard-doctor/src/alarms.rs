//! The stack's alarms: one in ALARM means the guard is failing now.
//!
//! CloudWatch's SDK speaks the Smithy RPC v2 CBOR protocol, which moto 5.2.5 does not: against moto the alarms
//! are unreadable (a warning), and the tests read them through aws-smithy-mocks.

use crate::errors;
use crate::report::Check;

pub const ACTIONS: &[&str] = &["cloudwatch:DescribeAlarms"];

const NAME: &str = "alarms";

/// An alarm's name, state and the text that says what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub reason: String,
    pub description: String,
}

/// The alarms the stack names, and every alarm that watches the function or notifies the topic (the stack's
/// alarms do both; this also finds them when the stack could not be read).
pub async fn read(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    names: &[String],
    function: Option<&str>,
    topic: Option<&str>,
) -> Result<Vec<Alarm>, String> {
    let mut found = Vec::new();
    let mut pages = cloudwatch.describe_alarms().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| errors::one_line(&e))?;
        for a in page.metric_alarms() {
            let name = a.alarm_name().unwrap_or_default();
            let watches_function = a
                .dimensions()
                .iter()
                .any(|d| d.name() == Some("FunctionName") && d.value().is_some() && d.value() == function);
            let notifies_topic = topic.is_some_and(|t| a.alarm_actions().iter().any(|x| x == t));
            if names.iter().any(|n| n == name) || watches_function || notifies_topic {
                found.push(Alarm {
                    name: name.to_string(),
                    state: a.state_value().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    reason: a.state_reason().unwrap_or_default().to_string(),
                    description: a.alarm_description().unwrap_or_default().to_string(),
                });
            }
        }
    }
    Ok(found)
}

pub fn check(alarms: Result<Vec<Alarm>, String>) -> Check {
    let alarms = match alarms {
        Ok(a) => a,
        Err(e) => {
            let fix = if e.contains("AccessDenied") {
                "grant the doctor cloudwatch:DescribeAlarms"
            } else {
                "look at the stack's alarms in the CloudWatch console, or run the doctor again"
            };
            return Check::warn(NAME, format!("alarms unreadable ({e}): their state is unknown"), fix);
        }
    };
    if alarms.is_empty() {
        return Check::warn(
            NAME,
            "no alarm watches the function or notifies the topic: a failing guard would go unnoticed",
            "redeploy the stack (`make deploy`): it creates four alarms",
        );
    }
    let firing: Vec<&Alarm> = alarms.iter().filter(|a| a.state == "ALARM").collect();
    if !firing.is_empty() {
        let detail =
            firing.iter().map(|a| format!("{} is in ALARM ({})", a.name, a.reason)).collect::<Vec<_>>().join("; ");
        let fix = firing
            .iter()
            .map(|a| {
                if a.description.is_empty() {
                    "read the function's log group (README: Operations)"
                } else {
                    &a.description
                }
            })
            .collect::<Vec<_>>()
            .join(" / ");
        return Check::fail(NAME, detail, fix);
    }
    let waiting = alarms.iter().filter(|a| a.state == "INSUFFICIENT_DATA").count();
    let mut detail = format!("{} alarm(s), none in ALARM", alarms.len());
    if waiting > 0 {
        detail.push_str(&format!(" ({waiting} without data yet)"));
    }
    Check::pass(NAME, detail)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::report::Status;

    fn alarm(name: &str, state: &str) -> Alarm {
        Alarm {
            name: name.into(),
            state: state.into(),
            reason: "Threshold Crossed".into(),
            description: format!("{name} means trouble"),
        }
    }

    #[test]
    fn an_alarm_in_alarm_fails_naming_it() {
        let c = check(Ok(vec![alarm("keyguard-errors", "ALARM"), alarm("keyguard-throttles", "OK")]));
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("keyguard-errors is in ALARM (Threshold Crossed)"), "{c:?}");
        assert!(!c.detail.contains("keyguard-throttles"));
        assert_eq!(c.fix.as_deref(), Some("keyguard-errors means trouble"));
    }

    #[test]
    fn ok_and_waiting_alarms_pass_and_none_warns() {
        let c = check(Ok(vec![alarm("a", "OK"), alarm("b", "INSUFFICIENT_DATA")]));
        assert_eq!((c.status, c.detail.as_str()), (Status::Pass, "2 alarm(s), none in ALARM (1 without data yet)"));
        assert_eq!(check(Ok(vec![])).status, Status::Warn);
        assert_eq!(check(Err("AccessDenied".into())).status, Status::Warn);
    }
}
