//! Carrying out one decision: the safety valve, the deactivation, the alert, every other outlet, the ledger.
//!
//! Shared by the guard, the audit and the sweep, so that each acts the same way.
//!
//! **At least one alert, at most one deactivation.** A deactivation is irreversible and silent unless it is told,
//! so its alert is owed from the moment it happens:
//! - with a ledger, the rendered alert is written to the key's ledger entry *before* `UpdateAccessKey`, and marked
//!   sent once published. A retry that finds the key already inactive and an alert still owed publishes it: a crash
//!   before the write redoes everything, one between the write and the publish re-sends the owed alert, one after the
//!   publish sends it a second time at worst (at least once, never lost);
//! - without a ledger there is nowhere to keep a debt, so the alert is published first and the key deactivated
//!   right after; if the deactivation fails the event fails, and its retry alerts and deactivates again.
//!
//! `UpdateAccessKey` on a key already inactive changes nothing, so a duplicate delivery never deactivates twice;
//! a key KeyGuard deactivated and a person re-enabled is never deactivated again (it is alerted instead).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use keyguard_core::alert::{AlertKind, ValveFacts};
use keyguard_core::{Action, Alert, AlertFacts, Finding, Mode, Reason, Verdict};
use tracing::{error, info, warn};

use crate::error::AwsError;
use crate::metrics;
use crate::ports::{
    AlertPublisher, Deactivation, Delivery, IamReader, KeyDeactivator, KeyRecord, Ledger, Outlet, OwedAlert,
};
use keyguard_core::asff::{ArchiveReason, FindingState};

/// The safety valve: at most `cap` deactivations in one scope (an event, a sweep, an `audit --apply` run). Beyond
/// it every further violation is alerted, not deactivated, and one alert says the valve closed and why.
#[derive(Debug)]
pub struct Valve {
    scope: String,
    cap: usize,
    used: AtomicUsize,
    withheld: AtomicUsize,
}

impl Valve {
    pub fn new(scope: &str, cap: usize) -> Valve {
        Valve { scope: scope.to_string(), cap, used: AtomicUsize::new(0), withheld: AtomicUsize::new(0) }
    }

    /// Takes one deactivation if the valve is open.
    fn take(&self) -> bool {
        self.used.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.cap).then_some(n + 1)).is_ok()
    }

    /// Counts one violation left active; true for the first (the one that sends the valve's alert).
    fn withhold(&self) -> bool {
        self.withheld.fetch_add(1, Ordering::SeqCst) == 0
    }

    pub fn deactivated(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Violations left active because the valve was closed.
    pub fn withheld(&self) -> usize {
        self.withheld.load(Ordering::SeqCst)
    }
}

/// What became of one finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    pub finding: Finding,
    pub action: Action,
    pub note: Option<String>,
}

/// The act step for one scope.
pub struct Actor<'a, L, P> {
    pub mode: Mode,
    pub alerts: Option<&'a P>,
    pub ledger: Option<&'a L>,
    pub outlets: &'a [Arc<dyn Outlet>],
    pub valve: &'a Valve,
    /// Deactivate violating keys that have been used (`audit --apply --include-used`); otherwise a used key is
    /// alerted "would deactivate, key in use".
    pub include_used: bool,
    /// Deactivate a violation whose creator is unknown (`audit --apply`, an operator's decision, as CIS's
    /// remediation does); the guard and the sweep deactivate only with the creator known.
    pub unknown_creator: bool,
    /// Alert each finding on its own. The sweep does not: a standing finding goes into its daily digest instead of
    /// an alert every day; only what it deactivates is alerted key by key.
    pub per_key_alerts: bool,
    pub clock: Clock,
    /// How long IAM may take to show a write (the guard's consistency horizon): a key KeyGuard deactivated less than
    /// this ago that reads as active is IAM lagging, not a re-enable.
    pub iam_lag: chrono::TimeDelta,
}

/// What the service reads the time from: `Utc::now` when deployed, the twin's clock in tests (a closure, so that it
/// can read a clock the test moves).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Where a finding's key is, and what is already known of it.
#[derive(Debug, Clone, Copy)]
pub struct KeyCase<'a> {
    pub account: &'a str,
    pub user: &'a str,
    /// The ledger's entry for the key.
    pub record: Option<&'a KeyRecord>,
    /// When the key was last used, if the caller read it already (None: not read yet).
    pub last_used: Option<Option<DateTime<Utc>>>,
}

/// The alert's facts for a finding, given what was done (built by the caller, who knows the event or the sweep).
pub type FactsFor<'f> = dyn Fn(&Finding, Action, Option<String>) -> AlertFacts + Send + Sync + 'f;

