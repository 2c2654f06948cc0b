//! What the guard says about one event: the Lambda's response and `keyguard handle`'s output line share it.

use serde::Serialize;

use crate::rule::{Finding, Verdict};

/// What was done about a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    None,
    Notified,
    Deactivated,
    DryRun,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Notified => "notified",
            Action::Deactivated => "deactivated",
            Action::DryRun => "dry-run",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub access_key_id: Option<String>,
    pub verdict: Verdict,
    pub reason: String,
    pub action: Action,
    /// Why KeyGuard did not do more (creator unknown, key in use, safety valve closed, alert already sent), or
    /// what else it did (an owed alert re-sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Decision {
    pub fn new(finding: &Finding, action: Action) -> Decision {
        Decision {
            access_key_id: finding.access_key_id.clone(),
            verdict: finding.verdict(),
            reason: finding.reason.to_string(),
            action,
            note: None,
        }
    }

    pub fn with_note(mut self, note: Option<String>) -> Decision {
        self.note = note;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventReport {
    pub event_id: String,
    pub event_name: String,
    pub account: Option<String>,
    /// The account's alias, where readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_alias: Option<String>,
    pub user: Option<String>,
    pub decisions: Vec<Decision>,
}
