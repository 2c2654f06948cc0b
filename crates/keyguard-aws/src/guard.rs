//! One event end to end: parse -> account -> state -> decide -> act.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use keyguard_core::alert::AlertKind;
use keyguard_core::rule::IgnoreReason;
use keyguard_core::{
    Action, AlertFacts, Decision, EventReport, Finding, IamCall, Incoming, KeyHistory, Reason, Trigger, UserState,
    evaluate, parse_event,
};
use serde_json::Value;
use tracing::{error, info, warn};

use crate::accounts::{AccountCheck, Accounts};
use crate::act::KeyCase;
use crate::error::{AwsError, GuardError};
use crate::metrics;
use crate::ports::{AlertPublisher, IamReader, Ledger, SweepQueue, UserRecord, read_user};
use crate::service::Guard;

/// EventBridge's limit on an event: anything larger was not delivered by EventBridge and is refused unread.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// What reading the user's state found.
enum Read {
    State(UserState),
    /// The user of the event no longer exists (deleted, or deleted and re-created under the same name).
    UserGone,
}

impl<A: Accounts, L: Ledger, P: AlertPublisher, Q: SweepQueue> Guard<A, L, P, Q> {
    /// Handles one EventBridge event (an IAM call, or the daily schedule). Logs one line per decision.
    pub async fn handle(&self, event: &Value) -> Result<EventReport, GuardError> {
        let started = Instant::now();
        let result = self.handle_inner(event).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        metrics::event(latency_ms);
        match &result {
            Ok(report) => {
                for d in &report.decisions {
                    info!(
                        event_id = %report.event_id,
                        event_name = %report.event_name,
                        account = report.account.as_deref().unwrap_or(""),
                        account_alias = report.account_alias.as_deref().unwrap_or(""),
                        user = report.user.as_deref().unwrap_or(""),
                        access_key_id = d.access_key_id.as_deref().unwrap_or(""),
                        verdict = d.verdict.as_str(),
                        action = d.action.as_str(),
                        reason = %d.reason,
                        note = d.note.as_deref().unwrap_or(""),
                        latency_ms = latency_ms as u64,
                        "decision"
                    );
                }
            }
            Err(e) => metrics::error(e.kind()),
        }
        result
    }

    async fn handle_inner(&self, event: &Value) -> Result<EventReport, GuardError> {
        let size = serde_json::to_vec(event).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > MAX_EVENT_BYTES {
            let event_id = event.pointer("/detail/eventID").or_else(|| event.get("id")).and_then(Value::as_str);
            let e = GuardError::Refused {
                event_id: event_id.unwrap_or("none").chars().take(128).collect(),
                why: format!("{size} bytes is more than EventBridge delivers ({MAX_EVENT_BYTES})"),
            };
            error!(error = %e, "event refused");
            return Err(e);
        }
        let incoming = parse_event(event).inspect_err(|e| {
            error!(event_id = e.event_id.as_deref().unwrap_or("none"), error = %e, "unparseable event");
        })?;
        match incoming {
            Incoming::Call(call) => self.handle_call(&call).await.inspect_err(|e| {
                error!(event_id = %call.event_id, account = call.account.as_deref().unwrap_or(""), error = %e,
                       error_type = e.kind(), retryable = e.retryable(), "event failed");
            }),
            Incoming::Scheduled { id, .. } => self.schedule(&id).await.inspect_err(|e| {
                error!(error = %e, error_type = e.kind(), retryable = e.retryable(), "scheduled sweep failed");
            }),
            Incoming::Other { id, source, detail_type } => {
                warn!(event_id = %id, %source, %detail_type, "refused: not an IAM API call event (aws.iam)");
                let finding = Finding {
                    access_key_id: None,
                    reason: Reason::Ignored(IgnoreReason::NotAnApiCall {
                        detail_type: format!("{source}: {detail_type}"),
                    }),
                };
                Ok(EventReport {
                    event_id: id,
                    event_name: detail_type,
                    account: None,
                    account_alias: None,
                    user: None,
                    decisions: vec![Decision::new(&finding, Action::None)],
                })
            }
        }
    }

