//! The replay floor of `make bench`: read, gunzip and parse (serde_json into `IgnoredAny`) every file named on the
//! command line, on rayon's pool (`RAYON_NUM_THREADS=1` for one core), and nothing else. bench_replay times it from
//! spawn to exit, as it times `keyguard replay` on the same files: the difference is what replay's own work costs.
//!
//! `parse_floor [--gunzip-only] FILE...` prints the uncompressed bytes it read.

use std::io::Read;

use rayon::prelude::*;
use serde::de::IgnoredAny;

fn main() -> Result<(), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let gunzip_only = args.first().is_some_and(|a| a == "--gunzip-only");
    if gunzip_only {
        args.remove(0);
    }
    if args.is_empty() {
        return Err("usage: parse_floor [--gunzip-only] FILE...".into());
    }
    let bytes = args
        .par_iter()
        .map_init(Vec::new, |buf: &mut Vec<u8>, file| -> Result<u64, String> {
            let raw = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            buf.clear();
            flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(buf).map_err(|e| format!("{file}: {e}"))?;
            if !gunzip_only {
                let _: IgnoredAny = serde_json::from_slice(buf).map_err(|e| format!("{file}: {e}"))?;
            }
            Ok(buf.len() as u64)
        })
        .try_reduce(|| 0, |a, b| Ok(a + b))?;
    println!("{bytes}");
    Ok(())
}
