//! Test harness: a moto server on loopback, SDK clients pointed at it, and CloudTrail events built from the
//! real IAM responses (moto records no CloudTrail, DESIGN.md §4).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod archive;
pub mod athena;
pub mod capture;
#[cfg(feature = "full")]
pub mod doctor;
pub mod faults;
pub mod lambda;
pub mod org;
pub mod twin;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

pub const ACCOUNT: &str = "123456789012";

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A moto server on 127.0.0.1 at a free port. It stops when this is dropped or when the test process ends
/// (its stdin is our pipe: closing it stops the server, see tools/moto_local.py).
pub struct Moto {
    pub endpoint: String,
    child: Mutex<Option<(Child, ChildStdin)>>,
}

impl Moto {
    pub fn start() -> Result<Moto> {
        let python = std::env::var("KEYGUARD_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo().join(".venv"))
            .join("bin/python");
        let mut child = Command::new(&python)
            .arg(repo().join("tools/moto_local.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting moto with {} (run `make venv`)", python.display()))?;
        let stdin = child.stdin.take().context("moto stdin")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("moto stdout")?).read_line(&mut line)?;
        let Some(port) = line.trim().strip_prefix("PORT ") else {
            let _ = child.kill();
            bail!("moto did not start: {line:?}");
        };
        Ok(Moto { endpoint: format!("http://127.0.0.1:{port}"), child: Mutex::new(Some((child, stdin))) })
    }

    /// One server per test binary, shared by its tests (each test uses its own names).
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(|| Moto::start().expect("moto server"))
    }

    pub async fn sdk(&self) -> SdkConfig {
        sdk_config(&self.endpoint).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock()
            && let Some((mut child, stdin)) = guard.take()
        {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// SDK configuration for moto: fixed test credentials, us-east-1, the endpoint.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_iam::config::Credentials::new("testing", "testing", None, None, "keyguard-tests"))
        .load()
        .await
}

/// A unique name per test run, so tests sharing one moto never collide.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn smithy(t: Option<&aws_sdk_iam::primitives::DateTime>) -> DateTime<Utc> {
    let t = t.expect("a CreateDate");
    DateTime::from_timestamp(t.secs(), t.subsec_nanos()).expect("a valid date")
}

/// Who makes a call, as CloudTrail's `userIdentity` shows it.
#[derive(Clone, Debug)]
pub enum Caller {
    IamUser(String),
    Role(String),
}

impl Caller {
    /// The caller's ARN in the default account.
    pub fn arn(&self) -> String {
        self.arn_in(ACCOUNT)
    }

    /// The caller's ARN in `account` (a principal of the account whose IAM it changes).
    pub fn arn_in(&self, account: &str) -> String {
        match self {
            Caller::IamUser(n) => format!("arn:aws:iam::{account}:user/{n}"),
            Caller::Role(r) => format!("arn:aws:sts::{account}:assumed-role/{r}/session-1"),
        }
    }

    fn identity(&self, account: &str) -> Value {
        let arn = self.arn_in(account);
        match self {
            Caller::IamUser(n) => json!({
                "type": "IAMUser", "principalId": "AIDATESTADMIN", "arn": arn, "accountId": account,
                "accessKeyId": "AKIATESTCALLER000001", "userName": n
            }),
            Caller::Role(r) => json!({
                "type": "AssumedRole", "principalId": format!("AROATEST:{r}"), "arn": arn, "accountId": account,
                "accessKeyId": "ASIATESTCALLER000001",
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROATEST",
                    "arn": format!("arn:aws:iam::{account}:role/{r}"), "accountId": account, "userName": r},
                    "webIdFederationData": {}, "attributes": {"creationDate": "2025-03-11T13:55:41Z", "mfaAuthenticated": "false"}}
            }),
        }
    }
}

/// CloudTrail's `responseElements` date style: `Mar 11, 2025 2:03:15 PM`.
fn iam_date(t: DateTime<Utc>) -> String {
    t.format("%b %-d, %Y %-I:%M:%S %p").to_string()
}

