"""Prometheus metrics of the pipeline (names and units by the Prometheus conventions).

Label values are bounded: stage names, tenant ids from the tenants file, outcomes, reasons.
Never item ids or supplier names.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds to minutes: a stage is usually sub-second, a receipt-to-attached can take minutes
# when Sage throttles or an item waits on a retry.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

EVENTS = Counter(
    "billstream_events_total",
    "Events processed by a stage, by outcome (ok, failed, replayed = re-emitted from the table).",
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
    buckets=LATENCY_BUCKETS,
)
REPLAYS = Counter(
    "billstream_replays_total",
    "Failed items re-published to their stage by replay.",
    ["tenant", "reason"],
)


def record_stage(stage: str, tenant: str, outcome: str, seconds: float) -> None:
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

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "billstream_parked_items",
            "Items whose latest outcome is a failure, by reason (the replay to-do list).",
            labels=["tenant", "reason"],
        )
        if self.source is not None:
            for (tenant, reason), n in sorted(Tally(self.source()).items()):
                family.add_metric([tenant, reason], n)
        yield family


PARKED = ParkedCollector()
REGISTRY.register(PARKED)
