//! The Guard service: event -> current IAM state -> decision -> action, for one event at a time.
//!
//! Generic over its ports, so the same service runs in the Lambda, in `keyguard handle`, and in tests.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use keyguard_core::rule::IgnoreReason;
use keyguard_core::{
    Action, Alert, AlertFacts, Config, ConfigError, Decision, EventReport, Finding, IamCall, Incoming, Mode, Policy,
    Reason, Trigger, UserState, evaluate, parse_event,
};
use serde_json::Value;
use tracing::{error, info, warn};

use crate::error::{AwsError, GuardError};
use crate::ports::{AccountReader, AlertPublisher, Deactivation, IamReader, KeyDeactivator, UserRecord};

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

pub struct Guard<R, D, P> {
    iam: R,
    keys: D,
    alerts: Option<P>,
    mode: Mode,
    policy: Policy,
    consistency: Consistency,
    clock: fn() -> DateTime<Utc>,
    reconcile_apply: bool,
}

/// What reading the user's state found.
enum Read {
    State(UserState),
    /// The user of the event no longer exists (deleted, or deleted and re-created under the same name).
    UserGone,
}

impl<R: IamReader + AccountReader, D: KeyDeactivator, P: AlertPublisher> Guard<R, D, P> {
    /// `alerts` may be None only in dry-run mode.
    pub fn new(iam: R, keys: D, alerts: Option<P>, config: &Config) -> Result<Self, ConfigError> {
        if alerts.is_none() && config.mode != Mode::DryRun {
            return Err(ConfigError {
                variable: "KEYGUARD_TOPIC_ARN",
                problem: format!("mode {} publishes alerts and needs a topic", config.mode.as_str()),
            });
        }
        Ok(Guard {
            iam,
            keys,
            alerts,
            mode: config.mode,
            policy: config.policy.clone(),
            consistency: Consistency::default(),
            clock: Utc::now,
            reconcile_apply: config.reconcile_apply,
        })
    }

    /// The scheduled sweep: the audit of the whole account, so that violations whose events were never delivered
    /// are still caught. Its report lists the flagged keys as decisions.
    async fn reconcile(&self, event_id: String) -> Result<EventReport, GuardError> {
        let options = crate::audit::Options { dry_run: !self.reconcile_apply, ..Default::default() };
        let outcome = self
            // No CloudTrail lookups in the sweep: the role stays without cloudtrail:LookupEvents (suspects stay suspects).
            .audit(&options, None::<&crate::SdkCloudTrail>, &|_, _| ())
            .await
            .map_err(|source| GuardError::Aws { event_id: event_id.clone(), source })?;
        if !outcome.errors.is_empty() {
            // The rows of the others are logged (audit finished); the sweep fails so that the alarm tells.
            let message = format!("{} user(s) not audited: {}", outcome.errors.len(), outcome.errors.join("; "));
            return Err(GuardError::Aws { event_id, source: AwsError::new("reconciliation", None, message) });
        }
        let decisions = outcome
            .rows
            .iter()
            .filter(|r| r.verdict.is_finding())
            .map(|r| Decision {
                access_key_id: r.access_key_id.clone(),
                verdict: r.verdict,
                reason: format!("{}: {}", r.user, r.reason),
                action: r.action,
            })
            .collect();
        Ok(EventReport {
            event_id,
            event_name: "Scheduled Event".into(),
            account: outcome.rows.first().map(|r| r.account.clone()),
            user: None,
            decisions,
        })
    }

