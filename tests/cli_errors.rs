//! The built `keyguard` binary when AWS cannot be used: no credentials, an expired SSO session, a region that is not
//! one, a denied action, throttling that outlasts the retries, a bad setting. Each gives one line on stderr with the
//! fix and exit code 2; the SDK's own report only with `-v`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

use keyguard_tests::faults::{Fault, FaultProxy, IAM, Schedule, When};
use keyguard_tests::{Moto, aws_env, repo, run_keyguard, unique};

/// An event the guard must read IAM for (a key created by CloudFormation for a user).
fn event_file() -> String {
    repo().join("tests/fixtures/events/ev-create-access-key-cloudformation.json").to_str().unwrap().to_string()
}

/// A home directory of its own (empty, or with the files a test writes), so that no one's ~/.aws is read.
fn home() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("keyguard-home"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Only what a test names: no credentials, no region, no instance metadata (which would make the SDK wait).
fn bare_env(home: &Path) -> Vec<(String, String)> {
    vec![("HOME".into(), home.to_str().unwrap().into()), ("AWS_EC2_METADATA_DISABLED".into(), "true".into())]
}

/// The one line on stderr (asserting that there is exactly one), and exit code 2.
fn one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    assert!(lines[0].starts_with("keyguard: "), "{stderr}");
    lines[0].to_string()
}

#[test]
fn no_credentials_is_one_line_with_the_ways_to_sign_in_in_every_command() {
    let home = home();
    let env = bare_env(&home);
    let event = event_file();
    for args in [
        vec!["audit"],
        vec!["handle", event.as_str()],
        vec!["ledger", "create", "--table", "keyguard-ledger"],
        vec!["replay", "s3://keyguard-trail/AWSLogs/"],
    ] {
        let out = run_keyguard(&args, &env);
        let line = one_line(&out);
        assert!(line.starts_with("keyguard: no AWS credentials found"), "{args:?}: {line}");
        for fix in ["aws sso login", "aws configure", "AWS_ACCESS_KEY_ID"] {
            assert!(line.contains(fix), "{args:?}: {fix} missing from {line}");
        }
        assert!(!line.contains("CredentialsNotLoaded") && !line.contains("Imds"), "no SDK debug text: {line}");
    }
    // -v: the SDK's account of what it tried, as JSON log lines, before the same advice.
    let out = run_keyguard(&["-v", "audit"], &env);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().count() > 1, "{stderr}");
    assert!(stderr.contains("provider in chain did not provide credentials"), "{stderr}");
    assert!(stderr.lines().last().unwrap().starts_with("keyguard: no AWS credentials found"), "{stderr}");
}

#[test]
fn an_expired_sso_session_says_to_sign_in_again_with_the_profile() {
    let home = home();
    std::fs::create_dir_all(home.join(".aws/sso/cache")).unwrap();
    std::fs::write(
        home.join(".aws/config"),
        "[profile security-audit]\nsso_session = keyguard-test\nsso_account_id = 111122223333\n\
         sso_role_name = SecurityAudit\nregion = us-east-1\n\n\
         [sso-session keyguard-test]\nsso_region = us-east-1\nsso_start_url = https://example.awsapps.com/start\n\
         sso_registration_scopes = sso:account:access\n",
    )
    .unwrap();
    // The token cache of `aws sso login`: named by the SHA-1 of the session's name (sha1("keyguard-test")), and
    // expired, without the refresh token a newer login leaves.
    std::fs::write(
        home.join(".aws/sso/cache/a368fd5c6fe53c9eb9f57d15363eeadd02b68d8c.json"),
        r#"{"accessToken": "expired", "expiresAt": "2020-01-01T00:00:00Z", "region": "us-east-1",
            "startUrl": "https://example.awsapps.com/start"}"#,
    )
    .unwrap();
    let mut env = bare_env(&home);
    env.push(("AWS_PROFILE".into(), "security-audit".into()));
    for args in [vec!["audit"], vec!["handle", &event_file()]] {
        let line = one_line(&run_keyguard(&args, &env));
        assert!(
            line.contains("the AWS session of profile `security-audit` has expired (the SSO token has expired"),
            "{args:?}: {line}"
        );
        assert!(line.contains("Sign in again with `aws sso login --profile security-audit`"), "{args:?}: {line}");
    }
}

