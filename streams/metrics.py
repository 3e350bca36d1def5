"""Prometheus metrics of the pipeline (names and units by the Prometheus conventions).

Label values are bounded: stage names, tenant ids from the tenants file, outcomes, reasons,
topic names. Never item ids or supplier names. The Sage request metrics live in
``adapters.observability`` (adapters must not import streams); the worker's ``/metrics``
endpoint serves both, from the default registry.

What the worker's Faust app adds (``instrument``): replays counted where they arrive, and
consumer lag per topic read at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter as Tally
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any

import faust
import orjson
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from adapters import observability
from adapters.observability import LatestReading
from domain.errors import Reason
from domain.events import STAGES, Stage, event_id
from domain.tenants import Tenants

log = logging.getLogger("billstream.metrics")

# Seconds to minutes: a stage is usually sub-second, a receipt-to-attached can take minutes
# when Sage throttles or an item waits on a retry.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# A replayed item is attached hours or days after its receipt (a period reopens, a mapping is
# fixed): without these it would sit in +Inf and drag the p95 to the top finite bucket.
RECEIPT_BUCKETS = (*LATENCY_BUCKETS, 1800, 3600, 14400, 86400)

EVENTS = Counter(
    "billstream_events_total",
    "Events processed by a stage, by outcome (ok, failed, replayed = re-emitted from the "
    "stage's table because it had already handled that item and attempt).",
    ["stage", "tenant", "outcome"],
)
FAILURES = Counter(
    "billstream_failures_total",
    "Items parked in the failed topic, by the stage that failed and the reason.",
    ["stage", "tenant", "reason"],
)
STAGE_SECONDS = Histogram(
    "billstream_stage_seconds",
    "Time a stage spent on one item, retries included.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
RECEIPT_TO_ATTACHED = Histogram(
    "billstream_receipt_to_attached_seconds",
    "From the received event to the attachment in Sage.",
    ["tenant"],
    buckets=RECEIPT_BUCKETS,
)
REPLAYS_RECEIVED = Counter(
    "billstream_replays_total",
    "Replayed items received by the stage they were sent back to, by the reason they had "
    "been parked for (unknown when this worker does not hold the item's parked entry).",
    ["stage", "tenant", "reason"],
)
UNREADABLE = Counter(
    "billstream_unreadable_records_total",
    "Records a worker could not read or carry (corrupt, too deep, of an unknown type, or with "
    "a result too large for the log), by topic: parked as unreadable, never a crash.",
    ["topic"],
)
CONSUMER_RESEEKS = Counter(
    "billstream_consumer_reseeks_total",
    "Stream partitions read again from a hole (the hole check) or from their committed offset "
    "(the stall watchdog): records Faust fetched and dropped, healed.",
    ["topic"],
)

# Tenants this process has handled events of: the parked gauge reports every reason for
# them, zeros included, so "is tenant X parked for auth?" has an answer (0) rather than no
# series. Bounded like the tenant label itself.
_TENANTS: set[str] = set()


def initialise(stages: Iterable[str], tenants: Tenants, topics: Iterable[str] = ()) -> None:
    """Create the series known at start at zero, before the first scrape.

    Prometheus's ``rate()`` needs a sample before an increase to see it: a histogram child
    born with its first observation starts at that count, so in a short run (or the first
    minute of a long one) the quantile panels showed nothing. Stages and tenants are fixed
    for the life of a worker; so are its topics and the operations of Sage Intacct's requests.
    """
    for stage in stages:
        STAGE_SECONDS.labels(stage)
    for topic in topics:
        CONSUMER_RESEEKS.labels(topic)
    for tenant in tenants.all():
        RECEIPT_TO_ATTACHED.labels(tenant.id)
    if any(tenant.ledger.kind == "intacct" for tenant in tenants.all()):
        from adapters.intacct.client import OPERATIONS

        observability.initialise("intacct", OPERATIONS)


def record_stage(stage: str, tenant: str, outcome: str, seconds: float) -> None:
    _TENANTS.add(tenant)
    EVENTS.labels(stage, tenant, outcome).inc()
    if outcome != "replayed":
        STAGE_SECONDS.labels(stage).observe(seconds)


def record_attached(tenant: str, seconds: float) -> None:
    RECEIPT_TO_ATTACHED.labels(tenant).observe(seconds)


def serve(host: str, port: int) -> int:
    """Start the /metrics HTTP endpoint in a thread; returns the bound port."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_address[1])


