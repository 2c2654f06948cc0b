//! The audit: the rule over the account's current state, for `keyguard audit` and the Lambda's scheduled sweep.
//!
//! The credential report narrows the account down in a couple of calls; only users who may have a setup key
//! (a password, and a key within the window of the user) are then read like the guard reads one user (GetUser,
//! GetLoginProfile, ListAccessKeys), with bounded concurrency. Without a report, every listed user is read.
//! The creator is known only when the ledger remembers the key's `CreateAccessKey` event (or with
//! `--with-creators`, from CloudTrail's history); otherwise a key created after the password is `suspect`.

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use keyguard_core::alert::AlertKind;
use keyguard_core::{
    Action, AlertFacts, AuditRow, Finding, KeyState, Mode, Principal, ReportUser, UserState, Verdict, decide_key,
    parse_credential_report,
};
use tracing::{info, warn};

use crate::accounts::Accounts;
use crate::act::{Actor, KeyCase, Valve};
use crate::error::AwsError;
use crate::ports::{AccountReader, AlertPublisher, CreatorLookup, IamReader, Ledger, SweepQueue, read_user};
use crate::service::Guard;

/// Names the sweep in logs and alerts, where an event id would stand.
const CONTEXT: &str = "reconciliation";

#[derive(Debug, Clone)]
pub struct Options {
    /// How many users are read at once.
    pub concurrency: usize,
    /// Also deactivate violating keys that have been used (CIS's remediation targets unused setup keys; a used
    /// key is probably in production).
    pub include_used: bool,
    /// Decide only, whatever the mode: no alert, no deactivation, no outlet (`keyguard audit` without `--apply`).
    pub dry_run: bool,
    /// In `deactivate` mode, deactivate (`audit --apply`, `KEYGUARD_RECONCILE=apply`); otherwise report only.
    pub may_deactivate: bool,
    /// Narrow the account down with the credential report (false: read every user; the benchmark's baseline).
    pub credential_report: bool,
    /// Deactivate a violating key whose creator is unknown (`keyguard audit --apply`, an operator's decision).
    /// The unattended sweep does not: such a key may be an exempt provisioner's or the user's own.
    pub deactivate_without_creator: bool,
    /// Alert each finding on its own (`audit --apply`); the sweep sends one digest instead.
    pub per_key_alerts: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            concurrency: 8,
            include_used: false,
            dry_run: true,
            may_deactivate: false,
            credential_report: true,
            deactivate_without_creator: false,
            per_key_alerts: true,
        }
    }
}

/// The audit's result and its figures.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub account: String,
    pub account_alias: Option<String>,
    pub rows: Vec<AuditRow>,
    pub users: usize,
    /// Users read one by one (those who may be affected, or all of them without a report).
    pub users_read: usize,
    pub used_credential_report: bool,
    pub seconds: f64,
    /// Users that could not be read or acted on (the others are still audited).
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == verdict).count()
    }
}

