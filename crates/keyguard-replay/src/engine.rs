//! The engine's driver: sources read into harvests (a timeline and counters), merged, pending calls restored from
//! the spill, then the rule with the creator known.

use std::time::Instant;

use keyguard_core::{AuditRow, IamCall, Policy, Timeline};

use crate::files::FileOutcome;
use crate::spill::Spill;
use crate::{Filter, ReplayError, Source};

/// How many pending calls a harvest holds before moving them to the spill file (see `keyguard_core::timeline`):
/// about 6 MB (a pending call takes about 600 bytes, measured by `make bench`). Archives whose users were all
/// created in them never reach it.
pub const SPILL_AFTER: usize = 10_000;

/// What a replay is asked to do, besides its sources.
#[derive(Debug, Clone)]
pub struct Options {
    pub policy: Policy,
    pub filter: Filter,
    /// Parse threads; None: every core (or `RAYON_NUM_THREADS`).
    pub jobs: Option<usize>,
    /// Pending calls a worker holds before spilling them to a temporary file ([`SPILL_AFTER`]); `usize::MAX`:
    /// never spill.
    pub spill_after: usize,
}

impl Options {
    /// Every call, every core, the default spill threshold.
    pub fn new(policy: Policy) -> Options {
        Options { policy, filter: Filter::default(), jobs: None, spill_after: SPILL_AFTER }
    }
}

/// What a source reads into: the sources' shared settings and workers.
pub struct Context {
    pub filter: Filter,
    /// The parse workers, for sources with files to parse.
    pub pool: rayon::ThreadPool,
    spill: Spill,
    spill_after: usize,
}

/// The counters of the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    /// Files left out by their path (date before `--since`, another account's folder).
    pub skipped: u64,
    /// Digest files left out.
    pub digests: u64,
    pub compressed: u64,
    /// Uncompressed bytes parsed.
    pub bytes: u64,
    /// Records (or events, or Athena rows) seen.
    pub records: u64,
    /// Calls added to the timelines.
    pub kept: u64,
    /// Calls moved to the spill file (users not seen created yet).
    pub spilled: u64,
    /// The most pending calls one harvest held at once (merged harvests included).
    pub peak_pending: u64,
    /// Files (or lines, events, records, listings) that could not be read.
    pub errors: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.files += o.files;
        self.skipped += o.skipped;
        self.digests += o.digests;
        self.compressed += o.compressed;
        self.bytes += o.bytes;
        self.records += o.records;
        self.kept += o.kept;
        self.spilled += o.spilled;
        self.peak_pending = self.peak_pending.max(o.peak_pending);
        self.errors += o.errors;
    }
}

/// What a source (or one of its workers) read: a timeline and counters. Harvests merge.
#[derive(Default)]
pub struct Harvest {
    timeline: Timeline,
    pub stats: Stats,
}

impl Harvest {
    /// Joins another harvest into this one, then spills if too much is pending.
    pub fn merge(mut self, other: Harvest, context: &Context) -> Harvest {
        self.timeline.merge(other.timeline);
        self.stats.add(&other.stats);
        self.relieve(context);
        self
    }

    /// Moves the pending calls to the spill file once there are `spill_after` of them.
    fn relieve(&mut self, context: &Context) {
        let pending = self.timeline.pending_len();
        self.stats.peak_pending = self.stats.peak_pending.max(pending as u64);
        if pending >= context.spill_after {
            let taken = self.timeline.take_pending();
            context.spill.write(&taken);
            self.stats.spilled += taken.len() as u64;
        }
    }

    /// Adds calls (of one file, one page): those the filter keeps, creations first (so that a user's other calls
    /// in the same batch join it instead of waiting as pending). Then spills if too much is pending.
    pub fn calls(&mut self, mut calls: Vec<IamCall>, context: &Context) {
        calls.sort_by_key(|c| c.event_name != "CreateUser");
        for call in calls.iter().filter(|c| context.filter.keeps(c)) {
            if self.timeline.add(call) {
                self.stats.kept += 1;
            }
        }
        self.relieve(context);
    }

    /// Adds one file's outcome: its calls, or its error (logged with its name).
    pub fn file(mut self, name: &str, outcome: FileOutcome, context: &Context) -> Harvest {
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
                self.calls(parsed.calls, context);
            }
            Err(problem) => {
                tracing::warn!(path = name, problem = problem.as_str(), "file could not be read");
                self.stats.errors += 1;
            }
        }
        self
    }
}

/// What a replay found.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Every key created for a user whose creation is in the history, with its verdict and creator.
    pub rows: Vec<AuditRow>,
    pub stats: Stats,
    /// Users created in the history.
    pub users: usize,
    pub seconds: f64,
}

impl Replayed {
    /// Inputs that could not be read: the rows omit what they held.
    pub fn errors(&self) -> u64 {
        self.stats.errors
    }

    /// One line for people: files, bytes, records, calls kept, users, errors, time, throughput, peak memory.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        let mb = s.bytes as f64 / 1e6;
        let rss = peak_rss_kib().map(|k| format!(", peak RSS {:.1} MB", k as f64 * 1024.0 / 1e6)).unwrap_or_default();
        let mut skipped = String::new();
        if s.skipped > 0 {
            skipped += &format!(" (+{} skipped by path)", s.skipped);
        }
        if s.digests > 0 {
            skipped += &format!(" (+{} digest files skipped)", s.digests);
        }
        let spilled = if s.spilled > 0 { format!(", {} spilled", s.spilled) } else { String::new() };
        let seconds = self.seconds;
        format!(
            "replay: {} files{skipped}, {mb:.1} MB ({:.1} MB compressed), {} records, {} kept{spilled}, {} users, \
             {} errors, {seconds:.2} s ({:.1} MB/s){rss}",
            s.files,
            s.compressed as f64 / 1e6,
            s.records,
            s.kept,
            self.users,
            s.errors,
            if seconds > 0.0 { mb / seconds } else { 0.0 },
        )
    }
}

/// Reads every source, builds the timelines, decides each key of each user created in the history.
///
/// Needs a multi-threaded tokio runtime (file parsing runs on a rayon pool beside it). A part of a source that
/// cannot be read is logged, counted in [`Replayed::errors`] and left out; an `Err` is a usage error or a source
/// that failed as a whole.
pub async fn replay(sources: &[Box<dyn Source>], options: &Options) -> Result<Replayed, ReplayError> {
    let started = Instant::now();
    options.filter.check().map_err(ReplayError::Usage)?;
    let pool = rayon::ThreadPoolBuilder::new()
        // 0 lets rayon decide: RAYON_NUM_THREADS, else every core.
        .num_threads(options.jobs.unwrap_or(0))
        .thread_name(|i| format!("replay-{i}"))
        .build()
        .map_err(|e| ReplayError::Usage(format!("starting the parse threads: {e}")))?;
    let context = Context {
        filter: options.filter.clone(),
        pool,
        spill: Spill::default(),
        spill_after: options.spill_after.max(1),
    };
    let mut all = Harvest::default();
    for source in sources {
        all = all.merge(source.read(&context).await?, &context);
    }
    let Harvest { mut timeline, stats } = all;
    // Every timeline is merged: the spilled calls of users created in the history come back, the others go.
    let Context { spill, .. } = context;
    spill.read_back(|call| {
        timeline.restore(call);
    })?;
    let users = timeline.user_count();
    let rows = timeline.rows(&options.policy);
    Ok(Replayed { rows, stats, users, seconds: started.elapsed().as_secs_f64() })
}

/// The process's peak resident set (`VmHWM`), on Linux.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
