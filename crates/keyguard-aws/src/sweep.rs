//! The schedule's fan-out: list the guarded accounts, send one queue message each, and audit one account per
//! message (the same function consumes the queue, so Lambda's own concurrency scales the sweep to thousands of
//! accounts, and one account's failure is retried and dead-lettered alone).
//!
//! The sweep is the backstop for lost events. It reports through one digest alert per account and day with open
//! findings or failures (never one alert per standing finding every day), in `KEYGUARD_RECONCILE=dry-run` too;
//! with `apply` it also deactivates, key by key alerted, within its safety valve. A user it cannot read is reported
//! in the digest and counted; the account's sweep still succeeds.

use chrono::Utc;
use keyguard_core::{Alert, DigestFacts, DigestLine, EventReport, Mode, Verdict};
use serde_json::{Value, json};
use tracing::{error, info, warn};

use crate::accounts::{AccountCheck, Accounts};
use crate::audit::{Options, Outcome};
use crate::cloudtrail::SdkCloudTrail;
use crate::error::{AwsError, GuardError};
use crate::metrics;
use crate::ports::{AlertPublisher, Ledger, SweepQueue};
use crate::service::Guard;

/// A sweep queue message: the account to sweep, and the schedule that asked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SweepMessage {
    pub account: String,
    #[serde(default)]
    pub scheduled: String,
}

impl<A: Accounts, L: Ledger, P: AlertPublisher, Q: SweepQueue> Guard<A, L, P, Q> {
    /// The daily Scheduled Event: with a sweep queue, one message per guarded account; without one (the single
    /// account deployment), the own account's sweep right here.
    pub(crate) async fn schedule(&self, event_id: &str) -> Result<EventReport, GuardError> {
        let aws = |source: AwsError| GuardError::Aws { event_id: event_id.to_string(), source };
        let own = self.accounts.own().await.map_err(aws)?;
        let mut report = EventReport {
            event_id: event_id.to_string(),
            event_name: "Scheduled Event".into(),
            account: Some(own.clone()),
            account_alias: None,
            user: None,
            decisions: vec![],
        };
        let Some(queue) = &self.sweep_queue else {
            let outcome = self.sweep_account(&own).await.map_err(aws)?;
            report.account_alias = outcome.account_alias.clone();
            report.decisions = outcome
                .rows
                .iter()
                .filter(|r| r.verdict.is_finding())
                .map(|r| keyguard_core::Decision {
                    access_key_id: r.access_key_id.clone(),
                    verdict: r.verdict,
                    reason: format!("{}: {}", r.user, r.reason),
                    action: r.action,
                    note: None,
                })
                .collect();
            return Ok(report);
        };
        let accounts = self.accounts.all().await.map_err(aws)?;
        let bodies: Vec<String> = accounts
            .iter()
            .map(|a| json!(SweepMessage { account: a.clone(), scheduled: event_id.to_string() }).to_string())
            .collect();
        queue.send(&bodies).await.map_err(aws)?;
        metrics::accounts_queued(bodies.len());
        info!(event_id, accounts = bodies.len(), "sweep queued, one message per account");
        Ok(report)
    }

    /// One account's sweep: the audit (reporting, or acting when `KEYGUARD_RECONCILE=apply`), the digest, and the
    /// outlets told which findings are still open.
    pub async fn sweep_account(&self, account: &str) -> Result<Outcome, AwsError> {
        match self.accounts.check(account).await {
            Ok(()) => {}
            Err(AccountCheck::NotGuarded(why)) => {
                return Err(AwsError::new("sweep", None, format!("account {account} is not guarded: {why}")));
            }
            Err(AccountCheck::Aws(e)) => return Err(e),
        }
        let valve = self.valve(&format!("the sweep of {account}"));
        let options = Options {
            dry_run: false,
            may_deactivate: self.reconcile_apply,
            per_key_alerts: false,
            // No CloudTrail lookups in the sweep (its role stays without cloudtrail:LookupEvents); the ledger knows
            // the creators of the keys whose events it saw.
            deactivate_without_creator: false,
            ..Options::default()
        };
        let outcome = self.audit(account, &options, None::<&SdkCloudTrail>, &valve, &|_, _| ()).await?;
        let findings: Vec<DigestLine> = outcome
            .rows
            .iter()
            .filter(|r| r.verdict.is_finding())
            .map(|r| DigestLine {
                user: r.user.clone(),
                access_key_id: r.access_key_id.clone(),
                verdict: r.verdict,
                reason: r.reason.clone(),
                action: r.action,
            })
            .collect();
        metrics::sweep(outcome.seconds, outcome.users, findings.len(), outcome.errors.len());
        if self.mode != Mode::DryRun && (!findings.is_empty() || !outcome.errors.is_empty()) {
            let digest = Alert::digest(&DigestFacts {
                account: account.to_string(),
                account_alias: outcome.account_alias.clone(),
                generated: (self.clock)(),
                mode: if self.reconcile_apply { self.mode.as_str().to_string() } else { "report only".to_string() },
                users: outcome.users,
                findings,
                failures: outcome.errors.clone(),
            });
            let publisher =
                self.alerts.as_ref().ok_or_else(|| AwsError::new("sns:Publish", None, "no topic configured".into()))?;
            publisher.publish(&digest).await?;
            metrics::alert_sent();
            info!(account, subject = %digest.subject, "sweep digest published");
        }
        if valve.withheld() > 0 {
            warn!(account, withheld = valve.withheld(), "the sweep's safety valve closed");
        }
        Ok(outcome)
    }

    /// The sweep queue's batch (an SQS event): one account per message. Returns Lambda's partial batch response:
    /// the messages that failed are retried (and dead-lettered) alone.
    pub(crate) async fn sweep_batch(&self, records: &[Value]) -> Value {
        let mut failures = Vec::new();
        for record in records {
            let id = record.get("messageId").and_then(Value::as_str).unwrap_or_default().to_string();
            let body = record.get("body").and_then(Value::as_str).unwrap_or_default();
            let message: SweepMessage = match serde_json::from_str(body) {
                Ok(m) => m,
                Err(e) => {
                    // A message that is not ours can never succeed: it goes to the dead-letter queue after retries.
                    error!(message_id = %id, error = %e, "sweep message unreadable");
                    metrics::error("KeyGuard.BadEvent");
                    failures.push(json!({"itemIdentifier": id}));
                    continue;
                }
            };
            let started = Utc::now();
            match self.sweep_account(&message.account).await {
                Ok(outcome) => info!(
                    message_id = %id,
                    account = %message.account,
                    violations = outcome.count(Verdict::Violation),
                    suspects = outcome.count(Verdict::Suspect),
                    failures = outcome.errors.len(),
                    seconds = (Utc::now() - started).num_milliseconds() as f64 / 1000.0,
                    "account swept"
                ),
                Err(e) => {
                    error!(message_id = %id, account = %message.account, error = %e, "account sweep failed");
                    metrics::error("KeyGuard.AwsError");
                    failures.push(json!({"itemIdentifier": id}));
                }
            }
        }
        json!({"batchItemFailures": failures})
    }
}
