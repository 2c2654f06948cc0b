//! The audit: the rule over the account's current state, for `keyguard audit` and the Lambda's scheduled sweep.
//!
//! The credential report narrows the account down in a couple of calls; only users who may have a setup key
//! (a password, and a key within the window of the user) are then read like the guard reads one user (GetUser,
//! GetLoginProfile, ListAccessKeys), with bounded concurrency. Without a report, every listed user is read.
//! The creator is unknown here, so a key created after the password is `suspect`, not a violation.

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use keyguard_core::{
    Action, AlertFacts, AuditRow, Finding, KeyState, ReportUser, UserState, Verdict, decide_key,
    parse_credential_report,
};
use tracing::{info, warn};

use crate::error::AwsError;
use crate::guard::Guard;
use crate::ports::{AccountReader, AlertPublisher, CreatorLookup, IamReader, KeyDeactivator};

/// Names the sweep in logs and alerts, where an event id would stand.
const CONTEXT: &str = "reconciliation";

#[derive(Debug, Clone)]
pub struct Options {
    /// How many users are read at once.
    pub concurrency: usize,
    /// Also deactivate violating keys that have been used (CIS's remediation targets unused setup keys; a used
    /// key is probably in production).
    pub include_used: bool,
    /// Decide only, whatever the mode.
    pub dry_run: bool,
    /// Narrow the account down with the credential report (false: read every user; the benchmark's baseline).
    pub credential_report: bool,
    /// Deactivate a violating key whose creator is unknown (`keyguard audit --apply`, an operator's decision).
    /// The unattended sweep does not: such a key may be an exempt provisioner's or the user's own.
    pub deactivate_without_creator: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            concurrency: 8,
            include_used: false,
            dry_run: true,
            credential_report: true,
            deactivate_without_creator: false,
        }
    }
}

