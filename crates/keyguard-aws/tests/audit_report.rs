#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The audit's account-wide reads and what the credential report settles, by its age (keyguard-core's
//! `CredentialReport::plan` writes the rules out), over `aws-smithy-mocks` IAM clients: the SDK really serializes
//! each request, and every request is recorded with its action and user, so each test says exactly which calls a
//! user cost. Each account is audited twice, by the report and by reading every user (`credential_report: false`),
//! and the verdicts must agree.
//!
//! A world is two views of one account: `then`, as the credential report shows it, and `now`, as IAM answers live.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_iam::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_iam::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_iam::error::BoxError;
use aws_sdk_iam::operation::generate_credential_report::GenerateCredentialReportOutput;
use aws_sdk_iam::operation::get_access_key_last_used::GetAccessKeyLastUsedOutput;
use aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsOutput;
use aws_sdk_iam::operation::get_credential_report::GetCredentialReportOutput;
use aws_sdk_iam::operation::get_login_profile::GetLoginProfileOutput;
use aws_sdk_iam::operation::get_user::GetUserOutput;
use aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput;
use aws_sdk_iam::operation::list_account_aliases::ListAccountAliasesOutput;
use aws_sdk_iam::operation::list_users::ListUsersOutput;
use aws_sdk_iam::operation::update_access_key::UpdateAccessKeyOutput;
use aws_sdk_iam::types::{
    AccessKeyLastUsed, AccessKeyMetadata, LoginProfile, ReportStateType, StatusType, Tag, User, UserDetail,
};
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::retry::RetryConfig;
use chrono::{DateTime, TimeDelta, Utc};
use keyguard_aws::accounts::OneAccount;
use keyguard_aws::act::Valve;
use keyguard_aws::audit::{Options, Outcome};
use keyguard_aws::{DynamoLedger, Guard, SdkCloudTrail, SdkIam, SdkSns, SdkSweepQueue};
use keyguard_core::{Action, Config, ReportAge, Verdict};

const ACCOUNT: &str = "111122223333";
const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:keyguard";
const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// The accounts' users were set up around this time; the window is 10 minutes.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-11T14:00:00Z").unwrap().with_timezone(&Utc)
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(seconds)
}

const MIN: i64 = 60;
const HOUR: i64 = 3600;

#[derive(Debug, Clone)]
struct Key {
    id: &'static str,
    created: DateTime<Utc>,
    active: bool,
    used: Option<DateTime<Utc>>,
}

fn key(id: &'static str, created: DateTime<Utc>) -> Key {
    Key { id, created, active: true, used: None }
}

#[derive(Debug, Clone)]
struct U {
    name: &'static str,
    created: DateTime<Utc>,
    tags: Vec<(&'static str, &'static str)>,
    /// The login profile's creation, and when its password was last set (the report's `password_last_changed`).
    password: Option<(DateTime<Utc>, DateTime<Utc>)>,
    keys: Vec<Key>,
}

fn user(name: &'static str, created: DateTime<Utc>) -> U {
    U { name, created, tags: Vec::new(), password: None, keys: Vec::new() }
}