impl<A: Accounts, L: Ledger, P: AlertPublisher, Q: SweepQueue> Guard<A, L, P, Q> {
    /// Audits one guarded account; acts by the mode unless `options.dry_run`, deactivating at most what `valve`
    /// allows (one valve per sweep or per `audit --apply` run). `progress(done, total)` is called as users are read.
    pub async fn audit(
        &self,
        account: &str,
        options: &Options,
        creators: Option<&impl CreatorLookup>,
        valve: &Valve,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Outcome, AwsError> {
        let started = Instant::now();
        let iam = self.accounts.iam(account).await?;
        // ListUsers is cheap (1,000 users a page) and always current; the report may be up to 4 hours old.
        let listed = iam.list_users().await?;
        let report = if options.credential_report { iam.credential_report().await? } else { None };
        let parsed = report.and_then(|(csv, generated)| match parse_credential_report(&csv) {
            Ok(users) => Some((users, generated)),
            Err(e) => {
                warn!(account, error = %e, "credential report unreadable: reading every user instead");
                None
            }
        });
        let used_report = parsed.is_some();
        let (mut rows, to_read) = match parsed {
            None => (Vec::new(), listed.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>()),
            Some((report, generated)) => self.split_by_report(account, report, generated, &listed),
        };
        let alias = self.accounts.alias(account).await;
        let users = listed.len();
        let total = to_read.len();
        let mut done = 0;
        progress(done, total);
        let mut actor = self.actor(valve);
        actor.include_used = options.include_used;
        actor.unknown_creator = options.deactivate_without_creator;
        actor.per_key_alerts = options.per_key_alerts;
        if options.dry_run {
            actor.mode = Mode::DryRun;
        } else if !options.may_deactivate && actor.mode == Mode::Deactivate {
            actor.mode = Mode::Notify;
        }
        let context = AuditContext { account, alias: alias.as_deref(), iam: &iam, actor: &actor, creators };
        let mut reads = stream::iter(to_read)
            .map(|name| {
                let context = &context;
                async move { (name.clone(), self.audit_user(context, name).await) }
            })
            .buffer_unordered(options.concurrency.max(1));
        // One user's failure must not cancel the others mid-action: every result is collected.
        let mut errors = Vec::new();
        while let Some((name, result)) = reads.next().await {
            match result {
                Ok(user_rows) => rows.extend(user_rows),
                Err(e) => {
                    warn!(account, user = %name, error = %e, "user not audited");
                    errors.push(format!("{name}: {e}"));
                }
            }
            done += 1;
            progress(done, total);
        }
        drop(reads);
        rows.sort_by(|a, b| (&a.user, &a.access_key_id).cmp(&(&b.user, &b.access_key_id)));
        // An audit that acted tells the outlets what stands, so that they close what is no longer open (Security
        // Hub archives the findings of keys gone, inactive or now exempt). Their failures never fail the audit.
        if actor.mode != Mode::DryRun && errors.is_empty() {
            for outlet in &self.outlets {
                if let Err(e) = outlet.reconcile(account, &rows).await {
                    crate::metrics::outlet_error(outlet.name());
                    warn!(outlet = outlet.name(), account, error = %e, "outlet could not reconcile; the audit stands");
                }
            }
        }
        let outcome = Outcome {
            account: account.to_string(),
            account_alias: alias,
            rows,
            users,
            users_read: total,
            used_credential_report: used_report,
            seconds: started.elapsed().as_secs_f64(),
            errors,
        };
        info!(
            account,
            users = outcome.users,
            users_read = outcome.users_read,
            credential_report = outcome.used_credential_report,
            violations = outcome.count(Verdict::Violation),
            suspects = outcome.count(Verdict::Suspect),
            failures = outcome.errors.len(),
            seconds = outcome.seconds,
            "audit finished"
        );
        Ok(outcome)
    }

    /// One user read in full: each key decided (with its creator from the ledger, or CloudTrail when asked), the
    /// flagged ones looked up for use, then acted on.
    async fn audit_user<C: CreatorLookup>(
        &self,
        cx: &AuditContext<'_, '_, A::Iam, L, P, C>,
        name: String,
    ) -> Result<Vec<AuditRow>, AwsError> {
        let account = cx.account;
        let (Some(user), password, keys) = read_user(cx.iam, &name).await? else {
            return Ok(Vec::new()); // deleted meanwhile
        };
        let state = user.into_state(password, keys);
        if state.keys.is_empty() {
            return Ok(AuditRow::for_user(self.policy(), account, &state, |_| None));
        }
        let records = self.records(account, &state).await?;
        let mut rows = Vec::new();
        for key in &state.keys {
            let record = records.get(&key.id);
            let mut creator = record.and_then(|r| r.creator.clone());
            let mut finding = decide_key(self.policy(), &state, key, creator.as_ref());
            // Only flagged keys are looked up (CloudTrail allows 2 lookups a second): the creator turns a suspect
            // into a violation or a self-service key, and may exempt it.
            if let (true, None, Some(lookup)) = (finding.verdict().is_finding(), &creator, cx.creators)
                && let Some(principal) = lookup.key_creator(&key.id).await?
            {
                finding = decide_key(self.policy(), &state, key, Some(&principal));
                creator = Some(principal);
            }
            let creator_label = creator.as_ref().map(|c| c.label());
            if !(finding.verdict().is_finding() || finding.verdict() == Verdict::Exempt) {
                rows.push(AuditRow::from_finding(account, &state, &finding, creator_label));
                continue;
            }
            let last_used = cx.iam.key_last_used(&key.id).await?;
            let facts = |f: &Finding, action: Action, note: Option<String>| {
                audit_facts(self, account, cx.alias, &state, key, creator.as_ref(), f, action, note)
            };
            let acted = cx
                .actor
                .act(
                    cx.iam,
                    &KeyCase { account, user: &state.name, record, last_used: Some(last_used) },
                    finding,
                    &facts,
                )
                .await?;
            let mut row = AuditRow::from_finding(account, &state, &acted.finding, creator_label);
            row.last_used = last_used;
            row.action = acted.action;
            if let Some(note) = acted.note {
                row.reason = format!("{}; {note}", row.reason);
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// Splits the listed users into rows the report settles and users to read. A user the report does not know,
    /// or created too shortly before it was generated for all their setup keys to be in it, is read.
    fn split_by_report(
        &self,
        account: &str,
        report: Vec<ReportUser>,
        generated: DateTime<Utc>,
        listed: &[(String, DateTime<Utc>)],
    ) -> (Vec<AuditRow>, Vec<String>) {
        let window = self.policy().window;
        let mut by_name: std::collections::HashMap<String, ReportUser> =
            report.into_iter().map(|u| (u.user.to_lowercase(), u)).collect();
        // A report lists only users who existed when it was generated, so it is at least as new as the newest of
        // them (this also tells a bogus, fixed GeneratedTime from an emulator apart).
        let newest_listed =
            listed.iter().filter(|(n, _)| by_name.contains_key(&n.to_lowercase())).map(|(_, c)| *c).max();
        let generated = newest_listed.map_or(generated, |newest| generated.max(newest));
        let mut rows = Vec::new();
        let mut to_read = Vec::new();
        for (name, created) in listed {
            match by_name.remove(&name.to_lowercase()) {
                Some(u) if *created + window < generated && !u.may_be_affected(window) => {
                    rows.extend(self.report_rows(account, &u))
                }
                _ => to_read.push(name.clone()),
            }
        }
        (rows, to_read)
    }

    /// Rows for a user the credential report already settles (no password, no key, or keys outside the window).
    /// The report does not give key ids: `access_key_id` stays null for these.
    fn report_rows(&self, account: &str, user: &ReportUser) -> Vec<AuditRow> {
        let created = user.created.unwrap_or(DateTime::<Utc>::MIN_UTC);
        let state = UserState {
            name: user.user.clone(),
            user_id: None,
            arn: Some(user.arn.clone()),
            path: "/".into(),
            created,
            tags: Vec::new(),
            // Only "has a password" matters for settled users; its time is never compared.
            password_created: user.password_enabled.then_some(created),
            keys: user
                .keys
                .iter()
                .map(|(active, at)| KeyState { id: String::new(), created: *at, active: *active })
                .collect(),
        };
        if state.keys.is_empty() {
            return AuditRow::for_user(self.policy(), account, &state, |_| None);
        }
        state
            .keys
            .iter()
            .map(|k| {
                let finding = decide_key(self.policy(), &state, k, None);
                let mut row =
                    AuditRow::from_finding(account, &state, &Finding { access_key_id: None, ..finding }, None);
                row.key_created = Some(k.created);
                row.gap_seconds = Some(k.created.timestamp() - created.timestamp());
                row
            })
            .collect()
    }
}

/// The things the audit of one account shares between its users.
struct AuditContext<'a, 'b, I, L, P, C> {
    account: &'a str,
    alias: Option<&'a str>,
    iam: &'a I,
    actor: &'a Actor<'b, L, P>,
    creators: Option<&'a C>,
}

#[allow(clippy::too_many_arguments)]
fn audit_facts<A, L, P, Q>(
    guard: &Guard<A, L, P, Q>,
    account: &str,
    alias: Option<&str>,
    state: &UserState,
    key: &KeyState,
    creator: Option<&Principal>,
    finding: &Finding,
    action: Action,
    note: Option<String>,
) -> AlertFacts {
    let (tag_key, tag_value) = guard.policy.exemptions.tag();
    AlertFacts {
        kind: AlertKind::of(&finding.reason),
        account: account.to_string(),
        account_alias: alias.map(str::to_string),
        user_name: state.name.clone(),
        user_arn: state.arn.clone(),
        user_created: state.created,
        access_key_id: key.id.clone(),
        key_created: key.created,
        has_password: state.password_created.is_some(),
        creator: creator.cloned(),
        source_ip: None,
        user_agent: None,
        event_id: CONTEXT.to_string(),
        event_name: "audit of the account's current state".to_string(),
        verdict: finding.verdict(),
        reason: finding.reason.to_string(),
        action,
        note,
        exempt_tag: (tag_key.to_string(), tag_value.to_string()),
    }
}