    pub fn with_consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Handles one EventBridge event. Logs one line per decision.
    pub async fn handle(&self, event: &Value) -> Result<EventReport, GuardError> {
        let started = Instant::now();
        let incoming = parse_event(event).inspect_err(|e| {
            error!(event_id = e.event_id.as_deref().unwrap_or("none"), error = %e, "unparseable event");
        })?;
        let report = match incoming {
            Incoming::Call(call) => self.handle_call(&call).await.inspect_err(|e| {
                error!(event_id = %call.event_id, error = %e, error_type = e.kind(), retryable = e.retryable(), "event failed");
            })?,
            Incoming::Scheduled { id, .. } => self.reconcile(id).await.inspect_err(|e| {
                error!(error = %e, error_type = e.kind(), retryable = e.retryable(), "reconciliation failed");
            })?,
            Incoming::Other { id, detail_type, .. } => EventReport {
                event_id: id,
                event_name: detail_type.clone(),
                account: None,
                user: None,
                decisions: vec![Decision::new(
                    &Finding { access_key_id: None, reason: Reason::Ignored(IgnoreReason::NotAnApiCall { detail_type }) },
                    Action::None,
                )],
            },
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        for d in &report.decisions {
            info!(
                event_id = %report.event_id,
                event_name = %report.event_name,
                user = report.user.as_deref().unwrap_or(""),
                access_key_id = d.access_key_id.as_deref().unwrap_or(""),
                verdict = d.verdict.as_str(),
                action = d.action.as_str(),
                reason = %d.reason,
                latency_ms,
                "decision"
            );
        }
        Ok(report)
    }

    async fn handle_call(&self, call: &IamCall) -> Result<EventReport, GuardError> {
        let mut report = EventReport {
            event_id: call.event_id.clone(),
            event_name: call.event_name.clone(),
            account: call.account.clone(),
            user: call.target_user.clone(),
            decisions: vec![],
        };
        let trigger = match Trigger::of(call) {
            Ok(t) => t,
            Err(why) => {
                if why == IgnoreReason::RootKey {
                    warn!(event_id = %call.event_id, "root user created an access key for itself (out of scope, but worth a look)");
                }
                let finding = Finding { access_key_id: call.access_key_id.clone(), reason: Reason::Ignored(why) };
                report.decisions.push(Decision::new(&finding, Action::None));
                return Ok(report);
            }
        };
        let state = match self.read_state(call, &trigger).await? {
            Read::State(state) => state,
            Read::UserGone => {
                let finding = Finding { access_key_id: call.access_key_id.clone(), reason: Reason::UserGone };
                report.decisions.push(Decision::new(&finding, Action::None));
                return Ok(report);
            }
        };
        for finding in evaluate(&self.policy, &trigger, &state) {
            let (finding, action) = self.act(call, &trigger, &state, finding).await?;
            report.decisions.push(Decision::new(&finding, action));
        }
        Ok(report)
    }

    /// Reads the user, password and keys concurrently, re-reading while IAM lags behind the event.
    async fn read_state(&self, call: &IamCall, trigger: &Trigger) -> Result<Read, GuardError> {
        let name = trigger.user();
        let aws = |source: AwsError| GuardError::Aws { event_id: call.event_id.clone(), source };
        let mut delay = self.consistency.first_delay;
        // An event older than the horizon needs no patience: IAM has long caught up with it.
        let aged = (self.clock)() - call.event_time >= self.consistency.horizon;
        let reads = if aged { 1 } else { self.consistency.reads.max(1) };
        for read in 1..=reads {
            let (user, password, keys) = self.read_user(name).await.map_err(aws)?;
            let missing = match (&user, trigger) {
                (None, _) => Some("the user".to_string()),
                (Some(u), Trigger::UserCreated { user_id: Some(id), .. }) if &u.user_id != id => {
                    // Same name, another user: the one this event created is gone. No amount of waiting changes that.
                    return Ok(Read::UserGone);
                }
                (Some(_), Trigger::AccessKeyCreated { key_id, .. })
                    if !keys.iter().flatten().any(|k| &k.id == key_id) =>
                {
                    Some(format!("access key {key_id}"))
                }
                (Some(_), Trigger::LoginProfileCreated { .. }) if password.is_none() => {
                    Some("the console password".to_string())
                }
                _ => None,
            };
            if missing.is_some() && read < reads {
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            if let Some(what) = missing
                && (self.clock)() - call.event_time < self.consistency.horizon
            {
                return Err(GuardError::NotYetConsistent { event_id: call.event_id.clone(), what });
            }
            // Consistent, or old enough that IAM has long caught up: what is missing was deleted meanwhile.
            return Ok(user.map_or(Read::UserGone, |u| Read::State(state_of(u, password, keys, trigger, call))));
        }
        Err(GuardError::NotYetConsistent { event_id: call.event_id.clone(), what: "the user".into() })
    }

    /// Carries out the mode for one finding. A key deleted before it could be deactivated becomes `KeyGone`.
    async fn act(
        &self,
        call: &IamCall,
        trigger: &Trigger,
        state: &UserState,
        finding: Finding,
    ) -> Result<(Finding, Action), GuardError> {
        // Only a CreateAccessKey event names the key's creator. Without it (password or user events) a key
        // "before the password" may still be the user's own (a password re-created later) or an exempt
        // provisioner's: the guard alerts, and leaves deactivation to the key's own event.
        let creator_known = matches!(trigger, Trigger::AccessKeyCreated { .. });
        self.enforce(&call.event_id, &state.name, finding, creator_known, |f, action| {
            self.facts(call, trigger, state, f, action)
        })
        .await
        .map_err(|source| GuardError::Aws { event_id: call.event_id.clone(), source })
    }

    /// Carries out the mode for one finding; shared by the guard and the audit. Only violations are deactivated
    /// (a suspect may be the user's own key), and only when `may_deactivate`. A key deleted before it could be
    /// deactivated becomes `KeyGone`. `context` names the event (or sweep) in logs.
    pub(crate) async fn enforce(
        &self,
        context: &str,
        user: &str,
        finding: Finding,
        may_deactivate: bool,
        facts: impl FnOnce(&Finding, Action) -> AlertFacts,
    ) -> Result<(Finding, Action), AwsError> {
        let verdict = finding.verdict();
        if !verdict.is_finding() {
            return Ok((finding, Action::None));
        }
        if self.mode == Mode::DryRun {
            return Ok((finding, Action::DryRun));
        }
        let key_id = finding.access_key_id.clone().unwrap_or_default();
        let mut action = Action::Notified;
        if self.mode == Mode::Deactivate && verdict == keyguard_core::Verdict::Violation && may_deactivate {
            match self.keys.deactivate(user, &key_id).await? {
                Deactivation::Done => action = Action::Deactivated,
                Deactivation::Gone => {
                    return Ok((Finding { access_key_id: Some(key_id), reason: Reason::KeyGone }, Action::None));
                }
            }
        }
        let alert = Alert::render(&facts(&finding, action));
        let publisher =
            self.alerts.as_ref().ok_or_else(|| AwsError::new("sns:Publish", None, "no topic configured".into()))?;
        match publisher.publish(&alert).await {
            Ok(message_id) => info!(event_id = %context, access_key_id = %key_id, %message_id, "alert published"),
            Err(e) => {
                // If the key was just deactivated, a retry will find it inactive and stay silent: say so loudly.
                error!(event_id = %context, access_key_id = %key_id, action = action.as_str(), error = %e,
                       "alert could not be published");
                return Err(e);
            }
        }
        Ok((finding, action))
    }

    /// The user, password and keys, read concurrently. `None`s where IAM says `NoSuchEntity`.
    pub(crate) async fn read_user(
        &self,
        name: &str,
    ) -> Result<(Option<UserRecord>, Option<DateTime<Utc>>, Option<Vec<keyguard_core::KeyState>>), AwsError> {
        let (user, password, keys) =
            tokio::join!(self.iam.get_user(name), self.iam.get_login_profile(name), self.iam.list_access_keys(name));
        Ok((user?, password?, keys?))
    }

    fn facts(
        &self,
        call: &IamCall,
        trigger: &Trigger,
        state: &UserState,
        finding: &Finding,
        action: Action,
    ) -> AlertFacts {
        let key = finding.access_key_id.as_deref().and_then(|id| state.keys.iter().find(|k| k.id == id));
        // Only a CreateAccessKey event knows who created the key; other triggers were made by whoever set up the
        // user or password.
        let by_key_event = matches!(trigger, Trigger::AccessKeyCreated { .. });
        AlertFacts {
            account: call.account.clone().unwrap_or_else(|| "unknown".into()),
            user_name: state.name.clone(),
            user_arn: state.arn.clone(),
            user_created: state.created,
            access_key_id: finding.access_key_id.clone().unwrap_or_default(),
            key_created: key.map(|k| k.created).unwrap_or(call.event_time),
            has_password: state.password_created.is_some(),
            creator: by_key_event.then(|| call.caller.clone()),
            source_ip: by_key_event.then(|| call.source_ip.clone()).flatten(),
            user_agent: by_key_event.then(|| call.user_agent.clone()).flatten(),
            event_id: call.event_id.clone(),
            event_name: call.event_name.clone(),
            verdict: finding.verdict(),
            reason: finding.reason.to_string(),
            action,
        }
    }
}

/// Test and benchmark hooks, off the production path; accessors for the audit.
impl<R, D, P> Guard<R, D, P> {
    pub(crate) fn iam(&self) -> &R {
        &self.iam
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replaces the clock (the guard reads it only to tell a lagging IAM from a deleted object).
    pub fn with_clock(mut self, clock: fn() -> DateTime<Utc>) -> Self {
        self.clock = clock;
        self
    }
}

fn state_of(
    user: UserRecord,
    password: Option<DateTime<Utc>>,
    keys: Option<Vec<keyguard_core::KeyState>>,
    trigger: &Trigger,
    call: &IamCall,
) -> UserState {
    let mut state = user.into_state(password, keys);
    trigger.apply_evidence(call.event_time, &mut state);
    state
}
