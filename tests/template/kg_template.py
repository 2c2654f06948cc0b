"""Helpers for the template tests: load template.yaml, find its parts, and the checks themselves.

The checks are plain functions raising AssertionError so that the tests can also run them on
deliberately broken copies of the template (proving that each check is able to fail).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterable

from cfnlint.decode import decode

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
SELF_SERVICE_JSON = REPO_ROOT / "infra" / "self-service-keys.json"
SELF_SERVICE_YAML = REPO_ROOT / "infra" / "self-service-keys.yaml"

# ---------------------------------------------------------------------------------------------------
# Permissions the infrastructure itself needs, beyond the AWS calls the code makes (`keyguard permissions`).
# Each one is here for a reason; a new entry needs one too.
INFRA_ACTIONS: frozenset[str] = frozenset(
    {
        # The alert topic is encrypted with a customer-managed KMS key: on sns:Publish, SNS asks KMS for a
        # data key with the publisher's permissions, so the publisher needs these on the key. (AWS's
        # examples write kms:GenerateDataKey*; SNS calls GenerateDataKey only, and the role has no wildcard.)
        "kms:GenerateDataKey",
        "kms:Decrypt",
        # Lambda's asynchronous on-failure destination (an SQS queue) is written with the function's role.
        "sqs:SendMessage",
        # The function writes its own log group (instead of AWSLambdaBasicExecutionRole, whose Resource is "*"
        # and which includes logs:CreateLogGroup: the stack creates the group).
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
)

# Actions that have no resource type (they act on the account): only Resource "*" works for them.
# Every other IAM action of the role must be scoped to the account's users.
ACCOUNT_LEVEL_ACTIONS: frozenset[str] = frozenset(
    {"iam:GenerateCredentialReport", "iam:GetCredentialReport", "iam:ListUsers", "cloudtrail:LookupEvents"}
)

USER_ARNS = {
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*",
    "arn:aws:iam::${AWS::AccountId}:user/*",
}

TRIGGER_EVENT_NAMES = frozenset({"CreateUser", "CreateLoginProfile", "CreateAccessKey"})


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


def the_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    functions = resources(template, "AWS::Serverless::Function", "AWS::Lambda::Function")
    assert len(functions) == 1, f"expected exactly one function, found {sorted(functions)}"
    return next(iter(functions.items()))


def iam_event_rule(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The EventBridge rule whose pattern selects aws.iam events and that targets the function."""
    fn_name, _ = the_function(template)
    found = []
    for name, rule in resources(template, "AWS::Events::Rule").items():
        pattern = props(rule).get("EventPattern")
        if not pattern:
            continue
        if "aws.iam" in as_list(pattern.get("source", [])) and any(
            ref_target(t.get("Arn")) == fn_name for t in props(rule).get("Targets", [])
        ):
            found.append((name, rule))
    assert len(found) == 1, f"expected one IAM event rule targeting {fn_name}, found {[n for n, _ in found]}"
    return found[0]


def event_pattern(template: dict[str, Any]) -> dict[str, Any]:
    _, rule = iam_event_rule(template)
    pattern = props(rule)["EventPattern"]
    # The pattern must be literal JSON: an intrinsic function in it would not be what EventBridge matches.
    assert "Fn::" not in json.dumps(pattern) and '"Ref"' not in json.dumps(pattern), pattern
    return pattern


# ---------------------------------------------------------------------------------------------------
# the function's role and its statements


