"""The pipeline on a real broker: a batch end to end, redeliveries, replays, the demo."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from adapters.sqlite_ledger import LocalLedger
from domain.events import Failure, Stage
from streams.config import Settings
from streams.demo import DemoOptions, run_demo
from tests.integration.helpers import (
    events_for,
    expected_outcomes,
    inventory,
    prepare,
    publish,
    sample_items,
    start_worker,
    stop_process,
    wait_terminal,
)
from tests.support import wait_until, wait_until_async

pytestmark = [pytest.mark.broker]


def outcome_of(terminal, key: str) -> str:  # type: ignore[no-untyped-def]
    ev = terminal.state[key][1]
    return "attached" if ev.stage is Stage.ATTACHED else ev.data.reason.value


def ledger_writes(settings: Settings) -> Counter[str]:
    counts: Counter[str] = Counter()
    for company in ("acme-uk", "globex-us"):
        path = settings.ledgers_dir / f"{company}.sqlite"
        if path.exists():
            counts.update(w["op"] for w in LocalLedger(path).writes())
    return counts


def test_a_batch_flows_end_to_end(isolated: Settings) -> None:
    harness = prepare(isolated)
    items = sample_items()  # the whole set once: good, credit notes and the bad ones
    events = events_for(items)
    worker = start_worker(isolated)
    try:
        asyncio.run(publish(isolated, events))
        terminal = asyncio.run(wait_terminal(isolated, {e.subject: 1 for e in events}))
    finally:
        stop_process(worker)
    expected = expected_outcomes(items)
    got = {key: outcome_of(terminal, key) for key in expected}
    assert got == expected
    inv = inventory(harness, isolated)
    attached = [k for k, v in got.items() if v == "attached"]
    assert sorted(inv) == sorted(attached)
    assert all((i.bills, i.attachments) == (1, 1) for i in inv.values())


def test_redelivered_events_repeat_no_side_effect(isolated: Settings) -> None:
    prepare(isolated)
    events = events_for(sample_items(20))
    expected = {e.subject: 1 for e in events}
    worker = start_worker(isolated)
    try:
        asyncio.run(publish(isolated, events))
        asyncio.run(wait_terminal(isolated, expected))
        before = ledger_writes(isolated)
        # The source sends every item again, as a poller does after losing its cursor.
        asyncio.run(publish(isolated, events))
        asyncio.run(_wait_for_count(isolated, Stage.ATTACHED, 2 * _attached(before)))
    finally:
        stop_process(worker)
    # A new consumer group and empty tables: every event is processed again from offset 0,
    # as after a crash that lost all commits. Only ledger lookups stand between us and
    # duplicates, and they must hold.
    fresh = isolated.model_copy(update={"app_id": isolated.app_id + "-again"})
    worker = start_worker(fresh, "worker-again.log")
    try:
        asyncio.run(_wait_for_count(isolated, Stage.ATTACHED, 3 * _attached(before)))
    finally:
        stop_process(worker)
    assert ledger_writes(isolated) == before
    assert before["create_draft_bill"] == before["attach_document"] > 0


def _attached(writes: Counter[str]) -> int:
    return writes["attach_document"]


async def _wait_for_count(settings: Settings, stage: Stage, n: int, within: float = 90) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.kafka.broker import bootstrap_of
    from streams.kafka.eventlog import topic_partitions

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_of(str(settings.kafka_url)), group_id=None
    )
    await consumer.start()
    try:
        topic = settings.topic(stage)
        parts = (await topic_partitions(str(settings.kafka_url), [topic]))[topic]
        tps = [TopicPartition(topic, p) for p in parts]
        assert tps, f"{topic} has no partitions"
        total = 0

        async def reached() -> bool:
            nonlocal total
            total = sum((await consumer.end_offsets(tps)).values())
            return total >= n

        await wait_until_async(
            reached, within, lambda: f"{n} events on {topic} ({total} so far)", interval=0.25
        )
    finally:
        await consumer.stop()


def test_period_reopen_scenario_replays_into_attached(isolated: Settings) -> None:
    result = run_demo(
        DemoOptions(
            items=90,
            scenario="period-reopen",
            data_dir=isolated.data_dir,
            progress=False,
            timeout=180,
        ),
        isolated,
    )
    assert result.replayed > 0
    assert "period_closed" not in result.failed
    assert result.received == 90
    assert result.attached + sum(result.failed.values()) == 90
    assert result.bills == result.attachments == result.attached
    assert result.duplicates == 0


def test_audit_shows_the_timeline_of_an_attached_and_a_failed_item(isolated: Settings) -> None:
    from streams.ops.audit import timeline

    result = run_demo(DemoOptions(items=69, data_dir=isolated.data_dir, progress=False), isolated)
    url = str(isolated.kafka_url)
    demo = isolated.model_copy(update={"topic_prefix": result.topic_prefix})
    ok = asyncio.run(timeline(demo, url, result.examples["attached"]))
    assert [s.type.removeprefix("billstream.") for s in ok] == [
        "received",
        "validated",
        "vendor-resolved",
        "bill-created",
        "attached",
    ]
    assert all(s.outcome == "ok" for s in ok)
    assert "attachment" in ok[-1].detail
    bad = asyncio.run(timeline(demo, url, result.examples["failed"]))
    assert [s.type for s in bad][-1] == "billstream.failed"
    assert bad[-1].outcome != "ok" and "failed" in bad[-1].detail


def test_failed_events_carry_reasons_a_person_can_act_on(isolated: Settings) -> None:
    prepare(isolated)
    # The bad items on their own (the duplicate needs its twin, so it is left out here).
    items = [s for s in sample_items() if s.item.get("_expect", "duplicate")[:9] != "duplicate"]
    events = events_for(items)
    worker = start_worker(isolated)
    try:
        asyncio.run(publish(isolated, events))
        terminal = asyncio.run(wait_terminal(isolated, {e.subject: 1 for e in events}))
    finally:
        stop_process(worker)
    for ev in events:
        failed = terminal.state[ev.subject][1]
        assert isinstance(failed.data, Failure)
        assert failed.data.message
        assert failed.data.input.subject == ev.subject


def test_sigusr1_prints_task_stacks_without_local_variables(isolated: Settings) -> None:
    import signal

    # At INFO the worker logs when it is ready; SIGUSR1 before its handler is set would end it.
    isolated = isolated.model_copy(update={"log_level": "INFO"})
    prepare(isolated)
    worker = start_worker(isolated)
    log = isolated.data_dir / "worker.log"

    def logged(text: str, since: int = 0) -> bool:
        assert worker.poll() is None, f"the worker exited with {worker.returncode}"
        return text in log.read_bytes()[since:].decode(errors="replace")

    try:
        wait_until(lambda: logged("Worker]: Ready"), 60, "the worker to log Ready")
        before = log.stat().st_size
        worker.send_signal(signal.SIGUSR1)
        # The consumer's part is written last, after the tasks' await chains.
        wait_until(lambda: logged("consumer:", before), 30, "the SIGUSR1 dump to be written")
        worker.send_signal(signal.SIGUSR2)  # mode would start pdb here; we must keep running
        wait_until(lambda: logged("SIGUSR2 ignored"), 30, "the worker to log SIGUSR2 ignored")
        assert worker.poll() is None
    finally:
        stop_process(worker)
    text = log.read_text()
    assert "Task " in text
    # Down to where each agent actually waits, not just Faust's outermost frame.
    assert "in _execute_actor" in text and "awaiting " in text
    # mode's own dump prints each frame's locals ("self = <...>"): request bodies, secrets.
    assert "    self = <" not in text
    assert "SIGUSR2 ignored" in text
