//! The organization-wide guard on moto's multi-account support (issue 7): one central guard in the management
//! account (moto's default account 123456789012) acting in member accounts made with Organizations `CreateAccount`,
//! through the member role it assumes (moto checks no trust policy: which accounts are guarded is our code's job, and
//! is tested here). Users, passwords and keys are made in each member through assumed-role credentials; their
//! CloudTrail events name the member as `recipientAccountId`.
//!
//! Where a test must see what the guard called, and with which account's credentials, the guard's SDK goes through
//! the fault proxy (tests/harness/faults.rs), which also makes one account's AssumeRole fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};

use aws_config::SdkConfig;
use keyguard_aws::{GuardError, SdkGuard};
use keyguard_core::{Action, Config, Verdict};
use keyguard_tests::faults::{self, Fault, FaultProxy, IAM, STS, Schedule, Seen, TEST_SETTINGS, When};
use keyguard_tests::org::Org;
use keyguard_tests::{ACCOUNT, AlertSink, Caller, Iam, Moto, NewKey, aws_env, run_keyguard, unique};
use serde_json::{Value, json};

/// The member role the guard assumes (any name: moto needs no role to exist).
const ROLE: &str = "KeyGuardMember";

fn admin() -> Caller {
    Caller::IamUser("jordan.admin".into())
}

fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/{ROLE}")
}

/// A member account and its IAM, reached through `OrganizationAccountAccessRole`.
struct Member {
    id: String,
    iam: Iam,
}

/// The organization with `n` new member accounts for this test.
async fn organization(sdk: &SdkConfig, n: usize) -> (Org, Vec<Member>) {
    let org = Org::create(sdk, n).await.unwrap();
    let mut members = Vec::new();
    for id in &org.members {
        let member_sdk = org.member_sdk(sdk, id).await.unwrap();
        members.push(Member { id: id.clone(), iam: Iam::in_account(&member_sdk, id) });
    }
    (org, members)
}

/// A console user set up by an admin in `iam`'s account, given an access key during setup: a violation.
async fn setup_key(iam: &Iam, name: &str) -> NewKey {
    keyguard_tests::align_to_second().await;
    iam.create_user(&admin(), name, None, &[]).await.unwrap();
    iam.create_password(&admin(), name).await.unwrap();
    iam.create_key(&admin(), name).await.unwrap()
}

/// The guard from these `KEYGUARD_*` settings and this SDK configuration (moto itself, or the proxy).
async fn guard(sdk: &SdkConfig, vars: &[(&str, String)]) -> SdkGuard {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let config = Config::from_lookup(|k| map.get(k).cloned()).unwrap();
    keyguard_aws::sdk_guard(&config, sdk).await.unwrap()
}

fn accounts(members: &[&Member]) -> String {
    members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(",")
}

/// The IAM requests among `seen`.
fn iam_calls(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter().filter(|s| s.service == IAM).collect()
}

fn scheduled_event() -> Value {
    json!({"version": "0", "id": unique("schedule"), "detail-type": "Scheduled Event", "source": "aws.events",
           "account": ACCOUNT, "time": "2026-01-01T03:00:00Z", "region": "us-east-1",
           "resources": ["arn:aws:events:us-east-1:123456789012:rule/keyguard-sweep"], "detail": {}})
}

// ------------------------------------------------------------------------------------------------ events

