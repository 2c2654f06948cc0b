//! Which accounts are guarded, and the clients for one account.
//!
//! The account is part of every decision's identity (DESIGN.md §3). Credentials for an account come from one
//! provider: the function's own for its own account, else the member role assumed in that account. Assumed
//! credentials are cached per account until shortly before they expire, and never used for another account: each
//! account has its own cache entry and its own clients.
//!
//! AssumeRole is called explicitly (not through a lazy credentials provider) so that a failure surfaces here, as a
//! typed error naming the account and the role: retryable when it may pass, a configuration error on AccessDenied.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use chrono::{DateTime, TimeDelta, Utc};
use keyguard_core::Scope;
use tracing::{info, warn};

use crate::error::{AwsError, AwsErrorKind};
use crate::iam::{SdkIam, aws_error};
use crate::ports::{AccountDirectory, AccountReader, IamReader, KeyDeactivator};

/// Why an account is not guarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountCheck {
    #[error("{0}")]
    NotGuarded(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// The accounts KeyGuard acts in, and each one's IAM.
pub trait Accounts: Send + Sync {
    type Iam: IamReader + AccountReader + KeyDeactivator + Send + Sync;

    /// The account the guard runs in (found on first use: an event that is refused or ignored needs no AWS call).
    fn own(&self) -> impl Future<Output = Result<String, AwsError>> + Send;
    /// Ok when `account` is guarded; `NotGuarded(why)` when it is not (refuse the event, call nothing there).
    fn check(&self, account: &str) -> impl Future<Output = Result<(), AccountCheck>> + Send;
    /// The IAM of a guarded account (call [`Accounts::check`] first).
    fn iam(&self, account: &str) -> impl Future<Output = Result<Self::Iam, AwsError>> + Send;
    /// Every guarded account, for the sweep's fan-out.
    fn all(&self) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
    /// The account's alias, cached; None when it has none or it cannot be read (alerts then show the id alone).
    fn alias(&self, account: &str) -> impl Future<Output = Option<String>> + Send;
}

/// Assumed credentials are renewed this long before they expire, so that no call runs with credentials that
/// expire under it (an account's sweep stays well inside this).
const RENEW_BEFORE: TimeDelta = TimeDelta::minutes(10);
/// How long a listing of the organization's accounts is trusted; an unknown account older than
/// [`ORG_RELIST_AFTER`] triggers one new listing (an account just added to the organization).
const ORG_LIST_TTL: Duration = Duration::from_secs(15 * 60);
const ORG_RELIST_AFTER: Duration = Duration::from_secs(60);

/// [`Accounts`] through the SDK: STS for the member role, Organizations for the organization's accounts.
pub struct SdkAccounts {
    /// The own account and its partition, from STS GetCallerIdentity on first use.
    identity: tokio::sync::OnceCell<(String, String)>,
    scope: Scope,
    base: SdkConfig,
    sts: aws_sdk_sts::Client,
    directory: Option<Arc<dyn DirectoryDyn>>,
    clients: Mutex<HashMap<String, Cached>>,
    organization: Mutex<Option<(Instant, HashSet<String>)>>,
    aliases: Mutex<HashMap<String, Option<String>>>,
    /// AssumeRole calls made (shared by nothing else), for tests and benchmarks.
    assumed: std::sync::atomic::AtomicUsize,
}

struct Cached {
    config: SdkConfig,
    iam: SdkIam,
    /// None for the own account (its credentials refresh themselves).
    expires: Option<DateTime<Utc>>,
}

/// Object-safe form of [`AccountDirectory`], so that tests can replace it.
pub trait DirectoryDyn: Send + Sync {
    fn active_accounts(&self) -> futures::future::BoxFuture<'_, Result<Vec<String>, AwsError>>;
}

impl<T: AccountDirectory> DirectoryDyn for T {
    fn active_accounts(&self) -> futures::future::BoxFuture<'_, Result<Vec<String>, AwsError>> {
        Box::pin(AccountDirectory::active_accounts(self))
    }
}

