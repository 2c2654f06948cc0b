//! CloudTrail archives with known answers, for `keyguard replay`'s tests and benchmark.
//!
//! Records look like the real ones (the fields, nesting and value styles of CloudTrail log files), in the S3
//! delivery layout ([`s3_key`]), each file a gzip'd `{"Records": [...]}` with its records shuffled (CloudTrail does
//! not order them). Unrelated calls (S3, EC2, STS, KMS, IAM reads and policy changes, failed calls) surround the
//! cases.
//!
//! [`Scenario::known_answers`] builds every case `replay` must get right, each with the row it must print.
//! [`bulk`] writes a large archive for the benchmark.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

pub const ACCOUNT_A: &str = "111122223333";
pub const ACCOUNT_B: &str = "444455556666";
/// The exemption flags the known-answer scenario's exempt users need.
pub const EXEMPT_FLAGS: [&str; 4] = ["--exempt-tag", "security:breakglass", "--exempt-paths", "/automation/"];

/// A small deterministic generator (splitmix64): archives are the same on every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
    /// `n` characters of IAM's id alphabet.
    pub fn id(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        (0..n).map(|_| ALPHABET[self.below(32) as usize] as char).collect()
    }
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// Who made a call, as `userIdentity` shows it.
#[derive(Debug, Clone)]
pub enum Who {
    /// An IAM user (an administrator, or a user acting for itself).
    User(String),
    /// An assumed role with a session name (automation).
    Role {
        role: String,
        session: String,
    },
    /// An IAM Identity Center administrator (`AWSReservedSSO_*`), signed in to the console.
    Sso(String),
    Root,
}

impl Who {
    pub fn admin() -> Who {
        Who::User("jordan.admin".into())
    }

    pub fn arn(&self, account: &str) -> String {
        match self {
            Who::User(n) => format!("arn:aws:iam::{account}:user/{n}"),
            Who::Role { role, session } => format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
            Who::Sso(n) => format!("arn:aws:sts::{account}:assumed-role/{SSO_ROLE}/{n}"),
            Who::Root => format!("arn:aws:iam::{account}:root"),
        }
    }

    fn identity(&self, account: &str, rng: &mut Rng) -> Value {
        let issuer = |role_arn: String, name: &str, rng: &mut Rng| {
            json!({"sessionIssuer": {"type": "Role", "principalId": format!("AROA{}", rng.id(17)), "arn": role_arn,
                                     "accountId": account, "userName": name},
                   "webIdFederationData": {},
                   "attributes": {"creationDate": "2025-03-10T07:55:41Z", "mfaAuthenticated": "false"}})
        };
        match self {
            Who::User(n) => json!({"type": "IAMUser", "principalId": format!("AIDA{}", rng.id(17)),
                "arn": self.arn(account), "accountId": account, "accessKeyId": format!("AKIA{}", rng.id(16)),
                "userName": n}),
            Who::Role { role, session } => json!({"type": "AssumedRole",
                "principalId": format!("AROA{}:{session}", rng.id(17)), "arn": self.arn(account), "accountId": account,
                "accessKeyId": format!("ASIA{}", rng.id(16)),
                "sessionContext": issuer(format!("arn:aws:iam::{account}:role/{role}"), role, rng)}),
            Who::Sso(n) => json!({"type": "AssumedRole", "principalId": format!("AROA{}:{n}", rng.id(17)),
                "arn": self.arn(account), "accountId": account, "accessKeyId": format!("ASIA{}", rng.id(16)),
                "sessionContext": issuer(
                    format!("arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/{SSO_ROLE}"), SSO_ROLE, rng)}),
            Who::Root => json!({"type": "Root", "principalId": account, "arn": self.arn(account),
                "accountId": account, "accessKeyId": format!("ASIA{}", rng.id(16)),
                "sessionContext": {"sessionIssuer": {}, "webIdFederationData": {},
                                   "attributes": {"creationDate": "2025-03-10T07:55:41Z",
                                                  "mfaAuthenticated": "true"}}}),
        }
    }
}

const SSO_ROLE: &str = "AWSReservedSSO_AdministratorAccess_4f7c2a9e1b3d5c60";

const USER_AGENTS: &[&str] = &[
    concat!(
        "aws-cli/2.24.10 md/awscrt#0.23.8 ua/2.1 os/linux#6.8.0 md/arch#x86_64 lang/python#3.12.9 md/pyimpl#CPython ",
        "cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.24 md/prompt#off md/command#iam.create-user"
    ),
    "AWS Internal",
    "console.amazonaws.com",
    concat!(
        "Boto3/1.37.1 md/Botocore#1.37.1 ua/2.0 os/linux#5.10.234-225.895.amzn2.x86_64 md/arch#x86_64 ",
        "lang/python#3.12.8 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.37.1"
    ),
    concat!(
        "terraform-provider-aws/5.89.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.36.1 ",
        "os/linux lang/go#1.23.6 md/GOOS#linux md/GOARCH#amd64 api/iam#1.39.1"
    ),
];

