"""What template.yaml and infra/ must contain beyond the pattern and the role (issue 3)."""

from __future__ import annotations

import json

import pytest

import kg_template
from kg_template import as_list, props, ref_target, resources

ENV_VARS = {
    "KEYGUARD_MODE",
    "KEYGUARD_SETUP_WINDOW",
    "KEYGUARD_TOPIC_ARN",
    "KEYGUARD_EXEMPT_TAG",
    "KEYGUARD_EXEMPT_USERS",
    "KEYGUARD_EXEMPT_PATHS",
    "KEYGUARD_RECONCILE",
    "KEYGUARD_EXEMPT_CREATORS",
}


# --- region -------------------------------------------------------------------------------------


def test_deployment_outside_us_east_1_is_refused(template):
    kg_template.check_region_rule(template)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: t.pop("Rules"), id="no Rules"),
        pytest.param(
            lambda t: next(iter(t["Rules"].values()))["Assertions"][0]["Assert"]["Fn::Equals"].__setitem__(1, "eu-west-1"),
            id="other region",
        ),
        pytest.param(
            lambda t: next(iter(t["Rules"].values()))["Assertions"][0].__setitem__("AssertDescription", "no"),
            id="no explanation",
        ),
    ],
)
def test_region_check_catches(template, mutate):
    with pytest.raises(AssertionError):
        kg_template.check_region_rule(kg_template.without(template, mutate))


# --- function -----------------------------------------------------------------------------------


