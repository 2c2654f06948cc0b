//! Security Hub findings through the real aws-sdk-securityhub client against moto server: a console user set up
//! in moto's IAM by an admin, the finding about the setup key filed, re-delivered, resolved by deactivation, and
//! archived once the key is gone. moto upserts by `Id` and ignores `GetFindings` filters (DESIGN.md §4), so the
//! adapter's own filtering is exercised too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_securityhub::types::{AwsSecurityFinding, RecordState};
use chrono::{DateTime, TimeDelta, Utc};
use keyguard_aws::SdkIam;
use keyguard_aws::ports::{IamReader, KeyDeactivator};
use keyguard_aws::securityhub::{ImportOutcome, ListedFinding, Listing, SdkSecurityHub, to_sdk};
use keyguard_core::asff::{self, ArchiveReason, FindingState, SecurityFinding};
use keyguard_core::{Action, AlertFacts, Principal, Verdict};
use keyguard_tests::{ACCOUNT, Caller, Iam, Moto, unique};

const REGION: &str = "us-east-1";

struct World {
    sdk: aws_config::SdkConfig,
    iam: Iam,
    hub: SdkSecurityHub,
}

async fn world() -> World {
    let sdk = Moto::shared().sdk().await;
    let hub = SdkSecurityHub::new(aws_sdk_securityhub::Client::new(&sdk));
    World { iam: Iam::new(&sdk), hub, sdk }
}

fn admin() -> Caller {
    Caller::Role("AWSReservedSSO_AdministratorAccess_4f7c2a9e".into())
}

impl World {
    /// A console user whose key an admin created during setup, in moto's IAM; the facts as the guard has them.
    async fn setup_key(&self, prefix: &str) -> AlertFacts {
        let name = unique(prefix);
        self.iam.create_user(&admin(), &name, None, &[]).await.unwrap();
        self.iam.create_password(&admin(), &name).await.unwrap();
        let key = self.iam.create_key(&admin(), &name).await.unwrap();
        // What IAM says now, read the way the guard reads it.
        let reader = SdkIam::new(aws_sdk_iam::Client::new(&self.sdk));
        let user = reader.get_user(&name).await.unwrap().expect("user");
        let keys = reader.list_access_keys(&name).await.unwrap().expect("keys");
        let created = keys.iter().find(|k| k.id == key.id).expect("the key").created;
        AlertFacts {
            account: ACCOUNT.into(),
            user_name: name,
            user_arn: Some(user.arn),
            user_created: user.created,
            access_key_id: key.id,
            key_created: created,
            has_password: true,
            creator: Some(Principal {
                kind: "AssumedRole".into(),
                arn: Some(admin().arn()),
                account_id: Some(ACCOUNT.into()),
                user_name: None,
                issuer_arn: None,
                invoked_by: None,
            }),
            source_ip: Some("203.0.113.7".into()),
            user_agent: Some("aws-cli/2.15.30 md/command#iam.create-access-key".into()),
            event_id: unique("evt"),
            event_name: "CreateAccessKey".into(),
            verdict: Verdict::Violation,
            reason: "access key created during setup of a console user by an admin (not the user)".into(),
            action: Action::Notified,
            note: None,
            kind: keyguard_core::AlertKind::Finding,
            account_alias: None,
            exempt_tag: ("keyguard:exempt".into(), "true".into()),
        }
    }

    async fn import(&self, findings: &[SecurityFinding]) -> usize {
        match self.hub.import(findings).await.unwrap() {
            ImportOutcome::Imported { imported, failed, .. } => {
                assert!(failed.is_empty(), "{failed:?}");
                imported
            }
            ImportOutcome::NotEnabled { message } => panic!("moto accepts imports: {message}"),
        }
    }

