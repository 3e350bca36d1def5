"""The stall watchdog: a stream partition fetched past its commit with nothing on its way to a
stream (the state a SIGUSR1 dump showed in two stalled kill tests on the embedded broker) is
sought back, and nothing that is merely busy or mid-rebalance is."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from prometheus_client import REGISTRY

from streams.kafka.stall_watchdog import PartitionView, StallWatchdog

TOPIC = "ap.vendor-resolved"
TP0, TP1 = TP(TOPIC, 0), TP(TOPIC, 1)
CHANGELOG = TP("app-done-attach-changelog", 0)


class Queue:
    def __init__(self, n: int = 0) -> None:
        self.n = n

    def qsize(self) -> int:
        return self.n


class FakeConsumer:
    def __init__(self) -> None:
        self.flow_active = True
        self.positions: dict[TP, int] = {TP0: 37, TP1: 28, CHANGELOG: 22}
        self._committed_offset: dict[TP, int | None] = {TP0: 25, TP1: 28}
        self._read_offset: dict[TP, int | None] = {TP0: 25, TP1: 27}
        self._active_partitions: set[TP] = {TP0, TP1}
        self._paused_partitions: set[TP] = set()
        self._unacked_messages: list[Any] = []
        self.sought: list[tuple[TP, int]] = []
        states = SimpleNamespace(state_value=self._state)
        aio = SimpleNamespace(
            _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=states))
        )
        self._thread = SimpleNamespace(_consumer=aio)

    def _state(self, tp: TP) -> Any:
        return SimpleNamespace(
            awaiting_reset=False, has_valid_position=True, position=self.positions[tp]
        )

    def assignment(self) -> set[TP]:
        return {TP0, TP1, CHANGELOG}

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))
        self.positions[tp] = offset
        self._read_offset[tp] = offset

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 3)


class FakeApp:
    def __init__(self) -> None:
        self.consumer = FakeConsumer()
        self.rebalancing = False
        self.in_recovery = False
        self.flow = True
        self.queue = Queue()
        self.flow_control = SimpleNamespace(is_active=lambda: self.flow)
        channel = SimpleNamespace(_queue=self.queue)
        self.topics = SimpleNamespace(acking_topics={TOPIC}, _tp_index={TP0: [channel]})


def run(watchdog: StallWatchdog, times: int) -> list[tuple[TP, int]]:
    for _ in range(times):
        asyncio.run(watchdog.check())
    sought: list[tuple[TP, int]] = watchdog.app.consumer.sought
    return sought


def reseeks() -> float:
    return REGISTRY.get_sample_value("billstream_consumer_reseeks_total", {"topic": TOPIC}) or 0.0


def test_a_partition_fetched_past_its_commit_with_nothing_in_flight_is_sought_back() -> None:
    app = FakeApp()
    watchdog = StallWatchdog(app, checks=3)
    before = reseeks()
    assert run(watchdog, 2) == []  # two identical views are not yet a stall
    assert run(watchdog, 1) == [(TP0, 25)]  # TP1 is at its commit; the changelog is no stream
    assert reseeks() == before + 1
    # Sought back, the partition is read again: nothing more to do.
    assert run(watchdog, 5) == [(TP0, 25)]


def test_a_partition_never_committed_is_sought_to_its_log_start() -> None:
    app = FakeApp()
    app.consumer._committed_offset[TP0] = None
    app.consumer._read_offset[TP0] = None
    assert run(StallWatchdog(app, checks=2), 2) == [(TP0, 3)]


@pytest.mark.parametrize(
    "busy",
    [
        "unacked",  # an agent is still on one of its events (a Sage retry, say)
        "queued",  # events wait in a stream's queue
        "flow",  # the consumer's flow is stopped
        "flow_control",  # the streams' flow control is suspended
        "rebalancing",
        "recovery",
        "paused",  # Faust paused the partition (recovery, a full buffer)
    ],
)
def test_nothing_busy_or_mid_rebalance_is_sought(busy: str) -> None:
    app = FakeApp()
    consumer = app.consumer
    if busy == "unacked":
        consumer._unacked_messages = [SimpleNamespace(tp=TP0, acked=False)]
    elif busy == "queued":
        app.queue.n = 4
    elif busy == "flow":
        consumer.flow_active = False
    elif busy == "flow_control":
        app.flow = False
    elif busy == "rebalancing":
        app.rebalancing = True
    elif busy == "recovery":
        app.in_recovery = True
    elif busy == "paused":
        consumer._paused_partitions = {TP0}
    assert run(StallWatchdog(app, checks=2), 6) == []


def test_progress_between_checks_is_not_a_stall() -> None:
    app = FakeApp()
    watchdog = StallWatchdog(app, checks=3)
    for committed in range(20, 26):  # the commit moves on at every check
        app.consumer._committed_offset[TP0] = committed
        asyncio.run(watchdog.check())
    assert app.consumer.sought == []


def test_a_stall_broken_by_a_rebalance_counts_again_from_zero() -> None:
    app = FakeApp()
    watchdog = StallWatchdog(app, checks=3)
    run(watchdog, 2)
    app.rebalancing = True
    run(watchdog, 1)
    app.rebalancing = False
    assert run(watchdog, 2) == []
    assert run(watchdog, 1) == [(TP0, 25)]


@pytest.mark.parametrize(
    ("view", "skipped"),
    [
        (PartitionView(position=37, committed=25, read=25, in_flight=False), True),
        (PartitionView(position=42, committed=None, read=None, in_flight=False), True),
        (PartitionView(position=25, committed=25, read=24, in_flight=False), False),
        (PartitionView(position=37, committed=25, read=30, in_flight=True), False),
        (PartitionView(position=None, committed=25, read=25, in_flight=False), False),
        (PartitionView(position=0, committed=None, read=None, in_flight=False), False),
    ],
)
def test_skipped(view: PartitionView, skipped: bool) -> None:
    assert view.skipped is skipped
