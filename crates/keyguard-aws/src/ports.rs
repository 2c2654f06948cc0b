//! The ports: what the guard needs from AWS, as traits, each with the IAM/SNS actions it calls.
//!
//! The SDK adapters live in [`crate::iam`] and [`crate::sns`]; tests can put anything behind these.
//! Each port's `ACTIONS` is the single list the deployment's role is checked against (`keyguard permissions`).

use std::future::Future;

use chrono::{DateTime, Utc};
use keyguard_core::{Alert, KeyState, Principal};

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
    const ACTIONS: &'static [&'static str] = &["iam:GetUser", "iam:GetLoginProfile", "iam:ListAccessKeys"];
    fn get_user(&self, user: &str) -> impl Future<Output = Result<Option<UserRecord>, AwsError>> + Send;
    /// When the console password was created, if the user has one.
    fn get_login_profile(&self, user: &str) -> impl Future<Output = Result<Option<DateTime<Utc>>, AwsError>> + Send;
    fn list_access_keys(&self, user: &str) -> impl Future<Output = Result<Option<Vec<KeyState>>, AwsError>> + Send;
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

/// Reads the whole account, for the audit and the scheduled reconciliation.
pub trait AccountReader: Send + Sync {
    const ACTIONS: &'static [&'static str] =
        &["iam:GenerateCredentialReport", "iam:GetCredentialReport", "iam:ListUsers", "iam:GetAccessKeyLastUsed"];
    /// The credential report (CSV) and when it was generated, generated and awaited; `Ok(None)` when it cannot be
    /// had (not ready in time, or not permitted), in which case the audit reads every user.
    fn credential_report(&self) -> impl Future<Output = Result<Option<(String, DateTime<Utc>)>, AwsError>> + Send;
    /// Every user's name and creation time.
    fn list_users(&self) -> impl Future<Output = Result<Vec<(String, DateTime<Utc>)>, AwsError>> + Send;
    /// When the key was last used; `Ok(None)` when never (or when the key is gone).
    fn key_last_used(
        &self,
        access_key_id: &str,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, AwsError>> + Send;
}

/// Who created a key, from CloudTrail's event history (the last 90 days): turns the audit's `suspect` into
/// `violation` or `compliant (self-service)`.
pub trait CreatorLookup: Send + Sync {
    const ACTIONS: &'static [&'static str] = &["cloudtrail:LookupEvents"];
    /// The principal of the successful `CreateAccessKey` call that created the key; `Ok(None)` when the history
    /// does not have it (older than 90 days, or another region's trail).
    fn key_creator(&self, access_key_id: &str) -> impl Future<Output = Result<Option<Principal>, AwsError>> + Send;
}
