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
}
