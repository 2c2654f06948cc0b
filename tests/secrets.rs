//! No secret anywhere KeyGuard writes (issue 8 §7).
//!
//! Every scenario of the guard, the audit and the sweep (the twin equivalents of guard_moto, ledger_moto and
//! audit_moto, plus crash points, the valve, re-enables, keys in use, bad input), then a few on moto through the real
//! SDK and the built CLI, with all log output captured (a tracing subscriber writing the deployed JSON format to a
//! buffer; the CLI's stderr) and every alert payload kept (subject, e-mail body, the structured SNS message, the
//! chat notification, the Security Hub finding, the OCSF and HTML renderings, the Lambda's response, sweep
//! messages). All of it is scanned for anything shaped like a secret access key or a session token, and for the
//! exact secrets IAM returned from CreateAccessKey.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::TimeDelta;
use keyguard_aws::twin::{Op, Twin, TwinGuard};
use keyguard_core::html::ReportContext;
use keyguard_core::{AuditRow, EventReport};
use keyguard_tests::capture::{Logs, secret_shaped};
use keyguard_tests::twin::{admin, guard, itself, role, twin};
use serde_json::{Value, json};

/// Everything KeyGuard wrote, to be scanned.
#[derive(Default)]
struct Written {
    texts: Vec<(String, String)>,
}

impl Written {
    fn add(&mut self, what: &str, text: impl Into<String>) {
        self.texts.push((what.to_string(), text.into()));
    }

    fn report(&mut self, result: &Result<EventReport, keyguard_aws::GuardError>) {
        match result {
            Ok(r) => self.add("the Lambda's response", serde_json::to_string(r).unwrap()),
            Err(e) => self.add("the Lambda's error", e.to_string()),
        }
    }

    fn rows(&mut self, rows: &[AuditRow], now: chrono::DateTime<chrono::Utc>) {
        for row in rows {
            self.add("an audit row", serde_json::to_string(row).unwrap());
            self.add("an OCSF finding", keyguard_core::ocsf::compliance_finding(row, now).to_string());
        }
        let ctx = ReportContext {
            source: "test".into(),
            accounts: vec![],
            generated_at: now,
            window: TimeDelta::minutes(10),
            exemptions: vec![],
        };
        self.add("the HTML report", keyguard_core::html::render(&ctx, rows));
    }

    /// What the twin received: alerts, outlet deliveries (as chat and Security Hub would render them), sweep
    /// messages.
    fn twin(&mut self, t: &Twin) {
        for a in t.alerts() {
            self.add("an alert's subject", a.subject.clone());
            self.add("an alert's e-mail body", a.text.clone());
            self.add("an alert's SNS message", a.sns_message());
            self.add("an alert's attributes", format!("{:?}", a.attributes));
        }
        for d in t.deliveries() {
            self.add("a chat notification", keyguard_core::chat::message(&d.facts));
            let finding = keyguard_core::asff::SecurityFinding::new(&d.facts, d.at, "us-east-1", d.state);
            self.add("a Security Hub finding", finding.to_json().to_string());
        }
        for m in t.queued() {
            self.add("a sweep message", m);
        }
    }

    /// Nothing secret-shaped, and none of `secrets`, anywhere.
    fn scan(&self, secrets: &[String]) -> usize {
        assert!(!secrets.is_empty(), "the scenarios created keys, so there are secrets to look for");
        let mut bytes = 0;
        for (what, text) in &self.texts {
            bytes += text.len();
            let shaped = secret_shaped(text);
            assert!(shaped.is_empty(), "{what} holds something shaped like a secret: {shaped:?}\n{text}");
            for secret in secrets {
                assert!(!text.contains(secret.as_str()), "{what} holds a secret access key IAM returned:\n{text}");
            }
        }
        bytes
    }
}

