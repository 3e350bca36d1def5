"""The empty-fetch wait (streams.kafka.aiokafka_patches), with aiokafka's own fetch replaced."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer.fetcher import Fetcher

from streams.config import Settings
from streams.kafka import aiokafka_patches
from tests.support import wait_until_async


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What the broker's next fetches bring (True: records), answered at once."""
    queue: list[bool] = []

    async def fetch(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        return queue.pop(0)

    monkeypatch.setattr(aiokafka_patches, "_original_proc_fetch_request", fetch)
    return queue


def fetcher(max_wait_ms: int = 500) -> Any:
    return SimpleNamespace(_fetch_max_wait_ms=max_wait_ms)


def timed(max_wait_ms: int = 500) -> tuple[bool, float]:
    async def go() -> tuple[bool, float]:
        started = time.monotonic()
        got = await aiokafka_patches._proc_fetch_request(fetcher(max_wait_ms), None, 0, None)
        return got, time.monotonic() - started

    return asyncio.run(go())


def test_installed_on_aiokafkas_fetcher() -> None:
    # by tests/conftest.py, as an entry point would
    assert Fetcher._proc_fetch_request is aiokafka_patches._proc_fetch_request


def test_an_empty_fetch_answered_at_once_is_held(answers: list[bool]) -> None:
    answers.append(False)
    got, took = timed()
    assert got is False
    assert took >= aiokafka_patches.EMPTY_FETCH_SECONDS * 0.9


def test_a_fetch_with_records_is_never_held(answers: list[bool]) -> None:
    answers.append(True)
    got, took = timed()
    assert got is True
    assert took < aiokafka_patches.EMPTY_FETCH_SECONDS


def test_the_wait_never_exceeds_the_consumers_max_wait(answers: list[bool]) -> None:
    answers.append(False)
    _, took = timed(max_wait_ms=0)
    assert took < aiokafka_patches.EMPTY_FETCH_SECONDS


def test_a_cancelled_fetch_ends_at_once(answers: list[bool]) -> None:
    answers.append(False)

    async def go() -> bool:
        task = asyncio.create_task(aiokafka_patches._proc_fetch_request(fetcher(), None, 0, None))
        # The broker has answered (empty): the patch now holds the fetch for 100 ms.
        await wait_until_async(lambda: not answers, 1, "the fetch to be answered", interval=0.001)
        assert not task.done()
        task.cancel()
        return await asyncio.wait_for(task, 1)

    # aiokafka cancels a pending fetch on close and reads its False.
    assert asyncio.run(go()) is False


def test_the_worker_installs_the_wait_before_it_touches_kafka(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.kafka import topics
    from streams.pipeline import runtime

    calls: list[str] = []

    class Stop(Exception):
        pass

    async def ensure_topics(*args: Any) -> None:
        calls.append("ensure_topics")
        raise Stop

    monkeypatch.setattr(aiokafka_patches, "apply", lambda: calls.append("apply"))
    monkeypatch.setattr(topics, "ensure_topics", ensure_topics)
    with pytest.raises(Stop):
        runtime.run_worker(settings, "localhost:1")
    assert calls == ["apply", "ensure_topics"]
