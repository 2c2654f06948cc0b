//! `keyguard doctor`'s world on moto: an account of its own per test, and a healthy deployment to break.
//!
//! Each test gets a fresh account (STS AssumeRole into a new account id: moto keeps every account's resources
//! apart), so tests sharing one moto server can each delete the trail or disable the rule without meeting.

use anyhow::{Context, Result};
use aws_config::SdkConfig;

use crate::{Moto, repo, sdk_config};

/// An account of its own on the shared moto server.
pub struct Account {
    pub id: String,
    pub sdk: SdkConfig,
    /// The environment a `keyguard` process needs to act as this account.
    pub env: Vec<(String, String)>,
}

/// A new account id for every call (12 digits: this process's id, then a counter).
fn next_account_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{:06}{:06}", std::process::id() % 1_000_000, N.fetch_add(1, Ordering::Relaxed) + 1)
}

impl Account {
    pub async fn fresh(moto: &Moto) -> Result<Account> {
        let id = next_account_id();
        let sts = aws_sdk_sts::Client::new(&moto.sdk().await);
        let out = sts
            .assume_role()
            .role_arn(format!("arn:aws:iam::{id}:role/keyguard-tests"))
            .role_session_name("doctor-tests")
            .send()
            .await?;
        let c = out.credentials().context("credentials")?;
        let credentials = aws_sdk_iam::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "doctor-tests",
        );
        let base = sdk_config(&moto.endpoint).await;
        // One attempt per call: moto answers SimulatePrincipalPolicy with HTTP 500, which the SDK would retry
        // with backoff for seconds; nothing else on a local moto needs a retry.
        let sdk = base
            .to_builder()
            .credentials_provider(aws_sdk_iam::config::SharedCredentialsProvider::new(credentials))
            .retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(1))
            .build();
        let env = vec![
            ("AWS_ENDPOINT_URL".into(), moto.endpoint.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), c.access_key_id().into()),
            ("AWS_SECRET_ACCESS_KEY".into(), c.secret_access_key().into()),
            ("AWS_SESSION_TOKEN".into(), c.session_token().into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_MAX_ATTEMPTS".into(), "1".into()),
        ];
        Ok(Account { id, sdk, env })
    }
}

/// What `deploy` made, by name and ARN, so that a test can break one part.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub stack: String,
    pub trail_arn: String,
    pub function_name: String,
    pub function_arn: String,
    pub rule_name: String,
    pub topic_arn: String,
    pub subscription_arn: String,
    pub log_group: String,
}

/// A healthy KeyGuard deployment in the account of `sdk`: a logging multi-region trail, the stand-in stack
/// (tests/fixtures/doctor/stack.json: role, function with its environment, rule with the pattern and the function
/// as target, topic, log group) and an SQS queue subscribed to the topic (confirmed at once on moto). No alarms:
/// CloudWatch's SDK speaks CBOR, which moto does not (the tests mock CloudWatch for them).
pub async fn deploy(sdk: &SdkConfig, stack: &str) -> Result<Deployed> {
    let s3 = aws_sdk_s3::Client::new(sdk);
    let bucket = format!("trail-{}", crate::unique("logs")).to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await?;
    let cloudtrail = aws_sdk_cloudtrail::Client::new(sdk);
    let trail = cloudtrail
        .create_trail()
        .name("management-events")
        .s3_bucket_name(&bucket)
        .is_multi_region_trail(true)
        .send()
        .await?;
    let trail_arn = trail.trail_arn().context("trail arn")?.to_string();
    cloudtrail.start_logging().name(&trail_arn).send().await?;

    let template = std::fs::read_to_string(repo().join("tests/fixtures/doctor/stack.json"))?;
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    cfn.create_stack().stack_name(stack).template_body(template).send().await?;
    let resources = cfn.describe_stack_resources().stack_name(stack).send().await?;
    let physical = |logical: &str| -> Result<String> {
        resources
            .stack_resources()
            .iter()
            .find(|r| r.logical_resource_id() == Some(logical))
            .and_then(|r| r.physical_resource_id())
            .map(str::to_string)
            .with_context(|| format!("{logical} in stack {stack}"))
    };
    let function_name = physical("GuardFunction")?;
    let rule_name = physical("IamEventRule")?;
    let topic_arn = physical("AlertTopic")?;
    let log_group = physical("GuardLogGroup")?;
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let function_arn = lambda
        .get_function_configuration()
        .function_name(&function_name)
        .send()
        .await?
        .function_arn()
        .context("arn")?
        .to_string();

    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue_url =
        sqs.create_queue().queue_name("security-team").send().await?.queue_url().context("queue")?.to_string();
    let queue_arn = crate::queue_arn(&sqs, &queue_url).await?;
    let sns = aws_sdk_sns::Client::new(sdk);
    let subscription = sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(queue_arn).send().await?;
    let subscription_arn = subscription.subscription_arn().context("subscription")?.to_string();

    Ok(Deployed {
        stack: stack.into(),
        trail_arn,
        function_name,
        function_arn,
        rule_name,
        topic_arn,
        subscription_arn,
        log_group,
    })
}
