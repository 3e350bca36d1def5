"""Small in-memory helpers of the Intacct ledger: per-key locks and the cache of lookups that
just found nothing.

The pipeline looks a vendor, bill or attachment up right before it writes one; remembering a
miss for a few seconds spares the write a second, identical lookup.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

MISS_TTL = 5.0  # seconds a lookup that found nothing spares the write after it its own
# Seconds a vendor once found or created is trusted without a look: every bill of a supplier
# asks for its vendor, and vendors are not renamed or deleted from one bill to the next.
VENDOR_TTL = 600.0


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class MissCache:
    """Lookups that just found nothing, by what they looked for (and what they saw)."""

    def __init__(self) -> None:
        self._misses: dict[tuple[str, ...], tuple[float, Any]] = {}

    def remember(self, key: tuple[str, ...], value: Any = None) -> None:
        now = time.monotonic()
        if len(self._misses) > 10_000:
            self._misses = {k: v for k, v in self._misses.items() if now - v[0] < MISS_TTL}
        self._misses[key] = (now, value)

    def recent(self, key: tuple[str, ...]) -> tuple[bool, Any]:
        """Whether this lookup came up empty a moment ago (and what it saw); used once."""
        seen = self._misses.pop(key, None)
        if seen is None or time.monotonic() - seen[0] > MISS_TTL:
            return False, None
        return True, seen[1]

    def forget(self, key: tuple[str, ...]) -> None:
        """Drop what a lookup saw: it is stale once we have written."""
        self._misses.pop(key, None)


class KnownVendors:
    """Vendors found or created a moment ago, by what they were looked up by."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], tuple[float, Any]] = {}

    def get(self, key: tuple[str, str]) -> Any:
        hit = self._known.get(key)
        if hit is None or time.monotonic() - hit[0] > VENDOR_TTL:
            return None
        return hit[1]

    def put(self, key: tuple[str, str], vendor: Any) -> None:
        now = time.monotonic()
        if len(self._known) > 10_000:
            self._known = {k: v for k, v in self._known.items() if now - v[0] <= VENDOR_TTL}
        self._known[key] = (now, vendor)

    def forget(self, vendor_id: str) -> None:
        """A write for this vendor failed: look it up afresh next time (it may be gone)."""
        self._known = {k: v for k, v in self._known.items() if v[1].id != vendor_id}
