//! The rule over an account's current state (`keyguard audit`, the Lambda's scheduled sweep) and the row that
//! audit and replay both print.
//!
//! The credential report gives the whole account in one document. Read beside the account's user listing (names,
//! paths, tags, creation), it settles most users without a call of their own; [`CredentialReport::plan`] says,
//! user by user, what must still be read live, by what the report's age lets it settle. What is read is decided by
//! the same [`decide_key`], with the creator unknown (so a key after the password is `suspect`).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::report::Action;
use crate::rule::{Finding, KeyState, Policy, Reason, UserState, Verdict, decide_key};
use crate::time::parse_time;

/// One line of `audit`/`replay` output: a key (or a user without keys) and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    pub account: String,
    pub user: String,
    pub access_key_id: Option<String>,
    pub verdict: Verdict,
    pub reason: String,
    pub user_created: DateTime<Utc>,
    pub key_created: Option<DateTime<Utc>>,
    /// Seconds from the user's creation to the key's.
    pub gap_seconds: Option<i64>,
    pub has_password: bool,
    /// Who created the key, when known (replay, or `--with-creators`).
    pub creator: Option<String>,
    /// When the key was last used; None when never (or not looked up).
    pub last_used: Option<DateTime<Utc>>,
    pub action: Action,
}

impl AuditRow {
    /// Rows for one user: each key decided (creator from `creator_of`, None when unknown), or one row without a key.
    pub fn for_user(
        policy: &Policy,
        account: &str,
        state: &UserState,
        creator_of: impl Fn(&str) -> Option<crate::event::Principal>,
    ) -> Vec<AuditRow> {
        if state.keys.is_empty() {
            let reason = if state.password_created.is_some() { Reason::NoKeys } else { Reason::NoPassword };
            return vec![AuditRow::from_finding(account, state, &Finding { access_key_id: None, reason }, None)];
        }
        state
            .keys
            .iter()
            .map(|key| {
                let creator = creator_of(&key.id);
                let finding = decide_key(policy, state, key, creator.as_ref());
                AuditRow::from_finding(account, state, &finding, creator.map(|c| c.label()))
            })
            .collect()
    }

    pub fn from_finding(account: &str, state: &UserState, finding: &Finding, creator: Option<String>) -> AuditRow {
        let key = finding.access_key_id.as_deref().and_then(|id| state.keys.iter().find(|k| k.id == id));
        AuditRow {
            account: account.to_string(),
            user: state.name.clone(),
            access_key_id: finding.access_key_id.clone(),
            verdict: finding.verdict(),
            reason: finding.reason.to_string(),
            user_created: state.created,
            key_created: key.map(|k| k.created),
            gap_seconds: key.map(|k| k.created.timestamp() - state.created.timestamp()),
            has_password: state.password_created.is_some(),
            creator,
            last_used: None,
            action: Action::None,
        }
    }
}

/// What an audit could not read: a whole account (its member role could not be assumed, ListUsers failed), or one
/// user of it. Reported beside the rows in every output format, never dropped: an account that was not audited
/// must not read as a clean one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditFailure {
    pub account: String,
    /// The user, when only that user could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub error: String,
}

/// One access key slot of a credential report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportKey {
    pub active: bool,
    /// `access_key_N_last_rotated`: the key's creation time (DESIGN.md §2).
    pub created: DateTime<Utc>,
    /// `access_key_N_last_used_date`; None when never used (`N/A`).
    pub last_used: Option<DateTime<Utc>>,
}

/// One user's line of the IAM credential report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportUser {
    pub user: String,
    pub arn: String,
    pub created: Option<DateTime<Utc>>,
    pub password_enabled: bool,
    /// `password_last_changed`: when the password was last set, i.e. its creation or a later change; never before
    /// its creation. None when the report says `N/A`.
    pub password_last_set: Option<DateTime<Utc>>,
    pub password_last_used: Option<DateTime<Utc>>,
    /// Key slots 1 and 2 that hold a key.
    pub keys: Vec<ReportKey>,
}

impl ReportUser {
    /// The newest time this line shows: the report was generated after it.
    fn newest(&self) -> Option<DateTime<Utc>> {
        let keys = self.keys.iter().flat_map(|k| [Some(k.created), k.last_used]);
        [self.created, self.password_last_set, self.password_last_used].into_iter().chain(keys).flatten().max()
    }