/// One record and where CloudTrail delivered it.
#[derive(Debug, Clone)]
pub struct Rec {
    pub account: String,
    pub region: String,
    /// When its file was delivered: records of one (account, region, delivery) share a file.
    pub delivered: DateTime<Utc>,
    pub body: Value,
}

/// A row `replay --format json` must print.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub account: String,
    pub user: String,
    pub access_key_id: String,
    pub verdict: String,
    pub creator: String,
}

/// Records plus the answers they imply.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub records: Vec<Rec>,
    pub expected: Vec<Expected>,
    rng: Rng,
}

/// CloudTrail's `responseElements` date style: `Mar 11, 2025 2:03:15 PM`.
fn iam_date(t: DateTime<Utc>) -> String {
    t.format("%b %-d, %Y %-I:%M:%S %p").to_string()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Day `d` (0 = Monday 2025-03-10) at `h:m:s`, UTC.
pub fn day(d: i64, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 10, h, m, s).single().unwrap_or_default() + Duration::days(d)
}

/// CloudTrail delivers a file about every 5 minutes: the end of the record's 5-minute slot, plus a few minutes.
fn delivery(t: DateTime<Utc>) -> DateTime<Utc> {
    let slot = t.timestamp() - t.timestamp().rem_euclid(300) + 300 + 180;
    DateTime::from_timestamp(slot, 0).unwrap_or(t)
}

impl Scenario {
    pub fn new(seed: u64) -> Scenario {
        Scenario { records: Vec::new(), expected: Vec::new(), rng: Rng::new(seed) }
    }

