//! `make bench` (guard and audit part): figures with a baseline from the same run, never asserted.
//!
//! - binary sizes (release `bootstrap`, and the arm64 package when `make build` made one);
//! - cold start to ready of the release `bootstrap`, against a minimal `lambda_runtime` function built with the same
//!   release build (bench/floors `lambda_floor`: the floor) and spawning `/bin/true`;
//! - per-event latency and IAM calls per event of the Guard on moto, against the floor of two round trips (the three
//!   reads side by side, then the SNS publish) and one bare GetUser;
//! - peak memory of `keyguard handle` (release) on a batch of events;
//! - audit of 1,000 and 10,000 users on moto: wall time and API calls, with the credential report against
//!   reading every user (`--no-credential-report`, the baseline).
//!
//! `cargo run --profile bench-harness -p keyguard-tests --no-default-features --example bench_audit -- [--users
//! 1000,10000] [--events 200] [--audit-only]`. The `bench-harness` profile optimizes KeyGuard's crates and the
//! SDK's per-call path as release does, without LTO; the per-event and audit figures are this harness calling the
//! library in process. The binaries it starts (`bootstrap`, `keyguard`, the floor) are the release build
//! ([`keyguard_tests::release_binaries`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_iam::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_iam::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_iam::error::BoxError;

use futures::stream::{self, StreamExt};
use keyguard_aws::accounts::OneAccount;
use keyguard_aws::audit::Options;
use keyguard_aws::{DynamoLedger, Guard, SdkIam, SdkSns, SdkSweepQueue};

