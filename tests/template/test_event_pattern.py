"""The IAM event rules' pattern, read from the templates, matched by moto's real EventBridge engine.

Every event of tests/fixtures/samples and of tests/fixtures/events is sent with PutEvents to the default bus,
where a rule with the template's pattern targets an SQS queue; what arrives in the queue is what the
guard would receive. (moto's TestEventPattern returns no result, so it is not used.) The central stack's rules (default
bus, organization bus) and the member stack's forwarding rule carry the same pattern.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

import kg_template

SAMPLES_DIR = kg_template.REPO_ROOT / "tests" / "fixtures" / "samples"
FIXTURES_DIR = kg_template.REPO_ROOT / "tests" / "fixtures" / "events"

# The reference samples are known: their expected fate is written out, not computed.
SAMPLE_EXPECTATIONS = {
    "create-access-key-admin-for-other-user.json": True,
    "create-access-key-assumed-role-automation.json": True,
    "create-access-key-self-service.json": True,
    "create-login-profile.json": True,
    "create-user-cli-tags.json": True,
    "create-user-console.json": True,
    "create-access-key-failed-access-denied.json": False,  # errorCode AccessDenied
    "delete-user.json": False,  # other event name
    "update-access-key.json": False,  # UpdateAccessKey to Inactive: our own remediation call must not loop
}


def _event_files() -> list[tuple[str, dict[str, Any], bool]]:
    """(label, event, expected delivery) for every event file found (*.json: one event or an array;
    *.jsonl: one event per line); expected.json and JSON that is not an EventBridge event are skipped."""
    found: list[tuple[str, dict[str, Any], bool]] = []
    for prefix, root, recursive in (("samples", SAMPLES_DIR, False), ("fixtures", FIXTURES_DIR, True)):
        if not root.is_dir():
            continue
        paths = sorted(
            p for pat in ("*.json", "*.jsonl") for p in (root.rglob(pat) if recursive else root.glob(pat))
        )
        for path in paths:
            if path.name == "expected.json":
                continue
            try:
                text = path.read_text(encoding="utf-8")
                if path.suffix == ".jsonl":  # one event per line
                    data = [json.loads(line) for line in text.splitlines() if line.strip()]
                else:
                    data = json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            items = data if isinstance(data, list) else [data]
            if not items or not all(kg_template.is_envelope(e) for e in items):
                continue  # a CloudTrail record, an expectation file, a config: not an EventBridge event
            for i, event in enumerate(items):
                label = f"{prefix}/{path.relative_to(root)}" + (f"[{i}]" if isinstance(data, list) else "")
                if root == SAMPLES_DIR and path.name in SAMPLE_EXPECTATIONS:
                    expected = SAMPLE_EXPECTATIONS[path.name]
                    # the hand-written table and the specification must agree
                    assert expected == kg_template.should_trigger(event), label
                else:
                    expected = kg_template.should_trigger(event)
                found.append((label, event, expected))
    return found


def _base_event() -> dict[str, Any]:
    """A minimal successful CreateAccessKey event, independent of any file."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": "111122223333",
        "time": "2025-03-13T11:07:53Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.11",
            "userIdentity": {"type": "IAMUser", "userName": "admin", "sessionContext": {"sessionIssuer": {}}},
            "eventTime": "2025-03-13T11:07:53Z",
            "eventSource": "iam.amazonaws.com",
            "eventName": "CreateAccessKey",
            "awsRegion": "us-east-1",
            "requestParameters": {"userName": "alice"},
            "responseElements": {"accessKey": {"userName": "alice", "status": "Active"}},
            "eventID": str(uuid.uuid4()),
            "eventType": "AwsApiCall",
        },
    }


def _variant(**changes: Any) -> dict[str, Any]:
    event = _base_event()
    for key, value in changes.items():
        target = event["detail"] if key not in ("source", "detail_type") else event
        key = {"detail_type": "detail-type"}.get(key, key)
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return event


