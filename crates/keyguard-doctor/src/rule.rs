//! The EventBridge rule that hands IAM's calls to the function: enabled, on the right bus, with the expected
//! pattern, and targeting the function.

use serde_json::Value;

use crate::discovery::RuleId;
use crate::errors;
use crate::report::Check;

pub const ACTIONS: &[&str] = &["events:DescribeRule", "events:ListRuleNamesByTarget", "events:ListTargetsByRule"];

/// The IAM calls the guard must hear about: the three of the initial setup, and `UpdateAccessKey` (a key the
/// guard deactivated being switched back on).
pub const EXPECTED_EVENT_NAMES: &[&str] = &["CreateUser", "CreateLoginProfile", "CreateAccessKey", "UpdateAccessKey"];

/// A rule as `DescribeRule` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFacts {
    pub name: String,
    pub bus: String,
    pub enabled: bool,
    pub pattern: Option<String>,
    /// The ARNs the rule delivers to.
    pub targets: Result<Vec<String>, String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array).into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

/// What is wrong with a pattern, in the operator's words: `(missing, extra)`. `missing` makes the rule miss
/// events the guard needs (a failure); `extra` are conditions the guard does not ask for, that may filter out
/// events it needs (a warning).
pub fn pattern_problems(pattern: &str) -> (Vec<String>, Vec<String>) {
    let p: Value = match serde_json::from_str(pattern) {
        Ok(v) => v,
        Err(e) => return (vec![format!("the pattern is not JSON ({e})")], vec![]),
    };
    let mut missing = Vec::new();
    if !strings(p.get("source")).iter().any(|s| s == "aws.iam") {
        missing.push("source aws.iam".to_string());
    }
    if !strings(p.get("detail-type")).iter().any(|s| s == "AWS API Call via CloudTrail") {
        missing.push("detail-type \"AWS API Call via CloudTrail\"".to_string());
    }
    let detail = p.get("detail");
    if !strings(detail.and_then(|d| d.get("eventSource"))).iter().any(|s| s == "iam.amazonaws.com") {
        missing.push("detail.eventSource iam.amazonaws.com".to_string());
    }
    let names = strings(detail.and_then(|d| d.get("eventName")));
    let absent: Vec<&str> = EXPECTED_EVENT_NAMES.iter().copied().filter(|n| !names.iter().any(|x| x == n)).collect();
    if !absent.is_empty() {
        missing.push(format!("detail.eventName {}", absent.join(", ")));
    }
    let error_code = detail.and_then(|d| d.get("errorCode"));
    if error_code != Some(&serde_json::json!([{"exists": false}])) {
        missing.push("detail.errorCode [{\"exists\": false}] (failed calls would trigger the guard)".to_string());
    }
    let mut extra = Vec::new();
    if let Some(top) = p.as_object() {
        extra.extend(top.keys().filter(|k| !matches!(k.as_str(), "source" | "detail-type" | "detail")).cloned());
    }
    if let Some(d) = detail.and_then(Value::as_object) {
        extra.extend(
            d.keys()
                .filter(|k| !matches!(k.as_str(), "eventSource" | "eventName" | "errorCode"))
                .map(|k| format!("detail.{k}")),
        );
    }
    (missing, extra)
}

/// Reads the rules the stack names, or else those that target the function on the default bus, and keeps the
/// one that listens for events (not the schedule).
pub async fn read(
    events: &aws_sdk_eventbridge::Client,
    rules: &[RuleId],
    function_arn: Option<&str>,
) -> Result<Option<RuleFacts>, String> {
    let mut ids = rules.to_vec();
    if ids.is_empty()
        && let Some(arn) = function_arn
    {
        let mut next: Option<String> = None;
        loop {
            let out = events
                .list_rule_names_by_target()
                .target_arn(arn)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| errors::one_line(&e))?;
            ids.extend(out.rule_names().iter().map(|n| RuleId { name: n.clone(), bus: None }));
            match out.next_token() {
                Some(t) => next = Some(t.to_string()),
                None => break,
            }
        }
    }
    let mut with_pattern = Vec::new();
    for id in &ids {
        let out = events
            .describe_rule()
            .name(&id.name)
            .set_event_bus_name(id.bus.clone())
            .send()
            .await
            .map_err(|e| errors::one_line(&e))?;
        let Some(pattern) = out.event_pattern() else { continue };
        let targets = events
            .list_targets_by_rule()
            .rule(&id.name)
            .set_event_bus_name(id.bus.clone())
            .send()
            .await
            .map(|t| t.targets().iter().map(|t| t.arn().to_string()).collect())
            .map_err(|e| errors::one_line(&e));
        with_pattern.push(RuleFacts {
            name: out.name().unwrap_or(&id.name).to_string(),
            bus: out.event_bus_name().unwrap_or("default").to_string(),
            enabled: out.state().is_some_and(|s| s.as_str() == "ENABLED"),
            pattern: Some(pattern.to_string()),
            targets,
        });
    }
    // The IAM rule first: a stack may hold other rules with patterns.
    with_pattern.sort_by_key(|r| !r.pattern.as_deref().unwrap_or_default().contains("aws.iam"));
    Ok(with_pattern.into_iter().next())
}

