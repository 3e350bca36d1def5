"""``make fuzz``: hostile items through push (HTTP), the export folder and validation.

Prints counts by HTTP status and by outcome, then one JSON line. The goals: no 500, no
crash, no hang, and every item a source accepted ends attached or in ``ap.failed`` with a
reason, read back from the log (not assumed). Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from adapters.dext.folder import ExportFolder, FolderState
from adapters.dext.push import PushEndpoint, PushState, signed_headers
from adapters.dext.web import start_app
from adapters.documents import DocumentFetcher
from domain.tenants import Tenants, load_tenants
from domain.validation import validate_item
from sandboxes.dext.samples import SAMPLES_DIR
from streams.config import REPO_ROOT, Settings
from streams.demo import Terminal, stop_process
from streams.demo import start_worker as start_worker_process
from streams.kafka.broker import EmbeddedBroker
from streams.kafka.publish import Publisher
from tests.fuzz.hostile import Hostile, Item, hostile_headers
from tests.integration.helpers import prepare
from tests.support import run_settings

SECRET = "fuzzing-secret-of-enough-length"
TODAY_TENANT_FILE = REPO_ROOT / "tenants.example.toml"
CSV_HEADER = [
    "ID",
    "Date",
    "Due Date",
    "Supplier",
    "Invoice Number",
    "Currency",
    "Total",
    "Tax",
    "Description",
    "Category",
]
CSV_FIELDS = [
    "id",
    "date",
    "due_date",
    "payee",
    "invoice_number",
    "currency",
    "total_amount",
    "vat_amount",
    "description",
    "category",
]


class RecordingPublisher:
    """The real publisher, remembering the key of every item it put on the log."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.keys: set[str] = set()

    async def publish_received(self, tenant_id: str, item: Any, **kw: Any) -> str:
        key = await self.publisher.publish_received(tenant_id, item, **kw)
        self.keys.add(key)
        return key


def fuzz_validation(hostile: Hostile, tenants: Tenants, count: int) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    crashes: list[str] = []
    for tenant_id, item in hostile.items(count):
        try:
            result = validate_item(item, tenants.get(tenant_id), today=time_today())
        except Exception as exc:  # the goal is none: count and show them
            crashes.append(f"{item.get('id')!r}: {type(exc).__name__}: {exc}"[:300])
            continue
        outcomes["ok" if result.ok else (result.reason.value if result.reason else "?")] += 1
        if any(p.code == "internal_error" for p in result.problems):
            crashes.append(f"{item.get('id')!r}: internal_error")
    return {
        "items": count,
        "outcomes": dict(outcomes),
        "crashes": len(crashes),
        "examples": crashes[:5],
    }


def time_today() -> Any:
    import datetime as dt

    return dt.date(2026, 11, 27)


async def fuzz_push(
    url: str, hostile: Hostile, count: int, rng: random.Random
) -> tuple[Counter[int], int, list[str]]:
    statuses: Counter[int] = Counter()
    hangs = 0
    accepted: list[str] = []
    sem = asyncio.Semaphore(8)

    async def send(client: httpx.AsyncClient, body: bytes, over: dict[str, Any]) -> None:
        nonlocal hangs
        headers: dict[str, Any] = signed_headers("acme-uk", SECRET, body) | over
        async with sem:
            try:
                response = await client.post(url, content=body, headers=headers, timeout=20)
            except httpx.TimeoutException:
                hangs += 1
                return
        statuses[response.status_code] += 1
        if response.status_code == 202:
            accepted.extend(i["key"] for i in response.json()["items"] if i["status"] == "accepted")

    async with httpx.AsyncClient() as client:
        tasks = []
        batch: list[Item] = []
        for n, (_, item) in enumerate(hostile.items(count)):
            item["id"] = (
                item["id"] if not isinstance(item["id"], str) else item["id"].replace("FZ-", "FP-")
            )
            batch.append(item)
            if len(batch) >= rng.randint(1, 4):
                body = _dumps(batch if len(batch) > 1 else batch[0])
                tasks.append(send(client, body, {}))
                batch = []
            if n % 50 == 0:
                for _label, over in hostile_headers(rng):
                    tasks.append(send(client, _dumps({"id": f"H-{n}"}), over))
        if batch:
            tasks.append(send(client, _dumps(batch), {}))
        await asyncio.gather(*tasks)
    return statuses, hangs, accepted


def _dumps(value: Any) -> bytes:
    try:
        return json.dumps(value).encode()
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True).encode()


def write_folder(root: Path, hostile: Hostile, count: int) -> None:
    tenant_dir = root / "acme-uk"
    tenant_dir.mkdir(parents=True)
    items = [item for _, item in hostile.items(count)]
    for item in items:
        if isinstance(item.get("id"), str):
            item["id"] = item["id"].replace("FZ-", "FF-")
    # A document beside each item, found by its id as Dext's export names them: the items
    # that pass validation then go all the way to attached.
    pdf = next(SAMPLES_DIR.rglob("*.pdf")).read_bytes()
    for item in items:
        if isinstance(item.get("id"), str) and item["id"].strip().isprintable():
            with contextlib.suppress(OSError, ValueError):
                (tenant_dir / f"{item['id'].strip()}.pdf").write_bytes(pdf)
    half = len(items) // 2
    for n in range(0, half, 20):
        (tenant_dir / f"items-{n:05d}.json").write_bytes(_dumps(items[n : n + 20]))
    for n in range(half, len(items), 50):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_HEADER)
        for item in items[n : n + 50]:
            writer.writerow(["" if item.get(f) is None else str(item.get(f)) for f in CSV_FIELDS])
        (tenant_dir / f"export-{n:05d}.csv").write_text(out.getvalue(), errors="surrogatepass")


