"""The kill test (docs/architecture.md, "Exactly one bill per invoice"): SIGKILL a worker at a
random moment while invoices flow, start another, and prove every item has exactly one bill
and one attachment, none lost.

Run on every ledger: the local SQLite one, and the Intacct and Sage Accounting sandboxes
each in its own process over HTTP, where a killed worker may leave a write half-known.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from domain.errors import Reason
from domain.events import Stage
from domain.tenants import load_tenants
from streams.config import Settings
from streams.ops.replay import ReplayFilter, replay
from tests.integration.helpers import (
    Rig,
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


def outcomes(terminal: Any, expected: dict[str, str]) -> dict[str, str]:
    got = {}
    for key in expected:
        ev = terminal.state[key][1]
        got[key] = "attached" if ev.stage is Stage.ATTACHED else ev.data.reason.value
    return got


def reconnect_and_replay(pipeline: Rig, got: dict[str, str], expected: dict[str, str]) -> Any:
    """A Sage Accounting refresh token rotates on use: a worker killed between Sage's answer
    to a refresh and the write of the new token leaves the old, spent one, and every call of
    the tenant is refused (``auth``). No client can avoid that window; it is the operator's
    ``billstream connect`` then ``replay --reason auth``, which the test does here. Nothing
    may be lost or doubled on the way."""
    settings = pipeline.settings
    tenants = load_tenants(settings.tenants_file)
    for tenant in {key.split(":")[0] for key, v in got.items() if v == "auth"}:
        pipeline.harness.reconnect(tenants.get(tenant), Path(settings.data_dir) / "tokens")
    report = asyncio.run(
        replay(settings, str(settings.kafka_url), ReplayFilter(reasons=frozenset({Reason.AUTH})))
    )
    attempts = dict.fromkeys(expected, 1)
    attempts.update({item["item"]: int(item["attempt"]) for item in report.items})
    return asyncio.run(wait_terminal(settings, attempts, within=120))


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
    expected = expected_outcomes(items)
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
            got = outcomes(terminal, expected)
            if ledger == "sage-accounting" and "auth" in set(got.values()) - set(expected.values()):
                terminal = reconnect_and_replay(pipeline, got, expected)
                got = outcomes(terminal, expected)
        except TimeoutError as exc:
            # What the surviving worker holds and awaits: the only evidence of a stall.
            raise AssertionError(f"{exc}\n{pipeline.dump(second, 'worker-2.log')}") from exc
        inventory = pipeline.inventory()
    finally:
        stop_process(first)
        stop_process(second)
        pipeline.stop()
    assert got == expected, "every item ends as it should: none lost, none mis-parked"
    attached = sorted(k for k, v in expected.items() if v == "attached")
    assert sorted(inventory) == attached
    doubled = {k: v for k, v in inventory.items() if (v.bills, v.attachments) != (1, 1)}
    assert doubled == {}, "exactly one bill and one attachment per item"


def test_a_refused_sage_connection_is_healed_by_reconnect_and_replay(
    isolated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The state a kill mid-refresh leaves, made certain: the workers' refresh token is spent.
    monkeypatch.setenv("BILLSTREAM_SAGE_CALLS_PER_MINUTE", "3000")
    pipeline = rig(isolated, "sage-accounting")
    sandbox = pipeline.harness.sandbox  # type: ignore[attr-defined]
    assert sandbox.expire_refresh_tokens() >= 1
    items = sample_items(46)
    events = events_for(items)
    expected = expected_outcomes(items)
    worker = pipeline.start_worker("worker.log")
    try:
        asyncio.run(publish(pipeline.settings, events))
        terminal = asyncio.run(
            wait_terminal(pipeline.settings, {e.subject: 1 for e in events}, within=120)
        )
        refused = outcomes(terminal, expected)
        terminal = reconnect_and_replay(pipeline, refused, expected)
        got = outcomes(terminal, expected)
        inventory = pipeline.inventory()
    finally:
        stop_process(worker)
        pipeline.stop()
    # Everything that would have been attached was refused first (so were the items whose
    # outcome needs Sage, such as a duplicate), then attached once.
    assert {k for k, v in expected.items() if v == "attached"} <= {
        k for k, v in refused.items() if v == "auth"
    }
    assert got == expected
    assert sorted(inventory) == sorted(k for k, v in expected.items() if v == "attached")
    assert all((v.bills, v.attachments) == (1, 1) for v in inventory.values())
