//! KeyGuard's replay: CloudTrail history through the same parser and rule as the guard.
//!
//! Every place replay reads from is a [`Source`]: local files and directories ([`LocalPaths`]), an S3 prefix
//! ([`S3Prefix`]), or an Athena table over the trail's bucket ([`AthenaTable`]). [`replay`] reads each into
//! per-user timelines (`keyguard_core::Timeline`) and decides every key of every user created in the history,
//! with its creator known. The `keyguard replay` command is argument parsing and printing over this; a sweep or
//! a backfill calls it the same way.
//!
//! Files are parsed by every core at once (rayon), one file per worker at a time: read, decompress into a reused
//! buffer, pick out the few calls that shape a user's setup, and add them to the worker's timeline. Memory grows
//! with the users created in the history, not with the archive: calls of users whose creation has not been seen
//! are moved to a temporary file once too many pile up, and only those of users created in the history come back
//! (see `keyguard_core::timeline`).
//!
//! ```no_run
//! use keyguard_replay::{Filter, LocalPaths, Options, Source, replay, since_bound};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = keyguard_core::Config::from_env()?.policy;
//! let sources: Vec<Box<dyn Source>> = vec![Box::new(LocalPaths::new(["trail-logs/AWSLogs"])?)];
//! let options = Options {
//!     filter: Filter { since: Some(since_bound("2025-01-01")?), ..Filter::default() },
//!     ..Options::new(policy)
//! };
//! let replayed = replay(&sources, &options).await?;
//! for row in replayed.rows.iter().filter(|r| r.verdict.is_finding()) {
//!     println!("{} {} {:?} created by {:?}", row.account, row.user, row.access_key_id, row.creator);
//! }
//! eprintln!("{}", replayed.summary());
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "athena")]
mod athena;
mod engine;
mod files;
mod filter;
mod local;
mod parse;
#[cfg(feature = "s3")]
mod s3;
mod source;
mod spill;

use std::path::PathBuf;

#[cfg(feature = "athena")]
pub use athena::{AthenaTable, COLUMNS as ATHENA_COLUMNS, Partitions, query as athena_query};
pub use engine::{Context, Harvest, Options, Replayed, SPILL_AFTER, Stats, replay};
pub use files::{is_digest, layout_of};
pub use filter::{Filter, since_bound, until_bound};
pub use local::LocalPaths;
pub use parse::{Layout, Parsed};
#[cfg(feature = "s3")]
pub use s3::S3Prefix;
pub use source::Source;

/// Reads one file's bytes as replay reads a file of that name: gunzipped when gzip'd, then the calls a timeline
/// wants and the parts that could not be read (`Err`: nothing of it could be used). For tools and fuzzing.
pub fn read_file(bytes: &[u8], name: &str) -> Result<Parsed, String> {
    let layout = layout_of(name).unwrap_or(Layout::Document);
    files::Buffers::default().parse(bytes, name, layout).parsed
}

/// Why a replay could not run. Parts of a source that cannot be read are not errors: they are counted in
/// [`Replayed::errors`] and logged.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A bad option or name (a range that ends before it starts, a bad S3 URL or Athena name).
    #[error("{0}")]
    Usage(String),
    #[error("{}: no such file or directory", .0.display())]
    NotFound(PathBuf),
    /// The Athena query could not be run or read (the message names the call and AWS's error).
    #[error("Athena: {0}")]
    Athena(String),
    /// The temporary file that holds calls of users not seen created yet failed (disk full?): findings would be lost.
    #[error("replay's temporary file (TMPDIR) failed: {0}")]
    Spill(#[source] std::io::Error),
    #[error("a replay worker thread failed")]
    Worker,
}
