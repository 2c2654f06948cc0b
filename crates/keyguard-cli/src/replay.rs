//! `keyguard replay`: CloudTrail history through the same parser and rule.
//!
//! Files are read by every core at once (rayon), one file per worker at a time: read, decompress into a reused
//! buffer, pick out the few calls that shape a user's setup ([`parse`]), and add them to the worker's
//! [`Timeline`]. The timelines are merged at the end and decided with the creator known. Memory grows with the
//! number of users, not with the archive. S3 objects are downloaded with bounded concurrency and handed to the
//! same workers ([`s3`]).
//!
//! A file that cannot be read, decompressed or parsed is logged and counted; the findings of the others are still
//! printed, and the exit code is then 2.

mod parse;
mod s3;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use keyguard_core::{AuditRow, IamCall, Policy, Timeline};
use rayon::prelude::*;

use parse::Layout;

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub policy: crate::PolicyArgs,
    /// Files, directories (S3 delivery layout: AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz) or
    /// s3://bucket/prefix. Files may be gzip'd CloudTrail log files, `.json` (a log file, one EventBridge event or
    /// an array of them) or `.jsonl` (JSON lines of EventBridge events).
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Only calls at or after this time (RFC 3339, or YYYY-MM-DD for the start of that day, UTC).
    #[arg(long, value_parser = since_bound)]
    pub since: Option<DateTime<Utc>>,
    /// Only calls at or before this time (RFC 3339, or YYYY-MM-DD for the whole of that day, UTC).
    #[arg(long, value_parser = until_bound)]
    pub until: Option<DateTime<Utc>>,
    /// Only calls recorded in this account (`recipientAccountId`); repeat for several.
    #[arg(long = "account", value_name = "ACCOUNT")]
    pub accounts: Vec<String>,
    /// Parse threads [default: every core, or RAYON_NUM_THREADS].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// S3 objects downloaded at once.
    #[arg(long, default_value_t = 16)]
    pub downloads: usize,
    #[arg(long, value_enum, default_value_t = crate::output::Format::Table)]
    pub format: crate::output::Format,
}

fn since_bound(text: &str) -> Result<DateTime<Utc>, String> {
    bound(text, NaiveTime::MIN, TimeDelta::zero())
}

fn until_bound(text: &str) -> Result<DateTime<Utc>, String> {
    // The last instant of the day: eventTime may carry fractions of a second.
    bound(text, NaiveTime::MIN, TimeDelta::days(1) - TimeDelta::nanoseconds(1))
}

fn bound(text: &str, at: NaiveTime, plus: TimeDelta) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is neither RFC 3339 (2025-03-11T14:02:07Z) nor a date (2025-03-11)"))?;
    Ok(day.and_time(at).and_utc() + plus)
}

/// Which calls count: `--since`, `--until`, `--account`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub accounts: Vec<String>,
}

impl Filter {
    fn keeps(&self, call: &IamCall) -> bool {
        self.since.is_none_or(|s| call.event_time >= s)
            && self.until.is_none_or(|u| call.event_time <= u)
            && (self.accounts.is_empty() || call.account.as_ref().is_some_and(|a| self.accounts.contains(a)))
    }

    /// Whether a file of the S3 delivery layout can hold calls at or after `--since`, judged by the date in its
    /// path (`.../YYYY/MM/DD/...`, the UTC day CloudTrail delivered it: its calls are no later). A day of slack.
    fn may_hold(&self, path: &str) -> bool {
        match (self.since, path_date(path)) {
            (Some(since), Some(day)) => day + TimeDelta::days(2) > since.date_naive(),
            _ => true,
        }
    }
}

/// The `YYYY/MM/DD` of an S3-layout path, if it has one.
fn path_date(path: &str) -> Option<NaiveDate> {
    let parts: Vec<&str> = path.split(['/', '\\']).collect();
    parts.windows(3).rev().find_map(|w| {
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(w[0], 4) && digits(w[1], 2) && digits(w[2], 2)) {
            return None;
        }
        NaiveDate::from_ymd_opt(w[0].parse().ok()?, w[1].parse().ok()?, w[2].parse().ok()?)
    })
}

