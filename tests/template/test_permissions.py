"""The roles allow exactly what the code calls and nothing more, feature by feature.

The function's role, deployed with each feature's parameters, grants exactly the (action, resource) pairs those
features need: the code's actions (`keyguard permissions`) plus what the infrastructure needs
(kg_template.INFRA_GRANTS). Over all features together it grants every action of the code. The member role grants
exactly `keyguard permissions --member`. Trust and bus policies carry the organization conditions.
"""

from __future__ import annotations

import pytest

import kg_template
from kg_template import CONFIGS, MEMBER_CONFIGS, as_list, props


@pytest.mark.parametrize("config", list(CONFIGS))
def test_role_grants_exactly_what_the_features_need(template, code_actions, config):
    kg_template.check_role_grants(template, CONFIGS[config], code_actions)


def test_every_code_action_is_granted_with_every_feature_on(template, code_actions):
    t = kg_template.evaluate(template, CONFIGS["everything"])
    granted = {a for a, _ in kg_template.grants(t, kg_template.function_role(t))}
    assert set(code_actions) <= granted, sorted(set(code_actions) - granted)


def test_assume_role_only_into_the_member_role_of_organization_accounts(template):
    kg_template.check_assume_role_condition(template)


@pytest.mark.parametrize("config", ["member", "member-security-hub"])
def test_member_role_grants_exactly_the_member_actions(member, member_actions, config):
    kg_template.check_member_grants(member, MEMBER_CONFIGS[config], member_actions)


def test_member_role_trusts_only_the_central_guard_role_in_the_organization(member):
    kg_template.check_member_trust(member)


def test_central_bus_accepts_only_the_organization(template):
    kg_template.check_bus_policy(template)


def test_member_stack_in_the_central_account_creates_nothing(member):
    t = kg_template.evaluate(member, MEMBER_CONFIGS["central-account"])
    assert [r["Type"] for r in t["Resources"].values()] == ["AWS::CloudFormation::WaitConditionHandle"]


def test_member_forwarding_role_may_only_put_events_on_the_central_bus(member):
    t = kg_template.evaluate(member, MEMBER_CONFIGS["member"])
    rule = t["Resources"]["ForwardIamEventsRule"]
    (target,) = props(rule)["Targets"]
    role = kg_template.ref_target(target["RoleArn"])
    assert kg_template.grants(t, role) == {("events:PutEvents", target["Arn"]["Fn::Sub"])}
    assert target["Arn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:us-east-1:${CentralAccountId}:event-bus/${CentralBusName}"
    }
    trust = props(t["Resources"][role])["AssumeRolePolicyDocument"]["Statement"]
    assert [st["Principal"] for st in trust] == [{"Service": "events.amazonaws.com"}]


def test_central_and_member_names_agree(template, member):
    """The member stack's defaults name what the central stack creates: the bus, the guard role, the member role."""
    cp, mp = template["Parameters"], member["Parameters"]
    assert cp["OrganizationBusName"]["Default"] == mp["CentralBusName"]["Default"]
    assert cp["GuardRoleName"]["Default"] == mp["GuardRoleName"]["Default"]
    assert cp["MemberRoleName"]["Default"] == mp["MemberRoleName"]["Default"]
    t = kg_template.evaluate(template, CONFIGS["organization"])
    role = t["Resources"][kg_template.function_role(t)]
    assert props(role)["RoleName"] == {"Ref": "GuardRoleName"}, "member roles trust the guard role by this name"
    bus = kg_template.resources(t, "AWS::Events::EventBus")
    assert [props(b)["Name"] for b in bus.values()] == [{"Ref": "OrganizationBusName"}]
    # single-account: the role stays unnamed (CAPABILITY_IAM, several stacks per account)
    t = kg_template.evaluate(template, CONFIGS["single-account"])
    assert "RoleName" not in props(t["Resources"][kg_template.function_role(t)])


