"""``make fuzz`` in small: hostile items through push, the folder and validation, on a real
broker and worker; the goals are the same (no 500, no crash, no hang, nothing lost)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from streams.config import REPO_ROOT

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_a_small_fuzz_run_meets_every_goal() -> None:
    env = dict(os.environ)
    if os.environ.get("BILLSTREAM_TEST_KAFKA_URL"):
        env["BILLSTREAM_KAFKA_URL"] = os.environ["BILLSTREAM_TEST_KAFKA_URL"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            "--items",
            "600",
            "--push-items",
            "300",
            "--folder-items",
            "300",
            "--timeout",
            "240",
            "--seed",
            "7",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    sources = figures["sources"]
    assert figures["validation"]["crashes"] == 0
    assert sources["push_500"] == sources["push_503"] == sources["hangs"] == sources["lost"] == 0
    assert sources["accepted"] > 0 and sum(sources["outcomes"].values()) == sources["accepted"]
    assert {"400", "401", "413"} <= set(sources["push_statuses"])