impl<L: Ledger, P: AlertPublisher> Actor<'_, L, P> {
    /// Carries out the mode for one finding about one key in `account`. `record` is the ledger's entry for the key.
    /// Errors are AWS failures after which nothing more was done (the caller returns them as retryable).
    pub async fn act<I: IamReader + KeyDeactivator>(
        &self,
        iam: &I,
        key: &KeyCase<'_>,
        finding: Finding,
        facts: &FactsFor<'_>,
    ) -> Result<Acted, AwsError> {
        let KeyCase { account, user, record, last_used } = *key;
        let Some(key_id) = finding.access_key_id.clone() else {
            return Ok(Acted { finding, action: Action::None, note: None });
        };
        let verdict = finding.verdict();
        metrics::decision(verdict);
        if self.mode == Mode::DryRun {
            let action = if reportable(verdict) { Action::DryRun } else { Action::None };
            return Ok(Acted { finding, action, note: None });
        }
        // An alert an earlier attempt owes (the key was deactivated, its alert not confirmed): send it first.
        if let Some(owed) = record.and_then(|r| r.owed_alert.as_ref())
            && matches!(finding.reason, Reason::AlreadyInactive)
        {
            self.publish(&owed.alert, account, &key_id).await?;
            self.sent(account, &key_id, user, &owed.kind, owed.kind.ends_with(":deactivated")).await?;
            metrics::owed_alert_resent();
            let note = Some("an earlier attempt deactivated the key; its alert, still owed, was sent now".to_string());
            return Ok(Acted { finding, action: Action::Notified, note });
        }
        if !reportable(verdict) {
            return Ok(Acted { finding, action: Action::None, note: None });
        }
        // KeyGuard deactivated this key moments ago and the team was told, yet IAM reads it as active: IAM's reads lag
        // behind its own write (a duplicate delivery within seconds). Not a re-enable: that comes with an
        // UpdateAccessKey event of its own (a `ReEnabled` finding, never taken for lag), which is watched. Nothing to
        // do or say again.
        if matches!(finding.reason, Reason::SetupKeyByOther { .. } | Reason::SetupKeyBeforePassword { .. })
            && let Some(r) = record
            && r.deactivated.is_some_and(|at| (self.clock)() - at < self.iam_lag)
            && r.sent.iter().any(|kind| kind.ends_with(":deactivated"))
        {
            let note = Some(
                "KeyGuard deactivated this key moments ago and alerted; IAM does not show it inactive yet (its reads \
                 lag): nothing done again"
                    .to_string(),
            );
            return Ok(Acted { finding, action: Action::None, note });
        }
        let kind = AlertKind::of(&finding.reason);
        let (mut deactivate, mut note) = self.may_deactivate(&finding, record);
        if deactivate && !self.include_used {
            // The same rule as the audit: a late event must not switch off a key production now uses.
            let last_used = match last_used {
                Some(known) => known,
                None => iam.key_last_used(&key_id).await?,
            };
            if let Some(used) = last_used {
                deactivate = false;
                note = Some(format!(
                    "would deactivate, key in use: last used {}; deactivate it once its owner has a key of their own",
                    used.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
            }
        }
        let mut valve_alert = false;
        if deactivate && !self.valve.take() {
            deactivate = false;
            valve_alert = self.valve.withhold();
            note = Some(format!(
                "safety valve closed: {} deactivation(s) already made in {}; not deactivated",
                self.valve.cap, self.valve.scope
            ));
            metrics::valve_withheld();
        }
        let action = if deactivate { Action::Deactivated } else { Action::Notified };
        if deactivate && self.ledger.is_none() {
            note = Some(
                "no ledger: this alert goes out first, so that it cannot be lost, and the key is deactivated right after; if that fails, the event fails and the function's errors alarm tells"
                    .into(),
            );
        }
        // Alerts are deduplicated per key and verdict (one violation alert per key, whatever was done then); a
        // re-enabled key is alerted once per re-enable event.
        let facts = facts(&finding, action, note.clone());
        let sent_kind = match kind {
            AlertKind::ReEnabled => format!("re-enabled:{}", facts.event_id),
            _ => format!("{}:{}", verdict.as_str(), action.as_str()),
        };
        let alert = Alert::render(&facts);
        let same_verdict = format!("{}:", verdict.as_str());
        let duplicate = record.is_some_and(|r| {
            r.sent
                .iter()
                .any(|s| if kind == AlertKind::ReEnabled { *s == sent_kind } else { s.starts_with(&same_verdict) })
        });
        // The valve's one alert goes out whichever way this finding leaves (the sweep reports the finding itself in
        // its digest, not key by key).
        if duplicate && !deactivate {
            self.deliver(&facts, verdict, action, false).await;
            self.valve_closed(valve_alert, account, &key_id).await?;
            let note = Some("alert already sent for this key (duplicate delivery): not sent again".to_string());
            return Ok(Acted { finding, action: Action::None, note });
        }
        if !deactivate && !self.per_key_alerts {
            self.deliver(&facts, verdict, action, false).await;
            self.valve_closed(valve_alert, account, &key_id).await?;
            return Ok(Acted { finding, action: Action::None, note });
        }
        if deactivate {
            match self.ledger {
                Some(ledger) => {
                    let owed = OwedAlert { kind: sent_kind.clone(), alert: alert.clone() };
                    ledger.owe(account, &key_id, user, &owed, true, (self.clock)()).await?;
                }
                // No ledger: the alert goes first (see the module's comment).
                None => self.publish(&alert, account, &key_id).await?,
            }
            match iam.deactivate(user, &key_id).await? {
                Deactivation::Done => {
                    metrics::deactivation();
                    info!(account, user, access_key_id = %key_id, "access key deactivated");
                }
                Deactivation::Gone => {
                    return Ok(Acted {
                        finding: Finding { access_key_id: Some(key_id), reason: Reason::KeyGone },
                        action: Action::None,
                        note: None,
                    });
                }
            }
            if self.ledger.is_some() {
                self.publish(&alert, account, &key_id).await?;
            }
        } else {
            self.publish(&alert, account, &key_id).await?;
        }
        self.sent(account, &key_id, user, &sent_kind, deactivate).await?;
        self.deliver(&facts, verdict, action, true).await;
        self.valve_closed(valve_alert, account, &key_id).await?;
        Ok(Acted { finding, action, note })
    }

    /// The one alert that says the valve closed and why, when `first` (the first violation it withheld).
    async fn valve_closed(&self, first: bool, account: &str, key_id: &str) -> Result<(), AwsError> {
        if !first {
            return Ok(());
        }
        let valve = Alert::valve_closed(&ValveFacts {
            scope: self.valve.scope.clone(),
            account: account.to_string(),
            cap: self.valve.cap,
            withheld: self.valve.withheld(),
        });
        self.publish(&valve, account, key_id).await?;
        warn!(account, scope = %self.valve.scope, cap = self.valve.cap, "safety valve closed");
        Ok(())
    }

    /// Whether the finding may be deactivated in this mode, and if not, why (for the alert and the log).
    fn may_deactivate(&self, finding: &Finding, record: Option<&KeyRecord>) -> (bool, Option<String>) {
        if self.mode != Mode::Deactivate || finding.verdict() != Verdict::Violation {
            return (false, None);
        }
        match &finding.reason {
            // Only a finished deactivation counts: one that began and failed (its event retried) is carried out.
            _ if record.is_some_and(|r| r.deactivated.is_some()) => (
                false,
                Some("KeyGuard deactivated this key before and it was re-enabled since: not deactivated again".into()),
            ),
            Reason::SetupKeyByOther { .. } => (true, None),
            Reason::SetupKeyBeforePassword { .. } if self.unknown_creator => (true, None),
            Reason::SetupKeyBeforePassword { .. } => (
                false,
                Some(
                    "not deactivated: the key's creator is unknown (no ledger entry from its CreateAccessKey event), \
                     so it may be the user's own or an exempt provisioner's"
                        .into(),
                ),
            ),
            Reason::ReEnabled { .. } => (
                false,
                Some("not deactivated again: re-enabling was a deliberate act; review it with whoever did it".into()),
            ),
            _ => (false, None),
        }
    }

    async fn publish(&self, alert: &Alert, account: &str, key_id: &str) -> Result<(), AwsError> {
        let publisher = self.alerts.ok_or_else(|| AwsError::new("sns:Publish", None, "no topic configured".into()))?;
        match publisher.publish(alert).await {
            Ok(message_id) => {
                metrics::alert_sent();
                info!(account, access_key_id = %key_id, %message_id, subject = %alert.subject, "alert published");
                Ok(())
            }
            Err(e) => {
                error!(account, access_key_id = %key_id, error = %e, "alert could not be published");
                Err(e)
            }
        }
    }

    async fn sent(
        &self,
        account: &str,
        key_id: &str,
        user: &str,
        kind: &str,
        deactivated: bool,
    ) -> Result<(), AwsError> {
        match self.ledger {
            Some(ledger) => ledger.sent(account, key_id, user, kind, deactivated, (self.clock)()).await,
            None => Ok(()),
        }
    }

    /// Hands the decision to every other outlet. Their failures are logged and counted, never the event's.
    async fn deliver(&self, facts: &AlertFacts, verdict: Verdict, action: Action, alerted: bool) {
        let state = match (verdict, action) {
            (_, Action::Deactivated) => FindingState::ResolvedByDeactivation,
            (Verdict::Exempt, _) => FindingState::Archived(ArchiveReason::Exempt),
            _ => FindingState::Active,
        };
        let delivery = Delivery { facts: facts.clone(), state, at: (self.clock)(), alerted };
        for outlet in self.outlets {
            if let Err(e) = outlet.deliver(&delivery).await {
                metrics::outlet_error(outlet.name());
                error!(outlet = outlet.name(), account = %facts.account, access_key_id = %facts.access_key_id,
                       error = %e, "outlet failed; the decision stands");
            }
        }
    }
}

/// Violations and suspects are findings; an exempt would-be violation is reported too, so that an exemption can
/// never hide one.
fn reportable(verdict: Verdict) -> bool {
    verdict.is_finding() || verdict == Verdict::Exempt
}
