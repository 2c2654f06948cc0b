//! The Security Hub (CSPM) adapter over `aws-sdk-securityhub`: files KeyGuard's findings (`BatchImportFindings`)
//! and lists the ones still active (`GetFindings`), so that the sweep can archive those of keys that are gone,
//! inactive or exempt.
//!
//! Security Hub takes at most 100 findings a call and 10 calls a second: findings go in batches of 100, one call
//! after the other, and a throttled call is tried again with a growing pause (on top of the SDK's own retries).
//! A Security Hub that is not enabled in the account and region is an outcome ([`ImportOutcome::NotEnabled`]),
//! not an error: the caller logs it once as a warning and the event is handled all the same.

use std::time::Duration;

use aws_sdk_securityhub::error::ProvideErrorMetadata;
use aws_sdk_securityhub::types::{
    AwsIamAccessKeyDetails, AwsIamAccessKeyStatus, AwsIamUserDetails, AwsSecurityFinding, AwsSecurityFindingFilters,
    Compliance, ComplianceStatus, FindingProviderFields, FindingProviderSeverity, Partition, Recommendation,
    RecordState, Remediation, Resource, ResourceDetails, Severity, SeverityLabel, StringFilter, StringFilterComparison,
};
use keyguard_core::AlertFacts;
use keyguard_core::asff::{self, SecurityFinding};

use crate::error::{AwsError, AwsErrorKind};
use crate::iam::aws_error;

/// BatchImportFindings takes at most this many findings a call.
pub const MAX_BATCH: usize = 100;

/// The actions the adapter calls: the role needs exactly these. `BatchImportFindings` can be limited to the
/// account's default product (`arn:aws:securityhub:<region>:<account>:product/<account>/default`).
pub const ACTIONS: &[&str] = &["securityhub:BatchImportFindings", "securityhub:GetFindings"];

/// How a throttled call is tried again: `attempts` calls in all, pausing `first`, then twice as long each time,
/// up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        // 10 TPS is Security Hub's rate: a pause of a few hundred milliseconds lets the bucket refill.
        Backoff { attempts: 6, first: Duration::from_millis(250), max: Duration::from_secs(4) }
    }
}

#[derive(Debug, Clone)]
pub struct SdkSecurityHub {
    client: aws_sdk_securityhub::Client,
    backoff: Backoff,
}

/// What became of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Every batch was sent; Security Hub accepted `imported` findings and refused the `failed` ones.
    Imported { imported: usize, failed: Vec<FailedImport>, requests: usize },
    /// Security Hub is not enabled in this account and region (`InvalidAccessException`): nothing was filed.
    NotEnabled { message: String },
}

/// One finding Security Hub refused (BatchImportFindings' `FailedFindings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedImport {
    pub id: String,
    pub code: String,
    pub message: String,
}

/// What `GetFindings` found.
#[derive(Debug, Clone)]
pub enum Listing {
    Findings(Vec<ListedFinding>),
    NotEnabled { message: String },
}

/// One of KeyGuard's active findings, with the facts it was filed with (read back from its `ProductFields`).
#[derive(Debug, Clone)]
pub struct ListedFinding {
    pub id: String,
    pub aws_account_id: Option<String>,
    pub region: Option<String>,
    pub updated_at: Option<String>,
    /// `FAILED`, `WARNING` or `PASSED`.
    pub compliance_status: Option<String>,
    /// None when the finding's `ProductFields` do not hold KeyGuard's facts (then it cannot be rebuilt).
    pub facts: Option<AlertFacts>,
}