/// An EventBridge event of a successful IAM call in the default account.
pub fn event(name: &str, caller: &Caller, at: DateTime<Utc>, request: Value, response: Value) -> Value {
    event_in(ACCOUNT, name, caller, at, request, response)
}

/// An EventBridge event of a successful IAM call in `account`: its `recipientAccountId`, the envelope's `account`
/// and the caller's account.
pub fn event_in(
    account: &str,
    name: &str,
    caller: &Caller,
    at: DateTime<Utc>,
    request: Value,
    response: Value,
) -> Value {
    let id = unique("evt");
    json!({
        "version": "0", "id": format!("env-{id}"), "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam",
        "account": account, "time": at.to_rfc3339_opts(SecondsFormat::Secs, true), "region": "us-east-1", "resources": [],
        "detail": {
            "eventVersion": "1.11", "userIdentity": caller.identity(account),
            "eventTime": at.to_rfc3339_opts(SecondsFormat::Secs, true), "eventSource": "iam.amazonaws.com",
            "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.24",
            "userAgent": "aws-cli/2.24.10 keyguard-tests", "requestParameters": request, "responseElements": response,
            "requestID": unique("req"), "eventID": id, "readOnly": false, "eventType": "AwsApiCall",
            "managementEvent": true, "recipientAccountId": account, "eventCategory": "Management"
        }
    })
}

/// An account in moto: creates real IAM objects and returns the CloudTrail events they would have produced.
pub struct Iam {
    pub client: aws_sdk_iam::Client,
    /// The account `client` acts in: the events name it.
    pub account: String,
}

/// A created access key: its id, its secret (as IAM returned it; the secrets test looks for it where it must never
/// be) and its event.
pub struct NewKey {
    pub id: String,
    pub secret: String,
    pub event: Value,
}

impl Iam {
    /// The default account (moto's, with the test credentials).
    pub fn new(sdk: &SdkConfig) -> Iam {
        Iam::in_account(sdk, ACCOUNT)
    }

    /// Another account: `sdk` carries credentials whose calls land in `account` (see [`org::assume`]).
    pub fn in_account(sdk: &SdkConfig, account: &str) -> Iam {
        Iam { client: aws_sdk_iam::Client::new(sdk), account: account.to_string() }
    }

    fn event(&self, name: &str, caller: &Caller, at: DateTime<Utc>, request: Value, response: Value) -> Value {
        event_in(&self.account, name, caller, at, request, response)
    }

    /// CreateUser (with optional path and tags) and its event.
    pub async fn create_user(
        &self,
        by: &Caller,
        name: &str,
        path: Option<&str>,
        tags: &[(&str, &str)],
    ) -> Result<Value> {
        let mut req = self.client.create_user().user_name(name);
        if let Some(p) = path {
            req = req.path(p);
        }
        for (k, v) in tags {
            req = req.tags(aws_sdk_iam::types::Tag::builder().key(*k).value(*v).build()?);
        }
        let out = req.send().await?;
        let u = out.user().context("user")?;
        let created = smithy(Some(u.create_date()));
        let tags_json: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        Ok(self.event(
            "CreateUser",
            by,
            created,
            json!({"userName": name, "path": path, "tags": tags_json}),
            json!({"user": {"path": u.path(), "userName": u.user_name(), "userId": u.user_id(), "arn": u.arn(),
                            "createDate": iam_date(created), "tags": tags_json}}),
        ))
    }

    /// CreateLoginProfile (a console password) and its event.
    pub async fn create_password(&self, by: &Caller, name: &str) -> Result<Value> {
        let out = self
            .client
            .create_login_profile()
            .user_name(name)
            .password("Correct-Horse-Battery-9")
            .password_reset_required(true)
            .send()
            .await?;
        // moto dates a login profile at the user's creation; CloudTrail's eventTime is when the call was made.
        let _ = out.login_profile().context("login profile")?;
        let at = Utc::now();
        Ok(self.event(
            "CreateLoginProfile",
            by,
            at,
            json!({"userName": name, "passwordResetRequired": true}),
            json!({"loginProfile": {"userName": name, "createDate": iam_date(at), "passwordResetRequired": true}}),
        ))
    }

