//! Local files and directories: one thread walks, the pool parses what it finds as it finds it.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};

use futures::future::BoxFuture;
use rayon::prelude::*;

use crate::engine::{Context, Harvest, Stats};
use crate::files::{Buffers, is_digest, layout_of};
use crate::parse::Layout;
use crate::{Filter, ReplayError, Source};

/// Files and directories. Directories are walked (depth first, sorted by name) for `.json`, `.json.gz`, `.jsonl`
/// and `.ndjson` files, in the S3 delivery layout or not; files named explicitly are read whatever their name.
/// Digest files are skipped either way.
#[derive(Debug, Clone)]
pub struct LocalPaths {
    paths: Vec<PathBuf>,
}

impl LocalPaths {
    /// Fails when a path does not exist.
    pub fn new<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Result<LocalPaths, ReplayError> {
        let paths: Vec<PathBuf> = paths.into_iter().map(Into::into).collect();
        if let Some(missing) = paths.iter().find(|p| !p.exists()) {
            return Err(ReplayError::NotFound(missing.clone()));
        }
        Ok(LocalPaths { paths })
    }
}

impl Source for LocalPaths {
    fn name(&self) -> String {
        self.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    fn read<'a>(&'a self, context: &'a Context) -> BoxFuture<'a, Result<Harvest, ReplayError>> {
        Box::pin(async move { tokio::task::block_in_place(|| read(&self.paths, context)) })
    }
}

fn read(paths: &[PathBuf], context: &Context) -> Result<Harvest, ReplayError> {
    // A years-long archive has millions of files: their names are not collected. The walker owns the sender:
    // when it is done, the channel closes and the workers finish.
    let (tx, rx) = sync_channel::<(PathBuf, Layout)>(1024);
    let (harvest, walked) = std::thread::scope(|scope| {
        let filter = &context.filter;
        let walker = scope.spawn(move || walk_all(paths, filter, &tx));
        let harvest = context.pool.install(|| {
            rx.into_iter()
                .par_bridge()
                .map_init(Buffers::default, |b, (path, layout)| {
                    let outcome = b.local(&path, layout);
                    (path, outcome)
                })
                .fold(Harvest::default, |h, (path, outcome)| h.file(&path.display().to_string(), outcome, context))
                .reduce(Harvest::default, |a, b| a.merge(b, context))
        });
        (harvest, walker.join())
    });
    let mut harvest = harvest;
    harvest.stats.add(&walked.map_err(|_| ReplayError::Worker)?);
    Ok(harvest)
}

/// Sends every file to read under the paths; returns the walk's counters (skipped, unlistable directories).
fn walk_all(paths: &[PathBuf], filter: &Filter, tx: &SyncSender<(PathBuf, Layout)>) -> Stats {
    let mut stats = Stats::default();
    for path in paths {
        let sent = if path.is_dir() {
            walk(path, filter, &mut stats, tx)
        } else if is_digest(&path.to_string_lossy()) {
            stats.digests += 1;
            true
        } else {
            tx.send((path.clone(), layout_of(&path.to_string_lossy()).unwrap_or(Layout::Document))).is_ok()
        };
        if !sent {
            break;
        }
    }
    stats
}

/// Walks one directory; false when the workers are gone.
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
            if !walk(&path, filter, stats, tx) {
                return false;
            }
            continue;
        }
        let name = path.to_string_lossy();
        if is_digest(&name) {
            stats.digests += 1;
            continue;
        }
        let Some(layout) = layout_of(&name) else { continue };
        if !filter.may_hold(&name) {
            stats.skipped += 1;
        } else if tx.send((path, layout)).is_err() {
            return false;
        }
    }
    true
}
