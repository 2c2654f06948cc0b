//! The cold-start floor of `make bench`: the smallest `lambda_runtime` function (echoes its event), built with the
//! same release profile as `bootstrap`. bench_audit times both from spawn to exit without AWS_LAMBDA_RUNTIME_API
//! (the runtime stops right after start-up), so the difference is what KeyGuard's own start-up costs.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // What bench_audit waits for, as it waits for "keyguard ready" from bootstrap.
    std::io::Write::write_all(&mut std::io::stderr(), b"floor ready\n")?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<Value, Error>(event.payload) })).await
}