impl U {
    fn password(mut self, created: DateTime<Utc>) -> U {
        self.password = Some((created, created));
        self
    }
    fn password_changed(mut self, created: DateTime<Utc>, set: DateTime<Utc>) -> U {
        self.password = Some((created, set));
        self
    }
    fn key(mut self, k: Key) -> U {
        self.keys.push(k);
        self
    }
    fn tag(mut self, k: &'static str, v: &'static str) -> U {
        self.tags.push((k, v));
        self
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// The credential report of `users`, as IAM writes it.
fn report_csv(users: &[U]) -> String {
    let mut csv = String::from(
        "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n",
    );
    csv.push_str(&format!(
        "<root_account>,arn:aws:iam::{ACCOUNT}:root,2020-01-01T00:00:00+00:00,not_supported,N/A,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"
    ));
    for u in users {
        let slot = |i: usize| match u.keys.get(i) {
            Some(k) => format!(
                "{},{},{},{}",
                k.active,
                stamp(k.created),
                k.used.map_or("N/A".to_string(), stamp),
                if k.used.is_some() { "us-east-1,s3" } else { "N/A,N/A" }
            ),
            None => "false,N/A,N/A,N/A,N/A".to_string(),
        };
        csv.push_str(&format!(
            "{},arn:aws:iam::{ACCOUNT}:user/{},{},{},{},{},N/A,false,{},{},false,N/A,false,N/A\n",
            u.name,
            u.name,
            stamp(u.created),
            u.password.is_some(),
            if u.password.is_some() { "no_information" } else { "N/A" },
            u.password.map_or("N/A".to_string(), |(_, set)| stamp(set)),
            slot(0),
            slot(1),
        ));
    }
    csv
}

fn aws_time(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(t.timestamp())
}

fn query_error(code: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="{IAM_NS}"><Error><Type>Sender</Type><Code>{code}</Code><Message>{code} (test)</Message></Error><RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId></ErrorResponse>"#
    )
}

/// Every request sent, as (action, UserName or AccessKeyId), from the query body.
type Calls = Arc<Mutex<Vec<(String, String)>>>;

#[derive(Debug)]
struct Recorder(Calls);

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "AuditCallRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = String::from_utf8_lossy(context.request().body().bytes().unwrap_or_default()).into_owned();
        let param = |name: &str| body.split('&').find_map(|p| p.strip_prefix(name)).unwrap_or("").to_string();
        let subject = [param("UserName="), param("AccessKeyId=")].into_iter().find(|s| !s.is_empty());
        self.0.lock().unwrap().push((param("Action="), subject.unwrap_or_default()));
        Ok(())
    }
}

/// How the report answers: this audit starts it (`STARTED`, then `COMPLETE`), or it exists already (`COMPLETE`).
#[derive(Debug, Clone, Copy)]
enum Report {
    Fresh,
    Older { generated: DateTime<Utc> },
}

/// One account: the report shows `then`, IAM answers `now`.
struct World {
    then: Vec<U>,
    now: Vec<U>,
    report: Report,
    /// GetAccountAuthorizationDetails is denied (a role not updated yet): ListUsers, without tags.
    no_details: bool,
}

impl World {
    fn same(users: Vec<U>, report: Report) -> World {
        World { then: users.clone(), now: users, report, no_details: false }
    }

