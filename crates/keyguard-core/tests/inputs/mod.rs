//! Inputs for property tests, shared by the core's own (crates/keyguard-core/tests/properties.rs) and the whole
//! handler's (tests/bad_input.rs, through `#[path]`): arbitrary JSON, event-shaped JSON, and mutations of the real
//! events (the project's fixtures and the reference samples).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Number, Value};

/// The account of the event-shaped inputs (and of the reference samples).
pub const ACCOUNT: &str = "111122223333";

/// Field names the parser looks for, so that arbitrary objects reach its inner paths.
pub const KEYS: &[&str] = &[
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
    "eventID",
    "eventTime",
    "eventName",
    "eventSource",
    "awsRegion",
    "recipientAccountId",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "userIdentity",
    "type",
    "arn",
    "accountId",
    "userName",
    "invokedBy",
    "sessionContext",
    "sessionIssuer",
    "requestParameters",
    "responseElements",
    "accessKey",
    "accessKeyId",
    "loginProfile",
    "user",
    "userId",
    "path",
    "tags",
    "key",
    "value",
    "addendum",
    "reason",
];

/// Values that mean something to the parser or the rule, and a few that are known to be awkward.
pub const WORDS: &[&str] = &[
    "",
    " ",
    "AWS API Call via CloudTrail",
    "Scheduled Event",
    "aws.iam",
    "aws.events",
    "iam.amazonaws.com",
    "s3.amazonaws.com",
    "CreateAccessKey",
    "CreateLoginProfile",
    "CreateUser",
    "UpdateAccessKey",
    "DeleteUser",
    "IAMUser",
    "AssumedRole",
    "Root",
    "AWSService",
    "AccessDenied",
    "DELIVERY_DELAY",
    "2025-03-11T14:03:15Z",
    "2025-03-11T14:03:15.123456789Z",
    "2025-03-11T14:03:15+14:00",
    "Mar 11, 2025 2:03:15 PM",
    "20250311T140315Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-23:59",
    "AKIAYQ3EXAMPLEKEY001",
    "maria.silva",
    "MARIA.SILVA",
    "rené.dupont",
    "keyguard:exempt",
    "/service/",
    "arn:aws:iam::111122223333:user/jordan.admin",
    "arn:aws:sts::111122223333:assumed-role/ci-provisioner/run",
    "cloudformation.amazonaws.com",
    "true",
    "null",
    "\u{0}",
    "line\nbreak",
    "\u{202e}rtl",
    "🔑",
];

pub fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(WORDS).prop_map(str::to_string),
        1 => any::<String>(),
        1 => "[A-Za-z0-9 :.,/+=@_-]{0,40}",
    ]
}

pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => select(KEYS).prop_map(str::to_string), 1 => word()]
}

pub fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), number(), word().prop_map(Value::String),]
}

/// Any JSON value, up to a few levels deep.
pub fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly one of `strings`, sometimes any string, now and then another type.
pub fn text_or(strings: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![30 => select(strings).prop_map(Value::from), 3 => word().prop_map(Value::from), 1 => leaf()].boxed()
}

/// Mostly `good`, now and then anything else.
pub fn mostly(good: Value) -> BoxedStrategy<Value> {
    prop_oneof![19 => Just(good), 1 => leaf()].boxed()
}

/// An object of known fields, each present with its probability, plus up to `extra` arbitrary fields.
pub fn object_of(extra: usize, fields: Vec<(&'static str, f64, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let present: Vec<_> = fields
        .into_iter()
        .map(|(name, p, value)| option::weighted(p, value).prop_map(move |v| v.map(|v| (name.to_string(), v))))
        .collect();
    (present, btree_map(key(), leaf(), 0..=extra))
        .prop_map(|(present, extra)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            m.extend(present.into_iter().flatten());
            Value::Object(m)
        })
        .boxed()
}

pub const TIMES: &[&str] = &[
    "2025-03-11T14:03:15Z",
    "2025-03-11T14:03:15.123Z",
    "Mar 11, 2025 2:03:15 PM",
    "20250311T140315Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "yesterday",
];
pub const NAMES: &[&str] = &["maria.silva", "MARIA.SILVA", "jordan.admin", "svc-etl", "rené.dupont", ""];
pub const CALLS: &[&str] = &["CreateAccessKey", "CreateLoginProfile", "CreateUser", "UpdateAccessKey", "DeleteUser"];
/// Mostly CloudTrail calls; a scheduled event now and then.
pub const DETAIL_TYPES: &[&str] = &[
    "AWS API Call via CloudTrail",
    "AWS API Call via CloudTrail",
    "AWS API Call via CloudTrail",
    "AWS API Call via CloudTrail",
    "AWS API Call via CloudTrail",
    "Scheduled Event",
];
pub const KINDS: &[&str] = &["IAMUser", "AssumedRole", "Root", "FederatedUser", "AWSService", "IdentityCenterUser"];

