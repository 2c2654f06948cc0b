//! An in-memory twin of the AWS that KeyGuard talks to, behind the same ports as the SDK adapters (cargo feature
//! `twin`: for tests, never in the Lambda).
//!
//! - **IAM**: users (id, ARN, path, tags, console password) with at most two access keys each (status, creation,
//!   last use, and a secret only the test side ever sees), dated by a clock the test moves. The test acts on IAM as
//!   people and pipelines do ([`Twin::create_user`], [`Twin::create_access_key`], ...) and gets back, for each
//!   call, the EventBridge event CloudTrail would have delivered.
//! - **A lagging view** ([`Lag`]): KeyGuard's reads see IAM as it was some writes ago, or some time ago, as IAM's
//!   eventual consistency does right after a change; KeyGuard's own write (`UpdateAccessKey`) lands on the newest
//!   state, as IAM's does.
//! - **SNS** (every alert published, checked against SNS's limits), **the ledger** (the DynamoDB adapter's
//!   semantics: upserts, `if_not_exists` stamps, a set of alert kinds sent), **the sweep queue**, and an outlet
//!   that records every delivery.
//! - **Failure injection by schedule** ([`Twin::inject`]): the n-th call of an operation from now fails with a
//!   given [`AwsErrorKind`] before its effect, or "crashes" after it (the effect stays and the caller gets an error,
//!   as when the answer to a request that went through is lost). No panics: a crash is an error return.
//!
//! Every call KeyGuard makes through the twin is logged ([`Twin::calls`]) so that tests can count them.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use futures::future::BoxFuture;
use keyguard_core::{Alert, Config, ConfigError, KeyState, Principal};
use serde_json::{Value, json};

use crate::accounts::OneAccount;
use crate::error::{AwsError, AwsErrorKind};
use crate::ports::{
    AccountReader, AlertPublisher, Deactivation, Delivery, IamReader, KeyDeactivator, KeyRecord, Ledger, Outlet,
    OwedAlert, ReportDocument, SweepQueue, UserListing, UserRecord,
};
use crate::service::{Consistency, Guard};

/// The guard over the twin: every port in memory.
pub type TwinGuard = Guard<OneAccount<TwinIam>, TwinLedger, TwinSns, TwinQueue>;

/// A call KeyGuard makes through a port of the twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    GetUser,
    GetLoginProfile,
    ListAccessKeys,
    GetAccessKeyLastUsed,
    UpdateAccessKey,
    ListUsers,
    CredentialReport,
    ListAccountAliases,
    Publish,
    LedgerKey,
    LedgerRecordCreator,
    LedgerOwe,
    LedgerSent,
    SweepSend,
}

impl Op {
    /// Every operation, for tests that walk them all.
    pub const ALL: [Op; 14] = [
        Op::GetUser,
        Op::GetLoginProfile,
        Op::ListAccessKeys,
        Op::GetAccessKeyLastUsed,
        Op::UpdateAccessKey,
        Op::ListUsers,
        Op::CredentialReport,
        Op::ListAccountAliases,
        Op::Publish,
        Op::LedgerKey,
        Op::LedgerRecordCreator,
        Op::LedgerOwe,
        Op::LedgerSent,
        Op::SweepSend,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::GetUser => "iam:GetUser",
            Op::GetLoginProfile => "iam:GetLoginProfile",
            Op::ListAccessKeys => "iam:ListAccessKeys",
            Op::GetAccessKeyLastUsed => "iam:GetAccessKeyLastUsed",
            Op::UpdateAccessKey => "iam:UpdateAccessKey",
            Op::ListUsers => "iam:ListUsers",
            Op::CredentialReport => "iam:GetCredentialReport",
            Op::ListAccountAliases => "iam:ListAccountAliases",
            Op::Publish => "sns:Publish",
            Op::LedgerKey => "ledger:key",
            Op::LedgerRecordCreator => "ledger:record_creator",
            Op::LedgerOwe => "ledger:owe",
            Op::LedgerSent => "ledger:sent",
            Op::SweepSend => "sqs:SendMessage",
        }
    }

    /// Whether the call changes something (the others only read).
    pub fn has_effect(self) -> bool {
        matches!(
            self,
            Op::UpdateAccessKey
                | Op::Publish
                | Op::LedgerRecordCreator
                | Op::LedgerOwe
                | Op::LedgerSent
                | Op::SweepSend
        )
    }
}

/// How an injected failure strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The call fails before it has any effect, with an error of this kind.
    Before(AwsErrorKind),
    /// The call takes effect, then its caller gets an error (`Other`): a request that went through and whose answer
    /// was lost.
    After,
}

/// How far behind the newest IAM state KeyGuard's reads are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lag {
    /// Reads see every write.
    #[default]
    None,
    /// Reads see IAM as it was this many writes ago.
    Writes(usize),
    /// Reads see a write once this much time has passed on the twin's clock since it was made.
    For(TimeDelta),
}

/// What became of one call through the twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Failed before its effect (an injected failure, or the service's own error such as SNS's limits).
    Failed,
    /// Took effect, then failed (an injected crash).
    Crashed,
}