    fn rules(&self) -> Vec<Rule> {
        let mut rules = Vec::new();
        let now = self.now.clone();
        rules.push(if self.no_details {
            mock!(aws_sdk_iam::Client::get_account_authorization_details)
                .sequence()
                .http_status(403, Some(query_error("AccessDenied")))
                .repeatedly()
                .build()
        } else {
            let users = now.clone();
            mock!(aws_sdk_iam::Client::get_account_authorization_details).then_output(move || {
                let details = users
                    .iter()
                    .map(|u| {
                        let mut d = UserDetail::builder()
                            .user_name(u.name)
                            .user_id(format!("AIDA{}", u.name.to_uppercase()))
                            .arn(format!("arn:aws:iam::{ACCOUNT}:user/{}", u.name))
                            .path("/")
                            .create_date(aws_time(u.created));
                        for (k, v) in &u.tags {
                            d = d.tags(Tag::builder().key(*k).value(*v).build().unwrap());
                        }
                        d.build()
                    })
                    .collect();
                GetAccountAuthorizationDetailsOutput::builder()
                    .set_user_detail_list(Some(details))
                    .is_truncated(false)
                    .build()
            })
        });
        let users = now.clone();
        rules.push(mock!(aws_sdk_iam::Client::list_users).then_output(move || {
            let listed = users.iter().map(|u| aws_user(u, false)).collect();
            ListUsersOutput::builder().set_users(Some(listed)).is_truncated(false).build().unwrap()
        }));
        rules.push(match self.report {
            Report::Fresh => mock!(aws_sdk_iam::Client::generate_credential_report)
                .sequence()
                .output(|| GenerateCredentialReportOutput::builder().state(ReportStateType::Started).build())
                .output(|| GenerateCredentialReportOutput::builder().state(ReportStateType::Complete).build())
                .repeatedly()
                .build(),
            Report::Older { .. } => mock!(aws_sdk_iam::Client::generate_credential_report)
                .then_output(|| GenerateCredentialReportOutput::builder().state(ReportStateType::Complete).build()),
        });
        let generated = match self.report {
            // A fresh report is generated after the audit's call: any time after the users' set-up will do.
            Report::Fresh => at(30 * 24 * HOUR),
            Report::Older { generated } => generated,
        };
        let csv = report_csv(&self.then);
        rules.push(mock!(aws_sdk_iam::Client::get_credential_report).then_output(move || {
            GetCredentialReportOutput::builder()
                .content(aws_smithy_types::Blob::new(csv.as_bytes()))
                .report_format("text/csv".into())
                .generated_time(aws_time(generated))
                .build()
        }));
        rules.push(mock!(aws_sdk_iam::Client::list_account_aliases).then_output(|| {
            ListAccountAliasesOutput::builder().set_account_aliases(Some(vec![])).is_truncated(false).build().unwrap()
        }));
        for u in now {
            let name = u.name;
            let (one, two, three) = (u.clone(), u.clone(), u.clone());
            rules.push(
                mock!(aws_sdk_iam::Client::get_user)
                    .match_requests(move |r| r.user_name() == Some(name))
                    .then_output(move || GetUserOutput::builder().user(aws_user(&one, true)).build()),
            );
            rules.push(match two.password {
                Some((created, _)) => mock!(aws_sdk_iam::Client::get_login_profile)
                    .match_requests(move |r| r.user_name() == Some(name))
                    .then_output(move || {
                        let profile =
                            LoginProfile::builder().user_name(name).create_date(aws_time(created)).build().unwrap();
                        GetLoginProfileOutput::builder().login_profile(profile).build()
                    }),
                None => mock!(aws_sdk_iam::Client::get_login_profile)
                    .match_requests(move |r| r.user_name() == Some(name))
                    .sequence()
                    .http_status(404, Some(query_error("NoSuchEntity")))
                    .repeatedly()
                    .build(),
            });
            rules.push(
                mock!(aws_sdk_iam::Client::list_access_keys)
                    .match_requests(move |r| r.user_name() == Some(name))
                    .then_output(move || {
                        let keys = three
                            .keys
                            .iter()
                            .map(|k| {
                                AccessKeyMetadata::builder()
                                    .user_name(name)
                                    .access_key_id(k.id)
                                    .status(if k.active { StatusType::Active } else { StatusType::Inactive })
                                    .create_date(aws_time(k.created))
                                    .build()
                            })
                            .collect();
                        ListAccessKeysOutput::builder().set_access_key_metadata(Some(keys)).build().unwrap()
                    }),
            );
            for k in u.keys {
                rules.push(
                    mock!(aws_sdk_iam::Client::get_access_key_last_used)
                        .match_requests(move |r| r.access_key_id() == Some(k.id))
                        .then_output(move || {
                            let mut last = AccessKeyLastUsed::builder().service_name("N/A").region("N/A");
                            if let Some(used) = k.used {
                                last = last.last_used_date(aws_time(used)).service_name("s3");
                            }
                            GetAccessKeyLastUsedOutput::builder()
                                .user_name(name)
                                .access_key_last_used(last.build().unwrap())
                                .build()
                        }),
                );
            }
        }
        rules.push(
            mock!(aws_sdk_iam::Client::update_access_key).then_output(|| UpdateAccessKeyOutput::builder().build()),
        );
        rules
    }

