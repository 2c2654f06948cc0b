//! A fault-injecting HTTP proxy between the SDK and moto (moto has no fault injection of its own, DESIGN.md §4).
//!
//! It listens on 127.0.0.1 at a free port and forwards every request to moto, except those its [`Schedule`] picks:
//! those get throttled, a 500, a response later than the SDK's timeouts, or a closed connection. It tells the
//! service from the SigV4 credential scope of the `Authorization` header (`.../us-east-1/iam/aws4_request`) and the
//! operation from the query protocol's `Action` parameter, so one proxy serves every client of an `SdkConfig` (and
//! a binary can be pointed at it for one service only with `AWS_ENDPOINT_URL_IAM` or `AWS_ENDPOINT_URL_SNS`).
//! JSON-protocol services (Organizations, SQS) name the operation in the `X-Amz-Target` header instead. A rule may
//! also match one form parameter (e.g. STS `AssumeRole` of one account's `RoleArn`). Each request is recorded with
//! the access key that signed it, and the credentials STS `AssumeRole` handed out are remembered, so a test can tell
//! which account's credentials each call used.
//! The schedule counts requests per rule, so a profile is deterministic. The proxy stops when dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::{Range, RangeInclusive};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyguard_aws::SdkSettings;

pub const IAM: &str = "iam";
pub const SNS: &str = "sns";
pub const STS: &str = "sts";

/// What the proxy does instead of answering normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 `Throttling` "Rate exceeded": the query-protocol error that IAM and SNS (Publish included) return
    /// when a rate limit is hit. SNS's modelled `Throttled` (429) belongs to its SMS operations, not to Publish.
    Throttle,
    /// HTTP 500 with the service's modelled internal error: IAM `ServiceFailure`, SNS `InternalError`.
    ServerError,
    /// The request reaches moto and takes effect; its response comes this much later (after the SDK gave up).
    Slow(Duration),
    /// The connection is closed without a response; the request never reaches moto.
    Drop,
    /// HTTP 403 `AccessDenied`: the caller is not allowed (e.g. a role whose trust policy does not admit it).
    Denied,
}

impl Fault {
    pub fn label(&self) -> String {
        match self {
            Fault::Throttle => "throttled".into(),
            Fault::ServerError => "500".into(),
            Fault::Slow(d) => format!("slow {}ms", d.as_millis()),
            Fault::Drop => "dropped".into(),
            Fault::Denied => "denied".into(),
        }
    }
}

/// Which of a rule's matching requests it applies to.
#[derive(Debug, Clone)]
pub enum When {
    Always,
    /// The n-th matching requests, counted from 1 since the schedule was installed.
    Requests(RangeInclusive<u32>),
    /// Requests arriving in this span of time after the schedule was installed.
    During(Range<Duration>),
}

