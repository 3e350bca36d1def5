"""Regressions: with agent concurrency > 1, Faust must not commit past an in-flight event
(faust-streaming #606), and after a rebalance a stream must read on from what was committed,
not from past records wiped during recovery. Either way a worker that takes over from a
killed one would otherwise never process some invoices."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams.kafka import faust_patches
from streams.kafka.faust_patches import _original_new_offset, _original_on_recovery_completed

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
    faust_patches.apply()


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


# -- events dropped after a rebalance ---------------------------------------------------------

STREAM, CHANGELOG = TP("ap.received", 0), TP("app-done-validate-changelog", 0)


class Journal(list[str]):
    """The order in which recovery touched the consumer and the flow."""


class RecoveringConsumer:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.active: set[TP] = set()

    def assignment(self) -> set[TP]:
        return {STREAM, CHANGELOG}

    async def perform_seek(self) -> None:
        # While the seek awaits the broker, the fetcher may hand a stream whatever is active.
        self.journal.append("seek" + (" while stream active" if STREAM in self.active else ""))

    def resume_partitions(self, tps: set[TP]) -> None:
        self.active |= tps
        self.journal.append("resume partitions")

    def resume_flow(self) -> None:
        self.journal.append("resume flow")


def recovery(journal: Journal) -> Any:
    async def send() -> None:
        return None

    async def wait(coro: Any, timeout: float) -> None:  # noqa: ASYNC109 (Faust's signature)
        await coro

    async def maybe_start() -> None:
        return None

    consumer = RecoveringConsumer(journal)
    app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=3,
        on_rebalance_complete=SimpleNamespace(send=send),
        conf=SimpleNamespace(broker_request_timeout=5.0),
        # Resuming the flow control empties every stream's queue.
        flow_control=SimpleNamespace(resume=lambda: journal.append("queues emptied")),
        _fetcher=SimpleNamespace(maybe_start=maybe_start),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: None,
    )
    return SimpleNamespace(
        app=app,
        log=SimpleNamespace(info=lambda *a: None, warning=lambda *a: None, dev=lambda *a: None),
        tables=SimpleNamespace(
            values=lambda: [], on_actives_ready=lambda: None, on_standbys_ready=lambda: None
        ),
        _set_recovery_ended=lambda: None,
        _wait=wait,
        _is_changelog_tp=lambda tp: tp is CHANGELOG,
        completed=asyncio.Event(),
    )


async def test_faust_0_15_3_seeks_while_the_streams_already_fetch() -> None:
    journal = Journal()
    await _original_on_recovery_completed(recovery(journal), 3)
    # Records fetched during the seek are wiped with the queues, past aiokafka's position.
    assert journal[:2] == ["resume partitions", "seek while stream active"]


async def test_recovery_seeks_before_any_stream_can_fetch() -> None:
    journal = Journal()
    rec = recovery(journal)
    await Recovery.on_recovery_completed(rec, 3)
    assert journal == ["seek", "resume partitions", "queues emptied", "resume flow"]
    assert rec.completed.is_set()
    assert rec.app.consumer.active == {STREAM}


async def test_an_app_without_tables_resumes_in_the_same_order() -> None:
    journal = Journal()
    await Recovery._resume_streams(recovery(journal), 3)
    assert journal == ["seek", "resume partitions", "queues emptied", "resume flow"]


class SeekingConsumer:
    def __init__(self, committed: dict[TP, int | None], reset: str = "earliest") -> None:
        self.committed = committed
        self.sought: dict[TP, int] = {}
        self._read_offset: dict[TP, int | None] = {}
        self._committed_offset: dict[TP, int | None] = {}
        self.app = SimpleNamespace(
            conf=SimpleNamespace(consumer_auto_offset_reset=reset),
            topics=SimpleNamespace(acking_topics={"ap.received"}),
        )

    async def seek_to_committed(self) -> dict[TP, int | None]:
        # aiokafka seeks only the partitions whose committed offset is > 0.
        self.sought.update({tp: o for tp, o in self.committed.items() if o})
        return dict(self.committed)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 2)  # the log's start, after retention

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.sought.update(offsets)


async def test_a_stream_partition_never_committed_restarts_from_its_log_start() -> None:
    never, zero, some = TP("ap.received", 0), TP("ap.received", 1), TP("ap.received", 2)
    consumer = SeekingConsumer({never: None, zero: 0, some: 7, CHANGELOG: None})
    await Consumer.perform_seek(consumer)  # type: ignore[arg-type]
    # The changelog is recovery's business: it seeks those itself before reading them.
    assert consumer.sought == {never: 2, zero: 2, some: 7}
    assert consumer._read_offset == {never: None, zero: 0, some: 7, CHANGELOG: None}
    assert consumer._committed_offset == {zero: None, some: 7}


async def test_no_seek_to_the_start_when_the_app_reads_from_the_latest() -> None:
    never = TP("ap.received", 0)
    consumer = SeekingConsumer({never: None}, reset="latest")
    await Consumer.perform_seek(consumer)  # type: ignore[arg-type]
    assert consumer.sought == {}


def test_refuses_another_faust_release(monkeypatch: pytest.MonkeyPatch) -> None:
    import faust

    monkeypatch.setattr(faust, "__version__", "0.16.0")
    with pytest.raises(RuntimeError, match="review the fixes"):
        faust_patches.apply()


# -- 3. holes in what a stream reads ------------------------------------------------------------


class HoleConsumer:
    """What ``_getmany`` reads and calls: a batch from Faust, earliest offsets, seek."""

    def __init__(self, batch: list[tuple[TP, int]], log_start: int = 0) -> None:
        self.batch = batch
        self.log_start = log_start
        self.sought: list[tuple[TP, int]] = []
        self.app = SimpleNamespace(topics=SimpleNamespace(acking_topics={TP0.topic}))

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, self.log_start)

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))
        faust_patches.next_offsets(self)[tp] = offset


async def delivered(consumer: HoleConsumer, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    async def faust_getmany(self: Any, timeout: float) -> Any:  # noqa: ASYNC109
        for tp, offset in consumer.batch:
            yield tp, SimpleNamespace(tp=tp, offset=offset)

    monkeypatch.setattr(faust_patches, "_original_getmany", faust_getmany)
    return [m.offset async for _, m in faust_patches._getmany(consumer, 1.0)]


async def test_a_hole_is_held_back_and_sought_back_to(monkeypatch: pytest.MonkeyPatch) -> None:
    # 5..7 were fetched and dropped by Faust; 8 and 9 arrive: Faust would commit past 5..7.
    consumer = HoleConsumer([(TP0, 8), (TP0, 9)])
    faust_patches.next_offsets(consumer)[TP0] = 5
    assert await delivered(consumer, monkeypatch) == []
    assert consumer.sought == [(TP0, 5)]  # once, not once per record behind the hole
    consumer.batch = [(TP0, 5), (TP0, 6), (TP0, 7), (TP0, 8)]
    assert await delivered(consumer, monkeypatch) == [5, 6, 7, 8]
    assert faust_patches.next_offsets(consumer)[TP0] == 9


async def test_contiguous_records_and_other_topics_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    changelog = TP("app-done-attach-changelog", 0)
    consumer = HoleConsumer([(TP0, 3), (changelog, 40), (TP0, 4), (changelog, 90)])
    faust_patches.next_offsets(consumer)[TP0] = 3
    assert await delivered(consumer, monkeypatch) == [3, 40, 4, 90]
    assert consumer.sought == []


async def test_until_a_seek_says_where_to_start_nothing_is_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = HoleConsumer([(TP0, 12), (TP0, 13), (TP0, 15)])
    assert await delivered(consumer, monkeypatch) == [12, 13]  # 15 is after a hole again
    assert consumer.sought == [(TP0, 14)]


async def test_records_deleted_by_retention_are_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = HoleConsumer([(TP0, 50), (TP0, 51)], log_start=50)
    faust_patches.next_offsets(consumer)[TP0] = 10
    assert await delivered(consumer, monkeypatch) == [50, 51]
    assert consumer.sought == []


async def test_a_revoked_partition_forgets_where_it_was() -> None:
    consumer: Any = SimpleNamespace()
    faust_patches.next_offsets(consumer)[TP0] = 7

    async def revoked(self: Any, tps: set[TP]) -> None:
        return None

    original = faust_patches._original_on_partitions_revoked
    faust_patches._original_on_partitions_revoked = revoked  # type: ignore[assignment]
    try:
        await faust_patches._on_partitions_revoked(consumer, {TP0})
    finally:
        faust_patches._original_on_partitions_revoked = original  # type: ignore[assignment]
    assert TP0 not in faust_patches.next_offsets(consumer)
