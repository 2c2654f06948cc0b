//! The event parser (the Lambda's and `keyguard handle`'s input): any JSON document, as an EventBridge event
//! and as a bare CloudTrail record, must parse or be refused with an error, never panic; a call it accepts must
//! go through the rule's trigger and a timeline without panicking either.
#![no_main]

use keyguard_core::{Incoming, Timeline, Trigger, parse_event, parse_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let mut timeline = Timeline::new();
    if let Ok(Incoming::Call(call)) = parse_event(&value) {
        let _ = Trigger::of(&call);
        timeline.add(&call);
    }
    if let Ok(call) = parse_record(&value, None, None) {
        let _ = Trigger::of(&call);
        timeline.add(&call);
    }
    let _ = timeline.take_pending();
});