class ParkedCollector(Collector):
    """``billstream_parked_items``: counted from the parked table at scrape time, so it is
    right after a restart or a rebalance without any bookkeeping of increments."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[tuple[str, str]]] | None = None
        # The worker's loop, once known: the table is read there, never while it changes.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._reading: LatestReading[Tally[tuple[str, str]]] = LatestReading()

    def _counts(
        self, source: Callable[[], Iterable[tuple[str, str]]]
    ) -> Tally[tuple[str, str]] | None:
        if self.loop is None or self.loop.is_closed():
            return Tally(source())

        async def count() -> Tally[tuple[str, str]]:
            return Tally(source())

        return self._reading.read(self.loop, count)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "billstream_parked_items",
            "Items whose latest outcome is a failure, by reason (the replay to-do list).",
            labels=["tenant", "reason"],
        )
        counts = self._counts(self.source) if self.source is not None else None
        # None: the loop has not answered yet; unknown is not zero, so no series.
        if counts is not None:
            tenants = {tenant for tenant, _ in counts} | set(_TENANTS)
            reasons = {reason for _, reason in counts} | {r.value for r in Reason}
            for tenant in sorted(tenants):
                for reason in sorted(reasons):
                    family.add_metric([tenant, reason], counts.get((tenant, reason), 0))
        yield family


PARKED = ParkedCollector()
REGISTRY.register(PARKED)


# -- replays, where they arrive ---------------------------------------------------------------

_SEEN_REPLAYS = 10_000  # event ids remembered, so a redelivery is not counted twice


class PipelineSensor(faust.Sensor):
    """Counts replayed events as the stage they were sent to receives them.

    A replay is run by the CLI or the operator page, in a process that serves no metrics; the
    worker sees the result: the failed input event again, ``source`` "replay", attempt + 1,
    ``causationid`` = the failure's id. Event ids are deterministic (item, stage, attempt), so
    telling a replay needs no lookup: the event's cause must be the item's failure at the
    attempt before. That leaves out the events a replayed item goes on to cause (they keep
    ``source`` "replay" but are caused by the replayed event), and a redelivery after a rebalance is
    recognised by its id and counted once per worker.
    """

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._app = app
        self._seen: OrderedDict[str, None] = OrderedDict()

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        value = getattr(event, "value", None)
        # Cheap test first: most events are not replays and are decoded by their agent anyway.
        if isinstance(value, bytes) and b'"replay"' in value:
            try:
                self._count(value)
            except Exception:  # a metric must never break the stream
                log.debug("replay metric: cannot read the event", exc_info=True)

    def _count(self, value: bytes) -> None:
        raw = orjson.loads(value)
        subject, attempt = str(raw.get("subject", "")), raw.get("attempt")
        if raw.get("source") != "replay" or not isinstance(attempt, int) or attempt < 2:
            return
        if raw.get("causationid") != event_id(subject, Stage.FAILED, attempt - 1):
            return
        stage = stage_receiving(str(raw.get("type", "")))
        replay_id = str(raw.get("id", ""))
        if stage is None or replay_id in self._seen:
            return
        self._seen[replay_id] = None
        if len(self._seen) > _SEEN_REPLAYS:
            self._seen.popitem(last=False)
        reason = self._reason(subject, raw["causationid"])
        REPLAYS_RECEIVED.labels(stage, str(raw.get("tenant", "")), reason).inc()

    def _reason(self, subject: str, causation: object) -> str:
        # The parked entry of the item is the failure the replay answers (same id); it is
        # co-partitioned with the stage topics, so this worker holds it.
        table = self._app.tables.get("parked")
        entry = table.get(subject.encode()) if table is not None and subject else None
        if entry is None:
            return "unknown"
        parked = orjson.loads(entry)
        return str(parked.get("reason", "unknown")) if parked.get("id") == causation else "unknown"


def stage_receiving(event_type: str) -> str | None:
    """The stage (agent) that consumes events of this type: received -> validate, ..."""
    try:
        stage = Stage.of_type(event_type)
    except ValueError:
        return None
    return next((name for name, (source, _) in STAGES.items() if source is stage), None)


# -- consumer lag -----------------------------------------------------------------------------


def lag_by_topic(
    assigned: Iterable[Any],
    ends: Mapping[Any, int | None],
    committed: Mapping[Any, int | None],
    starts: Mapping[Any, int | None],
) -> dict[str, int]:
    """Records not yet committed per topic: end offset - committed offset, summed over the
    partitions held. A partition never committed counts from the start of its log."""
    lag: dict[str, int] = {}
    for tp in assigned:
        end = ends.get(tp)
        if end is None:
            continue
        done = committed.get(tp)
        if done is None:
            done = starts.get(tp) or 0
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - done)
    return lag


async def consumer_lag(app: Any) -> dict[str, int]:
    """Lag of the topics the agents read (changelogs are not acked, so they are left out)."""
    consumer = app.consumer
    topics = app.topics.acking_topics
    assigned = sorted(tp for tp in consumer.assignment() if tp.topic in topics)
    if not assigned:
        return {}
    ends = await consumer.highwaters(*assigned)
    # Faust's record of what it committed (also set from the group's offsets on assignment);
    # asking the coordinator instead would cost a round trip per scrape.
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    missing = [tp for tp in assigned if committed.get(tp) is None]
    starts = await consumer.earliest_offsets(*missing) if missing else {}
    return lag_by_topic(assigned, ends, committed, starts)


class LagCollector(Collector):
    """``billstream_consumer_lag_records``, measured on the worker's loop.

    Measuring takes round trips to the broker through Faust's consumer thread, and an idle
    consumer's fetch long-polls, so on Apache Kafka a measurement can take longer than a
    scrape may: each scrape answers with the newest finished measurement (``LatestReading``).
    """

    def __init__(self, wait: float = 0.25) -> None:
        self.wait = wait
        self.apps: weakref.WeakKeyDictionary[Any, asyncio.AbstractEventLoop] = (
            weakref.WeakKeyDictionary()
        )
        self._readings: weakref.WeakKeyDictionary[Any, LatestReading[dict[str, int]]] = (
            weakref.WeakKeyDictionary()
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "billstream_consumer_lag_records",
            "Records in the topic partitions this worker holds that it has not committed yet.",
            labels=["topic"],
        )
        totals: dict[str, int] = {}
        for app, loop in list(self.apps.items()):
            reading = self._readings.setdefault(app, LatestReading(self.wait))
            for topic, n in (reading.read(loop, partial(consumer_lag, app)) or {}).items():
                totals[topic] = totals.get(topic, 0) + n
        for topic, n in sorted(totals.items()):
            family.add_metric([topic], n)
        yield family


LAG = LagCollector()
REGISTRY.register(LAG)


# -- wiring into the worker's Faust app ---------------------------------------------------------


def instrument(app: Any) -> None:
    """Add the replay sensor to an app that has not started yet (idempotent).

    Faust keeps per-sensor state across a rebalance, so a sensor added to a running app
    crashes the next one: this must happen before the worker starts.
    """
    if any(isinstance(sensor, PipelineSensor) for sensor in app.sensors):
        return
    app.sensors.add(PipelineSensor(app))


async def _on_partitions_assigned(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    # The loop the worker runs on, known only once it runs: the scrape thread reads the
    # consumer and the parked table there.
    loop = asyncio.get_running_loop()
    LAG.apps[app] = loop
    PARKED.loop = loop


def _on_after_configured(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    try:
        instrument(app)
    except Exception:
        log.warning("metrics: cannot instrument the Faust app", exc_info=True)


# Faust settles an app's sensors when it is configured: a sensor added earlier (while the
# app is being built) is never called, one added after start crashes the next rebalance.
# These class-level signals ("sent by ALL apps") reach every app at the right moments.
faust.App.on_after_configured.connect(_on_after_configured)
faust.App.on_partitions_assigned.connect(_on_partitions_assigned)
