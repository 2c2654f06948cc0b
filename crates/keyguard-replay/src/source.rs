//! The one trait every place replay reads from implements, and what a source hands back.

use futures::future::BoxFuture;

use crate::ReplayError;
use crate::engine::{Context, Harvest};

/// A place to read CloudTrail calls from: local files ([`crate::LocalPaths`]), an S3 prefix ([`crate::S3Prefix`]),
/// an Athena table ([`crate::AthenaTable`]).
///
/// A source reads what it holds, keeps the calls [`Context::filter`] keeps, and returns them in a [`Harvest`]
/// (a timeline and counters). Parsing work may run on [`Context::pool`]. A part that cannot be read (a file, a
/// line) is counted in the harvest's errors and logged; an `Err` means the source as a whole failed.
pub trait Source: Send + Sync {
    /// How logs and errors name this source: a path, an `s3://` URL, an Athena table.
    fn name(&self) -> String;

    /// Reads the source.
    fn read<'a>(&'a self, context: &'a Context) -> BoxFuture<'a, Result<Harvest, ReplayError>>;
}