    /// CreateAccessKey for `name`, by `by` (self-service when `by` is that IAM user: no requestParameters).
    pub async fn create_key(&self, by: &Caller, name: &str) -> Result<NewKey> {
        let out = self.client.create_access_key().user_name(name).send().await?;
        let k = out.access_key().context("access key")?;
        let created = smithy(k.create_date());
        let self_service = matches!(by, Caller::IamUser(n) if n == name);
        let request = if self_service { Value::Null } else { json!({"userName": name}) };
        let event = self.event(
            "CreateAccessKey",
            by,
            created,
            request,
            json!({"accessKey": {"userName": name, "accessKeyId": k.access_key_id(), "status": "Active",
                                 "createDate": iam_date(created)}}),
        );
        Ok(NewKey { id: k.access_key_id().to_string(), secret: k.secret_access_key().to_string(), event })
    }

    /// Each key's status, by id.
    pub async fn key_statuses(&self, name: &str) -> Result<Vec<(String, String)>> {
        let out = self.client.list_access_keys().user_name(name).send().await?;
        Ok(out
            .access_key_metadata()
            .iter()
            .map(|k| {
                (
                    k.access_key_id().unwrap_or_default().to_string(),
                    k.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                )
            })
            .collect())
    }

    pub async fn key_status(&self, name: &str, key: &str) -> Result<String> {
        let all = self.key_statuses(name).await?;
        all.into_iter().find(|(id, _)| id == key).map(|(_, s)| s).context("key not found")
    }

    /// Deletes a user with its keys and password.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        for (id, _) in self.key_statuses(name).await? {
            self.client.delete_access_key().user_name(name).access_key_id(id).send().await?;
        }
        let _ = self.client.delete_login_profile().user_name(name).send().await;
        self.client.delete_user().user_name(name).send().await?;
        Ok(())
    }
}

/// An SNS topic with an SQS queue subscribed: alerts are read back as subscribers get them.
pub struct AlertSink {
    pub topic_arn: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
}

/// One alert as a subscriber receives it.
#[derive(Debug, Clone)]
pub struct Received {
    pub subject: String,
    /// The machine-readable JSON (the `sqs` key of the structured message).
    pub body: Value,
    pub attributes: Value,
}

impl AlertSink {
    pub async fn new(sdk: &SdkConfig) -> Result<AlertSink> {
        AlertSink::named(sdk, &unique("keyguard-alerts")).await
    }

    /// The ARN the topic `name` has (or will have, once created) in this account.
    pub fn topic_arn_of(name: &str) -> String {
        format!("arn:aws:sns:us-east-1:{ACCOUNT}:{name}")
    }

    /// A sink on the topic `name` (created if it does not exist yet; a topic's ARN follows from its name).
    pub async fn named(sdk: &SdkConfig, name: &str) -> Result<AlertSink> {
        let sns = aws_sdk_sns::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let topic_arn = sns.create_topic().name(name).send().await?.topic_arn().context("topic")?.to_string();
        let queue_url = sqs.create_queue().queue_name(name).send().await?.queue_url().context("queue")?.to_string();
        let queue_arn = queue_arn(&sqs, &queue_url).await?;
        sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(queue_arn).send().await?;
        Ok(AlertSink { topic_arn, queue_url, sqs })
    }

    /// Everything delivered so far.
    pub async fn drain(&self) -> Result<Vec<Received>> {
        let mut all = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await?;
            let messages = out.messages();
            if messages.is_empty() {
                return Ok(all);
            }
            for m in messages {
                let envelope: Value = serde_json::from_str(m.body().unwrap_or_default())?;
                all.push(Received {
                    subject: envelope["Subject"].as_str().unwrap_or_default().to_string(),
                    body: serde_json::from_str(envelope["Message"].as_str().unwrap_or("null"))?,
                    attributes: envelope["MessageAttributes"].clone(),
                });
                if let Some(h) = m.receipt_handle() {
                    self.sqs.delete_message().queue_url(&self.queue_url).receipt_handle(h).send().await?;
                }
            }
        }
    }
}