/// `rule`, `rule-pattern` and `rule-target`. `organization` accepts a rule on another bus than the default one
/// (the central bus that member accounts forward to).
pub fn checks(rule: Result<Option<RuleFacts>, String>, function_arn: Option<&str>, organization: bool) -> Vec<Check> {
    let rule = match rule {
        Ok(Some(rule)) => rule,
        Ok(None) => {
            return vec![Check::fail(
                "rule",
                "no EventBridge rule with an event pattern delivers to the function: IAM events never reach it",
                "redeploy the stack (`make deploy`): it creates the rule",
            )];
        }
        Err(e) => {
            return vec![Check::fail(
                "rule",
                format!("rules unreadable: {e}"),
                "grant the doctor events:DescribeRule, events:ListRuleNamesByTarget and events:ListTargetsByRule",
            )];
        }
    };
    let name = &rule.name;
    let bus_flag = if rule.bus == "default" { String::new() } else { format!(" --event-bus-name {}", rule.bus) };
    let mut out = Vec::new();
    out.push(if !rule.enabled {
        Check::fail(
            "rule",
            format!("{name} is DISABLED: IAM events reach no function"),
            format!("aws events enable-rule --name {name}{bus_flag}"),
        )
    } else if rule.bus != "default" && !organization {
        Check::fail(
            "rule",
            format!("{name} is on bus {}: CloudTrail delivers IAM's events to the default bus", rule.bus),
            "redeploy the stack: its rule is on the default bus",
        )
    } else {
        Check::pass("rule", format!("{name}: enabled, on the {} bus", rule.bus))
    });

    let (missing, extra) = pattern_problems(rule.pattern.as_deref().unwrap_or("{}"));
    out.push(if !missing.is_empty() {
        Check::fail(
            "rule-pattern",
            format!("{name}'s pattern misses {}", missing.join("; ")),
            "redeploy the stack (`make deploy`): template.yaml's IamEventRule has the expected pattern",
        )
    } else if !extra.is_empty() {
        Check::warn(
            "rule-pattern",
            format!(
                "{name}'s pattern adds conditions the guard does not ask for ({}): events may be filtered out",
                extra.join(", ")
            ),
            "remove them, unless they are meant (redeploy the stack to restore its pattern)",
        )
    } else {
        Check::pass(
            "rule-pattern",
            format!("successful {} calls from IAM via CloudTrail", EXPECTED_EVENT_NAMES.join(", ")),
        )
    });

    out.push(match (&rule.targets, function_arn) {
        (Err(e), _) => Check::fail("rule-target", format!("{name}'s targets unreadable: {e}"), "grant the doctor events:ListTargetsByRule"),
        (Ok(targets), Some(function)) if targets.iter().any(|t| is_function(t, function)) => {
            Check::pass("rule-target", format!("{name} delivers to {function}"))
        }
        (Ok(targets), function) => {
            let what = if targets.is_empty() { "no target".to_string() } else { format!("targets {}", targets.join(", ")) };
            let function = function.unwrap_or("the guard function");
            Check::fail(
                "rule-target",
                format!("{name} has {what}, not the function {function}"),
                format!(
                    "redeploy the stack, or `aws events put-targets --rule {name}{bus_flag} --targets Id=keyguard-guard,Arn={function}`"
                ),
            )
        }
    });
    out
}

