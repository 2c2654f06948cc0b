//! Replay: per-user timelines built from a stream of CloudTrail calls, then the rule with the creator known.
//!
//! Only the few calls that shape a user's setup are kept (creation, password, keys, deletions), so memory grows
//! with the number of users, not with the size of the archive. Calls may come in any order and more than once
//! (overlapping files, EventBridge copies): they are ordered by `eventTime` and deduplicated by `eventID` at the end.
//! A user deleted and re-created under the same name is a new user.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::audit::AuditRow;
use crate::event::{IamCall, Principal};
use crate::rule::{KeyState, Policy, UserState};

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    time: DateTime<Utc>,
    event_id: String,
    step: Step,
}

/// The timelines of every user seen, by (account, user name in lower case: IAM names are case-insensitive).
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    users: HashMap<(String, String), Vec<Entry>>,
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Whether a call can matter to a timeline (cheap: decides which records are worth parsing in full).
    pub fn wants(event_source: &str, event_name: &str) -> bool {
        event_source == "iam.amazonaws.com"
            && matches!(event_name, "CreateUser" | "DeleteUser" | "CreateLoginProfile" | "CreateAccessKey")
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
        let account = call.account.clone().unwrap_or_default();
        self.users.entry((account, user.to_lowercase())).or_default().push(Entry {
            time: call.event_time,
            event_id: call.event_id.clone(),
            step,
        });
        true
    }

    /// Joins another timeline (built by another worker) into this one.
    pub fn merge(&mut self, other: Timeline) {
        for (user, entries) in other.users {
            self.users.entry(user).or_default().extend(entries);
        }
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Every key created for a user whose creation is in the history, decided with its creator known.
    /// The verdict is about the set-up as it happened: a key later deactivated or deleted is still reported.
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