    /// Audits the account (`by_report`: the fast path; else reading every user) in `mode`, acting when `apply`.
    async fn audit(&self, by_report: bool, mode: &str, apply: bool) -> Audited {
        let calls: Calls = Arc::new(Mutex::new(Vec::new()));
        let rules = self.rules();
        let refs: Vec<&Rule> = rules.iter().collect();
        let recorder = calls.clone();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &refs, move |c| c
            .retry_config(RetryConfig::disabled())
            .interceptor(Recorder(recorder.clone())));
        let publish = mock!(aws_sdk_sns::Client::publish)
            .then_output(|| PublishOutput::builder().message_id("6f1c4d2e-0000-4000-8000-00000000a1e7").build());
        let sns = mock_client!(aws_sdk_sns, RuleMode::MatchAny, &[&publish]);
        let vars =
            HashMap::from([("KEYGUARD_MODE", mode), ("KEYGUARD_TOPIC_ARN", TOPIC), ("KEYGUARD_SETUP_WINDOW", "10m")]);
        let config = Config::from_lookup(|name| vars.get(name).map(|v| v.to_string())).unwrap();
        let guard: Guard<OneAccount<SdkIam>, DynamoLedger, SdkSns, SdkSweepQueue> =
            Guard::new(OneAccount::new(ACCOUNT, SdkIam::new(iam)), None, Some(SdkSns::new(sns, TOPIC)), None, &config)
                .unwrap();
        let options = Options {
            credential_report: by_report,
            dry_run: !apply,
            may_deactivate: apply,
            deactivate_without_creator: apply,
            ..Options::default()
        };
        let outcome =
            guard.audit(ACCOUNT, &options, None::<&SdkCloudTrail>, &Valve::new("test", 10), &|_, _| ()).await.unwrap();
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let calls = calls.lock().unwrap().clone();
        let declared = keyguard_aws::required_actions();
        for (action, _) in &calls {
            assert!(declared.contains(&format!("iam:{action}").as_str()), "iam:{action} is not a declared permission");
        }
        Audited { outcome, calls }
    }
}

fn aws_user(u: &U, tags: bool) -> User {
    let mut b = User::builder()
        .user_name(u.name)
        .user_id(format!("AIDA{}", u.name.to_uppercase()))
        .arn(format!("arn:aws:iam::{ACCOUNT}:user/{}", u.name))
        .path("/")
        .create_date(aws_time(u.created));
    if tags {
        for (k, v) in &u.tags {
            b = b.tags(Tag::builder().key(*k).value(*v).build().unwrap());
        }
    }
    b.build().unwrap()
}

struct Audited {
    outcome: Outcome,
    calls: Vec<(String, String)>,
}

impl Audited {
    /// How many times `action` was sent.
    fn count(&self, action: &str) -> usize {
        self.calls.iter().filter(|(a, _)| a == action).count()
    }

    /// The per-user calls each user cost, by user: (action, ...) sorted.
    fn per_user(&self) -> BTreeMap<String, Vec<String>> {
        let mut by_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (action, subject) in &self.calls {
            if !subject.is_empty() {
                by_user.entry(subject.clone()).or_default().push(action.clone());
            }
        }
        by_user.values_mut().for_each(|v| v.sort());
        by_user
    }

    fn calls_of(&self, user: &str) -> Vec<String> {
        self.per_user().get(user).cloned().unwrap_or_default()
    }

    /// Each user's verdicts (with key ids where the row has one), for comparing the two paths.
    fn verdicts(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut by_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in &self.outcome.rows {
            by_user.entry(r.user.clone()).or_default().insert(r.verdict.as_str().to_string());
        }
        by_user
    }