/// A target is the function itself or one of its versions/aliases (`<arn>:<qualifier>`).
fn is_function(target: &str, function_arn: &str) -> bool {
    target == function_arn || target.strip_prefix(function_arn).is_some_and(|rest| rest.starts_with(':'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::report::Status;

    const GOOD: &str = r#"{"source": ["aws.iam"], "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["iam.amazonaws.com"],
                   "eventName": ["CreateUser", "CreateLoginProfile", "CreateAccessKey", "UpdateAccessKey"],
                   "errorCode": [{"exists": false}]}}"#;
    const FUNCTION: &str = "arn:aws:lambda:us-east-1:111122223333:function:keyguard-guard";

    fn rule(enabled: bool, pattern: &str, targets: &[&str]) -> RuleFacts {
        RuleFacts {
            name: "keyguard-rule".into(),
            bus: "default".into(),
            enabled,
            pattern: Some(pattern.into()),
            targets: Ok(targets.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn statuses(checks: &[Check]) -> Vec<(&str, Status)> {
        checks.iter().map(|c| (c.check.as_str(), c.status)).collect()
    }

    #[test]
    fn the_expected_pattern_has_no_problem() {
        assert_eq!(pattern_problems(GOOD), (vec![], vec![]));
    }

    #[test]
    fn pattern_problems_are_named() {
        let (missing, _) = pattern_problems(r#"{"source": ["aws.iam"], "detail": {"eventName": ["CreateAccessKey"]}}"#);
        let text = missing.join("; ");
        for expected in ["detail-type", "eventSource", "CreateUser, CreateLoginProfile, UpdateAccessKey", "errorCode"] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
        assert!(!text.contains("source aws.iam"));
        let (missing, _) = pattern_problems("not json");
        assert!(missing[0].contains("not JSON"));
        let with_extra = GOOD.replace(r#""errorCode""#, r#""userIdentity": {"type": ["Root"]}, "errorCode""#);
        let (missing, extra) = pattern_problems(&with_extra);
        assert!(missing.is_empty());
        assert_eq!(extra, vec!["detail.userIdentity".to_string()]);
    }

    #[test]
    fn a_healthy_rule_passes_all_three() {
        let c = checks(Ok(Some(rule(true, GOOD, &[FUNCTION]))), Some(FUNCTION), false);
        assert_eq!(
            statuses(&c),
            vec![("rule", Status::Pass), ("rule-pattern", Status::Pass), ("rule-target", Status::Pass)]
        );
        // An alias of the function is the function.
        let c = checks(Ok(Some(rule(true, GOOD, &[&format!("{FUNCTION}:live")]))), Some(FUNCTION), false);
        assert_eq!(c[2].status, Status::Pass);
    }

    #[test]
    fn each_flaw_fails_its_own_line() {
        let c = checks(Ok(Some(rule(false, GOOD, &[FUNCTION]))), Some(FUNCTION), false);
        assert_eq!(c[0].status, Status::Fail);
        assert_eq!(c[0].fix.as_deref(), Some("aws events enable-rule --name keyguard-rule"));
        let c = checks(Ok(Some(rule(true, r#"{"source": ["aws.iam"]}"#, &[FUNCTION]))), Some(FUNCTION), false);
        assert_eq!(statuses(&c)[1], ("rule-pattern", Status::Fail));
        let c = checks(Ok(Some(rule(true, GOOD, &[]))), Some(FUNCTION), false);
        assert_eq!(statuses(&c)[2], ("rule-target", Status::Fail));
        assert!(c[2].detail.contains("no target"), "{:?}", c[2]);
        let c = checks(Ok(Some(rule(true, GOOD, &["arn:aws:sqs:us-east-1:111122223333:q"]))), Some(FUNCTION), false);
        assert!(c[2].detail.contains("targets arn:aws:sqs"), "{:?}", c[2]);
        let c = checks(Ok(None), Some(FUNCTION), false);
        assert_eq!(statuses(&c), vec![("rule", Status::Fail)]);
    }

    #[test]
    fn another_bus_is_right_only_for_an_organization() {
        let central = RuleFacts { bus: "keyguard-central".into(), ..rule(true, GOOD, &[FUNCTION]) };
        assert_eq!(checks(Ok(Some(central.clone())), Some(FUNCTION), false)[0].status, Status::Fail);
        assert_eq!(checks(Ok(Some(central)), Some(FUNCTION), true)[0].status, Status::Pass);
    }
}
