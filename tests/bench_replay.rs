//! Replay throughput against a plain parse of the same bytes, in one run.
//!
//! `cargo run --profile bench-harness -p keyguard-tests --no-default-features --example bench_replay -- [--gb 1.0]
//! [--runs 3]`
//!
//! 1. Generates (or reuses) an archive of at least `--gb` GB of uncompressed CloudTrail JSON in the S3 layout,
//!    under `KEYGUARD_BENCH_DIR` or the temp directory (tests/harness/archive.rs `bulk`: realistic records, a
//!    console user set up by an administrator about every 2,000 records).
//! 2. Builds the release binaries ([`keyguard_tests::release_binaries`]: `keyguard` and the floors, one build).
//! 3. Measures, after a warm-up read (page cache): the baseline ceiling (bench/floors `parse_floor`: read + gunzip +
//!    serde_json into `IgnoredAny`, one core and every core), then `keyguard replay`, each the release binary timed
//!    from spawn to exit (one core with RAYON_NUM_THREADS=1, and every core), and checks that replay found exactly
//!    the generated violations.
//!    Each measurement is taken `--runs` times, interleaved, and the best is kept (a shared machine is noisy).
//! 4. Prints MB/s (uncompressed) and events/s for each, replay as a ratio of the baseline, and replay's peak RSS.
//! 5. Memory against history: an archive of 80,000 key rotations by users created before it
//!    (`Scenario::old_rotations`), replayed with the default spill threshold and a lower one, against holding
//!    every pending call in memory (`--spill-after 0`): peak RSS of each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use keyguard_tests::archive::{BulkStats, Scenario, bulk};
use rayon::prelude::*;

const RECORDS_PER_FILE: u64 = 4_000;
/// Bump when the generator changes, so that an archive left by an older bench is not reused.
const ARCHIVE_VERSION: u64 = 1;