impl SdkAccounts {
    /// Prepares the scope; the own account is found on first use (STS GetCallerIdentity, which needs no
    /// permission).
    pub fn new(base: &SdkConfig, scope: Scope) -> SdkAccounts {
        let sts = aws_sdk_sts::Client::new(base);
        let directory: Option<Arc<dyn DirectoryDyn>> = match scope {
            Scope::Organization { .. } => {
                Some(Arc::new(SdkDirectory { client: aws_sdk_organizations::Client::new(base) }))
            }
            _ => None,
        };
        SdkAccounts {
            identity: tokio::sync::OnceCell::new(),
            scope,
            base: base.clone(),
            sts,
            directory,
            clients: Mutex::new(HashMap::new()),
            organization: Mutex::new(None),
            aliases: Mutex::new(HashMap::new()),
            assumed: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The own account and its partition.
    async fn identity(&self) -> Result<&(String, String), AwsError> {
        self.identity
            .get_or_try_init(|| async {
                let me =
                    self.sts.get_caller_identity().send().await.map_err(|e| aws_error("sts:GetCallerIdentity", e))?;
                let own = me.account().unwrap_or_default().to_string();
                if own.is_empty() {
                    return Err(AwsError::new("sts:GetCallerIdentity", None, "no account in the response".into()));
                }
                let partition = me.arn().and_then(|a| a.split(':').nth(1)).unwrap_or("aws").to_string();
                Ok((own, partition))
            })
            .await
    }

    /// Replaces the organization's directory (tests).
    pub fn with_directory(mut self, directory: Arc<dyn DirectoryDyn>) -> SdkAccounts {
        self.directory = Some(directory);
        self
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// How many times the member role was assumed.
    pub fn assumed(&self) -> usize {
        self.assumed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The SDK configuration for one account: the base one for the own account, the member role's otherwise.
    pub async fn config_for(&self, account: &str) -> Result<SdkConfig, AwsError> {
        Ok(self.cached(account).await?.0)
    }

    async fn cached(&self, account: &str) -> Result<(SdkConfig, SdkIam), AwsError> {
        if let Ok(cache) = self.clients.lock()
            && let Some(c) = cache.get(account)
            && c.expires.is_none_or(|e| e - Utc::now() > RENEW_BEFORE)
        {
            return Ok((c.config.clone(), c.iam.clone()));
        }
        let (own, partition) = self.identity().await?;
        let (config, expires) = if account == own {
            (self.base.clone(), None)
        } else {
            let (config, expires) = self.assume(account, partition).await?;
            (config, Some(expires))
        };
        let iam = SdkIam::new(aws_sdk_iam::Client::new(&config));
        if let Ok(mut cache) = self.clients.lock() {
            cache.insert(account.to_string(), Cached { config: config.clone(), iam: iam.clone(), expires });
        }
        Ok((config, iam))
    }

    async fn assume(&self, account: &str, partition: &str) -> Result<(SdkConfig, DateTime<Utc>), AwsError> {
        let role = self.scope.member_role().unwrap_or_default();
        let arn = format!("arn:{partition}:iam::{account}:role/{role}");
        self.assumed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self
            .sts
            .assume_role()
            .role_arn(&arn)
            .role_session_name("keyguard")
            .duration_seconds(3600)
            .send()
            .await
            .map_err(|e| {
                let mut e = aws_error("sts:AssumeRole", e);
                e.message = if e.kind == AwsErrorKind::AccessDenied {
                    format!(
                        "account {account}: cannot assume {arn} ({}); deploy the member role there \
                         (infra/org/member.yaml) and check that it trusts the caller (the central function's \
                         role, or whoever runs keyguard)",
                        e.message
                    )
                } else {
                    format!("account {account}: assuming {arn}: {}", e.message)
                };
                e
            })?;
        let c = out
            .credentials()
            .ok_or_else(|| AwsError::new("sts:AssumeRole", None, format!("account {account}: no credentials")))?;
        let expires = DateTime::from_timestamp(c.expiration().secs(), 0).unwrap_or_else(Utc::now);
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            std::time::SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(c.expiration().secs().max(0) as u64)),
            "keyguard-member-role",
        );
        info!(account, role_arn = %arn, expires = %expires, "assumed the member role");
        let config = self.base.to_builder().credentials_provider(SharedCredentialsProvider::new(credentials)).build();
        Ok((config, expires))
    }

    /// The organization's accounts, listed again when the listing is stale (or, for an unknown account, older than a
    /// minute).
    async fn organization_has(&self, account: &str) -> Result<bool, AwsError> {
        let known =
            self.organization.lock().ok().and_then(|o| o.as_ref().map(|(at, set)| (*at, set.contains(account))));
        match known {
            Some((at, true)) if at.elapsed() < ORG_LIST_TTL => return Ok(true),
            Some((at, false)) if at.elapsed() < ORG_RELIST_AFTER => return Ok(false),
            _ => {}
        }
        let accounts = self.list_organization().await?;
        Ok(accounts.contains(account))
    }

    async fn list_organization(&self) -> Result<HashSet<String>, AwsError> {
        let directory = self.directory.as_ref().ok_or_else(|| {
            AwsError::new("organizations:ListAccounts", None, "no organization directory configured".into())
        })?;
        let accounts: HashSet<String> = directory.active_accounts().await?.into_iter().collect();
        // An organization always holds its management account: an empty listing means this account may not list it
        // (moto answers a member so; AWS denies). Taken as the organization, it would refuse every event and sweep
        // nothing without a word, so it is the same configuration error as AccessDenied.
        if accounts.is_empty() {
            return Err(AwsError::new(
                "organizations:ListAccounts",
                Some("AccessDenied"),
                "the organization lists no accounts from here: ListAccounts answers only in the management account \
                 or a delegated administrator account; deploy the central stack there, or set KEYGUARD_ACCOUNTS"
                    .into(),
            ));
        }
        if let Ok(mut o) = self.organization.lock() {
            *o = Some((Instant::now(), accounts.clone()));
        }
        Ok(accounts)
    }
}

impl Accounts for SdkAccounts {
    type Iam = SdkIam;

    async fn own(&self) -> Result<String, AwsError> {
        Ok(self.identity().await?.0.clone())
    }

    async fn check(&self, account: &str) -> Result<(), AccountCheck> {
        match &self.scope {
            Scope::Own => {
                let own = self.own().await?;
                if account == own {
                    Ok(())
                } else {
                    Err(AccountCheck::NotGuarded(format!(
                        "single-account mode guards only {own} (set KEYGUARD_MEMBER_ROLE for an organization)"
                    )))
                }
            }
            Scope::Listed { accounts, .. } if accounts.iter().any(|a| a == account) => Ok(()),
            Scope::Listed { .. } => Err(AccountCheck::NotGuarded("not in KEYGUARD_ACCOUNTS".into())),
            Scope::Organization { .. } if account == self.own().await? => Ok(()),
            Scope::Organization { .. } => {
                if self.organization_has(account).await? {
                    Ok(())
                } else {
                    Err(AccountCheck::NotGuarded("not an active account of the organization".into()))
                }
            }
        }
    }

    async fn iam(&self, account: &str) -> Result<SdkIam, AwsError> {
        Ok(self.cached(account).await?.1)
    }

    async fn all(&self) -> Result<Vec<String>, AwsError> {
        let mut all: Vec<String> = match &self.scope {
            Scope::Own => vec![self.own().await?],
            Scope::Listed { accounts, .. } => accounts.clone(),
            Scope::Organization { .. } => self.list_organization().await?.into_iter().collect(),
        };
        all.sort();
        all.dedup();
        Ok(all)
    }

    async fn alias(&self, account: &str) -> Option<String> {
        if let Some(known) = self.aliases.lock().ok().and_then(|a| a.get(account).cloned()) {
            return known;
        }
        let alias = match self.iam(account).await {
            Ok(iam) => iam.account_alias().await,
            Err(e) => Err(e),
        };
        let alias = alias.unwrap_or_else(|e| {
            warn!(account, error = %e, "account alias not readable; alerts show the account id alone");
            None
        });
        if let Ok(mut a) = self.aliases.lock() {
            a.insert(account.to_string(), alias.clone());
        }
        alias
    }
}

/// [`AccountDirectory`] over Organizations `ListAccounts` (from the management account or a delegated
/// administrator).
pub struct SdkDirectory {
    client: aws_sdk_organizations::Client,
}

impl SdkDirectory {
    pub fn new(client: aws_sdk_organizations::Client) -> SdkDirectory {
        SdkDirectory { client }
    }
}

impl AccountDirectory for SdkDirectory {
    async fn active_accounts(&self) -> Result<Vec<String>, AwsError> {
        let mut pages = self.client.list_accounts().into_paginator().send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                let mut e = aws_error("organizations:ListAccounts", e);
                if e.kind == AwsErrorKind::AccessDenied {
                    e.message = format!(
                        "{}; listing the organization's accounts needs the management account or a delegated \
                         administrator (else set KEYGUARD_ACCOUNTS)",
                        e.message
                    );
                }
                e
            })?;
            for a in page.accounts() {
                let active = a.state().is_none_or(|s| s.as_str() == "ACTIVE")
                    && a.status().is_none_or(|s| s.as_str() == "ACTIVE");
                if let (true, Some(id)) = (active, a.id()) {
                    ids.push(id.to_string());
                }
            }
        }
        Ok(ids)
    }
}

