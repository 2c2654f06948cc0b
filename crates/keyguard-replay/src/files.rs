//! Log files: which names replay reads (and which it skips: digests), and one file's bytes to calls
//! (decompressed when gzip'd, into buffers each worker reuses).

use std::io::Read;
use std::path::Path;

use crate::parse::{self, Layout};

/// Whether a name is one of CloudTrail's digest files: they hold hashes of log files, not calls. CloudTrail names
/// them `<account>_CloudTrail-Digest_<region>_...json.gz` and files them under `CloudTrail-Digest/`; either mark
/// is enough, wherever the file lies (copies of a bucket, hand-made folders).
pub fn is_digest(name: &str) -> bool {
    let mut parts = name.split(['/', '\\']);
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.contains("_CloudTrail-Digest_") || parts.any(|p| p == "CloudTrail-Digest")
}

/// How a file found by walking a directory or listing a prefix is read, by its name; None when it is not a file
/// replay reads (digests, other names).
pub fn layout_of(name: &str) -> Option<Layout> {
    if is_digest(name) {
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

/// What became of one file.
pub struct FileOutcome {
    pub compressed: u64,
    /// Uncompressed size.
    pub bytes: u64,
    pub parsed: Result<parse::Parsed, String>,
}

impl FileOutcome {
    pub fn failed(problem: String) -> FileOutcome {
        FileOutcome { compressed: 0, bytes: 0, parsed: Err(problem) }
    }
}

/// A worker's reusable buffers: the file as read, and decompressed.
#[derive(Default)]
pub struct Buffers {
    raw: Vec<u8>,
    plain: Vec<u8>,
}

impl Buffers {
    /// Decompresses `data` if it is gzip (by its magic number, whatever the name), then parses it.
    pub fn parse(&mut self, data: &[u8], name: &str, layout: Layout) -> FileOutcome {
        let compressed = data.len() as u64;
        let plain: &[u8] = if data.starts_with(&[0x1f, 0x8b]) {
            self.plain.clear();
            if let Err(e) = flate2::read::MultiGzDecoder::new(data).read_to_end(&mut self.plain) {
                return FileOutcome { compressed, bytes: 0, parsed: Err(format!("cannot decompress: {e}")) };
            }
            &self.plain
        } else {
            data
        };
        FileOutcome { compressed, bytes: plain.len() as u64, parsed: parse::file(plain, name, layout) }
    }

    /// Reads and parses a local file.
    pub fn local(&mut self, path: &Path, layout: Layout) -> FileOutcome {
        let name = path.display().to_string();
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let outcome = match std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut raw)) {
            Ok(_) => self.parse(&raw, &name, layout),
            Err(e) => FileOutcome::failed(format!("cannot read: {e}")),
        };
        self.raw = raw;
        outcome
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn layouts_from_names() {
        assert_eq!(layout_of("a/b.json.gz"), Some(Layout::Document));
        assert_eq!(layout_of("a/b.JSONL"), Some(Layout::Lines));
        assert_eq!(layout_of("a/b.ndjson.gz"), Some(Layout::Lines));
        assert_eq!(layout_of("a/b.txt"), None);
    }

    #[test]
    fn digests_are_skipped_wherever_they_lie() {
        let name = "111122223333_CloudTrail-Digest_us-east-1_org-trail_us-east-1_20250311T140207Z.json.gz";
        assert_eq!(layout_of(&format!("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2025/03/11/{name}")), None);
        assert_eq!(layout_of(&format!("AWSLogs/111122223333/CloudTrail/us-east-1/2025/03/11/{name}")), None);
        assert_eq!(layout_of(&format!("copied/{name}")), None);
        assert_eq!(layout_of(name), None);
        assert_eq!(layout_of("C:\\logs\\CloudTrail-Digest\\x.json.gz"), None);
        let log = "AWSLogs/111122223333/CloudTrail/us-east-1/2025/03/11/111122223333_CloudTrail_us-east-1_x.json.gz";
        assert_eq!(layout_of(log), Some(Layout::Document));
    }
}
