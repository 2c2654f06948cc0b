//! End to end: the real `bootstrap` binary served events through cargo-lambda's local Lambda Runtime API
//! (`cargo lambda watch`, from the project's .venv, on 127.0.0.1), against moto server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyguard_tests::lambda::Watch;
use keyguard_tests::{AlertSink, Caller, Iam, Moto, aws_env, repo, unique};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_under_a_local_lambda_runtime_deactivates_and_alerts() {
    let moto = Moto::shared();
    let sdk = moto.sdk().await;
    let iam = Iam::new(&sdk);
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let admin = Caller::IamUser("jordan.admin".into());
    let user = unique("e2e-maria");
    iam.create_user(&admin, &user, None, &[]).await.unwrap();
    iam.create_password(&admin, &user).await.unwrap();
    let key = iam.create_key(&admin, &user).await.unwrap();

    let mut env = aws_env(&moto.endpoint);
    env.push(("KEYGUARD_MODE".into(), "deactivate".into()));
    env.push(("KEYGUARD_TOPIC_ARN".into(), alerts.topic_arn.clone()));
    let watch = tokio::task::spawn_blocking(move || Watch::start(&env)).await.unwrap();

    let event = key.event.clone();
    let watch = std::sync::Arc::new(watch);
    let w = watch.clone();
    let response = tokio::task::spawn_blocking(move || w.invoke(&event)).await.unwrap().unwrap();
    assert_eq!(response["event_id"], key.event["detail"]["eventID"]);
    assert_eq!(response["user"], user.as_str());
    let decision = &response["decisions"][0];
    assert_eq!(decision["access_key_id"], key.id.as_str());
    assert_eq!(decision["verdict"], "violation");
    assert_eq!(decision["action"], "deactivated");
    assert_eq!(iam.key_status(&user, &key.id).await.unwrap(), "Inactive");
    let received = alerts.drain().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["action"], "deactivated");

    // A reference event of a failed call: ignored, no error.
    let failed: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/samples/create-access-key-failed-access-denied.json"))
            .unwrap(),
    )
    .unwrap();
    let w = watch.clone();
    let response = tokio::task::spawn_blocking(move || w.invoke(&failed)).await.unwrap().unwrap();
    assert_eq!(response["decisions"][0]["verdict"], "ignored");

    // Not an event: the invocation fails (so Lambda's failure destination keeps it), naming the event id.
    let bad: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("tests/fixtures/invalid/no-detail.json")).unwrap())
            .unwrap();
    let w = watch.clone();
    let err = tokio::task::spawn_blocking(move || w.invoke(&bad)).await.unwrap().unwrap_err();
    assert!(err.contains("KeyGuard.BadEvent"), "{err}");
    assert!(err.contains("0bad0bad-1111-2222-3333-444455556666"), "{err}");

    // Metrics: one CloudWatch Embedded Metric Format document per invocation on the function's stdout.
    let emf: Vec<Value> = watch
        .output()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    if std::env::var_os("KEYGUARD_SHOW_EMF").is_some() {
        println!("{}", serde_json::to_string_pretty(&emf).unwrap());
    }
    assert!(!emf.is_empty(), "no EMF line in the function's output:\n{}", watch.output().join("\n"));
    for doc in &emf {
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "KeyGuard", "{doc}");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc.get(name).is_some(), "{name} has no value in {doc}");
        }
    }
    let total = |name: &str| -> f64 {
        emf.iter()
            .filter_map(|d| d.get(name))
            .map(|v| {
                v.as_f64().or_else(|| v.as_array().map(|a| a.iter().filter_map(Value::as_f64).sum())).unwrap_or(0.0)
            })
            .sum()
    };
    assert_eq!(total("EventsHandled"), 3.0, "three invocations");
    assert_eq!(total("Deactivations"), 1.0);
    assert_eq!(total("AlertsSent"), 1.0);
    assert_eq!(total("Errors"), 1.0, "the bad event");
    let latency = emf.iter().filter_map(|d| d.get("EventLatency")).count();
    assert_eq!(latency, 3, "a latency per event");
    let violation = emf.iter().any(|d| d["Verdict"] == "violation" && d.get("Decisions").is_some());
    assert!(violation, "decisions by verdict: {emf:#?}");
}