/// One call KeyGuard made: the operation, what it was about (a user, a key, a subject), and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    pub subject: String,
    pub outcome: Outcome,
}

/// A user as the twin's IAM holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwinUser {
    pub name: String,
    pub user_id: String,
    pub arn: String,
    pub path: String,
    pub created: DateTime<Utc>,
    pub tags: Vec<(String, String)>,
    /// When the console password was created.
    pub password: Option<DateTime<Utc>>,
    pub keys: Vec<TwinKey>,
}

/// An access key as the twin's IAM holds it (its secret is kept apart, see [`Twin::secrets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwinKey {
    pub id: String,
    pub created: DateTime<Utc>,
    pub active: bool,
    pub last_used: Option<DateTime<Utc>>,
}

/// A key just created: its id, its secret (the test side's only), and the event CloudTrail would deliver.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub secret: String,
    pub event: Value,
}

/// IAM allows two access keys per user.
const MAX_KEYS: usize = 2;
/// SNS refuses a message larger than 256 KiB, and a subject that is not printable ASCII under 100 characters.
const SNS_MAX_MESSAGE: usize = 256 * 1024;
const SNS_MAX_SUBJECT: usize = 99;

/// IAM's state: users by lower-cased name (IAM names are unique case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct IamState {
    users: BTreeMap<String, TwinUser>,
}

impl IamState {
    fn user(&self, name: &str) -> Option<&TwinUser> {
        self.users.get(&name.to_lowercase())
    }

    fn user_mut(&mut self, name: &str) -> Option<&mut TwinUser> {
        self.users.get_mut(&name.to_lowercase())
    }
}

#[derive(Debug, Clone)]
struct Rule {
    op: Op,
    /// Call numbers of `op`, counted since the twin was made.
    calls: RangeInclusive<u32>,
    failure: Failure,
}

struct World {
    account: String,
    alias: Option<String>,
    now: DateTime<Utc>,
    /// IAM after each write, oldest first (the first is the empty account), with the time of the write.
    versions: Vec<(DateTime<Utc>, IamState)>,
    lag: Lag,
    seq: u64,
    rules: Vec<Rule>,
    counts: BTreeMap<Op, u32>,
    calls: Vec<Call>,
    published: Vec<Alert>,
    deliveries: Vec<Delivery>,
    ledger: BTreeMap<(String, String), KeyRecord>,
    queued: Vec<String>,
    /// Keys KeyGuard switched from Active to Inactive, in order: (user, key).
    deactivations: Vec<(String, String)>,
    secrets: Vec<String>,
}

impl World {
    fn current(&self) -> &IamState {
        // `versions` always holds the empty account first.
        &self.versions[self.versions.len() - 1].1
    }

    /// What KeyGuard's reads see now.
    fn view(&self) -> &IamState {
        let newest = self.versions.len() - 1;
        match self.lag {
            Lag::None => self.current(),
            Lag::Writes(n) => &self.versions[newest.saturating_sub(n)].1,
            Lag::For(delay) => {
                let seen_until = self.now.checked_sub_signed(delay).unwrap_or(DateTime::<Utc>::MIN_UTC);
                self.versions.iter().rev().find(|(at, _)| *at <= seen_until).map_or(&self.versions[0].1, |(_, s)| s)
            }
        }
    }