def test_function_runtime_build_and_sizing(template):
    name, fn = kg_template.the_function(template)
    p = props(fn)
    assert fn["Type"] == "AWS::Serverless::Function"
    assert p["Runtime"] == "provided.al2023" and p["Architectures"] == ["arm64"] and p["Handler"] == "bootstrap"
    assert fn["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert fn["Metadata"]["BuildProperties"]["Binary"] == "bootstrap"
    assert p["MemorySize"] == 128
    # an event needs ~2 s at worst; the scheduled sweep (credential report, then affected users) needs minutes
    assert 60 <= p["Timeout"] <= 900
    assert "ReservedConcurrentExecutions" in p


def test_function_logs_json_to_a_log_group_with_retention(template):
    _, fn = kg_template.the_function(template)
    logging = props(fn)["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"
    group = template["Resources"][ref_target(logging["LogGroup"])]
    assert group["Type"] == "AWS::Logs::LogGroup" and "RetentionInDays" in props(group)


def test_environment_is_wired_from_parameters(template):
    _, fn = kg_template.the_function(template)
    env = props(fn)["Environment"]["Variables"]
    assert set(env) == ENV_VARS
    for var, value in env.items():
        target = ref_target(value)
        if var == "KEYGUARD_TOPIC_ARN":
            assert template["Resources"][target]["Type"] == "AWS::SNS::Topic"
        else:
            assert target in template["Parameters"], f"{var} is not wired from a parameter: {value}"
    params = template["Parameters"]
    assert params[ref_target(env["KEYGUARD_MODE"])]["AllowedValues"] == ["notify", "deactivate", "dry-run"]
    assert params[ref_target(env["KEYGUARD_MODE"])]["Default"] == "notify"
    for name, param in params.items():
        assert param.get("Description"), f"parameter {name} has no Description"


# --- failure handling ---------------------------------------------------------------------------


def _queue_encrypted(template, name):
    q = template["Resources"][name]
    assert q["Type"] == "AWS::SQS::Queue"
    p = props(q)
    assert p.get("SqsManagedSseEnabled") is True or p.get("KmsMasterKeyId"), f"queue {name} is not encrypted"


def test_rule_targets_retry_then_dead_letter(template):
    fn_name, _ = kg_template.the_function(template)
    rules = {
        n: r
        for n, r in resources(template, "AWS::Events::Rule").items()
        if any(ref_target(t["Arn"]) == fn_name for t in props(r)["Targets"])
    }
    assert len(rules) == 2, f"expected the IAM rule and the schedule, found {sorted(rules)}"
    permissions = resources(template, "AWS::Lambda::Permission")
    dlq_policies = resources(template, "AWS::SQS::QueuePolicy")
    for rule_name, rule in rules.items():
        target = next(t for t in props(rule)["Targets"] if ref_target(t["Arn"]) == fn_name)
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] >= 3600
        dlq = ref_target(target["DeadLetterConfig"]["Arn"])
        _queue_encrypted(template, dlq)
        # EventBridge may send to the DLQ only from this rule
        allowed = [
            st
            for pol in dlq_policies.values()
            if dlq in [ref_target(q) for q in props(pol)["Queues"]]
            for st in props(pol)["PolicyDocument"]["Statement"]
            if st["Effect"] == "Allow"
            and st["Principal"] == {"Service": "events.amazonaws.com"}
            and "sqs:SendMessage" in as_list(st["Action"])
        ]
        assert allowed, f"no queue policy lets EventBridge send to {dlq}"
        sources = {ref_target(a) for st in allowed for a in as_list(st["Condition"]["ArnEquals"]["aws:SourceArn"])}
        assert rule_name in sources
        # and EventBridge may invoke the function from this rule only
        assert any(
            ref_target(props(p)["SourceArn"]) == rule_name
            and props(p)["Principal"] == "events.amazonaws.com"
            and ref_target(props(p)["FunctionName"]) == fn_name
            for p in permissions.values()
        ), f"no lambda permission for {rule_name}"


def test_schedule_sends_the_standard_scheduled_event(template):
    schedules = [r for r in resources(template, "AWS::Events::Rule").values() if "ScheduleExpression" in props(r)]
    assert len(schedules) == 1
    p = props(schedules[0])
    default = template["Parameters"][ref_target(p["ScheduleExpression"])]["Default"]
    assert default == "rate(1 day)"
    for t in p["Targets"]:
        # Input/InputPath/InputTransformer would replace the {"source": "aws.events", ...} event
        assert not {"Input", "InputPath", "InputTransformer"} & set(t)


def test_function_async_failures_go_to_an_encrypted_queue(template):
    _, fn = kg_template.the_function(template)
    cfg = props(fn)["EventInvokeConfig"]
    assert 0 <= cfg["MaximumRetryAttempts"] <= 2
    assert 60 <= cfg["MaximumEventAgeInSeconds"] <= 21600
    on_failure = cfg["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    _queue_encrypted(template, ref_target(on_failure["Destination"]))


# --- alerts -------------------------------------------------------------------------------------


def test_topic_encrypted_with_own_key_and_restricted_to_the_account(template):
    (topic_name, topic), = resources(template, "AWS::SNS::Topic").items()
    key = template["Resources"][ref_target(props(topic)["KmsMasterKeyId"])]
    assert key["Type"] == "AWS::KMS::Key" and props(key)["EnableKeyRotation"] is True
    key_principals = [st["Principal"] for st in props(key)["KeyPolicy"]["Statement"]]
    assert {"Service": "cloudwatch.amazonaws.com"} in key_principals, "alarms publish to the encrypted topic"
    (policy,) = [p for p in resources(template, "AWS::SNS::TopicPolicy").values()]
    for st in props(policy)["PolicyDocument"]["Statement"]:
        if st["Effect"] != "Allow":
            continue
        principal = st["Principal"]
        if "AWS" in principal:
            assert principal["AWS"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
        else:
            # a service principal only on behalf of this account
            cond = json.dumps(st.get("Condition", {}))
            assert "${AWS::AccountId}" in cond or '"AWS::AccountId"' in cond, st
    subs = resources(template, "AWS::SNS::Subscription")
    assert subs and all(s.get("Condition") for s in subs.values()), "the e-mail subscription must be optional"


def test_alarms_notify_the_topic(template):
    fn_name, fn = kg_template.the_function(template)
    (topic_name,) = resources(template, "AWS::SNS::Topic")
    queues = set(resources(template, "AWS::SQS::Queue"))
    watched = set()
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        p = props(alarm)
        assert [ref_target(a) for a in p["AlarmActions"]] == [topic_name]
        (dim,) = p["Dimensions"]
        watched.add((p["Namespace"], p["MetricName"], ref_target(dim["Value"])))
        assert p["ComparisonOperator"] == "GreaterThanThreshold" and p["Threshold"] == 0
    assert ("AWS/Lambda", "Errors", fn_name) in watched
    assert ("AWS/Lambda", "Throttles", fn_name) in watched
    for q in queues:
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", q) in watched, f"no depth alarm on {q}"


def test_outputs(template):
    values = {ref_target(o["Value"]) for o in template["Outputs"].values()}
    fn_name, _ = kg_template.the_function(template)
    assert fn_name in values
    assert set(resources(template, "AWS::SNS::Topic")) <= values
    assert set(resources(template, "AWS::SQS::Queue")) <= values


# --- infra/ -------------------------------------------------------------------------------------


def test_self_service_policy_json_and_template_agree():
    doc = json.loads(kg_template.SELF_SERVICE_JSON.read_text())
    t = kg_template.load_template(kg_template.SELF_SERVICE_YAML)
    (policy,) = resources(t, "AWS::IAM::ManagedPolicy").values()
    assert props(policy)["PolicyDocument"] == doc


def test_self_service_policy_is_limited_to_the_callers_own_keys():
    doc = json.loads(kg_template.SELF_SERVICE_JSON.read_text())
    actions = set()
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        for r in as_list(st["Resource"]):
            assert r in ("arn:aws:iam::*:user/${aws:username}", "arn:aws:iam::*:user/*/${aws:username}"), r
        for a in as_list(st["Action"]):
            assert "*" not in a
            actions.add(a)
        if {"iam:TagUser", "iam:UntagUser"} & set(as_list(st["Action"])):
            # a user may describe its keys, never tag itself (e.g. keyguard:exempt)
            assert st["Condition"] == {"ForAllValues:StringLike": {"aws:TagKeys": ["AKIA*"]}}
    assert {
        "iam:CreateAccessKey",
        "iam:DeleteAccessKey",
        "iam:UpdateAccessKey",
        "iam:ListAccessKeys",
        "iam:GetAccessKeyLastUsed",
    } <= actions


def test_samconfig_example_sets_valid_parameters(template):
    import re
    import tomllib

    config = tomllib.loads((kg_template.REPO_ROOT / "infra" / "samconfig.toml.example").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["region"] == "us-east-1"
    assert config["default"]["build"]["parameters"]["beta_features"] is True  # rust-cargolambda is beta
    overrides = {}
    for item in deploy["parameter_overrides"]:
        m = re.fullmatch(r'([A-Za-z0-9]+)=("(?:[^"\\]|\\.)*"|[^\s"]+)', item)
        assert m, f"{item!r}: SAM splits at spaces and rejects empty values; quote the value"
        overrides[m.group(1)] = m.group(2).strip('"')
    params = template["Parameters"]
    assert set(overrides) == set(params), "the example should show every parameter, and no other"
    for name, value in overrides.items():
        allowed = params[name].get("AllowedValues")
        if allowed:
            assert value in [str(a) for a in allowed], f"{name}={value} not in {allowed}"