    fn is_setup_key(&self, user: &UserState, key: &ReportKey, window: TimeDelta) -> bool {
        key.created.timestamp() - user.created.timestamp() <= window.num_seconds()
    }

    /// The user as this line shows them: the listing's name, path and tags, the report's password and keys (without
    /// ids: the report has none). The password's date stands in for its creation only where [`order_settled`] says
    /// so; settled rows never compare it.
    fn state(&self, user: &UserState, has_password: bool) -> UserState {
        UserState {
            password_created: has_password.then(|| self.password_last_set.unwrap_or(user.created)),
            keys: self
                .keys
                .iter()
                .map(|k| KeyState { id: String::new(), created: k.created, active: k.active })
                .collect(),
            ..user.clone()
        }
    }

    /// Rows for a user the report settles (`user` is the listing's view of them). `has_password` is the report's
    /// `password_enabled`, or what a live read found since. `access_key_id` stays null: the report gives no ids.
    pub fn rows(&self, policy: &Policy, account: &str, user: &UserState, has_password: bool) -> Vec<AuditRow> {
        let state = self.state(user, has_password);
        if state.keys.is_empty() {
            return AuditRow::for_user(policy, account, &state, |_| None);
        }
        state
            .keys
            .iter()
            .zip(&self.keys)
            .map(|(key, slot)| {
                let finding = decide_key(policy, &state, key, None);
                let mut row =
                    AuditRow::from_finding(account, &state, &Finding { access_key_id: None, ..finding }, None);
                row.key_created = Some(key.created);
                row.gap_seconds = Some(key.created.timestamp() - state.created.timestamp());
                row.last_used = slot.last_used;
                row
            })
            .collect()
    }

    /// When the key created at `key_created` was last used, as far as the report settles it: `Some(Some(t))` once
    /// used (a key stays used), `Some(None)` for a key a fresh report shows unused, `None` when the report cannot
    /// tell (an older report showing it unused may predate its first use; two keys created in the same second
    /// cannot be told apart; a key the report does not show).
    pub fn last_use(&self, key_created: DateTime<Utc>, age: ReportAge) -> Option<Option<DateTime<Utc>>> {
        let mut same = self.keys.iter().filter(|k| k.created.timestamp() == key_created.timestamp());
        let (Some(key), None) = (same.next(), same.next()) else { return None };
        match (key.last_used, age) {
            (Some(used), _) => Some(Some(used)),
            (None, ReportAge::Fresh) => Some(None),
            (None, ReportAge::AsOf(_)) => None,
        }
    }
}

/// Whether the report's `password_last_changed` (`password_set`) settles the order of a key and the password, so
/// that GetLoginProfile need not be read. The password was created at or after its user and at or before
/// `password_set`: a key after `password_set` came after the password; a key in its user's own second came no later
/// than the password (a key in its password's second counts as before it). Between the two, only the password's
/// own creation date tells.
pub fn order_settled(user_created: DateTime<Utc>, password_set: DateTime<Utc>, key_created: DateTime<Utc>) -> bool {
    key_created.timestamp() > password_set.timestamp() || key_created.timestamp() <= user_created.timestamp()
}

/// How far a credential report can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportAge {
    /// This audit's own `GenerateCredentialReport` call started it (`STARTED`): a snapshot taken while the audit
    /// runs, as current as reading each user would be. It settles everything it shows.
    Fresh,
    /// Generated before this audit (`COMPLETE` or `INPROGRESS` at its first call: up to 4 hours old). It shows the
    /// account as it was at this time: `GeneratedTime`, raised to the newest time the report itself shows (a report
    /// cannot show what happened after it; this also corrects an emulator's fixed `GeneratedTime`).
    AsOf(DateTime<Utc>),
}

/// What must be read live of one listed user, given the credential report ([`CredentialReport::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The report settles every key of the user: rows from it ([`ReportUser::rows`]), no call.
    Settled,
    /// An older report shows setup keys and no password: GetLoginProfile first. Still none, the report's rows
    /// stand (one call); one now (added since, the event lost), the keys are read too.
    PasswordFirst,
    /// The report flags the user: ListAccessKeys (the key ids, each key's status now). The password's date is
    /// `password_set` (a fresh report's `password_last_changed`) wherever [`order_settled`] allows, and
    /// GetLoginProfile's otherwise (always when None).
    Keys { password_set: Option<DateTime<Utc>> },
    /// The report cannot speak for the user (created or re-created since, or younger than the window when an older
    /// report was generated): the password and the keys are read.
    Everything,
}

