//! An Athena table over CloudTrail logs: one query keeps the few successful IAM calls a timeline uses, in the
//! range and accounts asked for; its result pages are turned back into CloudTrail records and read by the same
//! parser as log files.
//!
//! The table is the standard CloudTrail table of the Athena documentation (`userIdentity` a struct,
//! `requestParameters`/`responseElements` JSON strings). When it uses partition projection, its date partition
//! (`projection.<col>.type = date`) and account partition (`${<col>}/CloudTrail` in `storage.location.template`)
//! narrow the scan; they are found with `GetTableMetadata`, and without it the query scans the whole table.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_athena::Client;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use keyguard_core::timeline::EVENT_NAMES;
use keyguard_core::{IamCall, parse_record};
use serde_json::{Map, Value, json};

use crate::engine::{Context, Harvest};
use crate::{Filter, ReplayError, Source};

/// The catalog of tables defined in AWS Glue (Athena's default).
const CATALOG: &str = "AwsDataCatalog";

/// The columns the query selects (`column AS name`), in order: the CloudTrail fields the parser reads.
pub const COLUMNS: [(&str, &str); 16] = [
    ("eventid", "event_id"),
    ("eventtime", "event_time"),
    ("eventsource", "event_source"),
    ("eventname", "event_name"),
    ("recipientaccountid", "recipient_account_id"),
    ("awsregion", "aws_region"),
    ("sourceipaddress", "source_ip_address"),
    ("useragent", "user_agent"),
    ("useridentity.type", "identity_type"),
    ("useridentity.arn", "identity_arn"),
    ("useridentity.accountid", "identity_account_id"),
    ("useridentity.username", "identity_user_name"),
    ("useridentity.invokedby", "identity_invoked_by"),
    ("useridentity.sessioncontext.sessionissuer.arn", "identity_issuer_arn"),
    ("requestparameters", "request_parameters"),
    ("responseelements", "response_elements"),
];

/// A CloudTrail table in Athena.
#[derive(Debug, Clone)]
pub struct AthenaTable {
    client: Client,
    database: String,
    table: String,
    workgroup: Option<String>,
    output: Option<String>,
    /// The first wait between two looks at a running query (doubling up to 2 s).
    poll: Duration,
}

impl AthenaTable {
    /// `table` is `TABLE` or `DATABASE.TABLE`; `database` defaults to `default`. Names are Glue identifiers
    /// (letters, digits, `_`, `-`): anything else is refused, so the query text cannot be changed by a name.
    pub fn new(client: Client, table: &str, database: Option<&str>) -> Result<AthenaTable, ReplayError> {
        let (db, table) = match table.split_once('.') {
            Some((db, t)) => {
                if database.is_some_and(|d| d != db) {
                    return Err(usage(format!("--athena {db}.{t} and --database {} disagree", database.unwrap_or(""))));
                }
                (db, t)
            }
            None => (database.unwrap_or("default"), table),
        };
        Ok(AthenaTable {
            client,
            database: identifier(db)?.to_string(),
            table: identifier(table)?.to_string(),
            workgroup: None,
            output: None,
            poll: Duration::from_millis(200),
        })
    }

    /// The workgroup the query runs in (its settings may also give the output location).
    pub fn workgroup(mut self, workgroup: Option<&str>) -> Result<AthenaTable, ReplayError> {
        self.workgroup = workgroup.map(|w| identifier(w).map(str::to_string)).transpose()?;
        Ok(self)
    }

    /// Where Athena writes the query's results (`s3://bucket/prefix/`), unless the workgroup says.
    pub fn output(mut self, output: Option<&str>) -> Result<AthenaTable, ReplayError> {
        if let Some(o) = output
            && !o.starts_with("s3://")
        {
            return Err(usage(format!("--output {o}: an S3 URL (s3://bucket/prefix/) is expected")));
        }
        self.output = output.map(str::to_string);
        Ok(self)
    }

    /// The first wait between two looks at a running query.
    pub fn poll_every(mut self, poll: Duration) -> AthenaTable {
        self.poll = poll;
        self
    }

