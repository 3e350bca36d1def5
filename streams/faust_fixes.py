"""A fix for faust-streaming 0.15.3 that at-least-once depends on.

With agent ``concurrency`` > 1, events of one partition finish out of order, and
``Consumer._new_offset`` then commits past an event still being processed: its head-gap
guard lets a gap of exactly one through (``min(acked) - committed > 1``), and with nothing
committed yet it has no guard at all. A worker killed at that moment never sees the event
again: the invoice is lost (faust-streaming issue #606, fix proposed in PR #707, unreleased).

The rule applied here is the invariant itself: never commit at or past the smallest offset
of a message that was delivered to a stream and is not acked yet. Everything else (the
gap tree for compacted topics, the head-gap guard) is kept as it was.
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer
from faust.utils.functional import consecutive_numbers

_original_new_offset = Consumer._new_offset


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


def apply() -> None:
    """Install the fix (idempotent); the Faust app calls this when it is built."""
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