    async fn handle_call(&self, call: &IamCall) -> Result<EventReport, GuardError> {
        let mut report = EventReport {
            event_id: call.event_id.clone(),
            event_name: call.event_name.clone(),
            account: call.account.clone(),
            account_alias: None,
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
        let account = self.guarded_account(call).await?;
        let aws = |source: AwsError| GuardError::Aws { event_id: call.event_id.clone(), source };
        let iam = self.accounts.iam(&account).await.map_err(aws)?;
        // Every key's creator is remembered from its own event, even when the key is compliant now: a password
        // added a minute later (the Terraform order) then knows who made the key.
        if let (Some(ledger), Trigger::AccessKeyCreated { user, key_id, creator }) = (&self.ledger, &trigger) {
            ledger.record_creator(&account, key_id, user, creator, call.event_time).await.map_err(aws)?;
        }
        let state = match self.read_state(&iam, call, &trigger).await? {
            Read::State(state) => state,
            Read::UserGone => {
                let finding = Finding { access_key_id: call.access_key_id.clone(), reason: Reason::UserGone };
                report.decisions.push(Decision::new(&finding, Action::None));
                return Ok(report);
            }
        };
        let records = self.records(&account, &state).await.map_err(aws)?;
        let history: HashMap<String, KeyHistory> = records.iter().map(|(k, r)| (k.clone(), r.history())).collect();
        let findings = evaluate(&self.policy, &trigger, &state, &history);
        if findings.iter().any(|f| f.verdict().is_finding() || f.verdict() == keyguard_core::Verdict::Exempt) {
            report.account_alias = self.accounts.alias(&account).await;
        }
        let valve = self.valve(&call.event_id);
        let actor = self.actor(&valve);
        for finding in findings {
            let record = finding.access_key_id.as_ref().and_then(|k| records.get(k));
            let facts = |f: &Finding, action: Action, note: Option<String>| {
                self.facts(call, &trigger, &state, &account, report.account_alias.clone(), f, action, note)
            };
            let acted = actor
                .act(&iam, &KeyCase { account: &account, user: &state.name, record, last_used: None }, finding, &facts)
                .await
                .map_err(aws)?;
            report.decisions.push(Decision::new(&acted.finding, acted.action).with_note(acted.note));
        }
        Ok(report)
    }

    /// The account the event changed, if this guard guards it. `recipientAccountId` is the account; the envelope's
    /// `account`, when present, must agree (it does on AWS, forwarded or not).
    async fn guarded_account(&self, call: &IamCall) -> Result<String, GuardError> {
        let Some(account) = call.account.clone() else {
            return Err(GuardError::Refused {
                event_id: call.event_id.clone(),
                why: "the event names no account".into(),
            });
        };
        if let Some(envelope) = &call.envelope_account
            && envelope != &account
        {
            return Err(GuardError::Refused {
                event_id: call.event_id.clone(),
                why: format!("recipientAccountId {account} and the envelope's account {envelope} disagree"),
            });
        }
        match self.accounts.check(&account).await {
            Ok(()) => Ok(account),
            Err(AccountCheck::NotGuarded(why)) => {
                Err(GuardError::AccountNotGuarded { event_id: call.event_id.clone(), account, why })
            }
            Err(AccountCheck::Aws(source)) => Err(GuardError::Aws { event_id: call.event_id.clone(), source }),
        }
    }

    /// Reads the user, password and keys concurrently, re-reading while IAM lags behind the event.
    async fn read_state<I: IamReader>(&self, iam: &I, call: &IamCall, trigger: &Trigger) -> Result<Read, GuardError> {
        let name = trigger.user();
        let aws = |source: AwsError| GuardError::Aws { event_id: call.event_id.clone(), source };
        let mut delay = self.consistency.first_delay;
        // An event older than the horizon needs no patience: IAM has long caught up with it.
        let aged = (self.clock)() - call.event_time >= self.consistency.horizon;
        let reads = if aged { 1 } else { self.consistency.reads.max(1) };
        for read in 1..=reads {
            let (user, password, keys) = read_user(iam, name).await.map_err(aws)?;
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

    #[allow(clippy::too_many_arguments)]
    fn facts(
        &self,
        call: &IamCall,
        trigger: &Trigger,
        state: &UserState,
        account: &str,
        alias: Option<String>,
        finding: &Finding,
        action: Action,
        note: Option<String>,
    ) -> AlertFacts {
        let key = finding.access_key_id.as_deref().and_then(|id| state.keys.iter().find(|k| k.id == id));
        // A CreateAccessKey event knows who created the key, an UpdateAccessKey event who re-enabled it; a
        // password or user event names neither, and the ledger's creator is in the reason.
        let by_key_event = matches!(trigger, Trigger::AccessKeyCreated { .. } | Trigger::AccessKeyReactivated { .. });
        let (tag_key, tag_value) = self.policy.exemptions.tag();
        AlertFacts {
            kind: AlertKind::of(&finding.reason),
            account: account.to_string(),
            account_alias: alias,
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
            note,
            exempt_tag: (tag_key.to_string(), tag_value.to_string()),
        }
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
