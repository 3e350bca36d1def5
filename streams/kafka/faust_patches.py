"""Fixes for faust-streaming 0.15.3 that at-least-once depends on.

1. Committing past an in-flight event.

With agent ``concurrency`` > 1, events of one partition finish out of order, and
``Consumer._new_offset`` then commits past an event still being processed: its head-gap
guard lets a gap of exactly one through (``min(acked) - committed > 1``), and with nothing
committed yet it has no guard at all. A worker killed at that moment never sees the event
again: the invoice is lost (faust-streaming issue #606, fix proposed in PR #707, unreleased).

The rule applied here is the invariant itself: never commit at or past the smallest offset
of a message that was delivered to a stream and is not acked yet. Everything else (the
gap tree for compacted topics, the head-gap guard) is kept as it was.

2. Events dropped after a rebalance (found by the kill test on Apache Kafka 4.4).

When recovery ends, ``Recovery.on_recovery_completed`` resumes the stream partitions while
the flow is already running, then awaits the seek to the committed offsets (a round trip per
partition), then resumes the flow control, which empties every stream's queue. Records the
fetcher handed to the streams during the seek are wiped, and aiokafka's position has already
moved past them: a worker that takes over a partition can skip every event it had fetched
(the kill test saw 169 of 207 invoices never processed). And aiokafka's ``seek_to_committed``
does not seek a partition whose committed offset is None or 0, so records wiped by a
rebalance before the group's first commit are skipped the same way.

Here the seek happens while the stream partitions are still paused, and a stream partition
with nothing committed is sought to the start of its log (``auto_offset_reset`` is
"earliest"), so after every rebalance each stream reads on from exactly what was committed.

3. Holes in what a stream reads (found by a fault test on Apache Kafka 4.4).

Faust's ``getmany`` drops the rest of a fetched batch when the flow stops or the generation
changes under it, and aiokafka's position is already past those records. When more records
of the partition come later, Faust delivers them, calls the missing offsets a "gap" (meant
for compacted topics and transaction markers, neither of which a stream topic here has) and
commits past them: the invoices are lost without a trace. So every record handed to a stream
is checked against the next offset that partition must deliver (set by each seek, moved by
each record); a record beyond it is held back and the partition is sought back to the hole,
unless the hole is below the log start (records deleted by retention are gone for good).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.utils.functional import consecutive_numbers

from streams import metrics

FIXED_VERSION = "0.15.3"

log = logging.getLogger("billstream.consumer")

_original_new_offset = Consumer._new_offset
_original_on_recovery_completed = Recovery.on_recovery_completed
_original_getmany = Consumer.getmany
_original_seek = Consumer.seek
_original_on_partitions_revoked = Consumer.on_partitions_revoked


def _smallest_in_flight(consumer: Any, tp: Any) -> int | None:
    pending = [m.offset for m in list(consumer._unacked_messages) if m.tp == tp and not m.acked]
    return min(pending) if pending else None


def _new_offset(self: Any, tp: Any) -> int | None:
    acked: list[int] = self._acked[tp]
    if not acked:
        return None
    in_flight = _smallest_in_flight(self, tp)
    if in_flight is None:
        result: int | None = _original_new_offset(self, tp)
        return result
    acked.sort()
    if min(acked) > in_flight:
        return None  # the head of the partition is still being processed: wait for it
    batch = next(consecutive_numbers(acked))
    batch = [offset for offset in batch if offset < in_flight]
    committed = self._committed_offset[tp]
    if committed and min(acked) - committed > 1:
        return None  # Faust's own head-gap guard, kept
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return batch[-1] + 1


async def _perform_seek(self: Any) -> None:
    """``Consumer.perform_seek``, with stream partitions never committed sought too."""
    committed = await self.seek_to_committed()
    streams = self.app.topics.acking_topics
    expected = next_offsets(self)
    for tp, offset in committed.items():
        if tp.topic in streams:
            expected[tp] = offset if offset else None
    if self.app.conf.consumer_auto_offset_reset == "earliest":
        unsought = [tp for tp, offset in committed.items() if not offset and tp.topic in streams]
        if unsought:
            starts = await self.earliest_offsets(*unsought)
            await self.seek_wait({tp: starts[tp] for tp in unsought})
            expected.update({tp: starts[tp] for tp in unsought})
    self._read_offset.update(
        {
            tp: offset if offset is not None and offset >= 0 else None
            for tp, offset in committed.items()
        }
    )
    self._committed_offset.update(
        {tp: offset if offset else None for tp, offset in committed.items() if offset is not None}
    )


def next_offsets(consumer: Any) -> dict[Any, int | None]:
    """Stream partition -> the offset it must deliver next (None: not known yet)."""
    found: dict[Any, int | None] | None = consumer.__dict__.get("_billstream_next")
    if found is None:
        found = consumer.__dict__["_billstream_next"] = {}
    return found


async def _seek(self: Any, partition: Any, offset: int) -> None:
    await _original_seek(self, partition, offset)
    if partition.topic in self.app.topics.acking_topics:
        next_offsets(self)[partition] = offset


async def _on_partitions_revoked(self: Any, revoked: set[Any]) -> None:
    expected = next_offsets(self)
    for tp in revoked:
        expected.pop(tp, None)
    await _original_on_partitions_revoked(self, revoked)


async def _getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109
    """``Consumer.getmany``, holding back what lies beyond a hole and seeking back to it."""
    streams = self.app.topics.acking_topics
    expected = next_offsets(self)
    held: set[Any] = set()  # partitions sought back during this batch: the rest is stale
    async for tp, message in _original_getmany(self, timeout):
        if tp.topic in streams:
            if tp in held:
                continue
            want = expected.get(tp)
            hole = want is not None and message.offset > want
            if hole and await _seek_back_to_hole(self, tp, want or 0, message.offset):
                held.add(tp)
                continue
            if want is None or message.offset >= want:
                expected[tp] = message.offset + 1
        yield tp, message


async def _seek_back_to_hole(consumer: Any, tp: Any, want: int, got: int) -> bool:
    """Seek ``tp`` back to ``want``; False when the hole is records deleted by retention."""
    start = (await consumer.earliest_offsets(tp))[tp]
    if got <= start:
        log.warning(
            "consumer: %s[%d] offsets %d..%d were deleted from the log before being read",
            tp.topic,
            tp.partition,
            want,
            got - 1,
        )
        return False
    why = f"skipped offsets {want}..{got - 1} (dropped before any stream saw them)"
    await seek_back(consumer, tp, max(want, start), why)
    return True


async def seek_back(consumer: Any, tp: Any, offset: int, why: str) -> None:
    """Read a stream partition again from ``offset``: logged and counted, whoever asks (the
    hole check here, the stall watchdog)."""
    log.warning("consumer: %s[%d] %s; reading again from %d", tp.topic, tp.partition, why, offset)
    metrics.CONSUMER_RESEEKS.labels(tp.topic).inc()
    await consumer.seek(tp, offset)


async def _seek_then_resume(recovery: Any) -> None:
    """Seek the stream partitions while paused, then resume them and the flow, with no
    ``await`` in between: nothing can reach a stream's queue before the flow control empties
    it."""
    consumer = recovery.app.consumer
    assignment = consumer.assignment()
    if assignment:
        recovery.log.info("Seek stream partitions to committed offsets.")
        await recovery._wait(
            consumer.perform_seek(), timeout=recovery.app.conf.broker_request_timeout
        )
    consumer.resume_partitions({tp for tp in assignment if not recovery._is_changelog_tp(tp)})
    recovery.completed.set()
    recovery.app.flow_control.resume()
    consumer.resume_flow()


async def _on_recovery_completed(self: Any, generation_id: int = 0) -> None:
    """``Recovery.on_recovery_completed`` of 0.15.3 with the seek before the resume."""
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [
        asyncio.ensure_future(
            table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]
            )
        )
        for table in self.tables.values()
    ]
    if callbacks:
        await asyncio.wait(callbacks)
    if self.app.consumer_generation_id != generation_id:
        self.log.warning(
            f"Recovery rebalancing again app id {self.app.consumer_generation_id} "
            f"param {generation_id}"
        )
        return
    await _seek_then_resume(self)
    await self.app._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def _resume_streams(self: Any, generation_id: int = 0) -> None:
    """``Recovery._resume_streams`` (an app without tables), ordered the same way."""
    await self.app.on_rebalance_complete.send()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning("Recovery rebalancing again")
        return
    await _seek_then_resume(self)
    await self.app._fetcher.maybe_start()
    self.tables.on_actives_ready()
    self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


def apply() -> None:
    """Install the fixes (idempotent); the Faust app calls this when it is built."""
    if faust.__version__ != FIXED_VERSION:
        # Each fix replaces a method of this exact release; on another one it may undo a fix.
        raise RuntimeError(
            f"streams/kafka/faust_patches.py patches faust-streaming {FIXED_VERSION}, "
            f"not {faust.__version__}: review the fixes against the new release"
        )
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
    Consumer.getmany = _getmany  # type: ignore[method-assign]
    Consumer.seek = _seek  # type: ignore[method-assign]
    Consumer.on_partitions_revoked = _on_partitions_revoked  # type: ignore[method-assign]
    Recovery.on_recovery_completed = _on_recovery_completed  # type: ignore[method-assign]
    Recovery._resume_streams = _resume_streams  # type: ignore[method-assign]
