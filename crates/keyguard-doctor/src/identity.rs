//! Credentials, and who and where the doctor is: STS GetCallerIdentity.

use crate::errors;
use crate::report::Check;

pub const ACTIONS: &[&str] = &["sts:GetCallerIdentity"];

/// The account and principal the credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

pub async fn check(sts: &aws_sdk_sts::Client) -> (Check, Option<Identity>) {
    match sts.get_caller_identity().send().await {
        Ok(out) => {
            let identity = Identity {
                account: out.account().unwrap_or_default().to_string(),
                arn: out.arn().unwrap_or_default().to_string(),
            };
            let detail = format!("account {} as {}", identity.account, identity.arn);
            (Check::pass("credentials", detail), Some(identity))
        }
        Err(e) => {
            let text = errors::one_line(&e);
            let fix = if errors::is_credentials_problem(errors::code(&e), &text) {
                "sign in: `aws sso login --profile NAME` then AWS_PROFILE=NAME, or `aws configure`, or set \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            } else {
                "check the network and AWS_ENDPOINT_URL / AWS_PROFILE, then run the doctor again"
            };
            // The SDK lists every provider it tried; one line is enough to act on.
            let detail = if text.contains("no credentials found") {
                "no usable AWS credentials: none found in the environment, the profiles, SSO or an instance role"
                    .to_string()
            } else {
                format!("no usable AWS credentials: {text}")
            };
            (Check::fail("credentials", detail, fix), None)
        }
    }
}
