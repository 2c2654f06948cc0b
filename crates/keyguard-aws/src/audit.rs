//! The audit: the rule over the account's current state, for `keyguard audit` and the Lambda's scheduled sweep.
//!
//! Calls grow with the findings, not with the users. Two account-wide reads come first, side by side: the user
//! listing (GetAccountAuthorizationDetails: paths and tags, 1,000 users a page, so that exemptions are known before
//! any per-user read) and the credential report (each user's creation and password, each key's creation, status and
//! last use). The report's age decides what it settles ([`CredentialReport::plan`] writes the rules out); most
//! users then need no call of their own. A user the report flags costs ListAccessKeys (the key ids, the status now),
//! and GetLoginProfile only where the password's date decides a verdict the report's dates cannot settle.
//! GetAccessKeyLastUsed is read only when `--apply` must decide and the report cannot tell. Without a report
//! (`--no-credential-report`, the benchmark's baseline; or none to be had) every user is read as the guard reads one.
//! The creator is known only when the ledger remembers the key's `CreateAccessKey` event (or with
//! `--with-creators`, from CloudTrail's history); otherwise a key created after the password is `suspect`.

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use keyguard_core::alert::AlertKind;
use keyguard_core::{
    Action, AlertFacts, AuditRow, CredentialReport, Finding, KeyState, Mode, Plan, Principal, Reason, ReportAge,
    ReportUser, UserState, Verdict, decide_key, order_settled, parse_credential_report,
};
use tracing::{info, warn};

