"""parliament (PyPI, pinned in tools/requirements.txt) on every IAM policy the project ships.

Identity policies (the guard's, the member's, the forwarder's, the chat guardrail, the self-service policy), trust
policies, and resource policies (topics, queues, bucket, keys, the central bus), each rendered with every feature on
(Ref/Sub/GetAtt replaced by literal ARNs, so that parliament can match actions to resource types). The run must be
clean, or each finding justified below; a justification whose finding is gone fails too, so the list stays true.
"""

from __future__ import annotations

import json
import re
from typing import Any

import parliament
import pytest

import kg_template

# (policy label, parliament issue, what it is about) -> why the finding is accepted.
_UPDATE_KEY = (
    "iam:UpdateAccessKey is the remediation itself: KeyGuard sets exactly the violating key Inactive (never Active, "
    "never another key), on the account's users only; parliament lists it as credential and permission management."
)
_OWN_KEYS = (
    "The self-service practice CIS 1.11 asks for: a user creates and deletes their own access keys, on their own user "
    "ARN only (${aws:username}); a key of one's own is no escalation beyond one's own permissions."
)
_KEY_ADMIN = (
    "AWS's default key policy statement: the account (root) administers the key through IAM policies; without it "
    "the key becomes unmanageable. No principal outside the account is named."
)
JUSTIFIED: dict[tuple[str, str, str], str] = {
    ("template.yaml:GuardPolicy", "CREDENTIALS_EXPOSURE", "iam:updateaccesskey"): _UPDATE_KEY,
    ("template.yaml:GuardPolicy", "PERMISSIONS_MANAGEMENT_ACTIONS", "iam:updateaccesskey"): _UPDATE_KEY,
    ("infra/org/member.yaml:MemberPolicy", "CREDENTIALS_EXPOSURE", "iam:updateaccesskey"): _UPDATE_KEY,
    ("infra/org/member.yaml:MemberPolicy", "PERMISSIONS_MANAGEMENT_ACTIONS", "iam:updateaccesskey"): _UPDATE_KEY,
    ("template.yaml:OrganizationPolicy", "CREDENTIALS_EXPOSURE", "sts:assumerole"): (
        "Organization mode: the guard assumes the member role to act in a member account; only that role name, only in "
        "accounts of the organization (aws:ResourceOrgID), and the member role trusts this role alone."
    ),
    ("template.yaml:AlertKey", "PERMISSIONS_MANAGEMENT_ACTIONS", "kms:creategrant,kms:createkey,kms:putkeypolicy,kms:retiregrant,kms:revokegrant"): _KEY_ADMIN,
    ("template.yaml:TrailKey", "PERMISSIONS_MANAGEMENT_ACTIONS", "kms:creategrant,kms:createkey,kms:putkeypolicy,kms:retiregrant,kms:revokegrant"): _KEY_ADMIN,
    **{
        (label, issue, "iam:createaccesskey" if issue != "PERMISSIONS_MANAGEMENT_ACTIONS" else "iam:createaccesskey,iam:deleteaccesskey"): _OWN_KEYS
        for label in ("infra/self-service-keys.yaml:SelfServiceAccessKeysPolicy", "infra/self-service-keys.json")
        for issue in ("CREDENTIALS_EXPOSURE", "PERMISSIONS_MANAGEMENT_ACTIONS", "PRIVILEGE_ESCALATION")
    },
}

EXEMPT_TAG_SCP = kg_template.REPO_ROOT / "infra" / "exempt-tag-guardrail.json"

# In a KMS key policy, Resource "*" means the key itself: the only form KMS accepts. parliament reads key policies as
# identity policies and flags it.
KEY_POLICY_RESOURCE_STAR = "RESOURCE_STAR"

# Trust policies have no Resource by design (the role itself is the resource); parliament reads them as identity
# policies and says so. Their content is checked by test_permissions.py (check_member_trust).
TRUST_POLICY_NO_RESOURCE = ("MALFORMED", "Statement contains neither Resource nor NotResource")


