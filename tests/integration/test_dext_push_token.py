"""Zapier's way in: a bearer token instead of an HMAC, and the flat records "Webhooks by
Zapier" sends (JSON or a form, labelled as Dext's Zapier app labels its fields)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.dext.push import PushEndpoint, PushState, token_env, tokens_from_env
from adapters.dext.web import start_app
from adapters.documents import DocumentFetcher
from domain.events import Envelope, Stage
from streams.config import Settings
from streams.kafka.eventlog import read_topics
from streams.kafka.publish import Publisher
from streams.kafka.topics import ensure_topics
from tests.support import RecordingSink, make_tenants

TENANTS = make_tenants()
TOKEN = "zapier-token-for-acme-uk-0001"
OLD_TOKEN = "zapier-token-being-rotated-out"
GLOBEX = "zapier-token-for-globex-us-002"

ZAP: dict[str, Any] = {
    "Supplier Name": "Viking Direct",
    "Invoice Number": "VD-7781",
    "Date": "03/11/2026",
    "Due Date": "03/12/2026",
    "Currency": "GBP",
    "Total Amount": "120.00",
    "Tax Amount": "20.00",
    "Category": "Office Supplies",
    "Image URL": "http://127.0.0.1:9/v1/documents/VD-7781.pdf?sig=x",
    "Zap Meta Human Now": "ignored",
}


def tokens() -> dict[str, list[str]]:
    env = {token_env("acme-uk"): f"{TOKEN}, {OLD_TOKEN}", token_env("globex-us"): GLOBEX}
    return tokens_from_env(TENANTS.all(), env)


async def serve(tmp_path: Path, sink: Any) -> tuple[Any, str]:
    endpoint = PushEndpoint(
        tenants=TENANTS,
        secrets={},
        tokens=tokens(),
        sink=sink,
        state=PushState(tmp_path / "push.sqlite"),
        documents=DocumentFetcher(allowed_dirs=[]),
    )
    runner, base = await start_app(endpoint.app())
    return runner, f"{base}/v1/items"


@pytest.fixture
async def zap(tmp_path: Path) -> AsyncIterator[tuple[str, RecordingSink, httpx.AsyncClient]]:
    sink = RecordingSink()
    runner, url = await serve(tmp_path, sink)
    async with httpx.AsyncClient() as client:
        yield url, sink, client
    await runner.cleanup()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_zap_shaped_json_record_with_a_good_token_is_one_item(zap: Any) -> None:
    url, sink, client = zap
    response = await client.post(url, json=ZAP, headers=bearer(TOKEN))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    (event,) = sink.events
    item = event.data.item
    assert event.subject == response.json()["key"] and event.subject.startswith("acme-uk:csv-")
    assert (item["payee"], item["invoice_number"], item["total_amount"]) == (
        "Viking Direct",
        "VD-7781",
        "120.00",
    )
    assert (item["date"], item["vat_amount"], item["currency"]) == ("2026-11-03", "20.00", "GBP")
    assert event.data.document is not None
    assert event.data.document.url == ZAP["Image URL"]
    assert item["document"] == {"filename": "VD-7781.pdf", "content_type": "application/pdf"}
    again = await client.post(url, json=ZAP, headers=bearer(OLD_TOKEN))  # rotation: both work
    assert again.json()["status"] == "duplicate" and len(sink.events) == 1


async def test_a_zap_shaped_form_is_the_same_item(zap: Any) -> None:
    url, sink, client = zap
    response = await client.post(url, data=ZAP, headers=bearer(TOKEN))
    assert response.status_code == 202, response.text
    as_json = await client.post(url, json=ZAP, headers=bearer(TOKEN))
    assert as_json.json()["status"] == "duplicate"  # one item whichever way Zapier sends it
    assert len(sink.events) == 1


async def test_a_zap_with_line_items_as_arrays_or_joined_lists(zap: Any) -> None:
    url, sink, client = zap
    lines = {
        "Line Items Description": ["Paper", "Toner"],
        "Line Items Net Amount": ["40.00", "60.00"],
        "Line Items Tax Amount": ["8.00", "12.00"],
        "Line Items Total Amount": ["48.00", "72.00"],
    }
    response = await client.post(url, json=ZAP | lines, headers=bearer(TOKEN))
    assert response.status_code == 202, response.text
    (event,) = sink.events
    assert [(x["description"], x["total_amount"]) for x in event.data.item["line_items"]] == [
        ("Paper", "48.00"),
        ("Toner", "72.00"),
    ]
    joined = {k: ",".join(v) for k, v in lines.items()}
    again = await client.post(url, data=ZAP | joined, headers=bearer(TOKEN))
    assert again.json()["status"] == "duplicate"  # the same item, by form
    joined["Line Items Description"] = "Paper, A4,Toner"
    other = ZAP | joined | {"Invoice Number": "VD-7782"}
    bad = await client.post(url, data=other, headers=bearer(TOKEN))
    assert (bad.status_code, bad.json()["problems"][0]["code"]) == (400, "invalid_fields")
    assert "description 3" in bad.json()["problems"][0]["message"] and len(sink.events) == 1


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing_headers"),
        (bearer("not-the-token-of-anyone-at-all"), 401, "bad_token"),
        ({"Authorization": f"Basic {TOKEN}"}, 401, "bad_token"),
        ({"Authorization": "Bearer"}, 401, "bad_token"),
        (bearer(GLOBEX) | {"X-Billstream-Tenant": "acme-uk"}, 401, "bad_token"),
    ],
)
async def test_a_wrong_or_missing_token_is_refused(
    zap: Any, headers: dict[str, str], status: int, reason: str
) -> None:
    url, sink, client = zap
    response = await client.post(url, json=ZAP, headers=headers)
    assert (response.status_code, response.json()["reason"]) == (status, reason)
    assert TOKEN not in response.text and sink.events == []


async def test_a_record_without_supplier_or_total_names_the_labels_it_found(zap: Any) -> None:
    url, sink, client = zap
    response = await client.post(url, data={"Zap Name": "x", "Note": "y"}, headers=bearer(TOKEN))
    assert (response.status_code, response.json()["reason"]) == (400, "invalid_item")
    (problem,) = response.json()["problems"]
    assert problem["code"] == "invalid_fields" and "Zap Name, Note" in problem["message"]
    assert sink.events == []


def test_short_tokens_are_ignored() -> None:
    assert tokens_from_env(TENANTS.all(), {token_env("acme-uk"): "short-token"}) == {}
    assert token_env("acme-uk") == "BILLSTREAM_PUSH_TOKEN_ACME_UK"


@pytest.mark.broker
async def test_a_zap_reaches_the_received_topic(isolated: Settings, tmp_path: Path) -> None:
    url_kafka = str(isolated.kafka_url)
    await ensure_topics(isolated, url_kafka)
    async with Publisher(isolated, url_kafka) as publisher:
        runner, url = await serve(tmp_path, publisher)
        try:
            async with httpx.AsyncClient() as client:
                response = await client.post(url, data=ZAP, headers=bearer(TOKEN))
        finally:
            await runner.cleanup()
    assert response.status_code == 202, response.text
    logged = [x.event async for x in read_topics(url_kafka, [isolated.topic(Stage.RECEIVED)])]
    assert [ev.subject for ev in logged] == [response.json()["key"]]
    assert isinstance(logged[0], Envelope) and logged[0].source == "push"
