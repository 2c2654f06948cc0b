//! The CIS 1.11 rule (DESIGN.md §1) as pure functions: facts in, a verdict with its reason out.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::event::{IamCall, Principal};
use crate::exempt::Exemptions;
use crate::time::human_span;

/// The outcome class of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Violation,
    Suspect,
    Compliant,
    Exempt,
    Ignored,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Violation => "violation",
            Verdict::Suspect => "suspect",
            Verdict::Compliant => "compliant",
            Verdict::Exempt => "exempt",
            Verdict::Ignored => "ignored",
        }
    }

    /// Violations and suspects are reported to the security team; only violations are ever deactivated.
    pub fn is_finding(self) -> bool {
        matches!(self, Verdict::Violation | Verdict::Suspect)
    }
}

/// Why a verdict was reached. The verdict follows from the reason, so the two can never disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A setup key of a console user, created by someone other than the user.
    SetupKeyByOther {
        creator: String,
        gap: TimeDelta,
    },
    /// A setup key created before the user had a password: it cannot be console self-service.
    SetupKeyBeforePassword {
        gap: TimeDelta,
    },
    /// A setup key created after the password, creator unknown: may be the user's own.
    SetupKeyCreatorUnknown {
        gap: TimeDelta,
    },
    NoPassword,
    OutsideWindow {
        gap: TimeDelta,
        window: TimeDelta,
    },
    SelfService,
    /// A key KeyGuard deactivated was set `Active` again by someone who is not exempt.
    ReEnabled {
        by: String,
    },
    /// `UpdateAccessKey` set a key `Active` that KeyGuard never deactivated: not ours to watch.
    NotDeactivatedByKeyGuard,
    AlreadyInactive,
    KeyGone,
    UserGone,
    NoKeys,
    /// After `CreateUser`/`CreateLoginProfile`: every key came after the password, so each is left to its own
    /// `CreateAccessKey` event, which knows the creator.
    NoKeyBeforePassword,
    Exempt(Exemption),
    Ignored(IgnoreReason),
}

/// Which exemption matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exemption {
    Tag { key: String, value: String },
    Path { prefix: String },
    UserName { pattern: String },
    Creator { pattern: String },
}

/// Why an event is not acted on at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    FailedCall {
        code: String,
    },
    RootKey,
    /// Root acting on its own credentials (other than creating its own key).
    RootOwn {
        event_name: String,
    },
    /// `UpdateAccessKey` to `Inactive` (KeyGuard's own remediation, or an owner's): nothing to watch.
    KeySetInactive,
    NotIam {
        source: String,
    },
    NotHandled {
        event_name: String,
    },
    NoTargetUser,
    NoKeyId,
    NotAnApiCall {
        detail_type: String,
    },
}

