"""The kill test (DESIGN §4): SIGKILL a worker at a random moment while invoices flow,
start another, and prove every item has exactly one bill and one attachment, none lost.

Run on every ledger: the local SQLite one, and the Intacct and Sage Accounting sandboxes
each in its own process over HTTP, where a killed worker may leave a write half-known.
"""

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
    publish,
    rig,
    sample_items,
    stop_process,
    wait_terminal,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CASES = [
    ("local", 1, 207),
    ("local", 2, 207),
    ("local", 3, 207),
    ("intacct", 4, 138),
    ("intacct", 5, 138),
    ("sage-accounting", 6, 138),
    ("sage-accounting", 7, 138),
]


@pytest.mark.parametrize(("ledger", "seed", "count"), CASES)
def test_sigkill_mid_flow_loses_nothing_and_doubles_nothing(
    isolated: Settings, ledger: str, seed: int, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sage's 200 calls a minute would make this a slow test of the budget, which has tests
    # of its own; here the sandbox and the workers' budget are raised together.
    monkeypatch.setenv("BILLSTREAM_SAGE_CALLS_PER_MINUTE", "3000")
    rng = random.Random(seed)
    pipeline = rig(isolated, ledger)
    items = sample_items(count)  # whole cycles of the set: credit notes, bad items, duplicates
    events = events_for(items)
    first = pipeline.start_worker("worker-1.log")
    second = None
    try:
        asyncio.run(publish(pipeline.settings, events))
        # Kill somewhere between "still starting" and "deep in the batch".
        time.sleep(rng.uniform(1.5, 4.0))
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = pipeline.start_worker("worker-2.log")
        try:
            terminal = asyncio.run(
                wait_terminal(pipeline.settings, {e.subject: 1 for e in events}, within=240)
            )
        except TimeoutError as exc:
            # What the surviving worker holds and awaits: the only evidence of a stall.
            raise AssertionError(f"{exc}\n{pipeline.dump(second, 'worker-2.log')}") from exc
        inventory = pipeline.inventory()
    finally:
        stop_process(first)
        stop_process(second)
        pipeline.stop()
    expected = expected_outcomes(items)
    got = {}
    for key in expected:
        ev = terminal.state[key][1]
        got[key] = "attached" if ev.stage is Stage.ATTACHED else ev.data.reason.value
    assert got == expected, "every item ends as it should: none lost, none mis-parked"
    attached = sorted(k for k, v in expected.items() if v == "attached")
    assert sorted(inventory) == attached
    doubled = {k: v for k, v in inventory.items() if (v.bills, v.attachments) != (1, 1)}
    assert doubled == {}, "exactly one bill and one attachment per item"