/// Whether a name found by walking a directory or listing a prefix is a file replay reads, and how.
/// CloudTrail's digest files (`CloudTrail-Digest/`) hold hashes, not calls.
fn layout_of(name: &str) -> Option<Layout> {
    if name.contains("CloudTrail-Digest/") || name.contains("CloudTrail-Digest\\") {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let base = lower.strip_suffix(".gz").unwrap_or(&lower);
    if base.ends_with(".jsonl") || base.ends_with(".ndjson") {
        Some(Layout::Lines)
    } else if base.ends_with(".json") {
        Some(Layout::Document)
    } else {
        None
    }
}

/// The counters of the summary line.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub files: u64,
    /// Files left out by their path's date (`--since`).
    pub skipped: u64,
    pub compressed: u64,
    /// Uncompressed bytes parsed.
    pub bytes: u64,
    pub records: u64,
    /// Calls added to the timelines.
    pub kept: u64,
    /// Files (or lines, events, records) that could not be read.
    pub errors: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.files += o.files;
        self.skipped += o.skipped;
        self.compressed += o.compressed;
        self.bytes += o.bytes;
        self.records += o.records;
        self.kept += o.kept;
        self.errors += o.errors;
    }
}

/// A worker's result: its timeline and its counters.
#[derive(Default)]
pub struct Acc {
    timeline: Timeline,
    stats: Stats,
}

impl Acc {
    fn merge(mut self, other: Acc) -> Acc {
        self.timeline.merge(other.timeline);
        self.stats.add(&other.stats);
        self
    }

    /// Adds one file's outcome.
    fn file(mut self, name: &str, outcome: FileOutcome, filter: &Filter) -> Acc {
        self.stats.files += 1;
        self.stats.compressed += outcome.compressed;
        match outcome.parsed {
            Ok(parsed) => {
                self.stats.bytes += outcome.bytes;
                self.stats.records += parsed.records;
                for (at, problem) in &parsed.problems {
                    tracing::warn!(
                        path = name,
                        at = at.as_str(),
                        problem = problem.as_str(),
                        "unreadable part skipped"
                    );
                    self.stats.errors += 1;
                }
                for call in parsed.calls.iter().filter(|c| filter.keeps(c)) {
                    if self.timeline.add(call) {
                        self.stats.kept += 1;
                    }
                }
            }
            Err(problem) => {
                tracing::warn!(path = name, problem = problem.as_str(), "file could not be read");
                self.stats.errors += 1;
            }
        }
        self
    }
}

/// What became of one file.
struct FileOutcome {
    compressed: u64,
    /// Uncompressed size.
    bytes: u64,
    parsed: Result<parse::Parsed, String>,
}

/// A worker's reusable buffers: the file as read, and decompressed.
#[derive(Default)]
struct Buffers {
    raw: Vec<u8>,
    plain: Vec<u8>,
}

impl Buffers {
    /// Decompresses `data` if it is gzip (by its magic number, whatever the name), then parses it.
    fn parse(&mut self, data: &[u8], name: &str, layout: Layout) -> FileOutcome {
        let compressed = data.len() as u64;
        let fail = |problem: String| FileOutcome { compressed, bytes: 0, parsed: Err(problem) };
        let plain: &[u8] = if data.starts_with(&[0x1f, 0x8b]) {
            self.plain.clear();
            if let Err(e) = flate2::read::MultiGzDecoder::new(data).read_to_end(&mut self.plain) {
                return fail(format!("cannot decompress: {e}"));
            }
            &self.plain
        } else {
            data
        };
        FileOutcome { compressed, bytes: plain.len() as u64, parsed: parse::file(plain, name, layout) }
    }