/// The credential report, parsed, with what its age lets it settle.
#[derive(Debug, Clone)]
pub struct CredentialReport {
    by_name: HashMap<String, ReportUser>,
    pub age: ReportAge,
}

impl CredentialReport {
    /// `generated` is `GetCredentialReport`'s `GeneratedTime`; `fresh` when this audit's own call started it.
    pub fn new(mut users: Vec<ReportUser>, generated: DateTime<Utc>, fresh: bool) -> CredentialReport {
        // IAM leaves `password_last_changed` N/A for a user without a password; moto 5.2.5 writes the user's
        // creation there for every user. A date for a password that does not exist means nothing and is dropped.
        // For a user with a password it is when the password was last set (moto: the user's creation, which is
        // also the CreateDate its GetLoginProfile gives), so it still bounds the password's creation from above.
        for u in users.iter_mut().filter(|u| !u.password_enabled) {
            u.password_last_set = None;
        }
        let newest = users.iter().filter_map(ReportUser::newest).max();
        let age =
            if fresh { ReportAge::Fresh } else { ReportAge::AsOf(newest.map_or(generated, |n| n.max(generated))) };
        // IAM user names are unique case-insensitively.
        let by_name = users.into_iter().map(|u| (u.user.to_lowercase(), u)).collect();
        CredentialReport { by_name, age }
    }

    /// The report's line for the listed user, if it is about this very user: the same name and the same creation
    /// second (a user deleted and re-created under the same name since is another user).
    pub fn line(&self, user: &UserState) -> Option<&ReportUser> {
        self.by_name
            .get(&user.name.to_lowercase())
            .filter(|line| line.created.is_some_and(|c| c.timestamp() == user.created.timestamp()))
    }