/// An EventBridge envelope of a CloudTrail call: each field present or not, mostly of the right type and value,
/// sometimes anything.
pub fn event_shaped() -> impl Strategy<Value = Value> {
    let identity = object_of(
        2,
        vec![
            ("type", 0.9, text_or(KINDS)),
            ("userName", 0.7, text_or(NAMES)),
            ("arn", 0.8, text_or(&["arn:aws:iam::111122223333:user/jordan.admin", "arn:aws:iam::111122223333:root"])),
            ("accountId", 0.8, text_or(&[ACCOUNT])),
            ("invokedBy", 0.2, text_or(&["cloudformation.amazonaws.com"])),
            ("sessionContext", 0.3, json().boxed()),
        ],
    );
    let access_key = object_of(
        2,
        vec![
            ("accessKeyId", 0.9, text_or(&["AKIAYQ3EXAMPLEKEY001"])),
            ("userName", 0.7, text_or(NAMES)),
            ("createDate", 0.7, text_or(TIMES)),
        ],
    );
    let user = object_of(
        2,
        vec![
            ("userName", 0.8, text_or(NAMES)),
            ("userId", 0.8, text_or(&["AIDAEXAMPLE"])),
            ("arn", 0.5, text_or(&["arn:aws:iam::111122223333:user/maria.silva"])),
            ("path", 0.5, text_or(&["/", "/service/"])),
            (
                "tags",
                0.5,
                prop_oneof![json(), Just(serde_json::json!([{"key": "keyguard:exempt", "value": ""}]))].boxed(),
            ),
        ],
    );
    let response = prop_oneof![
        3 => object_of(2, vec![("accessKey", 0.6, access_key), ("user", 0.4, user)]),
        1 => json(),
    ];
    let request = prop_oneof![3 => object_of(2, vec![("userName", 0.6, text_or(NAMES))]), 1 => json()];
    let detail = object_of(
        2,
        vec![
            ("eventID", 0.9, text_or(&["e-1", ""])),
            ("eventName", 0.95, text_or(CALLS)),
            ("eventSource", 0.95, text_or(&["iam.amazonaws.com"])),
            ("eventTime", 0.9, text_or(TIMES)),
            ("recipientAccountId", 0.7, text_or(&[ACCOUNT])),
            ("errorCode", 0.15, text_or(&["AccessDenied"])),
            ("userIdentity", 0.9, prop_oneof![9 => identity, 1 => leaf()].boxed()),
            ("requestParameters", 0.8, request.boxed()),
            ("responseElements", 0.8, response.boxed()),
            ("addendum", 0.1, json().boxed()),
        ],
    );
    object_of(
        0,
        vec![
            ("version", 0.9, mostly(Value::from("0"))),
            ("id", 0.9, prop_oneof![19 => word().prop_map(Value::from), 1 => leaf()].boxed()),
            ("detail-type", 0.98, text_or(DETAIL_TYPES)),
            ("source", 0.98, text_or(&["aws.iam", "aws.events"])),
            ("account", 0.9, mostly(Value::from(ACCOUNT))),
            ("time", 0.8, text_or(&["2025-03-11T14:03:15Z", "2025-03-11T14:03:15.5+01:00", "9999-12-31T23:59:59Z"])),
            ("region", 0.9, mostly(Value::from("us-east-1"))),
            ("resources", 0.9, mostly(Value::Array(vec![]))),
            ("detail", 0.98, prop_oneof![9 => detail, 1 => json()].boxed()),
        ],
    )
}

/// The repository: the nearest ancestor of the including crate that holds the workspace's Cargo.lock.
pub fn repo() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().find(|p| p.join("Cargo.lock").exists()).unwrap_or(here).to_path_buf()
}

