"""The kill test (DESIGN §4): SIGKILL a worker at a random moment while invoices flow,
start another, and prove every item has exactly one bill and one attachment, none lost."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import pytest

from domain.events import Stage
from streams.config import Settings
from tests.integration.helpers import (
    events_for,
    expected_outcomes,
    inventory,
    prepare,
    publish,
    sample_items,
    start_worker,
    stop_process,
    wait_terminal,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_mid_flow_loses_nothing_and_doubles_nothing(isolated: Settings, seed: int) -> None:
    rng = random.Random(seed)
    harness = prepare(isolated)
    items = sample_items(207)  # three cycles of the set: credit notes, bad items, duplicates
    events = events_for(items)
    first = start_worker(isolated, "worker-1.log")
    second = None
    try:
        asyncio.run(publish(isolated, events))
        # Kill somewhere between "still starting" and "deep in the batch".
        time.sleep(rng.uniform(1.5, 4.0))
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = start_worker(isolated, "worker-2.log")
        terminal = asyncio.run(wait_terminal(isolated, {e.subject: 1 for e in events}, within=180))
    finally:
        stop_process(first)
        stop_process(second)
    expected = expected_outcomes(items)
    got = {
        k: (
            "attached"
            if terminal.state[k][1].stage is Stage.ATTACHED
            else terminal.state[k][1].data.reason.value
        )
        for k in expected
    }
    assert got == expected, "every item ends as it should: none lost, none mis-parked"
    inv = inventory(harness, isolated)
    attached = sorted(k for k, v in expected.items() if v == "attached")
    assert sorted(inv) == attached
    doubled = {k: v for k, v in inv.items() if (v.bills, v.attachments) != (1, 1)}
    assert doubled == {}, "exactly one bill and one attachment per item"