    /// The table's partition projection, or none when it cannot be read (logged).
    async fn partitions(&self) -> Partitions {
        let out = self
            .client
            .get_table_metadata()
            .catalog_name(CATALOG)
            .database_name(&self.database)
            .table_name(&self.table)
            .send()
            .await;
        match out {
            Ok(out) => match out.table_metadata() {
                Some(meta) => {
                    let keys: Vec<&str> = meta.partition_keys().iter().map(|c| c.name()).collect();
                    let empty = HashMap::new();
                    Partitions::of(&keys, meta.parameters().unwrap_or(&empty))
                }
                None => Partitions::default(),
            },
            Err(e) => {
                tracing::warn!(
                    table = %format!("{}.{}", self.database, self.table),
                    problem = %aws_error(&e),
                    "GetTableMetadata failed: the query cannot use the table's partitions and scans all of it"
                );
                Partitions::default()
            }
        }
    }

    async fn run(&self, context: &Context) -> Result<Harvest, ReplayError> {
        let partitions = self.partitions().await;
        let sql = query(&self.database, &self.table, &partitions, &context.filter)?;
        tracing::info!(query = sql.as_str(), "athena query");
        let mut start = self
            .client
            .start_query_execution()
            .query_string(&sql)
            .query_execution_context(QueryExecutionContext::builder().catalog(CATALOG).database(&self.database).build())
            .set_work_group(self.workgroup.clone());
        if let Some(output) = &self.output {
            start = start.result_configuration(ResultConfiguration::builder().output_location(output).build());
        }
        let started = start.send().await.map_err(|e| athena("StartQueryExecution", &e))?;
        let id = started
            .query_execution_id()
            .ok_or_else(|| ReplayError::Athena("StartQueryExecution returned no query id".into()))?
            .to_string();
        self.wait(&id).await?;

        let mut harvest = Harvest::default();
        let mut pages =
            self.client.get_query_results().query_execution_id(&id).max_results(1000).into_paginator().send();
        let mut first = true;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| athena("GetQueryResults", &e))?;
            let Some(set) = page.result_set() else { continue };
            let names: Vec<&str> = set
                .result_set_metadata()
                .map(|m| m.column_info().iter().map(|c| c.name()).collect())
                .unwrap_or_default();
            let mut calls = Vec::new();
            for (i, row) in set.rows().iter().enumerate() {
                let cells: Vec<Option<&str>> = row.data().iter().map(|d| d.var_char_value()).collect();
                // The first row of the first page repeats the column names.
                if first && i == 0 && cells.iter().zip(&names).all(|(c, n)| c.is_some_and(|c| c == *n)) {
                    continue;
                }
                harvest.stats.records += 1;
                match call_of(&names, &cells) {
                    Ok(call) => calls.push(call),
                    Err(problem) => {
                        tracing::warn!(
                            query = id.as_str(),
                            row = harvest.stats.records,
                            problem = problem.as_str(),
                            "unreadable row skipped"
                        );
                        harvest.stats.errors += 1;
                    }
                }
            }
            first = false;
            harvest.calls(calls, context);
        }
        Ok(harvest)
    }

    /// Waits for the query to finish; an error when it failed or was cancelled.
    async fn wait(&self, id: &str) -> Result<(), ReplayError> {
        let mut pause = self.poll;
        loop {
            let out = self
                .client
                .get_query_execution()
                .query_execution_id(id)
                .send()
                .await
                .map_err(|e| athena("GetQueryExecution", &e))?;
            let execution = out.query_execution();
            let status = execution.and_then(|e| e.status());
            match status.and_then(|s| s.state()) {
                Some(QueryExecutionState::Succeeded) => {
                    let scanned = execution.and_then(|e| e.statistics()).and_then(|s| s.data_scanned_in_bytes());
                    tracing::info!(query = id, scanned_bytes = scanned.unwrap_or(0), "athena query succeeded");
                    return Ok(());
                }
                Some(state @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => {
                    let reason = status.and_then(|s| s.state_change_reason()).unwrap_or("no reason given");
                    return Err(ReplayError::Athena(format!("query {id} {}: {reason}", state.as_str())));
                }
                _ => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

impl Source for AthenaTable {
    fn name(&self) -> String {
        format!("athena:{}.{}", self.database, self.table)
    }

    fn read<'a>(&'a self, context: &'a Context) -> BoxFuture<'a, Result<Harvest, ReplayError>> {
        Box::pin(self.run(context))
    }
}

/// The partition projection columns the query can narrow the scan with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partitions {
    /// The date partition and its format as chrono writes it (`%Y/%m/%d` for `yyyy/MM/dd`).
    pub date: Option<(String, String)>,
    /// The partition holding the account id.
    pub account: Option<String>,
}

impl Partitions {
    /// From the table's partition keys and parameters (`TBLPROPERTIES`).
    pub fn of(keys: &[&str], parameters: &HashMap<String, String>) -> Partitions {
        let param = |key: &str, what: &str| parameters.get(&format!("projection.{key}.{what}")).map(String::as_str);
        let template = parameters.get("storage.location.template").map(String::as_str).unwrap_or("");
        let mut partitions = Partitions::default();
        for key in keys.iter().copied() {
            // A name that is not a plain identifier is not used at all (it would have to go into the query).
            if identifier(key).is_err() {
                continue;
            }
            if param(key, "type") == Some("date")
                && let Some(format) = param(key, "format").and_then(chrono_format)
            {
                partitions.date.get_or_insert((key.to_string(), format));
            }
            if template.contains(&format!("${{{key}}}/CloudTrail")) {
                partitions.account.get_or_insert(key.to_string());
            }
        }
        partitions
    }
}

/// A projection date format (Java's `DateTimeFormatter` letters) in chrono's terms, for the few letters CloudTrail
/// tables use; None for anything else (then the partition is not used).
fn chrono_format(java: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = java;
    while !rest.is_empty() {
        let (token, to) = [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H")]
            .into_iter()
            .find(|(t, _)| rest.starts_with(t))
            .unwrap_or(("", ""));
        if !token.is_empty() {
            out.push_str(to);
            rest = &rest[token.len()..];
            continue;
        }
        let c = rest.chars().next()?;
        if c.is_ascii_alphanumeric() || c == '\'' || c == '%' {
            return None;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// The query: the calls a timeline uses, successful, in the range and accounts asked for.
///
/// Time bounds compare `eventTime` itself; the date partition, when there is one, is bounded a day wider on each
/// side, as the local reader's date folders are (a partition is the day CloudTrail delivered a file, not the day
/// of its calls).
pub fn query(database: &str, table: &str, partitions: &Partitions, filter: &Filter) -> Result<String, ReplayError> {
    let columns: Vec<String> = COLUMNS.iter().map(|(c, a)| format!("{c} AS {a}")).collect();
    let names: Vec<String> = EVENT_NAMES.iter().map(|n| literal(n)).collect();
    let mut conditions = vec![
        "eventsource = 'iam.amazonaws.com'".to_string(),
        format!("eventname IN ({})", names.join(", ")),
        "errorcode IS NULL".to_string(),
    ];
    let instant = |t: DateTime<Utc>| format!("from_iso8601_timestamp({})", literal(&t.to_rfc3339()));
    if let Some(since) = filter.since {
        conditions.push(format!("from_iso8601_timestamp(eventtime) >= {}", instant(since)));
    }
    if let Some(until) = filter.until {
        conditions.push(format!("from_iso8601_timestamp(eventtime) <= {}", instant(until)));
    }
    if !filter.accounts.is_empty() {
        for account in &filter.accounts {
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(usage(format!("--account {account}: an account id is 12 digits")));
            }
        }
        let list = filter.accounts.iter().map(|a| literal(a)).collect::<Vec<_>>().join(", ");
        conditions.push(format!("recipientaccountid IN ({list})"));
        if let Some(column) = &partitions.account {
            conditions.push(format!("{} IN ({list})", quoted(column)));
        }
    }
    if let Some((column, format)) = &partitions.date {
        if let Some(since) = filter.since {
            let day = (since - TimeDelta::days(1)).date_naive().and_hms_opt(0, 0, 0).unwrap_or_default();
            conditions.push(format!("{} >= {}", quoted(column), literal(&day.format(format).to_string())));
        }
        if let Some(until) = filter.until {
            // The last partition value of the day after.
            let day = (until + TimeDelta::days(1)).date_naive().and_hms_opt(23, 0, 0).unwrap_or_default();
            conditions.push(format!("{} <= {}", quoted(column), literal(&day.format(format).to_string())));
        }
    }
    Ok(format!(
        "SELECT {}\nFROM {}.{}\nWHERE {}",
        columns.join(", "),
        quoted(database),
        quoted(table),
        conditions.join("\n  AND ")
    ))
}

/// A Glue name as the query may hold it: 1 to 255 letters, digits, `_` or `-`.
fn identifier(name: &str) -> Result<&str, ReplayError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(name) } else { Err(usage(format!("{name:?} is not an Athena name (letters, digits, _ and - only)"))) }
}

/// An identifier in double quotes (already checked by [`identifier`]; quotes doubled all the same).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal: single quotes, with any quote inside doubled.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// One result row back into a CloudTrail record, through the core's parser.
fn call_of(names: &[&str], cells: &[Option<&str>]) -> Result<IamCall, String> {
    let cell = |name: &str| names.iter().position(|n| *n == name).and_then(|i| cells.get(i).copied().flatten());
    let text = |name: &str| cell(name).filter(|v| !v.is_empty()).map(|v| Value::String(v.to_string()));
    // JSON strings of the table; a value that is not JSON is kept out rather than guessed at.
    let document = |name: &str| cell(name).and_then(|v| serde_json::from_str::<Value>(v).ok()).unwrap_or(Value::Null);
    let mut identity = Map::new();
    for (field, column) in [
        ("type", "identity_type"),
        ("arn", "identity_arn"),
        ("accountId", "identity_account_id"),
        ("userName", "identity_user_name"),
        ("invokedBy", "identity_invoked_by"),
    ] {
        if let Some(v) = text(column) {
            identity.insert(field.into(), v);
        }
    }
    if let Some(issuer) = text("identity_issuer_arn") {
        identity.insert("sessionContext".into(), json!({"sessionIssuer": {"arn": issuer}}));
    }
    let mut record = Map::new();
    for (field, column) in [
        ("eventID", "event_id"),
        ("eventTime", "event_time"),
        ("eventSource", "event_source"),
        ("eventName", "event_name"),
        ("recipientAccountId", "recipient_account_id"),
        ("awsRegion", "aws_region"),
        ("sourceIPAddress", "source_ip_address"),
        ("userAgent", "user_agent"),
    ] {
        if let Some(v) = text(column) {
            record.insert(field.into(), v);
        }
    }
    record.insert("userIdentity".into(), Value::Object(identity));
    record.insert("requestParameters".into(), document("request_parameters"));
    record.insert("responseElements".into(), document("response_elements"));
    parse_record(&Value::Object(record), None, None).map_err(str::to_string)
}

fn usage(problem: String) -> ReplayError {
    ReplayError::Usage(problem)
}

fn athena<E, R>(operation: &str, e: &aws_sdk_athena::error::SdkError<E, R>) -> ReplayError
where
    E: aws_sdk_athena::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    ReplayError::Athena(format!("{operation}: {}", aws_error(e)))
}

/// An SDK error with its service code and message (its Display is only "service error").
fn aws_error<E, R>(e: &aws_sdk_athena::error::SdkError<E, R>) -> String
where
    E: aws_sdk_athena::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(s) => format!("{}: {}", s.code().unwrap_or("error"), s.message().unwrap_or("(no message)")),
        None => format!("{}", aws_sdk_athena::error::DisplayErrorContext(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::filter::{since_bound, until_bound};

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn partition_projection_is_read_from_the_table_properties() {
        // The Athena documentation's organization table: account, region and date projected.
        let p = params(&[
            ("projection.enabled", "true"),
            ("projection.timestamp.type", "date"),
            ("projection.timestamp.format", "yyyy/MM/dd"),
            ("projection.account.type", "enum"),
            ("projection.region.type", "enum"),
            ("storage.location.template", "s3://bucket/AWSLogs/o-abc123/${account}/CloudTrail/${region}/${timestamp}"),
        ]);
        let parts = Partitions::of(&["account", "region", "timestamp"], &p);
        assert_eq!(parts.date, Some(("timestamp".into(), "%Y/%m/%d".into())));
        assert_eq!(parts.account, Some("account".into()));
        // No projection: nothing to narrow with.
        assert_eq!(Partitions::of(&[], &HashMap::new()), Partitions::default());
        // A format with letters it does not know is not used.
        let p = params(&[("projection.day.type", "date"), ("projection.day.format", "EEE, yyyy")]);
        assert_eq!(Partitions::of(&["day"], &p).date, None);
        assert_eq!(chrono_format("yyyy-MM-dd-HH").as_deref(), Some("%Y-%m-%d-%H"));
    }

    #[test]
    fn the_query_keeps_the_timelines_calls_in_range() {
        let filter = Filter {
            since: Some(since_bound("2025-03-10").unwrap()),
            until: Some(until_bound("2025-03-14").unwrap()),
            accounts: vec!["111122223333".into()],
        };
        let parts = Partitions { date: Some(("timestamp".into(), "%Y/%m/%d".into())), account: Some("account".into()) };
        let q = query("cloudtrail", "logs_pp", &parts, &filter).unwrap();
        for want in [
            "FROM \"cloudtrail\".\"logs_pp\"",
            "eventsource = 'iam.amazonaws.com'",
            "eventname IN ('CreateUser', 'DeleteUser', 'CreateLoginProfile', 'CreateAccessKey')",
            "errorcode IS NULL",
            "from_iso8601_timestamp(eventtime) >= from_iso8601_timestamp('2025-03-10T00:00:00+00:00')",
            "from_iso8601_timestamp(eventtime) <= from_iso8601_timestamp('2025-03-14T23:59:59.999999999+00:00')",
            "recipientaccountid IN ('111122223333')",
            "\"account\" IN ('111122223333')",
            "\"timestamp\" >= '2025/03/09'",
            "\"timestamp\" <= '2025/03/15'",
            "useridentity.sessioncontext.sessionissuer.arn AS identity_issuer_arn",
        ] {
            assert!(q.contains(want), "{want} not in {q}");
        }
        // Without a filter or partitions: no bounds at all.
        let q = query("default", "ct", &Partitions::default(), &Filter::default()).unwrap();
        assert!(!q.contains("from_iso8601_timestamp(eventtime)") && !q.contains("recipientaccountid IN"), "{q}");
    }

    #[test]
    fn names_and_literals_cannot_change_the_query() {
        let client = Client::from_conf(aws_sdk_athena::Config::builder().behavior_version_latest().build());
        for bad in ["logs; DROP TABLE x", "a\"b", "t'", "", "db.t.x"] {
            assert!(AthenaTable::new(client.clone(), bad, None).is_err(), "{bad:?}");
        }
        assert!(AthenaTable::new(client.clone(), "t", Some("x y")).is_err());
        assert!(AthenaTable::new(client.clone(), "db.t", Some("other")).is_err());
        let t = AthenaTable::new(client.clone(), "cloudtrail.logs_pp", None).unwrap();
        assert_eq!(t.name(), "athena:cloudtrail.logs_pp");
        assert!(t.clone().workgroup(Some("wg'1")).is_err());
        assert!(t.clone().output(Some("/tmp/x")).is_err());
        let filter = Filter { accounts: vec!["1' OR '1'='1".into()], ..Filter::default() };
        assert!(query("d", "t", &Partitions::default(), &filter).is_err());
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn a_row_becomes_the_call_of_its_record() {
        let names: Vec<&str> = COLUMNS.iter().map(|(_, a)| *a).collect();
        let mut cells: Vec<Option<&str>> = vec![None; names.len()];
        let set = |cells: &mut Vec<Option<&str>>, name: &str, v: &'static str| {
            cells[names.iter().position(|n| *n == name).unwrap()] = Some(v);
        };
        set(&mut cells, "event_id", "e-1");
        set(&mut cells, "event_time", "2025-03-11T14:03:15Z");
        set(&mut cells, "event_source", "iam.amazonaws.com");
        set(&mut cells, "event_name", "CreateAccessKey");
        set(&mut cells, "recipient_account_id", "111122223333");
        set(&mut cells, "identity_type", "AssumedRole");
        set(&mut cells, "identity_arn", "arn:aws:sts::111122223333:assumed-role/provisioner/run-1");
        set(&mut cells, "identity_issuer_arn", "arn:aws:iam::111122223333:role/provisioner");
        set(&mut cells, "request_parameters", r#"{"userName":"maria"}"#);
        set(
            &mut cells,
            "response_elements",
            r#"{"accessKey":{"userName":"maria","accessKeyId":"AKIA1","status":"Active"}}"#,
        );
        let call = call_of(&names, &cells).unwrap();
        assert_eq!(call.target_user.as_deref(), Some("maria"));
        assert_eq!(call.access_key_id.as_deref(), Some("AKIA1"));
        assert_eq!(call.caller.issuer_arn.as_deref(), Some("arn:aws:iam::111122223333:role/provisioner"));
        assert_eq!(call.account.as_deref(), Some("111122223333"));
        set(&mut cells, "event_time", "");
        assert!(call_of(&names, &cells).is_err(), "no eventTime");
    }
}
