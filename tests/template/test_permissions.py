"""The function's role allows exactly what the code calls (`keyguard permissions`) plus what the
infrastructure needs (kg_template.INFRA_ACTIONS): no more, no less, no wildcard."""

from __future__ import annotations

import pytest

import kg_template


@pytest.fixture(scope="module")
def code_actions():
    return kg_template.code_permissions()


def test_role_allows_exactly_the_code_and_infrastructure_actions(template, code_actions):
    kg_template.check_role_actions(template, code_actions)


def test_no_wildcard_action_and_scoped_resources(template):
    kg_template.check_no_wildcards(template)


def test_code_and_infrastructure_sets_do_not_overlap(code_actions):
    # An action in both would hide a removal from the code behind the infrastructure set.
    assert not set(code_actions) & kg_template.INFRA_ACTIONS


def test_key_policy_lets_the_role_use_the_topic_key(template):
    fn_name, fn = kg_template.the_function(template)
    role = kg_template.ref_target(kg_template.props(fn)["Role"])
    topics = kg_template.resources(template, "AWS::SNS::Topic")
    assert len(topics) == 1
    key_name = kg_template.ref_target(kg_template.props(next(iter(topics.values()))).get("KmsMasterKeyId"))
    key = template["Resources"].get(key_name or "")
    assert key and key["Type"] == "AWS::KMS::Key", "the topic must be encrypted with this stack's own KMS key"
    grants = [
        st
        for st in kg_template.props(key)["KeyPolicy"]["Statement"]
        if kg_template.ref_target((st.get("Principal") or {}).get("AWS")) == role
    ]
    assert grants, f"the key policy does not name {role}"
    assert {a for st in grants for a in kg_template.as_list(st["Action"])} == {"kms:GenerateDataKey", "kms:Decrypt"}


# --- each check is able to fail -----------------------------------------------------------------


def _policy_statements(t):
    return t["Resources"]["GuardPolicy"]["Properties"]["PolicyDocument"]["Statement"]


def _add_action(action, sid="ReadAndRemediateIamUsers"):
    def mutate(t):
        st = next(s for s in _policy_statements(t) if s.get("Sid") == sid)
        st["Action"] = kg_template.as_list(st["Action"]) + [action]

    return mutate


def _remove_action(action):
    def mutate(t):
        for st in _policy_statements(t):
            acts = [a for a in kg_template.as_list(st["Action"]) if a != action]
            st["Action"] = acts
        t["Resources"]["GuardPolicy"]["Properties"]["PolicyDocument"]["Statement"] = [
            s for s in _policy_statements(t) if s["Action"]
        ]

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


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_add_action("iam:DeleteAccessKey"), id="extra action"),
        pytest.param(_remove_action("sns:Publish"), id="missing code action"),
        pytest.param(_remove_action("kms:Decrypt"), id="missing infrastructure action"),
        pytest.param(_managed_policy, id="managed policy"),
        pytest.param(_inline_policy_on_role, id="inline policy on the role"),
    ],
)
def test_role_check_catches(template, code_actions, mutate):
    with pytest.raises(AssertionError):
        kg_template.check_role_actions(kg_template.without(template, mutate), code_actions)


def _resource(sid, resource):
    def mutate(t):
        next(s for s in _policy_statements(t) if s.get("Sid") == sid)["Resource"] = resource

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_add_action("iam:Get*"), id="wildcard action"),
        pytest.param(_add_action("sns:*", sid="PublishAlerts"), id="service wildcard"),
        pytest.param(_resource("ReadAndRemediateIamUsers", "*"), id="iam on any resource"),
        pytest.param(_resource("ReadAndRemediateIamUsers", {"Fn::Sub": "arn:${AWS::Partition}:iam::*:user/*"}), id="iam in any account"),
        pytest.param(_resource("PublishAlerts", "*"), id="publish to any topic"),
        pytest.param(
            lambda t: _policy_statements(t).append({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
            id="NotAction",
        ),
    ],
)
def test_wildcard_check_catches(template, mutate):
    with pytest.raises(AssertionError):
        kg_template.check_no_wildcards(kg_template.without(template, mutate))