impl When {
    fn applies(&self, nth: u32, elapsed: Duration) -> bool {
        match self {
            When::Always => true,
            When::Requests(range) => range.contains(&nth),
            When::During(span) => span.contains(&elapsed),
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    service: &'static str,
    action: Option<&'static str>,
    /// A form parameter and the value it must have.
    param: Option<(&'static str, String)>,
    when: When,
    fault: Fault,
}

/// The faults to inject. The first rule that applies to a request decides; every rule whose service (and action)
/// matches counts the request.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    rules: Vec<Rule>,
}

impl Schedule {
    /// No faults: every request is forwarded.
    pub fn none() -> Schedule {
        Schedule::default()
    }

    /// A fault for requests to `service` (`"iam"`, `"sns"`...).
    pub fn on(mut self, service: &'static str, when: When, fault: Fault) -> Schedule {
        self.rules.push(Rule { service, action: None, param: None, when, fault });
        self
    }

    /// A fault for one operation of `service` (the query protocol's `Action`, e.g. `UpdateAccessKey`).
    pub fn on_action(mut self, service: &'static str, action: &'static str, when: When, fault: Fault) -> Schedule {
        self.rules.push(Rule { service, action: Some(action), param: None, when, fault });
        self
    }

    /// A fault for one operation of `service` whose form parameter `param` is `value` (e.g. STS `AssumeRole` with
    /// the `RoleArn` of one account).
    pub fn on_param(
        mut self,
        service: &'static str,
        action: &'static str,
        param: &'static str,
        value: impl Into<String>,
        when: When,
        fault: Fault,
    ) -> Schedule {
        self.rules.push(Rule { service, action: Some(action), param: Some((param, value.into())), when, fault });
        self
    }
}

/// One request as the proxy saw it, and the fault it got (if any).
#[derive(Debug, Clone)]
pub struct Seen {
    pub service: String,
    pub action: String,
    /// The request's form body (query protocol parameters).
    pub params: String,
    /// The access key id that signed the request (from its SigV4 credential scope).
    pub access_key: String,
    pub fault: Option<Fault>,
}

impl Seen {
    /// The value of one form parameter, e.g. `AccessKeyId`.
    pub fn param(&self, name: &str) -> Option<String> {
        form_param(&self.params, name)
    }
}

struct State {
    schedule: Schedule,
    counts: Vec<u32>,
    installed: Instant,
    seen: Vec<Seen>,
    /// (RoleArn, AccessKeyId) of every credentials STS AssumeRole handed out through the proxy.
    issued: Vec<(String, String)>,
}

impl State {
    fn decide(&mut self, service: &str, action: &str, params: &str, access_key: &str) -> Option<Fault> {
        let elapsed = self.installed.elapsed();
        let mut fault = None;
        for (rule, count) in self.schedule.rules.iter().zip(self.counts.iter_mut()) {
            if rule.service != service
                || rule.action.is_some_and(|a| a != action)
                || rule.param.as_ref().is_some_and(|(name, value)| form_param(params, name).as_ref() != Some(value))
            {
                continue;
            }
            *count += 1;
            if fault.is_none() && rule.when.applies(*count, elapsed) {
                fault = Some(rule.fault);
            }
        }
        self.seen.push(Seen {
            service: service.into(),
            action: action.into(),
            params: params.into(),
            access_key: access_key.into(),
            fault,
        });
        fault
    }
}

/// The proxy. `endpoint` is its URL; it forwards to the `upstream` it was started with.
pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts the proxy on the current tokio runtime, with no faults scheduled.
    pub async fn start(upstream: &str) -> Result<FaultProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the fault proxy")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            schedule: Schedule::none(),
            counts: vec![],
            installed: Instant::now(),
            seen: vec![],
            issued: vec![],
        }));
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let shared = state.clone();
        let server = tokio::spawn(async move {
            // Owned by this task: aborting it (on drop) aborts every connection too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (state, client, upstream) = (shared.clone(), client.clone(), upstream.clone());
                let service = hyper::service::service_fn(move |request| {
                    handle(state.clone(), client.clone(), upstream.clone(), request)
                });
                connections.spawn(async move {
                    // An error here is a dropped connection (by schedule, or the client gave up): nothing to do.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(FaultProxy { endpoint, state, server })
    }

    /// Replaces the schedule; its request counts and its clock start again from zero.
    pub fn install(&self, schedule: Schedule) {
        let mut state = self.state.lock().unwrap();
        state.counts = vec![0; schedule.rules.len()];
        state.schedule = schedule;
        state.installed = Instant::now();
    }

    /// Stops injecting faults.
    pub fn clear(&self) {
        self.install(Schedule::none());
    }

    /// Every request seen so far (and forgets them).
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().unwrap().seen)
    }

    /// (RoleArn, AccessKeyId) of the credentials STS `AssumeRole` handed out through the proxy so far.
    pub fn issued(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().issued.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The closed connection of [`Fault::Drop`]: hyper closes a connection whose service fails, without a response.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault schedule")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    state: Arc<Mutex<State>>,
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Arc<str>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else { return Err(Dropped) };
    let authorization = parts.headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let service = service_of(authorization).unwrap_or_default();
    let access_key = access_key_of(authorization).unwrap_or_default();
    let params = String::from_utf8_lossy(&body).into_owned();
    // The query protocol names the operation in the body; the JSON protocols in `X-Amz-Target: Prefix.Operation`.
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let action = form_param(&params, "Action")
        .or_else(|| target.and_then(|t| t.rsplit('.').next()).map(str::to_string))
        .unwrap_or_default();
    let fault = state.lock().unwrap().decide(&service, &action, &params, &access_key);
    let role_arn = (action == "AssumeRole").then(|| form_param(&params, "RoleArn")).flatten();
    let forward = |parts: hyper::http::request::Parts| {
        let uri = format!("{upstream}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        let client = client.clone();
        let body = body.clone();
        let (state, role_arn) = (state.clone(), role_arn.clone());
        async move {
            let mut request = Request::from_parts(parts, Full::new(body));
            *request.uri_mut() = uri.parse().expect("upstream URI");
            match client.request(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    if let Some(role_arn) = role_arn
                        && let Some(key) = xml_value(&String::from_utf8_lossy(&body), "AccessKeyId")
                    {
                        state.lock().unwrap().issued.push((role_arn, key));
                    }
                    Response::from_parts(parts, Full::new(body))
                }
                Err(e) => plain(StatusCode::BAD_GATEWAY, format!("fault proxy: upstream failed: {e}")),
            }
        }
    };
    match fault {
        None => Ok(forward(parts).await),
        Some(Fault::Denied) => Ok(query_error(
            &service,
            StatusCode::FORBIDDEN,
            "Sender",
            "AccessDenied",
            "User is not authorized to perform this operation (fault proxy)",
        )),
        Some(Fault::Drop) => Err(Dropped),
        Some(Fault::Throttle) => {
            Ok(query_error(&service, StatusCode::BAD_REQUEST, "Sender", "Throttling", "Rate exceeded"))
        }
        Some(Fault::ServerError) => {
            let (code, message) = match service.as_str() {
                IAM => (
                    "ServiceFailure",
                    "The request processing has failed because of an unknown error, exception or failure.",
                ),
                SNS => ("InternalError", "Indicates an internal service error."),
                _ => ("InternalFailure", "The request processing has failed because of an unknown error."),
            };
            Ok(query_error(&service, StatusCode::INTERNAL_SERVER_ERROR, "Receiver", code, message))
        }
        Some(Fault::Slow(delay)) => {
            let response = forward(parts).await;
            tokio::time::sleep(delay).await;
            Ok(response)
        }
    }
}

/// The service of a SigV4 `Authorization` header: `Credential=AKID/20250311/us-east-1/iam/aws4_request, ...`.
fn service_of(authorization: &str) -> Option<String> {
    let scope = authorization.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    let parts: Vec<&str> = scope.split('/').collect();
    (parts.len() == 5 && parts[4] == "aws4_request").then(|| parts[3].to_string())
}

/// The access key id of a SigV4 `Authorization` header.
fn access_key_of(authorization: &str) -> Option<String> {
    let scope = authorization.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    scope.split('/').next().map(str::to_string)
}

/// The text of the first `<name>` element of an XML body.
fn xml_value(body: &str, name: &str) -> Option<String> {
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].to_string())
}

