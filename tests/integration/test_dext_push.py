"""The signed push endpoint: every refusal has its status and reason; one item is one item."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.dext.push import (
    PushEndpoint,
    PushState,
    secret_env,
    secrets_from_env,
    sign,
    signed_headers,
)
from adapters.dext.web import start_app
from adapters.documents import DocumentFetcher
from sandboxes.dext.samples import sample_items
from tests.support import RecordingSink, make_tenants

SECRET = "s3cret-for-acme-uk-pushes"
TENANTS = make_tenants()


def item(n: int = 0) -> dict[str, Any]:
    sample = sample_items(n + 1)[n]
    raw = dict(sample.item)
    raw["document"] = {"url": f"http://127.0.0.1:9/v1/documents/{raw['id']}.pdf?sig=x"}
    return raw


@dataclass
class Push:
    url: str
    sink: RecordingSink
    client: httpx.AsyncClient

    async def send(
        self, body: bytes, *, tenant: str = "acme-uk", secret: str = SECRET, **over: str
    ) -> httpx.Response:
        headers = signed_headers(tenant, secret, body) | over
        return await self.client.post(self.url, content=body, headers=headers)


async def serve(tmp_path: Path, sink: RecordingSink, max_body: int = 64 * 1024) -> tuple[Any, str]:
    endpoint = PushEndpoint(
        tenants=TENANTS,
        secrets=secrets_from_env(
            TENANTS.all(), {secret_env("acme-uk"): f"{SECRET}, old-rotated-secret-1"}
        ),
        sink=sink,
        state=PushState(tmp_path / "push.sqlite"),
        documents=DocumentFetcher(allowed_dirs=[]),
        max_body_bytes=max_body,
    )
    runner, base = await start_app(endpoint.app())
    return runner, f"{base}/v1/items"


@pytest.fixture
async def push(tmp_path: Path) -> AsyncIterator[Push]:
    sink = RecordingSink()
    runner, url = await serve(tmp_path, sink)
    async with httpx.AsyncClient() as client:
        yield Push(url, sink, client)
    await runner.cleanup()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


async def test_good_push_is_202_with_the_item_key(push: Push) -> None:
    response = await push.send(body(item()))
    assert response.status_code == 202
    assert response.json()["key"] == "acme-uk:DX-100001"
    assert response.json()["status"] == "accepted"
    (event,) = push.sink.events
    assert event.source == "push"
    assert event.data.item["total_amount"] == "1957.15"
    assert event.data.document is not None and event.data.document.url.startswith(
        "http://127.0.0.1:9/"
    )
    assert "url" not in event.data.item["document"]


async def test_bad_signature_is_401(push: Push) -> None:
    response = await push.send(body(item()), secret="someone-elses-secret-value")
    assert (response.status_code, response.json()["reason"]) == (401, "bad_signature")
    raw = body(item())
    headers = signed_headers("acme-uk", SECRET, raw)
    tampered = raw.replace(b"1957.15", b"9957.15")
    response = await push.client.post(push.url, content=tampered, headers=headers)
    assert (response.status_code, response.json()["reason"]) == (401, "bad_signature")
    assert push.sink.events == []


async def test_stale_timestamp_is_401(push: Push) -> None:
    raw = body(item())
    old = str(int(time.time()) - 301)
    response = await push.send(
        raw, **{"X-Billstream-Timestamp": old, "X-Billstream-Signature": sign(SECRET, old, raw)}
    )
    assert (response.status_code, response.json()["reason"]) == (401, "stale_timestamp")
    future = str(int(time.time()) + 400)
    response = await push.send(
        raw,
        **{"X-Billstream-Timestamp": future, "X-Billstream-Signature": sign(SECRET, future, raw)},
    )
    assert response.json()["reason"] == "stale_timestamp"
    assert push.sink.events == []


async def test_oversized_body_is_413(tmp_path: Path) -> None:
    sink = RecordingSink()
    runner, url = await serve(tmp_path, sink, max_body=2048)
    try:
        raw = body({**item(), "description": "x" * 4096})
        async with httpx.AsyncClient() as client:
            response = await client.post(
                url, content=raw, headers=signed_headers("acme-uk", SECRET, raw)
            )

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap still holds
                for _ in range(4):
                    yield b" " * 1024

            streamed = await client.post(
                url, content=chunks(), headers=signed_headers("acme-uk", SECRET, b"")
            )
        assert (response.status_code, response.json()["reason"]) == (413, "too_large")
        assert (streamed.status_code, streamed.json()["reason"]) == (413, "too_large")
        assert sink.events == []
    finally:
        await runner.cleanup()


async def test_replayed_body_gives_one_item(push: Push) -> None:
    raw = body(item())
    headers = signed_headers("acme-uk", SECRET, raw)
    first = await push.client.post(push.url, content=raw, headers=headers)
    replayed = await push.client.post(push.url, content=raw, headers=headers)
    resigned = await push.send(raw, secret="old-rotated-secret-1")  # a tool's own retry
    assert [r.status_code for r in (first, replayed, resigned)] == [202, 202, 202]
    assert [r.json()["status"] for r in (first, replayed, resigned)] == [
        "accepted",
        "duplicate",
        "duplicate",
    ]
    assert {r.json()["key"] for r in (first, replayed, resigned)} == {"acme-uk:DX-100001"}
    assert push.sink.keys == ["acme-uk:DX-100001"]


async def test_one_item_stays_one_across_a_restart(tmp_path: Path) -> None:
    sink = RecordingSink()
    raw = body(item())
    for _ in range(2):
        runner, url = await serve(tmp_path, sink)
        async with httpx.AsyncClient() as client:
            await client.post(url, content=raw, headers=signed_headers("acme-uk", SECRET, raw))
        await runner.cleanup()
    assert sink.keys == ["acme-uk:DX-100001"]


async def test_changed_item_with_a_known_id_is_409(push: Push) -> None:
    await push.send(body(item()))
    response = await push.send(body({**item(), "total_amount": "1.00"}))
    assert (response.status_code, response.json()["reason"]) == (409, "conflict")
    assert len(push.sink.events) == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Billstream-Tenant": ""}, "missing_headers"),
        ({"X-Billstream-Signature": ""}, "missing_headers"),
        ({"X-Billstream-Tenant": "globex-us"}, "unknown_tenant"),  # no secret configured
        ({"X-Billstream-Tenant": "nobody"}, "unknown_tenant"),
    ],
)
async def test_who_is_pushing_must_be_clear(
    push: Push, headers: dict[str, str], reason: str
) -> None:
    response = await push.send(body(item()), **headers)
    assert (response.status_code, response.json()["reason"]) == (401, reason)


@pytest.mark.parametrize(
    ("value", "reason", "text"),
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"[1, 2]", "invalid_json", "not a JSON object"),
        (body({"payee": "No Id Ltd"}), "invalid_item", "no Dext id"),
        (body({**item(), "document": {"url": "file:///etc/passwd"}}), "invalid_item", "file URL"),
        (
            body({**item(), "image_url": "https://evil.example.net/x.pdf", "document": None}),
            "invalid_item",
            "evil.example.net is not on tenant acme-uk's document_hosts",
        ),
        (body([item(0), item(0)]), "invalid_item", "appears twice"),
    ],
)
async def test_unusable_bodies_are_400(push: Push, value: bytes, reason: str, text: str) -> None:
    response = await push.send(value)
    assert (response.status_code, response.json()["reason"]) == (400, reason)
    assert text in json.dumps(response.json())
    assert push.sink.events == []


async def test_a_batch_of_items(push: Push) -> None:
    response = await push.send(body([item(0), item(1)]))
    assert response.status_code == 202
    assert [i["key"] for i in response.json()["items"]] == [
        "acme-uk:DX-100001",
        "acme-uk:DX-100002",
    ]


async def test_a_broker_failure_is_503_and_the_retry_goes_through(tmp_path: Path) -> None:
    failing = RecordingSink(fail_after=0)
    runner, url = await serve(tmp_path, failing)
    raw = body(item())
    async with httpx.AsyncClient() as client:
        response = await client.post(
            url, content=raw, headers=signed_headers("acme-uk", SECRET, raw)
        )
    await runner.cleanup()
    assert (response.status_code, response.json()["reason"]) == (503, "unavailable")
    working = RecordingSink()
    runner, url = await serve(tmp_path, working)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            url, content=raw, headers=signed_headers("acme-uk", SECRET, raw)
        )
    await runner.cleanup()
    assert response.json()["status"] == "accepted" and working.keys == ["acme-uk:DX-100001"]


def test_short_secrets_are_ignored() -> None:
    assert secrets_from_env(TENANTS.all(), {secret_env("acme-uk"): "short"}) == {}
    assert secret_env("acme-uk") == "BILLSTREAM_PUSH_SECRET_ACME_UK"