impl Reason {
    pub fn verdict(&self) -> Verdict {
        match self {
            Reason::SetupKeyByOther { .. } | Reason::SetupKeyBeforePassword { .. } | Reason::ReEnabled { .. } => {
                Verdict::Violation
            }
            Reason::SetupKeyCreatorUnknown { .. } => Verdict::Suspect,
            Reason::Exempt(_) => Verdict::Exempt,
            Reason::Ignored(_) => Verdict::Ignored,
            _ => Verdict::Compliant,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::SetupKeyByOther { creator, gap } => write!(
                f,
                "access key created {} after the user, during setup of a console user, by {creator} (not the user)",
                human_span(gap.num_seconds())
            ),
            Reason::SetupKeyBeforePassword { gap } => write!(
                f,
                "access key created {} after the user and before the console password: not self-service",
                human_span(gap.num_seconds())
            ),
            Reason::SetupKeyCreatorUnknown { gap } => write!(
                f,
                "access key created {} after the user, after the console password, by an unknown creator: may be self-service",
                human_span(gap.num_seconds())
            ),
            Reason::NoPassword => write!(f, "user has no console password"),
            Reason::OutsideWindow { gap, window } => write!(
                f,
                "access key created {} after the user, outside the {} setup window",
                human_span(gap.num_seconds()),
                human_span(window.num_seconds())
            ),
            Reason::SelfService => write!(f, "access key created by the user (self-service)"),
            Reason::ReEnabled { by } => {
                write!(f, "access key that KeyGuard deactivated was set Active again by {by}")
            }
            Reason::NotDeactivatedByKeyGuard => write!(f, "access key set Active was not deactivated by KeyGuard"),
            Reason::AlreadyInactive => write!(f, "access key already inactive"),
            Reason::KeyGone => write!(f, "access key no longer exists"),
            Reason::UserGone => write!(f, "user no longer exists"),
            Reason::NoKeys => write!(f, "user has no access keys"),
            Reason::NoKeyBeforePassword => {
                write!(f, "no access key was created before the console password")
            }
            Reason::Exempt(Exemption::Tag { key, value }) => write!(f, "exempt: user has tag {key}={value}"),
            Reason::Exempt(Exemption::Path { prefix }) => write!(f, "exempt: user path under {prefix}"),
            Reason::Exempt(Exemption::UserName { pattern }) => {
                write!(f, "exempt: user name matches {pattern}")
            }
            Reason::Exempt(Exemption::Creator { pattern }) => {
                write!(f, "exempt: key creator matches {pattern}")
            }
            Reason::Ignored(IgnoreReason::FailedCall { code }) => write!(f, "ignored: failed call ({code})"),
            Reason::Ignored(IgnoreReason::RootKey) => write!(f, "ignored: root user's own access key"),
            Reason::Ignored(IgnoreReason::RootOwn { event_name }) => {
                write!(f, "ignored: {event_name} by the root user on its own credentials")
            }
            Reason::Ignored(IgnoreReason::KeySetInactive) => write!(f, "ignored: an access key set Inactive"),
            Reason::Ignored(IgnoreReason::NotIam { source }) => write!(f, "ignored: not an IAM call ({source})"),
            Reason::Ignored(IgnoreReason::NotHandled { event_name }) => {
                write!(f, "ignored: {event_name} is not an event KeyGuard acts on")
            }
            Reason::Ignored(IgnoreReason::NoTargetUser) => write!(f, "ignored: no target user in the event"),
            Reason::Ignored(IgnoreReason::NoKeyId) => write!(f, "ignored: no access key id in the event"),
            Reason::Ignored(IgnoreReason::NotAnApiCall { detail_type }) => {
                write!(f, "ignored: not a CloudTrail API call ({detail_type})")
            }
        }
    }
}

/// The rule's parameters.
#[derive(Debug, Clone)]
pub struct Policy {
    /// A key created within this span of its user is a setup key.
    pub window: TimeDelta,
    pub exemptions: Exemptions,
}

/// A user as IAM shows it now (with the triggering event's times preferred, see [`crate::rule::Trigger`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub name: String,
    pub user_id: Option<String>,
    pub arn: Option<String>,
    pub path: String,
    pub created: DateTime<Utc>,
    pub tags: Vec<(String, String)>,
    /// When the console password was created; None when the user has none.
    pub password_created: Option<DateTime<Utc>>,
    pub keys: Vec<KeyState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub id: String,
    pub created: DateTime<Utc>,
    pub active: bool,
}

/// One decision about one key (or about the user, when there is no key to speak of).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub access_key_id: Option<String>,
    pub reason: Reason,
}

impl Finding {
    pub fn verdict(&self) -> Verdict {
        self.reason.verdict()
    }
    fn user(reason: Reason) -> Finding {
        Finding { access_key_id: None, reason }
    }
}

/// The events that make the guard evaluate a user.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// `CreateAccessKey`: evaluate that key; its creator is known.
    AccessKeyCreated { user: String, key_id: String, creator: Principal },
    /// `CreateLoginProfile`: evaluate every key created before the password.
    LoginProfileCreated { user: String },
    /// `CreateUser`: the same (covers lost or reordered events). `user_id` tells a re-created namesake apart.
    UserCreated { user: String, user_id: Option<String> },
    /// `UpdateAccessKey` to `Active`: a key KeyGuard deactivated may have been switched back on.
    AccessKeyReactivated { user: String, key_id: String, caller: Principal },
}

