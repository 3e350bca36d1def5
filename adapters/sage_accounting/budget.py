"""Per-business budgets: calls per minute and request bytes per hour, shared by every stage.

Sage does not publish its limits; billstream keeps under 200 calls per 60 s and 100 MB of
request bodies per 60 min per business (attachments travel base64, a third bigger), and
slows down *before* Sage has to refuse. One ``Budget`` lives in the client of a business and
every coroutine of the worker goes through it, so the stages share it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

DEFAULT_CALLS = 200
DEFAULT_CALL_WINDOW = 60.0
DEFAULT_BYTES = 100_000_000
DEFAULT_BYTE_WINDOW = 3600.0


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

    def _wait_for(self, now: float, nbytes: int) -> float:
        wait = self._hold_until - now
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
        return wait

    async def acquire(self, nbytes: int = 0) -> float:
        """Wait until one more call of ``nbytes`` fits; record it. Returns seconds waited."""
        if nbytes > self.max_bytes:
            raise BudgetTooSmall(
                f"a {nbytes}-byte request cannot fit a {self.max_bytes}-byte budget"
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