    /// What must be read live of `user` (the listing's view: name, path, tags, creation; no password, no keys).
    ///
    /// The rules (each tested below, with aws-smithy-mocks in keyguard-aws/tests/audit_report.rs and on moto):
    /// - A user the report has no line for (created after it, or re-created since) is read in full.
    /// - A fresh report settles everything it shows. A user is read only when the rule, applied to the report's
    ///   password and keys with the listing's exemptions and no creator, flags a key or finds it exempt (an exempt
    ///   would-be violation is reported too, with its key id); and, when `read_inactive`, for an inactive setup key
    ///   of a console user (the ledger may owe its alert; without the listing's tags an exemption may hide behind
    ///   it). Such a user costs ListAccessKeys, and GetLoginProfile only where the password's date decides.
    /// - An older report, as of time G, settles what cannot have changed since G:
    ///   * a key's creation time never changes, so whether a key it shows is a setup key stays settled;
    ///   * a user older than the window at G (created + window < G) has all their setup keys in it: a key created
    ///     since is outside the window. A younger user is read in full;
    ///   * a user without a setup key is settled whatever happened to the password since (the password only
    ///     matters for setup keys);
    ///   * a password can have been added, removed or re-created since, and a key's status changed: a user with a
    ///     setup key is read, GetLoginProfile first when the report shows no password (most such users are service
    ///     accounts, and one call tells that they still have none); else the password and the keys.
    pub fn plan(&self, user: &UserState, policy: &Policy, read_inactive: bool) -> Plan {
        let Some(line) = self.line(user) else { return Plan::Everything };
        let window = policy.window;
        match self.age {
            ReportAge::Fresh => {
                let state = line.state(user, line.password_enabled);
                let flagged = state.keys.iter().any(|k| {
                    let finding = decide_key(policy, &state, k, None);
                    finding.verdict().is_finding()
                        || finding.verdict() == Verdict::Exempt
                        || (read_inactive && finding.reason == Reason::AlreadyInactive)
                });
                match (flagged, line.password_last_set) {
                    (false, _) => Plan::Settled,
                    (true, password_set) => Plan::Keys { password_set },
                }
            }
            ReportAge::AsOf(generated) => {
                if user.created.timestamp() + window.num_seconds() >= generated.timestamp() {
                    return Plan::Everything;
                }
                if !line.keys.iter().any(|k| line.is_setup_key(user, k, window)) {
                    Plan::Settled
                } else if !line.password_enabled {
                    Plan::PasswordFirst
                } else {
                    Plan::Keys { password_set: None }
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The credential report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credential report: {0}")]
pub struct ReportError(String);

/// Parses the credential report (CSV). The root account's row (`<root_account>`) is left out: root is out of scope.
/// Times that are not times (`N/A`, `no_information`, `not_supported`) read as None.
pub fn parse_credential_report(csv_text: &str) -> Result<Vec<ReportUser>, ReportError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv_text.as_bytes());
    let headers = reader.headers().map_err(|e| ReportError(e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(user), Some(arn), Some(created), Some(password)) =
        (column("user"), column("arn"), column("user_creation_time"), column("password_enabled"))
    else {
        return Err(ReportError("missing one of the columns user, arn, user_creation_time, password_enabled".into()));
    };
    let (password_changed, password_used) = (column("password_last_changed"), column("password_last_used"));
    let slots: Vec<[Option<usize>; 3]> = (1..=2)
        .map(|n| {
            [
                column(&format!("access_key_{n}_active")),
                column(&format!("access_key_{n}_last_rotated")),
                column(&format!("access_key_{n}_last_used_date")),
            ]
        })
        .collect();
    let mut users = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ReportError(e.to_string()))?;
        let field = |i: usize| record.get(i).unwrap_or("");
        let time = |i: Option<usize>| i.and_then(|i| parse_time(field(i)));
        if field(user) == "<root_account>" {
            continue;
        }
        let keys = slots
            .iter()
            .filter_map(|[active, rotated, used]| {
                let created = time(*rotated)?; // "N/A": no key in this slot
                Some(ReportKey {
                    active: active.map(|a| field(a) == "true").unwrap_or(false),
                    created,
                    last_used: time(*used),
                })
            })
            .collect();
        users.push(ReportUser {
            user: field(user).to_string(),
            arn: field(arn).to_string(),
            created: parse_time(field(created)),
            password_enabled: field(password) == "true",
            password_last_set: time(password_changed),
            password_last_used: time(password_used),
            keys,
        });
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exempt::Exemptions;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    const REPORT: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated
<root_account>,arn:aws:iam::111122223333:root,2020-01-01T00:00:00+00:00,not_supported,2025-03-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
maria.silva,arn:aws:iam::111122223333:user/maria.silva,2025-03-11T14:02:07+00:00,true,N/A,2025-03-11T14:02:08+00:00,N/A,false,true,2025-03-11T14:03:15+00:00,N/A,N/A,N/A,true,2025-04-01T09:00:00+00:00,2025-04-02T10:00:00+00:00,us-east-1,s3,false,N/A,false,N/A
svc-etl,arn:aws:iam::111122223333:user/service/svc-etl,2025-03-12T10:20:31+00:00,false,N/A,N/A,N/A,false,true,2025-03-12T10:21:05+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
\"odd,name\",\"arn:aws:iam::111122223333:user/odd,name\",2025-03-12T10:20:31+00:00,true,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
";

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    /// A report line: `password` is `password_last_changed` (None: no password); keys are (active, created, used).
    fn line(user: &str, created: &str, password: Option<&str>, keys: &[(bool, &str, Option<&str>)]) -> String {
        let slot = |i: usize| match keys.get(i) {
            Some((active, created, used)) => format!("{active},{created},{},N/A,N/A", used.unwrap_or("N/A")),
            None => "false,N/A,N/A,N/A,N/A".to_string(),
        };
        format!(
            "{user},arn:aws:iam::111122223333:user/{user},{created},{},{},{},N/A,false,{},{},false,N/A,false,N/A",
            password.is_some(),
            if password.is_some() { "no_information" } else { "N/A" },
            password.unwrap_or("N/A"),
            slot(0),
            slot(1)
        )
    }

    fn report(lines: &[String], generated: &str, fresh: bool) -> CredentialReport {
        let csv = format!("{HEADER}\n{}\n", lines.join("\n"));
        CredentialReport::new(parse_credential_report(&csv).unwrap(), t(generated), fresh)
    }

    fn listed(name: &str, created: &str, tags: &[(&str, &str)]) -> UserState {
        UserState {
            name: name.to_string(),
            user_id: None,
            arn: None,
            path: "/".into(),
            created: t(created),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            password_created: None,
            keys: Vec::new(),
        }
    }

    fn policy() -> Policy {
        Policy { window: TimeDelta::minutes(10), exemptions: Exemptions::none() }
    }

    const USER: &str = "2025-03-11T14:00:00Z";
    const SETUP: &str = "2025-03-11T14:01:00Z";
    const LATER: &str = "2025-03-12T09:00:00Z";

    #[test]
    fn reads_users_keys_passwords_and_last_use_and_skips_root() {
        let users = parse_credential_report(REPORT).unwrap();
        assert_eq!(users.iter().map(|u| u.user.as_str()).collect::<Vec<_>>(), ["maria.silva", "svc-etl", "odd,name"]);
        let maria = &users[0];
        assert_eq!(maria.keys.len(), 2);
        assert!(maria.password_enabled);
        assert_eq!(maria.password_last_set, Some(t("2025-03-11T14:02:08Z")));
        assert_eq!(maria.keys[0].last_used, None, "N/A: never used");
        assert_eq!(maria.keys[1].last_used, Some(t("2025-04-02T10:00:00Z")));
        assert_eq!(users[1].password_last_set, None);
        assert!(users[2].keys.is_empty());
    }

    #[test]
    fn a_report_without_its_columns_is_an_error() {
        assert!(parse_credential_report("a,b\n1,2\n").is_err());
    }

    #[test]
    fn an_older_report_is_at_least_as_new_as_the_newest_time_it_shows() {
        // moto's GeneratedTime is fixed in 2015; the report cannot predate what it shows.
        let r = report(&[line("u", USER, Some(USER), &[(true, SETUP, Some(LATER))])], "2015-02-02T20:02:02Z", false);
        assert_eq!(r.age, ReportAge::AsOf(t(LATER)), "the key's last use is the newest time shown");
        let r = report(&[line("u", USER, None, &[])], "2026-01-01T00:00:00Z", false);
        assert_eq!(r.age, ReportAge::AsOf(t("2026-01-01T00:00:00Z")), "a later GeneratedTime stands");
        assert_eq!(report(&[], "2015-02-02T20:02:02Z", true).age, ReportAge::Fresh);
    }

    #[test]
    fn a_user_the_report_does_not_know_is_read_in_full() {
        let r = report(&[line("maria", USER, Some(USER), &[])], LATER, true);
        assert_eq!(r.plan(&listed("kenji", USER, &[]), &policy(), false), Plan::Everything, "created since");
        let recreated = listed("maria", "2025-03-12T08:00:00Z", &[]);
        assert_eq!(r.plan(&recreated, &policy(), false), Plan::Everything, "deleted and re-created since");
        assert_eq!(r.plan(&listed("MARIA", USER, &[]), &policy(), false), Plan::Settled, "names match in any case");
    }

    #[test]
    fn a_fresh_report_settles_everything_it_shows() {
        let r = report(
            &[
                line("svc", USER, None, &[(true, SETUP, None)]),
                line("outside", USER, Some(USER), &[(true, LATER, None)]),
                line("nokeys", USER, Some(USER), &[]),
                line("maria", USER, Some("2025-03-11T14:00:30Z"), &[(true, SETUP, None)]),
                line("idle", USER, Some(USER), &[(false, SETUP, None)]),
            ],
            LATER,
            true,
        );
        let p = policy();
        let plan = |name: &str| r.plan(&listed(name, USER, &[]), &p, false);
        assert_eq!(plan("svc"), Plan::Settled, "a setup key but no password: compliant, no call");
        assert_eq!(plan("outside"), Plan::Settled);
        assert_eq!(plan("nokeys"), Plan::Settled);
        assert_eq!(plan("maria"), Plan::Keys { password_set: Some(t("2025-03-11T14:00:30Z")) });
        assert_eq!(plan("idle"), Plan::Settled, "an inactive setup key is compliant");
        assert_eq!(
            r.plan(&listed("idle", USER, &[]), &p, true),
            Plan::Keys { password_set: Some(t(USER)) },
            "unless the ledger may owe its alert"
        );
        // An exempt would-be finding is reported with its key id: read, even when the key is inactive.
        let tagged = listed("idle", USER, &[("keyguard:exempt", "true")]);
        assert!(matches!(r.plan(&tagged, &p, false), Plan::Keys { .. }));
        let rows =
            r.line(&listed("svc", USER, &[])).unwrap().rows(&p, "111122223333", &listed("svc", USER, &[]), false);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].verdict, rows[0].access_key_id.as_deref()), (Verdict::Compliant, None));
        assert_eq!(rows[0].reason, "user has no console password");
        assert_eq!(rows[0].key_created, Some(t(SETUP)));
    }