#[test]
fn a_region_that_is_not_one_is_named_and_no_region_is_us_east_1() {
    let moto = Moto::shared();
    let mut env = aws_env(&moto.endpoint);
    env.retain(|(k, _)| k != "AWS_REGION");
    env.push(("AWS_REGION".into(), "us-east1".into()));
    for args in [vec!["audit"], vec!["ledger", "create", "--table", "keyguard-ledger"]] {
        let line = one_line(&run_keyguard(&args, &env));
        assert!(line.contains("the AWS region \"us-east1\""), "{args:?}: {line}");
        assert!(line.contains("is not a region name") && line.contains("us-east-1"), "{args:?}: {line}");
    }
    // No region at all: IAM is global, the calls go to us-east-1 and the audit runs (0 or 1: other tests' users).
    env.retain(|(k, _)| k != "AWS_REGION");
    let out = run_keyguard(&["audit", "--format", "json"], &env);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Turns on moto's IAM policy enforcement for every request after this one (moto's `POST /moto-api/reset-auth`
/// with the number of requests still let through).
fn enforce_iam_policies(endpoint: &str) {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let body = "0";
    write!(
        stream,
        "POST /moto-api/reset-auth HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_action_is_named_with_the_principal() {
    // A server of its own: enforcement applies to every request it serves from now on.
    let moto = Moto::start().unwrap();
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    let user = unique("auditor");
    iam.create_user().user_name(&user).send().await.unwrap();
    // Allowed to say who it is and read the account's alias, not to list users (neither way).
    let policy = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                     "Action": ["sts:GetCallerIdentity", "iam:ListAccountAliases"], "Resource": "*"}]}"#;
    iam.put_user_policy().user_name(&user).policy_name("whoami").policy_document(policy).send().await.unwrap();
    let key = iam.create_access_key().user_name(&user).send().await.unwrap().access_key.unwrap();
    enforce_iam_policies(&moto.endpoint);

    let mut env: Vec<(String, String)> = aws_env(&moto.endpoint)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .collect();
    env.push(("AWS_ACCESS_KEY_ID".into(), key.access_key_id().to_string()));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), key.secret_access_key().to_string()));
    let out =
        tokio::task::spawn_blocking(move || run_keyguard(&["audit", "--no-credential-report"], &env)).await.unwrap();
    let line = one_line(&out);
    assert!(line.contains(&format!("user/{user} is not allowed to call iam:ListUsers")), "{line}");
    assert!(line.contains("Grant iam:ListUsers") && line.contains("keyguard permissions"), "{line}");
    assert!(
        out.stdout.is_empty(),
        "no report of an account that was not read: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_after_the_retries_says_to_try_again_with_less_concurrency() {
    let moto = Moto::shared();
    let proxy = FaultProxy::start(&moto.endpoint).await.unwrap();
    // The audit lists users with GetAccountAuthorizationDetails (ListUsers only where that is denied).
    proxy.install(Schedule::none().on_action(IAM, "GetAccountAuthorizationDetails", When::Always, Fault::Throttle));
    let env = aws_env(&proxy.endpoint);
    let out =
        tokio::task::spawn_blocking(move || run_keyguard(&["audit", "--no-credential-report"], &env)).await.unwrap();
    let line = one_line(&out);
    assert!(
        line.contains("AWS throttled iam:GetAccountAuthorizationDetails and 5 attempts did not get through"),
        "{line}"
    );
    assert!(line.contains("--concurrency"), "{line}");
    let tried = proxy.take_seen().iter().filter(|s| s.action == "GetAccountAuthorizationDetails").count();
    assert_eq!(tried, 5, "the SDK's attempts");
}

#[test]
fn a_bad_setting_is_an_error_in_every_command_even_behind_a_flag() {
    let home = home();
    let mut env = bare_env(&home);
    env.push(("KEYGUARD_SETUP_WINDOW".into(), "soon".into()));
    for args in [vec!["permissions"], vec!["audit", "--window", "10m"], vec!["handle", &event_file()]] {
        let line = one_line(&run_keyguard(&args, &env));
        assert!(line.contains("KEYGUARD_SETUP_WINDOW") && line.contains("\"soon\""), "{args:?}: {line}");
    }
    let mut env = bare_env(&home);
    env.push(("KEYGUARD_MODE".into(), "loud".into()));
    let line = one_line(&run_keyguard(&["handle", &event_file()], &env));
    assert!(line.contains("KEYGUARD_MODE"), "a dry run still checks the mode: {line}");
}