/// One account with a given IAM: the scope is that account alone. For tests, benchmarks and the in-memory twin,
/// where the IAM is a mock or a counting adapter. Like [`SdkAccounts`], it reads the alias once (here: until a read
/// succeeds), so that a benchmark's calls per event are the deployed function's.
#[derive(Debug, Clone)]
pub struct OneAccount<I> {
    account: String,
    iam: I,
    alias: Arc<Mutex<Option<Option<String>>>>,
}

impl<I> OneAccount<I> {
    pub fn new(account: impl Into<String>, iam: I) -> OneAccount<I> {
        OneAccount { account: account.into(), iam, alias: Arc::default() }
    }
}

impl<I: IamReader + AccountReader + KeyDeactivator + Clone + Send + Sync> Accounts for OneAccount<I> {
    type Iam = I;

    async fn own(&self) -> Result<String, AwsError> {
        Ok(self.account.clone())
    }

    async fn check(&self, account: &str) -> Result<(), AccountCheck> {
        if account == self.account {
            Ok(())
        } else {
            Err(AccountCheck::NotGuarded(format!("only {} is guarded", self.account)))
        }
    }

    async fn iam(&self, _account: &str) -> Result<I, AwsError> {
        Ok(self.iam.clone())
    }

    async fn all(&self) -> Result<Vec<String>, AwsError> {
        Ok(vec![self.account.clone()])
    }

    async fn alias(&self, _account: &str) -> Option<String> {
        if let Some(known) = self.alias.lock().ok().and_then(|a| a.clone()) {
            return known;
        }
        let alias = self.iam.account_alias().await.ok()?;
        if let Ok(mut a) = self.alias.lock() {
            *a = Some(alias.clone());
        }
        alias
    }
}

/// The accounts shared with the outlets that act in them (Security Hub files in the key's own account).
impl<T: Accounts> Accounts for std::sync::Arc<T> {
    type Iam = T::Iam;

    async fn own(&self) -> Result<String, AwsError> {
        self.as_ref().own().await
    }

    async fn check(&self, account: &str) -> Result<(), AccountCheck> {
        self.as_ref().check(account).await
    }

    async fn iam(&self, account: &str) -> Result<T::Iam, AwsError> {
        self.as_ref().iam(account).await
    }

    async fn all(&self) -> Result<Vec<String>, AwsError> {
        self.as_ref().all().await
    }

    async fn alias(&self, account: &str) -> Option<String> {
        self.as_ref().alias(account).await
    }
}
