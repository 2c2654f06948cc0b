//! The ports: what KeyGuard needs from AWS, as traits, each with the AWS actions it calls.
//!
//! The SDK adapters live in one file each ([`crate::iam`], [`crate::sns`], [`crate::ledger`], ...); tests can put
//! anything behind these (the `twin` feature has in-memory ones). Each port's `ACTIONS` is the single list the
//! deployment's roles are checked against (`keyguard permissions`, [`crate::permissions`]).

use std::future::Future;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use keyguard_core::{Alert, KeyState, Principal};
use serde::{Deserialize, Serialize};

use crate::error::AwsError;

/// A user as `GetUser` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub user_id: String,
    pub arn: String,
    pub path: String,
    pub created: DateTime<Utc>,
    pub tags: Vec<(String, String)>,
}

impl UserRecord {
    /// The rule's view of this user, with the password and keys read beside it.
    pub fn into_state(self, password: Option<DateTime<Utc>>, keys: Option<Vec<KeyState>>) -> keyguard_core::UserState {
        keyguard_core::UserState {
            name: self.name,
            user_id: Some(self.user_id).filter(|s| !s.is_empty()),
            arn: Some(self.arn).filter(|s| !s.is_empty()),
            path: self.path,
            created: self.created,
            tags: self.tags,
            password_created: password,
            keys: keys.unwrap_or_default(),
        }
    }
}

/// Reads one user's IAM state. `Ok(None)` means IAM says the thing does not exist (`NoSuchEntity`).
pub trait IamReader: Send + Sync {
    const ACTIONS: &'static [&'static str] =
        &["iam:GetUser", "iam:GetLoginProfile", "iam:ListAccessKeys", "iam:GetAccessKeyLastUsed"];
    fn get_user(&self, user: &str) -> impl Future<Output = Result<Option<UserRecord>, AwsError>> + Send;
    /// When the console password was created, if the user has one.
    fn get_login_profile(&self, user: &str) -> impl Future<Output = Result<Option<DateTime<Utc>>, AwsError>> + Send;
    fn list_access_keys(&self, user: &str) -> impl Future<Output = Result<Option<Vec<KeyState>>, AwsError>> + Send;
    /// When the key was last used; `Ok(None)` when never (or when the key is gone). Read before any deactivation:
    /// a late event must not switch off a key that production now uses.
    fn key_last_used(
        &self,
        access_key_id: &str,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, AwsError>> + Send;
}

/// What became of a deactivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deactivation {
    Done,
    /// The key or its user no longer exists.
    Gone,
}

/// Sets one key inactive. Never deletes, never touches another key.
pub trait KeyDeactivator: Send + Sync {
    const ACTIONS: &'static [&'static str] = &["iam:UpdateAccessKey"];
    fn deactivate(
        &self,
        user: &str,
        access_key_id: &str,
    ) -> impl Future<Output = Result<Deactivation, AwsError>> + Send;
}

/// Publishes an alert; returns the message id.
pub trait AlertPublisher: Send + Sync {
    const ACTIONS: &'static [&'static str] = &["sns:Publish"];
    fn publish(&self, alert: &Alert) -> impl Future<Output = Result<String, AwsError>> + Send;
}

/// The credential report as IAM gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDocument {
    pub csv: String,
    /// `GetCredentialReport`'s `GeneratedTime`.
    pub generated: DateTime<Utc>,
    /// This reader's own `GenerateCredentialReport` call started the report (`STARTED`), so it was generated after
    /// the call: it settles everything it shows ([`keyguard_core::ReportAge`]).
    pub fresh: bool,
}

/// The account's users from one listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserListing {
    pub users: Vec<UserRecord>,
    /// The listing carries each user's tags (GetAccountAuthorizationDetails). ListUsers does not: then a user read
    /// live is read with GetUser, for the tags its exemption may depend on.
    pub tags: bool,
}

/// Reads the whole account, for the audit and the scheduled sweep: a fixed number of pages, whatever the findings.
pub trait AccountReader: Send + Sync {
    const ACTIONS: &'static [&'static str] = &[
        "iam:GenerateCredentialReport",
        "iam:GetAccountAuthorizationDetails",
        "iam:GetCredentialReport",
        "iam:ListAccountAliases",
        "iam:ListUsers",
    ];
    /// The credential report, generated and awaited; `Ok(None)` when it cannot be had (not ready in time, or not
    /// permitted), in which case the audit reads every user.
    fn credential_report(&self) -> impl Future<Output = Result<Option<ReportDocument>, AwsError>> + Send;
    /// Every user with their path and tags (GetAccountAuthorizationDetails, users only, 1,000 a page); where that
    /// is denied (a role not updated yet), ListUsers, without tags.
    fn users(&self) -> impl Future<Output = Result<UserListing, AwsError>> + Send;
    /// The account's alias, for alerts and reports; `Ok(None)` when it has none.
    fn account_alias(&self) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
}

/// Who created a key, from CloudTrail's event history (the last 90 days): turns the audit's `suspect` into
/// `violation` or `compliant (self-service)`.
pub trait CreatorLookup: Send + Sync {
    const ACTIONS: &'static [&'static str] = &["cloudtrail:LookupEvents"];
    /// The principal of the successful `CreateAccessKey` call that created the key; `Ok(None)` when the history
    /// does not have it (older than 90 days, or another region's trail).
    fn key_creator(&self, access_key_id: &str) -> impl Future<Output = Result<Option<Principal>, AwsError>> + Send;
}

