//! Finding the deployed guard: its stack's resources by stack name, or, failing that, the function by its
//! `KEYGUARD_*` environment and its `aws:cloudformation:stack-name` tag.

use std::collections::HashMap;

use crate::errors;
use crate::report::Check;

pub const ACTIONS: &[&str] = &["cloudformation:DescribeStackResources", "lambda:ListFunctions", "lambda:ListTags"];

const NAME: &str = "stack";
/// The tag CloudFormation puts on the resources it creates.
const STACK_TAG: &str = "aws:cloudformation:stack-name";

/// An EventBridge rule, as `DescribeRule` addresses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleId {
    pub name: String,
    /// `None` for the default bus.
    pub bus: Option<String>,
}

impl RuleId {
    /// CloudFormation's physical id of an `AWS::Events::Rule`: `name` on the default bus, `bus|name` on another.
    pub fn from_physical_id(id: &str) -> RuleId {
        match id.split_once('|') {
            Some((bus, name)) => RuleId { name: name.into(), bus: Some(bus.into()) },
            None => RuleId { name: id.into(), bus: None },
        }
    }
}

/// The parts of the deployment the doctor found, by name or ARN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deployment {
    pub function: Option<String>,
    pub rules: Vec<RuleId>,
    pub topics: Vec<String>,
    pub alarms: Vec<String>,
    pub log_group: Option<String>,
}

impl Deployment {
    /// The parts of a stack, from DescribeStackResources' (type, physical id) pairs.
    pub fn from_resources<'a>(resources: impl IntoIterator<Item = (&'a str, &'a str)>) -> Deployment {
        let mut d = Deployment::default();
        for (kind, id) in resources {
            match kind {
                // A stack with several functions: the one the rule targets is chosen later; the first is the guard
                // in KeyGuard's template, which has one.
                "AWS::Lambda::Function" if d.function.is_none() => d.function = Some(id.into()),
                "AWS::Events::Rule" => d.rules.push(RuleId::from_physical_id(id)),
                "AWS::SNS::Topic" => d.topics.push(id.into()),
                "AWS::CloudWatch::Alarm" => d.alarms.push(id.into()),
                "AWS::Logs::LogGroup" if d.log_group.is_none() => d.log_group = Some(id.into()),
                _ => {}
            }
        }
        d
    }
}

/// Finds the guard: `function` when given, else the stack's resources, else a function configured for KeyGuard.
pub async fn discover(
    cloudformation: &aws_sdk_cloudformation::Client,
    lambda: &aws_sdk_lambda::Client,
    stack: &str,
    function: Option<&str>,
) -> (Check, Deployment) {
    if let Some(function) = function {
        let d = Deployment { function: Some(function.into()), ..Deployment::default() };
        return (Check::pass(NAME, format!("function {function} (given with --function)")), d);
    }
    let stack_error = match cloudformation.describe_stack_resources().stack_name(stack).send().await {
        Ok(out) => {
            let resources = out.stack_resources();
            let d = Deployment::from_resources(
                resources.iter().filter_map(|r| Some((r.resource_type()?, r.physical_resource_id()?))),
            );
            if d.function.is_some() {
                let detail = format!(
                    "stack {stack}: {} resources, function {}",
                    resources.len(),
                    d.function.as_deref().unwrap_or_default()
                );
                return (Check::pass(NAME, detail), d);
            }
            format!("stack {stack} has no Lambda function")
        }
        Err(e) => format!("stack {stack}: {}", errors::one_line(&e)),
    };
    match find_function(lambda, stack).await {
        Ok(Some((name, how))) => {
            let d = Deployment { function: Some(name.clone()), ..Deployment::default() };
            let check = Check::warn(
                NAME,
                format!("{stack_error}; found function {name} by {how}"),
                format!("pass --stack with the name the guard was deployed under (or --function {name})"),
            );
            (check, d)
        }
        Ok(None) => (
            Check::fail(
                NAME,
                format!(
                    "{stack_error}; no function in us-east-1 has KEYGUARD_* settings: the guard is not deployed here"
                ),
                "deploy it (`make deploy`, region us-east-1), or pass --stack NAME / --function NAME",
            ),
            Deployment::default(),
        ),
        Err(e) => (
            Check::fail(
                NAME,
                format!("{stack_error}; functions unreadable: {e}"),
                "grant the doctor cloudformation:DescribeStackResources and lambda:ListFunctions \
                 (`keyguard permissions --doctor`), or pass --function NAME",
            ),
            Deployment::default(),
        ),
    }
}

/// The functions whose environment carries KEYGUARD_* settings; with several, the one tagged with the stack name.
async fn find_function(lambda: &aws_sdk_lambda::Client, stack: &str) -> Result<Option<(String, String)>, String> {
    let mut candidates: Vec<(String, String)> = Vec::new();
    let mut pages = lambda.list_functions().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| errors::one_line(&e))?;
        for f in page.functions() {
            let env: Option<&HashMap<String, String>> = f.environment().and_then(|e| e.variables());
            if env.is_some_and(|vars| vars.keys().any(|k| k.starts_with("KEYGUARD_")))
                && let (Some(name), Some(arn)) = (f.function_name(), f.function_arn())
            {
                candidates.push((name.to_string(), arn.to_string()));
            }
        }
    }
    if candidates.len() <= 1 {
        return Ok(candidates.pop().map(|(name, _)| (name, "its KEYGUARD_* environment".to_string())));
    }
    for (name, arn) in &candidates {
        let tags = lambda.list_tags().resource(arn).send().await.map_err(|e| errors::one_line(&e))?;
        if tags.tags().and_then(|t| t.get(STACK_TAG)).is_some_and(|v| v == stack) {
            return Ok(Some((name.clone(), format!("its tag {STACK_TAG}={stack}"))));
        }
    }
    let names: Vec<&str> = candidates.iter().map(|(n, _)| n.as_str()).collect();
    Err(format!("several functions have KEYGUARD_* settings ({}); pass --function NAME", names.join(", ")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_stack_s_resources_name_the_parts() {
        let d = Deployment::from_resources([
            ("AWS::IAM::Role", "keyguard-GuardRole-1"),
            ("AWS::Lambda::Function", "keyguard-GuardFunction-1"),
            ("AWS::Events::Rule", "keyguard-IamEventRule-1"),
            ("AWS::Events::Rule", "central-bus|keyguard-Org-1"),
            ("AWS::SNS::Topic", "arn:aws:sns:us-east-1:111122223333:keyguard-AlertTopic-1"),
            ("AWS::CloudWatch::Alarm", "keyguard-GuardErrorsAlarm-1"),
            ("AWS::Logs::LogGroup", "/aws/lambda/keyguard-guard"),
        ]);
        assert_eq!(d.function.as_deref(), Some("keyguard-GuardFunction-1"));
        assert_eq!(
            d.rules,
            vec![
                RuleId { name: "keyguard-IamEventRule-1".into(), bus: None },
                RuleId { name: "keyguard-Org-1".into(), bus: Some("central-bus".into()) }
            ]
        );
        assert_eq!(d.topics.len(), 1);
        assert_eq!(d.alarms, vec!["keyguard-GuardErrorsAlarm-1".to_string()]);
        assert_eq!(d.log_group.as_deref(), Some("/aws/lambda/keyguard-guard"));
    }
}
