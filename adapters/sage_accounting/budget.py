"""Per-business budgets: calls per minute and request bytes per hour, shared by every stage
and divided between the workers.

Sage does not publish its limits; billstream keeps under 200 calls per 60 s and 100 MB of
request bodies per 60 min per business (attachments travel base64, a third bigger), and
slows down *before* Sage has to refuse. One ``Budget`` lives in the client of a business and
every coroutine of the worker goes through it, so the stages share it.

The configured limits are the business's whole limits, for all workers together. A business's
items are spread over the stage topics' partitions by item key, so a worker spends its part
of the budget in proportion to the partitions it holds: ``WORKER_SHARE`` keeps that fraction
(1 until a worker's first assignment: tools and single runs get the whole budget) and gives
it to every budget of the process, again after every rebalance (``streams.kafka.budget_shares``).
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

DEFAULT_CALLS = 200
DEFAULT_CALL_WINDOW = 60.0
DEFAULT_BYTES = 100_000_000
DEFAULT_BYTE_WINDOW = 3600.0
# How often a worker holding no partitions looks again whether it may call (it has no share).
IDLE_POLL = 1.0


class BudgetTooSmall(ValueError):
    """One request is bigger than the whole byte budget: waiting would never help."""


class Budget:
    def __init__(
        self,
        *,
        calls: int = DEFAULT_CALLS,
        call_window: float = DEFAULT_CALL_WINDOW,
        max_bytes: int = DEFAULT_BYTES,
        byte_window: float = DEFAULT_BYTE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if calls < 1 or max_bytes < 1 or call_window <= 0 or byte_window <= 0:
            raise ValueError("budgets must be positive")
        # The business's whole limits; ``calls`` and ``max_bytes`` are this worker's share.
        self.business_calls = calls
        self.business_bytes = max_bytes
        self.share = 1.0
        self.calls = calls
        self.call_window = call_window
        self.max_bytes = max_bytes
        self.byte_window = byte_window
        # Sage counts a call when it arrives, we when we send it; arrivals jitter with the
        # network and both event loops. Keeping a little more than the window between the 1st
        # and the (N+1)th call means Sage never sees N+1 in its window.
        self._call_span = call_window + self._margin(call_window)
        self._byte_span = byte_window + self._margin(byte_window)
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._sent_bytes: deque[tuple[float, int]] = deque()
        self._bytes_in_window = 0
        self._hold_until = 0.0
        self._lock = asyncio.Lock()
        self.waits = 0
        self.waited_seconds = 0.0
        self.total_calls = 0
        self.total_bytes = 0
        self.throttled = 0

    @staticmethod
    def _margin(window: float) -> float:
        # 5 % of the window (3 s a minute), never under 0.25 s: a loaded machine or network
        # can hold a request back for a second or more.
        return min(3.0, max(0.25, window * 0.05))

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self._call_span:
            self._sent.popleft()
        while self._sent_bytes and self._sent_bytes[0][0] <= now - self._byte_span:
            self._bytes_in_window -= self._sent_bytes.popleft()[1]

    def set_share(self, fraction: float, *, fresh: bool = False) -> None:
        """Make this budget ``fraction`` (0..1) of the business's, in place.

        What was sent stays in the windows, so a share that shrinks waits until this worker's
        recent calls fit it. A share that grows is counted as spent now (unless ``fresh``, a
        budget nothing went through yet): the worker whose partitions these were may have
        spent it a moment ago, and we cannot see its window. Shares round down, so the
        workers' shares add up to no more than the business's limit (except that a worker
        with any partitions keeps at least one call a window, should the workers outnumber
        the calls).
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"a share is a fraction between 0 and 1, not {fraction}")
        calls, max_bytes = self.business_calls, self.business_bytes
        if fraction < 1.0:
            calls = math.floor(calls * fraction) if fraction > 0 else 0
            max_bytes = math.floor(max_bytes * fraction) if fraction > 0 else 0
            if fraction > 0:
                calls, max_bytes = max(1, calls), max(1, max_bytes)
        if not fresh:
            now = self._clock()
            self._sent.extend([now] * max(0, calls - self.calls))
            grown = max(0, max_bytes - self.max_bytes)
            if grown:
                self._sent_bytes.append((now, grown))
                self._bytes_in_window += grown
        self.share, self.calls, self.max_bytes = fraction, calls, max_bytes

    def _wait_for(self, now: float, nbytes: int) -> float:
        wait = self._hold_until - now
        if self.calls == 0:
            return max(wait, IDLE_POLL)  # no partitions, no calls
        if len(self._sent) >= self.calls:
            wait = max(wait, self._sent[len(self._sent) - self.calls] + self._call_span - now)
        if self._bytes_in_window + nbytes > self.max_bytes:
            excess = self._bytes_in_window + nbytes - self.max_bytes
            freed = 0
            for at, n in self._sent_bytes:
                freed += n
                if freed >= excess:
                    wait = max(wait, at + self._byte_span - now)
                    break
            else:
                # Bigger than this worker's share but within the business's limit: it goes
                # alone, once this worker's window is empty, rather than never.
                if self._sent_bytes:
                    wait = max(wait, self._sent_bytes[-1][0] + self._byte_span - now)
        return wait

    async def acquire(self, nbytes: int = 0) -> float:
        """Wait until one more call of ``nbytes`` fits; record it. Returns seconds waited."""
        if nbytes > self.business_bytes:
            raise BudgetTooSmall(
                f"a {nbytes}-byte request cannot fit a {self.business_bytes}-byte budget"
            )
        waited = 0.0
        # Waiters queue on the lock, so they are served in arrival order.
        async with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                wait = self._wait_for(now, nbytes)
                if wait <= 0:
                    break
                self.waits += 1
                await self._sleep(wait)
                waited += wait
            self._sent.append(now)
            self._sent_bytes.append((now, nbytes))
            self._bytes_in_window += nbytes
            self.total_calls += 1
            self.total_bytes += nbytes
            self.waited_seconds += waited
        return waited

    def hold_off(self, seconds: float) -> None:
        """Sage said 429: nobody sharing this budget sends before ``seconds`` have passed."""
        self.throttled += 1
        self._hold_until = max(self._hold_until, self._clock() + max(0.0, seconds))

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        self._expire(now)
        return {
            "calls_in_window": len(self._sent),
            "call_limit": self.calls,
            "business_call_limit": self.business_calls,
            "share": round(self.share, 4),
            "call_window_seconds": self.call_window,
            "bytes_in_window": self._bytes_in_window,
            "byte_limit": self.max_bytes,
            "byte_window_seconds": self.byte_window,
            "waits": self.waits,
            "waited_seconds": round(self.waited_seconds, 3),
            "total_calls": self.total_calls,
            "total_bytes": self.total_bytes,
            "throttled": self.throttled,
            "holding_off_seconds": round(max(0.0, self._hold_until - now), 3),
        }