# Synthetic cases: each changes one thing the pattern must look at.
SYNTHETIC: list[tuple[str, dict[str, Any], bool]] = [
    ("CreateAccessKey", _variant(), True),
    ("CreateUser", _variant(eventName="CreateUser"), True),
    ("CreateLoginProfile", _variant(eventName="CreateLoginProfile"), True),
    ("CreateAccessKey without requestParameters", _variant(requestParameters=None), True),
    ("failed: AccessDenied", _variant(errorCode="AccessDenied", errorMessage="denied"), False),
    ("failed: NoSuchEntity", _variant(errorCode="NoSuchEntityException"), False),
    ("failed: CreateUser EntityAlreadyExists", _variant(eventName="CreateUser", errorCode="EntityAlreadyExists"), False),
    ("failed: CreateLoginProfile", _variant(eventName="CreateLoginProfile", errorCode="PasswordPolicyViolation"), False),
    ("DeleteAccessKey", _variant(eventName="DeleteAccessKey"), False),
    ("UpdateAccessKey without a status", _variant(eventName="UpdateAccessKey"), False),
    (
        "UpdateAccessKey to Active",
        _variant(eventName="UpdateAccessKey", requestParameters={"userName": "alice", "accessKeyId": "AKIA1", "status": "Active"}),
        True,
    ),
    (
        "UpdateAccessKey to active (any case)",
        _variant(eventName="UpdateAccessKey", requestParameters={"userName": "alice", "accessKeyId": "AKIA1", "status": "ACTIVE"}),
        True,
    ),
    (
        "UpdateAccessKey to Inactive",
        _variant(eventName="UpdateAccessKey", requestParameters={"userName": "alice", "accessKeyId": "AKIA1", "status": "Inactive"}),
        False,
    ),
    (
        "failed: UpdateAccessKey to Active",
        _variant(
            eventName="UpdateAccessKey",
            requestParameters={"userName": "alice", "accessKeyId": "AKIA1", "status": "Active"},
            errorCode="AccessDenied",
        ),
        False,
    ),
    (
        "CreateUser with a status parameter",
        _variant(eventName="CreateUser", requestParameters={"userName": "alice", "status": "Inactive"}),
        True,
    ),
    ("UpdateLoginProfile", _variant(eventName="UpdateLoginProfile"), False),
    ("CreateAccessKey in lower case", _variant(eventName="createaccesskey"), False),
    ("other source", _variant(source="aws.sts"), False),
    ("other detail-type", _variant(detail_type="AWS Console Sign In via CloudTrail"), False),
    ("other eventSource", _variant(eventSource="sts.amazonaws.com"), False),
    ("no eventName", _variant(eventName=None), False),
]


