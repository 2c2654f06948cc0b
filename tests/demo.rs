//! `make demo`: the guard end to end on a local AWS (moto server on loopback), through the real Lambda binary.
//!
//! Sets up a small account, runs the `bootstrap` function under cargo-lambda's local runtime on the account's
//! events in `notify` mode and then in `deactivate` mode, and shows what it decided, the alerts as a subscriber
//! receives them, and the key states after. Then the organization act: a central guard and two member accounts
//! whose IAM events are forwarded from each member's default bus to the central bus. It ends with
//! `keyguard doctor` on the demo account.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_config::SdkConfig;
use keyguard_tests::lambda::Watch;
use keyguard_tests::org::Org;
use keyguard_tests::{AlertSink, Caller, Iam, Moto, aws_env};
use serde_json::{Value, json};

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
    events.push(iam.create_user(&admin, "break.glass", None, &[("keyguard:exempt", "true")]).await?);
    events.push(iam.create_password(&admin, "break.glass").await?);
    pause().await;
    events.push(iam.create_key(&admin, "break.glass").await?.event);
    println!(
        "   break.glass      console user with a setup key, tagged keyguard:exempt=true (only the configured value exempts)"
    );

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
    organization(&moto, &sdk, &alerts).await?;

    // The last act: is the guardrail live? A trail and a stand-in of the deployed stack (the parts the doctor reads,
    // tests/fixtures/doctor/stack.json), then the built `keyguard doctor` on this account.
    println!("\n== Is it working? `keyguard doctor` on the demo account");
    println!(
        "   (a logging trail and a stand-in of the stack; moto has no IAM policy simulator and no CBOR CloudWatch:"
    );
    println!("    those two lines can only be warnings here)\n");
    let deployed = keyguard_tests::doctor::deploy(&sdk, "keyguard").await?;
    let mut env = aws_env(&moto.endpoint);
    // moto answers SimulatePrincipalPolicy with HTTP 500: no point in the SDK's retries with backoff.
    env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
    let doctor = |env: Vec<(String, String)>| async move {
        let out = tokio::task::spawn_blocking(move || keyguard_tests::run_keyguard(&["doctor"], &env)).await?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        println!("(exit code {})", out.status.code().unwrap_or(-1));
        anyhow::Ok(())
    };
    doctor(env.clone()).await?;

    // Someone disables the rule: the guard would never run again, and the doctor says so.
    println!("\n== Someone disables the rule; `keyguard doctor` again\n");
    aws_sdk_eventbridge::Client::new(&sdk).disable_rule().name(&deployed.rule_name).send().await?;
    doctor(env).await?;

    println!("\n== Stopping moto server");
    drop(moto);
    Ok(())
}

/// The guard's rule (template.yaml's EventPattern): the member's forwarding rule and the central rule use it too.
fn iam_pattern() -> String {
    json!({"source": ["aws.iam"], "detail-type": ["AWS API Call via CloudTrail"],
           "detail": {"eventSource": ["iam.amazonaws.com"],
                      "errorCode": [{"exists": false}],
                      "$or": [{"eventName": ["CreateUser", "CreateLoginProfile", "CreateAccessKey"]},
                              {"eventName": ["UpdateAccessKey"],
                               "requestParameters": {"status": [{"equals-ignore-case": "active"}]}}]}})
    .to_string()
}

