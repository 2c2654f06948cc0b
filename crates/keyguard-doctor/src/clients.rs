//! The SDK clients the doctor reads the account with, made once.

use aws_config::{Region, SdkConfig};

/// The guard lives in us-east-1 (IAM's CloudTrail events reach EventBridge only there), so that is where the
/// doctor looks, whatever region the shell is set to.
pub const GUARD_REGION: &str = "us-east-1";

/// One client per service. Fields are public so that tests can swap one for a mocked client.
#[derive(Clone, Debug)]
pub struct Clients {
    pub sts: aws_sdk_sts::Client,
    pub iam: aws_sdk_iam::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub sns: aws_sdk_sns::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// Kept to build clients with other credentials (a member account's role).
    base: SdkConfig,
}

impl Clients {
    /// Clients for us-east-1 from one SDK configuration (credentials, endpoint, retries as loaded).
    pub fn new(sdk: &SdkConfig) -> Clients {
        let sdk = sdk.to_builder().region(Region::new(GUARD_REGION)).build();
        Clients {
            sts: aws_sdk_sts::Client::new(&sdk),
            iam: aws_sdk_iam::Client::new(&sdk),
            cloudtrail: aws_sdk_cloudtrail::Client::new(&sdk),
            cloudformation: aws_sdk_cloudformation::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            events: aws_sdk_eventbridge::Client::new(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
            base: sdk,
        }
    }

    /// An IAM client signing with other (assumed-role) credentials, otherwise configured as these clients.
    pub fn iam_with(&self, credentials: aws_sdk_iam::config::Credentials) -> aws_sdk_iam::Client {
        let config = aws_sdk_iam::config::Builder::from(&self.base).credentials_provider(credentials).build();
        aws_sdk_iam::Client::from_conf(config)
    }
}
