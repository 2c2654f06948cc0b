//! moto's Athena: result sets are registered before a query runs (POST `/moto-api/static/athena/query-results`,
//! moto 5.2.5's athena/models.py), and each new query takes the next one. They are built here from CloudTrail
//! records the way Athena's standard CloudTrail table returns them: names in lower case (Hive), struct fields by
//! path, `requestParameters`/`responseElements` as the JSON text the table declares them (STRING), a header row
//! first.

use std::io::{Read, Write};
use std::net::TcpStream;

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// What the query's WHERE keeps: successful calls of the timeline, in range and accounts.
pub fn query_keeps(
    record: &Value,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    accounts: &[&str],
) -> bool {
    let text = |k: &str| record[k].as_str().unwrap_or("");
    let time = DateTime::parse_from_rfc3339(text("eventTime")).map(|t| t.with_timezone(&Utc)).ok();
    text("eventSource") == "iam.amazonaws.com"
        && ["CreateUser", "DeleteUser", "CreateLoginProfile", "CreateAccessKey"].contains(&text("eventName"))
        && record.get("errorCode").is_none_or(Value::is_null)
        && since.is_none_or(|s| time.is_some_and(|t| t >= s))
        && until.is_none_or(|u| time.is_some_and(|t| t <= u))
        && (accounts.is_empty() || accounts.contains(&text("recipientAccountId")))
}

/// The value at a dotted column path (`useridentity.sessioncontext.sessionissuer.arn`), matched case-insensitively.
fn at<'v>(record: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(record, |v, part| v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(part)).map(|(_, v)| v))
}

/// One result row: a string column as it is, a struct or array as its JSON text, null or missing as no value.
fn row(record: &Value, columns: &[(&str, &str)]) -> Value {
    let data: Vec<Value> = columns
        .iter()
        .map(|(path, _)| match at(record, path) {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) => json!({"VarCharValue": s}),
            Some(other) => json!({"VarCharValue": other.to_string()}),
        })
        .collect();
    json!({"Data": data})
}

/// The result set of a query selecting `columns` (`(column path, alias)`) over `records`: header row first.
pub fn result_set(records: &[&Value], columns: &[(&str, &str)]) -> Value {
    let header: Vec<Value> = columns.iter().map(|(_, alias)| json!({"VarCharValue": alias})).collect();
    let mut rows = vec![json!({"Data": header})];
    rows.extend(records.iter().map(|r| row(r, columns)));
    let info: Vec<Value> = columns
        .iter()
        .map(|(_, alias)| {
            json!({"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": alias,
                                 "Label": alias, "Type": "varchar", "Precision": 2147483647, "Scale": 0,
                                 "Nullable": "UNKNOWN", "CaseSensitive": true})
        })
        .collect();
    json!({"rows": rows, "column_info": info})
}

/// Queues result sets in moto: the next queries answer with them, in order.
pub fn register(endpoint: &str, result_sets: &[Value]) -> Result<()> {
    let body = serde_json::to_vec(&json!({"results": result_sets}))?;
    let host = endpoint.strip_prefix("http://").context("an http:// endpoint")?;
    let mut stream = TcpStream::connect(host)?;
    write!(
        stream,
        "POST /moto-api/static/athena/query-results HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    ensure!(answer.split_whitespace().nth(1) == Some("201"), "moto refused the result set: {answer}");
    Ok(())
}