/// One parameter of a form-encoded body (query protocol values here are plain; `%XX` is decoded for ids).
fn form_param(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.replace("%2F", "/").replace("%3A", ":"))
    })
}

/// The AWS query protocol's error response, as IAM, SNS and STS send it.
fn query_error(service: &str, status: StatusCode, kind: &str, code: &str, message: &str) -> Response<Full<Bytes>> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let request_id = format!("fa017000-0000-4000-8000-{:012x}", N.fetch_add(1, Ordering::Relaxed));
    let namespace = match service {
        IAM => r#" xmlns="https://iam.amazonaws.com/doc/2010-05-08/""#,
        SNS => r#" xmlns="http://sns.amazonaws.com/doc/2010-03-31/""#,
        STS => r#" xmlns="https://sts.amazonaws.com/doc/2011-06-15/""#,
        _ => "",
    };
    let body = format!(
        "<ErrorResponse{namespace}>\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{code}</Code>\n    \
         <Message>{message}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n"
    );
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/xml")
        .header("x-amzn-RequestId", request_id)
        .body(Full::new(Bytes::from(body)))
        .expect("an error response")
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    Response::builder().status(status).body(Full::new(Bytes::from(text))).expect("a plain response")
}

/// Short timeouts and backoffs for tests: a slow response (> 1 s) fails an attempt quickly, and a whole call
/// fails within a few seconds. The shape (standard retries, bounded attempts and calls) is the deployed one.
pub const TEST_SETTINGS: SdkSettings = SdkSettings {
    connect_timeout: Duration::from_millis(500),
    attempt_timeout: Duration::from_millis(1000),
    operation_timeout: Duration::from_millis(4000),
    max_attempts: 3,
    initial_backoff: Duration::from_millis(20),
    max_backoff: Duration::from_millis(200),
};

