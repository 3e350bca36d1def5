"""A business's budget divided between workers by the partitions each holds, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from adapters.sage_accounting.budget import (
    Budget,
    BudgetTooSmall,
    WorkerShare,
    partition_share,
)
from domain.events import STAGES, Stage
from streams.config import Settings
from streams.kafka.budget_shares import stage_partitions

STAGE_TOPICS = {"p.received": 4, "p.validated": 4, "p.vendor-resolved": 4, "p.bill-created": 4}


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def budget(t: FakeTime, **kwargs: int) -> Budget:
    return Budget(call_window=60, clock=t.clock, sleep=t.sleep, **kwargs)


def test_the_share_is_the_stage_partitions_held_over_all_of_them() -> None:
    half = [(topic, p) for topic in STAGE_TOPICS for p in (0, 2)]
    assert partition_share(half, STAGE_TOPICS) == 0.5
    # changelogs and the failed topic carry no ledger calls; unknown partitions are ignored
    noise = [("p.failed", 0), ("p-done-attach-changelog", 1), ("p.received", 9)]
    assert partition_share(half + noise, STAGE_TOPICS) == 0.5
    assert partition_share([("p.received", 3)], STAGE_TOPICS) == 1 / 16
    assert partition_share([], STAGE_TOPICS) == 0.0
    with pytest.raises(ValueError):
        partition_share([], {})


def test_the_stage_topics_are_the_inputs_of_the_stages_that_call_the_ledger() -> None:
    settings = Settings(topic_prefix="x.", partitions=6)
    assert stage_partitions(settings) == {
        settings.topic(source): 6 for source, _ in STAGES.values()
    }
    assert settings.topic(Stage.FAILED) not in stage_partitions(settings)


def test_shares_round_down_so_workers_never_sum_past_the_limit() -> None:
    t = FakeTime()
    shares = [3 / 8, 3 / 8, 2 / 8]  # three workers on eight partitions
    budgets = [budget(t, calls=200, max_bytes=1_000) for _ in shares]
    for b, s in zip(budgets, shares, strict=True):
        b.set_share(s, fresh=True)
    assert [b.calls for b in budgets] == [75, 75, 50]
    assert sum(b.max_bytes for b in budgets) <= 1_000
    odd = budget(t, calls=200)
    odd.set_share(1 / 3, fresh=True)
    assert odd.calls == 66  # 66.67 down: three such workers send 198, not 201
    tiny = budget(t, calls=2)
    tiny.set_share(1 / 8, fresh=True)
    assert tiny.calls == 1  # a worker with partitions can always call


async def test_a_shrinking_share_keeps_what_the_window_already_holds() -> None:
    t = FakeTime()
    b = budget(t, calls=10)
    for _ in range(8):
        await b.acquire()
    b.set_share(0.5)  # a second worker joined: 5 calls a window now, 8 already spent
    assert (b.calls, b.business_calls) == (5, 10)
    start = t.now
    await b.acquire()
    assert t.now - start > 60, "the 8 calls sent must leave the window first"
    assert b.snapshot()["share"] == 0.5


async def test_a_growing_share_counts_as_spent_for_one_window() -> None:
    t = FakeTime()
    b = budget(t, calls=10)
    b.set_share(0.5, fresh=True)
    for _ in range(5):
        await b.acquire()
    t.now += 61  # our own calls leave the window
    b.set_share(1.0)  # the other worker left; its last minute's calls are unknown to us
    sent = []
    for _ in range(10):
        await b.acquire()
        sent.append(t.now)
    # five at once (our old share), the other five only once the taken-over share is clear
    assert sent[4] == sent[0]
    assert sent[5] - sent[0] > 55


async def test_a_worker_without_partitions_makes_no_calls_until_it_gets_some() -> None:
    t = FakeTime()
    b = budget(t, calls=10)
    b.set_share(0.0)
    task = asyncio.ensure_future(b.acquire())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done() and b.total_calls == 0
    b.set_share(0.25)
    await asyncio.wait_for(task, 1)
    assert b.total_calls == 1


async def test_a_request_over_the_share_but_within_the_business_goes_alone() -> None:
    t = FakeTime()
    b = budget(t, calls=100, max_bytes=1_000)
    b.set_share(0.25, fresh=True)  # 250 bytes an hour for this worker
    await b.acquire(100)
    start = t.now
    await b.acquire(600)  # more than the share, less than the business's 1,000
    assert t.now - start > 3600, "it waits for this worker's window to empty"
    with pytest.raises(BudgetTooSmall):
        await b.acquire(1_001)


def test_every_budget_of_the_process_is_re_divided_on_a_rebalance() -> None:
    t = FakeTime()
    shares = WorkerShare()
    early = shares.enrol(budget(t, calls=200))
    assert early.calls == 200, "before any assignment: the whole budget (tools, single runs)"
    shares.set(0.5)
    late = shares.enrol(budget(t, calls=200))  # a tenant's first item after the rebalance
    assert (early.calls, late.calls) == (100, 100)
    assert late.snapshot()["calls_in_window"] == 0, "a new budget starts with nothing spent"
    shares.set(0.25)
    assert (early.calls, late.calls) == (50, 50)
    with pytest.raises(ValueError):
        shares.set(1.5)
