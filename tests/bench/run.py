"""``make bench``: the benchmark of record. Figures are printed, never asserted.

In one run, on the embedded broker unless ``BILLSTREAM_KAFKA_URL`` is set, on the same items:

- bare: a 4-hop Faust chain (tests/bench/bare.py) with the worker's settings, items/s;
- pipeline: the billstream worker on the local ledger, items/s, its CPU ms per item (whole
  process; wall ms per stage from its /metrics), RSS at 10k items and at the end, and the
  bytes the log holds per item (every topic and changelog of the run, key + value);
- restart: the worker SIGKILLed after the run, a new one started: seconds to its first item;
- replay: items parked by a closed period, the period reopened, ``replay``: items/s;
- latency: p50/p95/p99 receipt → attached at a steady arrival of half the measured capacity;
- validation: items validated and GL-coded per second (pure domain, one core);
- ceiling: with Sage the bottleneck, the share of its limits put to use (tests/bench/ceiling.py;
  ``--no-ceiling`` skips it).

A table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from adapters.processes import free_port
from domain.errors import Reason
from domain.events import STAGES, Envelope, Stage
from domain.tenants import Tenants, load_tenants
from domain.validation import validate_item
from sandboxes.dext.samples import SampleItem, sample_items
from sandboxes.harness import LedgerHarness, harness_for
from streams.config import REPO_ROOT, Settings
from streams.demo import REOPEN_PERIOD, start_worker, stop_process, worker_env, write_tenants
from streams.kafka.publish import Publisher, received_event
from streams.kafka.topics import ensure_topics
from streams.ops.replay import ReplayFilter, replay
from streams.pipeline.runtime import kafka_for
from tests.bench.ceiling import ceiling_shares
from tests.bench.measure import Tail, cpu_seconds, log_bytes, rss_mb, topics_with_prefix

RUN = f"{dt.datetime.now(dt.UTC):%H%M%S}-{uuid.uuid4().hex[:4]}"
RESTART_ITEMS = 100
RSS_MARK = 10_000


def bench_validation(n: int) -> dict[str, float]:
    tenants = load_tenants(REPO_ROOT / "tenants.example.toml")
    items = sample_items(n)
    today = dt.date(2026, 11, 27)
    started = time.perf_counter()
    for s in items:
        validate_item(s.item, tenants.get(s.tenant), today=today)
    seconds = time.perf_counter() - started
    return {"items": n, "items_per_second": round(n / seconds)}


def events_of(samples: list[SampleItem]) -> list[Envelope]:
    return [
        received_event(s.tenant, s.item, source="bench", document=s.document_ref()) for s in samples
    ]


async def publish(settings: Settings, kafka_url: str, events: list[Envelope]) -> None:
    async with Publisher(settings, kafka_url) as publisher:
        for i in range(0, len(events), 5000):
            await publisher.send_many([(ev, Stage.RECEIVED) for ev in events[i : i + 5000]])


@dataclass
class Chain:
    """One thing under test on its own topics: how to start its worker process."""

    name: str
    settings: Settings
    kafka_url: str
    start_process: Callable[[], subprocess.Popen[bytes]]
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        proc = self.start_process()
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.started:
            stop_process(proc)

    @property
    def ends(self) -> list[str]:
        return [self.settings.topic(Stage.ATTACHED), self.settings.topic(Stage.FAILED)]


async def throughput(chain: Chain, events: list[Envelope]) -> tuple[dict[str, Any], Any]:
    """The backlog published first, then the worker: items/s from its first finished item."""
    await ensure_topics(chain.settings, chain.kafka_url)
    await publish(chain.settings, chain.kafka_url, events)
    keys = [ev.subject.encode() for ev in events]
    async with Tail(chain.kafka_url, chain.ends) as tail:
        proc = chain.start()
        figures: dict[str, Any] = {"items": len(keys)}
        cpu_first: float | None = None
        first: float | None = None
        deadline = time.monotonic() + 60 + len(keys) / 5
        while (done := tail.count(keys)) < len(keys):
            if proc.poll() is not None:
                raise RuntimeError(f"{chain.name} worker exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{chain.name}: {done} of {len(keys)} items after the deadline")
            if first is None and tail.arrived:
                first, cpu_first = min(tail.arrived.values()), cpu_seconds(proc.pid)
            if done >= RSS_MARK and "rss_mb_10k" not in figures:
                figures["rss_mb_10k"] = round(rss_mb(proc.pid))
            await asyncio.sleep(0.2)
        last = max(tail.arrived[k] for k in keys)
        first = first if first is not None else min(tail.arrived[k] for k in keys)
        cpu = cpu_seconds(proc.pid) - (cpu_first or 0.0)
        figures["items_per_second"] = round((len(keys) - 1) / max(last - first, 1e-6), 1)
        figures["cpu_ms_per_item"] = round(1000 * cpu / max(len(keys) - 1, 1), 2)
        figures["rss_mb_end"] = round(rss_mb(proc.pid))
    return figures, proc


def stage_ms(metrics_port: int) -> dict[str, float]:
    """Mean wall ms per item of each stage, from the worker's /metrics."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "billstream_stage_seconds":
            continue
        for sample in family.samples:
            stage = sample.labels.get("stage", "")
            if sample.name.endswith("_sum"):
                sums[stage] = sample.value
            elif sample.name.endswith("_count"):
                counts[stage] = sample.value
    return {s: round(1000 * sums[s] / counts[s], 2) for s in STAGES if counts.get(s)}


