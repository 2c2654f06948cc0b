//! The HTML evidence report in a real browser: `keyguard audit --format html` against moto, opened by headless
//! Chromium from Debian's packages. The test reads the DOM Chromium rendered (every row in the table, one mark per
//! key in the picture, the counts, the scope) and keeps a screenshot beside the report:
//! target/keyguard-report/report.html and report.png.
//!
//! Ignored by `cargo test` (it needs Chromium); `make test-report` installs Chromium when missing and runs it.
//! moto cannot back-date, so the verdicts are made with a 3 s window and real waits, as in audit_moto.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use keyguard_tests::{ACCOUNT, Caller, Iam, Moto, aws_env, run_keyguard, target_dir};
use serde_json::Value;

fn chromium() -> String {
    std::env::var("KEYGUARD_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

fn out_dir() -> PathBuf {
    let dir = target_dir().join("keyguard-report");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless Chromium on a local file, with nothing that reaches out (no sync, no updates, no background
/// networking) and a profile of its own. Returns stdout and stderr.
fn run_chromium(args: &[&str], page: &Path) -> (String, String) {
    let profile = out_dir().join(format!("chromium-profile-{}", std::process::id()));
    let out = Command::new("timeout")
        .arg("120")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (apt-get install chromium, or `make test-report`)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// An account with one user of each kind; returns the moto server.
async fn seed() -> Moto {
    let moto = Moto::start().unwrap();
    let iam = Iam::new(&moto.sdk().await);
    let admin = Caller::IamUser("jordan.admin".into());
    iam.create_user(&admin, "svc-reporting-etl", Some("/service/"), &[]).await.unwrap();
    iam.create_key(&admin, "svc-reporting-etl").await.unwrap();
    iam.create_user(&admin, "nadia.keyless", None, &[]).await.unwrap();
    iam.create_password(&admin, "nadia.keyless").await.unwrap();
    // moto dates a password at its user's creation: a key in its user's own second is "before the password",
    // a violation even with the creator unknown.
    keyguard_tests::align_to_second().await;
    for name in ["maria.silva", "ops+ci@example.com", "break.glass", "kenji.watanabe", "late.lee"] {
        let tags: &[(&str, &str)] = if name == "break.glass" { &[("keyguard:exempt", "true")] } else { &[] };
        iam.create_user(&admin, name, None, tags).await.unwrap();
        iam.create_password(&admin, name).await.unwrap();
        if matches!(name, "maria.silva" | "ops+ci@example.com" | "break.glass") {
            iam.create_key(&admin, name).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    iam.create_key(&admin, "kenji.watanabe").await.unwrap(); // after the password, creator unknown: suspect
    tokio::time::sleep(Duration::from_millis(3000)).await;
    iam.create_key(&admin, "late.lee").await.unwrap(); // outside the 3 s window
    moto
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test]
#[ignore = "needs Debian's chromium: run `make test-report`"]
async fn the_audit_report_renders_in_chromium() {
    let moto = seed().await;
    let env = aws_env(&moto.endpoint);
    let audit =
        |format: &str| run_keyguard(&["audit", "--no-credential-report", "--window", "3s", "--format", format], &env);
    let rows: Vec<Value> =
        String::from_utf8_lossy(&audit("json").stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let verdict_of = |user: &str| {
        rows.iter().find(|r| r["user"] == user).map(|r| r["verdict"].as_str().unwrap().to_string()).unwrap()
    };
    assert_eq!(rows.len(), 7);
    assert_eq!(verdict_of("maria.silva"), "violation");
    assert_eq!(verdict_of("kenji.watanabe"), "suspect");
    assert_eq!(verdict_of("break.glass"), "exempt");
    assert_eq!(verdict_of("late.lee"), "compliant");

    let html = audit("html");
    assert_eq!(html.status.code(), Some(1), "violations found: {}", String::from_utf8_lossy(&html.stderr));
    let report = out_dir().join("report.html");
    std::fs::write(&report, &html.stdout).unwrap();

    let (dom, log) = run_chromium(&["--dump-dom"], &report);
    assert!(dom.contains("KeyGuard evidence report"), "{dom}");
    assert!(!log.contains("Content Security Policy"), "the report tried to load something: {log}");
    // The scope.
    assert!(dom.contains(&format!("<code>{ACCOUNT}</code>")));
    assert!(dom.contains("3s after the user's creation"));
    assert!(dom.contains("<li>users tagged keyguard:exempt=true</li>"), "the exemptions in force");
    // Every row in the table, with its verdict; every key a mark of the same verdict in the picture.
    assert_eq!(count(&dom, "<tr class=\"row "), rows.len());
    for row in &rows {
        let verdict = row["verdict"].as_str().unwrap();
        let Some(key) = row["access_key_id"].as_str() else { continue };
        assert!(
            dom.contains(&format!("<tr class=\"row {verdict}\" data-verdict=\"{verdict}\" data-key=\"{key}\">")),
            "table row of {key}"
        );
        assert_eq!(count(&dom, &format!("data-key=\"{key}\" data-user=")), 1, "one mark for {key}");
        assert!(dom.contains(&format!("<circle class=\"mark {verdict}\"")), "a {verdict} mark");
    }
    let keys = rows.iter().filter(|r| r["access_key_id"].is_string()).count();
    assert_eq!(count(&dom, "<circle class=\"mark "), keys);
    assert!(dom.contains("setup window: 3s"));
    // The counts.
    for verdict in ["violation", "suspect", "compliant", "exempt"] {
        let n = rows.iter().filter(|r| r["verdict"] == verdict).count();
        assert!(dom.contains(&format!("data-verdict=\"{verdict}\"><span class=\"count\">{n}</span>")), "{n} {verdict}");
    }
    // HTML-escaped user names come back as text.
    assert!(dom.contains("ops+ci@example.com"));

    let screenshot = out_dir().join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    run_chromium(
        &[
            "--screenshot=".to_string() + &screenshot.display().to_string(),
            "--window-size=1280,1900".into(),
            "--hide-scrollbars".into(),
        ]
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
        &report,
    );
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(png.len() > 20_000, "more than a blank page: {} bytes", png.len());
    eprintln!("report: {}\nscreenshot: {}", report.display(), screenshot.display());
}