/// Every real event: the project's fixtures (including the JSON-lines file and the parseable invalid inputs) and
/// the reference samples (tests/fixtures/samples).
pub fn samples() -> &'static [Value] {
    static SAMPLES: OnceLock<Vec<Value>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let root = repo();
        let mut found = Vec::new();
        for dir in ["tests/fixtures/events", "tests/fixtures/invalid", "tests/fixtures/samples"] {
            let dir = root.join(dir);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap();
                match f.extension().and_then(|x| x.to_str()) {
                    Some("json") => found.extend(serde_json::from_str::<Value>(&text).ok()),
                    Some("jsonl") => found.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok())),
                    _ => {}
                }
            }
        }
        assert!(found.len() >= 30, "expected the fixtures and reference samples, found {}", found.len());
        found
    })
}

/// What a mutation does to the field it lands on.
#[derive(Debug, Clone)]
pub enum Op {
    Delete,
    Set(Value),
}

/// Where a mutation lands: a random walk down the tree, or a field the parser reads (created when missing).
#[derive(Debug, Clone)]
pub enum Target {
    Walk(Vec<usize>),
    Named(&'static [&'static str]),
}

pub const NAMED: &[&[&str]] = &[
    &["id"],
    &["time"],
    &["account"],
    &["detail-type"],
    &["source"],
    &["detail"],
    &["detail", "eventID"],
    &["detail", "eventTime"],
    &["detail", "eventName"],
    &["detail", "eventSource"],
    &["detail", "errorCode"],
    &["detail", "recipientAccountId"],
    &["detail", "userAgent"],
    &["detail", "userIdentity"],
    &["detail", "userIdentity", "type"],
    &["detail", "userIdentity", "userName"],
    &["detail", "userIdentity", "arn"],
    &["detail", "userIdentity", "invokedBy"],
    &["detail", "userIdentity", "sessionContext", "sessionIssuer"],
    &["detail", "requestParameters"],
    &["detail", "requestParameters", "userName"],
    &["detail", "requestParameters", "tags"],
    &["detail", "responseElements"],
    &["detail", "responseElements", "accessKey"],
    &["detail", "responseElements", "accessKey", "accessKeyId"],
    &["detail", "responseElements", "accessKey", "userName"],
    &["detail", "responseElements", "user"],
    &["detail", "responseElements", "user", "userId"],
    &["detail", "responseElements", "user", "tags"],
    &["detail", "addendum", "reason"],
];

pub fn mutation() -> impl Strategy<Value = (Target, Op)> {
    let target = prop_oneof![vec(any::<usize>(), 1..7).prop_map(Target::Walk), select(NAMED).prop_map(Target::Named),];
    let op = prop_oneof![
        2 => Just(Op::Delete),
        2 => Just(Op::Set(Value::Null)),
        2 => word().prop_map(|s| Op::Set(Value::String(s))),
        2 => number().prop_map(Op::Set),
        1 => vec(leaf(), 0..4).prop_map(|v| Op::Set(Value::Array(v))),
        1 => any::<bool>().prop_map(|b| Op::Set(Value::Bool(b))),
        1 => json().prop_map(Op::Set),
    ];
    (target, op)
}

pub fn has_children(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

pub fn walk(v: &mut Value, path: &[usize], op: &Op) {
    let Some((&step, rest)) = path.split_first() else { return };
    match v {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(step % map.len()).unwrap().clone();
            if !rest.is_empty() && has_children(&map[&key]) {
                walk(map.get_mut(&key).unwrap(), rest, op);
            } else {
                match op {
                    Op::Delete => {
                        map.remove(&key);
                    }
                    Op::Set(value) => {
                        map.insert(key, value.clone());
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = step % items.len();
            if !rest.is_empty() && has_children(&items[i]) {
                walk(&mut items[i], rest, op);
            } else {
                match op {
                    Op::Delete => {
                        items.remove(i);
                    }
                    Op::Set(value) => items[i] = value.clone(),
                }
            }
        }
        _ => {}
    }
}

pub fn set_path(v: &mut Value, path: &[&str], op: &Op) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = v;
    for key in parents {
        at = match at {
            Value::Object(map) => map.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new())),
            _ => return,
        };
    }
    if let Value::Object(map) = at {
        match op {
            Op::Delete => {
                map.remove(*last);
            }
            Op::Set(value) => {
                map.insert(last.to_string(), value.clone());
            }
        }
    }
}

pub fn mutated_sample() -> impl Strategy<Value = Value> {
    (0..samples().len(), vec(mutation(), 1..8)).prop_map(|(i, mutations)| {
        let mut v = samples()[i].clone();
        for (target, op) in &mutations {
            match target {
                Target::Walk(path) => walk(&mut v, path, op),
                Target::Named(path) => set_path(&mut v, path, op),
            }
        }
        v
    })
}