async def restart(chain: Chain, proc: Any, events: list[Envelope]) -> tuple[float, Any]:
    """SIGKILL the worker, send new items, start a new one: seconds to its first item."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    await publish(chain.settings, chain.kafka_url, events)
    keys = [ev.subject.encode() for ev in events]
    async with Tail(chain.kafka_url, chain.ends) as tail:
        await asyncio.sleep(1.0)  # the tail has caught up with what is already there
        started = time.monotonic()
        proc = chain.start()
        await tail.wait_for(keys[:1] if len(keys) == 1 else keys, within=300)
        first = min(tail.arrived[k] for k in keys)
    return round(first - started, 2), proc


async def replay_rate(
    chain: Chain, harness: LedgerHarness, tenants: Tenants, samples: list[SampleItem]
) -> dict[str, Any]:
    """Items parked by a closed period, then the period reopened and ``replay`` run."""
    dated = [s for s in samples if str(s.item.get("date", "")).startswith(REOPEN_PERIOD)]
    for tenant in tenants.all():
        harness.close_period(tenant, REOPEN_PERIOD)
    events = events_of(dated)
    await publish(chain.settings, chain.kafka_url, events)
    async with Tail(chain.kafka_url, chain.ends) as tail:
        await tail.wait_for([ev.subject.encode() for ev in events], within=600)
    for tenant in tenants.all():
        harness.open_period(tenant, REOPEN_PERIOD)
    async with Tail(chain.kafka_url, [chain.settings.topic(Stage.ATTACHED)]) as attached:
        started = time.monotonic()
        report = await replay(
            chain.settings, chain.kafka_url, ReplayFilter(reasons=frozenset({Reason.PERIOD_CLOSED}))
        )
        sent_at = time.monotonic()
        keys = [str(item["item"]).encode() for item in report.items]
        await attached.wait_for(keys, within=600)
        settled = time.monotonic()
    return {
        "parked": report.sent,
        "replay_items_per_second": round(report.sent / max(sent_at - started, 1e-6), 1),
        "replay_settled_items_per_second": round(report.sent / max(settled - started, 1e-6), 1),
    }


async def latency(chain: Chain, events: list[Envelope], rate: float) -> dict[str, float]:
    """Items sent one by one at ``rate``/s; receipt → end, as the tail sees it."""
    sent: dict[bytes, float] = {}
    async with (
        Tail(chain.kafka_url, chain.ends) as tail,
        Publisher(chain.settings, chain.kafka_url) as publisher,
    ):
        start = time.monotonic()
        for i, ev in enumerate(events):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            sent[ev.subject.encode()] = time.monotonic()
            await publisher.send(ev)
        await tail.wait_for(sent, within=300)
        waits = sorted(tail.arrived[k] - t for k, t in sent.items())
    q = statistics.quantiles(waits, n=100, method="inclusive")
    return {
        "rate": round(rate, 1),
        "items": len(waits),
        "p50_seconds": round(q[49], 3),
        "p95_seconds": round(q[94], 3),
        "p99_seconds": round(q[98], 3),
    }


def chain_settings(base: Settings, name: str, root: Path) -> Settings:
    data_dir = root / name
    data_dir.mkdir(parents=True, exist_ok=True)
    return base.model_copy(
        update={
            "topic_prefix": f"bench-{RUN}-{name}.",
            "app_id": f"bench-{RUN}-{name}",
            "data_dir": data_dir,
            "tenants_file": data_dir / "tenants.toml",
            "group_instance_id": f"bench-{RUN}-{name}-worker",
        }
    )


def bare_chain(base: Settings, kafka_url: str, root: Path) -> Chain:
    settings = chain_settings(base, "bare", root)
    env = worker_env(settings, kafka_url)
    env["BILLSTREAM_GROUP_INSTANCE_ID"] = str(settings.group_instance_id)

    def start() -> subprocess.Popen[bytes]:
        with open(settings.data_dir / "worker.log", "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "tests.bench.bare"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
            )

    return Chain("bare", settings, kafka_url, start)


def pipeline_chain(
    base: Settings, kafka_url: str, root: Path, harness: LedgerHarness, tenants: Tenants
) -> tuple[Chain, int]:
    settings = chain_settings(base, "pipeline", root)
    harness.start(settings.data_dir, tenants)
    write_tenants(settings.tenants_file, tenants, harness, [])
    port = free_port("127.0.0.1")
    env = harness.env() | {"BILLSTREAM_GROUP_INSTANCE_ID": str(settings.group_instance_id)}

    def start() -> subprocess.Popen[bytes]:
        log = settings.data_dir / "worker.log"
        return start_worker(settings, kafka_url, log, env, metrics_port=port)

    return Chain("pipeline", settings, kafka_url, start), port


async def bench_bare(base: Settings, kafka_url: str, events: list[Envelope], root: Path) -> Any:
    bare = bare_chain(base, kafka_url, root)
    try:
        figures, _ = await throughput(bare, events)
    finally:
        bare.stop()
    return figures


async def bench_pipeline(
    base: Settings, kafka_url: str, samples: list[SampleItem], n: int, root: Path
) -> dict[str, Any]:
    tenants = load_tenants(base.tenants_file)
    main, after = samples[:n], samples[n:]
    harness = harness_for("local")
    pipeline, port = pipeline_chain(base, kafka_url, root, harness, tenants)
    figures: dict[str, Any] = {}
    try:
        pipe_figures, proc = await throughput(pipeline, events_of(main))
        pipe_figures["stage_ms"] = stage_ms(port)
        topics = await topics_with_prefix(
            kafka_url, pipeline.settings.topic_prefix, pipeline.settings.app_id
        )
        pipe_figures["bytes_per_item"] = round(await log_bytes(kafka_url, topics) / n)
        figures["pipeline"] = pipe_figures
        restart_events, after = events_of(after[:RESTART_ITEMS]), after[RESTART_ITEMS:]
        figures["restart_seconds"], proc = await restart(pipeline, proc, restart_events)
        figures["replay"] = await replay_rate(pipeline, harness, tenants, after[: n // 2])
        after = after[n // 2 :]  # the period is open again
        rate = pipe_figures["items_per_second"] / 2
        count = max(50, min(len(after), int(rate * 20)))
        figures["latency"] = await latency(pipeline, events_of(after[:count]), rate)
        figures["items_sent"] = n + RESTART_ITEMS + n // 2 + count
    finally:
        pipeline.stop()
        harness.stop()
    return figures


def broker_bytes(settings: Settings) -> int:
    """What the embedded broker keeps on disk for a run, once it has stopped (its snapshot)."""
    return sum(f.stat().st_size for f in settings.broker_dir.rglob("*") if f.is_file())


def bench_chains(base: Settings, n: int, root: Path) -> dict[str, Any]:
    """The bare chain, then the pipeline; on the embedded broker each gets a broker of its
    own, so neither inherits the other's log and the pipeline's snapshot can be weighed."""
    samples = sample_items(n + RESTART_ITEMS + n // 2 + 3000)
    events = events_of(samples[:n])
    figures: dict[str, Any] = {}
    bare_base = base.model_copy(update={"data_dir": root / "bare-broker"})
    with kafka_for(bare_base) as kafka_url:
        figures["bare"] = asyncio.run(bench_bare(base, kafka_url, events, root))
    pipe_base = base.model_copy(update={"data_dir": root / "pipeline-broker"})
    with kafka_for(pipe_base) as kafka_url:
        figures |= asyncio.run(bench_pipeline(base, kafka_url, samples, n, root))
    if not base.kafka_url:
        stored = broker_bytes(pipe_base)
        figures["pipeline"]["stored_bytes_per_item"] = round(stored / figures["items_sent"])
    return figures


def summary(figures: dict[str, Any]) -> dict[str, Any]:
    bare, pipe = figures["bare"], figures["pipeline"]
    return {
        "items": pipe["items"],
        "bare_items_per_second": bare["items_per_second"],
        "pipeline_items_per_second": pipe["items_per_second"],
        "ratio": round(pipe["items_per_second"] / bare["items_per_second"], 3),
        "worker_cpu_ms_per_item": pipe["cpu_ms_per_item"],
        "bare_cpu_ms_per_item": bare["cpu_ms_per_item"],
        "stage_ms": pipe["stage_ms"],
        "bytes_per_item": pipe["bytes_per_item"],
        "stored_bytes_per_item": pipe.get("stored_bytes_per_item"),
        "worker_rss_mb_10k": pipe.get("rss_mb_10k"),
        "worker_rss_mb_end": pipe["rss_mb_end"],
        "restart_seconds": figures["restart_seconds"],
        "replay_items_per_second": figures["replay"]["replay_items_per_second"],
        "replay_settled_items_per_second": figures["replay"]["replay_settled_items_per_second"],
        "replay_parked": figures["replay"]["parked"],
        "latency_rate": figures["latency"]["rate"],
        "p50_seconds": figures["latency"]["p50_seconds"],
        "p95_seconds": figures["latency"]["p95_seconds"],
        "p99_seconds": figures["latency"]["p99_seconds"],
        "validation_items_per_second": figures["validation"]["items_per_second"],
        "broker": figures["broker"],
        **{
            f"{ledger.replace('-', '_')}_ceiling_share": shown["share"]
            for ledger, shown in figures.get("ceiling", {}).items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=int(os.environ.get("ITEMS", "5000")))
    parser.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the Sage-as-the-ceiling runs (tests/bench/ceiling.py, about 2 minutes)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="billstream-bench-") as tmp:
        root = Path(tmp)
        base = Settings(data_dir=root, log_level="WARNING")
        figures = bench_chains(base, args.items, root)
        figures["broker"] = "kafka" if base.kafka_url else "embedded noida-db"
        if not args.no_ceiling:
            figures["ceiling"] = ceiling_shares(root / "ceiling")
    figures["validation"] = bench_validation(max(args.items, 2000))
    line = summary(figures)
    width = max(len(k) for k in line)
    for key, value in line.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(line))


if __name__ == "__main__":
    main()
