#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `SdkSecurityHub` over `aws-smithy-mocks` clients: the SDK really serializes each request and deserializes each
//! wire error (Security Hub's REST-JSON bodies), so batching, retries and the not-enabled outcome are tested
//! against what the SDK produces. SDK retries are off: every call the adapter makes is counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_securityhub::operation::batch_import_findings::BatchImportFindingsOutput;
use aws_sdk_securityhub::operation::get_findings::GetFindingsOutput;
use aws_sdk_securityhub::types::{ComplianceStatus, ImportFindingsError, RecordState, SeverityLabel};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::retry::RetryConfig;
use chrono::{DateTime, TimeZone, Utc};
use keyguard_aws::AwsErrorKind;
use keyguard_aws::securityhub::{Backoff, ImportOutcome, Listing, SdkSecurityHub, to_sdk};
use keyguard_core::asff::{FindingState, SecurityFinding};
use keyguard_core::{Action, AlertFacts, Principal, Verdict};

const ACCOUNT: &str = "111122223333";

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 11, h, m, s).single().unwrap()
}

fn facts(key: &str) -> AlertFacts {
    AlertFacts {
        account: ACCOUNT.into(),
        user_name: "maria.silva".into(),
        user_arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/maria.silva")),
        user_created: at(14, 2, 7),
        access_key_id: key.into(),
        key_created: at(14, 3, 15),
        has_password: true,
        creator: Some(Principal {
            kind: "AssumedRole".into(),
            arn: Some(format!("arn:aws:sts::{ACCOUNT}:assumed-role/admin/priya")),
            account_id: Some(ACCOUNT.into()),
            user_name: None,
            issuer_arn: None,
            invoked_by: None,
        }),
        source_ip: Some("203.0.113.7".into()),
        user_agent: Some("aws-cli/2.15.30".into()),
        event_id: "evt-1".into(),
        event_name: "CreateAccessKey".into(),
        verdict: Verdict::Violation,
        reason: "access key created 1m 08s after the user, by admin (not the user)".into(),
        action: Action::Notified,
        note: None,
        kind: keyguard_core::AlertKind::Finding,
        account_alias: None,
        exempt_tag: ("keyguard:exempt".into(), "true".into()),
    }
}

fn finding(key: &str) -> SecurityFinding {
    SecurityFinding::new(&facts(key), at(15, 0, 0), "us-east-1", FindingState::Active)
}

fn findings(n: usize) -> Vec<SecurityFinding> {
    (0..n).map(|i| finding(&format!("AKIAEXAMPLE{i:09}"))).collect()
}

fn hub(rules: &[&Rule]) -> SdkSecurityHub {
    let client =
        mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, rules, |c| c.retry_config(RetryConfig::disabled()));
    SdkSecurityHub::new(client).with_backoff(Backoff {
        attempts: 4,
        first: Duration::from_millis(1),
        max: Duration::from_millis(4),
    })
}

/// A REST-JSON error body as Security Hub sends it.
fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"__type": code, "Message": message}).to_string()
}

fn accepted(n: usize) -> BatchImportFindingsOutput {
    BatchImportFindingsOutput::builder().success_count(n as i32).failed_count(0).build()
}

