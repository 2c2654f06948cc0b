//! Bad input through the whole handler (issue 8 §6), over the twin with its log captured.
//!
//! - The core's property-test inputs (arbitrary JSON, event-shaped JSON, mutated real events: the same strategies as
//!   crates/keyguard-core/tests/properties.rs) fed to `Guard::handle` in `deactivate` mode with the ledger, in an
//!   account with console users and keys: never a panic; every input ends as a report or a typed error, logged; an
//!   effect (UpdateAccessKey, Publish, a ledger write) only ever follows a well-formed event of a successful IAM
//!   call in this account about a user that exists (or the daily schedule).
//! - Oversized events, the wrong `source`, `detail-type` or `eventSource`, an account that is not ours: refused or
//!   ignored, logged with the reason, and not one call to AWS.
//! - User names, tags and user agents with newlines, control characters, markdown or HTML are inert in the alert's
//!   subject, e-mail body and JSON, in the chat notification, in the HTML evidence report, and in the log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../crates/keyguard-core/tests/inputs/mod.rs"]
mod inputs;

use chrono::{TimeDelta, TimeZone, Utc};
use keyguard_aws::GuardError;
use keyguard_aws::twin::{Op, Outcome, Twin, TwinGuard, iam_user};
use keyguard_core::html::ReportContext;
use keyguard_core::{Alert, Incoming, Trigger, parse_event};
use keyguard_tests::capture::Logs;
use proptest::prelude::*;
use serde_json::{Value, json};

const ACCOUNT: &str = inputs::ACCOUNT;

/// An account like the inputs' (the reference samples' account, their users), a day after the samples' events.
fn world() -> (Twin, TwinGuard) {
    let t = Twin::new(ACCOUNT, Utc.with_ymd_and_hms(2025, 3, 11, 14, 2, 0).unwrap());
    let admin = iam_user(ACCOUNT, "jordan.admin");
    for (i, name) in
        ["maria.silva", "jordan.admin", "svc-etl", "rené.dupont", "kenji.watanabe", "svc-reporting-etl", "dev.intern"]
            .iter()
            .enumerate()
    {
        let tags: &[(&str, &str)] = if i == 2 { &[("keyguard:exempt", "true")] } else { &[] };
        t.create_user(&admin, name, None, tags).unwrap();
        t.create_access_key(&admin, name).unwrap();
        if i % 3 != 1 {
            t.create_login_profile(&admin, name).unwrap();
        }
        if i == 0 {
            t.create_access_key(&admin, name).unwrap();
        }
    }
    t.advance(TimeDelta::hours(22));
    let config = t
        .config(&[
            ("KEYGUARD_MODE", "deactivate"),
            ("KEYGUARD_LEDGER_TABLE", "ledger"),
            ("KEYGUARD_EXEMPT_CREATORS", "arn:aws:sts::*:assumed-role/ci-*"),
            ("KEYGUARD_MAX_DEACTIVATIONS", "1"),
        ])
        .unwrap();
    let g = t.guard(&config).unwrap();
    (t, g)
}

/// Whether `input` may have the effect `op`: the daily schedule may alert; a successful IAM call in this account
/// (its accounts agreeing) that the rule handles may teach the ledger a key's creator (even before IAM shows the
/// user: it may lag); only such a call about a user the account has may alert, deactivate or owe.
fn may_act(input: &Value, t: &Twin, op: Op) -> bool {
    match parse_event(input) {
        Ok(Incoming::Scheduled { .. }) => matches!(op, Op::Publish),
        Ok(Incoming::Call(call)) => {
            let ours = call.is_iam()
                && call.error_code.is_none()
                && call.account.as_deref() == Some(ACCOUNT)
                && call.envelope_account.as_deref().is_none_or(|a| a == ACCOUNT);
            match Trigger::of(&call) {
                Ok(Trigger::AccessKeyCreated { .. }) if ours && op == Op::LedgerRecordCreator => true,
                Ok(trigger) => ours && t.user(trigger.user()).is_some(),
                Err(_) => false,
            }
        }
        _ => false,
    }
}

