//! The ports: what the guard needs from AWS, as traits, each with the IAM/SNS actions it calls.
//!
//! The SDK adapters live in [`crate::iam`] and [`crate::sns`]; tests can put anything behind these.
//! Each port's `ACTIONS` is the single list the deployment's role is checked against (`keyguard permissions`).

use std::future::Future;

use chrono::{DateTime, Utc};
use keyguard_core::{Alert, KeyState};

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