def deliver(aws, pattern: dict[str, Any], events: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """Labels of the events that a rule with `pattern` on the default bus delivers to its SQS target."""
    events_client, sqs = aws("events"), aws("sqs")
    suffix = uuid.uuid4().hex[:12]
    queue_url = sqs.create_queue(QueueName=f"kg-target-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"kg-rule-{suffix}"
    events_client.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
    events_client.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
    try:
        by_token: dict[str, str] = {}
        for label, event in events:
            token = f"kg-{uuid.uuid4()}"
            by_token[token] = label
            detail = copy.deepcopy(event["detail"])
            detail["eventID"] = token  # identifies the delivery; not part of the pattern
            resp = events_client.put_events(
                Entries=[
                    {
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(detail),
                        "Resources": event.get("resources") or [],
                    }
                ]
            )
            assert resp["FailedEntryCount"] == 0, (label, resp)

        delivered: list[str] = []
        while True:
            msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not msgs:
                break
            for m in msgs:
                body = json.loads(m["Body"])
                delivered.append(by_token[body["detail"]["eventID"]])
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        assert len(delivered) == len(set(delivered)), f"an event was delivered twice: {delivered}"
        return set(delivered)
    finally:
        events_client.remove_targets(Rule=rule, Ids=["queue"])
        events_client.delete_rule(Name=rule)
        sqs.delete_queue(QueueUrl=queue_url)


def _assert_exact(delivered: set[str], cases: list[tuple[str, dict[str, Any], bool]]) -> None:
    expected = {label for label, _, want in cases if want}
    assert delivered == expected, (
        f"\n  delivered but must not be: {sorted(delivered - expected)}"
        f"\n  not delivered but must be: {sorted(expected - delivered)}"
    )


def test_event_files_exist():
    files = _event_files()
    assert files, f"no event files in {SAMPLES_DIR} or {FIXTURES_DIR}"
    labels = {label for label, _, _ in files}
    missing = {f"samples/{n}" for n in SAMPLE_EXPECTATIONS} - labels
    assert not missing, f"reference samples not loaded: {missing}"


PATTERN_RULES = [
    pytest.param("template", "IamEventRule", id="default bus"),
    pytest.param("template", "OrganizationEventRule", id="organization bus"),
    pytest.param("member", "ForwardIamEventsRule", id="member forwarder"),
]


def _pattern(request, which: str, rule: str) -> dict[str, Any]:
    t = request.getfixturevalue(which)
    params = kg_template.CONFIGS["organization"] if which == "template" else kg_template.MEMBER_CONFIGS["member"]
    return kg_template.event_pattern(kg_template.evaluate(t, params), rule)


def test_every_iam_rule_has_the_same_pattern(template, member):
    """What the central stack matches on its own bus, on the organization bus, and what members forward."""
    central = kg_template.evaluate(template, kg_template.CONFIGS["organization"])
    members = kg_template.evaluate(member, kg_template.MEMBER_CONFIGS["member"])
    rules = {**kg_template.iam_event_rules(central), **kg_template.iam_event_rules(members)}
    assert set(rules) == {"IamEventRule", "OrganizationEventRule", "ForwardIamEventsRule"}
    patterns = {name: kg_template.props(rule)["EventPattern"] for name, rule in rules.items()}
    assert len({json.dumps(p, sort_keys=True) for p in patterns.values()}) == 1, patterns


@pytest.mark.parametrize(("which", "rule"), PATTERN_RULES)
def test_template_pattern_delivers_exactly_the_successful_trigger_events(request, aws, which, rule):
    cases = _event_files()
    if not cases:
        pytest.skip("no event files found")
    delivered = deliver(aws, _pattern(request, which, rule), [(label, ev) for label, ev, _ in cases])
    _assert_exact(delivered, cases)


def test_template_pattern_on_synthetic_variants(template, aws):
    delivered = deliver(aws, kg_template.event_pattern(template), [(label, ev) for label, ev, _ in SYNTHETIC])
    _assert_exact(delivered, SYNTHETIC)


def _branch(p, event_name):
    return next(b for b in p["detail"]["$or"] if event_name in b["eventName"])


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda p: p["detail"].pop("errorCode"), id="failed calls not excluded"),
        pytest.param(lambda p: _branch(p, "CreateLoginProfile")["eventName"].remove("CreateLoginProfile"), id="event name missing"),
        pytest.param(lambda p: _branch(p, "CreateUser")["eventName"].append("UpdateAccessKey"), id="own remediation call added"),
        pytest.param(lambda p: _branch(p, "UpdateAccessKey").pop("requestParameters"), id="any key status"),
        pytest.param(
            lambda p: _branch(p, "UpdateAccessKey").__setitem__("requestParameters", {"status": ["Active"]}),
            id="status case-sensitive",
        ),
        pytest.param(lambda p: p["detail"]["$or"].pop(), id="re-enabling not watched"),
        pytest.param(lambda p: p.pop("source"), id="any source"),
    ],
)
def test_a_wrong_pattern_is_caught(template, aws, broken):
    """The harness discriminates: each plausible mistake in the pattern changes what is delivered."""
    pattern = copy.deepcopy(kg_template.event_pattern(template))
    broken(pattern)
    delivered = deliver(aws, pattern, [(label, ev) for label, ev, _ in SYNTHETIC])
    with pytest.raises(AssertionError):
        _assert_exact(delivered, SYNTHETIC)


def test_rules_are_on_the_right_buses_and_enabled(template, member):
    central = kg_template.evaluate(template, kg_template.CONFIGS["organization"])
    p = kg_template.props(central["Resources"]["IamEventRule"])
    assert p.get("EventBusName", "default") == "default", "IAM CloudTrail events arrive on the default bus"
    assert kg_template.ref_target(kg_template.props(central["Resources"]["OrganizationEventRule"])["EventBusName"]) == (
        "OrganizationBus"
    )
    members = kg_template.evaluate(member, kg_template.MEMBER_CONFIGS["member"])
    assert kg_template.props(members["Resources"]["ForwardIamEventsRule"]).get("EventBusName", "default") == "default"
    for t in (central, members):
        for rule in kg_template.iam_event_rules(t).values():
            assert kg_template.props(rule).get("State", "ENABLED") == "ENABLED"
