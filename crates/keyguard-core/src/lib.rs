//! KeyGuard's pure core: one parser, one rule and one alert renderer for all three faces (Lambda, audit, replay).
//!
//! No AWS SDK, no async, no clock reads: time is passed in, so every decision is a value that tests can pin.

pub mod alert;
pub mod asff;
pub mod audit;
pub mod chat;
pub mod config;
pub mod event;
pub mod exempt;
pub mod html;
pub mod ocsf;
pub mod report;
pub mod rule;
mod text;
pub mod time;
pub mod timeline;

pub use alert::{Alert, AlertFacts, AlertKind, DigestFacts, DigestLine, ValveFacts};
pub use audit::{
    AuditFailure, AuditRow, CredentialReport, Plan, ReportAge, ReportKey, ReportUser, order_settled,
    parse_credential_report,
};
pub use config::{Config, ConfigError, Mode, Scope};
pub use event::{IamCall, Incoming, ParseError, Principal, parse_event, parse_record};
pub use exempt::Exemptions;
pub use report::{Action, Decision, EventReport};
pub use rule::{Finding, KeyHistory, KeyState, Policy, Reason, Trigger, UserState, Verdict, decide_key, evaluate};
pub use timeline::Timeline;