    fn local(&mut self, path: &Path, layout: Layout) -> FileOutcome {
        let name = path.display().to_string();
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let outcome = match std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut raw)) {
            Ok(_) => self.parse(&raw, &name, layout),
            Err(e) => FileOutcome { compressed: 0, bytes: 0, parsed: Err(format!("cannot read: {e}")) },
        };
        self.raw = raw;
        outcome
    }
}

/// Every file to read under the local paths, with its layout, sent to the parse workers as the walk finds them
/// (a years-long archive has millions of files: their names are not collected). Explicitly named files are read
/// whatever their name; directories are walked for `.json`, `.json.gz`, `.jsonl` and `.ndjson` (gzip'd or not).
/// Returns the counters of the walk (files skipped by date, directories that could not be listed).
fn walk_all(paths: &[PathBuf], filter: &Filter, tx: &SyncSender<(PathBuf, Layout)>) -> Stats {
    let mut stats = Stats::default();
    for path in paths {
        let sent = if path.is_dir() {
            walk(path, filter, &mut stats, tx)
        } else {
            tx.send((path.clone(), layout_of(&path.to_string_lossy()).unwrap_or(Layout::Document))).is_ok()
        };
        if !sent {
            break;
        }
    }
    stats
}

/// Walks one directory (depth first, sorted by name); false when the workers are gone.
fn walk(dir: &Path, filter: &Filter, stats: &mut Stats, tx: &SyncSender<(PathBuf, Layout)>) -> bool {
    let listed = std::fs::read_dir(dir).and_then(|entries| {
        entries.map(|e| e.and_then(|e| Ok((e.path(), e.file_type()?.is_dir())))).collect::<std::io::Result<Vec<_>>>()
    });
    let mut entries = match listed {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(path = %dir.display(), problem = %e, "directory could not be listed");
            stats.errors += 1;
            return true;
        }
    };
    entries.sort();
    for (path, is_dir) in entries {
        if is_dir {
            if path.file_name().is_some_and(|n| n == "CloudTrail-Digest") {
                continue;
            }
            if !walk(&path, filter, stats, tx) {
                return false;
            }
            continue;
        }
        let name = path.to_string_lossy();
        let Some(layout) = layout_of(&name) else { continue };
        if !filter.may_hold(&name) {
            stats.skipped += 1;
        } else if tx.send((path, layout)).is_err() {
            return false;
        }
    }
    true
}

fn pool(jobs: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    // 0 lets rayon decide: RAYON_NUM_THREADS, else every core.
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.unwrap_or(0))
        .thread_name(|i| format!("replay-{i}"))
        .build()
        .context("starting the parse threads")
}

/// What a replay found, and how many inputs it could not read (the caller prints the rows, then fails: exit 2).
pub struct Replayed {
    pub rows: Vec<AuditRow>,
    pub errors: u64,
}

