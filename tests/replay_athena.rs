//! `keyguard replay --athena` on moto: the known-answer history served as Athena result rows gives the same
//! output, byte for byte, as replaying the same records from their log files; filters go into the query.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

use keyguard_replay::{ATHENA_COLUMNS, since_bound, until_bound};
use keyguard_tests::archive::{ACCOUNT_A, EXEMPT_FLAGS, Scenario};
use keyguard_tests::{Moto, athena, aws_env, run_keyguard, unique};

fn replay(args: &[&str], env: &[(String, String)]) -> Output {
    let mut all = vec!["replay", "--format", "json"];
    all.extend(EXEMPT_FLAGS);
    all.extend(args);
    run_keyguard(&all, env)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every query moto has run, as sent.
async fn queries(client: &aws_sdk_athena::Client) -> Vec<String> {
    let ids = client.list_query_executions().send().await.unwrap().query_execution_ids().to_vec();
    let mut out = Vec::new();
    for id in ids {
        let q = client.get_query_execution().query_execution_id(id).send().await.unwrap();
        out.push(q.query_execution().and_then(|e| e.query()).unwrap_or_default().to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn athena_rows_give_the_findings_of_the_log_files() {
    let moto = Moto::shared();
    let client = aws_sdk_athena::Client::new(&moto.sdk().await);
    let s = Scenario::known_answers();
    let dir = std::env::temp_dir().join(unique("replay-athena"));
    s.write_s3_layout(&dir).unwrap();
    let env = aws_env(&moto.endpoint);

    // The whole history. Athena returns rows in no particular order: reversed here.
    let mut kept: Vec<&serde_json::Value> =
        s.records.iter().map(|r| &r.body).filter(|b| athena::query_keeps(b, None, None, &[])).collect();
    kept.reverse();
    assert!(kept.len() < s.records.len() / 10, "the query leaves the noise out");
    athena::register(&moto.endpoint, &[athena::result_set(&kept, &ATHENA_COLUMNS)]).unwrap();
    let out =
        replay(&["--athena", "cloudtrail_logs", "--database", "security", "--output", "s3://athena-results/kg/"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let local = replay(&[dir.to_str().unwrap()], &[]);
    assert_eq!(stdout(&out), stdout(&local), "the same rows as the local replay");
    assert_eq!(stdout(&out).lines().count(), s.expected.len());
    let sent = queries(&client).await;
    assert_eq!(sent.len(), 1, "one query");
    assert!(sent[0].contains("FROM \"security\".\"cloudtrail_logs\""), "{}", sent[0]);
    assert!(sent[0].contains("errorcode IS NULL"), "{}", sent[0]);

    // A range and an account: the query says so, and the rows Athena returns for it give the local answer.
    let (since, until) = ("2025-03-11", "2025-03-13");
    let (from, to) = (since_bound(since).unwrap(), until_bound(until).unwrap());
    let kept: Vec<&serde_json::Value> = s
        .records
        .iter()
        .map(|r| &r.body)
        .filter(|b| athena::query_keeps(b, Some(from), Some(to), &[ACCOUNT_A]))
        .collect();
    athena::register(&moto.endpoint, &[athena::result_set(&kept, &ATHENA_COLUMNS)]).unwrap();
    let filters = ["--since", since, "--until", until, "--account", ACCOUNT_A];
    let mut args = vec!["--athena", "security.cloudtrail_logs", "--workgroup", "primary"];
    args.extend(filters);
    let out = replay(&args, &env);
    let mut local_args = filters.to_vec();
    local_args.push(dir.to_str().unwrap());
    let local = replay(&local_args, &[]);
    assert_eq!(stdout(&out), stdout(&local));
    assert!(!stdout(&out).is_empty());
    let sent = queries(&client).await;
    let q = sent.iter().find(|q| q.contains("recipientaccountid IN")).expect("the filtered query");
    assert!(q.contains(&format!("recipientaccountid IN ('{ACCOUNT_A}')")), "{q}");
    assert!(
        q.contains("from_iso8601_timestamp(eventtime) >= from_iso8601_timestamp('2025-03-11T00:00:00+00:00')"),
        "{q}"
    );

    // Names that would change the query are refused before anything is sent.
    let out = replay(&["--athena", "logs; DROP TABLE x"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an Athena name"));
    let _ = std::fs::remove_dir_all(&dir);
}
