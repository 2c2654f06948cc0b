//! One decompressed file (a CloudTrail log file, or saved EventBridge events) to the few calls a timeline wants.
//!
//! Almost all of an archive is records KeyGuard does not care about (S3, EC2, STS, IAM reads), so they are
//! skipped with as little work as possible:
//! 1. the `Records` array is walked as raw slices (`&RawValue`: validated by the scanner, never built);
//! 2. a record that does not even contain `"iam.amazonaws.com"` is dropped on a substring search;
//! 3. the rest are read into a two-field borrowed struct (`eventSource`, `eventName`);
//! 4. only what `Timeline::wants` is parsed into a `Value` and through the core's parser, the one the Lambda uses.

use std::borrow::Cow;
use std::fmt;

use keyguard_core::{IamCall, Incoming, Timeline, parse_event, parse_record};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// Every record a timeline wants has this event source (as a JSON string, quotes included): a substring search
/// spares the rest a parse. CloudTrail writes it plainly; a producer escaping its letters would defeat this.
const IAM_SOURCE: &str = "\"iam.amazonaws.com\"";

/// What one file gave.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Records (or events) seen, wanted or not.
    pub records: u64,
    /// The calls worth a timeline.
    pub calls: Vec<IamCall>,
    /// Parts that could not be read (a line, an event, a record): where and why. The rest of the file counts.
    pub problems: Vec<(String, String)>,
}

/// How a file holds its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One JSON document (a CloudTrail log file, one event, an array of events); JSON lines if it turns out so.
    Document,
    /// JSON lines (`.jsonl`, `.ndjson`): one document per line.
    Lines,
}

/// Reads a whole file. An error means nothing of it was used (a file is taken whole or not at all, except JSON
/// lines, where each line stands alone and a bad one is reported in `problems`).
pub fn file(bytes: &[u8], name: &str, layout: Layout) -> Result<Parsed, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if layout == Layout::Lines {
        return Ok(lines(bytes, name));
    }
    let mut out = Parsed::default();
    match document(bytes, name, &mut out) {
        Ok(()) => Ok(out),
        // Several documents one after another: JSON lines under another name.
        Err(e) if e.starts_with("trailing characters") => Ok(lines(bytes, name)),
        Err(e) => Err(e),
    }
}

fn lines(bytes: &[u8], name: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = format!("{name}:{}", i + 1);
        let mut one = Parsed::default();
        match document(line, &at, &mut one) {
            Ok(()) => {
                out.records += one.records;
                out.calls.append(&mut one.calls);
                out.problems.append(&mut one.problems);
            }
            Err(e) => out.problems.push((at, e)),
        }
    }
    out
}

/// One JSON document: `{"Records": [...]}`, one EventBridge event, or an array of them.
fn document(bytes: &[u8], name: &str, out: &mut Parsed) -> Result<(), String> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let had_records = Records { out: &mut *out }.deserialize(&mut de).map_err(|e| e.to_string())?;
            de.end().map_err(|e| e.to_string())?;
            if !had_records {
                let raw: &RawValue = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
                event(raw, name, out)?;
            }
            Ok(())
        }
        Some(b'[') => {
            let events: Vec<&RawValue> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            for (i, raw) in events.into_iter().enumerate() {
                if let Err(problem) = event(raw, &format!("{name}[{i}]"), out) {
                    out.problems.push((format!("{name}[{i}]"), problem));
                }
            }
            Ok(())
        }
        Some(_) => Err("not a JSON object or array".into()),
        None => Err("empty".into()),
    }
}

/// The two fields that say whether a record can matter; borrowed, so most records cost no allocation.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, rename = "eventSource")]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventName")]
    name: Option<Cow<'a, str>>,
}

impl Head<'_> {
    fn wanted(&self) -> bool {
        Timeline::wants(self.source.as_deref().unwrap_or(""), self.name.as_deref().unwrap_or(""))
    }
}

