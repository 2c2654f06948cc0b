//! KeyGuard's AWS side: the ports, their SDK adapters, and the service that runs the guard (one event), the audit
//! (one account) and the sweep (every account), all through one act step.
//!
//! Modules depend downward only: dispatch -> guard / sweep -> audit -> act -> ports and adapters -> error.

pub mod accounts;
pub mod act;
pub mod advice;
pub mod audit;
pub mod cloudtrail;
pub mod dispatch;
pub mod error;
pub mod guard;
pub mod iam;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod permissions;
pub mod ports;
pub mod sdk;
pub mod securityhub;
pub mod service;
pub mod sns;
pub mod sqs;
pub mod sweep;
pub mod tls;
#[cfg(feature = "twin")]
pub mod twin;

pub use accounts::{Accounts, SdkAccounts};
pub use cloudtrail::SdkCloudTrail;
pub use error::{AwsError, AwsErrorKind, GuardError};
pub use iam::SdkIam;
pub use ledger::DynamoLedger;
pub use sdk::{SdkConfigError, SdkSettings, lambda_sdk_config, sdk_config};
pub use service::{Consistency, Guard};
pub use sns::SdkSns;
pub use sqs::SdkSweepQueue;

use keyguard_core::{Config, ConfigError};

/// The guard as deployed: every port through the SDK.
pub type SdkGuard = Guard<std::sync::Arc<SdkAccounts>, DynamoLedger, SdkSns, SdkSweepQueue>;

/// Why the guard could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start: {0}")]
    Aws(#[from] AwsError),
}

/// Builds the guard from one SDK configuration; clients are made here, once. Nothing is called yet (the own
/// account is found on first use).
pub async fn sdk_guard(config: &Config, sdk: &aws_config::SdkConfig) -> Result<SdkGuard, SetupError> {
    let accounts = std::sync::Arc::new(SdkAccounts::new(sdk, config.scope.clone()));
    let ledger = config.ledger_table.as_ref().map(|t| DynamoLedger::new(aws_sdk_dynamodb::Client::new(sdk), t));
    let alerts = config.topic_arn.as_ref().map(|arn| SdkSns::new(aws_sdk_sns::Client::new(sdk), arn));
    let queue = config.sweep_queue_url.as_ref().map(|url| SdkSweepQueue::new(aws_sdk_sqs::Client::new(sdk), url));
    let mut guard = Guard::new(accounts.clone(), ledger, alerts, queue, config)?;
    if config.security_hub {
        // IAM is global; KeyGuard runs in us-east-1 and files its findings there.
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".to_string());
        guard = guard.with_outlet(std::sync::Arc::new(securityhub::SecurityHubOutlet::new(accounts, &region)));
    }
    if let Some(topic) = &config.chat_topic_arn {
        guard = guard.with_outlet(std::sync::Arc::new(sns::ChatOutlet::new(aws_sdk_sns::Client::new(sdk), topic)));
    }
    Ok(guard)
}

/// Every AWS action the Lambda's code calls: see [`permissions::guard_actions`].
pub fn required_actions() -> Vec<&'static str> {
    permissions::guard_actions()
}