#[tokio::test]
async fn not_enabled_is_an_outcome_not_an_error() {
    let message = "Account 111122223333 is not subscribed to AWS Security Hub";
    let import = mock!(aws_sdk_securityhub::Client::batch_import_findings)
        .sequence()
        .http_status(401, Some(error_body("InvalidAccessException", message)))
        .build();
    let outcome = hub(&[&import]).import(&findings(3)).await.expect("not an error");
    assert_eq!(outcome, ImportOutcome::NotEnabled { message: message.into() });
    assert_eq!(import.num_calls(), 1, "not retried");

    let get = mock!(aws_sdk_securityhub::Client::get_findings)
        .sequence()
        .http_status(401, Some(error_body("InvalidAccessException", message)))
        .build();
    match hub(&[&get]).keyguard_findings().await.expect("not an error") {
        Listing::NotEnabled { message: m } => assert_eq!(m, message),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn throttling_is_retried_with_backoff() {
    let import = mock!(aws_sdk_securityhub::Client::batch_import_findings)
        .sequence()
        .http_status(429, Some(error_body("TooManyRequestsException", "Rate exceeded")))
        .times(2)
        .http_status(429, Some(error_body("LimitExceededException", "throttling limits")))
        .output(|| accepted(2))
        .build();
    let outcome = hub(&[&import]).import(&findings(2)).await.unwrap();
    assert_eq!(outcome, ImportOutcome::Imported { imported: 2, failed: vec![], requests: 4 });
    assert_eq!(import.num_calls(), 4, "two TooManyRequests, one LimitExceeded, then accepted");
}

#[tokio::test]
async fn throttled_past_the_retries_is_a_throttled_error() {
    let import = mock!(aws_sdk_securityhub::Client::batch_import_findings)
        .sequence()
        .http_status(429, Some(error_body("TooManyRequestsException", "Rate exceeded")))
        .repeatedly()
        .build();
    let e = hub(&[&import]).import(&findings(1)).await.unwrap_err();
    assert_eq!((e.operation, e.kind), ("securityhub:BatchImportFindings", AwsErrorKind::Throttled), "{e}");
    assert_eq!(import.num_calls(), 4, "Backoff.attempts calls in all");
}

#[tokio::test]
async fn other_errors_are_not_retried() {
    let import = mock!(aws_sdk_securityhub::Client::batch_import_findings)
        .sequence()
        .http_status(400, Some(error_body("InvalidInputException", "bad finding")))
        .repeatedly()
        .build();
    let e = hub(&[&import]).import(&findings(1)).await.unwrap_err();
    assert_eq!(e.kind, AwsErrorKind::Other);
    assert!(e.message.contains("InvalidInputException"), "{e}");
    assert_eq!(import.num_calls(), 1);
}

#[tokio::test]
async fn two_hundred_fifty_findings_go_in_three_calls_of_at_most_one_hundred() {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let record = sizes.clone();
    let import = mock!(aws_sdk_securityhub::Client::batch_import_findings).then_compute_output(move |input| {
        record.lock().unwrap().push(input.findings().len());
        accepted(input.findings().len())
    });
    let outcome = hub(&[&import]).import(&findings(250)).await.unwrap();
    assert_eq!(outcome, ImportOutcome::Imported { imported: 250, failed: vec![], requests: 3 });
    assert_eq!(*sizes.lock().unwrap(), vec![100, 100, 50]);
    assert_eq!(import.num_calls(), 3);
}

#[tokio::test]
async fn refused_findings_are_reported_one_by_one() {
    let import = mock!(aws_sdk_securityhub::Client::batch_import_findings).then_output(|| {
        BatchImportFindingsOutput::builder()
            .success_count(1)
            .failed_count(1)
            .failed_findings(
                ImportFindingsError::builder()
                    .id("keyguard/cis-1.11/111122223333/AKIAEXAMPLE000000001")
                    .error_code("InvalidInput")
                    .error_message("Finding does not adhere to Amazon Finding Format")
                    .build(),
            )
            .build()
    });
    let ImportOutcome::Imported { imported, failed, requests } = hub(&[&import]).import(&findings(2)).await.unwrap()
    else {
        panic!("imported")
    };
    assert_eq!((imported, requests), (1, 1));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, "keyguard/cis-1.11/111122223333/AKIAEXAMPLE000000001");
    assert_eq!(failed[0].code, "InvalidInput");
}

#[tokio::test]
async fn the_request_carries_the_asff_finding() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    let import = mock!(aws_sdk_securityhub::Client::batch_import_findings).then_compute_output(move |input| {
        record.lock().unwrap().extend(input.findings().to_vec());
        accepted(input.findings().len())
    });
    let mut deactivated = facts("AKIAEXAMPLE000000042");
    deactivated.action = Action::Deactivated;
    let core = SecurityFinding::new(&deactivated, at(15, 0, 0), "us-east-1", FindingState::of(&deactivated));
    hub(&[&import]).import(std::slice::from_ref(&core)).await.unwrap();
    let sent = sent.lock().unwrap();
    let f = &sent[0];
    assert_eq!(f.id(), Some("keyguard/cis-1.11/111122223333/AKIAEXAMPLE000000042"));
    assert_eq!(f.product_arn(), Some("arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default"));
    assert_eq!(f.compliance().unwrap().status(), Some(&ComplianceStatus::Passed));
    assert_eq!(f.severity().unwrap().label(), Some(&SeverityLabel::Informational));
    assert_eq!(f.finding_provider_fields().unwrap().severity().unwrap().label(), Some(&SeverityLabel::Informational));
    assert_eq!(f.record_state(), Some(&RecordState::Active));
    assert!(f.workflow().is_none() && f.note().is_none() && f.user_defined_fields().is_none());
    let key = f.resources()[0].details().unwrap().aws_iam_access_key().unwrap();
    assert_eq!(key.status().map(|s| s.as_str()), Some("Inactive"));
    assert_eq!(key.principal_name(), Some("maria.silva"));
    assert_eq!(f.resources()[1].details().unwrap().aws_iam_user().unwrap().user_name(), Some("maria.silva"));
    assert_eq!(
        f.product_fields().unwrap()["keyguard/CreatorArn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/admin/priya")
    );
    assert_eq!(f, &to_sdk(&core));
}

