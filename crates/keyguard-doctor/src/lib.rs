//! `keyguard doctor`: is the guardrail live in this account?
//!
//! An event-driven guard fails silently: without a trail logging IAM's calls, a rule delivering them, a valid
//! function, someone subscribed to its alerts and the permissions it needs, nothing happens and nobody notices.
//! The doctor reads each of these (read-only, except `--live`) and returns a checklist ([`Report`]), each line
//! pass / fail / warning with what to do.
//!
//! ```no_run
//! # async fn demo() {
//! let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let report = keyguard_doctor::Doctor::new(&sdk).run(&keyguard_doctor::Options::default()).await;
//! print!("{}", report.to_text());
//! std::process::exit(if report.healthy(false) { 0 } else { 1 });
//! # }
//! ```

pub mod alarms;
pub mod clients;
pub mod discovery;
pub mod errors;
pub mod function;
pub mod identity;
pub mod live;
pub mod permissions;
pub mod report;
pub mod rule;
pub mod selectors;
pub mod topic;
pub mod trail;

pub use clients::Clients;
pub use live::LiveOptions;
pub use report::{Check, Report, Status};
pub use rule::EXPECTED_EVENT_NAMES;

/// The stack name `make deploy` uses.
pub const DEFAULT_STACK: &str = "keyguard";

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// The CloudFormation stack the guard was deployed as.
    pub stack: String,
    /// The function's name or ARN, when known: skips discovery.
    pub function: Option<String>,
    /// Member accounts to check (default: the function's KEYGUARD_ACCOUNTS).
    pub accounts: Vec<String>,
    /// The member role's name (default: the function's KEYGUARD_MEMBER_ROLE).
    pub member_role: Option<String>,
    /// Run the canary (writes: creates and deletes a user).
    pub live: Option<LiveOptions>,
}

impl Default for Options {
    fn default() -> Options {
        Options { stack: DEFAULT_STACK.into(), function: None, accounts: vec![], member_role: None, live: None }
    }
}

/// Every AWS action the doctor calls, sorted: only reads, unless `live` (the canary's writes).
pub fn required_actions(live: bool) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = [
        identity::ACTIONS,
        trail::ACTIONS,
        discovery::ACTIONS,
        function::ACTIONS,
        rule::ACTIONS,
        topic::ACTIONS,
        alarms::ACTIONS,
        permissions::ACTIONS,
    ]
    .concat();
    if live {
        all.extend_from_slice(live::ACTIONS);
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// The doctor, with its clients made once.
#[derive(Clone, Debug)]
pub struct Doctor {
    clients: Clients,
}

impl Doctor {
    /// Clients for us-east-1 from the SDK configuration (the standard chain: AWS_PROFILE, SSO, environment...).
    pub fn new(sdk: &aws_config::SdkConfig) -> Doctor {
        Doctor { clients: Clients::new(sdk) }
    }

    /// With clients made elsewhere (tests swap one for a mock).
    pub fn with_clients(clients: Clients) -> Doctor {
        Doctor { clients }
    }

    /// Runs every check, in the order a person would fix them.
    pub async fn run(&self, options: &Options) -> Report {
        let c = &self.clients;
        let mut report = Report::default();
        let (check, identity) = identity::check(&c.sts).await;
        report.checks.push(check);
        // Without credentials every other call fails the same way: one line says it all.
        let Some(identity) = identity else { return report };

        report.checks.push(trail::check(&c.cloudtrail).await);

        let (check, deployment) =
            discovery::discover(&c.cloudformation, &c.lambda, &options.stack, options.function.as_deref()).await;
        report.checks.push(check);

        let function = match &deployment.function {
            Some(name) => match function::read(&c.lambda, name).await {
                Ok(facts) => {
                    report.checks.push(function::check(&facts));
                    Some(facts)
                }
                Err(e) => {
                    report.checks.push(Check::fail(
                        "function",
                        format!("{name}: {e}"),
                        "grant the doctor lambda:GetFunctionConfiguration, or redeploy the stack if the function is gone",
                    ));
                    None
                }
            },
            None => None,
        };
        let env = |name: &str| {
            function.as_ref().and_then(|f| f.env.get(name)).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
        };

        // Organization settings: the flags, else the function's own.
        let member_role = options.member_role.clone().or_else(|| env("KEYGUARD_MEMBER_ROLE"));
        let accounts: Vec<String> = if options.accounts.is_empty() {
            env("KEYGUARD_ACCOUNTS")
                .unwrap_or_default()
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        } else {
            options.accounts.clone()
        };
        let accounts: Vec<String> = accounts.into_iter().filter(|a| *a != identity.account).collect();

        let function_arn = function.as_ref().map(|f| f.arn.as_str());
        let rule = rule::read(&c.events, &deployment.rules, function_arn).await;
        report.checks.extend(rule::checks(rule, function_arn, member_role.is_some()));

        let topic = env("KEYGUARD_TOPIC_ARN").or_else(|| deployment.topics.first().cloned());
        let subscriptions = match &topic {
            Some(t) => topic::read(&c.sns, t).await,
            None => Ok(vec![]),
        };
        report.checks.push(topic::check(topic.as_deref(), subscriptions));

        let function_name = function.as_ref().map(|f| f.name.as_str());
        report.checks.push(alarms::check(
            alarms::read(&c.cloudwatch, &deployment.alarms, function_name, topic.as_deref()).await,
        ));

        if let Some(f) = &function {
            let member_roles: Vec<String> = match &member_role {
                Some(role) => accounts.iter().map(|a| permissions::member_role_arn(a, role)).collect(),
                None => vec![],
            };
            report.checks.push(
                permissions::check_function_role(&c.iam, &f.role, &identity.account, topic.as_deref(), &member_roles)
                    .await,
            );
        }
        if let Some(role) = &member_role {
            if accounts.is_empty() {
                report.checks.push(Check::warn(
                    "members",
                    format!("organization mode (member role {role}) without a list of accounts: none checked"),
                    "pass --accounts ID,ID to check the member accounts",
                ));
            }
            for account in &accounts {
                report.checks.push(permissions::check_member(c, account, role).await);
            }
        }

        if let Some(live) = &options.live {
            match &function {
                Some(f) => {
                    let log_group = f
                        .log_group
                        .clone()
                        .or_else(|| deployment.log_group.clone())
                        .unwrap_or_else(|| format!("/aws/lambda/{}", f.name));
                    let tag = env("KEYGUARD_EXEMPT_TAG")
                        .unwrap_or_else(|| keyguard_core::config::DEFAULT_EXEMPT_TAG.to_string());
                    report.checks.extend(live::check(&c.iam, &c.logs, &log_group, &tag, live).await);
                }
                None => report.checks.push(Check::fail(
                    "live",
                    "no function to watch: canary not run",
                    "fix the lines above first",
                )),
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_doctor_only_reads_unless_live() {
        let read = required_actions(false);
        let writes = ["Create", "Delete", "Put", "Update", "Tag", "Start", "Stop", "Publish"];
        for a in &read {
            let verb = a.split(':').nth(1).unwrap();
            assert!(!writes.iter().any(|w| verb.starts_with(w)), "{a} is not a read");
        }
        assert!(read.contains(&"iam:SimulatePrincipalPolicy") && read.contains(&"cloudtrail:GetEventSelectors"));
        let live = required_actions(true);
        for a in
            ["iam:CreateUser", "iam:CreateAccessKey", "iam:DeleteUser", "iam:ListAccessKeys", "logs:FilterLogEvents"]
        {
            assert!(live.contains(&a) && !read.contains(&a), "{a}");
        }
        assert!(read.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    }
}
