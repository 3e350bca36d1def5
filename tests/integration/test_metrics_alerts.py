"""The alert rules' firing logic: ``promtool test rules`` on deploy/prometheus/alerts.test.yml.

The cases feed made-up series (what a stuck tenant, a burst of failures, a refused login, a
saturated budget look like) and say which alerts must fire, with which labels and text. That
the expressions read metrics the worker really exports is checked against a demo run by
tests/integration/test_dashboards.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from streams.config import REPO_ROOT
from tests.debian import ensure_debian

RULES = REPO_ROOT / "deploy" / "prometheus"


def ensure_promtool() -> str:
    return ensure_debian("promtool", "prometheus")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ensure_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_rules_are_valid() -> None:
    done = promtool("check", "rules", "alerts.yml", cwd=RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 rules found" in done.stdout


def test_the_alerts_fire_when_they_should_and_only_then() -> None:
    done = promtool("test", "rules", "alerts.test.yml", cwd=RULES)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("original", "broken"),
    [
        ("> 10", "> 1000"),  # a threshold that never trips
        ('reason="auth"', 'reason="authentication"'),  # a label value the worker never exports
        ("billstream_sage_budget_used_ratio", "billstream_sage_budget_ratio"),  # a wrong name
        ("unless on (tenant)", "and on (tenant)"),  # the opposite condition
    ],
)
def test_the_unit_tests_catch_a_broken_rule(tmp_path: Path, original: str, broken: str) -> None:
    rules = (RULES / "alerts.yml").read_text()
    assert original in rules
    (tmp_path / "alerts.yml").write_text(rules.replace(original, broken))
    shutil.copy(RULES / "alerts.test.yml", tmp_path / "alerts.test.yml")
    done = promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert done.returncode != 0, f"promtool passed rules with {broken!r} for {original!r}"
