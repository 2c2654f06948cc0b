//! How KeyGuard's AWS SDK clients wait and retry: timeouts and retry mode, chosen here once for every client.
//!
//! The SDK's own defaults have no operation or attempt timeout at all: a connection that hangs after connecting
//! would hold the Lambda until its 300 s timeout (and a hung call in the sweep would sink the whole sweep). The
//! values below bound every call, and leave the slow outer retries to Lambda (README "Errors and retries").

use std::time::Duration;

use aws_config::Region;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

use crate::tls::TrustRoots;

/// Timeouts and retries of every SDK client KeyGuard makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkSettings {
    /// Establishing a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// One attempt: sending the request until its response is read (a streamed body, such as S3's, is read later
    /// and is not included).
    pub attempt_timeout: Duration,
    /// One call: every attempt and the backoff between them.
    pub operation_timeout: Duration,
    /// Attempts per call, the first included (standard retry mode: exponential backoff with full jitter and the
    /// SDK's retry quota).
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles per retry up to `max_backoff`, then jitters down.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl SdkSettings {
    /// The deployed values; README "Errors and retries" says why.
    pub const DEPLOYED: SdkSettings = SdkSettings {
        connect_timeout: Duration::from_millis(3100),
        attempt_timeout: Duration::from_secs(10),
        operation_timeout: Duration::from_secs(45),
        max_attempts: 5,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(20),
    };

    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }

    /// Standard mode, not adaptive: the adaptive mode's client-side rate limiter is still marked experimental, and
    /// it would learn a rate per Lambda instance, while IAM's limits are the account's.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts.max(1))
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    /// Applies these settings to a configuration loader (region, endpoint and credentials stay as loaded).
    pub fn apply(&self, loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
        loader.timeout_config(self.timeout_config()).retry_config(self.retry_config())
    }
}

impl Default for SdkSettings {
    fn default() -> SdkSettings {
        SdkSettings::DEPLOYED
    }
}

/// IAM is global and its events reach EventBridge only in us-east-1, where KeyGuard is deployed: the region of the
/// calls when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Why the SDK configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdkConfigError {
    /// A region that cannot exist (a typo such as `us-east1`): without this check it fails later as an unreachable
    /// host, or not at all behind a custom endpoint.
    #[error(
        "the AWS region {region:?} (from AWS_REGION, AWS_DEFAULT_REGION or the profile) is not a region name. Set it \
         to one like us-east-1 (KeyGuard's own region; `aws account list-regions` lists the others)"
    )]
    BadRegion { region: String },
    /// No region is configured where one cannot be guessed (`needed_for` says what needs it).
    #[error("no AWS region is set, and {needed_for} needs one. Set AWS_REGION, or `region` in the profile")]
    NoRegion { needed_for: &'static str },
}

/// Loads the SDK configuration the standard way (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, region,
/// credentials chain) with KeyGuard's timeouts and retries ([`SdkSettings::DEPLOYED`]). These replace the SDK's
/// `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE`, so that every deployment waits and retries the same way. Without a
/// configured region the calls go to [`DEFAULT_REGION`]; a configured region must be a region name.
pub async fn sdk_config() -> Result<aws_config::SdkConfig, SdkConfigError> {
    let region = RegionProviderChain::default_provider().or_else(Region::new(DEFAULT_REGION));
    checked(deployed().region(region).load().await)
}

/// As [`sdk_config`], for the Lambda, with two differences that halve its start-up (`make bench`, "Cold start"):
/// - its HTTPS client trusts the roots [`TrustRoots::for_lambda`] chooses (the five Amazon Trust Services roots in
///   the standard partition; `tls` says why);
/// - credentials come from the environment, where Lambda puts the execution role's (`AWS_ACCESS_KEY_ID`,
///   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`): the default chain would find them there first too, but builds
///   its web-identity, container, instance-metadata and SSO providers before it looks.
pub async fn lambda_sdk_config() -> Result<aws_config::SdkConfig, SdkConfigError> {
    // Resolved first: the trust store depends on the region's partition.
    let region = RegionProviderChain::default_provider().region().await.unwrap_or(Region::from_static(DEFAULT_REGION));
    let roots = TrustRoots::for_lambda(region.as_ref(), TrustRoots::operator_store_from_env());
    let mut loader = deployed()
        .region(region)
        .credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    if let Some(client) = roots.http_client() {
        loader = loader.http_client(client);
    }
    checked(loader.load().await)
}