#[tokio::test]
async fn events_from_each_member_act_in_that_member_only() {
    let sdk = Moto::shared().sdk().await;
    let (_, members) = organization(&sdk, 2).await;
    let (a, b) = (&members[0], &members[1]);
    let alias = unique("acme-payments");
    a.iam.client.create_account_alias().account_alias(&alias).send().await.unwrap();
    // The same user name in both members and in the central account.
    let name = unique("maria");
    let key_a = setup_key(&a.iam, &name).await;
    let key_b = setup_key(&b.iam, &name).await;
    let central = Iam::new(&sdk);
    let key_central = setup_key(&central, &name).await;
    assert_eq!(key_a.event["detail"]["recipientAccountId"], a.id.as_str());
    assert_eq!(key_a.event["account"], a.id.as_str());

    let alerts = AlertSink::new(&sdk).await.unwrap();
    let guard = guard(
        &sdk,
        &[
            ("KEYGUARD_MODE", "deactivate".into()),
            ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.clone()),
            ("KEYGUARD_MEMBER_ROLE", ROLE.into()),
            ("KEYGUARD_ACCOUNTS", accounts(&[a, b])),
        ],
    )
    .await;

    let report = guard.handle(&key_a.event).await.unwrap();
    assert_eq!(report.account.as_deref(), Some(a.id.as_str()));
    assert_eq!(report.account_alias.as_deref(), Some(alias.as_str()));
    assert_eq!(report.decisions.len(), 1, "{report:?}");
    assert_eq!(report.decisions[0].access_key_id.as_deref(), Some(key_a.id.as_str()));
    assert_eq!((report.decisions[0].verdict, report.decisions[0].action), (Verdict::Violation, Action::Deactivated));
    assert_eq!(a.iam.key_status(&name, &key_a.id).await.unwrap(), "Inactive");
    assert_eq!(b.iam.key_status(&name, &key_b.id).await.unwrap(), "Active", "the same name in another member");
    assert_eq!(central.key_status(&name, &key_central.id).await.unwrap(), "Active", "the central account's user");
    let received = alerts.drain().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["account"], a.id.as_str());
    assert_eq!(received[0].body["account_alias"], alias.as_str());
    assert_eq!(received[0].attributes["account"]["Value"], a.id.as_str());
    assert!(received[0].body["user"]["arn"].as_str().unwrap().contains(&a.id), "{:?}", received[0].body);

    let report = guard.handle(&key_b.event).await.unwrap();
    assert_eq!(report.account.as_deref(), Some(b.id.as_str()));
    assert_eq!(report.account_alias, None, "member B has no alias");
    assert_eq!(report.decisions[0].action, Action::Deactivated);
    assert_eq!(b.iam.key_status(&name, &key_b.id).await.unwrap(), "Inactive");
    assert_eq!(central.key_status(&name, &key_central.id).await.unwrap(), "Active");
    let received = alerts.drain().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["account"], b.id.as_str());
    assert_eq!(received[0].body["account_alias"], Value::Null);
}

#[tokio::test]
async fn credentials_are_assumed_once_per_account_and_never_used_for_another() {
    let moto = Moto::shared();
    let sdk = moto.sdk().await;
    let (_, members) = organization(&sdk, 2).await;
    let (a, b) = (&members[0], &members[1]);
    let shared = unique("same-name");
    // Three keys in each member: the shared name and two of the member's own users.
    let mut keys: Vec<(&Member, String, NewKey)> = Vec::new();
    for m in [a, b] {
        for name in [shared.clone(), unique("own"), unique("own")] {
            let key = setup_key(&m.iam, &name).await;
            keys.push((m, name, key));
        }
    }
    // The central account is guarded too, with the function's own credentials.
    let central_user = unique("central");
    let central_key = setup_key(&Iam::new(&sdk), &central_user).await;
    let proxy = FaultProxy::start(&moto.endpoint).await.unwrap();
    let via_proxy = faults::sdk_config_with(&proxy.endpoint, TEST_SETTINGS).await;
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let guard = guard(
        &via_proxy,
        &[
            ("KEYGUARD_MODE", "deactivate".into()),
            ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.clone()),
            ("KEYGUARD_MEMBER_ROLE", ROLE.into()),
            ("KEYGUARD_ACCOUNTS", format!("{ACCOUNT},{}", accounts(&[a, b]))),
        ],
    )
    .await;
    // Interleaved: A, B, A, central, B, A, B.
    let order = [Some(0), Some(3), Some(1), None, Some(4), Some(2), Some(5)];
    for i in order {
        let event = i.map_or(&central_key.event, |i| &keys[i].2.event);
        let report = guard.handle(event).await.unwrap();
        assert_eq!(report.decisions[0].action, Action::Deactivated, "{report:?}");
    }
    assert_eq!(guard.accounts().assumed(), 2, "one AssumeRole per member for six events, none for the own account");
    let issued = proxy.issued();
    assert_eq!(issued.len(), 2, "{issued:?}");
    let credential_of: HashMap<String, String> =
        issued.iter().map(|(arn, key)| (arn.split(':').nth(4).unwrap().to_string(), key.clone())).collect();
    assert_eq!(credential_of.keys().cloned().collect::<BTreeSet<_>>(), [a.id.clone(), b.id.clone()].into());
    assert_ne!(credential_of[&a.id], credential_of[&b.id]);

    // Every IAM call was signed with the credentials of the account it acted in.
    let seen = proxy.take_seen();
    let calls = iam_calls(&seen);
    assert!(calls.len() >= 6 * 4, "reads and a deactivation per event: {}", calls.len());
    let account_of_key: HashMap<&str, &str> = keys.iter().map(|(m, _, k)| (k.id.as_str(), m.id.as_str())).collect();
    let account_of_user: HashMap<&str, &str> =
        keys.iter().filter(|(_, n, _)| *n != shared).map(|(m, n, _)| (n.as_str(), m.id.as_str())).collect();
    // The own account's calls are signed with the function's own credentials ("testing"), and concern its user only.
    let central = |c: &Seen| {
        c.param("UserName").as_deref() == Some(central_user.as_str())
            || c.param("AccessKeyId").as_deref() == Some(central_key.id.as_str())
    };
    let (own, calls): (Vec<&Seen>, Vec<&Seen>) = calls.into_iter().partition(|c| c.access_key == "testing");
    assert!(own.iter().all(|c| central(c) || c.action == "ListAccountAliases"), "{own:?}");
    assert_eq!(own.iter().filter(|c| c.action == "UpdateAccessKey").count(), 1);
    assert!(!calls.iter().any(|c| central(c)), "no member's credentials for the own account's user");
    let mut checked = 0;
    for call in &calls {
        let signer = credential_of.iter().find(|(_, k)| **k == call.access_key).map(|(acct, _)| acct.as_str());
        assert!(signer.is_some(), "{} signed with {}, not a member's credentials", call.action, call.access_key);
        if let Some(key) = call.param("AccessKeyId") {
            assert_eq!(signer, account_of_key.get(key.as_str()).copied(), "{} of {key}", call.action);
            checked += 1;
        }
        if let Some(user) = call.param("UserName")
            && let Some(account) = account_of_user.get(user.as_str())
        {
            assert_eq!(signer, Some(*account), "{} of user {user}", call.action);
            checked += 1;
        }
    }
    assert!(checked >= 6 + 4 * 3, "{checked} calls checked");
    assert_eq!(
        calls.iter().filter(|c| c.action == "UpdateAccessKey").count(),
        6,
        "one deactivation per key, each with its own account's credentials"
    );
}