/// One input through the handler: no panic (proptest reports one as a failure), an answer, a log, effects only
/// where [`may_act`].
fn through_the_handler(input: &Value) -> Result<(), TestCaseError> {
    let (t, g) = world();
    let (logs, _capture) = Logs::capture();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let result = rt.block_on(g.handle(input));
    let calls = t.calls();
    let effects: Vec<_> = calls.iter().filter(|c| c.op.has_effect()).collect();
    for effect in &effects {
        prop_assert!(may_act(input, &t, effect.op), "an effect from input that may not act: {effect:?}\n{input:#}");
    }
    // Every alert went through SNS's checks (subject, size): none refused.
    prop_assert!(
        !calls.iter().any(|c| c.op == Op::Publish && c.outcome != Outcome::Ok),
        "a refused publish: {calls:?}"
    );
    let lines = logs.lines();
    match &result {
        Ok(report) => {
            prop_assert!(!report.decisions.is_empty() || report.event_name == "Scheduled Event");
            for d in &report.decisions {
                prop_assert!(!d.reason.is_empty());
            }
        }
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            prop_assert!(lines.iter().any(|l| l["level"] == "ERROR"), "an error is logged: {e}\n{lines:#?}");
            if !e.retryable() {
                prop_assert!(effects.is_empty(), "a refused event acted: {effects:?}");
            }
        }
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases) }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_json_through_the_handler(input in inputs::json()) {
        through_the_handler(&input)?;
    }

    #[test]
    fn event_shaped_json_through_the_handler(input in inputs::event_shaped()) {
        through_the_handler(&input)?;
    }

    #[test]
    fn mutated_real_events_through_the_handler(input in inputs::mutated_sample()) {
        through_the_handler(&input)?;
    }
}

#[test]
fn every_real_event_through_the_handler() {
    let mut acted = 0;
    for sample in inputs::samples() {
        through_the_handler(sample).unwrap();
        let (t, g) = world();
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let _ = rt.block_on(g.handle(sample));
        acted += usize::from(t.calls().iter().any(|c| c.op.has_effect()));
    }
    assert!(acted >= 3, "some real events reach an effect (the invariant is not vacuous): {acted}");
}

// ---------------------------------------------------------------------------------------------------------------
// Refused, logged with the reason, never acted on.

/// A violating key event in the world's account (an admin's key for a console user).
fn violating_event(t: &Twin) -> Value {
    let admin = iam_user(ACCOUNT, "jordan.admin");
    t.create_user(&admin, "new.hire", None, &[]).unwrap();
    t.create_login_profile(&admin, "new.hire").unwrap();
    t.create_access_key(&admin, "new.hire").unwrap().event
}

async fn refused(event: &Value) -> (Result<keyguard_core::EventReport, GuardError>, Logs, Twin) {
    let (t, g) = world();
    let calls_before = t.calls().len();
    let (logs, _capture) = Logs::capture();
    let result = g.handle(event).await;
    assert_eq!(t.calls().len(), calls_before, "not one AWS call: {:?}", t.calls());
    assert!(t.alerts().is_empty() && t.deactivations().is_empty());
    (result, logs, t)
}

#[tokio::test]
async fn the_control_event_acts() {
    // The unmodified event does act: the refusals below are about what was changed.
    let (t, g) = world();
    let event = violating_event(&t);
    g.handle(&event).await.unwrap();
    assert_eq!(t.deactivations().len(), 1);
}

#[tokio::test]
async fn an_oversized_event_is_refused_unread() {
    let (t, _) = world();
    let mut event = violating_event(&t);
    event["detail"]["requestParameters"]["padding"] = json!("A".repeat(300 * 1024));
    let (result, logs, _) = refused(&event).await;
    let err = result.unwrap_err();
    assert!(matches!(err, GuardError::Refused { .. }) && !err.retryable(), "{err}");
    let line = &logs.with_message("event refused")[0];
    assert!(line["error"].as_str().unwrap().contains("more than EventBridge delivers"), "{line}");
}