    #[test]
    fn an_older_report_settles_only_what_cannot_have_changed_since() {
        let generated = "2025-03-11T16:00:00Z";
        let r = report(
            &[
                line("svc", USER, None, &[(true, SETUP, None)]),
                line("maria", USER, Some(USER), &[(true, SETUP, None)]),
                line("idle", USER, Some(USER), &[(false, SETUP, None)]),
                line("outside", USER, None, &[(true, "2025-03-11T15:00:00Z", None)]),
                line("nokeys", USER, None, &[]),
                line("young", "2025-03-11T15:55:00Z", Some("2025-03-11T15:55:00Z"), &[]),
            ],
            generated,
            false,
        );
        let p = policy();
        let plan = |name: &str, created: &str| r.plan(&listed(name, created, &[]), &p, false);
        assert_eq!(plan("svc", USER), Plan::PasswordFirst, "a password may have been added since");
        assert_eq!(plan("maria", USER), Plan::Keys { password_set: None }, "removed or re-created since");
        assert_eq!(plan("idle", USER), Plan::Keys { password_set: None }, "re-enabled since");
        assert_eq!(plan("outside", USER), Plan::Settled, "no setup key then, none possible since");
        assert_eq!(plan("nokeys", USER), Plan::Settled, "a key created since is outside the window");
        assert_eq!(plan("young", "2025-03-11T15:55:00Z"), Plan::Everything, "a setup key may have come since");
    }

