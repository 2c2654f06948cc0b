"""What template.yaml and infra/ must contain beyond the patterns and the roles (issues 3, 7, 8, 9, 11, 12)."""

from __future__ import annotations

import json
import re

import pytest

import kg_template
from kg_template import as_list, props, ref_target, resources

from kg_template import CONFIGS

# Every variable the function reads (crates/keyguard-core/src/config.rs).
ENV_VARS = {
    "KEYGUARD_MODE",
    "KEYGUARD_SETUP_WINDOW",
    "KEYGUARD_MAX_DEACTIVATIONS",
    "KEYGUARD_TOPIC_ARN",
    "KEYGUARD_EXEMPT_TAG",
    "KEYGUARD_EXEMPT_TAG_VALUE",
    "KEYGUARD_EXEMPT_USERS",
    "KEYGUARD_EXEMPT_PATHS",
    "KEYGUARD_EXEMPT_CREATORS",
    "KEYGUARD_RECONCILE",
    "KEYGUARD_LEDGER_TABLE",
    "KEYGUARD_SECURITY_HUB",
    "KEYGUARD_CHAT_TOPIC_ARN",
    "KEYGUARD_MEMBER_ROLE",
    "KEYGUARD_ACCOUNTS",
    "KEYGUARD_SWEEP_QUEUE_URL",
}
# Variables set from a resource of the stack (the others come from parameters).
FROM_RESOURCES = {
    "KEYGUARD_TOPIC_ARN": "AWS::SNS::Topic",
    "KEYGUARD_CHAT_TOPIC_ARN": "AWS::SNS::Topic",
    "KEYGUARD_LEDGER_TABLE": "AWS::DynamoDB::Table",
    "KEYGUARD_SWEEP_QUEUE_URL": "AWS::SQS::Queue",
}


# --- region -------------------------------------------------------------------------------------


def test_deployment_outside_us_east_1_is_refused(template, member):
    kg_template.check_region_rule(template)
    kg_template.check_region_rule(member)


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
    # no reservation by default: a new account's concurrency quota (10) leaves nothing to reserve
    assert template["Parameters"]["ReservedConcurrency"]["Default"] == 0
    assert "ReservedConcurrentExecutions" not in props(kg_template.evaluate(template)["Resources"][name])