    /// Applies a change to the newest state, as a new version dated now.
    fn write<T>(&mut self, change: impl FnOnce(&mut IamState) -> Result<T, AwsError>) -> Result<T, AwsError> {
        let mut next = self.current().clone();
        let out = change(&mut next)?;
        if &next != self.current() {
            self.versions.push((self.now, next));
        }
        Ok(out)
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The injected failure for the `nth` call of `op`, if any.
    fn failure(&self, op: Op, nth: u32) -> Option<Failure> {
        self.rules.iter().rev().find(|r| r.op == op && r.calls.contains(&nth)).map(|r| r.failure)
    }

    /// An EventBridge event of a successful IAM call, as CloudTrail delivers it (us-east-1, the default bus).
    fn event(&mut self, name: &str, by: &Principal, request: Value, response: Value) -> Value {
        let n = self.next();
        let at = self.now.to_rfc3339_opts(SecondsFormat::Secs, true);
        json!({
            "version": "0", "id": format!("twin-envelope-{n}"), "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.iam", "account": self.account, "time": at, "region": "us-east-1", "resources": [],
            "detail": {
                "eventVersion": "1.11", "userIdentity": identity(by), "eventTime": at,
                "eventSource": "iam.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
                "sourceIPAddress": "198.51.100.24", "userAgent": "aws-cli/2.24.10 keyguard-twin",
                "requestParameters": request, "responseElements": response, "requestID": format!("twin-request-{n}"),
                "eventID": format!("twin-event-{n:06}"), "readOnly": false, "eventType": "AwsApiCall",
                "managementEvent": true, "recipientAccountId": self.account, "eventCategory": "Management"
            }
        })
    }
}

/// CloudTrail's `userIdentity` for a principal.
fn identity(p: &Principal) -> Value {
    let mut id = json!({"type": p.kind, "principalId": "AIDATWINCALLER", "arn": p.arn, "accountId": p.account_id});
    if let Some(name) = &p.user_name {
        id["userName"] = json!(name);
        id["accessKeyId"] = json!("AKIATWINCALLER000001");
    }
    if let Some(issuer) = &p.issuer_arn {
        id["accessKeyId"] = json!("ASIATWINCALLER000001");
        id["sessionContext"] = json!({"sessionIssuer": {"type": "Role", "arn": issuer, "accountId": p.account_id},
            "attributes": {"creationDate": "2025-03-11T13:55:41Z", "mfaAuthenticated": "false"}});
    }
    if let Some(by) = &p.invoked_by {
        id["invokedBy"] = json!(by);
    }
    id
}

/// CloudTrail's `responseElements` date style: `Mar 11, 2025 2:03:15 PM`.
fn iam_date(t: DateTime<Utc>) -> String {
    t.format("%b %-d, %Y %-I:%M:%S %p").to_string()
}

/// An IAM user as a caller (`userIdentity.type = IAMUser`).
pub fn iam_user(account: &str, name: &str) -> Principal {
    Principal {
        kind: "IAMUser".into(),
        arn: Some(format!("arn:aws:iam::{account}:user/{name}")),
        account_id: Some(account.into()),
        user_name: Some(name.into()),
        issuer_arn: None,
        invoked_by: None,
    }
}

/// A session of a role as a caller (`AssumedRole`), e.g. a provisioning pipeline.
pub fn assumed_role(account: &str, role: &str) -> Principal {
    Principal {
        kind: "AssumedRole".into(),
        arn: Some(format!("arn:aws:sts::{account}:assumed-role/{role}/session-1")),
        account_id: Some(account.into()),
        user_name: None,
        issuer_arn: Some(format!("arn:aws:iam::{account}:role/{role}")),
        invoked_by: None,
    }
}

/// An IAM error as the SDK adapter maps it.
fn iam_error(operation: &'static str, code: &str, message: String) -> AwsError {
    AwsError::new(operation, Some(code), format!("{code}: {message}"))
}

fn injected(op: Op, kind: AwsErrorKind, nth: u32) -> AwsError {
    let code = match kind {
        AwsErrorKind::NotFound => "NoSuchEntity",
        AwsErrorKind::Throttled => "Throttling",
        AwsErrorKind::AccessDenied => "AccessDenied",
        // The caller's environment (credentials, region, network) has no error code of its own: the kind says it.
        _ => "ServiceFailure",
    };
    let mut e = AwsError::new(op.name(), Some(code), format!("{code}: injected by the twin (call {nth})"));
    e.kind = kind;
    e
}

/// A secret access key's shape: 40 characters of the base64 alphabet (splitmix64 of a counter: deterministic).
fn secret_for(seq: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..40)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ALPHABET[(z % 64) as usize] as char
        })
        .collect()
}

/// The twin: one account's IAM, SNS, ledger and sweep queue, shared by every handle cloned from it.
#[derive(Clone)]
pub struct Twin {
    world: Arc<Mutex<World>>,
}

impl Twin {
    /// An empty account whose clock starts at `now`.
    pub fn new(account: &str, now: DateTime<Utc>) -> Twin {
        let world = World {
            account: account.to_string(),
            alias: None,
            now,
            versions: vec![(DateTime::<Utc>::MIN_UTC, IamState::default())],
            lag: Lag::None,
            seq: 0,
            rules: Vec::new(),
            counts: BTreeMap::new(),
            calls: Vec::new(),
            published: Vec::new(),
            deliveries: Vec::new(),
            ledger: BTreeMap::new(),
            queued: Vec::new(),
            deactivations: Vec::new(),
            secrets: Vec::new(),
        };
        Twin { world: Arc::new(Mutex::new(world)) }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // Nothing panics while holding the lock; if a test thread did, the world is still consistent enough to read.
        self.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn account(&self) -> String {
        self.lock().account.clone()
    }

    pub fn set_alias(&self, alias: Option<&str>) {
        self.lock().alias = alias.map(str::to_string);
    }

    // -- the clock and the view ----------------------------------------------------------------------------------

    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut w = self.lock();
        w.now = w.now.checked_add_signed(by).unwrap_or(w.now);
    }

    /// Moves the clock to `at` (never backwards).
    pub fn advance_to(&self, at: DateTime<Utc>) {
        let mut w = self.lock();
        w.now = w.now.max(at);
    }

    pub fn set_lag(&self, lag: Lag) {
        self.lock().lag = lag;
    }

    // -- failure injection ---------------------------------------------------------------------------------------

    /// From now on, the calls of `op` numbered `calls` (1 is the next call) fail as `failure`. A later rule for the
    /// same call wins.
    pub fn inject(&self, op: Op, calls: RangeInclusive<u32>, failure: Failure) {
        let mut w = self.lock();
        let base = w.counts.get(&op).copied().unwrap_or(0);
        let calls = base.saturating_add(*calls.start())..=base.saturating_add(*calls.end());
        w.rules.push(Rule { op, calls, failure });
    }