def role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every policy statement that ends up on the function's execution role.

    Covers inline Policies of the role and AWS::IAM::Policy / AWS::IAM::RolePolicy resources attached to it.
    Managed policies (ManagedPolicyArns, SAM Policies) are refused: their actions are not in the template.
    """
    fn_name, fn = the_function(template)
    fprops = props(fn)
    assert "Policies" not in fprops, f"{fn_name}: SAM Policies would add permissions outside the checked role"
    role_name = ref_target(fprops.get("Role"))
    assert role_name, f"{fn_name} must use an explicit role from this template (Role: !GetAtt X.Arn)"
    role = template["Resources"].get(role_name)
    assert role and role["Type"] == "AWS::IAM::Role", f"{role_name} is not an AWS::IAM::Role"
    rprops = props(role)
    assert not rprops.get("ManagedPolicyArns"), f"{role_name} has managed policies: {rprops['ManagedPolicyArns']}"

    documents = [p["PolicyDocument"] for p in rprops.get("Policies", [])]
    for name, pol in resources(template, "AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy").items():
        pp = props(pol)
        attached = [ref_target(r) for r in as_list(pp.get("Roles", []))]
        if pp.get("RoleName") is not None:
            attached.append(ref_target(pp["RoleName"]))
        if role_name in attached:
            documents.append(pp["PolicyDocument"])
    statements = []
    for doc in documents:
        assert isinstance(doc, dict), f"policy document is not literal: {doc}"
        for st in as_list(doc.get("Statement", [])):
            assert isinstance(st, dict) and not any(k.startswith("Fn::") for k in st), (
                f"conditional/intrinsic statement not supported by these checks: {st}"
            )
            statements.append(st)
    assert statements, f"no policy statements found on {role_name}"
    return statements


def role_actions(template: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for st in role_statements(template):
        if st.get("Effect") == "Allow":
            for a in as_list(st.get("Action", [])):
                assert isinstance(a, str), f"action is not a literal string: {a}"
                actions.add(a)
    return actions


def check_role_actions(template: dict[str, Any], code_actions: Iterable[str]) -> None:
    """The role allows exactly the code's actions plus INFRA_ACTIONS: an extra or a missing one fails."""
    expected = set(code_actions) | INFRA_ACTIONS
    actual = role_actions(template)
    missing = sorted(expected - actual)
    extra = sorted(actual - expected)
    assert not missing and not extra, (
        f"role actions differ from `keyguard permissions` + INFRA_ACTIONS:\n"
        f"  missing from the role (the code would get AccessDenied): {missing}\n"
        f"  extra on the role (not called, not declared in INFRA_ACTIONS): {extra}"
    )


def check_no_wildcards(template: dict[str, Any]) -> None:
    """No wildcard action, no NotAction/NotResource, and resources scoped as the design requires."""
    for st in role_statements(template):
        assert "NotAction" not in st and "NotResource" not in st and "NotPrincipal" not in st, st
        assert st.get("Effect") == "Allow", f"unexpected statement effect: {st}"
        actions = as_list(st.get("Action", []))
        for a in actions:
            assert "*" not in a and "?" not in a, f"wildcard action {a!r} in statement {st.get('Sid')}"
        res = as_list(st.get("Resource", []))
        assert res, f"statement without Resource: {st}"
        for action in actions:
            for r in res:
                literal = r.get("Fn::Sub") if isinstance(r, dict) and "Fn::Sub" in r else r
                if action in ACCOUNT_LEVEL_ACTIONS:
                    assert literal == "*", f"{action} has no resource type; it needs Resource '*'"
                elif action.startswith("iam:"):
                    assert isinstance(literal, str) and literal in USER_ARNS, (
                        f"{action} must be scoped to arn:aws:iam::${{AWS::AccountId}}:user/*, got {r}"
                    )
                else:
                    # sns/kms/sqs/logs: only this stack's own resources (a Ref or GetAtt of one of them)
                    target = ref_target(r)
                    assert target in template["Resources"], (
                        f"{action} must be scoped to a resource of this stack, got {r}"
                    )


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


def without(template: dict[str, Any], mutate) -> dict[str, Any]:
    """A deep copy of the template changed by `mutate(copy)`, for the tests that prove a check can fail."""
    t = copy.deepcopy(template)
    mutate(t)
    return t


# ---------------------------------------------------------------------------------------------------
# the code's permissions


def code_permissions() -> list[str]:
    """The AWS actions the code calls, as printed by `keyguard permissions` (a JSON array of strings).

    KEYGUARD_BIN (absolute, or relative to the repository root) names the built `keyguard` binary; without it,
    `cargo run -q -p keyguard-cli -- permissions`.
    """
    binary = os.environ.get("KEYGUARD_BIN")
    if binary:
        path = Path(binary)
        if not path.is_absolute():
            path = REPO_ROOT / path
        assert path.exists(), f"KEYGUARD_BIN={binary} does not exist (build it: cargo build -p keyguard-cli)"
        cmd = [str(path), "permissions"]
    else:
        cmd = ["cargo", "run", "-q", "-p", "keyguard-cli", "--", "permissions"]
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


# ---------------------------------------------------------------------------------------------------
# events


def is_envelope(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("source"), str)
        and isinstance(obj.get("detail-type"), str)
        and isinstance(obj.get("detail"), dict)
    )


def should_trigger(event: dict[str, Any]) -> bool:
    """The specification of the rule, written independently of the template: what must reach the guard."""
    d = event["detail"]
    return (
        event["source"] == "aws.iam"
        and event["detail-type"] == "AWS API Call via CloudTrail"
        and d.get("eventSource") == "iam.amazonaws.com"
        and d.get("eventName") in TRIGGER_EVENT_NAMES
        and "errorCode" not in d
    )
