"""Helpers for the template tests: load the templates, evaluate them for a set of parameters, find their parts, and
the checks themselves.

The checks are plain functions raising AssertionError so that the tests can also run them on deliberately broken
copies of the templates (proving that each check is able to fail).

A template is checked *as deployed*: `evaluate(template, params)` applies the parameters to the template's Conditions
(dropping resources whose condition is false, resolving Fn::If and AWS::NoValue), the way CloudFormation does before
it creates anything. `render` goes further and replaces every Ref/GetAtt/Sub with a plausible literal (fake account
ids and ARNs), for tools that need plain IAM JSON (parliament).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable

from cfnlint.decode import decode

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
MEMBER_TEMPLATE = REPO_ROOT / "infra" / "org" / "member.yaml"
SELF_SERVICE_JSON = REPO_ROOT / "infra" / "self-service-keys.json"
SELF_SERVICE_YAML = REPO_ROOT / "infra" / "self-service-keys.yaml"
METRICS_RS = REPO_ROOT / "crates" / "keyguard-aws" / "src" / "metrics.rs"


def all_templates() -> list[Path]:
    """Every CloudFormation template the project ships (what mk/template.mk lints and scans)."""
    return [TEMPLATE, *sorted((REPO_ROOT / "infra").glob("*.yaml")), *sorted((REPO_ROOT / "infra" / "org").glob("*.yaml"))]


# Fake identities used when a template is evaluated or rendered.
ACCOUNT = "111122223333"
CENTRAL_ACCOUNT = "999988887777"
ORGANIZATION = "o-a1b2c3d4e5"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::StackName": "keyguard",
    "AWS::URLSuffix": "amazonaws.com",
}

# Parameter sets of the central template, one per feature and all together (test ids: the keys).
SLACK = {"SlackWorkspaceId": "T0123ABCD", "SlackChannelId": "C0123456789"}
TEAMS = {
    "TeamsTenantId": "a1b2c3d4-0000-4000-8000-000000000001",
    "TeamsTeamId": "a1b2c3d4-0000-4000-8000-000000000002",
    "TeamsChannelId": "19:abc@thread.tacv2",
}
CONFIGS: dict[str, dict[str, str]] = {
    "single-account": {},
    "security-hub": {"SecurityHub": "on"},
    "slack": SLACK,
    "teams": TEAMS,
    "organization": {"OrganizationId": ORGANIZATION},
    "organization-listed": {"OrganizationId": ORGANIZATION, "GuardedAccounts": "444455556666,777788889999"},
    "trail": {"CreateTrail": "on"},
    "everything": {"OrganizationId": ORGANIZATION, "SecurityHub": "on", "CreateTrail": "on", **SLACK, **TEAMS},
}
MEMBER_CONFIGS: dict[str, dict[str, str]] = {
    "member": {"OrganizationId": ORGANIZATION, "CentralAccountId": CENTRAL_ACCOUNT},
    "member-security-hub": {"OrganizationId": ORGANIZATION, "CentralAccountId": CENTRAL_ACCOUNT, "SecurityHub": "on"},
    # the member StackSet reaching the central account itself
    "central-account": {"OrganizationId": ORGANIZATION, "CentralAccountId": ACCOUNT, "SecurityHub": "on"},
}


def features(params: dict[str, str]) -> set[str]:
    """Which optional features a parameter set turns on (the test's own reading, independent of the Conditions)."""
    on = {"base"}
    if params.get("SecurityHub") == "on":
        on.add("security_hub")
    if params.get("SlackWorkspaceId") or params.get("TeamsTenantId"):
        on.add("chat")
    if params.get("OrganizationId"):
        on.add("organization")
        if not params.get("GuardedAccounts"):
            on.add("organization_directory")
    return on


# ---------------------------------------------------------------------------------------------------
# loading


def plain(node: Any) -> Any:
    """cfn-lint's decoded nodes (dict/str subclasses with positions) as plain JSON values."""
    return json.loads(json.dumps(node))


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template with cfn-lint's loader (understands !Ref, !Sub, !GetAtt ...)."""
    template, matches = decode(str(path))
    assert not matches, f"{path} does not parse: {[str(m) for m in matches]}"
    assert isinstance(template, dict)
    return plain(template)


def resources(template: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    return {
        name: res
        for name, res in template.get("Resources", {}).items()
        if not types or res.get("Type") in types
    }


def props(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("Properties", {}) or {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def ref_target(value: Any) -> str | None:
    """The logical id behind {"Ref": X} or {"Fn::GetAtt": [X, attr]} (or "X.attr"), else None."""
    if isinstance(value, dict) and len(value) == 1:
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return att[0] if isinstance(att, list) else str(att).split(".", 1)[0]
    return None


def without(template: dict[str, Any], mutate: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """A deep copy of the template changed by `mutate(copy)`, for the tests that prove a check can fail."""
    t = copy.deepcopy(template)
    mutate(t)
    return t


# ---------------------------------------------------------------------------------------------------
# evaluation: the template as CloudFormation would create it for given parameters

NO_VALUE = object()


def parameter_values(template: dict[str, Any], params: dict[str, str]) -> dict[str, str]:
    unknown = set(params) - set(template.get("Parameters", {}))
    assert not unknown, f"not parameters of the template: {sorted(unknown)}"
    values = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    values.update(params)
    return values


def _value(node: Any, values: dict[str, str]) -> str:
    if isinstance(node, dict) and "Ref" in node:
        name = node["Ref"]
        if name in PSEUDO:
            return values.get(name, PSEUDO[name])
        assert name in values, f"Ref {name} in a condition is not a parameter"
        return values[name]
    if isinstance(node, dict) and "Fn::Join" in node:  # a CommaDelimitedList parameter joined
        sep, parts = node["Fn::Join"]
        items = [x for p in as_list(parts) for x in (_value(p, values).split(",") if isinstance(p, dict) else [p])]
        return sep.join(i for i in items if i)
    assert isinstance(node, (str, int, float, bool)), f"unsupported value in a condition: {node}"
    return str(node)


def condition_values(template: dict[str, Any], values: dict[str, str]) -> dict[str, bool]:
    conditions = template.get("Conditions", {})
    cache: dict[str, bool] = {}

    def cond(name: str) -> bool:
        if name not in cache:
            assert name in conditions, f"unknown condition {name}"
            cache[name] = evaluate_condition(conditions[name])
        return cache[name]

    def evaluate_condition(node: Any) -> bool:
        assert isinstance(node, dict) and len(node) == 1, f"not a condition: {node}"
        ((fn, args),) = node.items()
        if fn == "Condition":
            return cond(args)
        if fn == "Fn::Equals":
            return _value(args[0], values) == _value(args[1], values)
        if fn == "Fn::Not":
            return not evaluate_condition(args[0])
        if fn == "Fn::And":
            return all(evaluate_condition(a) for a in args)
        if fn == "Fn::Or":
            return any(evaluate_condition(a) for a in args)
        raise AssertionError(f"unsupported condition function {fn}")

    return {name: cond(name) for name in conditions}


def evaluate(template: dict[str, Any], params: dict[str, str] | None = None, account: str = ACCOUNT) -> dict[str, Any]:
    """The template with `params` applied: false-condition resources and outputs dropped, Fn::If resolved."""
    values = parameter_values(template, params or {})
    values["AWS::AccountId"] = account
    conds = condition_values(template, values)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if len(node) == 1 and "Fn::If" in node:
                name, yes, no = node["Fn::If"]
                return walk(yes if conds[name] else no)
            if node == {"Ref": "AWS::NoValue"}:
                return NO_VALUE
            out = {}
            for k, v in node.items():
                w = walk(v)
                if w is not NO_VALUE:
                    out[k] = w
            return out
        if isinstance(node, list):
            return [w for w in (walk(v) for v in node) if w is not NO_VALUE]
        return node

    t = copy.deepcopy(template)
    for section in ("Resources", "Outputs"):
        t[section] = {
            name: walk(body)
            for name, body in t.get(section, {}).items()
            if "Condition" not in body or conds[body["Condition"]]
        }
    # DependsOn may name a resource that is not created; CloudFormation requires it to exist
    for name, res in t["Resources"].items():
        for dep in as_list(res.get("DependsOn", [])):
            assert dep in t["Resources"], f"{name} depends on {dep}, which this configuration does not create"
    t["_parameters"] = values
    return t


# ---------------------------------------------------------------------------------------------------
# rendering: literal values for every intrinsic (for parliament)

ARN_BY_TYPE = {
    "AWS::SNS::Topic": "arn:aws:sns:us-east-1:{account}:{name}",
    "AWS::SQS::Queue": "arn:aws:sqs:us-east-1:{account}:{name}",
    "AWS::KMS::Key": "arn:aws:kms:us-east-1:{account}:key/00000000-0000-4000-8000-{digits}",
    "AWS::Logs::LogGroup": "arn:aws:logs:us-east-1:{account}:log-group:/aws/lambda/{name}:*",
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:us-east-1:{account}:table/{name}",
    "AWS::Events::Rule": "arn:aws:events:us-east-1:{account}:rule/{name}",
    "AWS::Events::EventBus": "arn:aws:events:us-east-1:{account}:event-bus/{name}",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{name}",
    "AWS::IAM::ManagedPolicy": "arn:aws:iam::{account}:policy/{name}",
    "AWS::S3::Bucket": "arn:aws:s3:::{lname}",
    "AWS::Serverless::Function": "arn:aws:lambda:us-east-1:{account}:function:{name}",
    "AWS::Lambda::Function": "arn:aws:lambda:us-east-1:{account}:function:{name}",
    "AWS::CloudTrail::Trail": "arn:aws:cloudtrail:us-east-1:{account}:trail/{name}",
}
REF_IS_ARN = {"AWS::SNS::Topic", "AWS::IAM::ManagedPolicy"}


def render(template: dict[str, Any], params: dict[str, str] | None = None, account: str = ACCOUNT) -> dict[str, Any]:
    """`evaluate`, then every Ref/GetAtt/Sub/Join replaced by a literal string."""
    t = evaluate(template, params, account)
    values = dict(PSEUDO, **t.pop("_parameters"))
    values["AWS::AccountId"] = account
    res = t["Resources"]

    def name_of(logical: str) -> str:
        p = props(res[logical])
        for key in ("Name", "TopicName", "QueueName", "TableName", "RoleName", "BucketName", "TrailName"):
            if isinstance(p.get(key), str):
                return p[key]
        return f"keyguard-{logical}"

    def arn(logical: str) -> str:
        kind = res[logical]["Type"]
        assert kind in ARN_BY_TYPE, f"no fake ARN for {kind} ({logical})"
        digits = f"{zlib.crc32(logical.encode()) % 10**12:012d}"
        return ARN_BY_TYPE[kind].format(account=account, name=name_of(logical), lname=name_of(logical).lower(), digits=digits)

    def ref(name: str) -> str:
        if name in values:
            return values[name]
        assert name in res, f"Ref to unknown {name}"
        kind = res[name]["Type"]
        if kind in REF_IS_ARN:
            return arn(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.us-east-1.amazonaws.com/{account}/{name_of(name)}"
        if kind == "AWS::S3::Bucket":
            return name_of(name).lower()
        return name_of(name)

    def getatt(logical: str, attr: str) -> str:
        if attr == "Arn":
            return arn(logical)
        if attr == "QueueName":
            return name_of(logical)
        raise AssertionError(f"no fake value for {logical}.{attr}")

    def sub(text: str, local: dict[str, Any]) -> str:
        def one(m: re.Match) -> str:
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in local:
                return walk(local[key])
            if "." in key and key.split(".", 1)[0] in res:
                return getatt(*key.split(".", 1))
            return ref(key)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if len(node) == 1:
                ((k, v),) = node.items()
                if k == "Ref":
                    return ref(v)
                if k == "Fn::GetAtt":
                    logical, attr = v if isinstance(v, list) else v.split(".", 1)
                    return getatt(logical, attr)
                if k == "Fn::Sub":
                    return sub(v, {}) if isinstance(v, str) else sub(v[0], v[1])
                if k == "Fn::Join":
                    return v[0].join(walk(x) for x in v[1])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(t)


# ---------------------------------------------------------------------------------------------------
# the function, its rules and its role


def the_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    functions = resources(template, "AWS::Serverless::Function", "AWS::Lambda::Function")
    assert len(functions) == 1, f"expected exactly one function, found {sorted(functions)}"
    return next(iter(functions.items()))


def iam_event_rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The EventBridge rules whose pattern selects aws.iam events (the guard's, or a member's forwarder)."""
    return {
        name: rule
        for name, rule in resources(template, "AWS::Events::Rule").items()
        if "aws.iam" in as_list((props(rule).get("EventPattern") or {}).get("source", []))
    }


def event_pattern(template: dict[str, Any], rule: str = "IamEventRule") -> dict[str, Any]:
    pattern = props(template["Resources"][rule])["EventPattern"]
    # The pattern must be literal JSON: an intrinsic function in it would not be what EventBridge matches.
    assert "Fn::" not in json.dumps(pattern) and '"Ref"' not in json.dumps(pattern), pattern
    return pattern


def role_policies(template: dict[str, Any], role_name: str) -> list[tuple[str, dict[str, Any]]]:
    """(policy name, document) of every policy on a role of an evaluated template.

    Covers inline Policies of the role and AWS::IAM::Policy / RolePolicy / ManagedPolicy resources attached to it.
    Managed policies by ARN (ManagedPolicyArns) are refused: their actions are not in the template.
    """
    role = template["Resources"].get(role_name)
    assert role and role["Type"] == "AWS::IAM::Role", f"{role_name} is not an AWS::IAM::Role"
    rprops = props(role)
    assert not rprops.get("ManagedPolicyArns"), f"{role_name} has managed policies: {rprops['ManagedPolicyArns']}"
    documents = [(f"{role_name}.{p['PolicyName']}", p["PolicyDocument"]) for p in rprops.get("Policies", [])]
    for name, pol in resources(template, "AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy").items():
        pp = props(pol)
        attached = [ref_target(r) for r in as_list(pp.get("Roles", []))]
        if pp.get("RoleName") is not None:
            attached.append(ref_target(pp["RoleName"]))
        if role_name in attached:
            documents.append((name, pp["PolicyDocument"]))
    return documents


def role_statements(template: dict[str, Any], role_name: str) -> list[dict[str, Any]]:
    statements = []
    for name, doc in role_policies(template, role_name):
        assert isinstance(doc, dict), f"{name}: policy document is not literal: {doc}"
        for st in as_list(doc.get("Statement", [])):
            assert isinstance(st, dict) and not any(k.startswith("Fn::") for k in st), (
                f"{name}: intrinsic statement not supported by these checks: {st}"
            )
            statements.append(st)
    return statements


def function_role(template: dict[str, Any]) -> str:
    fn_name, fn = the_function(template)
    fprops = props(fn)
    assert "Policies" not in fprops, f"{fn_name}: SAM Policies would add permissions outside the checked role"
    role = ref_target(fprops.get("Role"))
    assert role, f"{fn_name} must use an explicit role from this template (Role: !GetAtt X.Arn)"
    return role


def resource_key(template: dict[str, Any], r: Any) -> str:
    """A statement's resource as a comparable string: a logical id for a Ref/GetAtt of one of the template's
    resources, the text of a Fn::Sub, or the literal."""
    target = ref_target(r)
    if target:
        assert target in template["Resources"], f"resource {r} is not one of the template's"
        return target
    if isinstance(r, dict) and "Fn::Sub" in r and isinstance(r["Fn::Sub"], str):
        return r["Fn::Sub"]
    assert isinstance(r, str), f"unsupported resource form {r}"
    return r


def grants(template: dict[str, Any], role_name: str) -> set[tuple[str, str]]:
    """(action, resource) pairs a role's Allow statements grant, in an evaluated template."""
    out = set()
    for st in role_statements(template, role_name):
        assert "NotAction" not in st and "NotResource" not in st and "NotPrincipal" not in st, st
        assert st.get("Effect") == "Allow", f"unexpected statement effect: {st}"
        resources_ = as_list(st.get("Resource", []))
        assert resources_, f"statement without Resource: {st}"
        for a in as_list(st.get("Action", [])):
            assert isinstance(a, str), f"action is not a literal string: {a}"
            assert "*" not in a and "?" not in a, f"wildcard action {a!r} in statement {st.get('Sid')}"
            for r in resources_:
                out.add((a, resource_key(template, r)))
    return out


# ---------------------------------------------------------------------------------------------------
# the expected permissions

USERS = "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"
SECURITY_HUB_PRODUCT = "arn:${AWS::Partition}:securityhub:${AWS::Region}:${AWS::AccountId}:product/${AWS::AccountId}/default"
SECURITY_HUB_HUB = "arn:${AWS::Partition}:securityhub:${AWS::Region}:${AWS::AccountId}:hub/default"
MEMBER_ROLES = "arn:${AWS::Partition}:iam::*:role/${MemberRoleName}"

# Actions that have no resource type (they act on the account): only Resource "*" works for them.
ACCOUNT_LEVEL_ACTIONS: frozenset[str] = frozenset(
    {
        "iam:GenerateCredentialReport",
        "iam:GetAccountAuthorizationDetails",
        "iam:GetCredentialReport",
        "iam:ListUsers",
        "iam:ListAccountAliases",
        "organizations:ListAccounts",
    }
)


def code_grant(action: str) -> list[tuple[str, str]]:
    """(feature, resource) under which the central template must grant one of the code's actions.

    A new action in `keyguard permissions` fails here until it is given its feature and its resource.
    """
    if action in ACCOUNT_LEVEL_ACTIONS:
        feature = "organization_directory" if action.startswith("organizations:") else "base"
        return [(feature, "*")]
    if action.startswith("iam:"):
        return [("base", USERS)]
    table: dict[str, list[tuple[str, str]]] = {
        "sns:Publish": [("base", "AlertTopic"), ("chat", "ChatTopic")],
        "dynamodb:GetItem": [("base", "LedgerTable")],
        "dynamodb:UpdateItem": [("base", "LedgerTable")],
        "securityhub:BatchImportFindings": [("security_hub", SECURITY_HUB_PRODUCT)],
        "securityhub:GetFindings": [("security_hub", SECURITY_HUB_HUB)],
        "sts:AssumeRole": [("organization", MEMBER_ROLES)],
        "sqs:SendMessage": [("organization", "SweepQueue")],
    }
    assert action in table, f"{action}: a new action of the code; decide its feature and resource in code_grant()"
    return table[action]


# Permissions the infrastructure itself needs, beyond the AWS calls the code makes (`keyguard permissions`).
# Each one is here for a reason; a new entry needs one too.
INFRA_GRANTS: dict[str, set[tuple[str, str]]] = {
    "base": {
        # The alert (and chat) topic is encrypted with a customer-managed KMS key: on sns:Publish, SNS asks KMS for
        # a data key with the publisher's permissions. (AWS's examples write kms:GenerateDataKey*; SNS calls
        # GenerateDataKey only, and the role has no wildcard.)
        ("kms:GenerateDataKey", "AlertKey"),
        ("kms:Decrypt", "AlertKey"),
        # Lambda's asynchronous on-failure destination (an SQS queue) is written with the function's role.
        ("sqs:SendMessage", "FailureQueue"),
        # The function writes its own log group (instead of AWSLambdaBasicExecutionRole, whose Resource is "*"
        # and which includes logs:CreateLogGroup: the stack creates the group).
        ("logs:CreateLogStream", "GuardLogGroup"),
        ("logs:PutLogEvents", "GuardLogGroup"),
    },
    "organization": {
        # The event source mapping reads the sweep queue with the function's role.
        ("sqs:ReceiveMessage", "SweepQueue"),
        ("sqs:DeleteMessage", "SweepQueue"),
        ("sqs:GetQueueAttributes", "SweepQueue"),
    },
}


def expected_grants(code_actions: Iterable[str], on: set[str]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for action in code_actions:
        for feature, resource in code_grant(action):
            if feature in on:
                out.add((action, resource))
    for feature, pairs in INFRA_GRANTS.items():
        if feature in on:
            out |= pairs
    return out


def check_role_grants(template: dict[str, Any], params: dict[str, str], code_actions: Iterable[str]) -> None:
    """The function's role, deployed with `params`, grants exactly what the enabled features need."""
    t = evaluate(template, params)
    expected = expected_grants(code_actions, features(params))
    actual = grants(t, function_role(t))
    missing, extra = sorted(expected - actual), sorted(actual - expected)
    assert not missing and not extra, (
        f"role grants (action, resource) differ from `keyguard permissions` + INFRA_GRANTS for {params}:\n"
        f"  missing from the role (the code would get AccessDenied): {missing}\n"
        f"  extra on the role (not needed with these features): {extra}"
    )


def check_assume_role_condition(template: dict[str, Any]) -> None:
    """sts:AssumeRole only into the member role, only in the organization's accounts."""
    t = evaluate(template, CONFIGS["organization"])
    statements = [st for st in role_statements(t, function_role(t)) if "sts:AssumeRole" in as_list(st["Action"])]
    assert statements, "no sts:AssumeRole statement in organization mode"
    for st in statements:
        assert as_list(st["Action"]) == ["sts:AssumeRole"], f"AssumeRole shares its statement: {st}"
        assert st.get("Condition") == {"StringEquals": {"aws:ResourceOrgID": {"Ref": "OrganizationId"}}}, st


def member_role_grants(member: dict[str, Any], params: dict[str, str]) -> set[tuple[str, str]]:
    t = evaluate(member, params)
    roles = resources(t, "AWS::IAM::Role")
    member_roles = [n for n, r in roles.items() if props(r).get("RoleName") == {"Ref": "MemberRoleName"}]
    assert len(member_roles) == 1, f"expected one role named MemberRoleName, found {member_roles}"
    return grants(t, member_roles[0])


def check_member_grants(member: dict[str, Any], params: dict[str, str], member_actions: Iterable[str]) -> None:
    """The member role grants exactly `keyguard permissions --member` (Security Hub only when on), scoped to this
    account."""
    expected = set()
    for action in member_actions:
        if action.startswith("securityhub:"):
            if params.get("SecurityHub") == "on":
                expected.add((action, SECURITY_HUB_PRODUCT if action.endswith("BatchImportFindings") else SECURITY_HUB_HUB))
        elif action in ACCOUNT_LEVEL_ACTIONS:
            expected.add((action, "*"))
        elif action.startswith("iam:"):
            expected.add((action, USERS))
        else:
            raise AssertionError(f"{action}: a new member action; decide its resource in check_member_grants()")
    actual = member_role_grants(member, params)
    missing, extra = sorted(expected - actual), sorted(actual - expected)
    assert not missing and not extra, f"member role for {params}:\n  missing: {missing}\n  extra: {extra}"


# ---------------------------------------------------------------------------------------------------
# trust and resource policies of the organization


def check_member_trust(member: dict[str, Any]) -> None:
    """The member role trusts one principal: the central account's GuardRoleName role, in the organization."""
    t = evaluate(member, MEMBER_CONFIGS["member"])
    (role,) = [r for r in resources(t, "AWS::IAM::Role").values() if props(r).get("RoleName") == {"Ref": "MemberRoleName"}]
    statements = as_list(props(role)["AssumeRolePolicyDocument"]["Statement"])
    assert len(statements) == 1, f"one trust statement expected: {statements}"
    (st,) = statements
    assert st["Effect"] == "Allow" and as_list(st["Action"]) == ["sts:AssumeRole"], st
    assert st["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}}, st
    cond = st.get("Condition", {})
    assert cond.get("StringEquals", {}).get("aws:PrincipalOrgID") == {"Ref": "OrganizationId"}, f"no org condition: {st}"
    assert cond.get("ArnEquals", {}).get("aws:PrincipalArn") == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:role/${GuardRoleName}"
    }, f"the trust must name the central guard role: {st}"


def check_bus_policy(template: dict[str, Any]) -> None:
    """The central bus accepts events:PutEvents only from principals of the organization."""
    t = evaluate(template, CONFIGS["organization"])
    buses = resources(t, "AWS::Events::EventBus")
    assert len(buses) == 1, f"one central bus expected in organization mode: {sorted(buses)}"
    ((bus_name, bus),) = buses.items()
    policies = [props(bus).get("Policy")] + [
        props(p).get("Statement") for p in resources(t, "AWS::Events::EventBusPolicy").values()
    ]
    statements = [st for p in policies if p for st in as_list(p.get("Statement", p))]
    assert statements, f"{bus_name} has no resource policy"
    for st in statements:
        if st.get("Effect") != "Allow":
            continue
        assert as_list(st["Action"]) == ["events:PutEvents"], st
        assert st.get("Condition", {}).get("StringEquals", {}).get("aws:PrincipalOrgID") == {"Ref": "OrganizationId"}, (
            f"{bus_name}: an Allow without aws:PrincipalOrgID lets any account put events: {st}"
        )
    # and the guard's rule on it
    rules = [n for n, r in iam_event_rules(t).items() if ref_target(props(r).get("EventBusName")) == bus_name]
    assert rules, f"no guard rule on {bus_name}"


def check_region_rule(template: dict[str, Any]) -> None:
    """A Rules assertion refuses any region but us-east-1, and says why."""
    rules = template.get("Rules") or {}
    for rule in rules.values():
        if "RuleCondition" in rule:
            continue  # a conditional rule would not always apply
        for assertion in rule.get("Assertions", []):
            cond = assertion.get("Assert", {})
            args = cond.get("Fn::Equals")
            if isinstance(args, list) and {"Ref": "AWS::Region"} in args and "us-east-1" in args:
                text = assertion.get("AssertDescription", "")
                assert "us-east-1" in text and "IAM" in text, f"AssertDescription must explain IAM/us-east-1: {text!r}"
                return
    raise AssertionError("no unconditional Rules assertion Fn::Equals [!Ref AWS::Region, us-east-1]")


# ---------------------------------------------------------------------------------------------------
# the code's permissions and metrics


def _keyguard_cmd(*args: str) -> list[str]:
    binary = os.environ.get("KEYGUARD_BIN")
    if binary:
        path = Path(binary)
        if not path.is_absolute():
            path = REPO_ROOT / path
        assert path.exists(), f"KEYGUARD_BIN={binary} does not exist (build it: cargo build -p keyguard-cli)"
        return [str(path), *args]
    return ["cargo", "run", "-q", "-p", "keyguard-cli", "--", *args]


def code_permissions(*args: str) -> list[str]:
    """The AWS actions the code calls, as printed by `keyguard permissions [--member]` (a JSON array of strings).

    KEYGUARD_BIN (absolute, or relative to the repository root) names the built `keyguard` binary; without it,
    `cargo run -q -p keyguard-cli -- permissions`.
    """
    cmd = _keyguard_cmd("permissions", *args)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
    try:
        actions = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"`{' '.join(cmd)}` must print a JSON array of action names; it printed {proc.stdout[:300]!r} ({exc})"
        ) from None
    assert isinstance(actions, list) and actions, f"expected a non-empty JSON array, got {actions!r}"
    for a in actions:
        assert isinstance(a, str) and a.count(":") == 1 and a.split(":")[0].isalpha(), f"not an action: {a!r}"
    return actions


def bootstrap_binary() -> Path:
    """The debug `bootstrap` (the Lambda), beside KEYGUARD_BIN, or built with cargo."""
    binary = os.environ.get("KEYGUARD_BIN")
    if binary:
        path = Path(binary)
        path = (path if path.is_absolute() else REPO_ROOT / path).parent / "bootstrap"
        assert path.exists(), f"{path} does not exist (build it: cargo build -p keyguard-lambda)"
        return path
    proc = subprocess.run(
        ["cargo", "build", "-q", "-p", "keyguard-lambda", "--message-format", "json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for line in proc.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == "bootstrap":
            return Path(msg["executable"])
    raise AssertionError("cargo built no bootstrap executable")


def metric_names() -> set[str]:
    """The metric names the code emits (the constants of crates/keyguard-aws/src/metrics.rs)."""
    text = METRICS_RS.read_text()
    names = set(re.findall(r'pub const [A-Z_]+: &str = "([A-Za-z]+)";', text)) - {"KeyGuard"}
    assert len(names) >= 10, f"metric names not found in {METRICS_RS}: {names}"
    return names


# ---------------------------------------------------------------------------------------------------
# events


def is_envelope(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("source"), str)
        and isinstance(obj.get("detail-type"), str)
        and isinstance(obj.get("detail"), dict)
    )


TRIGGER_EVENT_NAMES = frozenset({"CreateUser", "CreateLoginProfile", "CreateAccessKey"})


def should_trigger(event: dict[str, Any]) -> bool:
    """The specification of the rule, written independently of the template: what must reach the guard.

    Successful CreateUser / CreateLoginProfile / CreateAccessKey calls, and successful UpdateAccessKey calls that set
    a key Active (a key switched back on); never UpdateAccessKey to Inactive (KeyGuard's own remediation call).
    """
    d = event["detail"]
    if not (
        event["source"] == "aws.iam"
        and event["detail-type"] == "AWS API Call via CloudTrail"
        and d.get("eventSource") == "iam.amazonaws.com"
        and "errorCode" not in d
    ):
        return False
    if d.get("eventName") in TRIGGER_EVENT_NAMES:
        return True
    status = (d.get("requestParameters") or {}).get("status")
    return d.get("eventName") == "UpdateAccessKey" and isinstance(status, str) and status.lower() == "active"