    /// A CloudTrail record of a call; `error` makes it a failed one.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        account: &str,
        region: &str,
        who: &Who,
        at: DateTime<Utc>,
        source: &str,
        name: &str,
        request: Value,
        response: Value,
        error: Option<(&str, &str)>,
    ) -> Value {
        let rng = &mut self.rng;
        let mut r = json!({
            "eventVersion": "1.11", "userIdentity": who.identity(account, rng), "eventTime": rfc(at),
            "eventSource": source, "eventName": name, "awsRegion": region,
            "sourceIPAddress": format!("198.51.100.{}", rng.below(250) + 1),
            "userAgent": rng.pick(USER_AGENTS),
            "requestParameters": request, "responseElements": response,
            "requestID": rng.uuid(), "eventID": rng.uuid(), "readOnly": false, "eventType": "AwsApiCall",
            "managementEvent": true, "recipientAccountId": account, "eventCategory": "Management",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                           "clientProvidedHostHeader": source}
        });
        if let Some((code, message)) = error {
            r["errorCode"] = json!(code);
            r["errorMessage"] = json!(message);
            r["responseElements"] = Value::Null;
        }
        if name.starts_with("Get") || name.starts_with("List") || name.starts_with("Describe") {
            r["readOnly"] = json!(true);
        }
        r
    }

    /// Adds a record as delivered on time, in us-east-1 (where IAM's events are).
    pub fn push(&mut self, account: &str, body: Value) -> usize {
        let at = body["eventTime"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        let at = at.map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        let region = body["awsRegion"].as_str().unwrap_or("us-east-1").to_string();
        self.records.push(Rec { account: account.into(), region, delivered: delivery(at), body });
        self.records.len() - 1
    }

    pub fn key_id(&mut self) -> String {
        format!("AKIA{}", self.rng.id(16))
    }

    pub fn create_user(
        &mut self,
        account: &str,
        who: &Who,
        name: &str,
        at: DateTime<Utc>,
        path: &str,
        tags: &[(&str, &str)],
    ) -> usize {
        let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let id = format!("AIDA{}", self.rng.id(17));
        let mut request = json!({"userName": name});
        if path != "/" {
            request["path"] = json!(path);
        }
        if !tags.is_empty() {
            request["tags"] = json!(tags);
        }
        let mut user = json!({"path": path, "userName": name, "userId": id,
                              "arn": format!("arn:aws:iam::{account}:user{path}{name}"), "createDate": iam_date(at)});
        if !tags.is_empty() {
            user["tags"] = json!(tags);
        }
        let r = self.record(
            account,
            "us-east-1",
            who,
            at,
            "iam.amazonaws.com",
            "CreateUser",
            request,
            json!({"user": user}),
            None,
        );
        self.push(account, r)
    }

    pub fn create_password(&mut self, account: &str, who: &Who, name: &str, at: DateTime<Utc>) -> usize {
        let r = self.record(
            account,
            "us-east-1",
            who,
            at,
            "iam.amazonaws.com",
            "CreateLoginProfile",
            json!({"userName": name, "passwordResetRequired": true}),
            json!({"loginProfile": {"userName": name, "createDate": iam_date(at), "passwordResetRequired": true}}),
            None,
        );
        self.push(account, r)
    }

    /// CreateAccessKey; self-service (the caller is that IAM user) has `requestParameters: null`.
    pub fn create_key(&mut self, account: &str, who: &Who, name: &str, key: &str, at: DateTime<Utc>) -> usize {
        let own = matches!(who, Who::User(n) if n == name);
        let request = if own { Value::Null } else { json!({"userName": name}) };
        let r = self.record(
            account,
            "us-east-1",
            who,
            at,
            "iam.amazonaws.com",
            "CreateAccessKey",
            request,
            json!({"accessKey": {"userName": name, "accessKeyId": key, "status": "Active",
                                 "createDate": iam_date(at)}}),
            None,
        );
        self.push(account, r)
    }

    /// Deletes a user the way IAM requires: its keys, its password, then the user.
    pub fn delete_user(&mut self, account: &str, who: &Who, name: &str, keys: &[&str], at: DateTime<Utc>) {
        for (i, key) in keys.iter().enumerate() {
            let r = self.record(
                account,
                "us-east-1",
                who,
                at + Duration::seconds(i as i64),
                "iam.amazonaws.com",
                "DeleteAccessKey",
                json!({"userName": name, "accessKeyId": key}),
                Value::Null,
                None,
            );
            self.push(account, r);
        }
        let t = at + Duration::seconds(5);
        let r = self.record(
            account,
            "us-east-1",
            who,
            t,
            "iam.amazonaws.com",
            "DeleteLoginProfile",
            json!({"userName": name}),
            Value::Null,
            None,
        );
        self.push(account, r);
        let r = self.record(
            account,
            "us-east-1",
            who,
            t + Duration::seconds(2),
            "iam.amazonaws.com",
            "DeleteUser",
            json!({"userName": name}),
            Value::Null,
            None,
        );
        self.push(account, r);
    }

    /// A failed IAM call (it must never count).
    pub fn failed(&mut self, account: &str, who: &Who, name: &str, user: &str, at: DateTime<Utc>, code: &str) -> usize {
        let r = self.record(
            account,
            "us-east-1",
            who,
            at,
            "iam.amazonaws.com",
            name,
            json!({"userName": user}),
            Value::Null,
            Some((code, "The request failed (generated).")),
        );
        self.push(account, r)
    }

    fn expect(&mut self, account: &str, user: &str, key: &str, verdict: &str, creator: &Who) {
        self.expected.push(Expected {
            account: account.into(),
            user: user.into(),
            access_key_id: key.into(),
            verdict: verdict.into(),
            creator: creator.arn(account),
        });
    }

    /// Unrelated calls at `at` in `region`: S3 data events, EC2, STS, KMS, IAM reads and changes, failures.
    pub fn noise(&mut self, account: &str, region: &str, at: DateTime<Utc>) -> usize {
        let rng = &mut self.rng;
        let app =
            Who::Role { role: "app-server".into(), session: format!("i-0{:016x}", rng.next_u64() & 0xffff_ffff_ffff) };
        let n = rng.below(12);
        let bucket = format!("app-data-{}", rng.pick(&["prod", "staging", "logs", "exports"]));
        let object = format!("reports/2025/03/{:02}/r-{}.csv", rng.below(28) + 1, rng.below(100_000));
        let (source, name, who, request, response) = match n {
            0..=3 => (
                "s3.amazonaws.com",
                *rng.pick(&["GetObject", "PutObject", "HeadObject"]),
                app,
                json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), "key": object}),
                Value::Null,
            ),
            4 => (
                "ec2.amazonaws.com",
                "DescribeInstances",
                app,
                json!({"instancesSet": {},
                       "filterSet": {"items": [{"name": "tag:Name", "valueSet": {"items": [{"value": "web-*"}]}}]}}),
                Value::Null,
            ),
            5 => (
                "ec2.amazonaws.com",
                "RunInstances",
                Who::Role { role: "ci-deployer".into(), session: "gha-4711".into() },
                json!({"instancesSet": {"items": [{"imageId": "ami-0c55b159cbfafe1f0", "minCount": 1, "maxCount": 1}]},
                       "instanceType": "t3.micro", "subnetId": "subnet-0a1b2c3d", "monitoring": {"enabled": false}}),
                json!({"requestId": rng.uuid(), "reservationId": format!("r-0{:016x}", rng.next_u64() & 0xffff_ffff_ffff),
                       "ownerId": account, "instancesSet": {"items": [{
                       "instanceId": format!("i-0{:016x}", rng.next_u64() & 0xffff_ffff_ffff),
                       "imageId": "ami-0c55b159cbfafe1f0", "instanceState": {"code": 0, "name": "pending"},
                       "privateDnsName": "ip-10-0-1-23.ec2.internal", "instanceType": "t3.micro",
                       "launchTime": 1741593600000_u64,
                       "placement": {"availabilityZone": format!("{region}a"), "tenancy": "default"},
                       "monitoring": {"state": "disabled"}, "subnetId": "subnet-0a1b2c3d", "vpcId": "vpc-0a1b2c3d",
                       "privateIpAddress": "10.0.1.23", "sourceDestCheck": true}]}}),
            ),
            6 => (
                "sts.amazonaws.com",
                "AssumeRole",
                Who::Role { role: "ci-deployer".into(), session: "gha-4711".into() },
                json!({"roleArn": format!("arn:aws:iam::{account}:role/app-server"), "roleSessionName": "gha-4711",
                       "durationSeconds": 3600}),
                json!({"credentials": {"accessKeyId": format!("ASIA{}", rng.id(16)),
                                       "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE",
                                       "expiration": "Mar 10, 2025 9:00:00 AM"},
                       "assumedRoleUser": {"assumedRoleId": format!("AROA{}:gha-4711", rng.id(17)),
                                           "arn": format!("arn:aws:sts::{account}:assumed-role/app-server/gha-4711")}}),
            ),
            7 => (
                "kms.amazonaws.com",
                "Decrypt",
                app,
                json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                       "encryptionContext": {"aws:s3:arn": format!("arn:aws:s3:::{bucket}/{object}")}}),
                Value::Null,
            ),
            8 => (
                "iam.amazonaws.com",
                *rng.pick(&["ListUsers", "GetUser", "ListAccessKeys", "GetAccountSummary", "ListAttachedUserPolicies"]),
                Who::Sso("auditor@example.com".into()),
                json!({"maxItems": 100}),
                Value::Null,
            ),
            9 => (
                "iam.amazonaws.com",
                "AttachUserPolicy",
                Who::admin(),
                json!({"userName": format!("user-{}", rng.below(500)),
                       "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
                Value::Null,
            ),
            10 => ("sts.amazonaws.com", "GetCallerIdentity", app, Value::Null, Value::Null),
            _ => (
                "s3.amazonaws.com",
                "ListObjectsV2",
                app,
                json!({"bucketName": bucket, "prefix": "reports/", "list-type": "2"}),
                Value::Null,
            ),
        };
        let error =
            (self.rng.below(20) == 0).then_some(("AccessDenied", "User is not authorized to perform this operation"));
        // IAM is global: its calls are logged in us-east-1.
        let region = if source == "iam.amazonaws.com" { "us-east-1" } else { region };
        let mut r = self.record(account, region, &who, at, source, name, request, response, error);
        if source == "s3.amazonaws.com" {
            r["managementEvent"] = json!(false);
            r["eventCategory"] = json!("Data");
            r["resources"] = json!([
                {"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/{object}")},
                {"accountId": account, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}
            ]);
            r["additionalEventData"] = json!({"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
                "bytesTransferredIn": 0, "AuthenticationMethod": "AuthHeader", "x-amz-id-2": "Ez1mT0VBUEhTQkVYQU1QTEU=",
                "bytesTransferredOut": self.rng.below(1 << 20)});
        }
        self.push(account, r)
    }

    /// Noise around every call of the scenario so far: `per_call` unrelated records near each, in two regions.
    pub fn surround_with_noise(&mut self, per_call: usize) {
        let times: Vec<(String, DateTime<Utc>)> = self
            .records
            .iter()
            .filter_map(|r| {
                Some((
                    r.account.clone(),
                    DateTime::parse_from_rfc3339(r.body["eventTime"].as_str()?).ok()?.with_timezone(&Utc),
                ))
            })
            .collect();
        for (account, t) in times {
            for i in 0..per_call {
                let region = if i % 3 == 2 { "eu-west-1" } else { "us-east-1" };
                let at = t + Duration::seconds(self.rng.below(1200) as i64 - 600);
                self.noise(&account, region, at);
            }
        }
    }

    /// Every case of issue 4, with its answer (run with [`EXEMPT_FLAGS`]). Days 0-4 are 2025-03-10 to 03-14.
    pub fn known_answers() -> Scenario {
        let mut s = Scenario::new(4);
        let a = ACCOUNT_A;
        let admin = Who::admin();

        // maria: an administrator creates her key in the setup window of a console user -> violation.
        // The key's record is delivered twice (two files) and a failed second key attempt is logged.
        s.create_user(a, &admin, "maria.silva", day(0, 9, 0, 0), "/", &[]);
        s.create_password(a, &admin, "maria.silva", day(0, 9, 0, 20));
        let k = s.key_id();
        let i = s.create_key(a, &admin, "maria.silva", &k, day(0, 9, 1, 8));
        let mut again = s.records[i].clone();
        again.delivered += Duration::hours(1);
        s.records.push(again);
        s.failed(a, &admin, "CreateAccessKey", "maria.silva", day(0, 9, 1, 30), "LimitExceeded");
        s.expect(a, "maria.silva", &k, "violation", &admin);

        // kenji: creates his own key in the window -> compliant (self-service). His CreateUser is delivered twice,
        // and a later failed CreateUser of the same name (EntityAlreadyExists) must not start a new life.
        let i = s.create_user(a, &admin, "kenji.watanabe", day(0, 9, 10, 0), "/", &[]);
        let mut again = s.records[i].clone();
        again.delivered += Duration::minutes(40);
        s.records.push(again);
        s.create_password(a, &admin, "kenji.watanabe", day(0, 9, 10, 30));
        let k = s.key_id();
        let kenji = Who::User("kenji.watanabe".into());
        s.create_key(a, &kenji, "kenji.watanabe", &k, day(0, 9, 14, 0));
        s.failed(a, &admin, "CreateUser", "kenji.watanabe", day(3, 10, 0, 0), "EntityAlreadyExists");
        s.expect(a, "kenji.watanabe", &k, "compliant", &kenji);

        // svc-reporting-etl: a service account, no password -> compliant. A failed CreateLoginProfile must not
        // give it one.
        let provisioner = Who::Role { role: "provisioner".into(), session: "terraform-run-812".into() };
        s.create_user(a, &provisioner, "svc-reporting-etl", day(0, 10, 0, 0), "/", &[]);
        let k = s.key_id();
        s.create_key(a, &provisioner, "svc-reporting-etl", &k, day(0, 10, 0, 5));
        s.failed(a, &admin, "CreateLoginProfile", "svc-reporting-etl", day(3, 11, 0, 0), "AccessDenied");
        s.expect(a, "svc-reporting-etl", &k, "compliant", &provisioner);

        // lena: her key comes two days after her -> compliant (outside the window).
        s.create_user(a, &admin, "lena.fischer", day(0, 11, 0, 0), "/", &[]);
        s.create_password(a, &admin, "lena.fischer", day(0, 11, 0, 10));
        let k = s.key_id();
        s.create_key(a, &admin, "lena.fischer", &k, day(2, 11, 30, 0));
        s.expect(a, "lena.fischer", &k, "compliant", &admin);

        // pavel: the setup key comes first, the password three days later -> violation.
        s.create_user(a, &admin, "pavel.novak", day(0, 13, 0, 0), "/", &[]);
        let k = s.key_id();
        s.create_key(a, &admin, "pavel.novak", &k, day(0, 13, 2, 0));
        s.create_password(a, &admin, "pavel.novak", day(3, 8, 0, 0));
        s.expect(a, "pavel.novak", &k, "violation", &admin);

        // olga, twice: first life with a password and an admin's setup key (violation); deleted; second life
        // without a password and an admin's key (compliant; would be a violation if the lives were mixed).
        s.create_user(a, &admin, "olga.ivanova", day(0, 14, 0, 0), "/", &[]);
        s.create_password(a, &admin, "olga.ivanova", day(0, 14, 0, 30));
        let k1 = s.key_id();
        s.create_key(a, &admin, "olga.ivanova", &k1, day(0, 14, 3, 0));
        s.delete_user(a, &admin, "olga.ivanova", &[&k1], day(1, 9, 0, 0));
        s.create_user(a, &provisioner, "olga.ivanova", day(1, 9, 30, 0), "/", &[]);
        let k2 = s.key_id();
        s.create_key(a, &provisioner, "olga.ivanova", &k2, day(1, 9, 31, 0));
        s.expect(a, "olga.ivanova", &k1, "violation", &admin);
        s.expect(a, "olga.ivanova", &k2, "compliant", &provisioner);

        // piotr, twice: a first life without anything, deleted; re-created a day later with a password and an
        // admin's setup key -> violation (would be outside the window if measured from the first life).
        s.create_user(a, &admin, "piotr.zielinski", day(0, 15, 0, 0), "/", &[]);
        s.delete_user(a, &admin, "piotr.zielinski", &[], day(1, 10, 0, 0));
        s.create_user(a, &admin, "piotr.zielinski", day(2, 10, 0, 0), "/", &[]);
        s.create_password(a, &admin, "piotr.zielinski", day(2, 10, 0, 30));
        let k = s.key_id();
        s.create_key(a, &admin, "piotr.zielinski", &k, day(2, 10, 5, 0));
        s.expect(a, "piotr.zielinski", &k, "violation", &admin);

        // chen: out of order. The CreateUser record is delivered hours late (DELIVERY_DELAY), in a later file
        // than the key's; an Identity Center administrator did it all -> violation.
        let sso = Who::Sso("priya.nair@example.com".into());
        let i = s.create_user(a, &sso, "chen.wei", day(1, 16, 0, 0), "/", &[]);
        s.records[i].delivered = day(1, 19, 30, 0);
        s.records[i].body["addendum"] =
            json!({"reason": "DELIVERY_DELAY", "updatedFields": "", "originalRequestID": "", "originalEventID": ""});
        s.create_password(a, &sso, "chen.wei", day(1, 16, 0, 40));
        let k = s.key_id();
        s.create_key(a, &sso, "chen.wei", &k, day(1, 16, 1, 0));
        s.expect(a, "chen.wei", &k, "violation", &sso);

        // ana: exempt by tag (--exempt-tag security:breakglass);
        // ops.robot: exempt by path (--exempt-paths /automation/).
        s.create_user(
            a,
            &admin,
            "ana.breakglass",
            day(2, 12, 0, 0),
            "/",
            &[("security:breakglass", "true"), ("team", "secops")],
        );
        s.create_password(a, &admin, "ana.breakglass", day(2, 12, 0, 15));
        let k = s.key_id();
        s.create_key(a, &admin, "ana.breakglass", &k, day(2, 12, 1, 0));
        s.expect(a, "ana.breakglass", &k, "exempt", &admin);
        s.create_user(a, &admin, "ops.robot", day(2, 13, 0, 0), "/automation/", &[]);
        s.create_password(a, &admin, "ops.robot", day(2, 13, 0, 15));
        let k = s.key_id();
        s.create_key(a, &admin, "ops.robot", &k, day(2, 13, 1, 0));
        s.expect(a, "ops.robot", &k, "exempt", &admin);

        // old.timer was created before the history began: its setup cannot be judged, no row.
        let k = s.key_id();
        s.create_key(a, &admin, "old.timer", &k, day(2, 15, 0, 0));
        // root's own key: out of scope, no row.
        let r = s.record(
            a,
            "us-east-1",
            &Who::Root,
            day(3, 7, 0, 0),
            "iam.amazonaws.com",
            "CreateAccessKey",
            Value::Null,
            json!({"accessKey": {"accessKeyId": "AKIAROOTOWNKEY000001", "status": "Active",
                                 "createDate": iam_date(day(3, 7, 0, 0))}}),
            None,
        );
        s.push(a, r);

        // nina, on the last day: violation.
        s.create_user(a, &admin, "nina.k", day(4, 9, 0, 0), "/", &[]);
        s.create_password(a, &admin, "nina.k", day(4, 9, 0, 10));
        let k = s.key_id();
        s.create_key(a, &admin, "nina.k", &k, day(4, 9, 2, 0));
        s.expect(a, "nina.k", &k, "violation", &admin);

        // Another account: bob, violation (for --account).
        let admin_b = Who::User("ops.admin".into());
        s.create_user(ACCOUNT_B, &admin_b, "bob.builder", day(1, 11, 0, 0), "/", &[]);
        s.create_password(ACCOUNT_B, &admin_b, "bob.builder", day(1, 11, 0, 20));
        let k = s.key_id();
        s.create_key(ACCOUNT_B, &admin_b, "bob.builder", &k, day(1, 11, 2, 0));
        s.expect(ACCOUNT_B, "bob.builder", &k, "violation", &admin_b);

        s.surround_with_noise(25);
        s.expected.sort();
        s
    }

    /// Only compliant cases (self-service, no password, outside the window), with noise: replay exits 0.
    pub fn all_compliant() -> Scenario {
        let mut s = Scenario::new(7);
        let a = ACCOUNT_A;
        let admin = Who::admin();
        s.create_user(a, &admin, "kenji.watanabe", day(0, 9, 10, 0), "/", &[]);
        s.create_password(a, &admin, "kenji.watanabe", day(0, 9, 10, 30));
        let k = s.key_id();
        let kenji = Who::User("kenji.watanabe".into());
        s.create_key(a, &kenji, "kenji.watanabe", &k, day(0, 9, 14, 0));
        s.expect(a, "kenji.watanabe", &k, "compliant", &kenji);
        s.create_user(a, &admin, "svc-etl", day(0, 10, 0, 0), "/", &[]);
        let k = s.key_id();
        s.create_key(a, &admin, "svc-etl", &k, day(0, 10, 0, 5));
        s.expect(a, "svc-etl", &k, "compliant", &admin);
        s.surround_with_noise(10);
        s.expected.sort();
        s
    }

    /// An organization's history: the same user name in two member accounts, set up differently. In account A
    /// an administrator gives `sam.lee` a password and a setup key (violation); in account B `sam.lee` is a
    /// service account without a password (compliant), and B also has `ines.costa` (violation). Mixed up, sam's
    /// two lives would borrow each other's password or keys.
    pub fn org_namesakes() -> Scenario {
        let mut s = Scenario::new(11);
        let (a, b) = (ACCOUNT_A, ACCOUNT_B);
        let admin = Who::admin();
        s.create_user(a, &admin, "sam.lee", day(0, 9, 0, 0), "/", &[]);
        s.create_password(a, &admin, "sam.lee", day(0, 9, 0, 20));
        let k = s.key_id();
        s.create_key(a, &admin, "sam.lee", &k, day(0, 9, 1, 0));
        s.expect(a, "sam.lee", &k, "violation", &admin);
        let ci = Who::Role { role: "ci-provisioner".into(), session: "pipeline-77".into() };
        s.create_user(b, &ci, "sam.lee", day(0, 9, 0, 5), "/", &[]);
        let k = s.key_id();
        s.create_key(b, &ci, "sam.lee", &k, day(0, 9, 0, 30));
        s.expect(b, "sam.lee", &k, "compliant", &ci);
        s.create_user(b, &admin, "ines.costa", day(1, 10, 0, 0), "/", &[]);
        s.create_password(b, &admin, "ines.costa", day(1, 10, 0, 10));
        let k = s.key_id();
        s.create_key(b, &admin, "ines.costa", &k, day(1, 10, 2, 0));
        s.expect(b, "ines.costa", &k, "violation", &admin);
        s.surround_with_noise(10);
        s.expected.sort();
        s
    }

    /// A long history of users created before it: `old_users` users each rotating their own key every day for
    /// `days` days (create the new key, delete the old one), which replay must not report; and two users created
    /// in it whose `CreateUser` records are delivered last (a day late), after their keys' files: their keys
    /// must still be reported.
    pub fn old_rotations(old_users: usize, days: i64) -> Scenario {
        let mut s = Scenario::new(13);
        let a = ACCOUNT_A;
        for d in 0..days {
            for i in 0..old_users {
                let name = format!("old-{i}");
                let me = Who::User(name.clone());
                let at = day(d, 8, 0, 0) + Duration::seconds((i % 240) as i64);
                let k = s.key_id();
                s.create_key(a, &me, &name, &k, at);
                let r = s.record(
                    a,
                    "us-east-1",
                    &me,
                    at + Duration::seconds(30),
                    "iam.amazonaws.com",
                    "DeleteAccessKey",
                    json!({"userName": name, "accessKeyId": format!("AKIAPREVIOUS{i:08}")}),
                    Value::Null,
                    None,
                );
                s.push(a, r);
            }
        }
        let admin = Who::admin();
        for (name, d) in [("late.one", 1), ("late.two", days - 1)] {
            let i = s.create_user(a, &admin, name, day(d, 9, 0, 0), "/", &[]);
            s.records[i].delivered = day(days, 12, 0, 0);
            s.create_password(a, &admin, name, day(d, 9, 0, 10));
            let k = s.key_id();
            s.create_key(a, &admin, name, &k, day(d, 9, 1, 0));
            s.expect(a, name, &k, "violation", &admin);
        }
        s.expected.sort();
        s
    }

    /// The files of an organization trail under `root`: `AWSLogs/<org_id>/<account>/CloudTrail/<region>/...`,
    /// and beside each day's logs a digest file, named as CloudTrail names them, in the same folder.
    pub fn write_org_layout(&self, root: &Path, org_id: &str) -> std::io::Result<Vec<PathBuf>> {
        let flat = root.join(".flat");
        let files = self.write_s3_layout(&flat)?;
        let mut written = Vec::new();
        for file in files {
            let rel = file.strip_prefix(flat.join("AWSLogs")).map_err(std::io::Error::other)?;
            let to = root.join("AWSLogs").join(org_id).join(rel);
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir)?;
                let account = rel.iter().next().and_then(|a| a.to_str()).unwrap_or("");
                let digest = dir.join(format!("{account}_CloudTrail-Digest_us-east-1_org-trail_us-east-1_x.json.gz"));
                write_gz(
                    &digest,
                    &json!({"awsAccountId": account, "logFiles": [], "digestSignatureAlgorithm": "SHA256withRSA"}),
                )?;
            }
            std::fs::rename(&file, &to)?;
            written.push(to);
        }
        std::fs::remove_dir_all(&flat)?;
        Ok(written)
    }

    /// The files of the S3 delivery layout under `root`: one gzip'd `{"Records": [...]}` per (account, region,
    /// delivery), records shuffled. Returns the files written.
    pub fn write_s3_layout(&self, root: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut files: BTreeMap<(String, String, DateTime<Utc>), Vec<&Value>> = BTreeMap::new();
        for r in &self.records {
            files.entry((r.account.clone(), r.region.clone(), r.delivered)).or_default().push(&r.body);
        }
        let mut rng = Rng::new(99);
        let mut written = Vec::new();
        for ((account, region, delivered), mut records) in files {
            rng.shuffle(&mut records);
            let path = root.join(s3_key(&account, &region, delivered, &mut rng));
            write_gz(&path, &json!({"Records": records}))?;
            written.push(path);
        }
        Ok(written)
    }

    /// Every record as an EventBridge event, one per line (shuffled); duplicates stay duplicated.
    pub fn write_eventbridge_lines(&self, path: &Path) -> std::io::Result<()> {
        let mut events: Vec<Value> = self.records.iter().map(|r| eventbridge(&r.account, &r.body)).collect();
        Rng::new(5).shuffle(&mut events);
        let text: String = events.iter().map(|e| e.to_string() + "\n").collect();
        std::fs::write(path, text)
    }
}