/// The guard over one counted account (calls are counted by the `SdkIam` adapter).
type CountedGuard = Guard<OneAccount<SdkIam>, DynamoLedger, SdkSns, SdkSweepQueue>;
use keyguard_core::Config;
use keyguard_tests::{AlertSink, Caller, Iam, Moto, aws_env, repo, unique};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn p95(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--audit-only") {
        for users in arg("--users", "1000,10000").split(',').filter_map(|n| n.trim().parse::<usize>().ok()) {
            audit_bench(users).await?;
        }
        return Ok(());
    }
    let release = keyguard_tests::release_binaries()?;
    let release = |bin: &str| release.join(bin);

    println!("## Sizes");
    for bin in ["bootstrap", "keyguard"] {
        println!("release {bin:<10} {:>10} bytes (x86_64)", std::fs::metadata(release(bin))?.len());
    }
    let zip = repo().join("target/lambda/bootstrap/bootstrap.zip");
    match std::fs::metadata(&zip) {
        Ok(m) => println!("arm64 package      {:>10} bytes (target/lambda/bootstrap/bootstrap.zip)", m.len()),
        Err(_) => println!("arm64 package      (run `make build` to measure)"),
    }

    let moto = Moto::start()?;
    println!("\n## Cold start to ready (50 runs each, interleaved, median)");
    let mut spawn = Vec::new();
    let mut floor = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        Command::new("true").status()?;
        spawn.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let out = Command::new(release("lambda_floor"))
            .env_clear()
            .envs(aws_env(&moto.endpoint))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        floor.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(String::from_utf8_lossy(&out.stderr).contains("floor ready"), "lambda_floor did not start");
        let t = Instant::now();
        // Without AWS_LAMBDA_RUNTIME_API the runtime stops right after start-up: we time up to "keyguard ready".
        let out = Command::new(release("bootstrap"))
            .env_clear()
            .envs(aws_env(&moto.endpoint))
            .env("KEYGUARD_MODE", "dry-run")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let output = out.wait_with_output()?;
        let elapsed = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(String::from_utf8_lossy(&output.stderr).contains("keyguard ready"), "bootstrap did not start");
        ready.push(elapsed);
    }
    let (s, f, r) = (median(spawn), median(floor), median(ready));
    println!("spawn /bin/true              {s:8.2} ms");
    println!("minimal lambda_runtime fn    {f:8.2} ms   (the floor: bench/floors lambda_floor, same release build)");
    println!("bootstrap to ready and exit  {r:8.2} ms   ({:.1}x the floor)", r / f);

    let sdk = moto.sdk().await;
    let iam = Iam::new(&sdk);
    let events_n: usize = arg("--events", "200").parse()?;
    println!("\n## Guard per event on moto ({events_n} CreateAccessKey events of console users, notify mode)");
    let alerts = AlertSink::new(&sdk).await?;
    let admin = Caller::IamUser("jordan.admin".into());
    let mut events = Vec::new();
    let mut names = Vec::new();
    for _ in 0..events_n {
        let name = unique("bench");
        names.push(name.clone());
        iam.create_user(&admin, &name, None, &[]).await?;
        iam.create_password(&admin, &name).await?;
        events.push(iam.create_key(&admin, &name).await?.event);
    }
    let counted = SdkIam::new(aws_sdk_iam::Client::new(&sdk));
    let sns = SdkSns::new(aws_sdk_sns::Client::new(&sdk), alerts.topic_arn.clone());
    let guard = CountedGuard::new(
        OneAccount::new(keyguard_tests::ACCOUNT, counted.clone()),
        None,
        Some(sns),
        None,
        &config(&[("KEYGUARD_MODE", "notify"), ("KEYGUARD_TOPIC_ARN", &alerts.topic_arn)]),
    )?;
    let mut bare = Vec::new();
    for _ in 0..events_n {
        let t = Instant::now();
        iam.client.get_user().user_name("jordan.admin").send().await.ok();
        bare.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // The floor of one event: the guard's two round trips done bare, the three reads side by side, then the publish.
    let sns_client = aws_sdk_sns::Client::new(&sdk);
    let mut two_trips = Vec::new();
    for name in &names {
        let t = Instant::now();
        let _ = tokio::join!(
            iam.client.get_user().user_name(name).send(),
            iam.client.get_login_profile().user_name(name).send(),
            iam.client.list_access_keys().user_name(name).send()
        );
        sns_client.publish().topic_arn(&alerts.topic_arn).message("bench floor").send().await?;
        two_trips.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut latency = Vec::new();
    let before = counted.calls();
    for e in &events {
        let t = Instant::now();
        guard.handle(e).await?;
        latency.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let calls = (counted.calls() - before) as f64 / events_n as f64;
    let (b, m) = (median(bare.clone()), median(latency.clone()));
    println!("one GetUser (baseline)       median {b:7.2} ms  p95 {:7.2} ms", p95(bare));
    let f = median(two_trips.clone());
    println!(
        "two round trips (the floor)  median {f:7.2} ms  p95 {:7.2} ms  (3 reads side by side, then Publish)",
        p95(two_trips)
    );
    println!(
        "guard.handle                 median {m:7.2} ms  p95 {:7.2} ms  ({:.1}x one GetUser, {:.1}x the floor)",
        p95(latency),
        m / b,
        m / f
    );
    println!(
        "IAM calls per event          {calls:.2} (GetUser, GetLoginProfile, ListAccessKeys concurrently) + 1 SNS Publish"
    );
    let _ = alerts.drain().await;

    println!("\n## Peak memory of `keyguard handle` (release, dry-run, the {events_n} events from one file)");
    let file = std::env::temp_dir().join(format!("{}.jsonl", unique("bench-events")));
    std::fs::write(&file, events.iter().map(|e| e.to_string() + "\n").collect::<String>())?;
    let mut child = Command::new(release("keyguard"))
        .args(["handle", file.to_str().unwrap_or_default()])
        .env_clear()
        .envs(aws_env(&moto.endpoint))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut peak_kib = 0u64;
    while child.try_wait()?.is_none() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            && let Some(v) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kib = v.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(peak_kib).max(peak_kib);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("peak RSS (VmHWM)             {:.1} MiB", peak_kib as f64 / 1024.0);
    let _ = std::fs::remove_file(&file);
    drop(moto);

    for users in arg("--users", "1000,10000").split(',').filter_map(|n| n.trim().parse::<usize>().ok()) {
        audit_bench(users).await?;
    }
    Ok(())
}

/// Counts IAM requests by action (the `Action=` of each query request), for the calls per flagged user.
#[derive(Debug, Clone, Default)]
struct ByAction(Arc<Mutex<BTreeMap<String, usize>>>);

impl Intercept for ByAction {
    fn name(&self) -> &'static str {
        "BenchCallsByAction"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = String::from_utf8_lossy(context.request().body().bytes().unwrap_or_default()).into_owned();
        let action = body.split('&').find_map(|p| p.strip_prefix("Action=")).unwrap_or("?").to_string();
        *self.0.lock().unwrap().entry(action).or_default() += 1;
        Ok(())
    }
}

/// Calls that do not grow with the findings: the report, the listing's pages, the alias.
const ACCOUNT_WIDE: [&str; 5] = [
    "GenerateCredentialReport",
    "GetCredentialReport",
    "GetAccountAuthorizationDetails",
    "ListUsers",
    "ListAccountAliases",
];

/// The audit of `users` users of the shape on a fresh moto server: 40 % console users without keys, 40 %
/// service accounts with a key made at set-up (no password), 20 % console users with a key made at set-up (half
/// before the password: violations; half after it: suspects). 60 % have a setup key; the 20 % are the findings.
/// Three runs on the same account: reading every user (the baseline), the credential report this audit starts
/// (fresh), and the report the previous run left (older: what the scheduled sweep usually finds).
async fn audit_bench(users: usize) -> anyhow::Result<()> {
    println!(
        "\n## Audit of {users} users on moto (fresh server; 40% console users without keys, 40% service accounts with a setup key, 20% console users with a setup key; window 2 s)"
    );
    let moto = Moto::start()?;
    let sdk = moto.sdk().await;
    let seeding = Instant::now();
    let client = aws_sdk_iam::Client::new(&sdk);
    stream::iter(0..users)
        .map(|i| {
            let client = client.clone();
            async move {
                let name = format!("user-{i:05}");
                let password = || client.create_login_profile().user_name(&name).password("Correct-Horse-9!").send();
                let key = || client.create_access_key().user_name(&name).send();
                client.create_user().user_name(&name).send().await.unwrap();
                match i % 20 {
                    0..8 => drop(password().await.unwrap()),
                    8..16 => drop(key().await.unwrap()),
                    16..18 => {
                        key().await.unwrap();
                        password().await.unwrap();
                    }
                    _ => {
                        password().await.unwrap();
                        key().await.unwrap();
                    }
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    println!("seeded in {:.1} s", seeding.elapsed().as_secs_f64());
    // An older report settles only users older than the window when it was made: a 2 s window and a 3 s pause
    // make these users "old", as in a real account.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut baseline = None;
    println!(
        "{:<40} {:>8} {:>10} {:>10} {:>9} {:>22} {:>10}",
        "path", "wall s", "IAM calls", "per-user", "flagged", "per-user/flagged user", "verdicts"
    );
    for (label, report) in [
        ("every user (baseline)", false),
        ("report, fresh (this audit's)", true),
        ("report, older (made earlier)", true),
    ] {
        let by_action = ByAction::default();
        let client = aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&sdk).interceptor(by_action.clone()).build(),
        );
        let counted = SdkIam::new(client);
        let guard = CountedGuard::new(
            OneAccount::new(keyguard_tests::ACCOUNT, counted.clone()),
            None,
            None,
            None,
            &config(&[("KEYGUARD_MODE", "dry-run"), ("KEYGUARD_SETUP_WINDOW", "2s")]),
        )?;
        let options = Options { concurrency: 8, credential_report: report, ..Default::default() };
        let t = Instant::now();
        let valve = keyguard_aws::act::Valve::new("bench", 0);
        let outcome = guard
            .audit(keyguard_tests::ACCOUNT, &options, None::<&keyguard_aws::SdkCloudTrail>, &valve, &|_, _| ())
            .await?;
        let secs = t.elapsed().as_secs_f64();
        let calls = by_action.0.lock().unwrap().clone();
        let total: usize = calls.values().sum();
        let per_user: usize = calls.iter().filter(|(a, _)| !ACCOUNT_WIDE.contains(&a.as_str())).map(|(_, n)| n).sum();
        let flagged: std::collections::BTreeSet<&str> = outcome
            .rows
            .iter()
            .filter(|r| r.verdict.is_finding() || r.verdict == keyguard_core::Verdict::Exempt)
            .map(|r| r.user.as_str())
            .collect();
        let mut verdicts: Vec<(String, &str)> =
            outcome.rows.iter().map(|r| (r.user.clone(), r.verdict.as_str())).collect();
        verdicts.sort();
        let same = match &baseline {
            None => {
                baseline = Some((secs, total, verdicts));
                "baseline".to_string()
            }
            Some((_, _, base)) => if *base == verdicts { "same" } else { "DIFFERENT" }.to_string(),
        };
        println!(
            "{label:<40} {secs:8.2} {total:10} {per_user:10} {:>9} {:>22.2} {same:>10}",
            flagged.len(),
            per_user as f64 / flagged.len().max(1) as f64
        );
        println!("    calls: {calls:?}");
        if let Some((base_s, base_calls, _)) = &baseline
            && report
        {
            println!(
                "    {:.2}x the baseline's wall time, {:.3}x its calls ({} users, {} read live)",
                secs / base_s,
                total as f64 / *base_calls as f64,
                outcome.users,
                outcome.users_read
            );
        }
    }
    Ok(())
}
