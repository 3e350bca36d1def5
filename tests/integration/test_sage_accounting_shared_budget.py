"""Two workers on one Sage business keep within its limit together (issue 15, item 3).

The sandbox enforces Sage's 200 calls a minute per business, the workers are configured with
that same whole limit (``{P}_CALLS_PER_MINUTE=200``), and enough invoices flow to keep both
busy for over two minutes. Each worker takes the part of the budget its partitions give it,
so Sage refuses (429) at most one call. Both workers are real ``billstream worker`` processes
on the test broker; their own /metrics tell what each sent and what Sage answered.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.processes import free_port
from domain.events import Failure, Stage
from domain.tenants import load_tenants
from sandboxes.sage_accounting.harness import CALLS_ENV, SageAccountingHarness
from streams.config import Settings
from streams.demo import start_worker as start_worker_process
from streams.demo import write_tenants
from streams.kafka.topics import ensure_topics
from tests.integration.helpers import (
    Rig,
    events_for,
    expected_outcomes,
    publish,
    sample_items,
    stop_process,
    wait_terminal,
)
from tests.support import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

LIMIT = 200  # Sage's calls a minute per business, enforced by the sandbox
# Five cycles of the sample set: acme-uk's ~215 items take about 550 calls (2.5 a bill). A
# window lets 200 go at once, so that is three windows, over two minutes against the limit.
ITEMS = 345
RUN_AT_LEAST = 120.0

_REQUESTS = re.compile(
    r"^billstream_sage_requests_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.M
)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def sage_requests(port: int) -> dict[str, dict[str, int]]:
    """One worker's requests to Sage from its /metrics: company -> status -> count."""
    out: dict[str, dict[str, int]] = {}
    for match in _REQUESTS.finditer(scrape(port)):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        by_status = out.setdefault(labels["company"], {})
        status = labels["status"]
        by_status[status] = by_status.get(status, 0) + int(float(match["value"]))
    return out


def holds_partitions(settings: Settings, port: int) -> bool:
    """Whether a worker holds a partition of the first stage topic: its consumer-lag gauge
    has a series for the topic only then (and its /metrics answers only once it runs)."""
    try:
        text = scrape(port)
    except OSError:
        return False
    return f'billstream_consumer_lag_records{{topic="{settings.topic(Stage.RECEIVED)}"}}' in text


@pytest.fixture
def sage_rig(isolated: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    """A Sage Accounting sandbox enforcing ``LIMIT``, the workers told the same limit."""
    monkeypatch.delenv(CALLS_ENV, raising=False)
    isolated.data_dir.mkdir(parents=True, exist_ok=True)
    tenants = load_tenants(isolated.tenants_file)
    harness = SageAccountingHarness(calls_per_minute=LIMIT)
    harness.start(isolated.data_dir, tenants)
    try:
        settings = isolated.model_copy(update={"tenants_file": isolated.data_dir / "tenants.toml"})
        write_tenants(settings.tenants_file, tenants, harness, [])
        asyncio.run(ensure_topics(settings, str(settings.kafka_url)))
        yield Rig(settings, harness, harness.env())
    finally:
        harness.stop()


def test_two_workers_on_one_business_stay_within_its_call_limit(sage_rig: Rig) -> None:
    pipeline = sage_rig
    settings = pipeline.settings
    assert pipeline.env and all(
        v == str(LIMIT) for k, v in pipeline.env.items() if k.endswith("_CALLS_PER_MINUTE")
    )
    items = sample_items(ITEMS)
    events = events_for(items)
    expected = expected_outcomes(items)
    ports = {name: free_port() for name in ("worker-1.log", "worker-2.log")}
    workers: dict[str, Any] = {}
    try:
        for name, port in ports.items():
            # Two members at once: each its own static member id (the embedded broker's
            # default is one per data folder, for a restarted worker to take its place).
            env = pipeline.env | {"BILLSTREAM_GROUP_INSTANCE_ID": f"{settings.app_id}-{name}"}
            workers[name] = start_worker_process(
                settings,
                str(settings.kafka_url),
                Path(settings.data_dir) / name,
                env,
                metrics_port=port,
            )
        # The group settles first (both workers hold partitions), then the invoices flow.
        for name, port in ports.items():
            wait_until(
                lambda port=port: holds_partitions(settings, port),  # type: ignore[misc]
                120,
                f"{name} to hold partitions",
                interval=1.0,
            )
        started = time.monotonic()
        asyncio.run(publish(settings, events))
        terminal = asyncio.run(wait_terminal(settings, {e.subject: 1 for e in events}, within=600))
        elapsed = time.monotonic() - started
        per_worker = {name: sage_requests(port) for name, port in ports.items()}
        stats = pipeline.harness.sandbox.stats()  # type: ignore[attr-defined]
        inventory = pipeline.inventory()
    finally:
        for proc in workers.values():
            stop_process(proc)
    calls = {n: sum(sum(s.values()) for s in c.values()) for n, c in per_worker.items()}
    refused = {n: sum(s.get("429", 0) for s in c.values()) for n, c in per_worker.items()}
    figures = (
        f"{elapsed:.0f}s, sandbox throttled {stats['throttled']} of {stats['requests']}; "
        f"calls {calls}, 429s seen {refused}"
    )
    print(figures)
    got = {}
    for key in expected:
        ev = terminal.state[key][1]
        got[key] = ev.data.reason.value if isinstance(ev.data, Failure) else "attached"
    # Two workers race the two copies of an invoice (different item keys, so different
    # partitions): either may be the one attached, the other is the duplicate.
    swapped = {k for k in expected if got[k] != expected[k]}
    assert all("duplicate" in (got[k], expected[k]) for k in swapped), figures
    assert Counter(got.values()) == Counter(expected.values()), figures
    assert sorted(inventory) == sorted(k for k, v in got.items() if v == "attached")
    assert all((v.bills, v.attachments) == (1, 1) for v in inventory.values())
    assert elapsed >= RUN_AT_LEAST, f"the run must press on the limit for 2 minutes: {figures}"
    assert all(n > 0 for n in calls.values()), f"both workers call Sage: {figures}"
    assert stats["throttled"] <= 1, f"together within the business's limit: {figures}"