/// The organization act: a central guard (the demo account) and two member accounts made with Organizations. Each
/// member's default bus forwards IAM events to the central bus; a rule there delivers them to a queue (moto cannot
/// invoke a Lambda target), and each delivered event is handed to the real `bootstrap`, which assumes the member
/// role in the event's account.
async fn organization(moto: &Moto, sdk: &SdkConfig, alerts: &AlertSink) -> anyhow::Result<()> {
    use anyhow::Context;
    println!("\n== Organization: one central guard, two member accounts");
    let org = Org::create(sdk, 2).await?;
    let names = ["payments", "analytics"];
    println!("   organization {}: management (central) account {}", org.id, org.management);
    let mut members = Vec::new();
    for (id, name) in org.members.iter().zip(names) {
        let member_sdk = org.member_sdk(sdk, id).await?;
        let iam = Iam::in_account(&member_sdk, id);
        iam.client.create_account_alias().account_alias(format!("acme-{name}")).send().await?;
        println!("   member {id} (alias acme-{name})");
        members.push((id.clone(), member_sdk, iam));
    }

    // The central bus and its rule. On AWS the bus policy admits the organization (aws:PrincipalOrgID) and the
    // rule targets the guard; moto ignores bus policies and cannot invoke a Lambda target, so the rule delivers to
    // a queue and the demo hands each event to the function.
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let bus = events.create_event_bus().name("keyguard-central").send().await?;
    let bus_arn = bus.event_bus_arn().context("bus arn")?.to_string();
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name("keyguard-central-events")
        .send()
        .await?
        .queue_url()
        .context("queue")?
        .to_string();
    let queue_arn = format!("arn:aws:sqs:us-east-1:{}:keyguard-central-events", org.management);
    events
        .put_rule()
        .name("keyguard-guard")
        .event_bus_name("keyguard-central")
        .event_pattern(iam_pattern())
        .send()
        .await?;
    events
        .put_targets()
        .rule("keyguard-guard")
        .event_bus_name("keyguard-central")
        .targets(aws_sdk_eventbridge::types::Target::builder().id("guard").arn(&queue_arn).build()?)
        .send()
        .await?;
    println!("   central bus {bus_arn}: rule keyguard-guard");

    // Each member: a rule on its default bus forwarding the same events to the central bus (infra/org/member.yaml).
    for (id, member_sdk, _) in &members {
        let member_events = aws_sdk_eventbridge::Client::new(member_sdk);
        member_events.put_rule().name("keyguard-forward").event_pattern(iam_pattern()).send().await?;
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("central-bus")
            .arn(&bus_arn)
            .role_arn(format!("arn:aws:iam::{id}:role/keyguard-forwarder"))
            .build()?;
        member_events.put_targets().rule("keyguard-forward").targets(target).send().await?;
        println!("   member {id}: default bus -> {bus_arn}");
    }

    // The same user name in both members: an admin hands ana.costa a key in payments; in analytics she makes her own.
    let admin = Caller::IamUser("jordan.admin".into());
    let ana = Caller::IamUser("ana.costa".into());
    let mut sent = 0;
    for (i, (id, member_sdk, iam)) in members.iter().enumerate() {
        let mut member_events = vec![
            iam.create_user(&admin, "ana.costa", None, &[]).await?,
            iam.create_password(&admin, "ana.costa").await?,
        ];
        pause().await;
        let by = if i == 0 { &admin } else { &ana };
        member_events.push(iam.create_key(by, "ana.costa").await?.event);
        println!(
            "   {id}: ana.costa, console user; her access key created by {}",
            if i == 0 { "jordan.admin during setup" } else { "herself" }
        );
        // CloudTrail puts each call on the member's default bus; here PutEvents in the member stands in for it.
        let client = aws_sdk_eventbridge::Client::new(member_sdk);
        for e in &member_events {
            let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("aws.iam")
                .detail_type("AWS API Call via CloudTrail")
                .detail(e["detail"].to_string())
                .build();
            let out = client.put_events().entries(entry).send().await?;
            anyhow::ensure!(out.failed_entry_count() == 0, "PutEvents failed: {out:?}");
            sent += 1;
        }
    }

    let mut delivered: Vec<Value> = Vec::new();
    loop {
        let out = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await?;
        if out.messages().is_empty() {
            break;
        }
        for m in out.messages() {
            delivered.push(serde_json::from_str(m.body().unwrap_or("null"))?);
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
        }
    }
    println!(
        "   {sent} events put on the members' default buses; {} arrived through the central bus (with no `account` \
         field: the guard takes the account from detail.recipientAccountId)",
        delivered.len()
    );

    println!("\n== The central Lambda function in deactivate mode, KEYGUARD_MEMBER_ROLE=OrganizationAccountAccessRole");
    let mut env = aws_env(&moto.endpoint);
    env.push(("KEYGUARD_MODE".into(), "deactivate".into()));
    env.push(("KEYGUARD_TOPIC_ARN".into(), alerts.topic_arn.clone()));
    env.push(("KEYGUARD_MEMBER_ROLE".into(), keyguard_tests::org::ACCESS_ROLE.into()));
    env.push(("KEYGUARD_ACCOUNTS".into(), org.members.join(",")));
    let watch = std::sync::Arc::new(tokio::task::spawn_blocking(move || Watch::start(&env)).await?);
    println!(
        "{:<13} {:<20} {:<11} {:<22} {:<10} {:<12} reason",
        "account", "event", "user", "access key", "verdict", "action"
    );
    for event in delivered {
        let w = watch.clone();
        let name = event["detail"]["eventName"].as_str().unwrap_or_default().to_string();
        let account = event["detail"]["recipientAccountId"].as_str().unwrap_or_default().to_string();
        match tokio::task::spawn_blocking(move || w.invoke(&event)).await? {
            Ok(report) => {
                for d in report["decisions"].as_array().into_iter().flatten() {
                    println!(
                        "{:<13} {:<20} {:<11} {:<22} {:<10} {:<12} {}",
                        report["account"].as_str().unwrap_or(&account),
                        name,
                        report["user"].as_str().unwrap_or("-"),
                        d["access_key_id"].as_str().unwrap_or("-"),
                        d["verdict"].as_str().unwrap_or("?"),
                        d["action"].as_str().unwrap_or("?"),
                        d["reason"].as_str().unwrap_or("")
                    );
                }
            }
            Err(e) => println!("{account:<13} {name:<20} error: {e}"),
        }
    }
    drop(watch);
    for a in alerts.drain().await? {
        println!("\n-- alert: {}", a.subject);
        println!(
            "   account {} ({})",
            a.body["account"].as_str().unwrap_or("?"),
            a.body["account_alias"].as_str().unwrap_or("no alias")
        );
    }

    println!("\n== Key states after, per account");
    let central = Iam::new(sdk);
    for (id, _, iam) in &members {
        for (key, status) in iam.key_statuses("ana.costa").await? {
            println!("   {id}  ana.costa  {key:<22} {status}");
        }
    }
    for (key, status) in central.key_statuses("maria.silva").await? {
        println!("   {}  maria.silva {key:<22} {status}  (central account, from the first acts)", org.management);
    }
    Ok(())
}

async fn pause() {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
}
