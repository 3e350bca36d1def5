"""Long polling for aiokafka consumers on a broker that answers an empty fetch at once.

A Kafka fetch names a ``max_wait_ms``: with no new records the broker holds the request that
long, so an idle consumer sends about two fetches a second. noida-db 0.2.3, the embedded
broker, answers at once instead, and aiokafka sends the next fetch straight away: measured
here, one idle consumer burnt 3.3 s of CPU in 4 s. Every worker, every CLI that follows a
topic and the broker itself then fight over the CPU, and on a loaded 2-CPU machine the
broker answers heartbeats late enough to set off rebalances.

So a fetch that brought nothing and came back early waits on the client until 100 ms (at
most ``max_wait_ms``) have passed since it was sent. The broker would have answered as soon as
records arrived; the client cannot know, so the wait is kept short: at most 100 ms more
between a record and the stage that reads it, about ten fetches a second when idle. On Apache
Kafka an empty fetch has already taken ``max_wait_ms`` and nothing changes; a fetch with
records is never held.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import aiokafka
from aiokafka.consumer.fetcher import Fetcher

PATCHED_VERSION = "0.14.0"
EMPTY_FETCH_SECONDS = 0.1

_original_proc_fetch_request = Fetcher._proc_fetch_request


async def _proc_fetch_request(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
    started = time.monotonic()
    has_new_data: bool = await _original_proc_fetch_request(self, assignment, node_id, request)
    task = asyncio.current_task()
    if has_new_data or (task is not None and task.cancelling()):
        return has_new_data
    wait = min(EMPTY_FETCH_SECONDS, self._fetch_max_wait_ms / 1000)
    rest = wait - (time.monotonic() - started)
    if rest > 0:
        try:
            await asyncio.sleep(rest)
        except asyncio.CancelledError:
            # aiokafka cancels a pending fetch on close or unassignment and reads False.
            return False
    return has_new_data


def apply() -> None:
    """Install the wait (idempotent)."""
    if aiokafka.__version__ != PATCHED_VERSION:
        # It replaces a private method of this exact release.
        warnings.warn(
            f"streams/kafka/aiokafka_patches.py was written for aiokafka {PATCHED_VERSION}, not "
            f"{aiokafka.__version__}: the empty-fetch wait is not installed",
            stacklevel=2,
        )
        return
    Fetcher._proc_fetch_request = _proc_fetch_request
