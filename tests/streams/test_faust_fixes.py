"""Regression: with agent concurrency > 1, Faust must not commit past an in-flight event
(faust-streaming #606). A killed worker would otherwise never process that invoice."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams import faust_fixes
from streams.faust_fixes import _original_new_offset

TP0 = TP("ap.received", 0)


@dataclass(eq=False)
class Msg:
    tp: TP
    offset: int
    acked: bool = False


class FakeConsumer:
    """The state ``Consumer._new_offset`` reads, nothing else."""

    def __init__(self, committed: int | None, acked: list[int], in_flight: list[int]) -> None:
        self._acked: dict[TP, list[int]] = defaultdict(list, {TP0: list(acked)})
        self._acked_index: dict[TP, set[int]] = defaultdict(set, {TP0: set(acked)})
        self._gap: dict[TP, IntervalTree] = defaultdict(IntervalTree)
        self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._committed_offset[TP0] = committed
        self.messages = [Msg(TP0, o) for o in in_flight]
        self._unacked_messages = set(self.messages)

    def ack(self, offset: int) -> None:
        for m in self.messages:
            if m.offset == offset:
                m.acked = True
                self._unacked_messages.discard(m)
        self._acked[TP0].append(offset)
        self._acked_index[TP0].add(offset)


def new_offset(consumer: Any) -> int | None:
    return Consumer._new_offset(consumer, TP0)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def fixed() -> None:
    faust_fixes.apply()


def test_the_bug_is_real_in_faust_0_15_3() -> None:
    consumer = FakeConsumer(committed=2585, acked=[2586, 2587, 2588, 2589], in_flight=[2585])
    assert _original_new_offset(consumer, TP0) == 2590  # past the in-flight 2585: lost


@pytest.mark.parametrize(
    ("committed", "acked", "in_flight"),
    [
        (2585, [2586, 2587, 2588, 2589], [2585]),  # the case: a gap of one at the head
        (None, [1, 2, 3], [0]),  # nothing committed yet: Faust has no guard at all
        (10, [11, 12, 13], [10, 14]),
    ],
)
def test_never_commits_past_an_in_flight_event(
    committed: int | None, acked: list[int], in_flight: list[int]
) -> None:
    consumer = FakeConsumer(committed, acked, in_flight)
    assert new_offset(consumer) is None
    assert consumer._acked[TP0] == sorted(acked)  # nothing forgotten while waiting


def test_commits_everything_once_the_slow_event_is_done() -> None:
    consumer = FakeConsumer(committed=None, acked=[1, 2, 3], in_flight=[0])
    assert new_offset(consumer) is None
    consumer.ack(0)
    assert new_offset(consumer) == 4


def test_commits_up_to_the_in_flight_event() -> None:
    consumer = FakeConsumer(committed=None, acked=[0, 1, 2, 4, 5], in_flight=[3])
    assert new_offset(consumer) == 3
    consumer.ack(3)
    assert new_offset(consumer) == 6


def test_without_events_in_flight_faust_decides_as_before() -> None:
    consumer = FakeConsumer(committed=5, acked=[5, 6, 7], in_flight=[])
    assert new_offset(consumer) == 8