def test_function_logs_json_to_a_log_group_with_retention(template):
    _, fn = kg_template.the_function(template)
    logging = props(fn)["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"
    group = template["Resources"][ref_target(logging["LogGroup"])]
    assert group["Type"] == "AWS::Logs::LogGroup" and "RetentionInDays" in props(group)


@pytest.mark.parametrize("config", ["single-account", "everything", "organization-listed"])
def test_environment_is_wired_from_parameters(template, config):
    t = kg_template.evaluate(template, CONFIGS[config])
    _, fn = kg_template.the_function(t)
    env = props(fn)["Environment"]["Variables"]
    assert set(env) == ENV_VARS
    for var, value in env.items():
        target = ref_target(value)
        if value == "":
            continue  # a feature that is off: empty counts as unset for the function
        if var in FROM_RESOURCES:
            assert t["Resources"][target]["Type"] == FROM_RESOURCES[var], f"{var}: {value}"
        else:
            assert target in template["Parameters"], f"{var} is not wired from a parameter: {value}"
    params = template["Parameters"]
    assert params[ref_target(env["KEYGUARD_MODE"])]["AllowedValues"] == ["notify", "deactivate", "dry-run"]
    assert params[ref_target(env["KEYGUARD_MODE"])]["Default"] == "notify"
    assert params["ExemptTagValue"]["Default"] == "true"
    assert params["SecurityHub"]["AllowedValues"] == ["off", "on"] and params["SecurityHub"]["Default"] == "off"
    assert params["MaxDeactivations"]["Default"] == 5 and params["MaxDeactivations"]["MaxValue"] == 10000
    for name, param in params.items():
        assert param.get("Description"), f"parameter {name} has no Description"
    on = kg_template.features(CONFIGS[config])
    for var, feature in (
        ("KEYGUARD_CHAT_TOPIC_ARN", "chat"),
        ("KEYGUARD_MEMBER_ROLE", "organization"),
        ("KEYGUARD_SWEEP_QUEUE_URL", "organization"),
    ):
        assert (env[var] != "") == (feature in on), f"{var} in {config}: {env[var]}"


def test_ledger_table(template):
    t = kg_template.evaluate(template)
    (name, table), = resources(t, "AWS::DynamoDB::Table").items()
    p = props(table)
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert p["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["SSESpecification"]["SSEEnabled"] is True
    _, fn = kg_template.the_function(t)
    assert ref_target(props(fn)["Environment"]["Variables"]["KEYGUARD_LEDGER_TABLE"]) == name


# --- failure handling ---------------------------------------------------------------------------


def _queue_encrypted(template, name):
    q = template["Resources"][name]
    assert q["Type"] == "AWS::SQS::Queue"
    p = props(q)
    assert p.get("SqsManagedSseEnabled") is True or p.get("KmsMasterKeyId"), f"queue {name} is not encrypted"


@pytest.mark.parametrize("config", ["single-account", "organization"])
def test_rule_targets_retry_then_dead_letter(template, config):
    template = kg_template.evaluate(template, CONFIGS[config])
    fn_name, _ = kg_template.the_function(template)
    rules = {
        n: r
        for n, r in resources(template, "AWS::Events::Rule").items()
        if any(ref_target(t["Arn"]) == fn_name for t in props(r)["Targets"])
    }
    want = 3 if config == "organization" else 2
    assert len(rules) == want, f"expected the IAM rule(s) and the schedule, found {sorted(rules)}"
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


@pytest.mark.parametrize("config", ["single-account", "everything"])
def test_topics_encrypted_with_own_key_and_restricted_to_the_account(template, config):
    template = kg_template.evaluate(template, CONFIGS[config])
    for topic_name, topic in resources(template, "AWS::SNS::Topic").items():
        key = template["Resources"][ref_target(props(topic)["KmsMasterKeyId"])]
        assert key["Type"] == "AWS::KMS::Key" and props(key)["EnableKeyRotation"] is True
        key_principals = [st["Principal"] for st in props(key)["KeyPolicy"]["Statement"]]
        assert {"Service": "cloudwatch.amazonaws.com"} in key_principals, "alarms publish to the encrypted topic"
        (policy,) = [
            p for p in resources(template, "AWS::SNS::TopicPolicy").values()
            if topic_name in [ref_target(x) for x in props(p)["Topics"]]
        ]
        statements = props(policy)["PolicyDocument"]["Statement"]
        assert any(st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for st in statements)
        for st in statements:
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
    assert all(s.get("Condition") for s in subs.values()), "the e-mail subscription must be optional"


def _alarms(template):
    watched = {}
    for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        p = props(alarm)
        assert [ref_target(a) for a in p["AlarmActions"]] == ["AlertTopic"], name
        assert p["ComparisonOperator"] == "GreaterThanThreshold" and p["Threshold"] == 0, name
        dims = tuple(ref_target(d["Value"]) for d in p.get("Dimensions", []))
        watched[(p["Namespace"], p["MetricName"], dims)] = name
    return watched


@pytest.mark.parametrize("config", ["single-account", "organization"])
def test_alarms_notify_the_topic(template, config):
    template = kg_template.evaluate(template, CONFIGS[config])
    fn_name, _ = kg_template.the_function(template)
    watched = _alarms(template)
    # KeyGuard's own error count (EMF, no dimension), which leaves out IAM lag; not AWS/Lambda Errors, which counts it
    assert ("KeyGuard", "Errors", ()) in watched
    assert not any(ns == "AWS/Lambda" and metric == "Errors" for ns, metric, _ in watched)
    assert ("KeyGuard", "SafetyValveWithheld", ()) in watched
    assert ("AWS/Lambda", "Throttles", (fn_name,)) in watched
    for q in resources(template, "AWS::SQS::Queue"):
        if q == "SweepQueue":
            continue  # consumed by the function: depth is normal; its dead-letter queue is alarmed
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", (q,)) in watched, f"no depth alarm on {q}"
    for namespace, metric, _ in watched:
        if namespace == "KeyGuard":
            assert metric in kg_template.metric_names(), f"alarm on {metric}, which the code does not emit"


def test_dashboard_shows_the_codes_metrics(template):
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = props(dashboard)["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body.replace("${AWS::Region}", "us-east-1"))["widgets"]
    shown = set()
    for w in widgets:
        for line in w["properties"]["metrics"]:
            if isinstance(line[0], dict):
                expression = line[0]["expression"]
                shown |= set(re.findall(r'MetricName=\\?"(\w+)\\?"', expression))
            else:
                assert line[0] == "KeyGuard", line
                shown.add(line[1])
                dims = [x for x in line[2:] if not isinstance(x, dict)]
                if line[1] == "Decisions":
                    assert dims[0] == "Verdict" and dims[1] in {"violation", "suspect", "exempt", "compliant", "ignored"}
    names = kg_template.metric_names()
    assert shown <= names, f"the dashboard shows metrics the code does not emit: {sorted(shown - names)}"
    for wanted in ("Decisions", "Deactivations", "Errors", "EventLatency", "SweepDuration"):
        assert wanted in shown, f"the dashboard lacks {wanted}"
    titles = " ".join(w["properties"]["title"] for w in widgets).lower()
    assert "violations" in titles


def test_dashboard_check_catches_an_unknown_metric(template):
    broken = kg_template.without(
        template,
        lambda t: t["Resources"]["Dashboard"]["Properties"]["DashboardBody"].__setitem__(
            "Fn::Sub", props(t["Resources"]["Dashboard"])["DashboardBody"]["Fn::Sub"].replace('"Deactivations"', '"Deactivated"')
        ),
    )
    with pytest.raises(AssertionError):
        test_dashboard_shows_the_codes_metrics(broken)


def test_outputs(template):
    template = kg_template.evaluate(template, CONFIGS["everything"])
    values = {ref_target(o["Value"]) for o in template["Outputs"].values()}
    fn_name, _ = kg_template.the_function(template)
    assert fn_name in values and kg_template.function_role(template) in values
    assert set(resources(template, "AWS::SNS::Topic")) <= values
    assert set(resources(template, "AWS::SQS::Queue")) <= values
    assert set(resources(template, "AWS::DynamoDB::Table", "AWS::Events::EventBus", "AWS::CloudWatch::Dashboard")) <= values


# --- organization: the sweep fan-out ----------------------------------------------------------------


def test_sweep_fan_out(template):
    t = kg_template.evaluate(template, CONFIGS["organization"])
    fn_name, fn = kg_template.the_function(t)
    queue = props(t["Resources"]["SweepQueue"])
    assert queue["SqsManagedSseEnabled"] is True
    # Lambda's rule for SQS event sources: the visibility timeout covers six tries of the function
    assert queue["VisibilityTimeout"] >= 6 * props(fn)["Timeout"]
    dlq = ref_target(queue["RedrivePolicy"]["deadLetterTargetArn"])
    assert t["Resources"][dlq]["Type"] == "AWS::SQS::Queue" and dlq != "SweepQueue"
    assert 1 <= queue["RedrivePolicy"]["maxReceiveCount"] <= 5
    (mapping,) = resources(t, "AWS::Lambda::EventSourceMapping").values()
    m = props(mapping)
    assert ref_target(m["EventSourceArn"]) == "SweepQueue" and ref_target(m["FunctionName"]) == fn_name
    assert m["BatchSize"] == 1
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert ref_target(m["ScalingConfig"]["MaximumConcurrency"]) == "SweepConcurrency"
    assert template["Parameters"]["SweepConcurrency"]["MinValue"] >= 2  # Lambda's minimum
    # the mapping is created after the role may read the queue
    assert "OrganizationPolicy" in kg_template.as_list(mapping.get("DependsOn", []))
    assert ref_target(props(fn)["Environment"]["Variables"]["KEYGUARD_SWEEP_QUEUE_URL"]) == "SweepQueue"
    # single-account: none of it
    single = kg_template.evaluate(template)
    assert not resources(single, "AWS::Lambda::EventSourceMapping", "AWS::Events::EventBus")
    assert set(resources(single, "AWS::SQS::Queue")) == {"EventDeadLetterQueue", "FailureQueue"}


# --- the optional trail -----------------------------------------------------------------------------


def test_trail_only_when_asked(template):
    assert template["Parameters"]["CreateTrail"]["Default"] == "off"
    assert not resources(kg_template.evaluate(template), "AWS::CloudTrail::Trail", "AWS::S3::Bucket")
    t = kg_template.evaluate(template, CONFIGS["trail"])
    (trail,) = resources(t, "AWS::CloudTrail::Trail").values()
    p = props(trail)
    assert p["IsLogging"] and p["IsMultiRegionTrail"] and p["IncludeGlobalServiceEvents"] and p["EnableLogFileValidation"]
    assert all(s.get("IncludeManagementEvents", True) for s in p.get("EventSelectors", []))
    assert ref_target(p["KMSKeyId"]) in resources(t, "AWS::KMS::Key")
    bucket = t["Resources"][ref_target(p["S3BucketName"])]
    b = props(bucket)
    assert all(b["PublicAccessBlockConfiguration"][k] for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    assert b["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    (policy,) = resources(t, "AWS::S3::BucketPolicy").values()
    statements = props(policy)["PolicyDocument"]["Statement"]
    assert any(
        st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and st["Action"] == "s3:*"
        for st in statements
    ), "TLS only"
    for st in statements:
        if st["Effect"] == "Allow":
            assert st["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
            assert "aws:SourceArn" in st["Condition"]["StringEquals"], st
    assert bucket.get("DeletionPolicy") == "Retain", "the logs are evidence: they outlive the stack"


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
        "iam:ListAccessKeys",
        "iam:GetAccessKeyLastUsed",
    } <= actions
    # rotation is create then delete; with UpdateAccessKey a user could switch back on a key KeyGuard deactivated
    assert "iam:UpdateAccessKey" not in actions


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