fn main() {
    let mut gb = 1.0_f64;
    let mut runs = 3_usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--gb" => gb = args.next().and_then(|v| v.parse().ok()).expect("--gb takes a number, e.g. 1.0"),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs takes a count, e.g. 3"),
            other => panic!("unknown argument {other:?} (usage: bench_replay [--gb 1.0] [--runs 3])"),
        }
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dir = std::env::var("KEYGUARD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("keyguard-bench-replay-{gb}gb")));
    let t = Instant::now();
    let archive = archive(&dir, gb);
    eprintln!("archive: {} ({:.1} s)", dir.display(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    let release = keyguard_tests::release_binaries().expect("release build");
    let (keyguard, floor) = (release.join("keyguard"), release.join("parse_floor"));
    eprintln!("release build: {:.1} s", t.elapsed().as_secs_f64());

    let files = list(&dir);
    let warm: u64 = files.par_iter().map(|f| std::fs::read(f).map(|b| b.len() as u64).unwrap_or(0)).sum();
    assert_eq!(warm, archive.compressed, "the archive in {} changed; delete it", dir.display());

    let load_before = load_average();
    let (mut gunzip_1, mut base_1, mut base_n) = (f64::MAX, f64::MAX, f64::MAX);
    let (mut replay_1, mut replay_n): (Option<Run>, Option<Run>) = (None, None);
    for _ in 0..runs.max(1) {
        gunzip_1 = gunzip_1.min(baseline(&floor, &files, Some(1), false, archive.bytes));
        base_1 = base_1.min(baseline(&floor, &files, Some(1), true, archive.bytes));
        base_n = base_n.min(baseline(&floor, &files, None, true, archive.bytes));
        replay_1 = Some(best(replay_1, replay(&keyguard, &dir, Some(1), &archive)));
        replay_n = Some(best(replay_n, replay(&keyguard, &dir, None, &archive)));
    }
    let (replay_1, replay_n) = (replay_1.unwrap(), replay_n.unwrap());

    let mb = archive.bytes as f64 / 1e6;
    println!();
    println!(
        "replay benchmark: {:.2} GB of CloudTrail JSON ({:.2} GB gzip'd), {} files, {} records, {} users set up, \
         {} cores",
        archive.bytes as f64 / 1e9,
        archive.compressed as f64 / 1e9,
        archive.files,
        archive.records,
        archive.users,
        cores
    );
    println!();
    println!("| run | cores | seconds | MB/s | events/s | of baseline | peak RSS |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let line = |name: &str, cores: usize, secs: f64, base: Option<f64>, rss: Option<f64>| {
        println!(
            "| {name} | {cores} | {secs:.2} | {:.0} | {:.0} | {} | {} |",
            mb / secs,
            archive.records as f64 / secs,
            base.map(|b| format!("{:.0}%", 100.0 * b / secs)).unwrap_or_else(|| "-".into()),
            rss.map(|r| format!("{r:.0} MB")).unwrap_or_else(|| "-".into()),
        )
    };
    line("read + gunzip only", 1, gunzip_1, None, None);
    line("baseline: gunzip + serde_json (IgnoredAny)", 1, base_1, None, None);
    line("baseline: gunzip + serde_json (IgnoredAny)", cores, base_n, None, None);
    line("keyguard replay", 1, replay_1.seconds, Some(base_1), replay_1.peak_rss_mb);
    line("keyguard replay", cores, replay_n.seconds, Some(base_n), replay_n.peak_rss_mb);
    println!();
    println!(
        "(best of {runs}; replay: wall time of the release binary, start to exit; its own summary said {:.2} s and \
         {:.2} s.)",
        replay_1.reported_seconds, replay_n.reported_seconds
    );
    println!("(load average before the runs: {load_before}; after: {}.)", load_average());

    rotations(&keyguard, &dir.with_extension("rotations"));
}

/// Peak RSS of replay on many rotations of old users: spilling them (default and low thresholds) against holding
/// them all.
fn rotations(keyguard: &Path, dir: &Path) {
    const USERS: usize = 1_000;
    const DAYS: i64 = 80;
    if !dir.join("AWSLogs").exists() {
        Scenario::old_rotations(USERS, DAYS).write_s3_layout(dir).unwrap();
    }
    println!();
    println!(
        "replay memory: {} key rotations by {USERS} users created before the history, 2 users created in it",
        USERS as i64 * DAYS
    );
    println!();
    println!("| pending calls held | seconds | calls spilled | peak RSS |");
    println!("| --- | ---: | ---: | ---: |");
    for (label, spill_after) in [("all (no spill)", "0"), ("10,000 (default)", "10000"), ("1,000", "1000")] {
        let t = Instant::now();
        let out = Command::new(keyguard)
            .args(["replay", "--format", "json", "--spill-after", spill_after])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .output()
            .expect("running keyguard");
        let seconds = t.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "the two users created in the history");
        let summary = stderr.lines().find(|l| l.starts_with("replay: ")).unwrap_or_default();
        let spilled = summary.split(", ").find_map(|p| p.strip_suffix(" spilled")).unwrap_or("0");
        let rss = summary.split("peak RSS ").nth(1).unwrap_or("-");
        println!("| {label} | {seconds:.2} | {spilled} | {rss} |");
    }
}

/// The 1-minute load average: other work on the machine skews every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Generates the archive unless a complete one with the same size is already there.
fn archive(dir: &Path, gb: f64) -> BulkStats {
    let manifest = dir.join("bench-manifest.txt");
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        let n: Vec<u64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        if let [version, target, files, bytes, compressed, records, users] = n[..]
            && version == ARCHIVE_VERSION
            && target == (gb * 1e9) as u64
        {
            return BulkStats { files, bytes, compressed, records, users };
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let target = (gb * 1e9) as u64;
    // A sample first, to size the rest.
    let mut total = bulk(dir, 0, 4, RECORDS_PER_FILE).unwrap();
    let per_file = total.bytes / total.files;
    let more = target.saturating_sub(total.bytes).div_ceil(per_file);
    let rest = bulk(dir, total.files, more, RECORDS_PER_FILE).unwrap();
    total = BulkStats {
        files: total.files + rest.files,
        bytes: total.bytes + rest.bytes,
        compressed: total.compressed + rest.compressed,
        records: total.records + rest.records,
        users: total.users + rest.users,
    };
    let text = format!(
        "{ARCHIVE_VERSION} {target} {} {} {} {} {}\n",
        total.files, total.bytes, total.compressed, total.records, total.users
    );
    std::fs::write(manifest, text).unwrap();
    total
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".json.gz") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The ceiling: the release `parse_floor` reads, decompresses and parses every file (serde_json into IgnoredAny) on
/// `threads` cores (every core when `None`); without `parse`, only reads and decompresses (how much of the ceiling
/// is gzip). Wall time from spawn to exit, as for replay; checks it read every uncompressed byte.
fn baseline(floor: &Path, files: &[PathBuf], threads: Option<usize>, parse: bool, bytes: u64) -> f64 {
    let mut cmd = Command::new(floor);
    cmd.env_remove("RAYON_NUM_THREADS");
    if let Some(n) = threads {
        cmd.env("RAYON_NUM_THREADS", n.to_string());
    }
    if !parse {
        cmd.arg("--gunzip-only");
    }
    let t = Instant::now();
    let out = cmd.args(files).output().expect("running parse_floor");
    let secs = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "parse_floor: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), bytes.to_string(), "parse_floor read every byte");
    secs
}

/// The faster run, with the higher peak memory of the two.
fn best(a: Option<Run>, b: Run) -> Run {
    let Some(a) = a else { return b };
    let rss = match (a.peak_rss_mb, b.peak_rss_mb) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    let faster = if a.seconds <= b.seconds { a } else { b };
    Run { peak_rss_mb: rss, ..faster }
}

struct Run {
    seconds: f64,
    reported_seconds: f64,
    peak_rss_mb: Option<f64>,
}

/// `keyguard replay` on the archive; checks it found exactly the generated violations.
fn replay(keyguard: &Path, dir: &Path, threads: Option<usize>, archive: &BulkStats) -> Run {
    let mut cmd = Command::new(keyguard);
    cmd.args(["replay", "--format", "json"]).arg(dir).env_remove("RAYON_NUM_THREADS").env("RUST_LOG", "warn");
    if let Some(n) = threads {
        cmd.env("RAYON_NUM_THREADS", n.to_string());
    }
    let t = Instant::now();
    let out = cmd.output().expect("running keyguard");
    let seconds = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "replay should find the generated violations: {stderr}");
    let violations =
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("\"verdict\":\"violation\"")).count();
    assert_eq!(violations as u64, archive.users, "one violation per generated user");
    let summary = stderr.lines().find(|l| l.starts_with("replay: ")).unwrap_or_else(|| panic!("no summary: {stderr}"));
    eprintln!("{summary}");
    let number_before = |unit: &str| -> Option<f64> {
        let words: Vec<&str> = summary.split([' ', ',', '(', ')']).filter(|w| !w.is_empty()).collect();
        words.windows(2).rev().find(|w| w[1] == unit).and_then(|w| w[0].parse().ok())
    };
    let records = summary.split(", ").find_map(|p| p.strip_suffix(" records")).and_then(|n| n.parse::<u64>().ok());
    assert_eq!(records, Some(archive.records), "replay read every record");
    Run {
        seconds,
        reported_seconds: number_before("s").unwrap_or(f64::NAN),
        peak_rss_mb: number_before("MB").filter(|_| summary.contains("peak RSS")),
    }
}