/// As [`sdk_config`], for calls whose region cannot be guessed (an Athena table's): no region is an error naming
/// `needed_for`.
pub async fn sdk_config_requiring_region(needed_for: &'static str) -> Result<aws_config::SdkConfig, SdkConfigError> {
    let sdk = deployed().load().await;
    if sdk.region().is_none() {
        return Err(SdkConfigError::NoRegion { needed_for });
    }
    checked(sdk)
}

/// The loader every configuration starts from: the SDK's defaults with [`SdkSettings::DEPLOYED`].
fn deployed() -> aws_config::ConfigLoader {
    SdkSettings::DEPLOYED.apply(aws_config::defaults(aws_config::BehaviorVersion::latest()))
}

fn checked(sdk: aws_config::SdkConfig) -> Result<aws_config::SdkConfig, SdkConfigError> {
    match sdk.region() {
        Some(region) if !is_region_name(region.as_ref()) => {
            Err(SdkConfigError::BadRegion { region: region.as_ref().to_string() })
        }
        _ => Ok(sdk),
    }
}

/// Whether `name` has the shape of every AWS region name in every partition: two letters, one or more words,
/// a number (`us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-northwest-1`, `us-isob-east-1`). A list of the
/// regions themselves would go stale; the shape does not.
pub fn is_region_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let letters = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    parts.len() >= 3
        && parts[0].len() == 2
        && letters(parts[0])
        && parts[1..parts.len() - 1].iter().all(|p| letters(p))
        && parts.last().is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use aws_config::retry::RetryMode;

    #[test]
    fn deployed_calls_are_bounded_below_the_lambda_timeout() {
        let s = SdkSettings::DEPLOYED;
        // Every attempt ends before the call's budget, so several attempts fit.
        assert!(s.attempt_timeout * 2 < s.operation_timeout, "{s:?}");
        // An event makes at most three calls in sequence (a read round, UpdateAccessKey, Publish): each at its
        // operation timeout still ends before the Lambda's 300 s.
        assert!(s.operation_timeout * 3 < Duration::from_secs(300), "{s:?}");
        // The worst backoff of all retries (full jitter of at most initial * 2^n, capped) fits in the budget.
        let backoff: Duration =
            (0..s.max_attempts - 1).map(|n| (s.initial_backoff * 2u32.pow(n)).min(s.max_backoff)).sum();
        assert!(backoff < s.operation_timeout, "{backoff:?}");
    }

    #[tokio::test]
    async fn the_loaded_configuration_carries_the_settings() {
        let settings = SdkSettings {
            connect_timeout: Duration::from_millis(700),
            attempt_timeout: Duration::from_millis(900),
            operation_timeout: Duration::from_secs(4),
            max_attempts: 4,
            initial_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_millis(300),
        };
        let sdk = settings
            .apply(
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new("us-east-1")),
            )
            .load()
            .await;
        let timeouts = sdk.timeout_config().unwrap();
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_millis(700)));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(Duration::from_millis(900)));
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(4)));
        let retries = sdk.retry_config().unwrap();
        assert_eq!(retries.mode(), RetryMode::Standard);
        assert_eq!(retries.max_attempts(), 4);
        assert_eq!(retries.initial_backoff(), Duration::from_millis(30));
        assert_eq!(retries.max_backoff(), Duration::from_millis(300));
    }

    #[test]
    fn region_names_are_told_from_typos() {
        for good in ["us-east-1", "eu-central-2", "ap-southeast-5", "us-gov-west-1", "cn-northwest-1", "us-isob-east-1"]
        {
            assert!(is_region_name(good), "{good}");
        }
        for bad in ["us-east1", "useast1", "US-EAST-1", "us-east-", "mars-1", "us east 1", "us-east-1a", "", "local"] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_configured_region_must_be_a_region_name() {
        let with = |region: &str| aws_config::SdkConfig::builder().region(Region::new(region.to_string())).build();
        assert!(checked(with("eu-west-1")).is_ok());
        let e = checked(with("eu-west1")).unwrap_err();
        assert_eq!(e, SdkConfigError::BadRegion { region: "eu-west1".into() });
        assert!(e.to_string().contains("\"eu-west1\"") && e.to_string().contains("us-east-1"), "{e}");
        // No region at all is left to the caller (sdk_config defaults it, sdk_config_requiring_region refuses).
        assert!(checked(aws_config::SdkConfig::builder().build()).is_ok());
    }
}