impl SdkSecurityHub {
    /// [`ACTIONS`], beside the adapter as the ports declare theirs.
    pub const ACTIONS: &'static [&'static str] = ACTIONS;

    pub fn new(client: aws_sdk_securityhub::Client) -> SdkSecurityHub {
        SdkSecurityHub { client, backoff: Backoff::default() }
    }

    /// Another retry schedule for throttled calls (tests use short pauses).
    pub fn with_backoff(mut self, backoff: Backoff) -> SdkSecurityHub {
        self.backoff = backoff;
        self
    }

    /// Files the findings (creates them, or updates those with the same `Id`), in batches of at most 100.
    ///
    /// A call still throttled after the retries, or failing otherwise, is an error; findings of earlier batches
    /// are filed by then, and importing again is harmless (same ids, newer `UpdatedAt`).
    pub async fn import(&self, findings: &[SecurityFinding]) -> Result<ImportOutcome, AwsError> {
        let mut imported = 0;
        let mut failed = Vec::new();
        let mut requests = 0;
        for batch in findings.chunks(MAX_BATCH) {
            let batch: Vec<AwsSecurityFinding> = batch.iter().map(to_sdk).collect();
            let mut pause = self.backoff.first;
            let mut attempt = 1;
            let out = loop {
                requests += 1;
                let sent = self.client.batch_import_findings().set_findings(Some(batch.clone())).send().await;
                match sent {
                    Ok(out) => break out,
                    Err(e) => {
                        if e.code() == Some("InvalidAccessException") {
                            return Ok(ImportOutcome::NotEnabled { message: not_enabled_message(&e) });
                        }
                        let throttled = is_throttling(e.code());
                        let mut error = aws_error("securityhub:BatchImportFindings", e);
                        if throttled {
                            error.kind = AwsErrorKind::Throttled;
                        }
                        if error.kind != AwsErrorKind::Throttled || attempt >= self.backoff.attempts {
                            return Err(error);
                        }
                        tracing::info!(
                            attempt,
                            pause_ms = pause.as_millis() as u64,
                            "Security Hub throttled: retrying"
                        );
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(self.backoff.max);
                        attempt += 1;
                    }
                }
            };
            let refused: Vec<FailedImport> = out
                .failed_findings()
                .iter()
                .map(|f| FailedImport {
                    id: f.id().unwrap_or_default().to_string(),
                    code: f.error_code().unwrap_or_default().to_string(),
                    message: f.error_message().unwrap_or_default().to_string(),
                })
                .collect();
            imported +=
                out.success_count().map(|n| n.max(0) as usize).unwrap_or(batch.len().saturating_sub(refused.len()));
            failed.extend(refused);
        }
        Ok(ImportOutcome::Imported { imported, failed, requests })
    }

    /// KeyGuard's active findings, every page. Filtered by generator and record state in the request, and again
    /// here: an emulator (moto) ignores the filters, and nothing else's finding must ever be archived by KeyGuard.
    pub async fn keyguard_findings(&self) -> Result<Listing, AwsError> {
        let filters = AwsSecurityFindingFilters::builder()
            .generator_id(equals(asff::GENERATOR_ID))
            .record_state(equals(RecordState::Active.as_str()))
            .build();
        let mut pages = self.client.get_findings().filters(filters).max_results(100).into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e) if e.code() == Some("InvalidAccessException") => {
                    return Ok(Listing::NotEnabled { message: not_enabled_message(&e) });
                }
                Err(e) => return Err(aws_error("securityhub:GetFindings", e)),
            };
            found.extend(page.findings().iter().filter(|f| is_keyguard_active(f)).map(listed));
        }
        Ok(Listing::Findings(found))
    }
}

fn equals(value: &str) -> StringFilter {
    StringFilter::builder().value(value).comparison(StringFilterComparison::Equals).build()
}

fn is_keyguard_active(f: &AwsSecurityFinding) -> bool {
    f.generator_id() == Some(asff::GENERATOR_ID)
        && f.id().is_some_and(|id| id.starts_with(asff::ID_PREFIX))
        && f.record_state().is_none_or(|s| *s == RecordState::Active)
}