    /// The `nth` call of `op` from now fails before its effect.
    pub fn fail(&self, op: Op, nth: u32, kind: AwsErrorKind) {
        self.inject(op, nth..=nth, Failure::Before(kind));
    }

    /// The `nth` call of `op` from now takes effect, then fails.
    pub fn crash(&self, op: Op, nth: u32) {
        self.inject(op, nth..=nth, Failure::After);
    }

    /// Every injected failure is forgotten.
    pub fn heal(&self) {
        self.lock().rules.clear();
    }

    /// One call through a port: counted, logged, failed or crashed by schedule, else `effect` on the world.
    fn call<T>(
        &self,
        op: Op,
        subject: &str,
        effect: impl FnOnce(&mut World) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let mut w = self.lock();
        let nth = {
            let n = w.counts.entry(op).or_insert(0);
            *n += 1;
            *n
        };
        let (result, outcome) = match w.failure(op, nth) {
            Some(Failure::Before(kind)) => (Err(injected(op, kind, nth)), Outcome::Failed),
            Some(Failure::After) => {
                let _ = effect(&mut w);
                let lost = AwsError::new(
                    op.name(),
                    None,
                    format!("the call took effect but its answer was lost (injected by the twin, call {nth})"),
                );
                (Err(lost), Outcome::Crashed)
            }
            None => {
                let result = effect(&mut w);
                let outcome = if result.is_ok() { Outcome::Ok } else { Outcome::Failed };
                (result, outcome)
            }
        };
        w.calls.push(Call { op, subject: subject.to_string(), outcome });
        result
    }

    // -- IAM, as people and pipelines act on it (no lag, no faults: this is the world, not KeyGuard) -------------

    /// CreateUser, and its event.
    pub fn create_user(
        &self,
        by: &Principal,
        name: &str,
        path: Option<&str>,
        tags: &[(&str, &str)],
    ) -> Result<Value, AwsError> {
        let mut w = self.lock();
        let n = w.next();
        let (account, now) = (w.account.clone(), w.now);
        let path = path.unwrap_or("/").to_string();
        let user = TwinUser {
            name: name.to_string(),
            user_id: format!("AIDATWIN{n:013}"),
            arn: format!("arn:aws:iam::{account}:user{path}{name}"),
            path: path.clone(),
            created: now,
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            password: None,
            keys: Vec::new(),
        };
        let created = user.clone();
        w.write(|iam| {
            if iam.user(name).is_some() {
                return Err(iam_error(
                    "iam:CreateUser",
                    "EntityAlreadyExists",
                    format!("User with name {name} already exists."),
                ));
            }
            iam.users.insert(name.to_lowercase(), created);
            Ok(())
        })?;
        let tags_json: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        Ok(w.event(
            "CreateUser",
            by,
            json!({"userName": name, "path": path, "tags": tags_json}),
            json!({"user": {"path": user.path, "userName": name, "userId": user.user_id, "arn": user.arn,
                            "createDate": iam_date(now), "tags": tags_json}}),
        ))
    }

    /// CreateLoginProfile (a console password), and its event.
    pub fn create_login_profile(&self, by: &Principal, name: &str) -> Result<Value, AwsError> {
        let mut w = self.lock();
        let now = w.now;
        w.write(|iam| {
            let user = iam.user_mut(name).ok_or_else(|| no_user("iam:CreateLoginProfile", name))?;
            if user.password.is_some() {
                return Err(iam_error(
                    "iam:CreateLoginProfile",
                    "EntityAlreadyExists",
                    format!("Login Profile for user {name} already exists."),
                ));
            }
            user.password = Some(now);
            Ok(())
        })?;
        Ok(w.event(
            "CreateLoginProfile",
            by,
            json!({"userName": name, "passwordResetRequired": true}),
            json!({"loginProfile": {"userName": name, "createDate": iam_date(now), "passwordResetRequired": true}}),
        ))
    }

    /// CreateAccessKey for `name` by `by` (self-service when `by` is that IAM user: the event then names no user,
    /// as CloudTrail's does), and its event. The secret is returned to the caller alone, as IAM does.
    pub fn create_access_key(&self, by: &Principal, name: &str) -> Result<NewKey, AwsError> {
        let mut w = self.lock();
        let n = w.next();
        let now = w.now;
        let id = format!("AKIATWIN{n:012}");
        let secret = secret_for(n);
        let key = TwinKey { id: id.clone(), created: now, active: true, last_used: None };
        let user_name = w.write(|iam| {
            let user = iam.user_mut(name).ok_or_else(|| no_user("iam:CreateAccessKey", name))?;
            if user.keys.len() >= MAX_KEYS {
                return Err(iam_error(
                    "iam:CreateAccessKey",
                    "LimitExceeded",
                    format!("Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS}"),
                ));
            }
            user.keys.push(key);
            Ok(user.name.clone())
        })?;
        w.secrets.push(secret.clone());
        let request = if by.is_iam_user(name) { Value::Null } else { json!({"userName": user_name}) };
        // CloudTrail never records the secret: the response elements name the key, not its secret.
        let event = w.event(
            "CreateAccessKey",
            by,
            request,
            json!({"accessKey": {"userName": user_name, "accessKeyId": id, "status": "Active",
                                 "createDate": iam_date(now)}}),
        );
        Ok(NewKey { id, secret, event })
    }

