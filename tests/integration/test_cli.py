"""CLI behaviour around the embedded broker and bad input: clear reasons, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.kafka.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker]


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLSTREAM_")}
    env["BILLSTREAM_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_second_embedded_broker_on_one_folder_is_refused(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path / "broker") as broker:
        done = run("audit", "acme-uk:DX-1", data_dir=tmp_path)
        assert broker.proc is not None and broker.proc.poll() is None
    assert done.returncode == 2
    assert "already running" in done.stderr
    assert "BILLSTREAM_KAFKA_URL" in done.stderr


def test_audit_of_an_unknown_item_says_so(tmp_path: Path) -> None:
    done = run("audit", "acme-uk:DX-NOPE", data_dir=tmp_path)
    assert done.returncode == 1
    assert "no events for acme-uk:DX-NOPE" in done.stdout


def test_audit_refuses_something_that_is_not_an_item_key(tmp_path: Path) -> None:
    done = run("audit", "DX-1", data_dir=tmp_path)
    assert done.returncode == 2
    assert "tenant:dext_item_id" in done.stderr


def test_replay_rejects_a_bad_since(tmp_path: Path) -> None:
    done = run("replay", "--reason", "any", "--since", "yesterday", data_dir=tmp_path)
    assert done.returncode == 2
    assert "--since" in done.stderr


def test_every_command_has_help() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "streams.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    commands = [
        line.split()[0] for line in listing.split("Commands:")[1].splitlines() if line.strip()
    ]
    assert {"demo", "worker", "replay", "audit", "validate", "broker", "sandbox"} <= set(commands)
    for name in commands:
        out = subprocess.run(
            [sys.executable, "-m", "streams.cli", name, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, name
        assert "Usage:" in out.stdout
