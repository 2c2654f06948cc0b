//! The KeyGuard Lambda function. Thin: configuration and clients once, then the service for every invocation.

use keyguard_aws::GuardError;
use keyguard_core::Config;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

// One thread: an instance handles one event at a time and its work is waiting on AWS (the reads run side by side
// all the same); the worker threads of the multi-thread runtime were start-up time for nothing (`make bench`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    keyguard_aws::logging::init();
    // One CloudWatch Embedded Metric Format line per invocation on stdout (namespace KeyGuard).
    let metrics = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(keyguard_aws::metrics::NAMESPACE)
        .init()
        .map_err(|e| lambda_runtime::Error::from(format!("metrics: {e}")))?;
    keyguard_aws::metrics::describe();
    // A bad setting stops start-up here, naming the variable (Lambda reports it as an init error).
    let config = Config::from_env().inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk =
        keyguard_aws::lambda_sdk_config().await.inspect_err(|e| tracing::error!(error = %e, "bad AWS settings"))?;
    let guard =
        keyguard_aws::sdk_guard(&config, &sdk).await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    tracing::info!(
        mode = config.mode.as_str(),
        window_seconds = config.policy.window.num_seconds(),
        ledger = config.ledger_table.is_some(),
        "keyguard ready"
    );
    let guard = &guard;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let result = guard.invoke(&event.payload).await;
        if let Err(e) = metrics.flush(std::io::stdout()) {
            tracing::warn!(error = %e, "metrics not written");
        }
        // Errors go back to Lambda as errors, so its retries and failure destination keep the event.
        result.map_err(|e: GuardError| Diagnostic { error_type: e.kind().to_string(), error_message: e.to_string() })
    }))
    .await
}
