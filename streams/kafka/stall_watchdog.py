"""Re-reading a stream partition whose fetched events were dropped before any stream saw them.

Faust hands the records aiokafka fetched to the streams one by one, and on several paths
(a rebalance starting mid-batch, a partition paused or a generation changing under the
batch) it drops the rest of the batch; aiokafka's position has already moved past them. It
counts on a seek to the committed offsets after the rebalance to fetch them again. The kill
test on the embedded broker found workers where that seek had happened and the records
fetched *after* it were dropped all the same: nothing in flight, nothing queued, the flow
running, the partition active, and aiokafka's position past the committed offset, for good.
The invoices behind it never moved on.

This watchdog is the guard at-least-once needs whatever the path: a stream partition whose
state stays exactly that way over several checks is sought back to its committed offset (the
log start when nothing was committed), so the records are fetched and delivered again. The
stages are idempotent, so a seek of a partition that was merely slow costs a re-read, never
a second bill. Every seek is logged and counted (``billstream_consumer_reseeks_total``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from streams.kafka.diagnostics import partition_state
from streams.kafka.faust_patches import seek_back

log = logging.getLogger("billstream.watchdog")

CHECK_SECONDS = 5.0
CHECKS = 3  # identical views in a row before a seek: 10-15 s of a stalled partition


@dataclass(frozen=True)
class PartitionView:
    """What the consumer knows of one stream partition at one check."""

    position: int | None  # aiokafka's next offset to hand to Faust
    committed: int | None  # the next offset to process, per the last commit
    read: int | None  # the last offset Faust delivered (or sought to)
    in_flight: bool  # events of it in a stream's queue, or delivered and not acked

    @property
    def skipped(self) -> bool:
        """Fetched past the commit with nothing on its way: the records were dropped."""
        if self.in_flight or self.position is None:
            return False
        return self.position > (self.committed or 0)


def aiokafka_position(app: Any, tp: Any) -> int | None:
    state = partition_state(app.consumer, tp)
    if state is None or state.awaiting_reset or not state.has_valid_position:
        return None
    position: int = state.position
    return position


def _queued(app: Any, tp: Any) -> bool:
    channels = getattr(app.topics, "_tp_index", {}).get(tp, ())
    return any(getattr(chan, "_queue", None) and chan._queue.qsize() for chan in channels)


def view(app: Any, tp: Any, unacked: set[Any]) -> PartitionView:
    consumer = app.consumer
    return PartitionView(
        position=aiokafka_position(app, tp),
        committed=consumer._committed_offset.get(tp),
        read=consumer._read_offset.get(tp),
        in_flight=tp in unacked or _queued(app, tp),
    )


class StallWatchdog:
    """Remembers each stream partition's view across checks; seeks the ones stuck."""

    def __init__(self, app: Any, checks: int = CHECKS) -> None:
        self.app = app
        self.checks = checks
        self._seen: dict[Any, tuple[PartitionView, int]] = {}

    def _settled(self) -> bool:
        app, consumer = self.app, self.app.consumer
        return bool(
            consumer.flow_active
            and app.flow_control.is_active()
            and not app.rebalancing
            and not getattr(app, "in_recovery", False)
        )

    def stalled(self) -> list[tuple[Any, PartitionView]]:
        """The stream partitions whose view was the same ``skipped`` one ``checks`` times."""
        if not self._settled():
            self._seen.clear()
            return []
        consumer = self.app.consumer
        streams = self.app.topics.acking_topics
        active = consumer._active_partitions or set()
        paused = consumer._paused_partitions
        unacked = {m.tp for m in list(consumer._unacked_messages) if not m.acked}
        out = []
        seen: dict[Any, tuple[PartitionView, int]] = {}
        for tp in consumer.assignment():
            if tp.topic not in streams or tp not in active or tp in paused:
                continue
            now = view(self.app, tp, unacked)
            if not now.skipped:
                continue
            before, times = self._seen.get(tp, (None, 0))
            times = times + 1 if before == now else 1
            seen[tp] = (now, times)
            if times >= self.checks:
                out.append((tp, now))
                del seen[tp]
        self._seen = seen
        return out

    async def check(self) -> None:
        try:
            await self._check()
        except Exception:
            # A guard must never be what stops the worker: a failed check is tried again.
            log.warning("stall watchdog: check failed", exc_info=True)

    async def _check(self) -> None:
        for tp, stuck in self.stalled():
            offset = stuck.committed
            if offset is None:
                offset = (await self.app.consumer.earliest_offsets(tp))[tp]
            why = (
                f"was fetched up to offset {stuck.position} but nothing past {stuck.committed} "
                "reached a stream (stall watchdog)"
            )
            await seek_back(self.app.consumer, tp, offset, why)


def install(app: Any, every: float = CHECK_SECONDS) -> StallWatchdog:
    """Run a watchdog on the app's loop every ``every`` seconds, on every worker."""
    watchdog = StallWatchdog(app)
    app.timer(every, name="stall-watchdog")(watchdog.check)
    return watchdog
