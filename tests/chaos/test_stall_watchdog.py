"""The stall watchdog on the real path: a worker on the real broker whose Faust drops one
fetched batch (injected, see faults/sitecustomize.py) still brings every invoice to its end,
because the watchdog seeks the partition back and it is read again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from domain.events import Stage
from streams.config import Settings
from tests.integration.helpers import (
    events_for,
    expected_outcomes,
    publish,
    rig,
    sample_items,
    stop_process,
    wait_terminal,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

FAULTS = Path(__file__).parent / "faults"


def test_records_faust_dropped_are_read_again(isolated: Settings) -> None:
    pipeline = rig(isolated, "local")
    pipeline.env.update(
        {"PYTHONPATH": str(FAULTS), "BILLSTREAM_FAULT": "drop-fetched:.vendor-resolved"}
    )
    items = sample_items(40)
    events = events_for(items)
    worker = pipeline.start_worker("worker.log")
    try:
        asyncio.run(publish(pipeline.settings, events))
        try:
            terminal = asyncio.run(
                wait_terminal(pipeline.settings, {e.subject: 1 for e in events}, within=120)
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{pipeline.dump(worker, 'worker.log')}") from exc
        inventory = pipeline.inventory()
    finally:
        stop_process(worker)
        pipeline.stop()
    log = (Path(pipeline.settings.data_dir) / "worker.log").read_text()
    assert "fault: dropped the fetched records" in log, "the fault was not injected"
    assert "seeking back" in log, "the watchdog did not act"
    expected = expected_outcomes(items)
    got = {}
    for key in expected:
        ev = terminal.state[key][1]
        got[key] = "attached" if ev.stage is Stage.ATTACHED else ev.data.reason.value
    assert got == expected
    assert all((v.bills, v.attachments) == (1, 1) for v in inventory.values())
