//! Capturing what KeyGuard writes to its log (a tracing subscriber writing JSON lines to a buffer, as the deployed
//! one writes them to stderr), and looking in text for anything shaped like an AWS secret.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::subscriber::DefaultGuard;

/// The log lines written while a capture is installed on this thread.
#[derive(Clone, Default)]
pub struct Logs {
    buffer: Arc<Mutex<Vec<u8>>>,
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Installs the capture on this thread until the guard is dropped (a `#[tokio::test]` runs its future on this
    /// thread). The format is the deployed one (`keyguard_aws::logging`); KeyGuard's own crates log at every level,
    /// the SDK at the deployed levels.
    pub fn capture() -> (Logs, DefaultGuard) {
        let logs = Logs::default();
        let buffer = logs.buffer.clone();
        let filter = tracing_subscriber::EnvFilter::new(
            "info,keyguard_aws=trace,keyguard_core=trace,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_iam=warn,\
             aws_sdk_sns=warn",
        );
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .with_env_filter(filter)
            .with_writer(move || Sink(buffer.clone()))
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }

    /// Every line, parsed: a line that is not one JSON object fails the test (a newline in a logged value must
    /// never split a line).
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l:?}")))
            .collect()
    }

    /// The lines whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<Value> {
        self.lines().into_iter().filter(|l| l["message"] == message).collect()
    }
}

/// Everything in `text` shaped like an AWS secret: a run of exactly 40 characters of the base64 alphabet (a secret
/// access key, as git-secrets and AWS's own scanners define it), a run of 100 or more (a session token), a session
/// token's known beginnings, or the name of a secret's field.
pub fn secret_shaped(text: &str) -> Vec<String> {
    let runs = regex_lite::Regex::new(r"[A-Za-z0-9/+=]+").unwrap();
    let mut found: Vec<String> = runs
        .find_iter(text)
        .map(|m| m.as_str())
        .filter(|run| run.len() == 40 || run.len() >= 100)
        .map(str::to_string)
        .collect();
    let fields = regex_lite::Regex::new(
        r"(?i)secret_?access_?key|session_?token|aws_secret|FwoGZXIvYXdzE|IQoJb3JpZ2luX2Vj|x-amz-security-token",
    )
    .unwrap();
    found.extend(fields.find_iter(text).map(|m| m.as_str().to_string()));
    found
}