// ------------------------------------------------------------------------------------------------ refusals

#[tokio::test]
async fn an_event_from_an_account_outside_the_scope_is_refused_and_nothing_is_called() {
    let moto = Moto::shared();
    let sdk = moto.sdk().await;
    let (_, members) = organization(&sdk, 2).await;
    let (a, b) = (&members[0], &members[1]);
    let name = unique("outsider");
    let key_b = setup_key(&b.iam, &name).await;
    let proxy = FaultProxy::start(&moto.endpoint).await.unwrap();
    let via_proxy = faults::sdk_config_with(&proxy.endpoint, TEST_SETTINGS).await;
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let topic = ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.clone());

    // KEYGUARD_ACCOUNTS lists A only: B's event is refused before any call.
    let listed = guard(
        &via_proxy,
        &[
            ("KEYGUARD_MODE", "deactivate".into()),
            topic.clone(),
            ("KEYGUARD_MEMBER_ROLE", ROLE.into()),
            ("KEYGUARD_ACCOUNTS", a.id.clone()),
        ],
    )
    .await;
    let err = listed.handle(&key_b.event).await.unwrap_err();
    match &err {
        GuardError::AccountNotGuarded { account, why, .. } => {
            assert_eq!(account, &b.id);
            assert!(why.contains("KEYGUARD_ACCOUNTS"), "{why}");
        }
        other => panic!("expected AccountNotGuarded, got {other:?}"),
    }
    assert!(!err.retryable());
    assert_eq!(err.kind(), "KeyGuard.AccountNotGuarded");
    assert!(err.to_string().contains(&b.id), "{err}");
    let seen = proxy.take_seen();
    assert!(seen.is_empty(), "nothing is called in any account: {seen:?}");
    assert_eq!(listed.accounts().assumed(), 0);

    // Single-account mode (no member role): an event from a member is refused too; the only call is STS
    // GetCallerIdentity, which finds the function's own account.
    let single = guard(&via_proxy, &[("KEYGUARD_MODE", "deactivate".into()), topic.clone()]).await;
    let err = single.handle(&key_b.event).await.unwrap_err();
    assert!(matches!(&err, GuardError::AccountNotGuarded { account, .. } if account == &b.id), "{err:?}");
    assert!(err.to_string().contains("single-account mode guards only 123456789012"), "{err}");
    let seen = proxy.take_seen();
    assert_eq!(
        seen.iter().map(|s| (s.service.as_str(), s.action.as_str())).collect::<Vec<_>>(),
        [("sts", "GetCallerIdentity")]
    );

    // The envelope's account and recipientAccountId disagree: refused, nothing called.
    let mut forged = key_b.event.clone();
    forged["account"] = json!(a.id);
    let err = listed.handle(&forged).await.unwrap_err();
    assert!(matches!(err, GuardError::Refused { .. }), "{err:?}");
    assert!(!err.retryable());
    assert!(proxy.take_seen().is_empty());

    assert_eq!(b.iam.key_status(&name, &key_b.id).await.unwrap(), "Active");
    assert!(alerts.drain().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_assume_role_is_retryable_and_names_the_account_and_access_denied_is_a_configuration_error() {
    let moto = Moto::shared();
    let sdk = moto.sdk().await;
    let (_, members) = organization(&sdk, 2).await;
    let (a, b) = (&members[0], &members[1]);
    let key_a = setup_key(&a.iam, &unique("assume")).await;
    let key_b = setup_key(&b.iam, &unique("assume")).await;
    let proxy = FaultProxy::start(&moto.endpoint).await.unwrap();
    let via_proxy = faults::sdk_config_with(&proxy.endpoint, TEST_SETTINGS).await;
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let vars = [
        ("KEYGUARD_MODE", "deactivate".to_string()),
        ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.clone()),
        ("KEYGUARD_MEMBER_ROLE", ROLE.into()),
        ("KEYGUARD_ACCOUNTS", accounts(&[a, b])),
    ];
    let user_a = key_a.event["detail"]["requestParameters"]["userName"].as_str().unwrap().to_string();

    // STS fails for A's role (every attempt): A's event fails as retryable, naming A and the role; B is unaffected.
    proxy.install(Schedule::none().on_param(
        STS,
        "AssumeRole",
        "RoleArn",
        role_arn(&a.id),
        When::Always,
        Fault::ServerError,
    ));
    let g = guard(&via_proxy, &vars).await;
    let err = g.handle(&key_a.event).await.unwrap_err();
    assert!(matches!(err, GuardError::Aws { .. }), "{err:?}");
    assert!(err.retryable(), "{err}");
    assert_eq!(err.kind(), "KeyGuard.AwsError");
    let text = err.to_string();
    assert!(text.contains(&format!("account {}", a.id)) && text.contains(&role_arn(&a.id)), "{text}");
    let seen = proxy.take_seen();
    assert!(iam_calls(&seen).is_empty(), "nothing read or changed in A without its credentials");
    assert_eq!(a.iam.key_status(&user_a, &key_a.id).await.unwrap(), "Active");
    let report = g.handle(&key_b.event).await.unwrap();
    assert_eq!(report.decisions[0].action, Action::Deactivated, "another account goes on");
    // Lambda retries the event once STS answers again: it completes.
    proxy.clear();
    let report = g.handle(&key_a.event).await.unwrap();
    assert_eq!(report.decisions[0].action, Action::Deactivated);
    assert_eq!(a.iam.key_status(&user_a, &key_a.id).await.unwrap(), "Inactive");

    // AccessDenied (the member role missing, or not trusting the guard): not retryable, and says what to fix.
    let key_a2 = setup_key(&a.iam, &unique("denied")).await;
    proxy.install(Schedule::none().on_param(
        STS,
        "AssumeRole",
        "RoleArn",
        role_arn(&a.id),
        When::Always,
        Fault::Denied,
    ));
    proxy.take_seen();
    let g = guard(&via_proxy, &vars).await;
    let err = g.handle(&key_a2.event).await.unwrap_err();
    assert!(!err.retryable(), "{err}");
    assert_eq!(err.kind(), "KeyGuard.AccessDenied");
    let text = err.to_string();
    assert!(text.contains(&format!("account {}", a.id)), "{text}");
    assert!(text.contains("deploy the member role there"), "{text}");
    let seen = proxy.take_seen();
    assert_eq!(seen.iter().filter(|s| s.action == "AssumeRole").count(), 1, "AccessDenied is not retried by the SDK");
    assert!(iam_calls(&seen).is_empty());
    proxy.clear();
}