impl Trigger {
    /// Which trigger a call is, or why it is not one.
    pub fn of(call: &IamCall) -> Result<Trigger, IgnoreReason> {
        if !call.is_iam() {
            return Err(IgnoreReason::NotIam { source: call.event_source.clone() });
        }
        if let Some(code) = &call.error_code {
            return Err(IgnoreReason::FailedCall { code: code.clone() });
        }
        let handled = matches!(
            call.event_name.as_str(),
            "CreateAccessKey" | "CreateLoginProfile" | "CreateUser" | "UpdateAccessKey"
        );
        if !handled {
            return Err(IgnoreReason::NotHandled { event_name: call.event_name.clone() });
        }
        if call.event_name == "UpdateAccessKey"
            && !call.key_status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("Active"))
        {
            return Err(IgnoreReason::KeySetInactive);
        }
        let Some(user) = call.target_user.clone() else {
            return Err(match (call.caller.is_root(), call.event_name.as_str()) {
                (true, "CreateAccessKey") => IgnoreReason::RootKey,
                (true, name) => IgnoreReason::RootOwn { event_name: name.to_string() },
                (false, _) => IgnoreReason::NoTargetUser,
            });
        };
        Ok(match call.event_name.as_str() {
            "CreateAccessKey" => Trigger::AccessKeyCreated {
                user,
                key_id: call.access_key_id.clone().ok_or(IgnoreReason::NoKeyId)?,
                creator: call.caller.clone(),
            },
            "UpdateAccessKey" => Trigger::AccessKeyReactivated {
                user,
                key_id: call.access_key_id.clone().ok_or(IgnoreReason::NoKeyId)?,
                caller: call.caller.clone(),
            },
            "CreateLoginProfile" => Trigger::LoginProfileCreated { user },
            _ => Trigger::UserCreated { user, user_id: call.user_id.clone() },
        })
    }

    pub fn user(&self) -> &str {
        match self {
            Trigger::AccessKeyCreated { user, .. }
            | Trigger::LoginProfileCreated { user }
            | Trigger::UserCreated { user, .. }
            | Trigger::AccessKeyReactivated { user, .. } => user,
        }
    }

    /// The key the event names, if it names one.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Trigger::AccessKeyCreated { key_id, .. } | Trigger::AccessKeyReactivated { key_id, .. } => Some(key_id),
            _ => None,
        }
    }

    /// The triggering event is evidence of when its object was created (IAM reads lag, emulators differ):
    /// its time replaces the re-read value for that one object.
    pub fn apply_evidence(&self, event_time: DateTime<Utc>, state: &mut UserState) {
        match self {
            Trigger::AccessKeyCreated { key_id, .. } => {
                if let Some(k) = state.keys.iter_mut().find(|k| &k.id == key_id) {
                    k.created = event_time;
                }
            }
            Trigger::LoginProfileCreated { .. } => {
                if state.password_created.is_some() {
                    state.password_created = Some(event_time);
                }
            }
            Trigger::UserCreated { user_id, .. } => {
                if user_id.is_none() || *user_id == state.user_id {
                    state.created = event_time;
                }
            }
            // Re-enabling creates nothing.
            Trigger::AccessKeyReactivated { .. } => {}
        }
    }
}

/// What KeyGuard's ledger remembers of one key (DESIGN.md §1): who created it, from its own `CreateAccessKey` event,
/// and whether KeyGuard deactivated it. Empty when there is no ledger or no entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyHistory {
    pub creator: Option<Principal>,
    pub deactivated_by_keyguard: bool,
}

