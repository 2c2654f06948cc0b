//! The Athena source over an `aws-smithy-mocks` client: partition discovery into the query, waiting for the
//! query, result pages (header row skipped), rows into findings. (moto's Athena answers one page and has no
//! `GetTableMetadata`: tests/replay_athena.rs covers the rest on moto.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_athena::operation::get_query_execution::GetQueryExecutionOutput;
use aws_sdk_athena::operation::get_query_results::GetQueryResultsOutput;
use aws_sdk_athena::operation::get_table_metadata::GetTableMetadataOutput;
use aws_sdk_athena::operation::start_query_execution::StartQueryExecutionOutput;
use aws_sdk_athena::types::{
    Column, ColumnInfo, Datum, QueryExecution, QueryExecutionState, QueryExecutionStatus, ResultSet, ResultSetMetadata,
    Row, TableMetadata,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use chrono::TimeDelta;
use keyguard_core::{Exemptions, Policy, Verdict};
use keyguard_replay::{ATHENA_COLUMNS, AthenaTable, Filter, Options, Source, replay, since_bound};
use serde_json::json;

fn row(cells: Vec<Option<String>>) -> Row {
    Row::builder()
        .set_data(Some(cells.into_iter().map(|c| Datum::builder().set_var_char_value(c).build()).collect()))
        .build()
}

/// A row of a CloudTrail call by an administrator, in the query's column order.
fn call(id: &str, name: &str, time: &str, user: &str, response: serde_json::Value) -> Row {
    let value = |alias: &str| -> Option<String> {
        Some(match alias {
            "event_id" => id.into(),
            "event_time" => time.into(),
            "event_source" => "iam.amazonaws.com".into(),
            "event_name" => name.into(),
            "recipient_account_id" => "111122223333".into(),
            "identity_type" => "IAMUser".into(),
            "identity_arn" => "arn:aws:iam::111122223333:user/admin".into(),
            "identity_user_name" => "admin".into(),
            "request_parameters" => json!({"userName": user}).to_string(),
            "response_elements" => response.to_string(),
            _ => return None,
        })
    };
    row(ATHENA_COLUMNS.iter().map(|(_, alias)| value(alias)).collect())
}

fn page(rows: Vec<Row>, next: Option<&str>) -> GetQueryResultsOutput {
    let info = ATHENA_COLUMNS
        .iter()
        .map(|(_, alias)| ColumnInfo::builder().name(*alias).r#type("varchar").build().unwrap())
        .collect();
    let meta = ResultSetMetadata::builder().set_column_info(Some(info)).build();
    GetQueryResultsOutput::builder()
        .result_set(ResultSet::builder().result_set_metadata(meta).set_rows(Some(rows)).build())
        .set_next_token(next.map(str::to_string))
        .build()
}

fn execution(state: QueryExecutionState) -> GetQueryExecutionOutput {
    GetQueryExecutionOutput::builder()
        .query_execution(
            QueryExecution::builder()
                .query_execution_id("q-1")
                .status(QueryExecutionStatus::builder().state(state).state_change_reason("test").build())
                .build(),
        )
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_of_a_partitioned_table_become_findings() {
    let metadata = mock!(aws_sdk_athena::Client::get_table_metadata).then_output(|| {
        GetTableMetadataOutput::builder()
            .table_metadata(
                TableMetadata::builder()
                    .name("cloudtrail_logs_pp")
                    .partition_keys(Column::builder().name("timestamp").r#type("string").build().unwrap())
                    .parameters("projection.enabled", "true")
                    .parameters("projection.timestamp.type", "date")
                    .parameters("projection.timestamp.format", "yyyy/MM/dd")
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let sent = Arc::new(Mutex::new(String::new()));
    let seen = sent.clone();
    let start = mock!(aws_sdk_athena::Client::start_query_execution).then_compute_output(move |req| {
        *seen.lock().unwrap() = req.query_string().unwrap_or_default().to_string();
        StartQueryExecutionOutput::builder().query_execution_id("q-1").build()
    });
    let status = mock!(aws_sdk_athena::Client::get_query_execution)
        .sequence()
        .output(|| execution(QueryExecutionState::Queued))
        .output(|| execution(QueryExecutionState::Running))
        .output(|| execution(QueryExecutionState::Succeeded))
        .build();
    let header = row(ATHENA_COLUMNS.iter().map(|(_, a)| Some(a.to_string())).collect());
    let first = mock!(aws_sdk_athena::Client::get_query_results)
        .match_requests(|r| r.next_token().is_none())
        .then_output(move || {
            let key = json!({"accessKey": {"userName": "maria", "accessKeyId": "AKIAMARIA", "status": "Active"}});
            page(vec![header.clone(), call("3", "CreateAccessKey", "2025-03-11T14:03:15Z", "maria", key)], Some("p2"))
        });
    let second = mock!(aws_sdk_athena::Client::get_query_results)
        .match_requests(|r| r.next_token() == Some("p2"))
        .then_output(|| {
            let user = json!({"user": {"userName": "maria", "userId": "AIDAMARIA", "path": "/"}});
            page(
                vec![
                    call("1", "CreateUser", "2025-03-11T14:02:07Z", "maria", user),
                    call("2", "CreateLoginProfile", "2025-03-11T14:02:08Z", "maria", json!({})),
                ],
                None,
            )
        });
    let client = mock_client!(aws_sdk_athena, RuleMode::MatchAny, [&metadata, &start, &status, &first, &second]);
    let table =
        AthenaTable::new(client, "cloudtrail_logs_pp", Some("security")).unwrap().poll_every(Duration::from_millis(1));
    let sources: Vec<Box<dyn Source>> = vec![Box::new(table)];
    let policy = Policy { window: TimeDelta::minutes(10), exemptions: Exemptions::none() };
    let options = Options {
        filter: Filter { since: Some(since_bound("2025-03-11").unwrap()), ..Filter::default() },
        ..Options::new(policy)
    };
    let replayed = replay(&sources, &options).await.unwrap();

    let query = sent.lock().unwrap().clone();
    assert!(query.contains("\"timestamp\" >= '2025/03/10'"), "the date partition narrows the scan: {query}");
    assert_eq!(status.num_calls(), 3, "waited until the query succeeded");
    assert_eq!(second.num_calls(), 1, "the second page was read");
    assert_eq!(replayed.stats.records, 3, "the header row is not a record");
    assert_eq!(replayed.rows.len(), 1);
    let r = &replayed.rows[0];
    assert_eq!(
        (r.user.as_str(), r.access_key_id.as_deref(), r.verdict),
        ("maria", Some("AKIAMARIA"), Verdict::Violation)
    );
    assert_eq!(r.creator.as_deref(), Some("arn:aws:iam::111122223333:user/admin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_query_is_an_error_that_says_why() {
    let metadata = mock!(aws_sdk_athena::Client::get_table_metadata)
        .then_error(|| aws_sdk_athena::operation::get_table_metadata::GetTableMetadataError::unhandled("denied"));
    let start = mock!(aws_sdk_athena::Client::start_query_execution)
        .then_output(|| StartQueryExecutionOutput::builder().query_execution_id("q-1").build());
    let status = mock!(aws_sdk_athena::Client::get_query_execution).then_output(|| {
        GetQueryExecutionOutput::builder()
            .query_execution(
                QueryExecution::builder()
                    .status(
                        QueryExecutionStatus::builder()
                            .state(QueryExecutionState::Failed)
                            .state_change_reason("TABLE_NOT_FOUND: line 2:6: Table 'security.nope' does not exist")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let client = mock_client!(aws_sdk_athena, RuleMode::MatchAny, [&metadata, &start, &status]);
    let table = AthenaTable::new(client, "nope", Some("security")).unwrap();
    let sources: Vec<Box<dyn Source>> = vec![Box::new(table)];
    let policy = Policy { window: TimeDelta::minutes(10), exemptions: Exemptions::none() };
    let err = replay(&sources, &Options::new(policy)).await.unwrap_err();
    assert!(err.to_string().contains("TABLE_NOT_FOUND"), "{err}");
}