    /// UpdateAccessKey by someone other than KeyGuard (e.g. a user re-enabling a key), and its event.
    pub fn update_access_key(&self, by: &Principal, name: &str, key: &str, active: bool) -> Result<Value, AwsError> {
        let mut w = self.lock();
        w.write(|iam| {
            let k = iam.user_mut(name).and_then(|u| u.keys.iter_mut().find(|k| k.id == key));
            let k = k.ok_or_else(|| no_key("iam:UpdateAccessKey", name, key))?;
            k.active = active;
            Ok(())
        })?;
        let status = if active { "Active" } else { "Inactive" };
        Ok(w.event("UpdateAccessKey", by, json!({"userName": name, "accessKeyId": key, "status": status}), Value::Null))
    }

    /// DeleteAccessKey, and its event.
    pub fn delete_access_key(&self, by: &Principal, name: &str, key: &str) -> Result<Value, AwsError> {
        let mut w = self.lock();
        w.write(|iam| {
            let user = iam.user_mut(name).ok_or_else(|| no_key("iam:DeleteAccessKey", name, key))?;
            let before = user.keys.len();
            user.keys.retain(|k| k.id != key);
            if user.keys.len() == before {
                return Err(no_key("iam:DeleteAccessKey", name, key));
            }
            Ok(())
        })?;
        Ok(w.event("DeleteAccessKey", by, json!({"userName": name, "accessKeyId": key}), Value::Null))
    }

    /// DeleteLoginProfile, and its event.
    pub fn delete_login_profile(&self, by: &Principal, name: &str) -> Result<Value, AwsError> {
        let mut w = self.lock();
        w.write(|iam| {
            let user = iam.user_mut(name).ok_or_else(|| no_user("iam:DeleteLoginProfile", name))?;
            user.password.take().map(|_| ()).ok_or_else(|| {
                iam_error("iam:DeleteLoginProfile", "NoSuchEntity", format!("Login profile for {name} not found"))
            })
        })?;
        Ok(w.event("DeleteLoginProfile", by, json!({"userName": name}), Value::Null))
    }

    /// DeleteUser, and its event. As in IAM, a user with keys or a password cannot be deleted (`DeleteConflict`).
    pub fn delete_user(&self, by: &Principal, name: &str) -> Result<Value, AwsError> {
        let mut w = self.lock();
        w.write(|iam| {
            let user = iam.user(name).ok_or_else(|| no_user("iam:DeleteUser", name))?;
            if !user.keys.is_empty() || user.password.is_some() {
                return Err(iam_error(
                    "iam:DeleteUser",
                    "DeleteConflict",
                    format!("Cannot delete entity, must delete access keys and login profile first ({name})."),
                ));
            }
            iam.users.remove(&name.to_lowercase());
            Ok(())
        })?;
        Ok(w.event("DeleteUser", by, json!({"userName": name}), Value::Null))
    }

    /// A request signed with the key: IAM records its last use.
    pub fn use_key(&self, key: &str) -> Result<(), AwsError> {
        let mut w = self.lock();
        let now = w.now;
        w.write(|iam| {
            let k = iam.users.values_mut().flat_map(|u| u.keys.iter_mut()).find(|k| k.id == key);
            k.map(|k| k.last_used = Some(now)).ok_or_else(|| no_key("iam:GetAccessKeyLastUsed", "?", key))
        })
    }

    // -- what happened -------------------------------------------------------------------------------------------

    /// The user as IAM holds it now (no lag).
    pub fn user(&self, name: &str) -> Option<TwinUser> {
        self.lock().current().user(name).cloned()
    }

    /// Every user as IAM holds it now, by lower-cased name.
    pub fn users(&self) -> BTreeMap<String, TwinUser> {
        self.lock().current().users.clone()
    }

    pub fn key(&self, user: &str, key: &str) -> Option<TwinKey> {
        self.user(user).and_then(|u| u.keys.into_iter().find(|k| k.id == key))
    }

    /// Every alert published, in order.
    pub fn alerts(&self) -> Vec<Alert> {
        self.lock().published.clone()
    }

    /// Every decision handed to the outlets, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    /// Every call KeyGuard made, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// How many calls of `op` KeyGuard made.
    pub fn count(&self, op: Op) -> u32 {
        self.lock().counts.get(&op).copied().unwrap_or(0)
    }

    /// The keys KeyGuard switched from Active to Inactive, in order, as (user, key): a key appears twice only if it
    /// was re-enabled in between and deactivated again.
    pub fn deactivations(&self) -> Vec<(String, String)> {
        self.lock().deactivations.clone()
    }

    pub fn ledger_record(&self, key: &str) -> Option<KeyRecord> {
        let w = self.lock();
        w.ledger.get(&(w.account.clone(), key.to_string())).cloned()
    }