/// The S3 key CloudTrail gives a log file.
pub fn s3_key(account: &str, region: &str, delivered: DateTime<Utc>, rng: &mut Rng) -> String {
    format!(
        "AWSLogs/{account}/CloudTrail/{region}/{}/{account}_CloudTrail_{region}_{}_{}.json.gz",
        delivered.format("%Y/%m/%d"),
        delivered.format("%Y%m%dT%H%MZ"),
        &rng.id(16)
    )
}

/// A CloudTrail record as EventBridge delivers it.
pub fn eventbridge(account: &str, record: &Value) -> Value {
    let source = record["eventSource"].as_str().unwrap_or("").trim_end_matches(".amazonaws.com");
    json!({"version": "0", "id": format!("eb-{}", record["eventID"].as_str().unwrap_or("")),
           "detail-type": "AWS API Call via CloudTrail", "source": format!("aws.{source}"), "account": account,
           "time": record["eventTime"], "region": record["awsRegion"], "resources": [], "detail": record})
}

pub fn write_gz(path: &Path, value: &Value) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut gz = GzEncoder::new(std::fs::File::create(path)?, Compression::default());
    serde_json::to_writer(&mut gz, value)?;
    gz.finish()?.flush()
}

/// What [`bulk`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkStats {
    pub files: u64,
    /// Uncompressed JSON bytes.
    pub bytes: u64,
    pub compressed: u64,
    pub records: u64,
    /// Users set up with an administrator's key (violations), one per `USERS_EVERY` records.
    pub users: u64,
}