/// SDK configuration for `endpoint` (the proxy, or moto itself) with `settings` applied the way
/// `keyguard_aws::sdk_config()` applies the deployed ones.
pub async fn sdk_config_with(endpoint: &str, settings: SdkSettings) -> SdkConfig {
    settings
        .apply(
            aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(endpoint)
                .credentials_provider(aws_sdk_iam::config::Credentials::new(
                    "testing",
                    "testing",
                    None,
                    None,
                    "keyguard-tests",
                )),
        )
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_comes_from_the_credential_scope() {
        let header = "AWS4-HMAC-SHA256 Credential=testing/20250311/us-east-1/iam/aws4_request, \
                      SignedHeaders=content-type;host;x-amz-date, Signature=abc";
        assert_eq!(service_of(header).as_deref(), Some("iam"));
        assert_eq!(
            service_of("AWS4-HMAC-SHA256 Credential=k/20250311/us-east-1/sns/aws4_request,").as_deref(),
            Some("sns")
        );
        assert_eq!(service_of("Bearer token"), None);
    }

    #[test]
    fn rules_count_their_own_requests_and_the_first_applicable_decides() {
        let schedule = Schedule::none()
            .on_action(IAM, "UpdateAccessKey", When::Requests(1..=1), Fault::ServerError)
            .on(IAM, When::Requests(2..=3), Fault::Throttle);
        let mut state = State {
            counts: vec![0; schedule.rules.len()],
            schedule,
            installed: Instant::now(),
            seen: vec![],
            issued: vec![],
        };
        let got: Vec<Option<Fault>> = ["GetUser", "UpdateAccessKey", "UpdateAccessKey", "GetUser", "GetUser"]
            .iter()
            .map(|a| state.decide(IAM, a, "", "AKID"))
            .collect();
        assert_eq!(got, [None, Some(Fault::ServerError), Some(Fault::Throttle), None, None]);
        assert_eq!(state.decide(SNS, "Publish", "", "AKID"), None, "another service is not counted");
        assert_eq!(state.seen.len(), 6);
    }

    #[test]
    fn a_rule_may_match_one_parameter() {
        let arn = "arn:aws:iam::210987654321:role/KeyGuardMember";
        let schedule = Schedule::none().on_param(STS, "AssumeRole", "RoleArn", arn, When::Always, Fault::Denied);
        let mut state = State {
            counts: vec![0; schedule.rules.len()],
            schedule,
            installed: Instant::now(),
            seen: vec![],
            issued: vec![],
        };
        let other = "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A310987654321%3Arole%2FKeyGuardMember";
        let this = "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A210987654321%3Arole%2FKeyGuardMember";
        assert_eq!(state.decide(STS, "AssumeRole", other, "AKID"), None);
        assert_eq!(state.decide(STS, "AssumeRole", this, "AKID"), Some(Fault::Denied));
        assert_eq!(state.seen[1].access_key, "AKID");
    }

    #[test]
    fn the_signing_key_and_xml_values_are_read() {
        let header = "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20250311/us-east-1/iam/aws4_request, Signature=abc";
        assert_eq!(access_key_of(header).as_deref(), Some("ASIAEXAMPLE"));
        let body = "<AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId></Credentials></AssumeRoleResult>";
        assert_eq!(xml_value(body, "AccessKeyId").as_deref(), Some("ASIA1"));
        assert_eq!(xml_value(body, "SecretAccessKey"), None);
    }

    #[test]
    fn form_parameters_are_read_from_the_body() {
        let body = "Action=UpdateAccessKey&Version=2010-05-08&UserName=maria&AccessKeyId=AKIA1&Status=Inactive";
        assert_eq!(form_param(body, "Action").as_deref(), Some("UpdateAccessKey"));
        assert_eq!(form_param(body, "AccessKeyId").as_deref(), Some("AKIA1"));
        assert_eq!(form_param(body, "Missing"), None);
    }
}