/// Applies the rule for one trigger to the user's current state. `history` holds what the ledger knows of the
/// user's keys, by key id: a `CreateLoginProfile`/`CreateUser` event judges a key with the creator its own
/// `CreateAccessKey` event recorded (the Terraform order: key first, password a minute later).
pub fn evaluate(
    policy: &Policy,
    trigger: &Trigger,
    state: &UserState,
    history: &HashMap<String, KeyHistory>,
) -> Vec<Finding> {
    match trigger {
        Trigger::AccessKeyCreated { key_id, creator, .. } => {
            let finding = match state.keys.iter().find(|k| &k.id == key_id) {
                Some(key) => decide_key(policy, state, key, Some(creator)),
                None => Finding { access_key_id: Some(key_id.clone()), reason: Reason::KeyGone },
            };
            vec![finding]
        }
        Trigger::AccessKeyReactivated { key_id, caller, .. } => {
            let reason = match state.keys.iter().find(|k| &k.id == key_id) {
                None => Reason::KeyGone,
                Some(key) if !key.active => Reason::AlreadyInactive,
                Some(_) if !history.get(key_id).is_some_and(|h| h.deactivated_by_keyguard) => {
                    Reason::NotDeactivatedByKeyGuard
                }
                Some(_) => policy
                    .exemptions
                    .for_creator(caller)
                    .or_else(|| policy.exemptions.for_user(&state.name, &state.path, &state.tags))
                    .map(Reason::Exempt)
                    .unwrap_or_else(|| Reason::ReEnabled { by: caller.label() }),
            };
            vec![Finding { access_key_id: Some(key_id.clone()), reason }]
        }
        Trigger::LoginProfileCreated { .. } | Trigger::UserCreated { .. } => {
            if state.keys.is_empty() {
                return vec![Finding::user(Reason::NoKeys)];
            }
            let before_password: Vec<Finding> = state
                .keys
                .iter()
                .filter(|k| state.password_created.is_none_or(|p| not_after(k.created, p)))
                .map(|k| decide_key(policy, state, k, history.get(&k.id).and_then(|h| h.creator.as_ref())))
                .collect();
            if before_password.is_empty() { vec![Finding::user(Reason::NoKeyBeforePassword)] } else { before_password }
        }
    }
}

/// The rule for one key. `creator` is None when unknown (audit, or a trigger other than `CreateAccessKey`).
///
/// The order of the checks decides which reason is reported: facts that make a key compliant come first, then
/// exemptions (so `exempt` always means "would have been flagged, but is exempt"), then the key's status.
pub fn decide_key(policy: &Policy, user: &UserState, key: &KeyState, creator: Option<&Principal>) -> Finding {
    let reason = key_reason(policy, user, key, creator);
    Finding { access_key_id: Some(key.id.clone()), reason }
}

fn key_reason(policy: &Policy, user: &UserState, key: &KeyState, creator: Option<&Principal>) -> Reason {
    let gap = TimeDelta::seconds(key.created.timestamp() - user.created.timestamp());
    if gap > policy.window {
        return Reason::OutsideWindow { gap, window: policy.window };
    }
    let Some(password) = user.password_created else {
        return Reason::NoPassword;
    };
    if creator.is_some_and(|c| c.is_iam_user(&user.name)) {
        return Reason::SelfService;
    }
    if let Some(exemption) = policy.exemptions.for_user(&user.name, &user.path, &user.tags) {
        return Reason::Exempt(exemption);
    }
    if let Some(exemption) = creator.and_then(|c| policy.exemptions.for_creator(c)) {
        return Reason::Exempt(exemption);
    }
    if !key.active {
        return Reason::AlreadyInactive;
    }
    match creator {
        Some(c) => Reason::SetupKeyByOther { creator: c.label(), gap },
        None if not_after(key.created, password) => Reason::SetupKeyBeforePassword { gap },
        None => Reason::SetupKeyCreatorUnknown { gap },
    }
}

/// CloudTrail and IAM date things to the second (emulators add fractions): times are compared in whole seconds,
/// and a key in its password's own second counts as before it (no user signs in and creates a key that fast).
fn not_after(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.timestamp() <= b.timestamp()
}