    /// The sweep queue's messages.
    pub fn queued(&self) -> Vec<String> {
        self.lock().queued.clone()
    }

    /// Every secret access key IAM handed out (to look for them where they must never be).
    pub fn secrets(&self) -> Vec<String> {
        self.lock().secrets.clone()
    }

    // -- the ports -----------------------------------------------------------------------------------------------

    pub fn iam(&self) -> TwinIam {
        TwinIam { twin: self.clone() }
    }

    pub fn sns(&self) -> TwinSns {
        TwinSns { twin: self.clone() }
    }

    pub fn ledger(&self) -> TwinLedger {
        TwinLedger { twin: self.clone() }
    }

    pub fn queue(&self) -> TwinQueue {
        TwinQueue { twin: self.clone() }
    }

    pub fn outlet(&self) -> TwinOutlet {
        TwinOutlet { twin: self.clone() }
    }

    /// The configuration from `vars`, with a topic in this account unless `vars` name one. Set
    /// `KEYGUARD_LEDGER_TABLE` (any valid name) for the guard to have the twin's ledger, `KEYGUARD_SWEEP_QUEUE_URL`
    /// for its sweep queue.
    pub fn config(&self, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let topic = format!("arn:aws:sns:us-east-1:{}:keyguard-twin", self.account());
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .or_else(|| (name == "KEYGUARD_TOPIC_ARN").then(|| topic.clone()))
        })
    }

    /// The guard over the twin: its clock, no waiting on IAM (one read; an object missing from a young event's
    /// view is `NotYetConsistent`, as after the deployed guard's re-reads), and the recording outlet.
    pub fn guard(&self, config: &Config) -> Result<TwinGuard, ConfigError> {
        let ledger = config.ledger_table.as_ref().map(|_| self.ledger());
        let queue = config.sweep_queue_url.as_ref().map(|_| self.queue());
        let alerts = config.topic_arn.as_ref().map(|_| self.sns());
        let clock = self.clone();
        let guard = Guard::new(OneAccount::new(self.account(), self.iam()), ledger, alerts, queue, config)?
            .with_consistency(Consistency { reads: 1, first_delay: Duration::ZERO, horizon: TimeDelta::seconds(60) })
            .with_clock(move || clock.now())
            .with_outlet(Arc::new(self.outlet()));
        Ok(guard)
    }
}

fn no_user(operation: &'static str, name: &str) -> AwsError {
    iam_error(operation, "NoSuchEntity", format!("The user with name {name} cannot be found."))
}

fn no_key(operation: &'static str, name: &str, key: &str) -> AwsError {
    iam_error(operation, "NoSuchEntity", format!("The Access Key with id {key} of user {name} cannot be found."))
}

/// The twin's IAM, as KeyGuard reads it (through the lagging view) and writes it. What does not exist reads as
/// `Ok(None)`, as the SDK adapter reads IAM's `NoSuchEntity`.
#[derive(Clone)]
pub struct TwinIam {
    twin: Twin,
}

impl IamReader for TwinIam {
    async fn get_user(&self, user: &str) -> Result<Option<UserRecord>, AwsError> {
        self.twin.call(Op::GetUser, user, |w| {
            Ok(w.view().user(user).map(|u| UserRecord {
                name: u.name.clone(),
                user_id: u.user_id.clone(),
                arn: u.arn.clone(),
                path: u.path.clone(),
                created: u.created,
                tags: u.tags.clone(),
            }))
        })
    }

    async fn get_login_profile(&self, user: &str) -> Result<Option<DateTime<Utc>>, AwsError> {
        self.twin.call(Op::GetLoginProfile, user, |w| Ok(w.view().user(user).and_then(|u| u.password)))
    }

    async fn list_access_keys(&self, user: &str) -> Result<Option<Vec<KeyState>>, AwsError> {
        self.twin.call(Op::ListAccessKeys, user, |w| {
            Ok(w.view().user(user).map(|u| {
                u.keys.iter().map(|k| KeyState { id: k.id.clone(), created: k.created, active: k.active }).collect()
            }))
        })
    }

    async fn key_last_used(&self, access_key_id: &str) -> Result<Option<DateTime<Utc>>, AwsError> {
        self.twin.call(Op::GetAccessKeyLastUsed, access_key_id, |w| {
            let key = w.view().users.values().flat_map(|u| u.keys.iter()).find(|k| k.id == access_key_id);
            Ok(key.and_then(|k| k.last_used))
        })
    }
}

impl KeyDeactivator for TwinIam {
    async fn deactivate(&self, user: &str, access_key_id: &str) -> Result<Deactivation, AwsError> {
        self.twin.call(Op::UpdateAccessKey, access_key_id, |w| {
            let exists = w.current().user(user).is_some_and(|u| u.keys.iter().any(|k| k.id == access_key_id));
            if !exists {
                return Ok(Deactivation::Gone);
            }
            let switched = w.write(|iam| {
                let key = iam.user_mut(user).and_then(|u| u.keys.iter_mut().find(|k| k.id == access_key_id));
                Ok(key.map(|k| std::mem::replace(&mut k.active, false)).unwrap_or(false))
            })?;
            if switched {
                let name = w.current().user(user).map(|u| u.name.clone()).unwrap_or_else(|| user.to_string());
                w.deactivations.push((name, access_key_id.to_string()));
            }
            Ok(Deactivation::Done)
        })
    }
}

