"""Hostile and careless requests to the push endpoint: the right status, never a 500.

Each case below was a 500 or a 503 ("send it again") before, found by fuzzing the endpoint.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.limits import MAX_DEPTH, MAX_ITEM_BYTES
from tests.integration.test_dext_push import SECRET, Push, body, item, serve, signed_headers
from tests.support import RecordingSink


@pytest.fixture
async def push(tmp_path: Path) -> AsyncIterator[Push]:
    sink = RecordingSink()
    runner, url = await serve(tmp_path, sink, max_body=2 * 1024 * 1024)
    async with httpx.AsyncClient() as client:
        yield Push(url, sink, client)
    await runner.cleanup()


def nested(levels: int) -> dict[str, Any]:
    value: Any = "x"
    for _ in range(levels):
        value = {"n": value}
    return {**item(), "extra": value}


@pytest.mark.parametrize("header", ["X-Billstream-Timestamp", "X-Billstream-Signature"])
async def test_non_utf8_header_bytes_are_401(push: Push, header: str) -> None:
    raw = body(item())
    headers: dict[str, Any] = signed_headers("acme-uk", SECRET, raw)
    headers[header] = b"17\xff\xfe"
    response = await push.client.post(push.url, content=raw, headers=headers)
    assert (response.status_code, response.json()["reason"]) == (401, "bad_signature")
    assert push.sink.events == []


async def test_a_non_utf8_tenant_is_401_and_not_echoed(push: Push) -> None:
    raw = body(item())
    headers: dict[str, Any] = signed_headers("acme-uk", SECRET, raw)
    headers["X-Billstream-Tenant"] = b"acme\xff"
    response = await push.client.post(push.url, content=raw, headers=headers)
    assert (response.status_code, response.json()["reason"]) == (401, "unknown_tenant")


async def test_a_400_digit_timestamp_is_401(push: Push) -> None:
    raw = body(item())
    timestamp = "9" * 400
    headers = signed_headers("acme-uk", SECRET, raw) | {"X-Billstream-Timestamp": timestamp}
    response = await push.client.post(push.url, content=raw, headers=headers)
    assert response.status_code == 401


async def test_a_lone_surrogate_escape_is_400(push: Push) -> None:
    raw = body(item())[:-1] + b', "notes": "\\ud800"}'
    response = await push.send(raw)
    assert (response.status_code, response.json()["reason"]) == (400, "invalid_json")
    assert "surrogate" in response.json()["message"]


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 190, 252, 253, 989, 1000, 5000])
async def test_deep_nesting_is_400_not_500_or_503(push: Push, levels: int) -> None:
    raw = json.dumps(nested(levels)).encode() if levels < 900 else _deep_text(levels)
    response = await push.send(raw)
    assert (response.status_code, response.json()["reason"]) == (400, "invalid_json")
    assert "levels deep" in response.json()["message"]
    assert push.sink.events == []


def _deep_text(levels: int) -> bytes:
    # json.dumps itself cannot write this deep: build the text by hand.
    inner = b'"x"'
    for _ in range(levels):
        inner = b'{"n":' + inner + b"}"
    return body(item())[:-1] + b', "extra": ' + inner + b"}"


async def test_nesting_at_the_limit_is_accepted(push: Push) -> None:
    response = await push.send(body(nested(MAX_DEPTH - 2)))
    assert response.status_code == 202


@pytest.mark.parametrize("bad_id", [[], {}, True, "", "   ", "a\x00b", "x" * 201])
async def test_an_unusable_id_is_400_not_503(push: Push, bad_id: Any) -> None:
    response = await push.send(body({**item(), "id": bad_id}))
    assert (response.status_code, response.json()["reason"]) == (400, "invalid_item")
    assert response.json()["problems"][0]["code"] == "invalid_id"


async def test_an_item_over_the_size_limit_is_413(push: Push) -> None:
    big = {**item(), "notes": "x" * (MAX_ITEM_BYTES + 10)}
    response = await push.send(body(big))
    assert (response.status_code, response.json()["reason"]) == (413, "too_large")
    assert response.json()["problems"][0]["code"] == "item_too_large"
    assert push.sink.events == []


async def test_a_body_that_is_not_json_by_its_type_is_415(push: Push) -> None:
    raw = body(item())
    # Not text/xml: an XML type means an e-invoice now (test_dext_push_einvoice.py).
    headers = signed_headers("acme-uk", SECRET, raw) | {"Content-Type": "text/plain"}
    response = await push.client.post(push.url, content=raw, headers=headers)
    assert response.status_code == 415


async def test_healthz_does_not_list_tenants(push: Push) -> None:
    response = await push.client.get(push.url.replace("/v1/items", "/healthz"))
    assert response.json() == {"ok": True}


async def test_an_id_with_a_trailing_space_is_the_same_item(push: Push) -> None:
    # Dedup used the raw id and the Kafka key the stripped one: a second invoice keyed
    # "COLLIDE-1 " was answered 202 and then silently lost behind "COLLIDE-1".
    first = await push.send(body({**item(0), "id": "COLLIDE-1"}))
    assert first.status_code == 202
    other = {**item(1), "id": "COLLIDE-1 "}
    second = await push.send(body(other))
    assert (second.status_code, second.json()["reason"]) == (409, "conflict")
    assert second.json()["keys"] == ["acme-uk:COLLIDE-1"]
    same = await push.send(body({**item(0), "id": " COLLIDE-1 "}))
    assert (same.status_code, same.json()["status"]) == (202, "duplicate")
    assert push.sink.keys == ["acme-uk:COLLIDE-1"]
    assert push.sink.events[0].data.item["id"] == "COLLIDE-1"


async def test_a_client_that_hangs_up_mid_body_leaves_no_traceback(
    push: Push, caplog: pytest.LogCaptureFixture
) -> None:
    # make fuzz met this: a body cut short by the client logged aiohttp's "Error handling
    # request" with a ConnectionResetError traceback.
    url = httpx.URL(push.url)
    body = b'{"items": [' + b" " * 2000
    headers = signed_headers("acme-uk", SECRET, body + b"]}")
    lines = [f"POST {url.raw_path.decode()} HTTP/1.1", f"Host: {url.host}:{url.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Content-Length: 100000", "", ""]
    with caplog.at_level(logging.INFO):
        _reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write("\r\n".join(lines).encode() + body)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        for _ in range(100):  # until the server has read up to the hang-up
            if any("closed the connection" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.02)
    assert any("closed the connection" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert (await push.send(b'{"items": []}')).status_code < 500  # still serving
