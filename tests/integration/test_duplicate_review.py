"""Held duplicates on a real broker, through a worker: a number written otherwise and the
same file under another number are held naming the first; replay does not release them; a
person releases one (its bill is posted, once) and rejects the other (it ends as a
duplicate); audit shows who decided. The index is the shared one (compacted topic)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from domain.errors import Reason
from domain.events import Failure, Stage
from sandboxes.dext.samples import sample_items
from streams.ops.replay import ReplayFilter, replay
from streams.ops.review import decide, held_items
from tests.integration.helpers import (
    events_for,
    inventory,
    prepare,
    publish,
    start_worker,
    stop_process,
    wait_terminal,
)
from tests.support import REPO_ROOT, run_settings

pytestmark = [pytest.mark.broker]


def sample(item_id: str, **changes: Any) -> Any:
    base = next(s for s in sample_items() if s.item["id"] == "DX-100001")
    return dataclasses.replace(base, item={**base.item, "id": item_id, **changes})


def cli(settings: Any, *args: str) -> dict[str, Any]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BILLSTREAM_")},
        "BILLSTREAM_KAFKA_URL": str(settings.kafka_url),
        "BILLSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "BILLSTREAM_DATA_DIR": str(settings.data_dir),
        "BILLSTREAM_TENANTS_FILE": str(settings.tenants_file),
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_held_released_and_rejected(tmp_path: Path, kafka_url: str) -> None:
    # The example tenants with every rule (run_settings would hold by number only).
    settings = run_settings(
        tmp_path, kafka_url, "dups", tenants_from=REPO_ROOT / "tenants.example.toml"
    )
    harness = prepare(settings)
    first = sample("DX-D1", invoice_number="MB-0038199")
    variant = sample("DX-D2", invoice_number="mb 38199")  # the same number, written otherwise
    same_file = sample("DX-D3", invoice_number="MB-40000")  # the same PDF, a new number
    worker = start_worker(settings)
    try:
        asyncio.run(publish(settings, events_for([first])))
        asyncio.run(wait_terminal(settings, {"acme-uk:DX-D1": 1}))
        asyncio.run(publish(settings, events_for([variant, same_file])))
        term = asyncio.run(wait_terminal(settings, {"acme-uk:DX-D2": 1, "acme-uk:DX-D3": 1}))
        for key, rule in (("acme-uk:DX-D2", "number_variant"), ("acme-uk:DX-D3", "same_document")):
            failure = term.state[key][1].data
            assert isinstance(failure, Failure), failure
            assert failure.reason is Reason.POSSIBLE_DUPLICATE
            # the first, and the other look-alike too when it was checked before this one
            assert failure.detail["rule"] == rule
            assert failure.detail["matches"][0] == "acme-uk:DX-D1"

        url = str(settings.kafka_url)
        listed = cli(settings, "duplicates", "held")["held"]
        assert sorted(h["item"] for h in listed) == ["acme-uk:DX-D2", "acme-uk:DX-D3"]
        assert {h["rule"] for h in listed} == {"number_variant", "same_document"}

        # Replay by name sends it back; the check holds it again: only a person releases.
        report = asyncio.run(
            replay(settings, url, ReplayFilter(reasons=frozenset({Reason.POSSIBLE_DUPLICATE})))
        )
        assert report.sent == 2
        asyncio.run(wait_terminal(settings, {"acme-uk:DX-D2": 2, "acme-uk:DX-D3": 2}))
        assert len(asyncio.run(held_items(settings, url))) == 2

        released = cli(settings, "duplicates", "release", "acme-uk:DX-D2", "--by", "ana")
        assert released["attempt"] == 3
        asyncio.run(decide(settings, url, "acme-uk:DX-D3", "reject", by="ben", note="same PDF"))
        term = asyncio.run(wait_terminal(settings, {"acme-uk:DX-D2": 3, "acme-uk:DX-D3": 3}))
        assert term.state["acme-uk:DX-D2"][1].stage is Stage.ATTACHED
        rejected = term.state["acme-uk:DX-D3"][1].data
        assert isinstance(rejected, Failure) and rejected.reason is Reason.DUPLICATE
        assert asyncio.run(held_items(settings, url)) == []
    finally:
        stop_process(worker)
    bills = inventory(harness, settings)
    assert sorted(bills) == ["acme-uk:DX-D1", "acme-uk:DX-D2"]
    assert all((b.bills, b.attachments) == (1, 1) for b in bills.values())
    steps = cli(settings, "audit", "acme-uk:DX-D2")["steps"]
    assert any("released by ana" in s["detail"] and s["source"] == "review" for s in steps)
    steps = cli(settings, "audit", "acme-uk:DX-D3")["steps"]
    assert "Rejected by ben as a duplicate of acme-uk:DX-D1" in steps[-1]["detail"]
    assert steps[-1]["detail"].endswith(": same PDF") and steps[-1]["source"] == "review"
