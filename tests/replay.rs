//! `keyguard replay`, the built binary, on generated CloudTrail archives with known answers
//! (tests/harness/archive.rs): local S3-layout trees, EventBridge events, S3 through moto, filters, broken files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;

use keyguard_tests::archive::{ACCOUNT_A, ACCOUNT_B, EXEMPT_FLAGS, Expected, Scenario, eventbridge, write_gz};
use keyguard_tests::{Moto, aws_env, unique};
use serde_json::{Value, json};

/// A directory removed at the end of the test (kept with KEYGUARD_KEEP_TEMP=1, to look at).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique(name));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEYGUARD_KEEP_TEMP").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keyguard(args: &[&str], env: &[(String, String)]) -> Output {
    let all: Vec<&str> = ["replay", "--format", "json"].iter().chain(args).copied().collect();
    keyguard_tests::run_keyguard(&all, env)
}

/// Runs replay with the scenario's exemption flags.
fn replay(args: &[&str]) -> Output {
    let mut all: Vec<&str> = EXEMPT_FLAGS.to_vec();
    all.extend_from_slice(args);
    keyguard(&all, &[])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The rows printed, reduced to what the answers pin, sorted.
fn rows(out: &Output) -> Vec<Expected> {
    let mut rows: Vec<Expected> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"));
            let text = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_string();
            Expected {
                account: text("account"),
                user: text("user"),
                access_key_id: text("access_key_id"),
                verdict: text("verdict"),
                creator: text("creator"),
            }
        })
        .collect();
    rows.sort();
    rows
}

/// The summary line's counter `name` ("3 errors" -> 3).
fn summary_count(out: &Output, name: &str) -> u64 {
    let err = stderr(out);
    let line = err.lines().find(|l| l.starts_with("replay: ")).unwrap_or_else(|| panic!("no summary in {err}"));
    let words: Vec<&str> = line.split([' ', ',', '(']).filter(|w| !w.is_empty()).collect();
    let at = words.iter().position(|w| *w == name).unwrap_or_else(|| panic!("no {name} in {line}"));
    words[at - 1].parse().unwrap()
}

fn only(expected: &[Expected], users: &[&str]) -> Vec<Expected> {
    expected.iter().filter(|e| users.contains(&e.user.as_str())).cloned().collect()
}

fn layout(scenario: &Scenario, name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let files = scenario.write_s3_layout(dir.path()).unwrap();
    assert!(files.len() > 10, "{} files", files.len());
    dir
}