    /// Every stored finding with this id, as GetFindings returns them (unfiltered: moto ignores filters).
    async fn stored(&self, id: &str) -> Vec<AwsSecurityFinding> {
        let client = aws_sdk_securityhub::Client::new(&self.sdk);
        let mut pages = client.get_findings().max_results(100).into_paginator().send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            all.extend(page.unwrap().findings().iter().filter(|f| f.id() == Some(id)).cloned());
        }
        all
    }

    async fn listed(&self) -> Vec<ListedFinding> {
        match self.hub.keyguard_findings().await.unwrap() {
            Listing::Findings(found) => found,
            Listing::NotEnabled { message } => panic!("{message}"),
        }
    }
}

/// Runs a scenario on a thread with a large stack. Reading findings back (GetFindings) runs the SDK's
/// `ResourceDetails` deserializer, which needs more than 8 MiB of stack in a debug build, though a tokio worker's
/// 2 MiB in release (securityhub_mocks.rs: `a_full_page_of_findings_is_read_on_a_worker_sized_stack`).
fn on_big_stack(scenario: impl std::future::Future<Output = ()> + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(scenario))
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

fn at(now: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    now + TimeDelta::minutes(minutes)
}

async fn a_violation_is_filed_and_listed_with_its_facts_() {
    let w = world().await;
    let facts = w.setup_key("sh-notify").await;
    let finding = SecurityFinding::new(&facts, Utc::now(), REGION, FindingState::of(&facts));
    assert_eq!(w.import(std::slice::from_ref(&finding)).await, 1);

    let stored = w.stored(&finding.id).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0], to_sdk(&finding), "what moto stored is what was sent");
    assert_eq!(stored[0].compliance().unwrap().status().unwrap().as_str(), "FAILED");
    assert_eq!(
        stored[0].product_fields().unwrap()["keyguard/CreatorArn"],
        admin().arn(),
        "the creator is in ProductFields"
    );

    let listed = w.listed().await;
    let ours = listed.iter().find(|l| l.id == finding.id).expect("listed");
    let back = ours.facts.as_ref().expect("facts read back from ProductFields");
    assert_eq!(
        (back.access_key_id.as_str(), back.user_name.as_str()),
        (facts.access_key_id.as_str(), facts.user_name.as_str())
    );
    assert_eq!(back.creator.as_ref().and_then(|c| c.arn.clone()), Some(admin().arn()));
}

async fn a_redelivered_event_updates_the_same_finding_() {
    let w = world().await;
    let facts = w.setup_key("sh-redeliver").await;
    let now = Utc::now();
    let first = SecurityFinding::new(&facts, now, REGION, FindingState::Active);
    let again = SecurityFinding::new(&facts, at(now, 5), REGION, FindingState::Active);
    assert_eq!(first.id, again.id);
    w.import(std::slice::from_ref(&first)).await;
    w.import(std::slice::from_ref(&again)).await;

    let stored = w.stored(&first.id).await;
    assert_eq!(stored.len(), 1, "one finding per key, never a duplicate");
    assert_eq!(stored[0].updated_at(), Some(again.updated_at.as_str()));
    assert!(stored[0].updated_at().unwrap() > first.updated_at.as_str(), "UpdatedAt increases");
    assert_eq!(stored[0].created_at(), Some(first.created_at.as_str()), "CreatedAt stays");
}

async fn deactivating_the_key_resolves_the_finding_() {
    let w = world().await;
    let mut facts = w.setup_key("sh-deactivate").await;
    let now = Utc::now();
    w.import(&[SecurityFinding::new(&facts, now, REGION, FindingState::Active)]).await;

    let iam = SdkIam::new(aws_sdk_iam::Client::new(&w.sdk));
    iam.deactivate(&facts.user_name, &facts.access_key_id).await.unwrap();
    assert_eq!(w.iam.key_status(&facts.user_name, &facts.access_key_id).await.unwrap(), "Inactive");
    facts.action = Action::Deactivated;
    let resolved = SecurityFinding::new(&facts, at(now, 1), REGION, FindingState::of(&facts));
    w.import(std::slice::from_ref(&resolved)).await;

    let stored = w.stored(&resolved.id).await;
    assert_eq!(stored.len(), 1);
    let f = &stored[0];
    assert_eq!(f.compliance().unwrap().status().unwrap().as_str(), "PASSED", "Security Hub resolves the workflow");
    assert_eq!(f.record_state(), Some(&RecordState::Active));
    let key = f.resources()[0].details().unwrap().aws_iam_access_key().unwrap();
    assert_eq!(key.status().unwrap().as_str(), "Inactive");
    assert!(f.description().unwrap().contains("KeyGuard deactivated the key"), "{:?}", f.description());
    assert!(f.workflow().is_none(), "the workflow is the customer's");
}

