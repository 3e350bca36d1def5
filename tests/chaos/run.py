"""``make chaos``: invoices through a flaky Sage while workers are SIGKILLed and the broker
restarts; then nothing may be lost and nothing posted twice.

For each ledger (the Intacct and the Sage Accounting sandboxes, with latency and 10 % faults):
publish N sample items (whole cycles: credit notes, bad items, duplicates) with one period
closed, SIGKILL the worker K times at random moments (during writes included) and start
another each time, restart the broker once, then reopen the period and replay what it held.
Sage Accounting's rotating refresh token can be left spent by a kill (no client can close
that window): as an operator would, the run reconnects and replays ``auth``.

Prints a table and one JSON line per ledger, with ``items``, ``attached``, ``parked`` (by
reason), ``lost``, ``duplicate_bills``, ``duplicate_attachments``, ``kills`` and
``broker_restarts``; exits 1 unless every item is attached or parked with a reason, none is
lost and none doubled. On the embedded broker by default; ``--kafka-home`` or CI's genuine
Kafka (``tools/kafka/kafka.sh``) for Apache Kafka, which the run starts and restarts itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from domain.errors import Reason
from domain.events import Stage
from domain.tenants import load_tenants
from sandboxes.harness import LedgerHarness, harness_for
from streams.config import REPO_ROOT, Settings
from streams.demo import REOPEN_PERIOD, Terminal, stop_process, write_tenants
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.topics import ensure_topics
from streams.ops.replay import ReplayFilter, replay
from tests.integration.helpers import Rig, events_for, publish, sample_items
from tests.support import run_settings

KAFKA_SH = REPO_ROOT / "tools" / "kafka" / "kafka.sh"


class Broker:
    """The broker the run restarts: the embedded one, or Apache Kafka through kafka.sh."""

    def __init__(self, root: Path, genuine: bool) -> None:
        self.root = root
        self.genuine = genuine
        self.port = free_port()
        self.embedded: EmbeddedBroker | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.genuine:
            subprocess.run(
                [str(KAFKA_SH), "start", str(self.root), str(self.port)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        else:
            self.embedded = EmbeddedBroker(self.root, port=self.port).start()

    def stop(self) -> None:
        if self.genuine:
            subprocess.run([str(KAFKA_SH), "stop", str(self.root)], check=False)
        elif self.embedded is not None:
            self.embedded.stop()

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1


def harness_of(ledger: str) -> LedgerHarness:
    if ledger == "intacct":
        return harness_for("intacct", latency_ms=50.0, fail_rate=0.1)
    return harness_for(
        "sage-accounting",
        sandbox_args=["--latency-ms", "50", "--fail-rate", "0.1"],
        calls_per_minute=3000,
    )


def run_ledger(ledger: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    broker = Broker(root / "broker", genuine=args.genuine)
    broker.start()
    settings = run_settings(root, broker.url, "chaos")
    settings.data_dir.mkdir(parents=True)
    tenants = load_tenants(settings.tenants_file)
    harness = harness_of(ledger)
    harness.start(settings.data_dir, tenants)
    wired = settings.model_copy(update={"tenants_file": settings.data_dir / "tenants.toml"})
    write_tenants(wired.tenants_file, tenants, harness, [])
    rig = Rig(wired, harness, harness.env())
    worker = None
    kills = 0
    try:
        asyncio.run(ensure_topics(wired, broker.url))
        for tenant in tenants.all():
            harness.close_period(tenant, REOPEN_PERIOD)
        items = sample_items(args.items)
        events = events_for(items)
        worker = rig.start_worker("worker-0.log")
        asyncio.run(publish(wired, events))
        restart_at = args.kills // 2
        for n in range(1, args.kills + 1):
            time.sleep(rng.uniform(args.min_gap, args.max_gap))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            if n == restart_at:
                broker.restart()
            worker = rig.start_worker(f"worker-{n}.log")
        keys = {e.subject: 1 for e in events}
        terminal = asyncio.run(_settle(wired, keys, args.timeout))
        for tenant in tenants.all():
            harness.open_period(tenant, REOPEN_PERIOD)
        terminal = asyncio.run(_replay(wired, keys, terminal, Reason.PERIOD_CLOSED, args.timeout))
        if ledger == "sage-accounting" and _reasons(terminal, keys)[Reason.AUTH.value]:
            for tenant in tenants.all():
                harness.reconnect(tenant, Path(wired.data_dir) / "tokens")  # type: ignore[attr-defined]
            terminal = asyncio.run(_replay(wired, keys, terminal, Reason.AUTH, args.timeout))
        inventory = rig.inventory()
    finally:
        stop_process(worker)
        harness.stop()
        broker.stop()
    ended = _reasons(terminal, keys)
    return {
        "ledger": ledger,
        "broker": "apache-kafka" if args.genuine else "noida-db",
        "items": len(keys),
        "attached": ended.pop("attached", 0),
        "parked": dict(sorted(ended.items())),
        "lost": sum(1 for k in keys if k not in terminal),
        "duplicate_bills": sum(1 for v in inventory.values() if v.bills > 1),
        "duplicate_attachments": sum(1 for v in inventory.values() if v.attachments > 1),
        "bills_without_attachment": sum(1 for v in inventory.values() if v.attachments == 0),
        "kills": kills,
        "broker_restarts": broker.restarts,
    }


async def _settle(settings: Settings, keys: dict[str, int], within: float) -> dict[str, Any]:
    async with Terminal(settings, str(settings.kafka_url)) as terminal:
        try:
            await terminal.wait(keys, within)
        except TimeoutError as exc:
            print(f"chaos: {exc}", file=sys.stderr)
        return dict(terminal.state)


async def _replay(
    settings: Settings,
    keys: dict[str, int],
    state: dict[str, Any],
    reason: Reason,
    within: float,
) -> dict[str, Any]:
    report = await replay(
        settings, str(settings.kafka_url), ReplayFilter(reasons=frozenset({reason}))
    )
    attempts = {k: state[k][0] if k in state else 1 for k in keys}
    attempts.update({i["item"]: int(i["attempt"]) for i in report.items})
    return await _settle(settings, attempts, within)


def _reasons(state: dict[str, Any], keys: dict[str, int]) -> Counter[str]:
    out: Counter[str] = Counter()
    for key in keys:
        if key in state:
            event = state[key][1]
            out["attached" if event.stage is Stage.ATTACHED else event.data.reason.value] += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--ledger", action="append", choices=["intacct", "sage-accounting"])
    parser.add_argument(
        "--min-gap", type=float, default=1.0, help="seconds between kills, at least"
    )
    parser.add_argument("--max-gap", type=float, default=5.0, help="seconds between kills, at most")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument(
        "--genuine", action="store_true", help="Apache Kafka via tools/kafka/kafka.sh (Java)"
    )
    args = parser.parse_args()
    results = []
    for ledger in args.ledger or ["intacct", "sage-accounting"]:
        root = Path(tempfile.mkdtemp(prefix=f"billstream-chaos-{ledger}-"))
        try:
            results.append(run_ledger(ledger, args, root))
        finally:
            if not os.environ.get("BILLSTREAM_KEEP_CHAOS"):
                shutil.rmtree(root, ignore_errors=True)
    for r in results:
        print(f"{r['ledger']} on {r['broker']}")
        for name in (
            "items",
            "attached",
            "lost",
            "duplicate_bills",
            "duplicate_attachments",
            "bills_without_attachment",
            "kills",
            "broker_restarts",
        ):
            print(f"  {name:<26} {r[name]}")
        for reason, n in r["parked"].items():
            print(f"  parked {reason:<19} {n}")
    for r in results:
        print(json.dumps(r))
    ok = all(
        r["lost"] == r["duplicate_bills"] == r["duplicate_attachments"] == 0
        and r["attached"] + sum(r["parked"].values()) == r["items"]
        for r in results
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