/// The audit's result and its figures.
#[derive(Debug, Clone)]
pub struct Outcome {
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

impl<R: IamReader + AccountReader, D: KeyDeactivator, P: AlertPublisher> Guard<R, D, P> {
    /// Audits the whole account; acts by the mode unless `options.dry_run`. `progress(done, total)` is called as
    /// users are read.
    pub async fn audit(
        &self,
        options: &Options,
        creators: Option<&impl CreatorLookup>,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Outcome, AwsError> {
        let started = Instant::now();
        // ListUsers is cheap (1,000 users a page) and always current; the report may be up to 4 hours old.
        let listed = self.iam().list_users().await?;
        let report = if options.credential_report { self.iam().credential_report().await? } else { None };
        let parsed = report.and_then(|(csv, generated)| match parse_credential_report(&csv) {
            Ok(users) => Some((users, generated)),
            Err(e) => {
                warn!(error = %e, "credential report unreadable: reading every user instead");
                None
            }
        });
        let used_report = parsed.is_some();
        let (mut rows, to_read) = match parsed {
            None => (Vec::new(), listed.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>()),
            Some((report, generated)) => self.split_by_report(report, generated, &listed),
        };
        let users = listed.len();
        let total = to_read.len();
        let mut done = 0;
        progress(done, total);
        let mut reads = stream::iter(to_read)
            .map(|name| async move { (name.clone(), self.audit_user(name, options, creators).await) })
            .buffer_unordered(options.concurrency.max(1));
        // One user's failure must not cancel the others mid-action: every result is collected.
        let mut errors = Vec::new();
        while let Some((name, result)) = reads.next().await {
            match result {
                Ok(user_rows) => rows.extend(user_rows),
                Err(e) => {
                    warn!(user = %name, error = %e, "user not audited");
                    errors.push(format!("{name}: {e}"));
                }
            }
            done += 1;
            progress(done, total);
        }
        rows.sort_by(|a, b| (&a.user, &a.access_key_id).cmp(&(&b.user, &b.access_key_id)));
        let outcome = Outcome {
            rows,
            users,
            users_read: total,
            used_credential_report: used_report,
            seconds: started.elapsed().as_secs_f64(),
            errors,
        };
        info!(
            users = outcome.users,
            users_read = outcome.users_read,
            credential_report = outcome.used_credential_report,
            violations = outcome.count(Verdict::Violation),
            suspects = outcome.count(Verdict::Suspect),
            seconds = outcome.seconds,
            "audit finished"
        );
        Ok(outcome)
    }

    /// One user read in full: each key decided, the flagged ones looked up for use, then acted on.
    async fn audit_user(
        &self,
        name: String,
        options: &Options,
        creators: Option<&impl CreatorLookup>,
    ) -> Result<Vec<AuditRow>, AwsError> {
        let (Some(user), password, keys) = self.read_user(&name).await? else {
            return Ok(Vec::new()); // deleted meanwhile
        };
        let account = user.arn.split(':').nth(4).unwrap_or_default().to_string();
        let state = user.into_state(password, keys);
        if state.keys.is_empty() {
            return Ok(AuditRow::for_user(self.policy(), &account, &state, |_| None));
        }
        let mut rows = Vec::new();
        for key in &state.keys {
            let mut finding = decide_key(self.policy(), &state, key, None);
            let mut creator = None;
            // Only flagged keys are looked up (CloudTrail allows 2 lookups a second): the creator turns a suspect
            // into a violation or a self-service key, and may exempt it.
            if let (true, Some(lookup)) = (finding.verdict().is_finding(), creators)
                && let Some(principal) = lookup.key_creator(&key.id).await?
            {
                finding = decide_key(self.policy(), &state, key, Some(&principal));
                creator = Some(principal.label());
            }
            let mut row = AuditRow::from_finding(&account, &state, &finding, creator.clone());
            if !finding.verdict().is_finding() {
                rows.push(row);
                continue;
            }
            row.last_used = self.iam().key_last_used(&key.id).await?;
            if options.dry_run {
                row.action = Action::DryRun;
                rows.push(row);
                continue;
            }
            let may_deactivate = (row.last_used.is_none() || options.include_used)
                && (creator.is_some() || options.deactivate_without_creator);
            let (finding, action) = self
                .enforce(CONTEXT, &state.name, finding, may_deactivate, |f, action| {
                    audit_facts(&account, &state, key, f, action)
                })
                .await?;
            let last_used = row.last_used;
            let creator_known = creator.is_some();
            row = AuditRow::from_finding(&account, &state, &finding, creator);
            row.last_used = last_used;
            row.action = action;
            if !may_deactivate
                && finding.verdict() == Verdict::Violation
                && self.mode() == keyguard_core::Mode::Deactivate
            {
                row.reason.push_str(if last_used.is_some() && !options.include_used {
                    "; the key has been used, so it was not deactivated (--include-used)"
                } else if !creator_known {
                    "; its creator is unknown, so it was not deactivated"
                } else {
                    ""
                });
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// Splits the listed users into rows the report settles and users to read. A user the report does not know,
    /// or created too shortly before it was generated for all their setup keys to be in it, is read.
    fn split_by_report(
        &self,
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
                    rows.extend(self.report_rows(&u))
                }
                _ => to_read.push(name.clone()),
            }
        }
        (rows, to_read)
    }

    /// Rows for a user the credential report already settles (no password, no key, or keys outside the window).
    /// The report does not give key ids: `access_key_id` stays null for these.
    fn report_rows(&self, user: &ReportUser) -> Vec<AuditRow> {
        let account = user.arn.split(':').nth(4).unwrap_or_default().to_string();
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
            return AuditRow::for_user(self.policy(), &account, &state, |_| None);
        }
        state
            .keys
            .iter()
            .map(|k| {
                let finding = decide_key(self.policy(), &state, k, None);
                let mut row =
                    AuditRow::from_finding(&account, &state, &Finding { access_key_id: None, ..finding }, None);
                row.key_created = Some(k.created);
                row.gap_seconds = Some(k.created.timestamp() - created.timestamp());
                row
            })
            .collect()
    }
}

fn audit_facts(account: &str, state: &UserState, key: &KeyState, finding: &Finding, action: Action) -> AlertFacts {
    AlertFacts {
        account: account.to_string(),
        user_name: state.name.clone(),
        user_arn: state.arn.clone(),
        user_created: state.created,
        access_key_id: key.id.clone(),
        key_created: key.created,
        has_password: state.password_created.is_some(),
        creator: None,
        source_ip: None,
        user_agent: None,
        event_id: CONTEXT.to_string(),
        event_name: "audit of the account's current state".to_string(),
        verdict: finding.verdict(),
        reason: finding.reason.to_string(),
        action,
    }
}