def test_key_policy_lets_the_role_use_the_topic_key(template):
    t = kg_template.evaluate(template, CONFIGS["everything"])
    role = kg_template.function_role(t)
    topics = kg_template.resources(t, "AWS::SNS::Topic")
    keys = {kg_template.ref_target(props(topic).get("KmsMasterKeyId")) for topic in topics.values()}
    assert keys == {"AlertKey"}, f"every topic is encrypted with the stack's alert key: {keys}"
    key = t["Resources"]["AlertKey"]
    grants = [
        st
        for st in props(key)["KeyPolicy"]["Statement"]
        if kg_template.ref_target((st.get("Principal") or {}).get("AWS")) == role
    ]
    assert grants, f"the key policy does not name {role}"
    assert {a for st in grants for a in as_list(st["Action"])} == {"kms:GenerateDataKey", "kms:Decrypt"}


def test_chat_channel_role_can_do_nothing(template):
    t = kg_template.evaluate(template, CONFIGS["everything"])
    channels = kg_template.resources(t, "AWS::Chatbot::SlackChannelConfiguration", "AWS::Chatbot::MicrosoftTeamsChannelConfiguration")
    assert len(channels) == 2
    for name, channel in channels.items():
        p = props(channel)
        role = kg_template.ref_target(p["IamRoleArn"])
        assert kg_template.role_policies(t, role) == [], f"{name}: notifications need no permission"
        assert not props(t["Resources"][role]).get("ManagedPolicyArns")
        assert p["UserRoleRequired"] is False
        (guardrail,) = p["GuardrailPolicies"]
        doc = props(t["Resources"][kg_template.ref_target(guardrail)])["PolicyDocument"]
        assert doc["Statement"] == [{"Sid": "NoCommandsFromTheChannel", "Effect": "Deny", "Action": "*", "Resource": "*"}]
        assert [kg_template.ref_target(a) for a in p["SnsTopicArns"]] == ["ChatTopic"]


# --- each check is able to fail -----------------------------------------------------------------


def _statements(t, policy="GuardPolicy"):
    return t["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]


def _add_action(action, sid="ReadAndRemediateIamUsers", policy="GuardPolicy"):
    def mutate(t):
        st = next(s for s in _statements(t, policy) if s.get("Sid") == sid)
        st["Action"] = as_list(st["Action"]) + [action]

    return mutate


def _remove_action(action):
    def mutate(t):
        for policy in kg_template.resources(t, "AWS::IAM::Policy"):
            for st in _statements(t, policy):
                st["Action"] = [a for a in as_list(st["Action"]) if a != action]
            t["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"] = [
                s for s in _statements(t, policy) if s["Action"]
            ]

    return mutate


def _move_to_base(policy):
    """A feature's statements moved into the always-present policy: granted without the feature."""

    def mutate(t):
        _statements(t).extend(_statements(t, policy))

    return mutate


def _managed_policy(t):
    t["Resources"]["GuardRole"]["Properties"]["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    ]


def _inline_policy_on_role(t):
    t["Resources"]["GuardRole"]["Properties"]["Policies"] = [
        {
            "PolicyName": "extra",
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "iam:DeleteUser", "Resource": "*"}],
            },
        }
    ]


def _resource(sid, resource, policy="GuardPolicy"):
    def mutate(t):
        next(s for s in _statements(t, policy) if s.get("Sid") == sid)["Resource"] = resource

    return mutate