#[tokio::test]
async fn the_wrong_source_detail_type_or_event_source_is_refused() {
    let (t, _) = world();
    let good = violating_event(&t);
    let cases: [(&str, &str, Value); 3] = [
        ("/source", "aws.s3", json!("refused: not an IAM API call event (aws.iam)")),
        ("/detail-type", "AWS Console Sign In via CloudTrail", json!("refused: not an IAM API call event (aws.iam)")),
        ("/detail/eventSource", "sts.amazonaws.com", json!("decision")),
    ];
    for (pointer, value, message) in cases {
        let mut event = good.clone();
        *event.pointer_mut(pointer).unwrap() = json!(value);
        let (result, logs, _) = refused(&event).await;
        let report = result.unwrap();
        assert_eq!(report.decisions.len(), 1);
        assert_eq!(report.decisions[0].verdict, keyguard_core::Verdict::Ignored, "{pointer}: {report:?}");
        let lines = logs.with_message(message.as_str().unwrap());
        assert_eq!(lines.len(), 1, "{pointer}: {:#?}", logs.lines());
        let logged = lines[0].to_string();
        assert!(logged.contains(value), "the log line names what was wrong ({value}): {logged}");
    }
}

#[tokio::test]
async fn an_account_that_is_not_ours_is_refused() {
    let (t, _) = world();
    let good = violating_event(&t);
    let mut foreign = good.clone();
    foreign["detail"]["recipientAccountId"] = json!("444455556666");
    foreign["account"] = json!("444455556666");
    let (result, logs, _) = refused(&foreign).await;
    let err = result.unwrap_err();
    assert!(matches!(err, GuardError::AccountNotGuarded { .. }) && !err.retryable(), "{err}");
    let line = &logs.with_message("event failed")[0];
    assert_eq!(line["account"], "444455556666");
    assert!(line["error"].as_str().unwrap().contains("not guarded"), "{line}");

    // The envelope's account and the call's disagree: refused too.
    let mut mixed = good.clone();
    mixed["account"] = json!("444455556666");
    let (result, logs, _) = refused(&mixed).await;
    let err = result.unwrap_err();
    assert!(matches!(err, GuardError::Refused { .. }), "{err}");
    assert!(logs.with_message("event failed")[0]["error"].as_str().unwrap().contains("disagree"));
}

// ---------------------------------------------------------------------------------------------------------------
// Hostile text is inert everywhere it is shown.

const HOSTILE: &[&str] = &[
    "evil\nVerdict:        compliant\nAction taken:   none",
    "<script>alert(1)</script>",
    "**bold** _it_ [click](https://evil.example) <@U0123> <!channel> `rm -rf /`",
    "\u{202e}gnp.exe\u{0}\u{7}\r\n\u{2028}x",
    "naïve-名前-🔑",
];
const HOSTILE_AGENT: &str = "curl/8.0\r\nX-Injected: 1\n<img src=x onerror=alert(1)> **md** `tick`";

/// One console user named `name` with an admin's key, handled; returns the alert and the chat notification.
async fn alerted(name: &str) -> (Alert, Value, Twin, Logs) {
    let t = Twin::new(ACCOUNT, Utc.with_ymd_and_hms(2025, 3, 11, 14, 2, 0).unwrap());
    let admin = iam_user(ACCOUNT, "jordan.admin");
    let tags = [("team", "<b>x</b>\nline"), ("keyguard:exempt", "tru\ne"), ("note", "**not** `exempt`")];
    t.create_user(&admin, name, Some("/people/"), &tags).unwrap();
    t.create_login_profile(&admin, name).unwrap();
    let mut event = t.create_access_key(&admin, name).unwrap().event;
    event["detail"]["userAgent"] = json!(HOSTILE_AGENT);
    let g = t.guard(&t.config(&[("KEYGUARD_MODE", "deactivate")]).unwrap()).unwrap();
    let (logs, _capture) = Logs::capture();
    g.handle(&event).await.unwrap();
    let alerts = t.alerts();
    assert_eq!(alerts.len(), 1, "{name:?}: {alerts:#?}");
    let delivery = t.deliveries().pop().unwrap();
    (alerts[0].clone(), keyguard_core::chat::notification(&delivery.facts), t, logs)
}

