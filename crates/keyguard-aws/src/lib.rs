//! KeyGuard's AWS side: the ports, their SDK adapters, and the Guard service that runs
//! event -> state -> decide -> act.

pub mod audit;
pub mod cloudtrail;
pub mod error;
pub mod guard;
pub mod iam;
pub mod logging;
pub mod ports;
pub mod securityhub;
pub mod sns;

pub use cloudtrail::SdkCloudTrail;
pub use error::{AwsError, AwsErrorKind, GuardError};
pub use guard::{Consistency, Guard};
pub use iam::SdkIam;
pub use sns::SdkSns;

use keyguard_core::{Config, ConfigError};
use ports::{AccountReader, AlertPublisher, IamReader, KeyDeactivator};

/// The guard as deployed: IAM and SNS through the SDK.
pub type SdkGuard = Guard<SdkIam, SdkIam, SdkSns>;

/// Loads the SDK configuration the standard way (`AWS_ENDPOINT_URL`, region, credentials chain).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Builds the guard from one SDK configuration; clients are made here, once.
pub fn sdk_guard(config: &Config, sdk: &aws_config::SdkConfig) -> Result<SdkGuard, ConfigError> {
    let iam = SdkIam::new(aws_sdk_iam::Client::new(sdk));
    let alerts = config.topic_arn.as_ref().map(|arn| SdkSns::new(aws_sdk_sns::Client::new(sdk), arn));
    Guard::new(iam.clone(), iam, alerts, config)
}

/// Every AWS action the Lambda's code calls (events and the scheduled sweep), sorted: the deployed role must grant
/// exactly these. The CLI's extras are the operator's own: `audit --with-creators` needs
/// [`CreatorLookup::ACTIONS`], `replay s3://` needs `s3:ListBucket` and `s3:GetObject`.
pub fn required_actions() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = [
        <SdkIam as IamReader>::ACTIONS,
        <SdkIam as KeyDeactivator>::ACTIONS,
        <SdkSns as AlertPublisher>::ACTIONS,
        <SdkIam as AccountReader>::ACTIONS,
    ]
    .concat();
    all.sort_unstable();
    all.dedup();
    all
}
