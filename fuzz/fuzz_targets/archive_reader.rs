//! The CloudTrail archive reader (`keyguard replay` on a file): any bytes, gzip'd or not, as a log file
//! (`{"Records": [...]}`), saved events or JSON lines, must be read or refused, never panic. The first byte
//! picks how the rest is handed over: gzip'd here first (so that the fuzzer reaches the JSON reader behind the
//! decompressor; stored, not compressed: the decoder reads it the same way, at a fraction of the cost), or as it is (the decompressor itself); and as a `.json.gz` or a `.jsonl` file.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use keyguard_core::Timeline;
use libfuzzer_sys::fuzz_target;

/// Built once: exemption matchers are costly to build, and the fuzzer runs the target thousands of times a second.
fn policy() -> &'static keyguard_core::Policy {
    static POLICY: OnceLock<keyguard_core::Policy> = OnceLock::new();
    POLICY.get_or_init(|| keyguard_core::Policy {
        window: chrono::TimeDelta::minutes(10),
        exemptions: keyguard_core::Exemptions::none(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let name = if mode & 2 == 0 { "111122223333_CloudTrail_us-east-1_x.json.gz" } else { "events.jsonl" };
    let bytes = if mode & 1 == 1 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        if gz.write_all(rest).is_err() {
            return;
        }
        match gz.finish() {
            Ok(b) => b,
            Err(_) => return,
        }
    } else {
        rest.to_vec()
    };
    if let Ok(parsed) = keyguard_replay::read_file(&bytes, name) {
        let mut timeline = Timeline::new();
        for call in &parsed.calls {
            timeline.add(call);
        }
        let _ = timeline.rows(policy());
    }
});