    #[test]
    fn a_date_for_an_absent_password_is_dropped_and_a_present_ones_kept() {
        // moto 5.2.5 writes each user's creation as `password_last_changed`, password or not.
        let svc = format!(
            "svc,arn:aws:iam::111122223333:user/svc,{USER},false,not_supported,{USER},N/A,false,true,{SETUP},N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
        );
        let maria = line("maria", USER, Some(USER), &[(true, SETUP, None)]);
        let csv = format!("{HEADER}\n{svc}\n{maria}\n");
        let users = parse_credential_report(&csv).unwrap();
        assert_eq!(users[0].password_last_set, Some(t(USER)), "as the report says");
        let r = CredentialReport::new(users, t(LATER), true);
        assert_eq!(r.line(&listed("svc", USER, &[])).unwrap().password_last_set, None, "no password, no date");
        assert_eq!(r.plan(&listed("maria", USER, &[]), &policy(), false), Plan::Keys { password_set: Some(t(USER)) });
    }

    #[test]
    fn the_password_last_set_settles_the_order_only_outside_its_span() {
        let (user, set) = (t(USER), t("2025-03-11T14:05:00Z"));
        assert!(order_settled(user, set, t("2025-03-11T14:05:01Z")), "after the last set: after the password");
        assert!(order_settled(user, set, user), "in the user's own second: not after the password");
        assert!(!order_settled(user, set, t("2025-03-11T14:05:00Z")), "in the span: the creation date tells");
        assert!(!order_settled(user, set, t("2025-03-11T14:00:01Z")));
    }

    #[test]
    fn last_use_is_settled_once_used_and_by_a_fresh_report_when_unused() {
        let csv = format!(
            "{HEADER}\n{}\n{}\n",
            line("u", USER, Some(USER), &[(true, SETUP, Some(LATER)), (true, "2025-03-11T14:02:00Z", None)]),
            line("twins", USER, Some(USER), &[(true, SETUP, None), (true, SETUP, Some(LATER))])
        );
        let users = parse_credential_report(&csv).unwrap();
        let (u, twins) = (&users[0], &users[1]);
        let old = ReportAge::AsOf(t(LATER));
        assert_eq!(u.last_use(t(SETUP), old), Some(Some(t(LATER))), "a key stays used");
        assert_eq!(u.last_use(t("2025-03-11T14:02:00Z"), ReportAge::Fresh), Some(None));
        assert_eq!(u.last_use(t("2025-03-11T14:02:00Z"), old), None, "unused then, maybe used since");
        assert_eq!(u.last_use(t("2025-03-11T14:03:00Z"), ReportAge::Fresh), None, "not in the report");
        assert_eq!(twins.last_use(t(SETUP), ReportAge::Fresh), None, "two keys of one second");
    }
}
