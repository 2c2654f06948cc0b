//! Replay: per-user timelines built from a stream of CloudTrail calls, then the rule with the creator known.
//!
//! Only the few calls that shape a user's setup are kept (creation, password, keys, deletions). Calls may come in
//! any order and more than once (overlapping files, EventBridge copies): they are ordered by `eventTime` and
//! deduplicated by `eventID` at the end. A user deleted and re-created under the same name is a new user.
//!
//! # What memory is bounded by
//!
//! Only users created in the history get rows, so what must be held is the calls of those users. A call of a
//! user whose `CreateUser` this timeline has not seen is *pending*: it belongs either to a user created before
//! the history (most key rotations of a long archive: never reported) or to a user whose `CreateUser` is still
//! to come (calls arrive in any order). No single pass over input in any order can tell the two apart before the
//! end, so the pending calls cannot be dropped early without losing findings. The timeline keeps them apart
//! ([`Timeline::pending_len`]) so that the caller can move them out of memory ([`Timeline::take_pending`], e.g. to
//! a file) and hand them back at the end ([`Timeline::restore`]), which keeps only those of users created in the
//! history. Memory then holds the users created in the history with their calls, plus at most what the caller
//! lets pile up before it moves pending calls out.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::AuditRow;
use crate::event::{IamCall, Principal};
use crate::rule::{KeyState, Policy, UserState};

/// The CloudTrail event names a timeline uses (all of `iam.amazonaws.com`): what replay's readers keep.
pub const EVENT_NAMES: [&str; 4] = ["CreateUser", "DeleteUser", "CreateLoginProfile", "CreateAccessKey"];

