"""Budgets per business: calls per window and bytes per window, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from adapters.sage_accounting.budget import Budget, BudgetTooSmall


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_calls_past_the_limit_wait_for_the_window() -> None:
    t = FakeTime()
    budget = Budget(calls=5, call_window=60, clock=t.clock, sleep=t.sleep)
    start = t.now
    sent = []
    for _ in range(12):
        await budget.acquire()
        sent.append(t.now - start)
    # no 6 calls ever inside one window (plus the margin that absorbs network delay)
    for i in range(len(sent) - 5):
        assert sent[i + 5] - sent[i] > 60
    assert budget.waits == 2
    assert budget.snapshot()["calls_in_window"] == 2


async def test_bytes_past_the_limit_wait() -> None:
    t = FakeTime()
    budget = Budget(calls=1000, max_bytes=1000, byte_window=3600, clock=t.clock, sleep=t.sleep)
    await budget.acquire(600)
    t.now += 100
    await budget.acquire(300)
    before = t.now
    await budget.acquire(400)  # 1300 > 1000: the first 600 must leave the window
    assert t.now - before > 3600 - 100
    assert budget.snapshot()["bytes_in_window"] == 700


async def test_a_request_bigger_than_the_budget_is_refused_at_once() -> None:
    budget = Budget(max_bytes=10)
    with pytest.raises(BudgetTooSmall):
        await budget.acquire(11)


async def test_hold_off_after_429_applies_to_everyone() -> None:
    t = FakeTime()
    budget = Budget(calls=100, clock=t.clock, sleep=t.sleep)
    budget.hold_off(7)
    before = t.now
    await asyncio.gather(budget.acquire(), budget.acquire())
    assert t.now - before >= 7
    assert budget.snapshot()["throttled"] == 1


async def test_concurrent_callers_share_one_budget() -> None:
    t = FakeTime()
    budget = Budget(calls=3, call_window=10, clock=t.clock, sleep=t.sleep)
    times: list[float] = []

    async def caller() -> None:
        await budget.acquire()
        times.append(t.now)

    await asyncio.gather(*(caller() for _ in range(9)))
    times.sort()
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] > 10
