//! The KeyGuard service: what the guard, the audit and the sweep share (the accounts, the ledger, the alert
//! topic, the other outlets, the rule's settings), built once. The use cases live beside it, one module each:
//! [`crate::guard`] (one event), [`crate::audit`] (one account), [`crate::sweep`] (the schedule's fan-out).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use keyguard_core::{Config, ConfigError, Mode, Policy};

use crate::accounts::Accounts;
use crate::act::{Actor, Clock, Valve};
use std::collections::HashMap;

use keyguard_core::UserState;

use crate::error::AwsError;
use crate::ports::{AlertPublisher, KeyRecord, Ledger, Outlet, SweepQueue};

/// How long to wait for IAM to show what an event says was created.
///
/// Right after an event, IAM reads may not show the new key, password or user yet. The guard re-reads `reads`
/// times, doubling the delay from `first_delay`. If the object is still missing, the answer depends on the event's
/// age: younger than `horizon`, IAM may be lagging, so the event fails as retryable (Lambda retries it a minute
/// later); older, the object really is gone (deleted meanwhile), which is an outcome, not an error.
#[derive(Debug, Clone, Copy)]
pub struct Consistency {
    pub reads: u32,
    pub first_delay: Duration,
    pub horizon: TimeDelta,
}

impl Default for Consistency {
    fn default() -> Consistency {
        // 4 reads over 1.75 s; IAM usually converges within a second or two.
        Consistency { reads: 4, first_delay: Duration::from_millis(250), horizon: TimeDelta::seconds(60) }
    }
}

/// The service. `A` gives each account's IAM, `L` is the ledger, `P` the alert topic, `Q` the sweep queue.
pub struct Guard<A, L, P, Q> {
    pub(crate) accounts: A,
    pub(crate) ledger: Option<L>,
    pub(crate) alerts: Option<P>,
    pub(crate) sweep_queue: Option<Q>,
    pub(crate) outlets: Vec<Arc<dyn Outlet>>,
    pub(crate) mode: Mode,
    pub(crate) policy: Policy,
    pub(crate) max_deactivations: usize,
    pub(crate) reconcile_apply: bool,
    pub(crate) consistency: Consistency,
    pub(crate) clock: Clock,
}

impl<A: Accounts, L: Ledger, P: AlertPublisher, Q: SweepQueue> Guard<A, L, P, Q> {
    /// `alerts` may be None only in dry-run mode.
    pub fn new(
        accounts: A,
        ledger: Option<L>,
        alerts: Option<P>,
        sweep_queue: Option<Q>,
        config: &Config,
    ) -> Result<Self, ConfigError> {
        if alerts.is_none() && config.mode != Mode::DryRun {
            return Err(ConfigError {
                variable: "KEYGUARD_TOPIC_ARN",
                problem: format!("mode {} publishes alerts and needs a topic", config.mode.as_str()),
            });
        }
        Ok(Guard {
            accounts,
            ledger,
            alerts,
            sweep_queue,
            outlets: Vec::new(),
            mode: config.mode,
            policy: config.policy.clone(),
            max_deactivations: config.max_deactivations,
            reconcile_apply: config.reconcile_apply,
            consistency: Consistency::default(),
            clock: Arc::new(Utc::now),
        })
    }

    /// Adds an outlet (Security Hub, chat) every reportable decision is handed to.
    pub fn with_outlet(mut self, outlet: Arc<dyn Outlet>) -> Self {
        self.outlets.push(outlet);
        self
    }

    pub fn with_consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Replaces the clock (read to tell a lagging IAM from a deleted object, and to date ledger entries).
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn accounts(&self) -> &A {
        &self.accounts
    }

    /// The act step for one scope (an event, a sweep, an audit run), with its own safety valve.
    /// The act step for one scope (an event, a sweep, an audit run), with its own safety valve; the guard's
    /// settings (no used key, creator known, an alert per finding) unless the caller changes them.
    pub(crate) fn actor<'a>(&'a self, valve: &'a Valve) -> Actor<'a, L, P> {
        Actor {
            mode: self.mode,
            alerts: self.alerts.as_ref(),
            ledger: self.ledger.as_ref(),
            outlets: &self.outlets,
            valve,
            include_used: false,
            unknown_creator: false,
            per_key_alerts: true,
            clock: self.clock.clone(),
            iam_lag: self.consistency.horizon,
        }
    }

    pub(crate) fn valve(&self, scope: &str) -> Valve {
        Valve::new(scope, self.max_deactivations)
    }

    /// The ledger's entries for the user's keys (none without a ledger).
    pub(crate) async fn records(
        &self,
        account: &str,
        state: &UserState,
    ) -> Result<HashMap<String, KeyRecord>, AwsError> {
        let Some(ledger) = &self.ledger else { return Ok(HashMap::new()) };
        let reads = state.keys.iter().map(|k| async move { (k.id.clone(), ledger.key(account, &k.id).await) });
        let mut records = HashMap::new();
        for (key, record) in futures::future::join_all(reads).await {
            if let Some(record) = record? {
                records.insert(key, record);
            }
        }
        Ok(records)
    }
}