/// One element of `Records`.
fn record(raw: &RawValue, out: &mut Parsed) {
    out.records += 1;
    let text = raw.get();
    if !text.contains(IAM_SOURCE) {
        return;
    }
    let at = || format!("record {}", out.records);
    let head: Head = match serde_json::from_str(text) {
        Ok(head) => head,
        Err(e) => return out.problems.push((at(), format!("not a CloudTrail record: {e}"))),
    };
    if !head.wanted() {
        return;
    }
    let parsed = serde_json::from_str::<Value>(text)
        .map_err(|e| e.to_string())
        .and_then(|value| parse_record(&value, None, None).map_err(str::to_string));
    match parsed {
        Ok(call) => out.calls.push(call),
        Err(problem) => out.problems.push((at(), problem)),
    }
}

/// The envelope fields of an EventBridge event; `detail` stays raw until it proves interesting.
#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(borrow, rename = "detail-type")]
    detail_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    detail: Option<&'a RawValue>,
    /// Set on a bare CloudTrail record instead.
    #[serde(borrow, rename = "eventName")]
    event_name: Option<Cow<'a, str>>,
}

/// One EventBridge event, or a bare CloudTrail record (one saved on its own, or an element of a saved array).
/// Err when it is neither (nor a CloudTrail log file).
fn event(raw: &RawValue, name: &str, out: &mut Parsed) -> Result<(), String> {
    let text = raw.get();
    let head: EventHead = serde_json::from_str(text).map_err(|e| format!("not an EventBridge event: {e}"))?;
    if head.detail_type.is_none() {
        if head.event_name.is_some() {
            record(raw, out);
            return Ok(());
        }
        return Err("neither a CloudTrail log file (no `Records`) nor an EventBridge event (no `detail-type`) \
                    nor a CloudTrail record (no `eventName`)"
            .into());
    }
    out.records += 1;
    let Some(detail) = head.detail.filter(|d| d.get().contains(IAM_SOURCE)) else { return Ok(()) };
    // An odd detail is left to the full parser, which says what is wrong with it.
    if serde_json::from_str::<Head>(detail.get()).is_ok_and(|h| !h.wanted()) {
        return Ok(());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match parse_event(&value) {
        Ok(Incoming::Call(call)) => out.calls.push(*call),
        Ok(_) => {}
        Err(e) => out.problems.push((name.to_string(), e.to_string())),
    }
    Ok(())
}

/// Walks a top-level object, handing each element of `Records` to [`record`] as it is scanned (no array is
/// built). Returns whether there was a `Records` array.
struct Records<'p> {
    out: &'p mut Parsed,
}

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Records => {
                    map.next_value_seed(Each { out: &mut *self.out })?;
                    seen = true;
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(seen)
    }
}

struct Each<'p> {
    out: &'p mut Parsed,
}

impl<'de> DeserializeSeed<'de> for Each<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Each<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of CloudTrail records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            record(raw, self.out);
        }
        Ok(())
    }
}

