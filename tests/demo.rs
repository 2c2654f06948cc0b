//! `make demo`: the guard end to end on a local AWS (moto server on loopback), through the real Lambda binary.
//!
//! Sets up a small account, runs the `bootstrap` function under cargo-lambda's local runtime on the account's
//! events in `notify` mode and then in `deactivate` mode, and shows what it decided, the alerts as a subscriber
//! receives them, and the key states after. It ends with `keyguard doctor` on the demo account.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyguard_tests::lambda::Watch;
use keyguard_tests::{AlertSink, Caller, Iam, Moto, aws_env};
use serde_json::Value;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("== Starting moto server (local AWS on 127.0.0.1)");
    let moto = Moto::start()?;
    println!("   {}", moto.endpoint);
    let sdk = moto.sdk().await;
    let iam = Iam::new(&sdk);
    let alerts = AlertSink::new(&sdk).await?;
    let admin = Caller::IamUser("jordan.admin".into());
    let automation = Caller::Role("ci-iam-provisioner".into());

    println!("== Setting up the account");
    let mut events: Vec<Value> = Vec::new();
    // An admin sets up a console user and hands her an access key: the unsafe pattern.
    events.push(iam.create_user(&admin, "maria.silva", None, &[]).await?);
    events.push(iam.create_password(&admin, "maria.silva").await?);
    // IAM dates things to the second; real set-ups take a moment between steps, and so does this one.
    pause().await;
    events.push(iam.create_key(&admin, "maria.silva").await?.event);
    println!("   maria.silva      console user; jordan.admin creates her access key during setup");
    // A console user who creates his own key: the safe practice.
    events.push(iam.create_user(&admin, "kenji.watanabe", None, &[]).await?);
    events.push(iam.create_password(&admin, "kenji.watanabe").await?);
    pause().await; // kenji signs in with his new password
    events.push(iam.create_key(&Caller::IamUser("kenji.watanabe".into()), "kenji.watanabe").await?.event);
    println!("   kenji.watanabe   console user; creates his own access key");
    // A service account: no console password, so no person and no violation.
    events.push(iam.create_user(&automation, "svc-reporting-etl", Some("/service-accounts/"), &[]).await?);
    events.push(iam.create_key(&automation, "svc-reporting-etl").await?.event);
    println!("   svc-reporting-etl programmatic service account, key by automation");
    // A break-glass user, exempt by tag.
    events.push(iam.create_user(&admin, "break.glass", None, &[("keyguard:exempt", "break-glass account")]).await?);
    events.push(iam.create_password(&admin, "break.glass").await?);
    pause().await;
    events.push(iam.create_key(&admin, "break.glass").await?.event);
    println!("   break.glass      console user with a setup key, tagged keyguard:exempt");

    for mode in ["notify", "deactivate"] {
        println!("\n== The Lambda function in {mode} mode (cargo lambda watch/invoke, bootstrap binary)");
        let mut env = aws_env(&moto.endpoint);
        env.push(("KEYGUARD_MODE".into(), mode.into()));
        env.push(("KEYGUARD_TOPIC_ARN".into(), alerts.topic_arn.clone()));
        let watch = tokio::task::spawn_blocking(move || Watch::start(&env)).await?;
        let watch = std::sync::Arc::new(watch);
        println!("{:<20} {:<19} {:<22} {:<10} {:<12} reason", "event", "user", "access key", "verdict", "action");
        for event in events.clone() {
            let w = watch.clone();
            let name = event["detail"]["eventName"].as_str().unwrap_or_default().to_string();
            match tokio::task::spawn_blocking(move || w.invoke(&event)).await? {
                Ok(report) => {
                    for d in report["decisions"].as_array().into_iter().flatten() {
                        println!(
                            "{:<20} {:<19} {:<22} {:<10} {:<12} {}",
                            name,
                            report["user"].as_str().unwrap_or("-"),
                            d["access_key_id"].as_str().unwrap_or("-"),
                            d["verdict"].as_str().unwrap_or("?"),
                            d["action"].as_str().unwrap_or("?"),
                            d["reason"].as_str().unwrap_or("")
                        );
                    }
                }
                Err(e) => println!("{name:<20} error: {e}"),
            }
        }
        drop(watch);
        let received = alerts.drain().await?;
        println!("\n-- {} alert(s) received by the topic's SQS subscriber", received.len());
        for a in received {
            println!("Subject: {}", a.subject);
            println!("{}", serde_json::to_string_pretty(&a.body)?);
        }
    }

    println!("\n== Key states after");
    for user in ["maria.silva", "kenji.watanabe", "svc-reporting-etl", "break.glass"] {
        for (key, status) in iam.key_statuses(user).await? {
            println!("   {user:<19} {key:<22} {status}");
        }
    }
    // The last act: is the guardrail live? A trail and a stand-in of the deployed stack (the parts the doctor reads,
    // tests/fixtures/doctor/stack.json), then the built `keyguard doctor` on this account.
    println!("\n== Is it working? `keyguard doctor` on the demo account");
    println!(
        "   (a logging trail and a stand-in of the stack; moto has no IAM policy simulator and no CBOR CloudWatch:"
    );
    println!("    those two lines can only be warnings here)\n");
    keyguard_tests::doctor::deploy(&sdk, "keyguard").await?;
    let mut env = aws_env(&moto.endpoint);
    // moto answers SimulatePrincipalPolicy with HTTP 500: no point in the SDK's retries with backoff.
    env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
    let out = tokio::task::spawn_blocking(move || keyguard_tests::run_keyguard(&["doctor"], &env)).await?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    println!("(exit code {})", out.status.code().unwrap_or(-1));

    println!("\n== Stopping moto server");
    drop(moto);
    Ok(())
}

async fn pause() {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
}