#[test]
fn the_s3_layout_gives_every_known_answer() {
    let s = Scenario::known_answers();
    let dir = layout(&s, "replay-layout");
    let out = replay(&[dir.arg()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(rows(&out), s.expected);
    assert_eq!(summary_count(&out, "errors"), 0);
    assert_eq!(summary_count(&out, "records"), s.records.len() as u64, "every record read once, duplicates included");
    // The same with one parse thread, and with the files named one by one.
    let out = replay(&["--jobs", "1", dir.arg()]);
    assert_eq!(rows(&out), s.expected);
    let files = s.write_s3_layout(&dir.path().join("again")).unwrap();
    let args: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    assert_eq!(rows(&replay(&args)), s.expected);
}

#[test]
fn without_the_exemption_flags_the_exempt_users_are_violations() {
    let s = Scenario::known_answers();
    let dir = layout(&s, "replay-noexempt");
    let out = keyguard(&[dir.arg()], &[]);
    let want: Vec<Expected> = s
        .expected
        .iter()
        .cloned()
        .map(|mut e| {
            if e.verdict == "exempt" {
                e.verdict = "violation".into();
            }
            e
        })
        .collect();
    assert_eq!(rows(&out), want);
}

#[test]
fn since_and_until_filter_on_event_time() {
    let s = Scenario::known_answers();
    let dir = layout(&s, "replay-window");
    // Days 2 and 3: only users created then.
    let out = replay(&["--since", "2025-03-12", "--until", "2025-03-13", dir.arg()]);
    assert_eq!(rows(&out), only(&s.expected, &["piotr.zielinski", "ana.breakglass", "ops.robot"]));
    assert!(summary_count(&out, "files") < summary_count(&replay(&[dir.arg()]), "files"), "day-0 files are skipped");
    // Until the end of day 2: nina (day 4) is out, and pavel's password (day 3) too, so his key is compliant.
    let out = replay(&["--until", "2025-03-12", dir.arg()]);
    let mut want: Vec<Expected> = s.expected.iter().filter(|e| e.user != "nina.k").cloned().collect();
    want.iter_mut().filter(|e| e.user == "pavel.novak").for_each(|e| e.verdict = "compliant".into());
    assert_eq!(rows(&out), want);
    // RFC 3339 bounds are inclusive instants.
    let out = replay(&["--since", "2025-03-14T09:00:00Z", dir.arg()]);
    assert_eq!(rows(&out), only(&s.expected, &["nina.k"]));
    let out = replay(&["--since", "2025-03-14T09:00:01Z", dir.arg()]);
    assert_eq!(rows(&out), vec![]);
    assert_eq!(out.status.code(), Some(0));
    // A bad bound stops with exit code 2.
    let out = replay(&["--since", "last tuesday", dir.arg()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn account_filters_on_the_recipient_account() {
    let s = Scenario::known_answers();
    let dir = layout(&s, "replay-account");
    let out = replay(&["--account", ACCOUNT_B, dir.arg()]);
    assert_eq!(rows(&out), only(&s.expected, &["bob.builder"]));
    let out = replay(&["--account", ACCOUNT_A, dir.arg()]);
    let want: Vec<Expected> = s.expected.iter().filter(|e| e.account == ACCOUNT_A).cloned().collect();
    assert!(!want.is_empty() && want.len() + 1 == s.expected.len());
    assert_eq!(rows(&out), want);
    let out = replay(&["--account", ACCOUNT_A, "--account", ACCOUNT_B, dir.arg()]);
    assert_eq!(rows(&out), s.expected);
}

#[test]
fn eventbridge_lines_and_json_files_give_the_same_answers() {
    let s = Scenario::known_answers();
    let dir = TempDir::new("replay-eventbridge");
    let lines = dir.path().join("events.jsonl");
    s.write_eventbridge_lines(&lines).unwrap();
    let out = replay(&[lines.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(rows(&out), s.expected);

    // `.json`: an array of events, and single events (nina's), in a directory with other files around.
    let (nina, rest): (Vec<_>, Vec<_>) =
        s.records.iter().partition(|r| r.body.to_string().contains("\"userName\":\"nina.k\""));
    assert_eq!(nina.len(), 3);
    let json_dir = dir.path().join("saved");
    std::fs::create_dir_all(&json_dir).unwrap();
    let array: Vec<Value> = rest.iter().map(|r| eventbridge(&r.account, &r.body)).collect();
    std::fs::write(json_dir.join("events.json"), serde_json::to_string_pretty(&array).unwrap()).unwrap();
    for (i, r) in nina.iter().enumerate() {
        let event = serde_json::to_string_pretty(&eventbridge(&r.account, &r.body)).unwrap();
        std::fs::write(json_dir.join(format!("nina-{i}.json")), event).unwrap();
    }
    std::fs::write(json_dir.join("notes.txt"), "not a log file").unwrap();
    let out = replay(&[json_dir.to_str().unwrap()]);
    assert_eq!(rows(&out), s.expected, "{}", stderr(&out));
    assert_eq!(summary_count(&out, "files"), 4);
}

#[test]
fn a_broken_file_exits_2_after_printing_the_other_findings() {
    let s = Scenario::known_answers();
    let dir = layout(&s, "replay-broken");
    let day = dir.path().join(format!("AWSLogs/{ACCOUNT_A}/CloudTrail/us-east-1/2025/03/12"));
    // A gzip cut short, and a gzip of JSON that is not a log file.
    let whole = dir.path().join("whole.json.gz");
    write_gz(&whole, &json!({"Records": [{"eventName": "CreateUser"}]})).unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::remove_file(&whole).unwrap();
    let truncated = day.join(format!("{ACCOUNT_A}_CloudTrail_us-east-1_20250312T2355Z_TRUNCATED0000000.json.gz"));
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = day.join(format!("{ACCOUNT_A}_CloudTrail_us-east-1_20250312T2356Z_NOTJSON000000000.json.gz"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"{\"Records\": [{\"eventName\": ").unwrap();
    std::fs::write(&garbage, gz.finish().unwrap()).unwrap();

    let out = replay(&[dir.arg()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(rows(&out), s.expected, "the other files' findings are printed");
    assert_eq!(summary_count(&out, "errors"), 2);
    let err = stderr(&out);
    for path in [&truncated, &garbage] {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(err.lines().any(|l| l.contains("WARN") && l.contains(name)), "{name} not logged in {err}");
    }
    assert!(err.contains("could not be read"), "{err}");
    // A missing path is an error too.
    let out = replay(&[dir.path().join("nowhere").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_compliant_history_exits_0() {
    let s = Scenario::all_compliant();
    let dir = layout(&s, "replay-compliant");
    let out = replay(&[dir.arg()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(rows(&out), s.expected);
    assert_eq!(s.expected.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_prefixes_are_read_through_the_sdk() {
    let moto = Moto::shared();
    let sdk = moto.sdk().await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let bucket = unique("trail-logs").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();

    let s = Scenario::known_answers();
    let dir = layout(&s, "replay-s3");
    let mut files = Vec::new();
    collect(dir.path(), &mut files);
    for file in &files {
        let key = file.strip_prefix(dir.path()).unwrap().to_str().unwrap().to_string();
        let body = aws_sdk_s3::primitives::ByteStream::from(std::fs::read(file).unwrap());
        s3.put_object().bucket(&bucket).key(&key).body(body).send().await.unwrap();
    }
    // A digest file and an unrelated object are not log files.
    let digest = format!("AWSLogs/{ACCOUNT_A}/CloudTrail-Digest/us-east-1/2025/03/10/digest.json.gz");
    let body = aws_sdk_s3::primitives::ByteStream::from(br#"{"awsAccountId": "1", "logFiles": []}"#.to_vec());
    s3.put_object().bucket(&bucket).key(&digest).body(body).send().await.unwrap();
    let body = aws_sdk_s3::primitives::ByteStream::from(b"hello".to_vec());
    s3.put_object().bucket(&bucket).key("README.txt").body(body).send().await.unwrap();

    let mut args: Vec<&str> = EXEMPT_FLAGS.to_vec();
    let url = format!("s3://{bucket}/AWSLogs/");
    args.extend(["--downloads", "3", url.as_str()]);
    let out = keyguard(&args, &aws_env(&moto.endpoint));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(rows(&out), s.expected);
    assert_eq!(summary_count(&out, "files"), files.len() as u64);

    // A narrower prefix: one account's logs.
    let url = format!("s3://{bucket}/AWSLogs/{ACCOUNT_B}/");
    let out = keyguard(&[url.as_str()], &aws_env(&moto.endpoint));
    assert_eq!(rows(&out), only(&s.expected, &["bob.builder"]));

    // A bucket that does not exist: reported, exit code 2.
    let out = keyguard(&["s3://no-such-bucket-keyguard/AWSLogs/"], &aws_env(&moto.endpoint));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("NoSuchBucket"), "{}", stderr(&out));
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { collect(&path, files) } else { files.push(path) }
    }
}

#[test]
fn organization_trails_keep_accounts_apart() {
    let s = Scenario::org_namesakes();
    let dir = TempDir::new("replay-org");
    let files = s.write_org_layout(dir.path(), "o-a1b2c3d4e5").unwrap();
    assert!(files.iter().all(|f| f.to_string_lossy().contains("/AWSLogs/o-a1b2c3d4e5/")));
    let out = keyguard(&[dir.arg()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(rows(&out), s.expected, "sam.lee of A and sam.lee of B are two users");
    assert_eq!(summary_count(&out, "users"), 3);
    assert_eq!(summary_count(&out, "errors"), 0, "the digest files beside the logs are not read");
    assert!(stderr(&out).contains("digest files skipped"), "{}", stderr(&out));

    // --account leaves the other account's folders unread.
    let out = keyguard(&["--account", ACCOUNT_B, dir.arg()], &[]);
    let want: Vec<Expected> = s.expected.iter().filter(|e| e.account == ACCOUNT_B).cloned().collect();
    assert_eq!(rows(&out), want);
    assert!(stderr(&out).contains("skipped by path"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_holds_users_created_in_the_history_not_every_rotation() {
    use keyguard_replay::{LocalPaths, Options, Source};
    let s = Scenario::old_rotations(150, 20);
    let dir = layout(&s, "replay-rotations");
    let old_keys = 150 * 20;
    let policy =
        keyguard_core::Policy { window: chrono::TimeDelta::minutes(10), exemptions: keyguard_core::Exemptions::none() };
    let run = |spill_after: usize| {
        let policy = policy.clone();
        let dir = dir.path().to_path_buf();
        async move {
            let sources: Vec<Box<dyn Source>> = vec![Box::new(LocalPaths::new([dir]).unwrap())];
            let options = Options { spill_after, jobs: Some(2), ..Options::new(policy) };
            keyguard_replay::replay(&sources, &options).await.unwrap()
        }
    };
    let answer = |rows: &[keyguard_core::AuditRow]| -> Vec<(String, String)> {
        rows.iter().map(|r| (r.user.clone(), r.verdict.as_str().to_string())).collect()
    };
    let want = vec![("late.one".to_string(), "violation".to_string()), ("late.two".into(), "violation".into())];

    // Holding every pending call: every rotation of every old user is in memory at the end.
    let held = run(usize::MAX).await;
    assert_eq!(answer(&held.rows), want);
    assert!(held.stats.peak_pending >= old_keys, "{:?}", held.stats);
    assert_eq!(held.stats.spilled, 0);

    // Spilling after 100: what a worker holds stays near 100 plus one file's calls, and the late users'
    // keys, spilled before their CreateUser arrived, come back.
    let bounded = run(100).await;
    assert_eq!(answer(&bounded.rows), want);
    assert_eq!(bounded.rows, held.rows);
    assert!(bounded.stats.spilled >= old_keys - 100 * 2, "{:?}", bounded.stats);
    assert!(bounded.stats.peak_pending < 100 + 400, "{:?}", bounded.stats);
    assert_eq!(bounded.users, 2);
}