/// Reads every source, builds the timelines, decides. Prints the summary line to stderr.
pub async fn run(args: &ReplayArgs, policy: &Policy) -> anyhow::Result<Replayed> {
    let started = Instant::now();
    let filter = Filter { since: args.since, until: args.until, accounts: args.accounts.clone() };
    if let (Some(s), Some(u)) = (filter.since, filter.until)
        && s > u
    {
        anyhow::bail!("--since {s} is after --until {u}");
    }
    let pool = pool(args.jobs)?;
    let (remote, local): (Vec<&String>, Vec<&String>) = args.paths.iter().partition(|p| p.starts_with("s3://"));
    let local: Vec<PathBuf> = local.into_iter().map(PathBuf::from).collect();
    if let Some(missing) = local.iter().find(|p| !p.exists()) {
        anyhow::bail!("{}: no such file or directory", missing.display());
    }
    // One thread walks the directories; the pool reads what it finds, as it finds it. The walker owns the
    // sender: when it is done, the channel closes and the workers finish.
    let (tx, rx) = sync_channel::<(PathBuf, Layout)>(1024);
    let (mut acc, walked) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let (local, filter) = (&local, &filter);
            let walker = scope.spawn(move || walk_all(local, filter, &tx));
            let acc = pool.install(|| {
                rx.into_iter()
                    .par_bridge()
                    .map_init(Buffers::default, |b, (path, layout)| {
                        let outcome = b.local(&path, layout);
                        (path, outcome)
                    })
                    .fold(Acc::default, |acc, (path, outcome)| acc.file(&path.display().to_string(), outcome, filter))
                    .reduce(Acc::default, Acc::merge)
            });
            (acc, walker.join())
        })
    });
    acc.stats.add(&walked.map_err(|_| anyhow::anyhow!("the directory walk failed"))?);
    if !remote.is_empty() {
        let sdk = keyguard_aws::sdk_config().await;
        for url in remote {
            let more = s3::replay(&sdk, url, &filter, &pool, args.downloads.max(1)).await?;
            acc = acc.merge(more);
        }
    }
    let users = acc.timeline.user_count();
    let rows = acc.timeline.rows(policy);
    let s = &acc.stats;
    summary(s, users, started.elapsed().as_secs_f64());
    Ok(Replayed { rows, errors: s.errors })
}

fn summary(s: &Stats, users: usize, seconds: f64) {
    let mb = s.bytes as f64 / 1e6;
    let rss = peak_rss_kib().map(|k| format!(", peak RSS {:.1} MB", k as f64 * 1024.0 / 1e6)).unwrap_or_default();
    let skipped = if s.skipped > 0 { format!(" (+{} skipped by date)", s.skipped) } else { String::new() };
    eprintln!(
        "replay: {} files{skipped}, {mb:.1} MB ({:.1} MB compressed), {} records, {} kept, {users} users, {} errors, \
         {seconds:.2} s ({:.1} MB/s){rss}",
        s.files,
        s.compressed as f64 / 1e6,
        s.records,
        s.kept,
        s.errors,
        if seconds > 0.0 { mb / seconds } else { 0.0 },
    );
}

/// The process's peak resident set (`VmHWM`), on Linux.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn bounds_read_dates_and_instants() {
        assert_eq!(since_bound("2025-03-11").unwrap().to_rfc3339(), "2025-03-11T00:00:00+00:00");
        assert_eq!(until_bound("2025-03-11").unwrap().to_rfc3339(), "2025-03-11T23:59:59.999999999+00:00");
        assert_eq!(until_bound("2025-03-11T14:02:07Z").unwrap().to_rfc3339(), "2025-03-11T14:02:07+00:00");
        assert!(since_bound("yesterday").is_err());
    }

    #[test]
    fn layouts_and_dates_from_names() {
        assert_eq!(layout_of("a/b.json.gz"), Some(Layout::Document));
        assert_eq!(layout_of("a/b.JSONL"), Some(Layout::Lines));
        assert_eq!(layout_of("a/b.ndjson.gz"), Some(Layout::Lines));
        assert_eq!(layout_of("a/b.txt"), None);
        assert_eq!(layout_of("AWSLogs/1/CloudTrail-Digest/us-east-1/2025/03/11/x.json.gz"), None);
        let p = "AWSLogs/111122223333/CloudTrail/us-east-1/2025/03/11/111122223333_CloudTrail_us-east-1_x.json.gz";
        assert_eq!(path_date(p), NaiveDate::from_ymd_opt(2025, 3, 11));
        let f = Filter { since: Some(since_bound("2025-03-13").unwrap()), ..Filter::default() };
        assert!(!f.may_hold(p));
        let f = Filter { since: Some(since_bound("2025-03-12T23:00:00Z").unwrap()), ..Filter::default() };
        assert!(f.may_hold(p), "a day of slack");
        assert!(f.may_hold("events.jsonl"));
    }
}
