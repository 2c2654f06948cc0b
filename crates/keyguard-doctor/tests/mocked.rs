//! Adapter tests over aws-smithy-mocks clients: what moto cannot show (an SNS subscription pending confirmation,
//! an organization's shadow trail read by ARN, a simulator that pages its answers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_cloudtrail::operation::describe_trails::DescribeTrailsOutput;
use aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput;
use aws_sdk_cloudtrail::operation::get_trail_status::GetTrailStatusOutput;
use aws_sdk_cloudtrail::types::{EventSelector, ReadWriteType, Trail};
use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
use aws_sdk_iam::types::{EvaluationResult, PolicyEvaluationDecisionType};
use aws_sdk_sns::operation::list_subscriptions_by_topic::ListSubscriptionsByTopicOutput;
use aws_sdk_sns::types::Subscription;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use keyguard_doctor::{Status, permissions, topic, trail};

const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:keyguard-alerts";

#[tokio::test]
async fn an_e_mail_subscription_pending_confirmation_alerts_nobody() {
    let rule = mock!(aws_sdk_sns::Client::list_subscriptions_by_topic).then_output(|| {
        ListSubscriptionsByTopicOutput::builder()
            .subscriptions(
                Subscription::builder()
                    .topic_arn(TOPIC)
                    .protocol("email")
                    .endpoint("security@example.com")
                    .subscription_arn("PendingConfirmation")
                    .build(),
            )
            .build()
    });
    let sns = mock_client!(aws_sdk_sns, [&rule]);
    let check = topic::check(Some(TOPIC), topic::read(&sns, TOPIC).await);
    assert_eq!(check.status, Status::Fail);
    assert!(check.detail.contains("1 subscription(s) pending confirmation (email), none confirmed"), "{check:?}");
    assert!(check.fix.unwrap().contains("confirm the subscription"));
}

#[tokio::test]
async fn an_organization_trail_homed_elsewhere_is_read_by_arn_and_judged_by_its_selectors() {
    const ORG_TRAIL: &str = "arn:aws:cloudtrail:eu-west-1:999988887777:trail/org-trail";
    let trails = mock!(aws_sdk_cloudtrail::Client::describe_trails)
        .match_requests(|req| req.include_shadow_trails() == Some(true))
        .then_output(|| {
            DescribeTrailsOutput::builder()
                .trail_list(
                    Trail::builder()
                        .name("org-trail")
                        .trail_arn(ORG_TRAIL)
                        .home_region("eu-west-1")
                        .is_multi_region_trail(true)
                        .is_organization_trail(true)
                        .include_global_service_events(true)
                        .build(),
                )
                .build()
        });
    let status = mock!(aws_sdk_cloudtrail::Client::get_trail_status)
        .match_requests(|req| req.name() == Some(ORG_TRAIL))
        .then_output(|| GetTrailStatusOutput::builder().is_logging(true).build());
    let selectors = mock!(aws_sdk_cloudtrail::Client::get_event_selectors)
        .match_requests(|req| req.trail_name() == Some(ORG_TRAIL))
        .then_output(|| {
            GetEventSelectorsOutput::builder()
                .trail_arn(ORG_TRAIL)
                .event_selectors(
                    EventSelector::builder()
                        .read_write_type(ReadWriteType::WriteOnly)
                        .include_management_events(true)
                        .build(),
                )
                .build()
        });
    let cloudtrail = mock_client!(aws_sdk_cloudtrail, RuleMode::MatchAny, [&trails, &status, &selectors]);
    let check = trail::check(&cloudtrail).await;
    assert_eq!(check.status, Status::Pass, "{check:?}");
    assert_eq!(
        check.detail,
        "organization trail org-trail: logging, multi-region, management write events selected (ReadWriteType WriteOnly)"
    );
    assert_eq!((status.num_calls(), selectors.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_paged_simulation_is_read_to_the_end() {
    let decision = |action: &str, decision: PolicyEvaluationDecisionType| {
        EvaluationResult::builder().eval_action_name(action).eval_decision(decision).build().unwrap()
    };
    let pages = mock!(aws_sdk_iam::Client::simulate_principal_policy)
        .sequence()
        .output(move || {
            SimulatePrincipalPolicyOutput::builder()
                .evaluation_results(decision("iam:ListUsers", PolicyEvaluationDecisionType::Allowed))
                .is_truncated(true)
                .marker("page-2")
                .build()
        })
        .output(move || {
            SimulatePrincipalPolicyOutput::builder()
                .evaluation_results(decision("iam:GetCredentialReport", PolicyEvaluationDecisionType::ExplicitDeny))
                .is_truncated(false)
                .build()
        })
        .build();
    let iam = mock_client!(aws_sdk_iam, [&pages]);
    let asked = vec!["iam:ListUsers".to_string(), "iam:GetCredentialReport".to_string()];
    let outcome =
        permissions::simulate(&iam, "arn:aws:iam::111122223333:role/keyguard", &asked, "111122223333", None).await;
    let check = permissions::judge("permissions", "keyguard", &asked, outcome, "grant it");
    assert_eq!(check.status, Status::Fail);
    assert_eq!(check.detail, "keyguard is denied iam:GetCredentialReport (explicitDeny)");
    assert_eq!(pages.num_calls(), 2);
}