fn layout(text: &str) -> Vec<String> {
    // The label of each line (what precedes the first ':'), which user text must never add to or change.
    text.lines().map(|l| l.split(':').next().unwrap_or("").chars().take(20).collect()).collect()
}

#[tokio::test]
async fn user_controlled_text_is_inert_in_every_output() {
    let (benign, benign_chat, _, _) = alerted("maria.silva").await;
    for name in HOSTILE {
        let (alert, chat, t, logs) = alerted(name).await;
        // Subject: printable ASCII, one line, within SNS's limit.
        assert!(
            alert.subject.len() <= 99 && alert.subject.bytes().all(|b| (0x20..=0x7e).contains(&b)),
            "{:?}",
            alert.subject
        );
        // E-mail body: the same lines, with the same labels, as a benign user's; no control character but '\n'.
        assert_eq!(alert.text.lines().count(), benign.text.lines().count(), "{name:?}:\n{}", alert.text);
        assert_eq!(layout(&alert.text).len(), layout(&benign.text).len());
        assert_eq!(alert.text.matches("\nVerdict:").count(), 1, "{}", alert.text);
        assert!(alert.text.chars().all(|c| c == '\n' || !c.is_control()), "{:?}", alert.text);
        assert!(!alert.text.contains('\u{2028}'));
        // JSON: lossless (the exact text, escaped by JSON), and the structured message parses.
        assert_eq!(alert.json["user"]["name"], *name);
        assert_eq!(alert.json["creator"]["user_agent"], HOSTILE_AGENT);
        let message: Value = serde_json::from_str(&alert.sns_message()).unwrap();
        assert_eq!(message["email"], alert.text.as_str());
        let machine: Value = serde_json::from_str(message["sqs"].as_str().unwrap()).unwrap();
        assert_eq!(machine, alert.json);
        // Chat: every outside value in a code span that cannot be closed, no mention, link or line of its own.
        let content = &chat["content"];
        let description = content["description"].as_str().unwrap();
        assert_eq!(
            description.lines().count(),
            benign_chat["content"]["description"].as_str().unwrap().lines().count()
        );
        let title = content["title"].as_str().unwrap();
        assert!(!title.contains('\n'), "{title:?}");
        for text in [title, description] {
            assert!(!text.contains('<') && !text.contains('>'), "no mention or link can open: {text:?}");
        }
        for text in [title, description]
            .into_iter()
            .chain(content["nextSteps"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()))
        {
            assert!(!text.contains('<'), "no mention or link can open: {text:?}");
            assert_eq!(text.matches('`').count() % 2, 0, "code spans all closed: {text:?}");
        }
        // HTML evidence report: escaped.
        let g = t.guard(&t.config(&[("KEYGUARD_MODE", "dry-run")]).unwrap()).unwrap();
        let valve = keyguard_aws::act::Valve::new("test", 0);
        let outcome = g
            .audit(
                ACCOUNT,
                &keyguard_aws::audit::Options::default(),
                None::<&keyguard_aws::SdkCloudTrail>,
                &valve,
                &|_, _| (),
            )
            .await
            .unwrap();
        let html = keyguard_core::html::render(
            &ReportContext {
                source: "test".into(),
                accounts: vec![],
                generated_at: t.now(),
                window: TimeDelta::minutes(10),
                exemptions: vec![],
            },
            &outcome.rows,
        );
        for raw in ["<script>", "<img", "<@U0123>", "<b>"] {
            assert!(!html.contains(raw), "{raw} unescaped in the HTML report");
        }
        if name.contains("<script>") {
            assert!(html.contains("&lt;script&gt;"), "the name is shown, escaped");
        }
        // Logs: one JSON object per line whatever the name holds (Logs::lines fails otherwise).
        assert!(!logs.lines().is_empty());
    }
}