/// Cargo's target folder: `CARGO_TARGET_DIR`, else the repository's `target`.
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo().join("target"))
}

/// Builds (once per test binary) and returns the path of a workspace binary, in the same profile as the tests.
pub fn built_binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|b| b == bin) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", package, "--bin", bin])
            .current_dir(repo())
            .status()
            .expect("cargo build");
        assert!(status.success(), "building {bin}");
        built.push(bin.to_string());
    }
    target_dir().join("debug").join(bin)
}

/// The binaries `make bench` measures (`bootstrap`, `keyguard`, and the floors of bench/floors), built with the
/// release profile in one cargo invocation, and the folder that holds them. Every benchmark asks for the same set,
/// so the second asks a fresh build (a different set of packages would unify other features and rebuild them: that
/// was five of the 21 minutes `make bench` took).
pub fn release_binaries() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "keyguard-lambda", "-p", "keyguard-cli", "-p", "keyguard-floors"])
        .current_dir(repo())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build --release -p keyguard-lambda -p keyguard-cli -p keyguard-floors failed");
    }
    Ok(target_dir().join("release"))
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server that needs it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `PATH` with the project's .venv/bin first (cargo-lambda, zig).
pub fn venv_path() -> String {
    let venv = std::env::var("KEYGUARD_VENV").map(PathBuf::from).unwrap_or_else(|_| repo().join(".venv"));
    format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default())
}

/// Environment for a process that talks to this moto.
pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Runs the built `keyguard` binary in the repository, with only `PATH` and `env` in its environment.
pub fn run_keyguard(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    Command::new(built_binary("keyguard-cli", "keyguard"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .current_dir(repo())
        .output()
        .expect("running keyguard")
}

/// A fresh ledger table in this moto (`keyguard ledger create` does the same).
pub async fn ledger_table(sdk: &SdkConfig) -> String {
    let table = unique("keyguard-ledger");
    keyguard_aws::DynamoLedger::new(aws_sdk_dynamodb::Client::new(sdk), &table).create_table().await.unwrap();
    table
}

/// Signs one request with the key: moto then records it as used (GetAccessKeyLastUsed), as AWS does.
pub async fn use_key(endpoint: &str, key_id: &str, secret: &str) {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_iam::config::Credentials::new(key_id, secret, None, None, "key-under-test"))
        .load()
        .await;
    aws_sdk_iam::Client::new(&sdk).list_users().send().await.unwrap();
}

impl Iam {
    /// UpdateAccessKey (by `by`, for `name`'s key) and its event; a user changing their own key names no user.
    pub async fn set_key_status(&self, by: &Caller, name: &str, key: &str, status: &str) -> Result<Value> {
        self.client
            .update_access_key()
            .user_name(name)
            .access_key_id(key)
            .status(aws_sdk_iam::types::StatusType::from(status))
            .send()
            .await?;
        let own = matches!(by, Caller::IamUser(n) if n == name);
        let request = if own {
            json!({"accessKeyId": key, "status": status})
        } else {
            json!({"userName": name, "accessKeyId": key, "status": status})
        };
        Ok(event("UpdateAccessKey", by, Utc::now(), request, Value::Null))
    }
}

/// Waits for the start of a second, so that a user and its key are created within one (moto dates a login profile
/// at its user's creation: a key in that second is "before the password", a violation whose creator the audit need
/// not know; a key a second later is "after the password", a suspect). Under load the calls may straddle seconds
/// otherwise.
pub async fn align_to_second() {
    while chrono::Utc::now().timestamp_subsec_millis() >= 50 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The ARN of the queue at `queue_url` (what an SNS subscription or an EventBridge target names).
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<String> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await?;
    Ok(attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .context("queue arn")?
        .clone())
}
