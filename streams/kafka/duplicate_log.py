"""The duplicate index every worker shares: a compacted topic, kept on each worker in SQLite.

The index of ``domain.duplicates`` is buckets of a few entries. Here each entry is one
record of the compacted topic ``<prefix>duplicates`` (key ``tenant|bucket|item``, the entry
as JSON; an entry crowded out of its bucket is a tombstone), and each worker keeps the
topic's content in a SQLite file of its own under the data folder: memory stays flat
however long the history, and a restarted worker reads only what it missed.

A check waits until the view has caught up with the topic, then reads SQLite; whatever it
adds is sent and acknowledged before the bill is created, so a worker that picks the item up
after a crash sees it. Two workers checking look-alikes of each other within the moment it
takes a record to travel are not serialised: the ledger's own check still refuses an exact
number twice; a near match that slips through that moment is posted. One partition keeps
the topic in the order it was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import sqlite3
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from domain.duplicates import Candidate, DuplicateIndex, Verdict
from domain.tenants import Tenants
from streams.config import Settings
from streams.kafka.broker import bootstrap_of

log = logging.getLogger("billstream.duplicates")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    tenant TEXT NOT NULL, bucket TEXT NOT NULL, item TEXT NOT NULL, entry BLOB NOT NULL,
    seq INTEGER NOT NULL, PRIMARY KEY (tenant, bucket, item)
);
CREATE TABLE IF NOT EXISTS position (topic TEXT PRIMARY KEY, next_offset INTEGER NOT NULL);
"""
_SLOTS = 64  # worker processes that may share a data folder, each with its own view


def duplicates_topic(settings: Settings) -> str:
    return f"{settings.topic_prefix}duplicates"


class _Buckets(MutableMapping[str, list[Any]]):
    """One tenant's buckets in the view, as ``DuplicateIndex`` reads and writes them; what
    a write changes is queued for the topic."""

    def __init__(self, log_: SharedDuplicateLog, tenant: str) -> None:
        self._log = log_
        self._tenant = tenant
        # The index reads a bucket just before it writes it back: the write diffs against
        # that read instead of asking SQLite again.
        self._read: dict[str, list[Any]] = {}

    def __getitem__(self, bucket: str) -> list[Any]:
        rows = self._log.db.execute(
            "SELECT entry FROM entries WHERE tenant = ? AND bucket = ? ORDER BY seq",
            (self._tenant, bucket),
        ).fetchall()
        entries = [tuple(orjson.loads(r[0])) for r in rows]
        self._read[bucket] = entries
        if not entries:
            raise KeyError(bucket)
        return entries

    def __setitem__(self, bucket: str, entries: list[Any]) -> None:
        kept = {str(e[0]): list(e) for e in entries}
        if bucket not in self._read:
            self.get(bucket)
        before = {str(e[0]): list(e) for e in self._read.pop(bucket)}
        for item in before.keys() - kept.keys():
            self._log.write(self._tenant, bucket, item, None)
        for item, entry in kept.items():
            if before.get(item) != entry:  # only what changed travels
                self._log.write(self._tenant, bucket, item, orjson.dumps(entry))

    def __delitem__(self, bucket: str) -> None:
        self[bucket] = []

    def __iter__(self) -> Iterator[str]:
        rows = self._log.db.execute(
            "SELECT DISTINCT bucket FROM entries WHERE tenant = ?", (self._tenant,)
        )
        return iter([r[0] for r in rows.fetchall()])

    def __len__(self) -> int:
        row = self._log.db.execute(
            "SELECT COUNT(DISTINCT bucket) FROM entries WHERE tenant = ?", (self._tenant,)
        ).fetchone()
        return int(row[0])


