"""The demo: embedded broker, a worker process, a ledger, the sample items, a summary.

``run_demo`` is what ``billstream demo`` and the end-to-end tests run: it owns every process
it starts (broker, worker, sandboxes) and stops them all, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomli_w
from aiokafka import AIOKafkaConsumer

from adapters.dext.api import DextApiConfig, poll_once
from adapters.dext.files import read_file
from adapters.dext.folder import ExportFolder, FolderState
from domain.errors import Reason
from domain.events import Envelope, Failure, Stage
from domain.models import item_key
from domain.tenants import Tenants, load_tenants, parse_tenants
from sandboxes.dext.process import DextSandboxProcess
from sandboxes.dext.samples import (
    EINVOICE_TENANT,
    einvoice_files,
    einvoice_tenant_toml,
    sample_items,
)
from sandboxes.harness import LedgerHarness, harness_for
from streams.config import Settings
from streams.kafka.broker import bootstrap_of
from streams.kafka.publish import Publisher, received_event
from streams.kafka.topics import cursor_store, ensure_topics
from streams.ops.replay import ReplayFilter, replay
from streams.pipeline.runtime import kafka_for

# The month the period-reopen scenario closes: the samples have invoices dated in it.
REOPEN_PERIOD = "2026-09"


@dataclass
class DemoResult:
    received: int = 0
    attached: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    bills: int = 0
    attachments: int = 0
    duplicates: int = 0
    replayed: int = 0
    seconds: float = 0.0
    items_per_second: float = 0.0
    ledger: str = "local"
    source: str = "dext-api"
    scenario: str = "basic"
    data_dir: str = ""
    topic_prefix: str = ""
    examples: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # the ledger's calls per bill over the run's second half (see _Halfway)
    steady: dict[str, Any] = field(default_factory=dict)
    inventory: dict[str, tuple[int, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "received": self.received,
            "attached": self.attached,
            "failed": self.failed,
            "bills": self.bills,
            "attachments": self.attachments,
            "duplicates": self.duplicates,
            "replayed": self.replayed,
            "seconds": round(self.seconds, 2),
            "items_per_second": round(self.items_per_second, 1),
            "ledger": self.ledger,
            "source": self.source,
            "scenario": self.scenario,
            "data_dir": self.data_dir,
            "topic_prefix": self.topic_prefix,
            "examples": self.examples,
        }
        out.update(self.extra)
        return out


class Terminal:
    """Tails attached + failed and knows each item's latest end state."""

    def __init__(self, settings: Settings, kafka_url: str) -> None:
        self.settings = settings
        self.kafka_url = kafka_url
        self.state: dict[str, tuple[int, Envelope]] = {}  # key -> (attempt, terminal event)
        self.first_seen: float | None = None  # monotonic time of the first terminal event
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Terminal:
        self._consumer = AIOKafkaConsumer(
            self.settings.topic(Stage.ATTACHED),
            self.settings.topic(Stage.FAILED),
            bootstrap_servers=bootstrap_of(self.kafka_url),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            metadata_max_age_ms=1000,
        )
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait(
        self,
        expected: dict[str, int],
        within: float,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Until every key has a terminal event at (at least) its expected attempt."""
        assert self._consumer is not None
        deadline = time.monotonic() + within
        done = self._done(expected)
        while done < len(expected):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {done} of {len(expected)} items finished in {within:.0f}s"
                )
            batch = await self._consumer.getmany(timeout_ms=500)
            if batch and self.first_seen is None:
                self.first_seen = time.monotonic()
            for records in batch.values():
                for record in records:
                    try:
                        ev = Envelope.from_bytes(record.value)
                    except ValueError:
                        continue  # not an event: the worker parks it, the count needs none
                    seen = self.state.get(ev.subject)
                    # At the same attempt, attached beats failed (a late-arriving failure
                    # of an earlier try cannot undo an attachment).
                    rank = (ev.attempt, ev.stage is Stage.ATTACHED)
                    if seen is None or rank >= (seen[0], seen[1].stage is Stage.ATTACHED):
                        self.state[ev.subject] = (ev.attempt, ev)
            now = self._done(expected)
            if progress and now != done:
                progress(now - done)
            done = now

    def _done(self, expected: dict[str, int]) -> int:
        return sum(
            1
            for key, attempt in expected.items()
            if key in self.state and self.state[key][0] >= attempt
        )

    def outcome(self, keys: list[str]) -> tuple[int, Counter[str]]:
        attached, failed = 0, Counter[str]()
        for key in keys:
            ev = self.state[key][1]
            if ev.stage is Stage.ATTACHED:
                attached += 1
            else:
                assert isinstance(ev.data, Failure)
                failed[ev.data.reason.value] += 1
        return attached, failed


# Copies of the sample set (any run past its size) share their originals' document, supplier,
# total and date: to the duplicate check they are re-sent invoices, rightly held. A load run
# holds them by number only, which their own numbers (suffix -c<k>) keep apart.
LOAD_DUPLICATE_RULES = {"rules": ["number_variant", "same_number"]}


def write_tenants(
    path: Path,
    tenants: Tenants,
    harness: LedgerHarness,
    document_hosts: list[str],
    *,
    copies: bool = True,
) -> None:
    """The tenants file of a run on ``harness``; with ``copies`` (sample copies among the
    items) the duplicate check holds by number only (``LOAD_DUPLICATE_RULES``)."""
    body: dict[str, Any] = {"tenants": {}}
    for tenant in tenants.all():
        data = tenant.model_dump(mode="json", exclude={"id", "duplicates"}, exclude_none=True)
        data["ledger"] = harness.ledger_config(tenant).model_dump(mode="json", exclude_none=True)
        data["document_hosts"] = sorted({*tenant.document_hosts, *document_hosts})
        rules = tenant.duplicate_rules.to_mapping()
        data["duplicates"] = {**rules, **LOAD_DUPLICATE_RULES} if copies else rules
        body["tenants"][tenant.id] = data
    path.write_text(tomli_w.dumps(body), encoding="utf-8")


# The settings a worker process must share with whoever starts it.
_WORKER_SETTINGS = (
    "data_dir",
    "tenants_file",
    "topic_prefix",
    "app_id",
    "partitions",
    "replication_factor",
    "session_timeout",
    "heartbeat_interval",
    "retry_attempts",
    "retry_max_seconds",
    "stage_concurrency",
    "log_level",
    "compression",
    "producer_linger_ms",
)


def worker_env(
    settings: Settings,
    kafka_url: str,
    extra: dict[str, str] | None = None,
    *,
    metrics_port: int = 0,
) -> dict[str, str]:
    env = {
        **os.environ,
        **(extra or {}),
        "BILLSTREAM_KAFKA_URL": kafka_url,
        "BILLSTREAM_METRICS_PORT": str(metrics_port),
    }
    for name in _WORKER_SETTINGS:
        env[f"BILLSTREAM_{name.upper()}"] = str(getattr(settings, name))
    return env


def _ledger_and_dext_env(harness: LedgerHarness, dext: DextSandboxProcess | None) -> dict[str, str]:
    """The ledger's credentials, and the Dext API's when the items come through it: the
    attach stage asks Dext for a fresh document link (the log keeps only a reference)."""
    env = harness.env()
    if dext is not None:
        env |= DextApiConfig.from_sandbox(dext.ready).env()
    return env


def start_worker(
    settings: Settings,
    kafka_url: str,
    log: Path,
    extra_env: dict[str, str] | None = None,
    *,
    metrics_port: int = 0,
    embedded: bool = False,
) -> subprocess.Popen[bytes]:
    """``billstream worker`` in its own process, sharing ``settings``; output to ``log``."""
    env = worker_env(settings, kafka_url, extra_env, metrics_port=metrics_port)
    if embedded:
        # Static membership only on the embedded broker (README, Known limits): a restarted
        # worker takes its partitions back at once, as under systemd.
        env["BILLSTREAM_GROUP_INSTANCE_ID"] = f"{settings.app_id}-worker"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class DemoOptions:
    items: int = 60
    scenario: str = "basic"
    ledger: str = "local"
    source: str = "dext-api"  # or "sample": straight from the sample files, no HTTP
    ledger_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"fail_rate": 0.2}
    data_dir: Path | None = None
    timeout: float = 600.0
    progress: bool = True
    metrics_port: int = 0  # the worker's /metrics port; 0 = a free one
    # Called once the worker has been started, before any item is sent (e.g. to wait for a
    # first scrape of its /metrics).
    before: Callable[[], Awaitable[None]] | None = None
    # Called once every item has finished, with the summary, while the worker (and so its
    # /metrics), the broker and the sandboxes are still up; they stop when it returns.
    hold: Callable[[DemoResult], Awaitable[None]] | None = None


async def _ingest(
    opts: DemoOptions,
    settings: Settings,
    kafka_url: str,
    tenants: Tenants,
    dext: DextSandboxProcess | None,
) -> int:
    """Send the items: over HTTP from the Dext sandbox (the poller), from the files, or
    (e-invoices) through the export folder source."""
    if opts.source == "einvoices":
        state = FolderState(settings.data_dir / "folder.sqlite")
        try:
            async with Publisher(settings, kafka_url) as publisher:
                folder = ExportFolder(
                    _drop(settings),
                    tenants=tenants,
                    sink=publisher,
                    state=state,
                    tenant=EINVOICE_TENANT,
                    settle=0.0,
                )
                return sum(r.published for r in await folder.scan_once())
        finally:
            state.close()
    if dext is None:
        events = [
            received_event(
                s.tenant,
                s.item,
                source="sample",
                document=s.document_ref(),
                origin=f"samples/{s.tenant}/{s.item['id']}",
            )
            for s in sample_items(opts.items)
        ]
        async with Publisher(settings, kafka_url) as publisher:
            await publisher.send_many([(ev, Stage.RECEIVED) for ev in events])
        return len(events)
    async with (
        Publisher(settings, kafka_url) as publisher,
        cursor_store(settings, kafka_url) as cursors,
    ):
        return await poll_once(
            publisher,
            tenants.all(),
            config=DextApiConfig.from_sandbox(dext.ready),
            cursors=cursors,
        )


async def _run(
    opts: DemoOptions,
    settings: Settings,
    kafka_url: str,
    harness: LedgerHarness,
    tenants: Tenants,
    ledger_env: dict[str, str],
    dext: DextSandboxProcess | None,
) -> DemoResult:
    from tqdm import tqdm

    result = DemoResult(
        ledger=opts.ledger,
        source=opts.source,
        scenario=opts.scenario,
        data_dir=str(settings.data_dir),
        topic_prefix=settings.topic_prefix,
    )
    await ensure_topics(settings, kafka_url)
    keys = _expected_keys(opts, settings)
    expected = dict.fromkeys(keys, 1)
    worker = start_worker(
        settings,
        kafka_url,
        settings.data_dir / "worker.log",
        ledger_env,
        metrics_port=opts.metrics_port,
        embedded=settings.kafka_url is None,
    )
    try:
        if opts.before is not None:
            await opts.before()
        started = time.monotonic()
        async with Terminal(settings, kafka_url) as terminal:
            ingest_started = time.monotonic()
            result.received = await _ingest(opts, settings, kafka_url, tenants, dext)
            ingest_seconds = time.monotonic() - ingest_started
            bar = tqdm(
                total=len(keys),
                desc="items",
                unit="item",
                disable=not opts.progress,
                file=sys.stderr,
            )
            halfway = _Halfway(harness, tenants, len(keys), bar.update)
            with bar:
                await terminal.wait(expected, opts.timeout, halfway.update)
            halfway.report(result)
            if opts.scenario == "period-reopen":
                for tenant in tenants.all():
                    harness.open_period(tenant, REOPEN_PERIOD)
                report = await replay(
                    settings,
                    kafka_url,
                    ReplayFilter(reasons=frozenset({Reason.PERIOD_CLOSED})),
                )
                result.replayed = report.sent
                for item in report.items:
                    expected[item["item"]] = int(item["attempt"])
                bar = tqdm(
                    total=report.sent,
                    desc="replayed",
                    unit="item",
                    disable=not opts.progress,
                    file=sys.stderr,
                )
                with bar:
                    await terminal.wait(expected, opts.timeout, bar.update)
            finished = time.monotonic()
            result.seconds = finished - started
            # Throughput is measured once the worker is up: from the first finished item.
            steady = finished - (terminal.first_seen or started)
            result.items_per_second = (result.received - 1) / steady if steady > 0 else 0.0
            result.attached, failed = terminal.outcome(keys)
            result.failed = dict(sorted(failed.items()))
            result.examples = _examples(terminal, keys)
        if opts.hold is not None:
            _summarise(result, harness, tenants, dext, ingest_seconds)
            await opts.hold(result)
    finally:
        stop_process(worker)
    # Again once the worker has stopped: the ledgers as the run left them.
    _summarise(result, harness, tenants, dext, ingest_seconds)
    return result


class _Halfway:
    """The ledger's calls and bills once half the items have finished, for the figures of
    the second half: steady state, with the suppliers known and the reference data read."""

    def __init__(
        self,
        harness: LedgerHarness,
        tenants: Tenants,
        items: int,
        progress: Callable[[int], object],
    ) -> None:
        self._harness = harness
        self._tenants = tenants
        self._half = items // 2
        self._progress = progress
        self._done = 0
        self._at_half: dict[str, int] | None = None
        # and when nine tenths had finished, with the time of both: the ledger's calls a
        # second while the run is neither warming up nor draining its last items
        self._late = items * 9 // 10
        self._half_at = self._late_at = 0.0
        self._at_late: dict[str, int] | None = None

    def _counts(self) -> dict[str, int]:
        extra = self._harness.extra_summary()
        held = [inv for t in self._tenants.all() for inv in self._harness.inventory(t).values()]
        # Bills run ahead of their attachments: the half-way line cuts some items between
        # the two, so each bill counts half when made and half when its document is attached.
        counts = {"bills": sum(i.bills for i in held) + sum(i.attachments for i in held)}
        for name in ("sage_requests", "sage_functions"):
            if isinstance(extra.get(name), int):
                counts[name] = extra[name]
        for company, n in (extra.get("sage_requests_by_company") or {}).items():
            counts[f"company:{company}"] = int(n)
        return counts

    def update(self, n: int) -> None:
        self._progress(n)
        self._done += n
        if self._at_half is None and self._half and self._done >= self._half:
            self._at_half, self._half_at = self._counts(), time.monotonic()
        if self._at_late is None and self._late > self._half and self._done >= self._late:
            self._at_late, self._late_at = self._counts(), time.monotonic()

    def report(self, result: DemoResult) -> None:
        if self._at_half is None or "sage_requests" not in self._at_half:
            return
        end = self._counts()
        bills = (end["bills"] - self._at_half["bills"]) / 2
        if bills <= 0:
            return
        for name, label in (("sage_requests", "requests"), ("sage_functions", "functions")):
            if name in end and name in self._at_half:
                per_bill = (end[name] - self._at_half[name]) / bills
                result.steady[f"steady_{label}_per_bill"] = round(per_bill, 3)
        late, seconds = self._at_late, self._late_at - self._half_at
        if late is not None and seconds > 0:
            rate = (late["sage_requests"] - self._at_half["sage_requests"]) / seconds
            result.steady["steady_requests_per_second"] = round(rate, 3)
            result.steady["steady_requests_per_second_by_company"] = {
                key.partition(":")[2]: round((n - self._at_half.get(key, 0)) / seconds, 3)
                for key, n in late.items()
                if key.startswith("company:")
            }


def _drop(settings: Settings) -> Path:
    return settings.data_dir / "einvoices"


def _expected_keys(opts: DemoOptions, settings: Settings) -> list[str]:
    """The items the run waits for: both Dext sources serve exactly sample_items(N); the
    e-invoice folder gives one item per file, read here as the folder will read it."""
    if opts.source != "einvoices":
        return [item_key(s.tenant, str(s.item["id"])) for s in sample_items(opts.items)]
    keys: list[str] = []
    for path in sorted(_drop(settings).iterdir()):
        read = read_file(path.name, path.name, path.read_bytes(), None)
        keys += [item_key(EINVOICE_TENANT, str(ri.item["id"])) for ri in read.items]
    return keys


def _einvoice_tenants(settings: Settings) -> Tenants:
    """The e-invoice tenant, its documents in the folder the samples are dropped in."""
    drop = _drop(settings)
    drop.mkdir(parents=True, exist_ok=True)
    for path in einvoice_files():
        shutil.copy(path, drop / path.name)
    grant = f"document_dirs = [{str(drop)!r}]\n"
    text = einvoice_tenant_toml().replace("max_invoice_age_days", grant + "max_invoice_age_days")
    return parse_tenants(text, "sandboxes/dext/samples/einvoices/tenant.toml")


def _summarise(
    result: DemoResult,
    harness: LedgerHarness,
    tenants: Tenants,
    dext: DextSandboxProcess | None,
    ingest_seconds: float,
) -> None:
    inventory: dict[str, tuple[int, int]] = {}
    for tenant in tenants.all():
        for key, inv in harness.inventory(tenant).items():
            inventory[key] = (inv.bills, inv.attachments)
    result.inventory = inventory
    result.bills = sum(b for b, _ in inventory.values())
    result.attachments = sum(a for _, a in inventory.values())
    result.duplicates = sum(b - 1 for b, _ in inventory.values() if b > 1)
    result.extra = harness.extra_summary()
    result.extra.update(result.steady)
    result.extra["ingest_seconds"] = round(ingest_seconds, 2)
    if dext is not None:
        result.extra["dext_requests"] = dext.stats().get("requests", 0)


def _examples(terminal: Terminal, keys: list[str]) -> dict[str, str]:
    """One attached and one failed item key, for ``billstream audit``."""
    out: dict[str, str] = {}
    for key in keys:
        ev = terminal.state[key][1]
        name = "attached" if ev.stage is Stage.ATTACHED else "failed"
        out.setdefault(name, key)
    return out


def run_demo(opts: DemoOptions, base: Settings | None = None) -> DemoResult:
    base = base or Settings()
    data_dir = opts.data_dir or base.data_dir / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    tenants = load_tenants(base.tenants_file)
    settings = base.model_copy(
        update={"data_dir": data_dir, "tenants_file": data_dir / "tenants.toml"}
    )
    if base.kafka_url:
        # A shared Kafka: give this run its own topics and consumer group.
        run = f"{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
        settings = settings.model_copy(
            update={"topic_prefix": f"demo-{run}.", "app_id": f"billstream-demo-{run}"}
        )
    if opts.source == "einvoices":
        tenants = _einvoice_tenants(settings)
    harness = harness_for(opts.ledger, **opts.ledger_options)
    dext: DextSandboxProcess | None = None
    harness.start(data_dir, tenants)
    try:
        via_http = opts.source == "dext-api"
        copies = opts.source != "einvoices" and opts.items > len(sample_items())
        write_tenants(settings.tenants_file, tenants, harness, [], copies=copies)
        if via_http:
            dext = DextSandboxProcess(
                ["--items", str(opts.items), "--tenants", str(settings.tenants_file)],
                log_path=data_dir / "dext-sandbox.log",
            ).start()
            # The worker may fetch documents from the Dext sandbox's own port, nothing else.
            dext_host = f"127.0.0.1:{urlsplit(dext.url).port}"
            write_tenants(settings.tenants_file, tenants, harness, [dext_host], copies=copies)
        if opts.scenario == "period-reopen":
            for tenant in tenants.all():
                harness.close_period(tenant, REOPEN_PERIOD)
        with kafka_for(settings) as kafka_url:
            return asyncio.run(
                _run(
                    opts,
                    settings,
                    kafka_url,
                    harness,
                    tenants,
                    _ledger_and_dext_env(harness, dext),
                    dext,
                )
            )
    finally:
        if dext is not None:
            dext.stop()
        with contextlib.suppress(Exception):
            harness.stop()