def _unconditional(policy):
    def mutate(t):
        del t["Resources"][policy]["Condition"]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "config"),
    [
        pytest.param(_add_action("iam:DeleteAccessKey"), "single-account", id="extra action"),
        pytest.param(_remove_action("sns:Publish"), "single-account", id="missing code action"),
        pytest.param(_remove_action("kms:Decrypt"), "single-account", id="missing infrastructure action"),
        pytest.param(_remove_action("sqs:ReceiveMessage"), "organization", id="missing event source mapping action"),
        pytest.param(_remove_action("organizations:ListAccounts"), "organization", id="missing directory action"),
        pytest.param(_managed_policy, "single-account", id="managed policy"),
        pytest.param(_inline_policy_on_role, "single-account", id="inline policy on the role"),
        pytest.param(_move_to_base("OrganizationPolicy"), "single-account", id="organization statements always on"),
        pytest.param(_move_to_base("SecurityHubPolicy"), "single-account", id="security hub statements always on"),
        pytest.param(_unconditional("ChatPolicy"), "single-account", id="chat policy without its condition"),
        pytest.param(_unconditional("OrganizationDirectoryPolicy"), "organization-listed", id="listing with a list"),
        pytest.param(_resource("ReadAndRemediateIamUsers", "*"), "single-account", id="iam on any resource"),
        pytest.param(
            _resource("ReadAndRemediateIamUsers", {"Fn::Sub": "arn:${AWS::Partition}:iam::*:user/*"}),
            "single-account",
            id="iam in any account",
        ),
        pytest.param(_resource("PublishAlerts", "*"), "single-account", id="publish to any topic"),
        pytest.param(
            _resource("FileFindingsInThisAccount", "*", policy="SecurityHubPolicy"), "security-hub", id="any product"
        ),
        pytest.param(
            _resource("AssumeTheMemberRoleInOrganizationAccounts", {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/*"}, "OrganizationPolicy"),
            "organization",
            id="assume any role",
        ),
        pytest.param(_add_action("iam:Get*"), "single-account", id="wildcard action"),
        pytest.param(_add_action("sns:*", sid="PublishAlerts"), "single-account", id="service wildcard"),
        pytest.param(
            lambda t: _statements(t).append({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
            "single-account",
            id="NotAction",
        ),
    ],
)
def test_role_check_catches(template, code_actions, mutate, config):
    with pytest.raises(AssertionError):
        kg_template.check_role_grants(kg_template.without(template, mutate), CONFIGS[config], code_actions)


def test_role_check_catches_a_new_code_action(template, code_actions):
    with pytest.raises(AssertionError, match="new action of the code"):
        kg_template.check_role_grants(template, CONFIGS["single-account"], [*code_actions, "s3:GetObject"])


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: _statements(t, "OrganizationPolicy")[0].pop("Condition"), id="no condition"),
        pytest.param(
            lambda t: _statements(t, "OrganizationPolicy")[0].__setitem__(
                "Condition", {"StringEquals": {"aws:ResourceAccount": {"Ref": "AWS::AccountId"}}}
            ),
            id="other condition",
        ),
    ],
)
def test_assume_role_check_catches(template, mutate):
    with pytest.raises(AssertionError):
        kg_template.check_assume_role_condition(kg_template.without(template, mutate))


def _member_statements(t, policy="MemberPolicy"):
    return t["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]


@pytest.mark.parametrize(
    ("mutate", "config"),
    [
        pytest.param(lambda t: _member_statements(t)[0]["Action"].append("iam:DeleteUser"), "member", id="extra"),
        pytest.param(lambda t: _member_statements(t)[1]["Action"].remove("iam:ListAccountAliases"), "member", id="missing"),
        pytest.param(lambda t: t["Resources"]["MemberSecurityHubPolicy"].pop("Condition"), "member", id="security hub always on"),
        pytest.param(lambda t: _member_statements(t)[0].__setitem__("Resource", "*"), "member", id="any user anywhere"),
    ],
)
def test_member_grants_check_catches(member, member_actions, mutate, config):
    with pytest.raises(AssertionError):
        kg_template.check_member_grants(kg_template.without(member, mutate), MEMBER_CONFIGS[config], member_actions)


def _trust(t):
    return t["Resources"]["MemberRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: _trust(t)["Condition"].pop("StringEquals"), id="no organization condition"),
        pytest.param(lambda t: _trust(t)["Condition"].pop("ArnEquals"), id="any role of the central account"),
        pytest.param(lambda t: _trust(t).__setitem__("Principal", {"AWS": "*"}), id="any principal"),
        pytest.param(
            lambda t: t["Resources"]["MemberRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"].append(
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ),
            id="second trusted principal",
        ),
    ],
)
def test_member_trust_check_catches(member, mutate):
    with pytest.raises(AssertionError):
        kg_template.check_member_trust(kg_template.without(member, mutate))


def _bus_statement(t):
    return t["Resources"]["OrganizationBus"]["Properties"]["Policy"]["Statement"][0]


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: _bus_statement(t).pop("Condition"), id="no organization condition"),
        pytest.param(lambda t: _bus_statement(t).__setitem__("Action", "events:*"), id="any events action"),
        pytest.param(lambda t: t["Resources"].pop("OrganizationEventRule"), id="no rule on the bus"),
    ],
)
def test_bus_policy_check_catches(template, mutate):
    with pytest.raises(AssertionError):
        kg_template.check_bus_policy(kg_template.without(template, mutate))
