//! What a person should do about a failed AWS call: one line, the problem and its fix.
//!
//! The classes come from [`AwsError::from_sdk`]; the words are here, once, for every command (and for the doctor's
//! credentials check). Pure: the caller passes what it knows of its environment.

use std::fmt;

use crate::error::{AwsError, AwsErrorKind};
use crate::sdk::SdkSettings;

/// The caller's AWS settings that a fix can name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Setting {
    /// `AWS_PROFILE`, when set.
    pub profile: Option<String>,
    /// The region the calls went to.
    pub region: Option<String>,
}

impl Setting {
    /// From the process environment and the SDK configuration in use (without one, the region variables).
    pub fn of(sdk: Option<&aws_config::SdkConfig>) -> Setting {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Setting {
            profile: var("AWS_PROFILE"),
            region: sdk
                .and_then(|s| s.region())
                .map(|r| r.to_string())
                .or_else(|| var("AWS_REGION"))
                .or_else(|| var("AWS_DEFAULT_REGION")),
        }
    }
}

/// A problem and, when there is one, its fix: `Display` writes them as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub problem: String,
    pub fix: Option<String>,
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fix {
            Some(fix) => write!(f, "{}. {fix}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

/// The advice for a failed call.
pub fn advise(error: &AwsError, setting: &Setting) -> Advice {
    let op = error.operation;
    let message = error.message.as_str();
    let profile = setting.profile.as_deref();
    let (problem, fix) = match error.kind {
        AwsErrorKind::NoCredentials if message.starts_with("no credentials found") => (
            match profile {
                Some(p) => format!("no AWS credentials found for profile `{p}`"),
                None => "no AWS credentials found (none in the environment, the AWS config files, SSO or an \
                         instance role)"
                    .to_string(),
            },
            Some(
                "Sign in with `aws sso login --profile NAME` and set AWS_PROFILE=NAME, or run `aws configure`, or \
                 set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    .to_string(),
            ),
        ),
        AwsErrorKind::NoCredentials => (
            format!("the AWS credentials could not be loaded: {message}"),
            Some(match profile {
                Some(p) => format!(
                    "Check profile `{p}` in ~/.aws/config (`aws configure list --profile {p}` shows what it resolves to)"
                ),
                None => "Check AWS_PROFILE and ~/.aws/config (`aws configure list` shows what is in use)".to_string(),
            }),
        ),
        AwsErrorKind::SessionExpired => (
            match profile {
                Some(p) => format!("the AWS session of profile `{p}` has expired ({message})"),
                None => format!("the AWS credentials have expired ({message})"),
            },
            Some(match profile {
                Some(p) => format!("Sign in again with `aws sso login --profile {p}`, then run keyguard again"),
                None => "Sign in again (`aws sso login --profile NAME`, or new temporary credentials in \
                         AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN), then run keyguard again"
                    .to_string(),
            }),
        ),
        AwsErrorKind::BadCredentials => (
            format!("AWS does not accept the credentials ({message})"),
            Some(
                "The access key is unknown, deleted or inactive, or its secret is mistyped: check \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the profile, or sign in again"
                    .to_string(),
            ),
        ),
        AwsErrorKind::NoRegion => (
            format!("{op} needs an AWS region and none is set"),
            Some("Set AWS_REGION (KeyGuard runs in us-east-1), or `region` in the profile".to_string()),
        ),
        AwsErrorKind::Unreachable => (
            match &setting.region {
                Some(region) => format!("cannot reach AWS for {op} in {region} ({message})"),
                None => format!("cannot reach AWS for {op} ({message})"),
            },
            Some(
                "Check the network and any proxy (HTTPS_PROXY), AWS_ENDPOINT_URL if it is set, and that the region \
                 exists"
                    .to_string(),
            ),
        ),
        // Denied into a member account: the member role is missing there or does not trust the caller, which the
        // message (accounts.rs) names with its fix; granting sts:AssumeRole to the caller would not help.
        AwsErrorKind::AccessDenied if op == "sts:AssumeRole" => (message.to_string(), None),
        AwsErrorKind::AccessDenied => {
            let action = denied_action(message).unwrap_or(op);
            let problem = match principal(message) {
                Some(who) => format!("{who} is not allowed to call {action}"),
                None => format!("the credentials in use are not allowed to call {action}"),
            };
            (
                problem,
                Some(format!(
                    "Grant {action} to it (or use credentials that have it): `keyguard permissions` lists every \
                     action the guard calls, `keyguard permissions --doctor` the doctor's"
                )),
            )
        }
        AwsErrorKind::Throttled => (
            format!(
                "AWS throttled {op} and {} attempts did not get through ({message})",
                SdkSettings::DEPLOYED.max_attempts
            ),
            Some(
                "Run it again in a minute; if it keeps happening, lower audit's --concurrency (users read at once) \
                 and --account-concurrency, or ask AWS for a higher request rate"
                    .to_string(),
            ),
        ),
        AwsErrorKind::NotFound | AwsErrorKind::Other => (format!("{op} failed: {message}"), None),
    };
    Advice { problem, fix }
}

/// The advice for the first failed AWS call in an error's chain (an [`AwsError`] under a guard or setup error, or
/// under `anyhow` context), if there is one: the CLI's one line for an error that stopped a command.
pub fn advise_chain<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
    setting: &Setting,
) -> Option<Advice> {
    chain.into_iter().find_map(|e| e.downcast_ref::<AwsError>()).map(|e| advise(e, setting))
}

/// The action in an AWS access-denied message: "... is not authorized to perform: iam:ListUsers on resource: ...".
fn denied_action(message: &str) -> Option<&str> {
    let rest = message.split("perform: ").nth(1)?;
    let action = rest.split([' ', ',', ';']).next()?;
    action.contains(':').then_some(action)
}

/// The principal in an AWS access-denied message: "User: arn:aws:iam::123456789012:user/x is not authorized ...".
fn principal(message: &str) -> Option<&str> {
    let rest = message.split("User: ").nth(1)?;
    let arn = rest.split_whitespace().next()?;
    arn.starts_with("arn:").then_some(arn)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn error(kind: AwsErrorKind, operation: &'static str, message: &str) -> AwsError {
        AwsError { operation, kind, message: message.to_string() }
    }

    fn with_profile(profile: &str) -> Setting {
        Setting { profile: Some(profile.into()), region: Some("us-east-1".into()) }
    }

    #[test]
    fn access_denied_names_the_action_and_the_principal() {
        let e = AwsError::new(
            "iam:ListUsers",
            Some("AccessDenied"),
            "AccessDenied: User: arn:aws:iam::123456789012:user/auditor is not authorized to perform: \
             iam:ListUsers on resource: arn:aws:iam::123456789012:user/ because no identity-based policy allows \
             the iam:ListUsers action"
                .into(),
        );
        let advice = advise(&e, &Setting::default());
        assert_eq!(advice.problem, "arn:aws:iam::123456789012:user/auditor is not allowed to call iam:ListUsers");
        assert!(advice.fix.as_deref().unwrap().starts_with("Grant iam:ListUsers to it"), "{advice}");
        // A message that names nobody: the operation KeyGuard called is the action.
        let advice =
            advise(&error(AwsErrorKind::AccessDenied, "sns:Publish", "AuthorizationError"), &Setting::default());
        assert_eq!(advice.problem, "the credentials in use are not allowed to call sns:Publish");
    }

    #[test]
    fn a_member_role_that_cannot_be_assumed_points_at_the_member_role_not_the_caller() {
        let message = "account 444455556666: cannot assume arn:aws:iam::444455556666:role/KeyGuardMember \
                       (AccessDenied: not authorized); deploy the member role there (infra/org/member.yaml) and check \
                       that it trusts the caller";
        let advice = advise(&error(AwsErrorKind::AccessDenied, "sts:AssumeRole", message), &Setting::default());
        assert_eq!(advice.problem, message);
        assert!(advice.fix.is_none() && !advice.to_string().contains("Grant sts:AssumeRole"), "{advice}");
    }

    #[test]
    fn an_expired_session_says_how_to_sign_in_again() {
        let e = error(AwsErrorKind::SessionExpired, "sts:GetCallerIdentity", "the SSO token has expired");
        let line = advise(&e, &with_profile("security-audit")).to_string();
        assert!(line.contains("profile `security-audit` has expired"), "{line}");
        assert!(line.contains("`aws sso login --profile security-audit`"), "{line}");
        let line = advise(&e, &Setting::default()).to_string();
        assert!(line.contains("aws sso login --profile NAME") && line.contains("AWS_SESSION_TOKEN"), "{line}");
    }

    #[test]
    fn missing_credentials_list_the_ways_to_sign_in() {
        let e = error(AwsErrorKind::NoCredentials, "sts:GetCallerIdentity", "no credentials found (tried ...)");
        let advice = advise(&e, &Setting::default());
        assert!(advice.problem.starts_with("no AWS credentials found"), "{advice}");
        let fix = advice.fix.unwrap();
        for way in ["aws sso login", "aws configure", "AWS_ACCESS_KEY_ID"] {
            assert!(fix.contains(way), "{way}: {fix}");
        }
        // A profile that cannot be used is a different problem: its own message, and the profile to check.
        let e = error(AwsErrorKind::NoCredentials, "sts:GetCallerIdentity", "profile `ops` was not defined");
        let line = advise(&e, &with_profile("ops")).to_string();
        assert!(line.contains("profile `ops` was not defined") && line.contains("--profile ops"), "{line}");
    }

    #[test]
    fn throttling_says_what_was_tried_and_what_to_lower() {
        let e = AwsError::new("iam:GetUser", Some("Throttling"), "Throttling: Rate exceeded".into());
        let line = advise(&e, &Setting::default()).to_string();
        assert!(line.contains("AWS throttled iam:GetUser and 5 attempts did not get through"), "{line}");
        assert!(line.contains("--concurrency"), "{line}");
    }

    #[test]
    fn the_aws_error_under_a_chain_is_the_one_advised() {
        let denied = AwsError::new("iam:ListUsers", Some("AccessDenied"), "AccessDenied: no".into());
        let wrapped = crate::GuardError::Aws { event_id: "e-1".into(), source: denied };
        let chain: Vec<&(dyn std::error::Error + 'static)> =
            std::iter::successors(Some(&wrapped as &(dyn std::error::Error + 'static)), |e| e.source()).collect();
        let advice = advise_chain(chain, &Setting::default()).unwrap();
        assert_eq!(advice.problem, "the credentials in use are not allowed to call iam:ListUsers");
        // A chain without an AWS call: no advice, the caller prints the error as it is.
        let plain = std::io::Error::other("cannot read events.json");
        assert_eq!(advise_chain([&plain as &(dyn std::error::Error + 'static)], &Setting::default()), None);
    }

    #[test]
    fn every_class_is_one_line_with_a_fix() {
        let kinds = [
            AwsErrorKind::NotFound,
            AwsErrorKind::Throttled,
            AwsErrorKind::AccessDenied,
            AwsErrorKind::NoCredentials,
            AwsErrorKind::SessionExpired,
            AwsErrorKind::BadCredentials,
            AwsErrorKind::NoRegion,
            AwsErrorKind::Unreachable,
            AwsErrorKind::Other,
        ];
        for kind in kinds {
            for setting in [Setting::default(), with_profile("p")] {
                let advice = advise(&error(kind, "iam:ListUsers", "x"), &setting);
                assert!(!advice.to_string().contains('\n'), "{advice}");
                // Only the calls without a class of their own come without a fix.
                assert_eq!(advice.fix.is_some(), !matches!(kind, AwsErrorKind::NotFound | AwsErrorKind::Other));
            }
        }
    }
}