/// A user's identity in a timeline: (account, user name in lower case: IAM names are case-insensitive).
type UserKey = (String, String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Step {
    UserDeleted,
    UserCreated {
        name: String,
        user_id: Option<String>,
        arn: Option<String>,
        path: String,
        tags: Vec<(String, String)>,
    },
    PasswordCreated,
    KeyCreated {
        key_id: String,
        creator: Principal,
    },
}

impl Step {
    /// Tie-break within one second: a deletion before a re-creation, the user before its password and keys.
    fn order(&self) -> u8 {
        match self {
            Step::UserDeleted => 0,
            Step::UserCreated { .. } => 1,
            Step::PasswordCreated => 2,
            Step::KeyCreated { .. } => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    time: DateTime<Utc>,
    event_id: String,
    step: Step,
}

/// A call of a user whose creation the timeline has not seen (see the module's notes on memory). Serializable, so
/// that it can wait outside memory; opaque otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCall {
    user: UserKey,
    entry: Entry,
}

/// The timelines of every user seen: the users whose `CreateUser` was seen, and the pending calls of others.
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    users: HashMap<UserKey, Vec<Entry>>,
    pending: HashMap<UserKey, Vec<Entry>>,
    pending_len: usize,
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Whether a call can matter to a timeline (cheap: decides which records are worth parsing in full).
    pub fn wants(event_source: &str, event_name: &str) -> bool {
        event_source == "iam.amazonaws.com" && EVENT_NAMES.contains(&event_name)
    }

    /// Adds one call; returns whether it was kept. Failed calls and root's own keys are not.
    pub fn add(&mut self, call: &IamCall) -> bool {
        if call.error_code.is_some() || !Timeline::wants(&call.event_source, &call.event_name) {
            return false;
        }
        let Some(user) = call.target_user.clone() else { return false };
        let step = match call.event_name.as_str() {
            "CreateUser" => Step::UserCreated {
                name: user.clone(),
                user_id: call.user_id.clone(),
                arn: call.user_arn.clone(),
                path: call.user_path.clone().unwrap_or_else(|| "/".into()),
                tags: call.tags.clone(),
            },
            "DeleteUser" => Step::UserDeleted,
            "CreateLoginProfile" => Step::PasswordCreated,
            _ => match &call.access_key_id {
                Some(key_id) => Step::KeyCreated { key_id: key_id.clone(), creator: call.caller.clone() },
                None => return false,
            },
        };
        let key = (call.account.clone().unwrap_or_default(), user.to_lowercase());
        self.push(key, Entry { time: call.event_time, event_id: call.event_id.clone(), step });
        true
    }

    /// Files an entry under its user: known users keep it; a creation makes the user known (with its pending
    /// entries); anything else waits as pending.
    fn push(&mut self, key: UserKey, entry: Entry) {
        if let Some(entries) = self.users.get_mut(&key) {
            entries.push(entry);
            return;
        }
        if matches!(entry.step, Step::UserCreated { .. }) {
            let mut entries = self.pending.remove(&key).unwrap_or_default();
            self.pending_len -= entries.len();
            entries.push(entry);
            self.users.insert(key, entries);
            return;
        }
        self.pending.entry(key).or_default().push(entry);
        self.pending_len += 1;
    }

    /// Joins another timeline (built by another worker) into this one.
    pub fn merge(&mut self, other: Timeline) {
        // Known users first, so that the other's pending entries of users known here join them.
        for (key, entries) in other.users {
            let mut joined = self.pending.remove(&key).unwrap_or_default();
            self.pending_len -= joined.len();
            joined.extend(entries);
            self.users.entry(key).or_default().extend(joined);
        }
        for (key, entries) in other.pending {
            if let Some(known) = self.users.get_mut(&key) {
                known.extend(entries);
            } else {
                self.pending_len += entries.len();
                self.pending.entry(key).or_default().extend(entries);
            }
        }
    }

    /// How many pending calls (of users whose creation this timeline has not seen) are held in memory.
    pub fn pending_len(&self) -> usize {
        self.pending_len
    }

    /// Takes the pending calls out of the timeline (to be kept elsewhere and handed back with [`Timeline::restore`]).
    pub fn take_pending(&mut self) -> Vec<PendingCall> {
        self.pending_len = 0;
        self.pending
            .drain()
            .flat_map(|(user, entries)| entries.into_iter().map(move |entry| PendingCall { user: user.clone(), entry }))
            .collect()
    }

    /// Hands back a call taken with [`Timeline::take_pending`], once every timeline has been merged into this one:
    /// it is kept when its user's creation is now known, and dropped otherwise (a user created before the
    /// history). Returns whether it was kept.
    pub fn restore(&mut self, call: PendingCall) -> bool {
        match self.users.get_mut(&call.user) {
            Some(entries) => {
                entries.push(call.entry);
                true
            }
            None => false,
        }
    }

    /// Users whose creation is in the history.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Every key created for a user whose creation is in the history, decided with its creator known.
    /// The verdict is about the set-up as it happened: a key later deactivated or deleted is still reported.
    /// Pending calls still held belong to users created before the history: they make no row.
    pub fn rows(mut self, policy: &Policy) -> Vec<AuditRow> {
        let mut rows = Vec::new();
        let mut users: Vec<_> = self.users.drain().collect();
        users.sort_by(|a, b| a.0.cmp(&b.0));
        for ((account, _), mut entries) in users {
            entries.sort_by(|a, b| (a.time, a.step.order(), &a.event_id).cmp(&(b.time, b.step.order(), &b.event_id)));
            entries.dedup_by(|a, b| a.event_id == b.event_id && !a.event_id.is_empty());
            for life in lives(&entries) {
                let creators = life.creators;
                rows.extend(
                    AuditRow::for_user(policy, &account, &life.state, |key| creators.get(key).cloned())
                        .into_iter()
                        .filter(|r| r.access_key_id.is_some()),
                );
            }
        }
        rows
    }
}

/// One incarnation of a user: from CreateUser to DeleteUser (or the end of the history).
struct Life {
    state: UserState,
    creators: HashMap<String, Principal>,
}

/// Splits a user's ordered entries into incarnations. Entries before the first CreateUser belong to a user
/// created before the history began: their setup cannot be judged, so they are left out.
fn lives(entries: &[Entry]) -> Vec<Life> {
    let mut lives: Vec<Life> = Vec::new();
    let mut current: Option<Life> = None;
    for e in entries {
        match &e.step {
            Step::UserCreated { name, user_id, arn, path, tags } => {
                lives.extend(current.take());
                current = Some(Life {
                    state: UserState {
                        name: name.clone(),
                        user_id: user_id.clone(),
                        arn: arn.clone(),
                        path: path.clone(),
                        created: e.time,
                        tags: tags.clone(),
                        password_created: None,
                        keys: Vec::new(),
                    },
                    creators: HashMap::new(),
                });
            }
            Step::UserDeleted => lives.extend(current.take()),
            Step::PasswordCreated => {
                if let Some(life) = current.as_mut() {
                    life.state.password_created.get_or_insert(e.time);
                }
            }
            Step::KeyCreated { key_id, creator } => {
                if let Some(life) = current.as_mut() {
                    life.state.keys.push(KeyState { id: key_id.clone(), created: e.time, active: true });
                    life.creators.insert(key_id.clone(), creator.clone());
                }
            }
        }
    }
    lives.extend(current);
    lives
}
