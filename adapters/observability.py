"""Prometheus metrics of the requests billstream sends to Sage, shared by the ledger adapters.

They live here rather than in ``streams.metrics`` because adapters must not import streams;
the worker's ``/metrics`` endpoint serves the default registry, so they appear there too.

Label values are bounded: ``system`` (``intacct``, ``sage_accounting``), ``company`` (the Sage
company of a tenant in the tenants file), ``operation`` (an Intacct request's kind, a Sage
Accounting Swagger ``operationId``), ``status`` (the HTTP status code, or what happened when no
answer came), ``budget`` (a fixed name per system).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Generic, Protocol, TypeVar

import httpx
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

T = TypeVar("T")

log = logging.getLogger("billstream.metrics")

# Sub-second reads to the 120 s an Intacct request may take before it times out.
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

SAGE_REQUESTS = Counter(
    "billstream_sage_requests_total",
    "HTTP requests sent to Sage, by system, company, operation and status: the HTTP status "
    "code, or timeout, connect_error, transport_error, cancelled when no answer came.",
    ["system", "company", "operation", "status"],
)
SAGE_REQUEST_SECONDS = Histogram(
    "billstream_sage_request_duration_seconds",
    "Time from sending a request to Sage to its answer (or to giving up on it).",
    ["system", "operation"],
    buckets=REQUEST_BUCKETS,
)


def initialise(system: str, operations: Iterable[str]) -> None:
    """Create the request-time series of ``system`` at zero before its first request.

    A series born with its first observation has no earlier sample, so ``rate()`` misses
    the first scrape interval's requests (a short run shows none at all).
    """
    for operation in operations:
        SAGE_REQUEST_SECONDS.labels(system, operation)


# A budget's name -> (in use, limit), both in the budget's own unit (calls, bytes, requests).
Budgets = Mapping[str, tuple[float, float]]


class BudgetReporter(Protocol):
    def budgets_in_use(self) -> Budgets: ...


@dataclass(frozen=True)
class _Watch:
    system: str
    company: str
    loop: asyncio.AbstractEventLoop


# The clients whose budgets the gauge reports, weakly: a closed, dropped client disappears.
_watched: weakref.WeakKeyDictionary[BudgetReporter, _Watch] = weakref.WeakKeyDictionary()
_watched_lock = threading.Lock()


def _watch(client: BudgetReporter, system: str, company: str) -> None:
    if client in _watched:
        return
    with _watched_lock:
        _watched[client] = _Watch(system, company, asyncio.get_running_loop())


async def observed(
    request: Awaitable[httpx.Response],
    *,
    system: str,
    company: str,
    operation: str,
    client: BudgetReporter | None = None,
) -> httpx.Response:
    """Await one HTTP request to Sage, counting it by status and timing it."""
    if client is not None:
        _watch(client, system, company)
    status = "cancelled"
    started = time.perf_counter()
    try:
        response = await request
        status = str(response.status_code)
        return response
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
        # Never reached Sage (a pool wait is ours, not Sage's slowness).
        status = "connect_error"
        raise
    except httpx.TimeoutException:
        status = "timeout"
        raise
    except httpx.HTTPError:
        status = "transport_error"
        raise
    finally:
        SAGE_REQUESTS.labels(system, company, operation, status).inc()
        SAGE_REQUEST_SECONDS.labels(system, operation).observe(time.perf_counter() - started)


class LatestReading(Generic[T]):
    """A value the worker's loop owns, read from the scrape thread without holding the scrape.

    The budgets, the parked table and the consumer are not thread-safe, so they are read on
    the loop's thread; but a busy loop (or a consumer fetch that long-polls on Apache Kafka)
    must not make a scrape outlast Prometheus's scrape timeout, which marks the worker down.
    So each ``read`` starts a reading on the loop unless one is still running, waits at most
    ``wait`` seconds, and answers with the newest reading that finished: at worst one scrape
    old, None until the first one finishes.
    """

    def __init__(self, wait: float = 0.25) -> None:
        self.wait = wait
        self._latest: T | None = None
        self._pending: concurrent.futures.Future[T] | None = None

    def read(
        self, loop: asyncio.AbstractEventLoop, measure: Callable[[], Awaitable[T]]
    ) -> T | None:
        if loop.is_closed() or not loop.is_running() or _on_loop(loop):
            # A stopped worker has nothing to tell; a scrape on the loop would wait for itself.
            self._latest = None
            return None
        if self._pending is None or self._pending.done():
            self._pending = asyncio.run_coroutine_threadsafe(_as_coroutine(measure), loop)
        concurrent.futures.wait([self._pending], timeout=self.wait)
        if self._pending.done():
            try:
                self._latest = self._pending.result()
            except (Exception, concurrent.futures.CancelledError):
                log.debug("metrics: a reading failed", exc_info=True)
            self._pending = None
        return self._latest


async def _as_coroutine(measure: Callable[[], Awaitable[T]]) -> T:
    return await measure()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _read(clients: list[tuple[BudgetReporter, _Watch]]) -> list[tuple[_Watch, Budgets]]:
    return [(watch, client.budgets_in_use()) for client, watch in clients]


class BudgetCollector(Collector):
    """``billstream_sage_budget_used_ratio``: each watched client's budgets, read at scrape
    time, so a budget whose window has emptied reads low even when no request was sent since.
    """

    def __init__(self) -> None:
        self._readings: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, LatestReading[list[tuple[_Watch, Budgets]]]
        ] = weakref.WeakKeyDictionary()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "billstream_sage_budget_used_ratio",
            "Share of a Sage budget in use in this worker: Sage Accounting calls per minute "
            "and request bytes per hour, Sage Intacct requests in flight against the limit.",
            labels=["system", "company", "budget"],
        )
        with _watched_lock:
            watched = list(_watched.items())
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[BudgetReporter, _Watch]]] = {}
        for client, watch in watched:
            by_loop.setdefault(watch.loop, []).append((client, watch))
        totals: dict[tuple[str, str, str], list[float]] = {}
        for loop, clients in by_loop.items():
            if loop.is_closed():
                with _watched_lock:
                    for client, _ in clients:
                        _watched.pop(client, None)
                continue

            reading = self._readings.setdefault(loop, LatestReading())
            for watch, budgets in reading.read(loop, partial(_read, clients)) or []:
                for name, (used, limit) in budgets.items():
                    # Clients of one company (two tenants on it) add up to one budget.
                    total = totals.setdefault((watch.system, watch.company, name), [0.0, 0.0])
                    total[0] += used
                    total[1] += limit
        for labels, (used, limit) in sorted(totals.items()):
            family.add_metric(list(labels), used / limit if limit > 0 else 0.0)
        yield family


REGISTRY.register(BudgetCollector())
