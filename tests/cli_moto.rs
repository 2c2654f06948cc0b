//! The built binaries: `keyguard handle` on saved events against moto, and `bootstrap`'s start-up checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use keyguard_tests::{AlertSink, Caller, Iam, Moto, aws_env, built_binary, repo, unique};
use serde_json::Value;

fn keyguard(args: &[&str], env: &[(String, String)]) -> Output {
    keyguard_tests::run_keyguard(args, env)
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn handle_is_a_dry_run_until_apply() {
    let moto = Moto::shared();
    let sdk = moto.sdk().await;
    let iam = Iam::new(&sdk);
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let admin = Caller::IamUser("jordan.admin".into());
    let user = unique("cli-maria");
    let events = vec![
        iam.create_user(&admin, &user, None, &[]).await.unwrap(),
        iam.create_password(&admin, &user).await.unwrap(),
        iam.create_key(&admin, &user).await.unwrap().event,
    ];
    let key = events[2]["detail"]["responseElements"]["accessKey"]["accessKeyId"].as_str().unwrap().to_string();
    let file = std::env::temp_dir().join(format!("{}.jsonl", unique("events")));
    std::fs::write(&file, events.iter().map(|e| e.to_string() + "\n").collect::<String>()).unwrap();
    let file_arg = file.to_str().unwrap();

    let mut env = aws_env(&moto.endpoint);
    env.push(("KEYGUARD_MODE".into(), "deactivate".into()));
    env.push(("KEYGUARD_TOPIC_ARN".into(), alerts.topic_arn.clone()));

    // Without --apply: decisions printed, nothing changed, whatever KEYGUARD_MODE says.
    let out = keyguard(&["handle", file_arg], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reports = lines(&out);
    assert_eq!(reports.len(), 3);
    for (report, event) in reports.iter().zip(&events) {
        assert_eq!(report["event_id"], event["detail"]["eventID"]);
        assert_eq!(report["event_name"], event["detail"]["eventName"]);
        assert_eq!(report["account"], keyguard_tests::ACCOUNT);
        assert_eq!(report["user"], user.as_str());
    }
    assert_eq!(reports[2]["decisions"][0]["verdict"], "violation");
    assert_eq!(reports[2]["decisions"][0]["action"], "dry-run");
    assert_eq!(iam.key_status(&user, &key).await.unwrap(), "Active");
    assert!(alerts.drain().await.unwrap().is_empty());

    // With --apply: the configured mode acts.
    let out = keyguard(&["handle", "--apply", file_arg], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Exactly one decision deactivated the key: the password's event when the key came in its second (then the
    // key's own event finds it inactive), else the key's event.
    let deactivations: Vec<Value> = lines(&out)
        .iter()
        .flat_map(|r| r["decisions"].as_array().unwrap().clone())
        .filter(|d| d["action"] == "deactivated")
        .collect();
    assert_eq!(deactivations.len(), 1, "{deactivations:?}");
    assert_eq!(deactivations[0]["access_key_id"], key.as_str());
    assert_eq!(iam.key_status(&user, &key).await.unwrap(), "Inactive");
    let received = alerts.drain().await.unwrap();
    assert_eq!(received.iter().filter(|a| a.body["action"] == "deactivated").count(), 1, "{received:#?}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn handle_reports_bad_input_and_exits_non_zero() {
    let env = aws_env("http://127.0.0.1:9");
    let samples = repo().join("tests/fixtures/samples/create-access-key-failed-access-denied.json");
    let bad = repo().join("tests/fixtures/invalid/no-detail.json");
    // -v: the guard's own log lines (off by default, as they repeat what stdout says).
    let out = keyguard(&["-v", "handle", samples.to_str().unwrap(), bad.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1));
    let reports = lines(&out);
    assert_eq!(reports.len(), 2, "every input is accounted for");
    assert_eq!(reports[0]["decisions"][0]["verdict"], "ignored");
    assert_eq!(reports[1]["event_id"], "0bad0bad-1111-2222-3333-444455556666");
    assert_eq!(reports[1]["error_type"], "KeyGuard.BadEvent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().any(|l| l.contains("\"unparseable event\"")), "a JSON log line: {stderr}");
}

#[test]
fn json_lines_with_a_broken_line_keep_the_others() {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/invalid/truncated.json")).unwrap();
    let failed =
        std::fs::read_to_string(repo().join("tests/fixtures/samples/create-access-key-failed-access-denied.json"))
            .unwrap();
    let compact: Value = serde_json::from_str(&failed).unwrap();
    let file = std::env::temp_dir().join(format!("{}.jsonl", unique("mixed")));
    std::fs::write(&file, format!("{compact}\n{}\n{compact}\n", text.replace('\n', " "))).unwrap();
    let out = keyguard(&["handle", file.to_str().unwrap()], &aws_env("http://127.0.0.1:9"));
    assert_eq!(out.status.code(), Some(1));
    let reports = lines(&out);
    assert_eq!(reports.len(), 3);
    assert!(reports[1]["source"].as_str().unwrap().ends_with(":2"), "{}", reports[1]);
    assert_eq!(reports[2]["decisions"][0]["verdict"], "ignored");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    for (var, value) in [
        ("KEYGUARD_MODE", "loud"),
        ("KEYGUARD_SETUP_WINDOW", "soon"),
        ("KEYGUARD_EXEMPT_USERS", "a[b"),
        ("KEYGUARD_TOPIC_ARN", "not-an-arn"),
    ] {
        let out = Command::new(built_binary("keyguard-lambda", "bootstrap"))
            .env_clear()
            .envs(aws_env("http://127.0.0.1:9"))
            .env("KEYGUARD_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:t")
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
        // The CLI reads the same variables and fails the same way (exit 2).
        let topic = ("KEYGUARD_TOPIC_ARN".to_string(), "arn:aws:sns:us-east-1:123456789012:t".to_string());
        let out = keyguard(&["handle", "--apply", "/dev/null"], &[topic, (var.to_string(), value.to_string())]);
        assert_eq!(out.status.code(), Some(2), "{var}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(var));
    }
    // A bad mode is an error in every command and mode, a dry run included (it used to be ignored without --apply).
    let out = keyguard(&["handle", "/dev/null"], &[("KEYGUARD_MODE".to_string(), "loud".to_string())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEYGUARD_MODE"));
}

#[tokio::test(flavor = "multi_thread")]
async fn ledger_create_makes_a_table_with_its_ttl() {
    let moto = Moto::shared();
    let table = unique("cli-ledger");
    let out = keyguard(&["ledger", "create", "--table", &table], &aws_env(&moto.endpoint));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dynamo = aws_sdk_dynamodb::Client::new(&moto.sdk().await);
    let described = dynamo.describe_table().table_name(&table).send().await.unwrap();
    let key: Vec<&str> = described.table().unwrap().key_schema().iter().map(|k| k.attribute_name()).collect();
    assert_eq!(key, ["pk"]);
    let ttl = dynamo.describe_time_to_live().table_name(&table).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    // Again: an existing table is fine.
    let out = keyguard(&["ledger", "create", "--table", &table], &aws_env(&moto.endpoint));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn permissions_lists_every_action_the_code_calls() {
    let out = keyguard(&["permissions"], &[]);
    let actions: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(actions, keyguard_aws::permissions::guard_actions());
    let services: std::collections::BTreeSet<&str> = actions.iter().filter_map(|a| a.split(':').next()).collect();
    assert_eq!(
        services,
        ["dynamodb", "iam", "organizations", "securityhub", "sns", "sqs", "sts"].into_iter().collect()
    );
    // The member role: exactly the guard's IAM and Security Hub actions (iam:ListAccountAliases among them).
    let out = keyguard(&["permissions", "--member"], &[]);
    let member: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    let in_member_account: Vec<&String> =
        actions.iter().filter(|a| a.starts_with("iam:") || a.starts_with("securityhub:")).collect();
    assert_eq!(member.iter().collect::<Vec<_>>(), in_member_account);
    assert!(member.contains(&"iam:ListAccountAliases".to_string()));
}
