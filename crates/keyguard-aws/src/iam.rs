//! The IAM adapter: [`IamReader`], [`KeyDeactivator`] and [`AccountReader`] over `aws-sdk-iam`.

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_iam::types::{EntityType, ReportStateType, StatusType};
use chrono::{DateTime, Utc};
use keyguard_core::KeyState;

use crate::error::{AwsError, AwsErrorKind};
use crate::ports::{AccountReader, Deactivation, IamReader, KeyDeactivator, ReportDocument, UserListing, UserRecord};

#[derive(Debug, Clone)]
pub struct SdkIam {
    client: aws_sdk_iam::Client,
    /// Requests sent (shared by clones), for the benchmarks' "API calls per ..." figures.
    calls: Arc<AtomicUsize>,
    /// How long to wait for a credential report before listing users instead.
    report_wait: Duration,
}

impl SdkIam {
    pub fn new(client: aws_sdk_iam::Client) -> SdkIam {
        SdkIam { client, calls: Arc::new(AtomicUsize::new(0)), report_wait: Duration::from_secs(60) }
    }

    /// How many IAM requests this adapter (and its clones) has sent.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// Maps an SDK error to ours (see [`AwsError::from_sdk`]).
pub(crate) fn aws_error<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_iam::config::http::HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    AwsError::from_sdk(operation, &err)
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
        self.count();
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
        self.count();
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
        self.count();
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

    async fn key_last_used(&self, access_key_id: &str) -> Result<Option<DateTime<Utc>>, AwsError> {
        self.count();
        let result = self
            .client
            .get_access_key_last_used()
            .access_key_id(access_key_id)
            .send()
            .await
            .map_err(|e| aws_error("iam:GetAccessKeyLastUsed", e));
        let Some(out) = absent_on_not_found(result)? else { return Ok(None) };
        Ok(out.access_key_last_used().and_then(|u| u.last_used_date()).and_then(to_chrono))
    }
}

impl KeyDeactivator for SdkIam {
    async fn deactivate(&self, user: &str, access_key_id: &str) -> Result<Deactivation, AwsError> {
        // UserName is always passed: without it IAM acts on the caller's own keys (DESIGN.md §2).
        self.count();
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

impl AccountReader for SdkIam {
    async fn credential_report(&self) -> Result<Option<ReportDocument>, AwsError> {
        // Generate (a no-op while a report younger than 4 hours exists), poll until complete, then fetch. The first
        // answer says whether this call started the report (`STARTED`) or found one made earlier.
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        let mut fresh = None;
        loop {
            self.count();
            let generated = self.client.generate_credential_report().send().await;
            let state = match generated {
                Ok(out) => out.state().cloned(),
                Err(e) => {
                    let e = aws_error("iam:GenerateCredentialReport", e);
                    if e.kind == AwsErrorKind::AccessDenied {
                        tracing::warn!(error = %e, "no credential report: reading every user instead");
                        return Ok(None);
                    }
                    return Err(e);
                }
            };
            let fresh = *fresh.get_or_insert(state == Some(ReportStateType::Started));
            if state == Some(ReportStateType::Complete) {
                return self.fetch_report(fresh).await;
            }
            if started.elapsed() > self.report_wait {
                tracing::warn!("credential report not ready in time: reading every user instead");
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(4));
        }
    }

    async fn users(&self) -> Result<UserListing, AwsError> {
        let mut users = Vec::new();
        let mut pages = self
            .client
            .get_account_authorization_details()
            .filter(EntityType::User)
            .max_items(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            self.count();
            let page = match page.map_err(|e| aws_error("iam:GetAccountAuthorizationDetails", e)) {
                Ok(page) => page,
                Err(e) if e.kind == AwsErrorKind::AccessDenied && users.is_empty() => {
                    // Said only once the fallback worked: when ListUsers fails too, its error is the one line.
                    let users = self.list_users().await?;
                    tracing::warn!(error = %e, "listing users without their tags (ListUsers): grant \
                        iam:GetAccountAuthorizationDetails to save a GetUser per user read");
                    return Ok(UserListing { users, tags: false });
                }
                Err(e) => return Err(e),
            };
            for u in page.user_detail_list() {
                let what = "a user name, id, ARN and CreateDate";
                let op = "iam:GetAccountAuthorizationDetails";
                let (Some(name), Some(created)) = (u.user_name(), u.create_date().and_then(to_chrono)) else {
                    return Err(missing(op, what));
                };
                users.push(UserRecord {
                    name: name.to_string(),
                    user_id: u.user_id().unwrap_or_default().to_string(),
                    arn: u.arn().unwrap_or_default().to_string(),
                    path: u.path().unwrap_or("/").to_string(),
                    created,
                    tags: u.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
                });
            }
        }
        Ok(UserListing { users, tags: true })
    }

    async fn account_alias(&self) -> Result<Option<String>, AwsError> {
        self.count();
        let out =
            self.client.list_account_aliases().send().await.map_err(|e| aws_error("iam:ListAccountAliases", e))?;
        Ok(out.account_aliases().first().cloned())
    }
}

impl SdkIam {
    /// GetCredentialReport, once GenerateCredentialReport says it is complete.
    async fn fetch_report(&self, fresh: bool) -> Result<Option<ReportDocument>, AwsError> {
        self.count();
        let out = match self.client.get_credential_report().send().await {
            Ok(out) => out,
            Err(e) => {
                let e = aws_error("iam:GetCredentialReport", e);
                tracing::warn!(error = %e, "credential report unreadable: reading every user instead");
                return if e.kind == AwsErrorKind::Throttled { Err(e) } else { Ok(None) };
            }
        };
        let content = out.content().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        let generated = out.generated_time().and_then(to_chrono);
        Ok(String::from_utf8(content).ok().zip(generated).map(|(csv, generated)| ReportDocument {
            csv,
            generated,
            fresh,
        }))
    }

    /// Every user without tags (ListUsers does not return them), 1,000 a page.
    async fn list_users(&self) -> Result<Vec<UserRecord>, AwsError> {
        let mut users = Vec::new();
        let mut pages = self.client.list_users().max_items(1000).into_paginator().send();
        while let Some(page) = pages.next().await {
            self.count();
            let page = page.map_err(|e| aws_error("iam:ListUsers", e))?;
            for u in page.users() {
                let created =
                    to_chrono(u.create_date()).ok_or_else(|| missing("iam:ListUsers", "a valid CreateDate"))?;
                users.push(UserRecord {
                    name: u.user_name().to_string(),
                    user_id: u.user_id().to_string(),
                    arn: u.arn().to_string(),
                    path: u.path().to_string(),
                    created,
                    tags: Vec::new(),
                });
            }
        }
        Ok(users)
    }
}