async fn the_sweep_archives_the_findings_of_keys_that_are_gone_() {
    let w = world().await;
    let kept = w.setup_key("sh-kept").await;
    let gone = w.setup_key("sh-gone").await;
    let now = Utc::now();
    w.import(&[
        SecurityFinding::new(&kept, now, REGION, FindingState::Active),
        SecurityFinding::new(&gone, now, REGION, FindingState::Active),
    ])
    .await;
    w.iam.delete_user(&gone.user_name).await.unwrap();

    // The sweep: each listed finding of ours is checked against IAM now; a key that is gone is archived, rebuilt
    // from the facts its ProductFields keep.
    let iam = SdkIam::new(aws_sdk_iam::Client::new(&w.sdk));
    let mut archive = Vec::new();
    for listed in w.listed().await {
        let Some(facts) = listed.facts.filter(|f| [&kept, &gone].iter().any(|k| k.access_key_id == f.access_key_id))
        else {
            continue; // another test's finding
        };
        let keys = iam.list_access_keys(&facts.user_name).await.unwrap().unwrap_or_default();
        if !keys.iter().any(|k| k.id == facts.access_key_id) {
            archive.push(SecurityFinding::new(
                &facts,
                at(now, 1),
                REGION,
                FindingState::Archived(ArchiveReason::KeyGone),
            ));
        }
    }
    assert_eq!(archive.len(), 1);
    w.import(&archive).await;

    let stored = w.stored(&asff::finding_id(ACCOUNT, &gone.access_key_id)).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].record_state(), Some(&RecordState::Archived));
    assert!(stored[0].resources()[0].details().unwrap().aws_iam_access_key().unwrap().status().is_none());
    let listed: Vec<String> = w.listed().await.into_iter().map(|l| l.id).collect();
    assert!(!listed.contains(&asff::finding_id(ACCOUNT, &gone.access_key_id)), "archived: no longer listed");
    assert!(listed.contains(&asff::finding_id(ACCOUNT, &kept.access_key_id)), "the other key's finding stays");
}

async fn findings_of_other_generators_are_never_listed_() {
    let w = world().await;
    let facts = w.setup_key("sh-foreign").await;
    let mut foreign = SecurityFinding::new(&facts, Utc::now(), REGION, FindingState::Active);
    foreign.id = format!("arn:aws:securityhub:{REGION}:{ACCOUNT}:security-control/IAM.3/finding/{}", unique("f"));
    foreign.generator_id = "security-control/IAM.3".into();
    w.import(std::slice::from_ref(&foreign)).await;
    assert_eq!(w.stored(&foreign.id).await.len(), 1, "moto stored it");
    assert!(w.listed().await.iter().all(|l| l.id != foreign.id && l.id.starts_with(asff::ID_PREFIX)));
}

#[test]
fn a_violation_is_filed_and_listed_with_its_facts() {
    on_big_stack(a_violation_is_filed_and_listed_with_its_facts_());
}

#[test]
fn a_redelivered_event_updates_the_same_finding() {
    on_big_stack(a_redelivered_event_updates_the_same_finding_());
}

#[test]
fn deactivating_the_key_resolves_the_finding() {
    on_big_stack(deactivating_the_key_resolves_the_finding_());
}

#[test]
fn the_sweep_archives_the_findings_of_keys_that_are_gone() {
    on_big_stack(the_sweep_archives_the_findings_of_keys_that_are_gone_());
}

#[test]
fn findings_of_other_generators_are_never_listed() {
    on_big_stack(findings_of_other_generators_are_never_listed_());
}
