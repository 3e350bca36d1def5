"""The empty-fetch wait (adapters.kafka_fetch), with aiokafka's own fetch replaced."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer.fetcher import Fetcher

from adapters import kafka_fetch
from streams.config import Settings


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What the broker's next fetches bring (True: records), answered at once."""
    queue: list[bool] = []

    async def fetch(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        return queue.pop(0)

    monkeypatch.setattr(kafka_fetch, "_original_proc_fetch_request", fetch)
    return queue


def fetcher(max_wait_ms: int = 500) -> Any:
    return SimpleNamespace(_fetch_max_wait_ms=max_wait_ms)


def timed(max_wait_ms: int = 500) -> tuple[bool, float]:
    async def go() -> tuple[bool, float]:
        started = time.monotonic()
        got = await kafka_fetch._proc_fetch_request(fetcher(max_wait_ms), None, 0, None)
        return got, time.monotonic() - started

    return asyncio.run(go())


def test_installed_on_aiokafkas_fetcher() -> None:
    # by tests/conftest.py, as an entry point would
    assert Fetcher._proc_fetch_request is kafka_fetch._proc_fetch_request


def test_an_empty_fetch_answered_at_once_is_held(answers: list[bool]) -> None:
    answers.append(False)
    got, took = timed()
    assert got is False
    assert took >= kafka_fetch.EMPTY_FETCH_SECONDS * 0.9


def test_a_fetch_with_records_is_never_held(answers: list[bool]) -> None:
    answers.append(True)
    got, took = timed()
    assert got is True
    assert took < kafka_fetch.EMPTY_FETCH_SECONDS


def test_the_wait_never_exceeds_the_consumers_max_wait(answers: list[bool]) -> None:
    answers.append(False)
    _, took = timed(max_wait_ms=0)
    assert took < kafka_fetch.EMPTY_FETCH_SECONDS


def test_a_cancelled_fetch_ends_at_once(answers: list[bool]) -> None:
    answers.append(False)

    async def go() -> bool:
        task = asyncio.create_task(kafka_fetch._proc_fetch_request(fetcher(), None, 0, None))
        await asyncio.sleep(0.01)
        task.cancel()
        return await asyncio.wait_for(task, 1)

    # aiokafka cancels a pending fetch on close and reads its False.
    assert asyncio.run(go()) is False


def _in_a_fresh_interpreter(code: str) -> None:
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=120)


def test_importing_adapters_leaves_aiokafka_alone() -> None:
    _in_a_fresh_interpreter(
        """
        import adapters, adapters.dext.cursor, adapters.intacct.ledger
        import adapters.sage_accounting.ledger, adapters.sqlite_ledger
        from aiokafka.consumer.fetcher import Fetcher
        from adapters import kafka_fetch
        assert Fetcher._proc_fetch_request is kafka_fetch._original_proc_fetch_request
        """
    )


def test_the_cli_entry_point_installs_the_wait() -> None:
    _in_a_fresh_interpreter(
        """
        import sys
        from aiokafka.consumer.fetcher import Fetcher
        from adapters import kafka_fetch
        import streams.cli, streams.runtime
        assert Fetcher._proc_fetch_request is kafka_fetch._original_proc_fetch_request
        sys.argv = ["billstream", "--help"]
        try:
            streams.cli.main()
        except SystemExit:
            pass
        assert Fetcher._proc_fetch_request is kafka_fetch._proc_fetch_request
        """
    )


def test_the_worker_installs_the_wait_before_it_touches_kafka(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams import runtime, topics

    calls: list[str] = []

    class Stop(Exception):
        pass

    async def ensure_topics(*args: Any) -> None:
        calls.append("ensure_topics")
        raise Stop

    monkeypatch.setattr(kafka_fetch, "apply", lambda: calls.append("apply"))
    monkeypatch.setattr(topics, "ensure_topics", ensure_topics)
    with pytest.raises(Stop):
        runtime.run_worker(settings, "localhost:1")
    assert calls == ["apply", "ensure_topics"]