fn listed(f: &AwsSecurityFinding) -> ListedFinding {
    let facts = f
        .product_fields()
        .map(|fields| fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .and_then(|fields| asff::facts_from_product_fields(&fields));
    ListedFinding {
        id: f.id().unwrap_or_default().to_string(),
        aws_account_id: f.aws_account_id().map(str::to_string),
        region: f.region().map(str::to_string),
        updated_at: f.updated_at().map(str::to_string),
        compliance_status: f.compliance().and_then(|c| c.status()).map(|s| s.as_str().to_string()),
        facts,
    }
}

/// Security Hub's throttling codes (the SDK maps most of them, Security Hub also answers `LimitExceededException`).
fn is_throttling(code: Option<&str>) -> bool {
    matches!(code, Some("TooManyRequestsException" | "LimitExceededException" | "ThrottlingException" | "Throttling"))
}

fn not_enabled_message<E: ProvideErrorMetadata>(e: &E) -> String {
    e.message().unwrap_or("Security Hub is not enabled in this account and region").to_string()
}

/// The core's finding as the SDK's type: the same fields, one for one.
pub fn to_sdk(f: &SecurityFinding) -> AwsSecurityFinding {
    let severity = Severity::builder()
        .label(SeverityLabel::from(f.severity.label.as_str()))
        .original(&f.severity.original)
        .build();
    let provider = &f.finding_provider_fields;
    let provider_fields = FindingProviderFields::builder()
        .severity(
            FindingProviderSeverity::builder()
                .label(SeverityLabel::from(provider.severity.label.as_str()))
                .original(&provider.severity.original)
                .build(),
        )
        .set_types(Some(provider.types.clone()))
        .build();
    let resources = f
        .resources
        .iter()
        .map(|r| {
            let mut details = ResourceDetails::builder();
            if let Some(k) = &r.details.access_key {
                details = details.aws_iam_access_key(
                    AwsIamAccessKeyDetails::builder()
                        .access_key_id(&k.access_key_id)
                        .account_id(&k.account_id)
                        .set_status(k.status.as_deref().map(AwsIamAccessKeyStatus::from))
                        .created_at(&k.created_at)
                        .principal_name(&k.principal_name)
                        .principal_type(&k.principal_type)
                        .set_principal_id(k.principal_id.clone())
                        .build(),
                );
            }
            if let Some(u) = &r.details.user {
                details = details.aws_iam_user(
                    AwsIamUserDetails::builder()
                        .user_name(&u.user_name)
                        .create_date(&u.create_date)
                        .set_path(u.path.clone())
                        .build(),
                );
            }
            Resource::builder()
                .r#type(&r.kind)
                .id(&r.id)
                .partition(Partition::from(r.partition.as_str()))
                .region(&r.region)
                .details(details.build())
                .build()
        })
        .collect();
    AwsSecurityFinding::builder()
        .schema_version(&f.schema_version)
        .id(&f.id)
        .product_arn(&f.product_arn)
        .product_name(&f.product_name)
        .company_name(&f.company_name)
        .generator_id(&f.generator_id)
        .aws_account_id(&f.aws_account_id)
        .region(&f.region)
        .set_types(Some(f.types.clone()))
        .created_at(&f.created_at)
        .updated_at(&f.updated_at)
        .first_observed_at(&f.first_observed_at)
        .last_observed_at(&f.last_observed_at)
        .severity(severity)
        .finding_provider_fields(provider_fields)
        .title(&f.title)
        .description(&f.description)
        .remediation(
            Remediation::builder()
                .recommendation(Recommendation::builder().text(&f.remediation.recommendation.text).build())
                .build(),
        )
        .set_product_fields(Some(f.product_fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
        .compliance(
            Compliance::builder()
                .status(ComplianceStatus::from(f.compliance.status.as_str()))
                .set_related_requirements(Some(f.compliance.related_requirements.clone()))
                .build(),
        )
        .set_resources(Some(resources))
        .record_state(RecordState::from(f.record_state.as_str()))
        .build()
}

/// The Security Hub outlet: every reportable decision becomes (or updates) a finding in the key's own account,
/// through that account's clients (the member role in an organization: only the account itself may import into its
/// default product). Not enabled in an account: one warning, then nothing more is tried there.
pub struct SecurityHubOutlet {
    accounts: std::sync::Arc<crate::accounts::SdkAccounts>,
    region: String,
    hubs: std::sync::Mutex<std::collections::HashMap<String, SdkSecurityHub>>,
    not_enabled: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl SecurityHubOutlet {
    pub fn new(accounts: std::sync::Arc<crate::accounts::SdkAccounts>, region: &str) -> SecurityHubOutlet {
        SecurityHubOutlet {
            accounts,
            region: region.to_string(),
            hubs: Default::default(),
            not_enabled: Default::default(),
        }
    }

    async fn hub(&self, account: &str) -> Result<Option<SdkSecurityHub>, AwsError> {
        if self.not_enabled.lock().is_ok_and(|n| n.contains(account)) {
            return Ok(None);
        }
        if let Some(hub) = self.hubs.lock().ok().and_then(|h| h.get(account).cloned()) {
            return Ok(Some(hub));
        }
        let config = self.accounts.config_for(account).await?;
        let hub = SdkSecurityHub::new(aws_sdk_securityhub::Client::new(&config));
        if let Ok(mut hubs) = self.hubs.lock() {
            hubs.insert(account.to_string(), hub.clone());
        }
        Ok(Some(hub))
    }

    fn disabled(&self, account: &str, message: &str) {
        tracing::warn!(account, %message, "Security Hub is not enabled in this account: findings are not filed there");
        if let Ok(mut n) = self.not_enabled.lock() {
            n.insert(account.to_string());
        }
    }

    async fn import(&self, account: &str, findings: &[SecurityFinding]) -> Result<(), AwsError> {
        let Some(hub) = self.hub(account).await? else { return Ok(()) };
        match hub.import(findings).await? {
            ImportOutcome::NotEnabled { message } => self.disabled(account, &message),
            ImportOutcome::Imported { failed, .. } => {
                if let Some(first) = failed.first() {
                    return Err(AwsError::new(
                        "securityhub:BatchImportFindings",
                        Some(&first.code),
                        format!("{} finding(s) refused, e.g. {}: {}", failed.len(), first.id, first.message),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl crate::ports::Outlet for SecurityHubOutlet {
    fn name(&self) -> &'static str {
        "security-hub"
    }

    fn deliver<'a>(
        &'a self,
        delivery: &'a crate::ports::Delivery,
    ) -> futures::future::BoxFuture<'a, Result<(), AwsError>> {
        Box::pin(async move {
            let finding = SecurityFinding::new(&delivery.facts, delivery.at, &self.region, delivery.state);
            self.import(&delivery.facts.account, &[finding]).await
        })
    }

    fn reconcile<'a>(
        &'a self,
        account: &'a str,
        rows: &'a [keyguard_core::AuditRow],
    ) -> futures::future::BoxFuture<'a, Result<(), AwsError>> {
        Box::pin(async move {
            let Some(hub) = self.hub(account).await? else { return Ok(()) };
            let listed = match hub.keyguard_findings().await? {
                Listing::NotEnabled { message } => {
                    self.disabled(account, &message);
                    return Ok(());
                }
                Listing::Findings(found) => found,
            };
            let now = chrono::Utc::now();
            let archive: Vec<SecurityFinding> = listed
                .into_iter()
                .filter(|f| f.aws_account_id.as_deref().is_none_or(|a| a == account))
                .filter_map(|f| f.facts)
                .filter_map(|facts| {
                    let why = archive_reason(rows, &facts)?;
                    Some(SecurityFinding::new(&facts, now, &self.region, asff::FindingState::Archived(why)))
                })
                .collect();
            if !archive.is_empty() {
                tracing::info!(account, archived = archive.len(), "Security Hub findings archived");
                self.import(account, &archive).await?;
            }
            Ok(())
        })
    }
}

/// Why a finding KeyGuard filed is closed now, from the account's rows; None while its key is still open.
fn archive_reason(rows: &[keyguard_core::AuditRow], facts: &AlertFacts) -> Option<asff::ArchiveReason> {
    use keyguard_core::{Action, Verdict};
    let row = rows.iter().find(|r| r.access_key_id.as_deref() == Some(facts.access_key_id.as_str()));
    match row {
        Some(r) if r.verdict.is_finding() && r.action != Action::Deactivated => None,
        Some(r) if r.verdict == Verdict::Exempt => Some(asff::ArchiveReason::Exempt),
        Some(r) if r.action == Action::Deactivated || r.reason.contains("inactive") => {
            Some(asff::ArchiveReason::KeyInactive)
        }
        Some(_) => Some(asff::ArchiveReason::NoLongerFlagged),
        // The user is there but settled without reading its keys (the credential report): not flagged any more.
        None if rows.iter().any(|r| r.user.eq_ignore_ascii_case(&facts.user_name)) => {
            Some(asff::ArchiveReason::NoLongerFlagged)
        }
        None => Some(asff::ArchiveReason::KeyGone),
    }
}
