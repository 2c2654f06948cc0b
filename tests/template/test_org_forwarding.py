"""Organization roll-out through moto's EventBridge, across accounts: a member account's default bus rule (from
infra/org/member.yaml) forwards its IAM events to the central bus (from template.yaml), where the guard's rule
delivers them, here to an SQS queue standing in for the function (a Lambda target makes moto's PutEvents fail).

What moto 5.2.5 does and does not do here (DESIGN.md): it forwards bus to bus across accounts and matches
`exists: false`, but ignores bus policies and the target's RoleArn (the organization conditions are checked in
test_permissions.py), and the events it delivers to SQS have no `account` field. On AWS the envelope keeps the
member's `account`; the guard reads the account from `detail.recipientAccountId`, which both keep.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

import kg_template

MEMBER_A = "444455556666"
MEMBER_B = "777788889999"
CENTRAL = "123456789012"  # moto's default account: the `aws` fixture's credentials


def _event(account: str, event_name: str, **request: Any) -> dict[str, Any]:
    return {
        "source": "aws.iam",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {
            "eventVersion": "1.11",
            "userIdentity": {"type": "IAMUser", "userName": "admin", "accountId": account},
            "eventTime": "2025-03-13T11:07:53Z",
            "eventSource": "iam.amazonaws.com",
            "eventName": event_name,
            "awsRegion": "us-east-1",
            "requestParameters": {"userName": "maria.silva", **request},
            "eventID": str(uuid.uuid4()),
            "eventType": "AwsApiCall",
            "recipientAccountId": account,
        },
    }


@pytest.fixture(scope="module")
def central_queue(aws, template):
    """The central stack's organization bus and rule (its pattern, its bus name), targeting an SQS queue."""
    t = kg_template.render(template, kg_template.CONFIGS["organization"], account=CENTRAL)
    bus = kg_template.props(t["Resources"]["OrganizationBus"])
    rule = kg_template.props(t["Resources"]["OrganizationEventRule"])
    events, sqs = aws("events"), aws("sqs")
    events.create_event_bus(Name=bus["Name"])
    # CloudFormation applies the bus's Policy with PutPermission (moto stores it, and enforces nothing)
    events.put_permission(EventBusName=bus["Name"], Policy=json.dumps(bus["Policy"]))
    url = sqs.create_queue(QueueName="central-guard-standin")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="guard", EventBusName=bus["Name"], EventPattern=json.dumps(rule["EventPattern"]), State="ENABLED")
    events.put_targets(Rule="guard", EventBusName=bus["Name"], Targets=[{"Id": "guard", "Arn": arn}])
    return url


def _install_member(aws_account, member, account: str) -> None:
    """The member stack's forwarding rule, rendered for this account, on its default bus."""
    params = dict(kg_template.MEMBER_CONFIGS["member"], CentralAccountId=CENTRAL)
    t = kg_template.render(member, params, account=account)
    rule = kg_template.props(t["Resources"]["ForwardIamEventsRule"])
    (target,) = rule["Targets"]
    assert target["Arn"] == f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/keyguard-organization"
    events = aws_account(account, "events")
    events.put_rule(Name="keyguard-forward", EventPattern=json.dumps(rule["EventPattern"]), State="ENABLED")
    events.put_targets(
        Rule="keyguard-forward",
        Targets=[{"Id": target["Id"], "Arn": target["Arn"], "RoleArn": target["RoleArn"]}],
    )


def _drain(sqs, url: str) -> list[dict[str, Any]]:
    bodies = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            return bodies
        for m in msgs:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_member_events_reach_the_central_rule_with_their_account(aws, aws_account, member, central_queue):
    _install_member(aws_account, member, MEMBER_A)
    _install_member(aws_account, member, MEMBER_B)
    sent = {
        "a-create-key": (MEMBER_A, _event(MEMBER_A, "CreateAccessKey"), True),
        "a-reenable": (MEMBER_A, _event(MEMBER_A, "UpdateAccessKey", accessKeyId="AKIA1", status="Active"), True),
        "a-own-deactivation": (MEMBER_A, _event(MEMBER_A, "UpdateAccessKey", accessKeyId="AKIA1", status="Inactive"), False),
        "a-delete-user": (MEMBER_A, _event(MEMBER_A, "DeleteUser"), False),
        "b-create-password": (MEMBER_B, _event(MEMBER_B, "CreateLoginProfile"), True),
    }
    failed = _event(MEMBER_B, "CreateAccessKey")
    failed["detail"]["errorCode"] = "AccessDenied"
    sent["b-failed"] = (MEMBER_B, failed, False)
    for label, (account, event, _) in sent.items():
        event["detail"]["eventID"] = label
        resp = aws_account(account, "events").put_events(
            Entries=[{"Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])}]
        )
        assert resp["FailedEntryCount"] == 0, resp

    delivered = {body["detail"]["eventID"]: body for body in _drain(aws("sqs"), central_queue)}
    assert set(delivered) == {label for label, (_, _, want) in sent.items() if want}
    for label, body in delivered.items():
        account, event, _ = sent[label]
        # the member's account survives the hop in the detail, which is what the guard reads
        assert body["detail"] == event["detail"]
        assert body["detail"]["recipientAccountId"] == account
        assert body["source"] == "aws.iam" and body["detail-type"] == "AWS API Call via CloudTrail"
        assert "account" not in body  # moto 5.2.5's SQS delivery (AWS keeps the member's account here)


def test_events_on_the_central_default_bus_do_not_hit_the_organization_rule(aws, central_queue):
    """The central account's own events take the default-bus rule, not the organization bus's (no double handling)."""
    event = _event(CENTRAL, "CreateAccessKey")
    aws("events").put_events(
        Entries=[{"Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])}]
    )
    assert _drain(aws("sqs"), central_queue) == []


def test_a_member_without_the_forwarding_rule_delivers_nothing(aws, aws_account, central_queue):
    """The harness discriminates: an account without the member stack's rule reaches nothing centrally."""
    outsider = "121212121212"
    event = _event(outsider, "CreateAccessKey")
    aws_account(outsider, "events").put_events(
        Entries=[{"Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])}]
    )
    assert _drain(aws("sqs"), central_queue) == []