def policy_documents(rendered: dict[str, Any], source: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, kind, document) of every policy in a rendered template; kind is identity, trust or resource."""
    found = []
    for name, res in rendered["Resources"].items():
        p = kg_template.props(res)
        kind = res["Type"]
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            found.append((f"{source}:{name}", "identity", p["PolicyDocument"]))
        elif kind == "AWS::IAM::Role":
            found.append((f"{source}:{name}.trust", "trust", p["AssumeRolePolicyDocument"]))
            for inline in p.get("Policies", []):
                found.append((f"{source}:{name}.{inline['PolicyName']}", "identity", inline["PolicyDocument"]))
        elif kind in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy"):
            found.append((f"{source}:{name}", "resource", p["PolicyDocument"]))
        elif kind == "AWS::KMS::Key":
            found.append((f"{source}:{name}", "key", p["KeyPolicy"]))
        elif kind == "AWS::Events::EventBus" and "Policy" in p:
            found.append((f"{source}:{name}", "resource", p["Policy"]))
    return found


def shipped_policies() -> list[tuple[str, str, dict[str, Any]]]:
    central = kg_template.render(kg_template.load_template(), kg_template.CONFIGS["everything"])
    member = kg_template.render(
        kg_template.load_template(kg_template.MEMBER_TEMPLATE), kg_template.MEMBER_CONFIGS["member-security-hub"]
    )
    self_service = kg_template.render(kg_template.load_template(kg_template.SELF_SERVICE_YAML), {})
    policies = [
        *policy_documents(central, "template.yaml"),
        *policy_documents(member, "infra/org/member.yaml"),
        *policy_documents(self_service, "infra/self-service-keys.yaml"),
        ("infra/self-service-keys.json", "identity", json.loads(kg_template.SELF_SERVICE_JSON.read_text())),
        # The SCP the README ships so that only the security team may set or remove the exemption tag.
        ("infra/exempt-tag-guardrail.json", "identity", json.loads(EXEMPT_TAG_SCP.read_text())),
    ]
    # every template of the project is covered
    covered = {label.split(":")[0] for label, _, _ in policies}
    shipped = {str(p.relative_to(kg_template.REPO_ROOT)) for p in kg_template.all_templates()}
    assert shipped <= covered, f"templates whose policies are not linted: {sorted(shipped - covered)}"
    return policies


def findings(label: str, kind: str, document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, issue, detail) of parliament's findings on one document, trust policies' missing Resource aside."""
    text = json.dumps(document)
    # ${aws:username} is an IAM policy variable, not CloudFormation's
    unrendered = re.search(r"\$\{(?!aws:)|Fn::|\"Ref\"", text)
    assert not unrendered, f"{label} is not fully rendered: {text}"
    policy = parliament.analyze_policy_string(text, include_community_auditors=True)
    out = []
    for f in policy.findings:
        if kind == "trust" and (f.issue, str(f.detail)) == TRUST_POLICY_NO_RESOURCE:
            continue
        if kind == "key" and f.issue == KEY_POLICY_RESOURCE_STAR:
            continue
        actions = f.location.get("actions") if isinstance(f.location, dict) else None
        about = ",".join(sorted(actions)) if actions else str(f.detail)
        out.append((label, f.issue, about))
    return out


@pytest.fixture(scope="module")
def all_findings():
    return [f for label, kind, doc in shipped_policies() for f in findings(label, kind, doc)]


def test_every_kind_of_policy_is_linted():
    labels = {label for label, _, _ in shipped_policies()}
    for expected in (
        "template.yaml:GuardPolicy",
        "template.yaml:OrganizationPolicy",
        "template.yaml:SecurityHubPolicy",
        "template.yaml:ChatGuardrailPolicy",
        "template.yaml:ChatChannelRole.trust",
        "template.yaml:OrganizationBus",
        "template.yaml:TrailBucketPolicy",
        "template.yaml:AlertKey",
        "template.yaml:EventDeadLetterQueuePolicy",
        "infra/org/member.yaml:MemberPolicy",
        "infra/org/member.yaml:MemberRole.trust",
        "infra/org/member.yaml:ForwardIamEventsRole.keyguard-forward",
        "infra/self-service-keys.json",
        "infra/exempt-tag-guardrail.json",
    ):
        assert expected in labels, f"{expected} not linted; found {sorted(labels)}"


def test_parliament_finds_nothing_unjustified(all_findings):
    unjustified = [f for f in all_findings if f not in JUSTIFIED]
    assert not unjustified, "parliament findings (fix the policy, or justify in JUSTIFIED):\n" + "\n".join(
        f"  {label}: {issue}: {detail}" for label, issue, detail in unjustified
    )


def test_every_justification_is_still_needed(all_findings):
    stale = sorted(set(JUSTIFIED) - set(all_findings))
    assert not stale, f"justifications for findings parliament no longer makes: {stale}"


@pytest.mark.parametrize(
    ("statement", "issue"),
    [
        pytest.param({"Effect": "Allow", "Action": "iam:GetUsr", "Resource": "*"}, "UNKNOWN_ACTION", id="unknown action"),
        pytest.param(
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"},
            "RESOURCE_MISMATCH",
            id="object action on a bucket",
        ),
        pytest.param(
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": "arn:aws:sns:us-east-1:111122223333:alerts"},
            None,
            id="no finding on a plain statement",
        ),
    ],
)
def test_the_lint_can_fail(statement, issue):
    """The wrapper reports what parliament finds (and a clean statement stays clean)."""
    got = {i for _, i, _ in findings("broken", "identity", {"Version": "2012-10-17", "Statement": [statement]})}
    if issue:
        assert issue in got, got
    else:
        assert not got, got


def test_a_justification_does_not_hide_a_new_action():
    """Findings are justified for their exact actions: one more action in the same policy is a new finding."""
    broken = kg_template.without(
        kg_template.load_template(),
        lambda t: t["Resources"]["GuardPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Action"].append(
            "iam:DeleteAccessKey"
        ),
    )
    rendered = kg_template.render(broken, kg_template.CONFIGS["everything"])
    (doc,) = [d for label, _, d in policy_documents(rendered, "template.yaml") if label == "template.yaml:GuardPolicy"]
    new = [f for f in findings("template.yaml:GuardPolicy", "identity", doc) if f not in JUSTIFIED]
    assert new, "adding iam:DeleteAccessKey to the guard's policy went unnoticed"