// ------------------------------------------------------------------------------------------------ organization mode

#[tokio::test(flavor = "multi_thread")]
async fn organization_mode_guards_the_active_accounts_of_the_organization() {
    // Its own moto: the organization's account list is this test's alone.
    let moto = Moto::start().unwrap();
    let sdk = moto.sdk().await;
    let (org, members) = organization(&sdk, 3).await;
    let (a, closed) = (&members[0], &members[2]);
    let key_a = setup_key(&a.iam, &unique("org")).await;
    let key_closed = setup_key(&closed.iam, &unique("org")).await;
    let key_b = setup_key(&members[1].iam, &unique("org")).await;
    aws_sdk_organizations::Client::new(&sdk).close_account().account_id(&closed.id).send().await.unwrap();
    // An account outside the organization, with a real key.
    let outside_id = "999900001111";
    let outside = Iam::in_account(&keyguard_tests::org::assume(&sdk, outside_id, ROLE).await.unwrap(), outside_id);
    let key_outside = setup_key(&outside, &unique("outside")).await;

    let proxy = FaultProxy::start(&moto.endpoint).await.unwrap();
    let via_proxy = faults::sdk_config_with(&proxy.endpoint, TEST_SETTINGS).await;
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let queue = aws_sdk_sqs::Client::new(&sdk).create_queue().queue_name(unique("sweep")).send().await.unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();
    let vars = [
        ("KEYGUARD_MODE", "deactivate".to_string()),
        ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.clone()),
        ("KEYGUARD_MEMBER_ROLE", ROLE.into()),
        ("KEYGUARD_SWEEP_QUEUE_URL", queue_url.clone()),
    ];

    // A fresh guard refuses the outsider after finding its own account and listing the organization's: nothing is
    // read or assumed in any account.
    let g = guard(&via_proxy, &vars).await;
    let err = g.handle(&key_outside.event).await.unwrap_err();
    assert!(matches!(&err, GuardError::AccountNotGuarded { account, .. } if account == outside_id), "{err:?}");
    assert!(err.to_string().contains("not an active account of the organization"), "{err}");
    let seen = proxy.take_seen();
    assert_eq!(
        seen.iter().map(|s| (s.service.as_str(), s.action.as_str())).collect::<Vec<_>>(),
        [("sts", "GetCallerIdentity"), ("organizations", "ListAccounts")]
    );
    // A closed (suspended) member is no longer guarded; the listing is fresh, so no call at all.
    let err = g.handle(&key_closed.event).await.unwrap_err();
    assert!(matches!(&err, GuardError::AccountNotGuarded { account, .. } if account == &closed.id), "{err:?}");
    assert!(proxy.take_seen().is_empty(), "the listing of a minute ago still answers");
    // A member is guarded and acted on.
    let report = g.handle(&key_a.event).await.unwrap();
    assert_eq!(report.decisions[0].action, Action::Deactivated);
    for (iam, key) in [(&outside, &key_outside), (&closed.iam, &key_closed)] {
        let user = key.event["detail"]["requestParameters"]["userName"].as_str().unwrap();
        assert_eq!(iam.key_status(user, &key.id).await.unwrap(), "Active");
    }

    // The schedule queues one message per active account of the organization (the management account included).
    let report = g.invoke(&scheduled_event()).await.unwrap();
    assert_eq!(report["event_name"], "Scheduled Event");
    let messages = receive_all(&sdk, &queue_url).await;
    let queued: BTreeSet<String> = messages
        .iter()
        .map(|m| serde_json::from_str::<Value>(&m.1).unwrap()["account"].as_str().unwrap().into())
        .collect();
    let expected: BTreeSet<String> = [org.management.clone(), members[0].id.clone(), members[1].id.clone()].into();
    assert_eq!(queued, expected);
    assert_eq!(messages.len(), 3);

    // `keyguard audit --organization`: the same accounts, each through the member role, in one report.
    let endpoint = moto.endpoint.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_keyguard(&["audit", "--organization", "--role-name", ROLE, "--format", "json"], &aws_env(&endpoint))
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "B's violation: {}", String::from_utf8_lossy(&out.stderr));
    let rows = json_lines(&out.stdout);
    let audited: BTreeSet<String> = rows.iter().map(|r| r["account"].as_str().unwrap().to_string()).collect();
    assert_eq!(audited, [members[0].id.clone(), members[1].id.clone()].into(), "the management account has no users");
    let row_b = rows.iter().find(|r| r["access_key_id"] == key_b.id.as_str()).unwrap();
    assert_eq!(
        (row_b["account"].as_str(), row_b["verdict"].as_str()),
        (Some(members[1].id.as_str()), Some("violation"))
    );
    // A's key, deactivated above: the credential report settles an inactive key, so its row names the user (the
    // report carries no key ids).
    let user_a = key_a.event["detail"]["requestParameters"]["userName"].as_str().unwrap();
    let row_a = rows.iter().find(|r| r["account"] == members[0].id.as_str() && r["user"] == user_a).unwrap();
    assert_eq!(row_a["verdict"], "compliant", "deactivated above: {row_a}");
    assert!(rows.iter().all(|r| r["access_key_id"] != key_a.id.as_str() || r["verdict"] == "compliant"), "{rows:?}");
    assert!(!rows.iter().any(|r| r["access_key_id"] == key_closed.id.as_str()), "a closed account is not audited");
}

