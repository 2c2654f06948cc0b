//! Structured JSON logs (one object per line, on stderr) for both binaries.

use tracing_subscriber::EnvFilter;

/// `RUST_LOG` overrides the default (`info`, with the SDK's own chatter at `warn`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_iam=warn,aws_sdk_sns=warn")
    });
    // try_init: a second call (tests) is harmless.
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