class SharedDuplicateLog:
    """The shared index: ``await start()`` catches up and tails, ``await check(c)`` checks
    and adds one candidate durably. ``stop()`` ends the tail and closes everything."""

    def __init__(self, settings: Settings, kafka_url: str, tenants: Tenants) -> None:
        self.settings = settings
        self.bootstrap = bootstrap_of(kafka_url)
        self.topic = duplicates_topic(settings)
        self.tenants = tenants
        self.db, self._lock_file = _open_view(settings.data_dir / "duplicates")
        self._pending: list[tuple[bytes, bytes | None]] = []
        self._seq = self._max_seq()
        self._indexes: dict[str, DuplicateIndex] = {}
        self._ready = asyncio.Event()
        self._check_lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._tail: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._close_clients()  # a start that failed half-way
        await self._ensure_topic()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None
        )
        await self._consumer.start()
        tp = TopicPartition(self.topic, 0)
        self._consumer.assign([tp])
        self._consumer.seek(tp, self._next_offset())
        end = (await self._consumer.end_offsets([tp]))[tp]
        while self._next_offset() < end:
            await self._apply(await self._consumer.getmany(tp, timeout_ms=1000))
        log.info("duplicate index: caught up at offset %d", end)
        self._ready.set()
        self._tail = asyncio.create_task(self._follow(tp))

    async def stop(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tail
        await self._close_clients()
        self.db.close()
        self._lock_file.close()

    async def _close_clients(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._consumer = self._producer = None

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            if self.topic in set(await admin.list_topics()):
                return
            with contextlib.suppress(TopicAlreadyExistsError):
                config = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
                await admin.create_topics(
                    [
                        NewTopic(
                            self.topic, 1, self.settings.replication_factor, topic_configs=config
                        )
                    ]
                )
        finally:
            await admin.close()

    # -- the check --------------------------------------------------------------------------------

    def index(self, tenant: str) -> DuplicateIndex:
        if tenant not in self._indexes:
            rules = self.tenants.get(tenant).duplicate_rules
            self._indexes[tenant] = DuplicateIndex(tenant, rules, store=_Buckets(self, tenant))
        return self._indexes[tenant]

    async def check(self, candidate: Candidate) -> Verdict:
        if not self._ready.is_set():
            async with self._start_lock:
                if not self._ready.is_set():
                    await self.start()  # in the worker's own loop, on its first check
        # One check at a time in this worker: check and add are one step for look-alikes
        # arriving together here. The records are queued in that order; their acknowledgement
        # is awaited outside the lock, so concurrent checks share the broker's round trips.
        async with self._check_lock:
            verdict = self.index(candidate.tenant).check_and_add(candidate)
            records, sent = await self._send_pending()
            self.db.commit()
        try:
            await asyncio.gather(*sent)
        except Exception:
            # Not acknowledged: sent again with the next check (the view has them already,
            # so re-adding this item would not write them again).
            self._pending[:0] = records
            raise
        return verdict

    # -- the view -----------------------------------------------------------------------------

    def write(self, tenant: str, bucket: str, item: str, entry: bytes | None) -> None:
        self._store(tenant, bucket, item, entry)
        self._pending.append((f"{tenant}|{bucket}|{item}".encode(), entry))

    async def _send_pending(
        self,
    ) -> tuple[list[tuple[bytes, bytes | None]], list[asyncio.Future[Any]]]:
        """Queue what the last check wrote; the futures resolve on the broker's ack."""
        pending, self._pending = self._pending, []
        assert self._producer is not None
        sent = [
            await self._producer.send(self.topic, key=k, value=v, partition=0) for k, v in pending
        ]
        return pending, sent

    def _store(self, tenant: str, bucket: str, item: str, entry: bytes | None) -> None:
        if entry is None:
            self.db.execute(
                "DELETE FROM entries WHERE tenant = ? AND bucket = ? AND item = ?",
                (tenant, bucket, item),
            )
            return
        self._seq += 1
        self.db.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, bucket, item) "
            "DO UPDATE SET entry = excluded.entry",
            (tenant, bucket, item, entry, self._seq),
        )

    async def _follow(self, tp: TopicPartition) -> None:
        assert self._consumer is not None
        while True:
            try:
                await self._apply(await self._consumer.getmany(tp, timeout_ms=1000))
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker away for a moment: the next fetch resumes
                log.exception("duplicate index: reading %s", self.topic)
                await asyncio.sleep(1.0)

    async def _apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        last = None
        for records in batch.values():
            for record in records:
                last = record.offset
                key = bytes(record.key or b"").decode(errors="replace")
                tenant, _, rest = key.partition("|")
                bucket, _, item = rest.rpartition("|")
                if tenant and bucket and item:
                    self._store(tenant, bucket, item, record.value)
        if last is not None:
            self.db.execute(
                "INSERT INTO position VALUES (?, ?) ON CONFLICT (topic) DO UPDATE SET "
                "next_offset = excluded.next_offset",
                (self.topic, last + 1),
            )
        self.db.commit()

    def _next_offset(self) -> int:
        row = self.db.execute(
            "SELECT next_offset FROM position WHERE topic = ?", (self.topic,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _max_seq(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM entries").fetchone()
        return int(row[0])


def _open_view(folder: Path) -> tuple[sqlite3.Connection, Any]:
    """The first view file no other live worker holds (a lock held for the process's life):
    a restarted worker takes its file back and reads only what it missed."""
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(_SLOTS):
        lock = open(folder / f"view-{slot}.lock", "w")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        db = sqlite3.connect(folder / f"view-{slot}.sqlite")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db, lock
    raise RuntimeError(f"{_SLOTS} workers already hold duplicate index views in {folder}")
