//! The IAM adapter: [`IamReader`] and [`KeyDeactivator`] over `aws-sdk-iam`.

use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::StatusType;
use chrono::{DateTime, Utc};
use keyguard_core::KeyState;

use crate::error::{AwsError, AwsErrorKind};
use crate::ports::{Deactivation, IamReader, KeyDeactivator, UserRecord};

#[derive(Debug, Clone)]
pub struct SdkIam {
    client: aws_sdk_iam::Client,
}

impl SdkIam {
    pub fn new(client: aws_sdk_iam::Client) -> SdkIam {
        SdkIam { client }
    }
}

/// Maps an SDK error to ours, keeping the full error chain in the message.
pub(crate) fn aws_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().map(str::to_string);
    AwsError::new(operation, code.as_deref(), DisplayErrorContext(&err).to_string())
}

/// `Ok(None)` for `NoSuchEntity`, the error otherwise.
fn absent_on_not_found<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == AwsErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn missing(operation: &'static str, what: &str) -> AwsError {
    AwsError { operation, kind: AwsErrorKind::Other, message: format!("response without {what}") }
}

impl IamReader for SdkIam {
    async fn get_user(&self, user: &str) -> Result<Option<UserRecord>, AwsError> {
        let result = self.client.get_user().user_name(user).send().await.map_err(|e| aws_error("iam:GetUser", e));
        let Some(out) = absent_on_not_found(result)? else { return Ok(None) };
        let u = out.user().ok_or_else(|| missing("iam:GetUser", "User"))?;
        Ok(Some(UserRecord {
            name: u.user_name().to_string(),
            user_id: u.user_id().to_string(),
            arn: u.arn().to_string(),
            path: u.path().to_string(),
            created: to_chrono(u.create_date()).ok_or_else(|| missing("iam:GetUser", "a valid CreateDate"))?,
            tags: u.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
        }))
    }

    async fn get_login_profile(&self, user: &str) -> Result<Option<DateTime<Utc>>, AwsError> {
        let result = self
            .client
            .get_login_profile()
            .user_name(user)
            .send()
            .await
            .map_err(|e| aws_error("iam:GetLoginProfile", e));
        let Some(out) = absent_on_not_found(result)? else { return Ok(None) };
        let profile = out.login_profile().ok_or_else(|| missing("iam:GetLoginProfile", "LoginProfile"))?;
        to_chrono(profile.create_date()).map(Some).ok_or_else(|| missing("iam:GetLoginProfile", "a valid CreateDate"))
    }

    async fn list_access_keys(&self, user: &str) -> Result<Option<Vec<KeyState>>, AwsError> {
        // At most two keys per user: one page.
        let result =
            self.client.list_access_keys().user_name(user).send().await.map_err(|e| aws_error("iam:ListAccessKeys", e));
        let Some(out) = absent_on_not_found(result)? else { return Ok(None) };
        let mut keys = Vec::new();
        for k in out.access_key_metadata() {
            let (Some(id), Some(created)) = (k.access_key_id(), k.create_date().and_then(to_chrono)) else {
                return Err(missing("iam:ListAccessKeys", "a key id or CreateDate"));
            };
            keys.push(KeyState { id: id.to_string(), created, active: k.status() == Some(&StatusType::Active) });
        }
        Ok(Some(keys))
    }
}

impl KeyDeactivator for SdkIam {
    async fn deactivate(&self, user: &str, access_key_id: &str) -> Result<Deactivation, AwsError> {
        // UserName is always passed: without it IAM acts on the caller's own keys (DESIGN.md §2).
        let result = self
            .client
            .update_access_key()
            .user_name(user)
            .access_key_id(access_key_id)
            .status(StatusType::Inactive)
            .send()
            .await
            .map_err(|e| aws_error("iam:UpdateAccessKey", e));
        Ok(match absent_on_not_found(result)? {
            Some(_) => Deactivation::Done,
            None => Deactivation::Gone,
        })
    }
}
