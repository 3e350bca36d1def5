"""The operator page's picture of the pipeline: every topic, read from the start and tailed.

One plain consumer (no group: reading never moves a worker's offsets) reads all six topics
from the beginning and keeps following them; each event updates a small per-item record.
Pages are rendered from that record, so a page load costs no Kafka round trip; only an
item's full timeline is read from the log on demand (``streams.ops.audit.timeline``).

An item is parked when its latest failure is newer (by attempt) than anything it reached in
attached (the rule of ``streams.ops.replay.parked_items``) and no replay of it is under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from domain.errors import Reason
from domain.events import PIPELINE, Envelope, Failure, Received, Stage, Work
from streams.config import Settings
from streams.kafka.broker import bootstrap_of
from streams.kafka.eventlog import topic_partitions
from streams.pipeline.notifications import ParkedSummary, summarize

log = logging.getLogger("billstream.web")


@dataclass
class ItemState:
    key: str
    tenant: str
    supplier: str = "?"
    number: str = "?"
    amount: str = ""
    reached: set[Stage] = field(default_factory=set)
    attempt: int = 0  # the latest attempt seen
    stage: Stage = Stage.RECEIVED  # the furthest stage of the latest attempt
    time: str = ""
    attached_attempt: int = 0
    failure: ParkedSummary | None = None  # the latest failure

    @property
    def parked(self) -> bool:
        # A newer attempt than the failure (a replay under way) is on its way, not parked.
        f = self.failure
        return f is not None and f.attempt > self.attached_attempt and f.attempt >= self.attempt

    @property
    def state(self) -> str:
        if self.parked:
            assert self.failure is not None
            return f"parked: {self.failure.reason.value}"
        if self.attached_attempt and self.attached_attempt >= self.attempt:
            return "attached"
        return f"in progress ({self.stage.value})"


@dataclass(frozen=True)
class Group:
    tenant: str
    reason: Reason
    items: list[ItemState]


_ORDER = {stage: i for i, stage in enumerate(PIPELINE)}


class LogView:
    def __init__(self, settings: Settings, kafka_url: str) -> None:
        self.settings = settings
        self.kafka_url = kafka_url
        self.items: dict[str, ItemState] = {}
        self.ready = asyncio.Event()  # set once the log as it was at start has been read
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None

    # -- reading ------------------------------------------------------------------------------

    def apply(self, event: Envelope) -> None:
        item = self.items.get(event.subject)
        if item is None:
            item = self.items[event.subject] = ItemState(key=event.subject, tenant=event.tenant)
        stage = event.stage
        item.reached.add(stage)
        data = event.data
        if isinstance(data, Work):
            item.supplier, item.number = data.bill.vendor_name, data.bill.number
            item.amount = f"{data.bill.currency} {data.bill.total}"
        elif isinstance(data, Received) and item.supplier == "?":
            raw = data.item
            item.supplier = str(raw.get("payee") or "?")
            item.number = str(raw.get("invoice_number") or "?")
            item.amount = f"{raw.get('currency') or ''} {raw.get('total_amount') or ''}".strip()
        elif isinstance(data, Failure):
            summary = summarize(event)
            if item.failure is None or summary.attempt >= item.failure.attempt:
                item.failure = summary
            if item.supplier == "?":
                item.supplier, item.number = summary.supplier, summary.number
                item.amount = summary.amount
        if stage is Stage.ATTACHED:
            item.attached_attempt = max(item.attached_attempt, event.attempt)
        if event.attempt > item.attempt:
            item.attempt, item.stage = event.attempt, stage
        elif event.attempt == item.attempt and _ORDER.get(stage, 99) >= _ORDER.get(item.stage, 99):
            item.stage = stage
        item.time = max(item.time, event.time.isoformat())

    async def _tail_once(self) -> None:
        topics = [self.settings.topic(stage) for stage in Stage]
        parts = await topic_partitions(self.kafka_url, topics)
        tps = [TopicPartition(t, p) for t, ps in parts.items() for p in ps]
        missing = [t for t in topics if not parts.get(t)]
        looked = time.monotonic()
        if not tps:
            self.ready.set()  # nothing to read yet: an empty pipeline is a true picture
            await asyncio.sleep(2.0)
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_of(self.kafka_url),
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            behind = {tp for tp in tps if ends[tp] > 0}
            if not behind:
                self.ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, records in batch.items():
                    for record in records:
                        if record.value is None:
                            continue
                        try:
                            self.apply(Envelope.from_bytes(record.value))
                        except ValueError:
                            log.warning("%s@%d: not an event, skipped", tp, record.offset)
                if behind:
                    for tp in list(behind):
                        if await consumer.position(tp) >= ends[tp]:
                            behind.discard(tp)
                    if not behind:
                        self.ready.set()
                if missing and time.monotonic() - looked > 5.0:
                    looked = time.monotonic()
                    again = await topic_partitions(self.kafka_url, topics)
                    if any(again.get(t) for t in missing):
                        return  # a topic appeared late: start over to read it too
        finally:
            await consumer.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self._tail_once()
                self.error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("reading the event log failed, retrying: %s", self.error)
                await asyncio.sleep(2.0)
            # Starting over re-reads everything; ``apply`` is idempotent, so what was built
            # stays true (and on screen) meanwhile.

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="billstream-web-view")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- what pages show ----------------------------------------------------------------------

    def counts(self, tenant: str | None = None) -> dict[str, int]:
        """Items that reached each stage, and how many are parked or on their way now."""
        reached: Counter[Stage] = Counter()
        parked = attached = 0
        for item in self.items.values():
            if tenant is not None and item.tenant != tenant:
                continue
            reached.update(item.reached)
            if item.parked:
                parked += 1
            elif item.state == "attached":
                attached += 1
        total = sum(1 for i in self.items.values() if tenant is None or i.tenant == tenant)
        out = {stage.value: reached[stage] for stage in PIPELINE}
        out["parked"] = parked
        out["in_progress"] = total - parked - attached
        return out

    def tenants(self) -> list[str]:
        return sorted({i.tenant for i in self.items.values()})

    def groups(self) -> list[Group]:
        by: dict[tuple[str, Reason], list[ItemState]] = defaultdict(list)
        for item in self.items.values():
            if item.parked and item.failure is not None:
                by[(item.tenant, item.failure.reason)].append(item)
        return [
            Group(tenant, reason, sorted(items, key=lambda i: i.key))
            for (tenant, reason), items in sorted(by.items())
        ]

    def group(self, tenant: str, reason: Reason) -> Group:
        for g in self.groups():
            if g.tenant == tenant and g.reason is reason:
                return g
        return Group(tenant, reason, [])

    def search(self, text: str, limit: int = 200) -> list[ItemState]:
        needle = text.strip().casefold()
        if not needle:
            return []
        found = [
            item
            for item in self.items.values()
            if needle in item.supplier.casefold()
            or needle in item.number.casefold()
            or needle == item.key.casefold()
        ]
        return sorted(found, key=lambda i: (i.supplier.casefold(), i.number))[:limit]