#[tokio::test]
async fn organization_mode_where_the_organization_cannot_be_listed_is_a_configuration_error() {
    // The guard deployed in a member account that is neither the management account nor a delegated administrator:
    // AWS answers ListAccounts with AccessDenied there, moto with an empty list. Neither may pass for an
    // organization without accounts (which would refuse every event and sweep nothing, silently).
    let sdk = Moto::shared().sdk().await;
    let (_, members) = organization(&sdk, 2).await;
    let (a, b) = (&members[0], &members[1]);
    let key_b = setup_key(&b.iam, &unique("unlisted")).await;
    let in_member = keyguard_tests::org::assume(&sdk, &a.id, ROLE).await.unwrap();
    let queue_url = aws_sdk_sqs::Client::new(&sdk)
        .create_queue()
        .queue_name(unique("sweep"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let g = guard(
        &in_member,
        &[
            ("KEYGUARD_MODE", "dry-run".into()),
            ("KEYGUARD_MEMBER_ROLE", ROLE.into()),
            ("KEYGUARD_SWEEP_QUEUE_URL", queue_url),
        ],
    )
    .await;
    for event in [key_b.event.clone(), scheduled_event()] {
        let err = g.handle(&event).await.unwrap_err();
        assert!(matches!(err, GuardError::Aws { .. }), "{err:?}");
        assert_eq!(err.kind(), "KeyGuard.AccessDenied", "{err}");
        assert!(!err.retryable());
        let text = err.to_string();
        assert!(text.contains("KEYGUARD_ACCOUNTS") && text.contains("management account"), "{text}");
    }
}

/// Every message on the queue: (messageId, body, receiptHandle).
async fn receive_all(sdk: &SdkConfig, url: &str) -> Vec<(String, String, String)> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut all = Vec::new();
    loop {
        let out =
            sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(0).send().await.unwrap();
        if out.messages().is_empty() {
            return all;
        }
        for m in out.messages() {
            all.push((
                m.message_id().unwrap().to_string(),
                m.body().unwrap().to_string(),
                m.receipt_handle().unwrap().to_string(),
            ));
        }
    }
}

/// The messages as Lambda's SQS event source mapping hands them to the function.
fn sqs_event(messages: &[(String, String, String)], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body, handle)| {
            json!({"messageId": id, "receiptHandle": handle, "body": body,
                   "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767236400000",
                                  "SenderId": "AROATEST:keyguard", "ApproximateFirstReceiveTimestamp": "1767236400001"},
                   "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
                   "awsRegion": "us-east-1"})
        })
        .collect();
    json!({ "Records": records })
}