impl AccountReader for TwinIam {
    /// The twin has no credential report: the audit then reads every user, as when a report cannot be had.
    async fn credential_report(&self) -> Result<Option<ReportDocument>, AwsError> {
        self.twin.call(Op::CredentialReport, "", |_| Ok(None))
    }

    /// Every user with path and tags, as GetAccountAuthorizationDetails gives them (counted as `Op::ListUsers`).
    async fn users(&self) -> Result<UserListing, AwsError> {
        self.twin.call(Op::ListUsers, "", |w| {
            let users = w
                .view()
                .users
                .values()
                .map(|u| UserRecord {
                    name: u.name.clone(),
                    user_id: u.user_id.clone(),
                    arn: u.arn.clone(),
                    path: u.path.clone(),
                    created: u.created,
                    tags: u.tags.clone(),
                })
                .collect();
            Ok(UserListing { users, tags: true })
        })
    }

    async fn account_alias(&self) -> Result<Option<String>, AwsError> {
        self.twin.call(Op::ListAccountAliases, "", |w| Ok(w.alias.clone()))
    }
}

/// The twin's SNS topic: records every alert, refusing what SNS refuses.
#[derive(Clone)]
pub struct TwinSns {
    twin: Twin,
}

impl AlertPublisher for TwinSns {
    async fn publish(&self, alert: &Alert) -> Result<String, AwsError> {
        self.twin.call(Op::Publish, &alert.subject, |w| {
            let subject_ok = !alert.subject.is_empty()
                && alert.subject.len() <= SNS_MAX_SUBJECT
                && alert.subject.bytes().all(|b| (0x20..=0x7e).contains(&b));
            if !subject_ok {
                return Err(AwsError::new(
                    "sns:Publish",
                    Some("InvalidParameter"),
                    "Invalid parameter: Subject".into(),
                ));
            }
            let message = alert.sns_message();
            if message.len() > SNS_MAX_MESSAGE {
                return Err(AwsError::new(
                    "sns:Publish",
                    Some("InvalidParameter"),
                    "Invalid parameter: Message too long".into(),
                ));
            }
            w.published.push(alert.clone());
            Ok(format!("twin-message-{}", w.published.len()))
        })
    }
}

/// The twin's ledger, with the DynamoDB adapter's semantics (see [`crate::ledger`]).
#[derive(Clone)]
pub struct TwinLedger {
    twin: Twin,
}

impl TwinLedger {
    fn update(
        &self,
        op: Op,
        account: &str,
        key: &str,
        user: &str,
        change: impl FnOnce(&mut KeyRecord),
    ) -> Result<(), AwsError> {
        self.twin.call(op, key, |w| {
            let record = w.ledger.entry((account.to_string(), key.to_string())).or_default();
            record.user = user.to_string();
            change(record);
            Ok(())
        })
    }
}

impl Ledger for TwinLedger {
    async fn key(&self, account: &str, access_key_id: &str) -> Result<Option<KeyRecord>, AwsError> {
        self.twin.call(Op::LedgerKey, access_key_id, |w| {
            Ok(w.ledger.get(&(account.to_string(), access_key_id.to_string())).cloned())
        })
    }

    async fn record_creator(
        &self,
        account: &str,
        access_key_id: &str,
        user: &str,
        creator: &Principal,
        created: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        self.update(Op::LedgerRecordCreator, account, access_key_id, user, |r| {
            r.creator = Some(creator.clone());
            r.created = Some(created);
        })
    }

    async fn owe(
        &self,
        account: &str,
        access_key_id: &str,
        user: &str,
        owed: &OwedAlert,
        deactivating: bool,
        at: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        self.update(Op::LedgerOwe, account, access_key_id, user, |r| {
            r.owed_alert = Some(owed.clone());
            if deactivating && r.deactivation_started.is_none() {
                r.deactivation_started = Some(at);
            }
        })
    }

    async fn sent(
        &self,
        account: &str,
        access_key_id: &str,
        user: &str,
        kind: &str,
        deactivated: bool,
        at: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        self.update(Op::LedgerSent, account, access_key_id, user, |r| {
            if deactivated && r.deactivated.is_none() {
                r.deactivated = Some(at);
            }
            r.owed_alert = None;
            if !r.sent.iter().any(|s| s == kind) {
                r.sent.push(kind.to_string());
            }
        })
    }
}

/// The twin's sweep queue.
#[derive(Clone)]
pub struct TwinQueue {
    twin: Twin,
}

impl SweepQueue for TwinQueue {
    async fn send(&self, bodies: &[String]) -> Result<(), AwsError> {
        self.twin.call(Op::SweepSend, "", |w| {
            w.queued.extend(bodies.iter().cloned());
            Ok(())
        })
    }
}