#[tokio::test]
async fn only_keyguard_active_findings_are_listed_across_pages() {
    let ours = to_sdk(&finding("AKIAEXAMPLE000000001"));
    let mut archived = finding("AKIAEXAMPLE000000002");
    archived.record_state = keyguard_core::asff::RecordState::Archived;
    let archived = to_sdk(&archived);
    let mut foreign = finding("AKIAEXAMPLE000000003");
    foreign.generator_id = "security-control/IAM.3".into();
    foreign.id = "arn:aws:securityhub:us-east-1:111122223333:security-control/IAM.3/finding/1".into();
    let foreign = to_sdk(&foreign);
    let requests = Arc::new(Mutex::new(Vec::new()));
    let record = requests.clone();
    let pages = mock!(aws_sdk_securityhub::Client::get_findings).then_compute_output(move |input| {
        record.lock().unwrap().push(input.clone());
        match input.next_token() {
            None => {
                GetFindingsOutput::builder().findings(ours.clone()).findings(foreign.clone()).next_token("p2").build()
            }
            Some(_) => GetFindingsOutput::builder().findings(archived.clone()).build(),
        }
    });
    let Listing::Findings(found) = hub(&[&pages]).keyguard_findings().await.unwrap() else { panic!("enabled") };
    assert_eq!(
        found.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        ["keyguard/cis-1.11/111122223333/AKIAEXAMPLE000000001"]
    );
    let facts = found[0].facts.as_ref().expect("facts from ProductFields");
    assert_eq!(facts.access_key_id, "AKIAEXAMPLE000000001");
    assert_eq!(found[0].compliance_status.as_deref(), Some("FAILED"));
    assert_eq!(pages.num_calls(), 2, "both pages read");
    let first = &requests.lock().unwrap()[0];
    let filters = first.filters().expect("filters sent");
    assert_eq!(filters.generator_id()[0].value(), Some(keyguard_core::asff::GENERATOR_ID));
    assert_eq!(filters.record_state()[0].value(), Some("ACTIVE"));
}

/// Reading a page of findings runs the SDK's real JSON deserializer. Its `ResourceDetails` reader (some 150
/// resource types in one function) needs far more stack in a debug build than in release: this test reads a full
/// page of 100 findings on a thread with the stack of a tokio worker (2 MiB) in release builds, and on a large one
/// in debug builds.
#[test]
fn a_full_page_of_findings_is_read_on_a_worker_sized_stack() {
    let page = serde_json::json!({
        "Findings": findings(100).iter().map(SecurityFinding::to_json).collect::<Vec<_>>(),
    })
    .to_string();
    let stack = if cfg!(debug_assertions) { 64 << 20 } else { 2 << 20 };
    let listed = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || {
            let get = mock!(aws_sdk_securityhub::Client::get_findings).then_http_response(move || {
                aws_sdk_securityhub::config::http::HttpResponse::new(
                    200.try_into().unwrap(),
                    aws_smithy_types::body::SdkBody::from(page.clone()),
                )
            });
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(hub(&[&get]).keyguard_findings()).unwrap()
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    let Listing::Findings(found) = listed else { panic!("enabled") };
    assert_eq!(found.len(), 100);
    assert!(found.iter().all(|f| f.facts.is_some()));
}