// ------------------------------------------------------------------------------------------------ the sweep

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_fans_out_one_message_per_account_and_a_failing_account_fails_alone() {
    let moto = Moto::shared();
    let sdk = moto.sdk().await;
    let (_, members) = organization(&sdk, 3).await;
    let (a, b, c) = (&members[0], &members[1], &members[2]);
    let alias = unique("acme-sweep");
    a.iam.client.create_account_alias().account_alias(&alias).send().await.unwrap();
    let name_a = unique("sweep-a");
    let key_a = setup_key(&a.iam, &name_a).await;
    let name_b = unique("sweep-b");
    let key_b = setup_key(&b.iam, &name_b).await;
    setup_key(&c.iam, &unique("sweep-c")).await;

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url =
        sqs.create_queue().queue_name(unique("sweep")).send().await.unwrap().queue_url().unwrap().to_string();
    let proxy = FaultProxy::start(&moto.endpoint).await.unwrap();
    let via_proxy = faults::sdk_config_with(&proxy.endpoint, TEST_SETTINGS).await;
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let g = guard(
        &via_proxy,
        &[
            ("KEYGUARD_MODE", "deactivate".into()),
            ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.clone()),
            ("KEYGUARD_MEMBER_ROLE", ROLE.into()),
            ("KEYGUARD_ACCOUNTS", accounts(&[a, b, c])),
            ("KEYGUARD_SWEEP_QUEUE_URL", queue_url.clone()),
        ],
    )
    .await;

    // The schedule: one message per guarded account on the real queue, and nothing else done.
    let report = g.invoke(&scheduled_event()).await.unwrap();
    assert_eq!(report["decisions"], json!([]));
    let messages = receive_all(&sdk, &queue_url).await;
    let bodies: Vec<Value> = messages.iter().map(|m| serde_json::from_str(&m.1).unwrap()).collect();
    let queued: BTreeSet<&str> = bodies.iter().map(|b| b["account"].as_str().unwrap()).collect();
    assert_eq!(queued, [a.id.as_str(), b.id.as_str(), c.id.as_str()].into());
    assert_eq!(messages.len(), 3, "one message per account");
    assert!(iam_calls(&proxy.take_seen()).is_empty(), "the schedule itself reads no account");

    // C's member role cannot be assumed.
    proxy.install(Schedule::none().on_param(
        STS,
        "AssumeRole",
        "RoleArn",
        role_arn(&c.id),
        When::Always,
        Fault::Denied,
    ));
    let event = sqs_event(&messages, &format!("arn:aws:sqs:us-east-1:{ACCOUNT}:sweep"));
    let response = g.invoke(&event).await.unwrap();
    let id_of =
        |account: &str| messages.iter().zip(&bodies).find(|(_, b)| b["account"] == account).unwrap().0.0.clone();
    assert_eq!(response, json!({"batchItemFailures": [{"itemIdentifier": id_of(&c.id)}]}));

    // One digest per account with findings, naming the account (and its alias).
    let received = alerts.drain().await.unwrap();
    let digests: Vec<&Value> = received.iter().map(|r| &r.body).filter(|b| b["kind"] == "digest").collect();
    assert_eq!(digests.len(), 2, "{received:#?}");
    let digest_of = |account: &str| *digests.iter().find(|d| d["account"] == account).unwrap();
    let (da, db) = (digest_of(&a.id), digest_of(&b.id));
    assert_eq!(da["account_alias"], alias.as_str());
    assert_eq!(db["account_alias"], Value::Null);
    let users = |d: &Value| -> Vec<String> {
        d["findings"].as_array().unwrap().iter().map(|f| f["user"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(users(da), std::slice::from_ref(&name_a));
    assert_eq!(users(db), std::slice::from_ref(&name_b));
    assert_eq!(da["violations"], 1);
    // The sweep reports (KEYGUARD_RECONCILE=dry-run): nothing deactivated.
    assert_eq!(a.iam.key_status(&name_a, &key_a.id).await.unwrap(), "Active");
    assert_eq!(b.iam.key_status(&name_b, &key_b.id).await.unwrap(), "Active");
    proxy.clear();
}

// ------------------------------------------------------------------------------------------------ the CLI

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_across_accounts_is_one_report_and_a_failing_account_is_an_error_row() {
    let moto = Moto::shared();
    let sdk = moto.sdk().await;
    let (org, members) = organization(&sdk, 3).await;
    let (a, b, d) = (&members[0], &members[1], &members[2]);
    let name = unique("audit-same");
    let key_a = setup_key(&a.iam, &name).await;
    let key_b = setup_key(&b.iam, &name).await;
    let central_user = unique("audit-central");
    let key_central = setup_key(&Iam::new(&sdk), &central_user).await;
    let three = format!("{},{},{}", org.management, a.id, b.id);

    let run = |args: Vec<String>, endpoint: String| async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_keyguard(&args, &aws_env(&endpoint))
        })
        .await
        .unwrap()
    };
    let args = |accounts: &str, format: &str| -> Vec<String> {
        ["audit", "--accounts", accounts, "--role-name", ROLE, "--format", format].map(str::to_string).to_vec()
    };

    // The three accounts: every row names its account; the same user name is reported in each member apart.
    let out = run(args(&three, "json"), moto.endpoint.clone()).await;
    assert_eq!(out.status.code(), Some(1), "violations found: {}", String::from_utf8_lossy(&out.stderr));
    let rows = json_lines(&out.stdout);
    let allowed: BTreeSet<&str> = [org.management.as_str(), a.id.as_str(), b.id.as_str()].into();
    assert!(rows.iter().all(|r| allowed.contains(r["account"].as_str().unwrap()) && r.get("error").is_none()));
    let find = |key: &str| rows.iter().find(|r| r["access_key_id"] == key).unwrap_or_else(|| panic!("{key}"));
    assert_eq!(
        (find(&key_a.id)["account"].as_str(), find(&key_a.id)["user"].as_str()),
        (Some(a.id.as_str()), Some(name.as_str()))
    );
    assert_eq!(find(&key_b.id)["account"], b.id.as_str());
    assert_eq!(find(&key_central.id)["account"], org.management.as_str());
    for key in [&key_a.id, &key_b.id, &key_central.id] {
        assert_eq!(find(key)["verdict"], "violation");
        assert_eq!(find(key)["action"], "dry-run");
    }

    // A fourth account whose role cannot be assumed: it is an error row, the others are reported, exit 2.
    let proxy = FaultProxy::start(&moto.endpoint).await.unwrap();
    proxy.install(Schedule::none().on_param(
        STS,
        "AssumeRole",
        "RoleArn",
        role_arn(&d.id),
        When::Always,
        Fault::Denied,
    ));
    let four = format!("{three},{}", d.id);
    let out = run(args(&four, "json"), proxy.endpoint.clone()).await;
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = json_lines(&out.stdout);
    let errors: Vec<&Value> = rows.iter().filter(|r| r.get("error").is_some()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["account"], d.id.as_str());
    assert!(errors[0]["error"].as_str().unwrap().contains("AccessDenied"), "{}", errors[0]);
    for key in [&key_a.id, &key_b.id, &key_central.id] {
        assert!(rows.iter().any(|r| r["access_key_id"] == key.as_str()), "{key} still reported");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("not audited: account {}", d.id)), "{stderr}");

    // The table: an account column, and the error row.
    let out = run(args(&four, "table"), proxy.endpoint.clone()).await;
    assert_eq!(out.status.code(), Some(2));
    let table = String::from_utf8_lossy(&out.stdout);
    println!("keyguard audit --accounts {four} --role-name {ROLE}\n{table}"); // README's sample (--nocapture)
    assert!(table.lines().next().unwrap().starts_with("account "), "{table}");
    let key_line = table.lines().find(|l| l.contains(&key_a.id)).unwrap();
    assert!(key_line.starts_with(&a.id), "{key_line}");
    let error_line = table.lines().find(|l| l.starts_with(&d.id)).unwrap();
    assert!(error_line.contains(" error ") && error_line.contains("AccessDenied"), "{error_line}");
    assert!(table.contains("; 1 not audited (error)"), "{table}");

    // CSV: the error row has verdict `error`.
    let out = run(args(&four, "csv"), proxy.endpoint.clone()).await;
    let csv_text = String::from_utf8_lossy(&out.stdout).to_string();
    let error_row = csv_text.lines().find(|l| l.starts_with(&d.id)).unwrap();
    assert!(error_row.contains(",error,"), "{error_row}");
    assert!(csv_text.lines().next().unwrap().starts_with("account,user,access_key_id,verdict,reason"));
}