/// An outlet that records every delivery (what Security Hub or chat would receive).
#[derive(Clone)]
pub struct TwinOutlet {
    twin: Twin,
}

impl Outlet for TwinOutlet {
    fn name(&self) -> &'static str {
        "twin"
    }

    fn deliver<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.twin.lock().deliveries.push(delivery.clone());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use chrono::TimeZone;

    const ACCOUNT: &str = "111122223333";

    fn twin() -> Twin {
        Twin::new(ACCOUNT, Utc.with_ymd_and_hms(2025, 3, 11, 14, 0, 0).unwrap())
    }

    fn admin() -> Principal {
        iam_user(ACCOUNT, "jordan.admin")
    }

    #[tokio::test]
    async fn the_view_lags_by_writes_and_by_time() {
        let t = twin();
        t.create_user(&admin(), "maria", None, &[]).unwrap();
        t.create_login_profile(&admin(), "maria").unwrap();
        let iam = t.iam();
        t.set_lag(Lag::Writes(1));
        assert!(iam.get_user("maria").await.unwrap().is_some());
        assert_eq!(iam.get_login_profile("maria").await.unwrap(), None, "one write behind: no password yet");
        t.set_lag(Lag::For(TimeDelta::seconds(5)));
        assert_eq!(iam.get_user("maria").await.unwrap(), None, "written now, seen in 5 s");
        t.advance(TimeDelta::seconds(5));
        assert!(iam.get_login_profile("maria").await.unwrap().is_some());
        // KeyGuard's own write lands on the newest state even while its reads lag.
        let key = t.create_access_key(&admin(), "maria").unwrap();
        assert_eq!(iam.list_access_keys("maria").await.unwrap(), Some(vec![]));
        assert_eq!(iam.deactivate("maria", &key.id).await.unwrap(), Deactivation::Done);
        assert!(!t.key("maria", &key.id).unwrap().active);
        assert_eq!(t.deactivations(), [("maria".to_string(), key.id.clone())]);
        assert_eq!(iam.deactivate("maria", &key.id).await.unwrap(), Deactivation::Done);
        assert_eq!(t.deactivations().len(), 1, "a second UpdateAccessKey changes nothing");
        assert_eq!(iam.deactivate("maria", "AKIANOSUCHKEY0000000").await.unwrap(), Deactivation::Gone);
    }

    #[tokio::test]
    async fn failures_strike_the_nth_call_before_or_after_its_effect() {
        let t = twin();
        t.create_user(&admin(), "maria", None, &[]).unwrap();
        let key = t.create_access_key(&admin(), "maria").unwrap();
        let iam = t.iam();
        t.fail(Op::UpdateAccessKey, 2, AwsErrorKind::Throttled);
        t.crash(Op::UpdateAccessKey, 3);
        t.create_access_key(&admin(), "maria").unwrap();
        assert_eq!(iam.deactivate("maria", "AKIANOSUCHKEY0000000").await.unwrap(), Deactivation::Gone);
        let err = iam.deactivate("maria", &key.id).await.unwrap_err();
        assert_eq!(err.kind, AwsErrorKind::Throttled);
        assert!(t.key("maria", &key.id).unwrap().active, "failed before its effect");
        let err = iam.deactivate("maria", &key.id).await.unwrap_err();
        assert_eq!(err.kind, AwsErrorKind::Other);
        assert!(!t.key("maria", &key.id).unwrap().active, "crashed after its effect");
        let outcomes: Vec<Outcome> = t.calls().iter().map(|c| c.outcome).collect();
        assert_eq!(outcomes, [Outcome::Ok, Outcome::Failed, Outcome::Crashed]);
        t.heal();
        assert!(iam.deactivate("maria", &key.id).await.is_ok());
    }

    #[tokio::test]
    async fn iam_rules_hold_and_events_never_carry_the_secret() {
        let t = twin();
        let user = t.create_user(&admin(), "maria", Some("/people/"), &[("team", "a")]).unwrap();
        assert_eq!(user["detail"]["responseElements"]["user"]["arn"], "arn:aws:iam::111122223333:user/people/maria");
        assert!(t.create_user(&admin(), "MARIA", None, &[]).is_err(), "names are unique case-insensitively");
        let k1 = t.create_access_key(&admin(), "maria").unwrap();
        let k2 = t.create_access_key(&iam_user(ACCOUNT, "maria"), "maria").unwrap();
        assert!(k2.event["detail"]["requestParameters"].is_null(), "self-service names no user");
        assert!(t.create_access_key(&admin(), "maria").is_err(), "two keys at most");
        assert_eq!(k1.secret.len(), 40);
        assert_ne!(k1.secret, k2.secret);
        assert!(!k1.event.to_string().contains(&k1.secret));
        assert!(t.delete_user(&admin(), "maria").is_err(), "keys first");
        t.delete_access_key(&admin(), "maria", &k1.id).unwrap();
        t.delete_access_key(&admin(), "maria", &k2.id).unwrap();
        t.delete_user(&admin(), "maria").unwrap();
        assert!(t.user("maria").is_none());
        assert_eq!(t.secrets(), [k1.secret, k2.secret]);
    }
}