enum Key {
    Records,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(if v == "Records" { Key::Records } else { Key::Other })
            }
        }
        de.deserialize_identifier(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn rec(id: &str, source: &str, name: &str) -> Value {
        json!({"eventVersion": "1.11", "eventID": id, "eventSource": source, "eventName": name,
               "eventTime": "2025-03-11T14:02:07Z", "recipientAccountId": "111122223333",
               "userIdentity": {"type": "IAMUser", "userName": "admin", "arn": "arn:aws:iam::111122223333:user/admin"},
               "requestParameters": {"userName": "maria"},
               "responseElements": {"user": {"userName": "maria", "path": "/"}}})
    }

    fn event_of(detail: Value) -> Value {
        json!({"version": "0", "id": "e", "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam",
               "account": "111122223333", "time": "2025-03-11T14:02:07Z", "region": "us-east-1",
               "resources": [], "detail": detail})
    }

    #[test]
    fn only_iam_calls_are_wanted() {
        // The substring filter relies on it: if the timeline ever wants another source, widen IAM_SOURCE.
        for name in ["CreateUser", "DeleteUser", "CreateLoginProfile", "CreateAccessKey", "GetObject"] {
            assert!(!Timeline::wants("sts.amazonaws.com", name));
            assert!(!Timeline::wants("s3.amazonaws.com", name));
        }
        assert!(Timeline::wants(IAM_SOURCE.trim_matches('"'), "CreateAccessKey"));
    }

    #[test]
    fn keeps_only_wanted_records() {
        let doc = json!({"Records": [
            rec("1", "s3.amazonaws.com", "GetObject"),
            rec("2", "iam.amazonaws.com", "ListUsers"),
            rec("3", "iam.amazonaws.com", "CreateUser"),
        ]});
        let out = file(doc.to_string().as_bytes(), "f", Layout::Document).unwrap();
        assert_eq!(out.records, 3);
        assert_eq!(out.calls.iter().map(|c| c.event_id.as_str()).collect::<Vec<_>>(), ["3"]);
        assert!(out.problems.is_empty());
    }

    #[test]
    fn reads_events_arrays_and_lines() {
        let one = event_of(rec("1", "iam.amazonaws.com", "CreateUser"));
        let other = event_of(rec("2", "ec2.amazonaws.com", "RunInstances"));
        assert_eq!(file(one.to_string().as_bytes(), "f", Layout::Document).unwrap().calls.len(), 1);
        let array = json!([one, other]).to_string();
        let out = file(array.as_bytes(), "f", Layout::Document).unwrap();
        assert_eq!((out.records, out.calls.len()), (2, 1));
        let lines = format!("{one}\n\n{other}\nnot json\n");
        let out = file(lines.as_bytes(), "f", Layout::Lines).unwrap();
        assert_eq!((out.records, out.calls.len()), (2, 1));
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].0, "f:4");
        // JSON lines in a `.json` file are read as lines too.
        let out = file(format!("{one}\n{other}\n").as_bytes(), "f", Layout::Document).unwrap();
        assert_eq!((out.records, out.calls.len()), (2, 1));
    }

    #[test]
    fn a_broken_file_is_an_error() {
        let doc = json!({"Records": [rec("3", "iam.amazonaws.com", "CreateUser")]}).to_string();
        assert!(file(&doc.as_bytes()[..doc.len() / 2], "f", Layout::Document).is_err());
        assert!(file(b"", "f", Layout::Document).is_err());
        assert!(file(b"\"text\"", "f", Layout::Document).is_err());
        assert!(file(br#"{"Records": 3}"#, "f", Layout::Document).is_err());
        assert!(file(br#"{"awsAccountId": "1", "logFiles": []}"#, "f", Layout::Document).is_err(), "a digest file");
    }

    #[test]
    fn bare_records_are_read_too() {
        let one = rec("1", "iam.amazonaws.com", "CreateUser");
        let out = file(one.to_string().as_bytes(), "f", Layout::Document).unwrap();
        assert_eq!((out.records, out.calls.len()), (1, 1));
        let array = json!([one, rec("2", "s3.amazonaws.com", "GetObject")]).to_string();
        let out = file(array.as_bytes(), "f", Layout::Document).unwrap();
        assert_eq!((out.records, out.calls.len(), out.problems.len()), (2, 1, 0));
    }

    #[test]
    fn a_wanted_record_that_cannot_be_read_is_a_problem() {
        let mut bad = rec("4", "iam.amazonaws.com", "CreateUser");
        bad["eventTime"] = json!("yesterday");
        let doc = json!({"Records": [bad, rec("5", "iam.amazonaws.com", "CreateUser")]});
        let out = file(doc.to_string().as_bytes(), "f", Layout::Document).unwrap();
        assert_eq!(out.calls.len(), 1);
        assert_eq!(out.problems.len(), 1);
    }
}