use crate::accounts::Accounts;
use crate::act::{Actor, KeyCase, Valve};
use crate::error::AwsError;
use crate::ports::{AccountReader, AlertPublisher, CreatorLookup, IamReader, Ledger, SweepQueue, UserRecord};
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
    /// Settle what the credential report can (false: read every user as the guard reads one, GetUser included;
    /// the benchmark's baseline).
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
    /// Users read one by one (those the report flags or cannot speak for; all of them without a report).
    pub users_read: usize,
    /// The credential report used, by its age; None without one.
    pub report: Option<ReportAge>,
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
        let report = async { if options.credential_report { iam.credential_report().await } else { Ok(None) } };
        let (listing, report, alias) = tokio::join!(iam.users(), report, self.accounts.alias(account));
        let listing = listing?;
        let report = report?.and_then(|doc| match parse_credential_report(&doc.csv) {
            Ok(users) => Some(CredentialReport::new(users, doc.generated, doc.fresh)),
            Err(e) => {
                warn!(account, error = %e, "credential report unreadable: reading every user instead");
                None
            }
        });
        // A user read live is read with GetUser too where the listing has no tags, and always without a report
        // (reading every user exactly as the guard reads one: the baseline the benchmark compares with).
        let get_user = !listing.tags || !options.credential_report;
        // Inactive setup keys are read where the report's "compliant (already inactive)" may not be the last word:
        // with a ledger, which may owe an alert for one (the act step re-sends it); without the tags, which may
        // exempt the user (an exempt key is reported, inactive or not).
        let read_inactive = self.ledger.is_some() || !listing.tags;
        let users = listing.users.len();
        let mut rows = Vec::new();
        let mut to_read = Vec::new();
        for record in listing.users {
            let view = record.clone().into_state(None, None);
            let line = report.as_ref().and_then(|r| r.line(&view)).cloned();
            let plan = report.as_ref().map_or(Plan::Everything, |r| r.plan(&view, self.policy(), read_inactive));
            match (plan, line) {
                (Plan::Settled, Some(line)) => {
                    rows.extend(line.rows(self.policy(), account, &view, line.password_enabled))
                }
                (plan, line) => to_read.push(UserRead { record, plan, line }),
            }
        }
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
        let report_age = report.as_ref().map(|r| r.age);
        let context =
            AuditContext { account, alias: alias.as_deref(), iam: &iam, actor: &actor, creators, get_user, report_age };
        let mut reads = stream::iter(to_read)
            .map(|read| {
                let context = &context;
                async move { (read.record.name.clone(), self.audit_user(context, read).await) }
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
            report: report_age,
            seconds: started.elapsed().as_secs_f64(),
            errors,
        };
        info!(
            account,
            users = outcome.users,
            users_read = outcome.users_read,
            credential_report = match outcome.report {
                None => "none",
                Some(ReportAge::Fresh) => "fresh",
                Some(ReportAge::AsOf(_)) => "older",
            },
            violations = outcome.count(Verdict::Violation),
            suspects = outcome.count(Verdict::Suspect),
            failures = outcome.errors.len(),
            seconds = outcome.seconds,
            "audit finished"
        );
        Ok(outcome)
    }

    /// One user read live, as far as `plan` needs: each key decided (with its creator from the ledger, or
    /// CloudTrail when asked), then acted on.
    async fn audit_user<C: CreatorLookup>(
        &self,
        cx: &AuditContext<'_, '_, A::Iam, L, P, C>,
        read: UserRead,
    ) -> Result<Vec<AuditRow>, AwsError> {
        let UserRead { record, plan, line } = read;
        let (account, iam, name) = (cx.account, cx.iam, record.name.clone());
        let view = record.clone().into_state(None, None);
        let user = async { if cx.get_user { iam.get_user(&name).await } else { Ok(Some(record)) } };
        let (user, password, keys) = match plan {
            Plan::PasswordFirst => match (iam.get_login_profile(&name).await?, &line) {
                // Still no password: the report's rows stand.
                (None, Some(line)) => return Ok(line.rows(self.policy(), account, &view, false)),
                (password, _) => {
                    let (user, keys) = tokio::join!(user, iam.list_access_keys(&name));
                    (user?, Password::Read(password), keys?)
                }
            },
            Plan::Keys { password_set: Some(set) } => {
                let (user, keys) = tokio::join!(user, iam.list_access_keys(&name));
                (user?, Password::Set(set), keys?)
            }
            Plan::Keys { password_set: None } | Plan::Everything | Plan::Settled => {
                let (user, password, keys) =
                    tokio::join!(user, iam.get_login_profile(&name), iam.list_access_keys(&name));
                (user?, Password::Read(password?), keys?)
            }
        };
        let (Some(user), Some(keys)) = (user, keys) else {
            return Ok(Vec::new()); // deleted meanwhile
        };
        let mut state = user.into_state(password.date(), Some(keys));
        if state.keys.is_empty() {
            return Ok(AuditRow::for_user(self.policy(), account, &state, |_| None));
        }
        let records = self.records(account, &state).await?;
        let creator_of = |id: &str| records.get(id).and_then(|r| r.creator.clone());
        // The report's "password last set" stands in for the password's creation only where it settles the order
        // of each key and the password; where a verdict depends on that order and it does not, GetLoginProfile tells.
        if let Password::Set(set) = password
            && state.keys.iter().any(|k| {
                let reason = decide_key(self.policy(), &state, k, creator_of(&k.id).as_ref()).reason;
                matches!(reason, Reason::SetupKeyBeforePassword { .. } | Reason::SetupKeyCreatorUnknown { .. })
                    && !order_settled(state.created, set, k.created)
            })
        {
            state.password_created = iam.get_login_profile(&name).await?;
        }
        let mut rows = Vec::new();
        for key in &state.keys {
            let record = records.get(&key.id);
            let mut creator = creator_of(&key.id);
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
            // The report's last use where it settles it; otherwise the act step reads it if it must decide.
            let last_used = line.as_ref().zip(cx.report_age).and_then(|(line, age)| line.last_use(key.created, age));
            let facts = |f: &Finding, action: Action, note: Option<String>| {
                audit_facts(self, account, cx.alias, &state, key, creator.as_ref(), f, action, note)
            };
            let acted =
                cx.actor.act(iam, &KeyCase { account, user: &state.name, record, last_used }, finding, &facts).await?;
            let mut row = AuditRow::from_finding(account, &state, &acted.finding, creator_label);
            row.last_used = last_used.flatten();
            row.action = acted.action;
            if let Some(note) = acted.note {
                row.reason = format!("{}; {note}", row.reason);
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

/// One user to read live, what to read, and the report's line about them (if it has one).
struct UserRead {
    record: UserRecord,
    plan: Plan,
    line: Option<ReportUser>,
}

/// The password as the audit knows it.
#[derive(Debug, Clone, Copy)]
enum Password {
    /// Read live (GetLoginProfile): its creation, None without one.
    Read(Option<DateTime<Utc>>),
    /// A fresh report's `password_last_changed`, which settles most keys' order ([`order_settled`]).
    Set(DateTime<Utc>),
}

impl Password {
    fn date(self) -> Option<DateTime<Utc>> {
        match self {
            Password::Read(date) => date,
            Password::Set(set) => Some(set),
        }
    }
}

/// The things the audit of one account shares between its users.
struct AuditContext<'a, 'b, I, L, P, C> {
    account: &'a str,
    alias: Option<&'a str>,
    iam: &'a I,
    actor: &'a Actor<'b, L, P>,
    creators: Option<&'a C>,
    /// Read GetUser with each user read live (no tags in the listing, or reading every user).
    get_user: bool,
    /// The credential report's age, for what its last-use dates settle.
    report_age: Option<ReportAge>,
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
