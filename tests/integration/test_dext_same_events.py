"""All three sources deliver the same received events for the same items.

Each source publishes to its own topics (its own prefix) on the embedded broker; the events
are read back from Kafka and compared: same id, subject, type, tenant and item; documents
with the same name, type and bytes (only their location differs with the route).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.dext.api import DextApiConfig, DextDocumentLinks, poll_once
from adapters.dext.cursor import KafkaCursorStore
from adapters.dext.folder import ExportFolder, FolderState
from adapters.dext.push import PushEndpoint, PushState, secret_env, secrets_from_env, signed_headers
from adapters.dext.web import start_app
from adapters.documents import DocumentFetcher
from adapters.processes import free_port
from domain.events import Envelope, Stage
from domain.tenants import Tenants
from sandboxes.dext.samples import SampleItem, sample_items
from sandboxes.dext.sandbox import DEFAULT_TOKEN, DextSandbox, start_sandbox
from streams.config import Settings
from streams.kafka.publish import Publisher
from streams.kafka.topics import ensure_topics
from tests.support import broker_for_test, make_tenants, read_topic

pytestmark = [pytest.mark.broker]

ACCOUNT_OF = {"acme-uk": "acme-trading", "globex-us": "globex"}
SECRET = "push-secret-for-the-same-events-test"
# The Dext sandbox's port is fixed per run: tenants list it (a loopback document host must
# name its port) before the sandbox starts.
DEXT_PORT = free_port()
TOKENS = {account: DEFAULT_TOKEN for account in ACCOUNT_OF.values()}
CSV_COLUMNS = {
    "ID": "id",
    "Type": "type",
    "Status": "status",
    "Date": "date",
    "Due Date": "due_date",
    "Supplier": "payee",
    "Supplier Tax Number": "payee_tax_number",
    "Invoice Number": "invoice_number",
    "Client": "client",
    "Category": "category",
    "Category Code": "category_code",
    "Currency": "currency",
    "Total": "total_amount",
    "Tax": "vat_amount",
    "Base Currency": "base_currency",
    "Description": "description",
    "Payment Method": "payment_method",
    "Paid": "paid",
}


@pytest.fixture
def kafka_url(tmp_path: Path) -> Iterator[str]:
    broker = broker_for_test(tmp_path / "broker")
    yield broker.url
    broker.stop()


def chosen() -> list[SampleItem]:
    samples = sample_items()
    acme = [s for s in samples if s.tenant == "acme-uk"]
    globex = [s for s in samples if s.tenant == "globex-us"]
    # Ordinary invoices, a thousands separator, both credit-note styles, a bad one.
    wanted = {"DX-100059", "DX-100060", "DX-100061", "DX-100068"}
    return acme[:3] + globex[:2] + [s for s in samples if s.item["id"] in wanted]


def csv_projection(sample: SampleItem) -> dict[str, Any]:
    """What a CSV export can carry of an item."""
    item = {field: sample.item.get(field) for field in CSV_COLUMNS.values()}
    item["document"] = dict(sample.item["document"])
    return item


def csv_cell(field: str, value: Any, locale: str) -> str:
    if value is None:
        return ""
    if field == "paid":
        return "Yes" if value else "No"
    if field == "type":
        return str(value).replace("_", " ").title()
    if field in ("date", "due_date"):
        year, month, day = str(value).split("-")
        return f"{month}/{day}/{year}" if locale == "en-US" else f"{day}/{month}/{year}"
    return str(value)


def write_csv(path: Path, items: list[dict[str, Any]], locale: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*CSV_COLUMNS, "Image Name"])
    for item in items:
        cells = [csv_cell(f, item.get(f), locale) for f in CSV_COLUMNS.values()]
        writer.writerow([*cells, item["document"]["filename"]])
    path.write_text(out.getvalue(), encoding="utf-8")


async def publisher_for(kafka_url: str, prefix: str, tmp_path: Path) -> tuple[Settings, Publisher]:
    settings = Settings(kafka_url=kafka_url, topic_prefix=prefix, data_dir=tmp_path / prefix)
    await ensure_topics(settings, kafka_url)
    return settings, Publisher(settings, kafka_url)


@pytest.fixture
async def sandboxes() -> AsyncIterator[list[Any]]:
    """Runners of the sandboxes a test starts; they serve documents until the test ends."""
    runners: list[Any] = []
    yield runners
    for runner in runners:
        await runner.cleanup()


async def via_api(
    kafka_url: str,
    tmp_path: Path,
    tenants: Tenants,
    items: list[tuple[SampleItem, dict[str, Any]]],
    runners: list[Any],
) -> tuple[list[Envelope], list[dict[str, Any]]]:
    """Poll the sandbox; also return the raw items as the API served them (for push)."""
    box = DextSandbox(
        [(ACCOUNT_OF[s.tenant], item, s.document_path) for s, item in items],
        accounts=ACCOUNT_OF.values(),
    )
    runner, url = await start_sandbox(box, port=DEXT_PORT)
    runners.append(runner)
    settings, publisher = await publisher_for(kafka_url, "api.", tmp_path)
    config = DextApiConfig(url=url, client_id=box.client_id, client_secret=box.client_secret)
    async with (
        publisher,
        KafkaCursorStore(
            kafka_url, cursors_topic="api.cursors", received_topic=settings.topic(Stage.RECEIVED)
        ) as cursors,
    ):
        assert await poll_once(publisher, tenants.all()[:2], config=config, cursors=cursors) == len(
            items
        )
    served: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url) as client:
        for s, item in items:
            answer = await client.get(
                f"/v1/accounts/{ACCOUNT_OF[s.tenant]}/items/{item['id']}",
                headers={"Authorization": f"Bearer {box.static_token}"},
            )
            served.append(json.loads(answer.content, parse_float=str, parse_int=str))
    return await read_topic(kafka_url, settings.topic(Stage.RECEIVED)), served


async def via_push(
    kafka_url: str,
    tmp_path: Path,
    tenants: Tenants,
    pairs: list[tuple[str, dict[str, Any]]],
) -> list[Envelope]:
    settings, publisher = await publisher_for(kafka_url, "push.", tmp_path)
    env = {secret_env(t): SECRET for t in ACCOUNT_OF}
    async with publisher:
        endpoint = PushEndpoint(
            tenants=tenants,
            secrets=secrets_from_env(tenants.all(), env),
            sink=publisher,
            state=PushState(tmp_path / "push.sqlite"),
            documents=DocumentFetcher(allowed_dirs=[]),
        )
        runner, url = await start_app(endpoint.app())
        try:
            async with httpx.AsyncClient() as client:
                for tenant, raw in pairs:
                    body = json.dumps(raw).encode()
                    answer = await client.post(
                        f"{url}/v1/items",
                        content=body,
                        headers=signed_headers(tenant, SECRET, body),
                    )
                    assert answer.status_code == 202, answer.text
        finally:
            await runner.cleanup()
    return await read_topic(kafka_url, settings.topic(Stage.RECEIVED))


async def via_folder(
    kafka_url: str, tmp_path: Path, root: Path, tenants: Tenants
) -> list[Envelope]:
    settings, publisher = await publisher_for(kafka_url, "folder.", tmp_path)
    async with publisher:
        folder = ExportFolder(
            root,
            tenants=tenants,
            sink=publisher,
            state=FolderState(tmp_path / "folder.sqlite"),
            settle=0,
        )
        reports = await folder.scan_once()
        assert all(not r.problems for r in reports), [r.to_json() for r in reports]
    return await read_topic(kafka_url, settings.topic(Stage.RECEIVED))


async def compare(
    runs: dict[str, list[Envelope]], tenants: Tenants, expected_sources: dict[str, set[str]]
) -> None:
    by_source = {name: {e.subject: e for e in events} for name, events in runs.items()}
    keys = {name: set(events) for name, events in by_source.items()}
    first = next(iter(keys.values()))
    assert all(k == first for k in keys.values()), keys
    # API events keep a dext:// reference; the fetcher asks the sandbox for a fresh link.
    links = DextDocumentLinks(DextApiConfig(url=f"http://127.0.0.1:{DEXT_PORT}", tokens=TOKENS))
    fetcher = DocumentFetcher(allowed_dirs=[], timeout=10, links=links)
    for key in sorted(first):
        events = {name: by_source[name][key] for name in by_source}
        shapes = {
            name: (e.id, e.type, e.subject, e.tenant, e.attempt, e.dataschema, e.data.kind)
            for name, e in events.items()
        }
        assert len(set(shapes.values())) == 1, shapes
        items = [e.data.item for e in events.values()]  # type: ignore[union-attr]
        assert all(i == items[0] for i in items), json.dumps(items, indent=1)
        digests = set()
        for name, event in events.items():
            assert event.source in expected_sources[name]
            document = event.data.document  # type: ignore[union-attr]
            assert document is not None
            assert (document.filename, document.content_type) == (
                items[0]["document"]["filename"],
                "application/pdf",
            )
            fetched = await fetcher.fetch(document, tenants.get(event.tenant))
            digests.add(fetched.sha256)
        assert len(digests) == 1, f"{key}: the sources point at different documents"
    await fetcher.aclose()


async def test_full_items_are_the_same_event_through_api_folder_and_push(
    kafka_url: str, tmp_path: Path, sandboxes: list[Any]
) -> None:
    samples = chosen()
    root = tmp_path / "export"
    tenants = make_tenants(docs_dirs=[str(root)], sandbox_hosts=[f"127.0.0.1:{DEXT_PORT}"])
    for s in samples:
        folder = root / ACCOUNT_OF[s.tenant]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(s.document_path, folder / s.document_path.name)
    for account in ACCOUNT_OF.values():
        items = [s.item for s in samples if ACCOUNT_OF[s.tenant] == account]
        (root / account / "items.json").write_text(json.dumps(items), encoding="utf-8")

    api_events, served = await via_api(
        kafka_url, tmp_path, tenants, [(s, s.item) for s in samples], sandboxes
    )
    push_events = await via_push(
        kafka_url,
        tmp_path,
        tenants,
        [(s.tenant, raw) for s, raw in zip(samples, served, strict=True)],
    )
    folder_events = await via_folder(kafka_url, tmp_path, root, tenants)
    assert len(api_events) == len(samples)
    await compare(
        {"api": api_events, "push": push_events, "folder": folder_events},
        tenants,
        {
            "api": {"dext-api/acme-trading", "dext-api/globex"},
            "push": {"push"},
            "folder": {"folder/export"},
        },
    )


async def test_csv_export_rows_are_the_same_event_as_api_and_push(
    kafka_url: str, tmp_path: Path, sandboxes: list[Any]
) -> None:
    samples = chosen()
    root = tmp_path / "csv-export"
    tenants = make_tenants(docs_dirs=[str(root)], sandbox_hosts=[f"127.0.0.1:{DEXT_PORT}"])
    projected = [(s, csv_projection(s)) for s in samples]
    for account, locale in (("acme-trading", "en-GB"), ("globex", "en-US")):
        folder = root / account
        folder.mkdir(parents=True)
        rows = [item for s, item in projected if ACCOUNT_OF[s.tenant] == account]
        write_csv(folder / "Dext export.csv", rows, locale)
        (folder / "documents").mkdir()
        for s, _ in projected:
            if ACCOUNT_OF[s.tenant] == account:
                shutil.copy(s.document_path, folder / "documents" / s.document_path.name)

    api_events, served = await via_api(kafka_url, tmp_path, tenants, projected, sandboxes)
    push_events = await via_push(
        kafka_url,
        tmp_path,
        tenants,
        [(s.tenant, raw) for (s, _), raw in zip(projected, served, strict=True)],
    )
    folder_events = await via_folder(kafka_url, tmp_path, root, tenants)
    await compare(
        {"api": api_events, "push": push_events, "folder": folder_events},
        tenants,
        {
            "api": {"dext-api/acme-trading", "dext-api/globex"},
            "push": {"push"},
            "folder": {"folder/csv-export"},
        },
    )
