//! The KeyGuard Lambda function. Thin: configuration and clients once, then the Guard for every event.

use keyguard_aws::{GuardError, SdkGuard};
use keyguard_core::{Config, EventReport};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    keyguard_aws::logging::init();
    // A bad setting stops start-up here, naming the variable (Lambda reports it as an init error).
    let config = Config::from_env().inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = keyguard_aws::sdk_config().await;
    let guard = keyguard_aws::sdk_guard(&config, &sdk)?;
    tracing::info!(mode = config.mode.as_str(), window_seconds = config.policy.window.num_seconds(), "keyguard ready");
    let guard = &guard;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| handle(guard, event))).await
}

/// Errors go back to Lambda as errors, so its retries and failure destination keep the event.
async fn handle(guard: &SdkGuard, event: LambdaEvent<Value>) -> Result<EventReport, Diagnostic> {
    guard
        .handle(&event.payload)
        .await
        .map_err(|e: GuardError| Diagnostic { error_type: e.kind().to_string(), error_message: e.to_string() })
}