/// What the ledger holds about one key (DESIGN.md §1): what events taught and what the guard did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub user: String,
    /// The principal of the key's `CreateAccessKey` event, and when that was.
    pub creator: Option<Principal>,
    pub created: Option<DateTime<Utc>>,
    /// KeyGuard began deactivating the key (written before `UpdateAccessKey`, with the alert it owes).
    pub deactivation_started: Option<DateTime<Utc>>,
    /// KeyGuard deactivated the key and its alert went out.
    pub deactivated: Option<DateTime<Utc>>,
    /// An alert that must still reach the team: written before an irreversible step, cleared once published.
    pub owed_alert: Option<OwedAlert>,
    /// The alerts already published about this key (see [`crate::act`] for the kinds), to suppress duplicates.
    pub sent: Vec<String>,
}

impl KeyRecord {
    /// Whether KeyGuard set this key inactive (a later re-enable is watched).
    pub fn deactivated_by_keyguard(&self) -> bool {
        self.deactivated.is_some() || self.deactivation_started.is_some()
    }

    pub fn history(&self) -> keyguard_core::KeyHistory {
        keyguard_core::KeyHistory {
            creator: self.creator.clone(),
            deactivated_by_keyguard: self.deactivated_by_keyguard(),
        }
    }
}

/// An alert the ledger holds until it is published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwedAlert {
    pub kind: String,
    pub alert: Alert,
}

/// The ledger (DynamoDB, TTL): remembers each key's creator, each deactivation and whether its alert went out.
/// Every write is an idempotent upsert, so a retried event writes the same thing again.
pub trait Ledger: Send + Sync {
    const ACTIONS: &'static [&'static str] = &["dynamodb:GetItem", "dynamodb:UpdateItem"];
    fn key(
        &self,
        account: &str,
        access_key_id: &str,
    ) -> impl Future<Output = Result<Option<KeyRecord>, AwsError>> + Send;
    /// The creator of a key, from its `CreateAccessKey` event (recorded even when the key is compliant then).
    fn record_creator(
        &self,
        account: &str,
        access_key_id: &str,
        user: &str,
        creator: &Principal,
        created: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Before an irreversible step: the alert it will owe (and, for a deactivation, that it began).
    fn owe(
        &self,
        account: &str,
        access_key_id: &str,
        user: &str,
        owed: &OwedAlert,
        deactivating: bool,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// After the alert of `kind` went out: records it, clears what was owed, and marks a deactivation as done.
    fn sent(
        &self,
        account: &str,
        access_key_id: &str,
        user: &str,
        kind: &str,
        deactivated: bool,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// A destination a decision is handed to besides the alert topic (Security Hub, chat). An outlet's failure is
/// retried inside it or reported (log and metric); it never changes the decision or fails the event.
pub trait Outlet: Send + Sync {
    /// For logs and metrics.
    fn name(&self) -> &'static str;
    fn deliver<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), AwsError>>;
    /// After an audit that acted (the sweep, `audit --apply`): `rows` are the account's keys as they stand; the
    /// outlet closes what it holds of keys no longer open (Security Hub archives the findings of keys gone,
    /// inactive or now exempt). Nothing by default.
    fn reconcile<'a>(
        &'a self,
        account: &'a str,
        rows: &'a [keyguard_core::AuditRow],
    ) -> BoxFuture<'a, Result<(), AwsError>> {
        let _ = (account, rows);
        Box::pin(async { Ok(()) })
    }
}

/// One decision about one key, as every outlet receives it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub facts: keyguard_core::AlertFacts,
    /// Where the finding stands for the outlet: open, resolved by KeyGuard's deactivation, or archived (exempt).
    pub state: keyguard_core::asff::FindingState,
    pub at: DateTime<Utc>,
    /// The team was alerted about this decision just now. Alert-like outlets (chat) post only then; state-like
    /// ones (Security Hub, upserting by id) take every delivery (a duplicate updates the same finding).
    pub alerted: bool,
}

/// The accounts of the organization (Organizations `ListAccounts`, from the management or a delegated admin).
pub trait AccountDirectory: Send + Sync {
    const ACTIONS: &'static [&'static str] = &["organizations:ListAccounts"];
    /// The ids of the organization's active accounts.
    fn active_accounts(&self) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
}

/// The sweep queue: one message per account, consumed by the same function.
pub trait SweepQueue: Send + Sync {
    const ACTIONS: &'static [&'static str] = &["sqs:SendMessage"];
    fn send(&self, bodies: &[String]) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The user, password and keys, read concurrently. `None`s where IAM says `NoSuchEntity`.
pub async fn read_user<I: IamReader>(
    iam: &I,
    name: &str,
) -> Result<(Option<UserRecord>, Option<DateTime<Utc>>, Option<Vec<keyguard_core::KeyState>>), AwsError> {
    let (user, password, keys) =
        tokio::join!(iam.get_user(name), iam.get_login_profile(name), iam.list_access_keys(name));
    Ok((user?, password?, keys?))
}