#[test]
fn the_scanner_finds_what_it_looks_for() {
    let t = twin();
    t.create_user(&admin(), "maria.silva", None, &[]).unwrap();
    let key = t.create_access_key(&admin(), "maria.silva").unwrap();
    assert_eq!(secret_shaped(&format!("{{\"secret\":\"{}\"}}", key.secret)), std::slice::from_ref(&key.secret));
    let token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexampletokenexampletokenexampletokenexampletokenexampletokenexample";
    assert!(!secret_shaped(&format!("token={token}")).is_empty());
    assert!(!secret_shaped("\"SecretAccessKey\": \"x\"").is_empty());
    // What KeyGuard does write is not mistaken for one: ids, ARNs, times, a whole alert.
    for benign in [
        "AKIATWIN000000000001 arn:aws:sts::123456789012:assumed-role/terraform/session-1",
        "2025-03-11T14:00:00Z twin-event-000001 /service/etl/ keyguard:exempt=true",
    ] {
        assert!(secret_shaped(benign).is_empty(), "{benign}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Every scenario over the twin.

fn scheduled(id: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
        "account": keyguard_tests::ACCOUNT, "time": "2025-03-12T03:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}})
}

/// Runs `events` through a guard configured by `vars`, keeping what it wrote.
async fn handle_all(g: &TwinGuard, events: &[Value], out: &mut Written) {
    for e in events {
        out.report(&g.handle(e).await);
    }
}

/// The scenarios of guard_moto, ledger_moto and audit_moto, and more, on one twin each; returns the secrets.
async fn twin_scenarios(out: &mut Written) -> Vec<String> {
    let mut secrets = Vec::new();
    let ledger = [("KEYGUARD_LEDGER_TABLE", "ledger")];
    for (mode, with_ledger) in
        [("notify", false), ("deactivate", false), ("deactivate", true), ("notify", true), ("dry-run", false)]
    {
        let t = twin();
        let mut vars = vec![
            ("KEYGUARD_MODE", mode),
            ("KEYGUARD_EXEMPT_PATHS", "/service"),
            ("KEYGUARD_EXEMPT_USERS", "breakglass-*"),
            ("KEYGUARD_EXEMPT_CREATORS", "arn:aws:iam::*:role/hr-provisioner"),
            ("KEYGUARD_MAX_DEACTIVATIONS", "3"),
            ("KEYGUARD_RECONCILE", "apply"),
            ("KEYGUARD_SWEEP_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/sweep"),
        ];
        if with_ledger {
            vars.extend(ledger);
        }
        let g = guard(&t, &vars);
        let mut events = Vec::new();
        // A console user with an admin's key, delivered twice.
        events.push(t.create_user(&admin(), "maria", None, &[]).unwrap());
        events.push(t.create_login_profile(&admin(), "maria").unwrap());
        let k = t.create_access_key(&admin(), "maria").unwrap();
        events.extend([k.event.clone(), k.event.clone()]);
        // Terraform's order.
        events.push(t.create_user(&role("terraform"), "tf", None, &[]).unwrap());
        events.push(t.create_access_key(&role("terraform"), "tf").unwrap().event);
        t.advance(TimeDelta::seconds(40));
        events.push(t.create_login_profile(&role("terraform"), "tf").unwrap());
        // Exempt by tag, path, name and creator; the tag set to false.
        for (name, path, tags, by) in [
            ("tagged", None, vec![("keyguard:exempt", "true")], admin()),
            ("pathed", Some("/service/"), vec![], admin()),
            ("breakglass-1", None, vec![], admin()),
            ("hired", None, vec![], role("hr-provisioner")),
            ("tag-false", None, vec![("keyguard:exempt", "false")], admin()),
        ] {
            events.push(t.create_user(&by, name, path, &tags).unwrap());
            events.push(t.create_login_profile(&by, name).unwrap());
            events.push(t.create_access_key(&by, name).unwrap().event);
        }
        // Self-service, and a service account without a password.
        events.push(t.create_user(&admin(), "kenji", None, &[]).unwrap());
        events.push(t.create_login_profile(&admin(), "kenji").unwrap());
        t.advance(TimeDelta::seconds(5));
        events.push(t.create_access_key(&itself("kenji"), "kenji").unwrap().event);
        events.push(t.create_user(&role("ci"), "svc-etl", Some("/service-accounts/"), &[]).unwrap());
        events.push(t.create_access_key(&role("ci"), "svc-etl").unwrap().event);
        // A key in use before its late event arrives.
        events.push(t.create_user(&admin(), "busy", None, &[]).unwrap());
        events.push(t.create_login_profile(&admin(), "busy").unwrap());
        let busy = t.create_access_key(&admin(), "busy").unwrap();
        t.use_key(&busy.id).unwrap();
        events.push(busy.event);
        // A failed call, root's own key, and input that is not an event.
        let mut failed = t.create_access_key(&admin(), "kenji").unwrap().event;
        failed["detail"]["errorCode"] = json!("AccessDenied");
        events.push(failed);
        events.push(json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "detail": [1]}));
        handle_all(&g, &events, out).await;
        // The user re-enables the key KeyGuard deactivated.
        if t.key("maria", &k.id).is_some_and(|key| !key.active) {
            let again = t.update_access_key(&itself("maria"), "maria", &k.id, true).unwrap();
            handle_all(&g, &[again], out).await;
        }
        // Crash points: an alert owed across a failed publish, a lost ledger write.
        t.create_user(&admin(), "crash", None, &[]).unwrap();
        t.create_login_profile(&admin(), "crash").unwrap();
        let crash = t.create_access_key(&admin(), "crash").unwrap();
        t.fail(Op::Publish, 1, keyguard_aws::AwsErrorKind::Throttled);
        t.crash(Op::LedgerSent, 1);
        for _ in 0..3 {
            out.report(&g.handle(&crash.event).await);
            t.advance(TimeDelta::minutes(1));
        }
        // A user whose events were all lost: only the sweep and the audit see it.
        t.create_user(&admin(), "missed", None, &[]).unwrap();
        t.create_login_profile(&admin(), "missed").unwrap();
        t.create_access_key(&admin(), "missed").unwrap();
        // The schedule (queued per account), the queue's message (the account's sweep), and an audit run whose
        // valve is closed from the start.
        t.advance(TimeDelta::hours(12));
        out.report(&g.handle(&scheduled("sweep-1")).await);
        let records = t
            .queued()
            .into_iter()
            .enumerate()
            .map(|(i, body)| json!({"messageId": format!("m{i}"), "eventSource": "aws:sqs", "body": body}))
            .collect::<Vec<_>>();
        let batch = g.invoke(&json!({ "Records": records })).await.unwrap();
        out.add("the sweep batch response", batch.to_string());
        let valve = keyguard_aws::act::Valve::new("keyguard audit --apply", 0);
        let options = keyguard_aws::audit::Options {
            dry_run: mode == "dry-run",
            may_deactivate: true,
            deactivate_without_creator: true,
            ..Default::default()
        };
        let audit =
            g.audit(keyguard_tests::ACCOUNT, &options, None::<&keyguard_aws::SdkCloudTrail>, &valve, &|_, _| ()).await;
        out.rows(&audit.unwrap().rows, t.now());
        out.twin(&t);
        assert!(t.secrets().len() >= 12);
        secrets.extend(t.secrets());
    }
    secrets
}

#[tokio::test]
async fn no_secret_in_any_log_or_alert_of_every_twin_scenario() {
    let mut out = Written::default();
    let (logs, capture) = Logs::capture();
    let secrets = twin_scenarios(&mut out).await;
    drop(capture);
    let lines = logs.lines();
    assert!(lines.len() > 100, "the scenarios logged: {}", lines.len());
    out.add("the log", logs.text());
    let bytes = out.scan(&secrets);
    // What was scanned is the real thing: decisions, deactivations, alerts, digests, the valve, refusals.
    for message in [
        "decision",
        "access key deactivated",
        "alert published",
        "sweep digest published",
        "safety valve closed",
        "unparseable event",
        "alert could not be published",
    ] {
        assert!(lines.iter().any(|l| l["message"] == message), "no {message:?} in the log");
    }
    let alerts: Vec<&str> =
        out.texts.iter().filter(|(w, _)| w == "an alert's SNS message").map(|(_, t)| t.as_str()).collect();
    for kind in ["deactivated", "exempt (info)", "re-enabled", "safety valve", "daily sweep", "key in use"] {
        assert!(
            out.texts.iter().any(|(w, t)| w == "an alert's subject" && t.contains(kind))
                || alerts.iter().any(|a| a.contains(kind)),
            "no {kind:?} alert"
        );
    }
    println!("scanned {bytes} bytes in {} texts for {} secrets", out.texts.len(), secrets.len());
}

// ---------------------------------------------------------------------------------------------------------------
// A few on moto: the real SDK in the process, and the built CLI.

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_the_logs_and_alerts_of_the_moto_scenarios() {
    use keyguard_tests::{AlertSink, Caller, Iam, Moto, aws_env, ledger_table, run_keyguard, unique};
    let moto = Moto::start().unwrap();
    let sdk = moto.sdk().await;
    let iam = Iam::new(&sdk);
    let sink = AlertSink::new(&sdk).await.unwrap();
    let table = ledger_table(&sdk).await;
    let admin = Caller::IamUser("jordan.admin".into());
    let terraform = Caller::Role("terraform".into());
    let mut secrets = Vec::new();
    let mut events = Vec::new();
    // Set up first (the harness's own SDK calls are not KeyGuard's output): a console user with an admin's key,
    // Terraform's order, a self-service key.
    let maria = unique("maria");
    events.push(iam.create_user(&admin, &maria, None, &[]).await.unwrap());
    events.push(iam.create_password(&admin, &maria).await.unwrap());
    let k = iam.create_key(&admin, &maria).await.unwrap();
    secrets.push(k.secret.clone());
    events.extend([k.event.clone(), k.event]);
    let tf = unique("tf");
    events.push(iam.create_user(&terraform, &tf, None, &[]).await.unwrap());
    let k = iam.create_key(&terraform, &tf).await.unwrap();
    secrets.push(k.secret.clone());
    events.push(k.event);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    events.push(iam.create_password(&terraform, &tf).await.unwrap());
    let kenji = unique("kenji");
    iam.create_user(&admin, &kenji, None, &[]).await.unwrap();
    iam.create_password(&admin, &kenji).await.unwrap();
    let k = iam.create_key(&Caller::IamUser(kenji.clone()), &kenji).await.unwrap();
    secrets.push(k.secret.clone());
    events.push(k.event);
    let left = unique("left");
    iam.create_user(&admin, &left, None, &[]).await.unwrap();
    iam.create_password(&admin, &left).await.unwrap();
    let k = iam.create_key(&admin, &left).await.unwrap();
    secrets.push(k.secret.clone());

    let mut out = Written::default();
    let vars = [
        ("KEYGUARD_MODE", "deactivate"),
        ("KEYGUARD_LEDGER_TABLE", table.as_str()),
        ("KEYGUARD_TOPIC_ARN", sink.topic_arn.as_str()),
        ("KEYGUARD_RECONCILE", "apply"),
    ];
    let config =
        keyguard_core::Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap();
    let g = keyguard_aws::sdk_guard(&config, &sdk).await.unwrap();
    let (logs, capture) = Logs::capture();
    for e in &events {
        out.report(&g.handle(e).await);
    }
    out.report(&g.handle(&scheduled("sweep-moto")).await);
    drop(capture);
    out.add("the log", logs.text());
    assert!(logs.with_message("access key deactivated").len() >= 2, "{}", logs.text());

    // The built CLI: `keyguard audit --apply` (its JSON rows and its log) and `keyguard handle --apply`.
    let mut env = aws_env(&moto.endpoint);
    for (k, v) in vars {
        env.push((k.to_string(), v.to_string()));
    }
    let cli = std::process::Command::new(keyguard_tests::built_binary("keyguard-cli", "keyguard"))
        .args(["audit", "--apply", "--include-used", "--format", "json"])
        .env_clear()
        .envs(env.iter().cloned())
        .current_dir(keyguard_tests::repo())
        .output()
        .unwrap();
    out.add("keyguard audit's output", String::from_utf8_lossy(&cli.stdout));
    out.add("keyguard audit's log", String::from_utf8_lossy(&cli.stderr));
    assert!(String::from_utf8_lossy(&cli.stdout).contains(&left), "the audit saw the last user");
    let file = std::env::temp_dir().join(format!("{}.jsonl", unique("secrets-events")));
    std::fs::write(&file, events.iter().map(|e| e.to_string() + "\n").collect::<String>()).unwrap();
    let handled = run_keyguard(&["handle", "--apply", file.to_str().unwrap()], &env);
    let _ = std::fs::remove_file(&file);
    out.add("keyguard handle's output", String::from_utf8_lossy(&handled.stdout));
    out.add("keyguard handle's log", String::from_utf8_lossy(&handled.stderr));

    for a in sink.drain().await.unwrap() {
        out.add("an alert as a subscriber got it", format!("{} {} {}", a.subject, a.body, a.attributes));
    }
    assert!(out.texts.iter().any(|(w, _)| w == "an alert as a subscriber got it"));
    let bytes = out.scan(&secrets);
    println!("scanned {bytes} bytes in {} texts for {} secrets", out.texts.len(), secrets.len());
}
