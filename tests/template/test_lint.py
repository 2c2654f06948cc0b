"""The linters' own configuration: checkov skips are each justified and each needed, and cfn-lint sees a broken
template. (`make lint-template` and `make scan-template` run cfn-lint, `sam validate --lint` and checkov on every
template; these tests keep their exceptions honest.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import kg_template

VENV_BIN = Path(sys.executable).parent


def _skips(template):
    for name, res in template.get("Resources", {}).items():
        for skip in ((res.get("Metadata") or {}).get("checkov") or {}).get("skip", []):
            yield name, skip


@pytest.mark.parametrize("path", kg_template.all_templates(), ids=lambda p: str(p.relative_to(kg_template.REPO_ROOT)))
def test_every_checkov_skip_is_justified(path):
    for name, skip in _skips(kg_template.load_template(path)):
        assert skip.get("id", "").startswith(("CKV_", "CKV2_")), f"{path.name}:{name}: {skip}"
        assert len(skip.get("comment", "")) >= 40, f"{path.name}:{name}: skip {skip.get('id')} needs a real reason"


def _everything_on(t):
    """checkov drops resources whose condition is false under the parameters' defaults: default to every feature on,
    so that it scans every resource (the optional trail, the organization's bus and queues, chat)."""
    for name, value in kg_template.CONFIGS["everything"].items():
        t["Parameters"][name]["Default"] = value


def _checkov(path: Path) -> dict[str, set[tuple[str, str]]]:
    proc = subprocess.run(
        [str(VENV_BIN / "checkov"), "--skip-download", "--framework", "cloudformation", "-o", "json", "-f", str(path)],
        capture_output=True, text=True, timeout=600,
    )
    results = json.loads(proc.stdout)["results"]
    return {
        kind: {(c["resource"].split(".", 1)[1], c["check_id"]) for c in results[kind]}
        for kind in ("passed_checks", "failed_checks", "skipped_checks")
    }


def test_checkov_passes_with_every_feature_on(tmp_path):
    template = kg_template.load_template()
    copy = tmp_path / "template.json"
    copy.write_text(json.dumps(kg_template.without(template, _everything_on)))
    report = _checkov(copy)
    assert not report["failed_checks"], sorted(report["failed_checks"])
    scanned = {name for kind in report.values() for name, _ in kind}
    for name in ("Trail", "TrailBucket", "TrailKey", "SweepQueue", "ChatTopic", "LedgerTable", "ChatChannelRole"):
        assert name in scanned, f"checkov did not scan {name}"


def test_every_checkov_skip_is_needed(tmp_path):
    """Without its skips, checkov fails exactly those checks on those resources (no skip is stale)."""
    template = kg_template.load_template()
    skipped = {(name, skip["id"]) for name, skip in _skips(template)}
    assert skipped

    def strip(t):
        _everything_on(t)
        for res in t["Resources"].values():
            (res.get("Metadata") or {}).pop("checkov", None)

    copy = tmp_path / "template.json"
    copy.write_text(json.dumps(kg_template.without(template, strip)))
    failed = _checkov(copy)["failed_checks"]
    assert skipped <= failed, f"skips checkov no longer needs: {sorted(skipped - failed)}"
    assert failed <= skipped, f"failures without a skip: {sorted(failed - skipped)}"


def test_cfn_lint_catches_a_broken_member_template(tmp_path):
    broken = kg_template.without(
        kg_template.load_template(kg_template.MEMBER_TEMPLATE),
        lambda t: t["Resources"]["MemberRole"]["Properties"].__setitem__("MaxSessionDuration", 60),
    )
    copy = tmp_path / "member.json"
    copy.write_text(json.dumps(broken))
    proc = subprocess.run([str(VENV_BIN / "cfn-lint"), str(copy)], capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "E3034" in proc.stdout, proc.stdout  # a value below its minimum