    fn row(&self, user: &str, key: &str) -> &keyguard_core::AuditRow {
        self.outcome
            .rows
            .iter()
            .find(|r| r.user == user && r.access_key_id.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no row for {user} {key}: {:#?}", self.outcome.rows))
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Compares the fast path with reading every user: the same verdicts for every user; the same key ids and
/// verdicts for every key the fast path names.
async fn same_verdicts_as_reading_every_user(world: &World, fast: &Audited) {
    let full = world.audit(false, "dry-run", false).await;
    assert_eq!(full.count("GenerateCredentialReport"), 0, "--no-credential-report reads no report");
    assert_eq!(fast.verdicts(), full.verdicts());
    for r in fast.outcome.rows.iter().filter(|r| r.access_key_id.is_some()) {
        let same = full.row(&r.user, r.access_key_id.as_deref().unwrap());
        assert_eq!((r.verdict, &r.reason), (same.verdict, &same.reason), "{r:?}");
    }
}

#[tokio::test]
async fn a_fresh_report_settles_every_user_it_does_not_flag() {
    let world = World::same(
        vec![
            // Settled by the report: no call of their own.
            user("svc", at(0)).key(key("AKIASVC", at(30))),
            user("nokeys", at(0)).password(at(10)),
            user("outside", at(0)).password(at(0)).key(key("AKIAOUTSIDE", at(HOUR))),
            user("idle", at(0)).password(at(5)).key(Key { active: false, ..key("AKIAIDLE", at(40)) }),
            // Flagged, and the password's last set settles the order: ListAccessKeys alone.
            user("maria", at(0)).password(at(5)).key(key("AKIAMARIA", at(40))),
            user("instant", at(0)).password_changed(at(20), at(3 * HOUR)).key(key("AKIAINSTANT", at(0))),
            user("tagged", at(0)).tag("keyguard:exempt", "true").password(at(5)).key(key("AKIATAGGED", at(40))),
            // Flagged, and the key falls between the user and the password's last set: GetLoginProfile tells.
            user("terra", at(0)).password(at(30)).key(key("AKIATERRA", at(2))),
            user("changed", at(0)).password_changed(at(1), at(2 * HOUR)).key(key("AKIACHANGED", at(60))),
        ],
        Report::Fresh,
    );
    let fast = world.audit(true, "dry-run", false).await;
    assert_eq!(fast.outcome.report, Some(ReportAge::Fresh));
    for settled in ["svc", "nokeys", "outside", "idle"] {
        assert_eq!(fast.calls_of(settled), Vec::<String>::new(), "{settled}");
    }
    for one_call in ["maria", "instant", "tagged"] {
        assert_eq!(fast.calls_of(one_call), strings(&["ListAccessKeys"]), "{one_call}");
    }
    for two_calls in ["terra", "changed"] {
        assert_eq!(fast.calls_of(two_calls), strings(&["GetLoginProfile", "ListAccessKeys"]), "{two_calls}");
    }
    assert_eq!(fast.count("GetUser"), 0, "the listing has the tags");
    assert_eq!(fast.count("GetAccessKeyLastUsed"), 0, "a dry run decides nothing on last use");
    assert_eq!(fast.count("GetAccountAuthorizationDetails"), 1);
    assert_eq!(fast.count("GenerateCredentialReport"), 2, "STARTED, then COMPLETE");
    assert_eq!(fast.count("GetCredentialReport"), 1);
    assert_eq!(fast.outcome.users_read, 5);

    assert_eq!(fast.row("maria", "AKIAMARIA").verdict, Verdict::Suspect, "a key after the password");
    assert_eq!(fast.row("instant", "AKIAINSTANT").verdict, Verdict::Violation, "a key in its user's second");
    assert_eq!(fast.row("tagged", "AKIATAGGED").verdict, Verdict::Exempt);
    assert_eq!(fast.row("terra", "AKIATERRA").verdict, Verdict::Violation, "a key before the password");
    assert_eq!(fast.row("changed", "AKIACHANGED").verdict, Verdict::Suspect, "after the password's creation");
    same_verdicts_as_reading_every_user(&world, &fast).await;
}

#[tokio::test]
async fn an_older_report_settles_only_what_cannot_have_changed_since() {
    let generated = at(4 * HOUR);
    let g = |seconds: i64| generated + TimeDelta::seconds(seconds);
    let svc_added = user("svc-added", at(0)).key(key("AKIASVCADDED", at(20)));
    let password_gone = user("password-gone", at(0)).key(key("AKIAGONE", at(20)));
    let reenabled = user("reenabled", at(0)).password(at(30)).key(key("AKIAREENABLED", at(2)));
    let young = user("young", g(-5 * MIN)).password(g(-5 * MIN));
    let then = vec![
        user("svc", at(0)).key(key("AKIASVC", at(20))),
        svc_added.clone(),
        password_gone.clone().password(at(5)),
        user("maria", at(0)).password(at(5)).key(key("AKIAMARIA", at(40))),
        Key { active: false, ..key("AKIAREENABLED", at(2)) }.into_user(reenabled.clone()),
        user("outside", at(0)).key(key("AKIAOUTSIDE", at(HOUR))),
        user("nokeys", at(0)).password(at(5)),
        young.clone(),
        user("recreated", at(0)).password(at(0)),
    ];
    let now = vec![
        user("svc", at(0)).key(key("AKIASVC", at(20))),
        // A password added since, its CreateLoginProfile event lost: the sweep's reason to be.
        svc_added.password(g(HOUR)),
        password_gone,
        user("maria", at(0)).password(at(5)).key(key("AKIAMARIA", at(40))),
        reenabled,
        user("outside", at(0)).key(key("AKIAOUTSIDE", at(HOUR))),
        // Keys created since by users older than the window then are outside the window.
        user("nokeys", at(0)).password(at(5)).key(key("AKIANOKEYSLATER", g(MIN))),
        young.key(key("AKIAYOUNG", g(2 * MIN))),
        user("recreated", g(30 * MIN)).key(key("AKIARECREATED", g(30 * MIN + 5))).password(g(30 * MIN + 40)),
        user("new", g(HOUR)).password(g(HOUR)).key(key("AKIANEW", g(HOUR + 50))),
    ];
    let world = World { then, now, report: Report::Older { generated }, no_details: false };
    let fast = world.audit(true, "dry-run", false).await;
    assert_eq!(fast.outcome.report, Some(ReportAge::AsOf(generated)));
    for settled in ["outside", "nokeys"] {
        assert_eq!(fast.calls_of(settled), Vec::<String>::new(), "{settled}");
    }
    assert_eq!(fast.calls_of("svc"), strings(&["GetLoginProfile"]), "still no password: one call");
    for read in ["svc-added", "password-gone", "maria", "reenabled", "young", "recreated", "new"] {
        assert_eq!(fast.calls_of(read), strings(&["GetLoginProfile", "ListAccessKeys"]), "{read}");
    }
    assert_eq!(fast.row("svc-added", "AKIASVCADDED").verdict, Verdict::Violation, "key before the password");
    assert_eq!(fast.row("password-gone", "AKIAGONE").verdict, Verdict::Compliant);
    assert_eq!(fast.row("reenabled", "AKIAREENABLED").verdict, Verdict::Violation);
    assert_eq!(fast.row("young", "AKIAYOUNG").verdict, Verdict::Suspect);
    assert_eq!(fast.row("recreated", "AKIARECREATED").verdict, Verdict::Violation);
    assert_eq!(fast.row("new", "AKIANEW").verdict, Verdict::Suspect);
    assert!(!fast.outcome.rows.iter().any(|r| r.user == "nokeys" && r.verdict != Verdict::Compliant));
    same_verdicts_as_reading_every_user(&world, &fast).await;
}

#[tokio::test]
async fn an_older_report_is_as_new_as_the_newest_time_it_shows() {
    // moto's GeneratedTime is a fixed date in 2015. Taken as it is, every user would be younger than the report and
    // read in full; the newest time the report shows (a key used an hour after the set-up) dates it instead.
    let users = vec![
        user("outside", at(0)).password(at(0)).key(Key { used: Some(at(HOUR)), ..key("AKIAOUTSIDE", at(HOUR)) }),
        user("nokeys", at(0)).password(at(5)),
    ];
    let generated = DateTime::parse_from_rfc3339("2015-02-02T20:02:02Z").unwrap().with_timezone(&Utc);
    let world = World::same(users, Report::Older { generated });
    let fast = world.audit(true, "dry-run", false).await;
    assert_eq!(fast.outcome.report, Some(ReportAge::AsOf(at(HOUR))));
    assert_eq!(fast.outcome.users_read, 0, "{:?}", fast.per_user());
    same_verdicts_as_reading_every_user(&world, &fast).await;
}

#[tokio::test]
async fn apply_reads_last_use_only_where_the_report_cannot_settle_it() {
    // Violations (keys before the password) whose creator is unknown: `audit --apply` deactivates the unused ones.
    let violations = || {
        vec![
            user("unused", at(0)).password(at(30)).key(key("AKIAUNUSED", at(0))),
            user("used", at(0)).password(at(30)).key(Key { used: Some(at(HOUR)), ..key("AKIAUSED", at(0)) }),
        ]
    };
    let fresh = World::same(violations(), Report::Fresh).audit(true, "deactivate", true).await;
    assert_eq!(fresh.count("GetAccessKeyLastUsed"), 0, "the fresh report settles both: {:?}", fresh.calls);
    assert_eq!(fresh.row("unused", "AKIAUNUSED").action, Action::Deactivated);
    let used = fresh.row("used", "AKIAUSED");
    assert_eq!((used.action, used.last_used), (Action::Notified, Some(at(HOUR))));
    assert!(used.reason.contains("key in use"), "{used:?}");
    assert_eq!(fresh.calls_of("AKIAUSED"), Vec::<String>::new());
    assert_eq!(fresh.count("UpdateAccessKey"), 1);

    // An older report showing a key unused may predate its first use: that one key is looked up.
    let older_world = World::same(violations(), Report::Older { generated: at(2 * HOUR) });
    let older = older_world.audit(true, "deactivate", true).await;
    assert_eq!(older.calls_of("AKIAUNUSED"), strings(&["GetAccessKeyLastUsed"]));
    assert_eq!(older.calls_of("AKIAUSED"), Vec::<String>::new(), "a key stays used");
    assert_eq!(older.row("unused", "AKIAUNUSED").action, Action::Deactivated);
    assert_eq!(older.row("used", "AKIAUSED").action, Action::Notified);
}

#[tokio::test]
async fn without_account_authorization_details_users_read_live_are_read_with_get_user() {
    let users = vec![
        user("svc", at(0)).key(key("AKIASVC", at(30))),
        user("maria", at(0)).password(at(5)).key(key("AKIAMARIA", at(40))),
        user("tagged", at(0)).tag("keyguard:exempt", "true").password(at(5)).key(key("AKIATAGGED", at(40))),
        // Without the tags, an inactive setup key may belong to an exempt user: read.
        user("idle", at(0)).password(at(5)).key(Key { active: false, ..key("AKIAIDLE", at(40)) }),
    ];
    let world = World { no_details: true, ..World::same(users, Report::Fresh) };
    let fast = world.audit(true, "dry-run", false).await;
    assert_eq!(fast.count("ListUsers"), 1);
    assert_eq!(fast.calls_of("svc"), Vec::<String>::new());
    for read in ["maria", "tagged", "idle"] {
        assert_eq!(fast.calls_of(read), strings(&["GetUser", "ListAccessKeys"]), "{read}");
    }
    assert_eq!(fast.row("tagged", "AKIATAGGED").verdict, Verdict::Exempt, "GetUser's tags exempt the user");
    assert_eq!(fast.row("idle", "AKIAIDLE").verdict, Verdict::Compliant);
    same_verdicts_as_reading_every_user(&world, &fast).await;
}

impl Key {
    /// `u` with this key in place of its own.
    fn into_user(self, u: U) -> U {
        U { keys: vec![self], ..u }
    }
}
