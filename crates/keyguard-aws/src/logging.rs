//! Structured JSON logs (one object per line, on stderr) for both binaries.

use tracing_subscriber::EnvFilter;

/// The Lambda's filter: `info`, with the SDK's own chatter at `warn`.
const LAMBDA: &str = "info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_iam=warn,aws_sdk_sns=warn";

/// The CLI's filter: warnings only (a file replay could not read, a fallback the audit took). The guard's own lines
/// (one per decision or failed event) are off: `handle` prints the same on stdout, and a failure that stops a
/// command is its one line on stderr. The SDK logs only its errors.
const CLI: &str = "warn,keyguard_aws::guard=off,aws_config=error,aws_smithy_runtime=error,aws_smithy_http_client=error";

/// The CLI's filter with `-v`: every KeyGuard line down to debug (the SDK's whole report of a failed call, as
/// [`crate::AwsError::from_sdk`] logs it), and the credential and region providers' own account of what they tried.
const CLI_VERBOSE: &str = "info,keyguard_aws=debug,keyguard_replay=debug,keyguard_doctor=debug,aws_config=debug";

/// The Lambda's logging. `RUST_LOG` overrides the default filter.
pub fn init() {
    init_with(LAMBDA);
}

/// The CLI's logging: quiet unless `verbose` (`-v`). `RUST_LOG` overrides both.
pub fn init_cli(verbose: bool) {
    init_with(if verbose { CLI_VERBOSE } else { CLI });
}

fn init_with(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
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