def partition_share(assigned: Iterable[tuple[str, int]], partitions: Mapping[str, int]) -> float:
    """The fraction of the topics ``partitions`` (topic -> partition count) that this worker
    holds, ``assigned`` being its (topic, partition) pairs; other topics (changelogs, the
    failed topic) do not count."""
    total = sum(partitions.values())
    if total <= 0:
        raise ValueError("no partitions to share")
    held = {(t, p) for t, p in assigned if t in partitions and 0 <= p < partitions[t]}
    return len(held) / total


class WorkerShare:
    """This process's part of every business's budget, handed to each budget it makes."""

    def __init__(self) -> None:
        self.fraction = 1.0
        self.rebalances = 0
        self._budgets: weakref.WeakSet[Budget] = weakref.WeakSet()

    def enrol(self, budget: Budget) -> Budget:
        """Give a new budget the current share and every later one."""
        budget.set_share(self.fraction, fresh=True)
        self._budgets.add(budget)
        return budget

    def set(self, fraction: float) -> None:
        """After a rebalance: every budget of the process becomes ``fraction`` of its
        business's, keeping what it has spent in its windows."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"a share is a fraction between 0 and 1, not {fraction}")
        self.fraction = fraction
        self.rebalances += 1
        for budget in list(self._budgets):
            budget.set_share(fraction)


WORKER_SHARE = WorkerShare()