async def run(args: argparse.Namespace, settings: Settings, tenants: Tenants) -> dict[str, Any]:
    rng = random.Random(args.seed)
    kafka_url = str(settings.kafka_url)
    folder_root = settings.data_dir / "export"
    write_folder(folder_root, Hostile(args.seed + 1), args.folder_items)
    async with Publisher(settings, kafka_url) as publisher:
        recording = RecordingPublisher(publisher)
        state = PushState(settings.data_dir / "push.sqlite")
        endpoint = PushEndpoint(
            tenants=tenants,
            secrets={"acme-uk": [SECRET]},
            sink=recording,
            state=state,
            documents=DocumentFetcher(allowed_dirs=[]),
        )
        runner, base = await start_app(endpoint.app())
        try:
            statuses, hangs, accepted = await fuzz_push(
                f"{base}/v1/items", Hostile(args.seed), args.push_items, rng
            )
        finally:
            await runner.cleanup()
            state.close()
        folder_state = FolderState(settings.data_dir / "folder.sqlite")
        try:
            folder = ExportFolder(
                folder_root,
                tenants=tenants,
                sink=recording,
                state=folder_state,
                settle=0,
                document_roots=[folder_root],
            )
            reports = await folder.scan_once()
        finally:
            folder_state.close()
    expected = {key: 1 for key in recording.keys}
    outcomes: Counter[str] = Counter()
    lost = 0
    async with Terminal(settings, kafka_url) as terminal:
        with contextlib.suppress(TimeoutError):  # what is missing is counted as lost below
            await terminal.wait(expected, within=args.timeout)
        for key in expected:
            seen = terminal.state.get(key)
            if seen is None:
                lost += 1
                continue
            event = seen[1]
            outcomes[
                "attached" if event.type.endswith("attached") else event.data.reason.value
            ] += 1  # type: ignore[union-attr]
    return {
        "push_requests": sum(statuses.values()),
        "push_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "push_500": sum(v for k, v in statuses.items() if k >= 500 and k != 503),
        "push_503": statuses.get(503, 0),
        "hangs": hangs,
        "push_accepted": len(accepted),
        "folder_files": len(reports),
        "folder_published": sum(r.published for r in reports),
        "folder_problems": sum(len(r.problems) for r in reports),
        "accepted": len(expected),
        "outcomes": dict(outcomes),
        "lost": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000, help="validation items")
    parser.add_argument("--push-items", type=int, default=6_000)
    parser.add_argument("--folder-items", type=int, default=4_000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    tenants = load_tenants(TODAY_TENANT_FILE)
    started = time.monotonic()
    figures: dict[str, Any] = {
        "validation": fuzz_validation(Hostile(args.seed), tenants, args.items)
    }
    tmp = Path(tempfile.mkdtemp(prefix="billstream-fuzz-"))
    try:
        external = os.environ.get("BILLSTREAM_KAFKA_URL")
        broker = None if external else EmbeddedBroker(tmp / "broker").start()
        settings = _settings(tmp, external or broker.url)  # type: ignore[union-attr]
        harness = prepare(settings)
        # The worker may read documents from the export folder, as a deployment's would.
        env = harness.env() | {
            "BILLSTREAM_DOCUMENT_DIRS": json.dumps([str(settings.data_dir / "export")])
        }
        worker = start_worker_process(
            settings,
            str(settings.kafka_url),
            settings.data_dir / "worker.log",
            env,
            metrics_port=-1,
            embedded=broker is not None,
        )
        try:
            figures["sources"] = asyncio.run(run(args, settings, tenants))
            figures["worker_alive"] = worker.poll() is None
        finally:
            stop_process(worker)
            if broker is not None:
                broker.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures["seconds"] = round(time.monotonic() - started, 1)
    report(figures)
    sources = figures["sources"]
    ok = (
        figures["validation"]["crashes"] == 0
        and sources["push_500"] == 0
        and sources["push_503"] == 0
        and sources["hangs"] == 0
        and sources["lost"] == 0
        and figures["worker_alive"]
    )
    raise SystemExit(0 if ok else 1)


def _settings(tmp: Path, kafka_url: str) -> Settings:
    return run_settings(tmp, kafka_url, "fuzz", tenants_from=TODAY_TENANT_FILE)


def report(figures: dict[str, Any]) -> None:
    v, s = figures["validation"], figures["sources"]
    rows = [
        ("validation items", v["items"]),
        ("validation crashes", v["crashes"]),
        *((f"validation {k}", n) for k, n in sorted(v["outcomes"].items())),
        ("push requests", s["push_requests"]),
        *((f"push HTTP {k}", n) for k, n in s["push_statuses"].items()),
        ("push hangs", s["hangs"]),
        ("folder files", s["folder_files"]),
        ("folder items published", s["folder_published"]),
        ("folder problems reported", s["folder_problems"]),
        ("items accepted", s["accepted"]),
        *((f"ended {k}", n) for k, n in sorted(s["outcomes"].items())),
        ("lost", s["lost"]),
        ("worker alive", figures["worker_alive"]),
        ("seconds", figures["seconds"]),
    ]
    for name, value in rows:
        print(f"{name:<34} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