#[tokio::test(flavor = "multi_thread")]
async fn handle_with_the_member_role_acts_in_the_member_account() {
    let moto = Moto::shared();
    let sdk = moto.sdk().await;
    let (_, members) = organization(&sdk, 2).await;
    let (a, b) = (&members[0], &members[1]);
    let alias = unique("acme-cli");
    a.iam.client.create_account_alias().account_alias(&alias).send().await.unwrap();
    let name = unique("cli-member");
    let key_a = setup_key(&a.iam, &name).await;
    let key_b = setup_key(&b.iam, &name).await;
    let central = Iam::new(&sdk);
    let key_central = setup_key(&central, &name).await;
    let alerts = AlertSink::new(&sdk).await.unwrap();
    let file = std::env::temp_dir().join(format!("{}.jsonl", unique("org-events")));
    std::fs::write(&file, format!("{}\n{}\n", key_a.event, key_b.event)).unwrap();

    let mut env = aws_env(&moto.endpoint);
    for (k, v) in [
        ("KEYGUARD_MODE", "deactivate".to_string()),
        ("KEYGUARD_TOPIC_ARN", alerts.topic_arn.clone()),
        ("KEYGUARD_MEMBER_ROLE", ROLE.into()),
        ("KEYGUARD_ACCOUNTS", a.id.clone()),
    ] {
        env.push((k.into(), v));
    }
    let path = file.to_str().unwrap().to_string();
    let out =
        tokio::task::spawn_blocking(move || run_keyguard(&["handle", "-v", "--apply", &path], &env)).await.unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(out.status.code(), Some(1), "B's event was not handled");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["account"], a.id.as_str());
    assert_eq!(lines[0]["account_alias"], alias.as_str());
    assert_eq!(lines[0]["decisions"][0]["action"], "deactivated");
    assert_eq!(lines[1]["error_type"], "KeyGuard.AccountNotGuarded");
    assert_eq!(lines[1]["retryable"], false);
    assert!(lines[1]["error"].as_str().unwrap().contains(&b.id));
    // The refusal's log line names the account.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "event failed")
        .unwrap_or_else(|| panic!("no 'event failed' log line: {stderr}"));
    assert_eq!(log["account"], b.id.as_str());
    assert_eq!(log["error_type"], "KeyGuard.AccountNotGuarded");

    assert_eq!(a.iam.key_status(&name, &key_a.id).await.unwrap(), "Inactive");
    assert_eq!(b.iam.key_status(&name, &key_b.id).await.unwrap(), "Active");
    assert_eq!(central.key_status(&name, &key_central.id).await.unwrap(), "Active");
    let received = alerts.drain().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["account"], a.id.as_str());
}