/// About one user set up per this many records in [`bulk`].
pub const USERS_EVERY: u64 = 2_000;

/// A large archive for the benchmark: files number `first..first + files` of `records_per_file` records each,
/// mostly noise, with a console user set up by an administrator (a violation) about every [`USERS_EVERY`]
/// records. Written in parallel; the same numbers always give the same files.
pub fn bulk(root: &Path, first: u64, files: u64, records_per_file: u64) -> std::io::Result<BulkStats> {
    use rayon::prelude::*;
    let per_file: Vec<BulkStats> = (first..first + files)
        .into_par_iter()
        .map(|f| -> std::io::Result<BulkStats> {
            let mut s = Scenario::new(1_000 + f);
            // Spread the files over 30 days from 2025-01-01, every 5 minutes, in two accounts and three regions.
            let delivered = Utc.with_ymd_and_hms(2025, 1, 1, 0, 5, 0).single().unwrap_or_default()
                + Duration::minutes(5 * f as i64 / 3);
            let account = if f % 7 == 6 { ACCOUNT_B } else { ACCOUNT_A };
            let region = ["us-east-1", "eu-west-1", "us-west-2"][(f % 3) as usize];
            let mut users = 0;
            while (s.records.len() as u64) < records_per_file {
                let at = delivered - Duration::seconds(s.rng.below(600) as i64);
                if region == "us-east-1" && s.rng.below(USERS_EVERY) == 0 {
                    let admin = Who::admin();
                    let name = format!("user-{f}-{users}");
                    s.create_user(account, &admin, &name, at, "/", &[]);
                    s.create_password(account, &admin, &name, at + Duration::seconds(10));
                    let k = s.key_id();
                    s.create_key(account, &admin, &name, &k, at + Duration::seconds(40));
                    users += 1;
                } else {
                    s.noise(account, region, at);
                }
            }
            let mut rng = Rng::new(f);
            let path = root.join(s3_key(account, region, delivered, &mut rng));
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let records: Vec<&Value> = s.records.iter().map(|r| &r.body).collect();
            let text = serde_json::to_vec(&json!({"Records": records}))?;
            let mut gz = GzEncoder::new(Vec::with_capacity(text.len() / 8), Compression::fast());
            gz.write_all(&text)?;
            let compressed = gz.finish()?;
            std::fs::write(&path, &compressed)?;
            Ok(BulkStats {
                files: 1,
                bytes: text.len() as u64,
                compressed: compressed.len() as u64,
                records: s.records.len() as u64,
                users,
            })
        })
        .collect::<std::io::Result<_>>()?;
    Ok(per_file.iter().fold(BulkStats::default(), |a, s| BulkStats {
        files: a.files + s.files,
        bytes: a.bytes + s.bytes,
        compressed: a.compressed + s.compressed,
        records: a.records + s.records,
        users: a.users + s.users,
    }))
}
