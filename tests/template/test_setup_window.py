"""The SetupWindow parameter accepts exactly the windows the function accepts.

The real `bootstrap` (the Lambda's binary, debug build) is started with KEYGUARD_MODE=dry-run and each window, outside
any Lambda runtime: a window it refuses stops it at start-up naming KEYGUARD_SETUP_WINDOW; a window it accepts gets
past configuration (its "keyguard ready" line gives the window in seconds) and fails later, for lack of a runtime API.
The values sit on the boundaries of the pattern's alternatives and of the code's 7-day limit.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess

import pytest

import kg_template

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
# Whole numbers of a unit, without leading zeros: the shape the parameter documents.
VALUES = [
    *(f"{n}s" for n in (0, 1, 9, 10, 99999, 100000, 599999, 600000, 603999, 604000, 604799, 604800, 604801, 1000000)),
    *(f"{n}m" for n in (0, 1, 10, 9999, 10000, 10079, 10080, 10081, 99999)),
    *(f"{n}h" for n in (0, 1, 99, 100, 159, 160, 167, 168, 169, 1000)),
]


@pytest.fixture(scope="module")
def bootstrap():
    return kg_template.bootstrap_binary()


@pytest.fixture(scope="module")
def pattern(template):
    return re.compile(template["Parameters"]["SetupWindow"]["AllowedPattern"])


@functools.cache
def start(bootstrap, window: str) -> tuple[int | None, str]:
    """(accepted window in seconds or None, output) of the function started with this window (once per window)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KEYGUARD_MODE": "dry-run",
        "KEYGUARD_SETUP_WINDOW": window,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    proc = subprocess.run([str(bootstrap)], env=env, capture_output=True, text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, "without a Lambda runtime API the function cannot run on"
    for line in output.splitlines():  # the JSON log goes to stdout or stderr
        if line.startswith("{") and json.loads(line).get("message") == "keyguard ready":
            return json.loads(line)["window_seconds"], output
    assert "KEYGUARD_SETUP_WINDOW" in output, f"{window}: refused, but the error does not name the variable:\n{output}"
    return None, output


@pytest.mark.parametrize("window", VALUES)
def test_pattern_and_function_agree(bootstrap, pattern, window):
    accepted, output = start(bootstrap, window)
    n, unit = int(window[:-1]), window[-1]
    assert bool(pattern.match(window)) == (accepted is not None), (
        f"{window}: the template {'accepts' if pattern.match(window) else 'refuses'} it, the function "
        f"{'accepts' if accepted is not None else 'refuses'} it\n{output[-1000:]}"
    )
    if accepted is not None:
        assert accepted == n * UNIT_SECONDS[unit]


def test_the_default_is_accepted(template, pattern):
    assert pattern.match(template["Parameters"]["SetupWindow"]["Default"])


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param(r"^[1-9][0-9]{0,4}(s|m|h)$", id="the old pattern (99999h)"),
        pytest.param(r"^[1-9][0-9]{0,5}s$|^[1-9][0-9]{0,3}m$|^[1-9][0-9]{0,2}h$", id="digits only"),
    ],
)
def test_a_wrong_pattern_is_caught(bootstrap, wrong):
    """The comparison discriminates: a pattern that is not the code's limit disagrees on some boundary."""
    disagreements = [v for v in VALUES if bool(re.match(wrong, v)) != (start(bootstrap, v)[0] is not None)]
    assert disagreements
