"""The API poller against the sandbox in-process: pages, cursors, limits, tokens, crashes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from adapters.dext import api as api_module
from adapters.dext.api import (
    DextApiClient,
    DextApiConfig,
    DextApiError,
    poll_once,
    poll_pass,
)
from domain.models import DocumentRef
from sandboxes.dext.samples import sample_items
from sandboxes.dext.sandbox import DextSandbox, Faults, start_sandbox
from tests.support import MemoryCursorStore, RecordingSink, make_tenants

TENANTS = make_tenants()
ACCOUNT_OF = {"acme-uk": "acme-trading", "globex-us": "globex"}
POLLED = [TENANTS.get("acme-uk"), TENANTS.get("globex-us")]


@dataclass
class Sandbox:
    box: DextSandbox
    url: str

    def config(self, **over: Any) -> DextApiConfig:
        values: dict[str, Any] = {
            "url": self.url,
            "client_id": self.box.client_id,
            "client_secret": self.box.client_secret,
            "page_size": 4,
        }
        return DextApiConfig(**(values | over))


def make_box(n: int = 12, **kwargs: Any) -> DextSandbox:
    samples = sample_items()
    acme = [s for s in samples if s.tenant == "acme-uk"][:n]
    globex = [s for s in samples if s.tenant == "globex-us"][:4]
    chosen = globex + acme  # "ready" counts in this order
    return DextSandbox(
        [(ACCOUNT_OF[s.tenant], s.item, s.document_path) for s in chosen],
        accounts=ACCOUNT_OF.values(),
        **kwargs,
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = make_box(ready=10 + 4)  # the last two acme items are still processing
    runner, url = await start_sandbox(box)
    yield Sandbox(box, url)
    await runner.cleanup()


async def test_a_pass_takes_every_ready_item_once_and_the_next_pass_only_new_ones(
    sandbox: Sandbox,
) -> None:
    sink = RecordingSink()
    cursors = MemoryCursorStore(sink)
    config = sandbox.config()
    published = await poll_once(sink, POLLED, config=config, cursors=cursors)
    assert published == 14
    assert sorted(sink.keys) == sorted(set(sink.keys))
    assert sum(k.startswith("acme-uk:") for k in sink.keys) == 10
    assert await poll_once(sink, POLLED, config=config, cursors=cursors) == 0
    moved = sandbox.box.advance(2)
    assert await poll_once(sink, POLLED, config=config, cursors=cursors) == 2
    assert sink.keys[-2:] == [f"acme-uk:{i}" for i in moved]
    event = sink.events[0]
    assert event.source == "dext-api/acme-trading"
    document = event.data.document
    assert isinstance(document, DocumentRef)
    # A reference, not the signed link Dext listed (valid for days, it is a credential).
    assert document.url == "dext://acme-trading/DX-100001/DX-100001.pdf"
    assert "signature=" not in event.to_bytes().decode()
    assert event.data.item["document"] == {
        "filename": "DX-100001.pdf",
        "content_type": "application/pdf",
    }


async def test_only_the_configured_statuses_are_taken(sandbox: Sandbox) -> None:
    sink = RecordingSink()
    cursors = MemoryCursorStore(sink)
    sandbox.box.advance(2, status="review")
    config = sandbox.config(statuses=("review",))
    await poll_once(sink, POLLED, config=config, cursors=cursors)
    assert sink.keys == ["acme-uk:DX-100011", "acme-uk:DX-100012"]


async def test_a_crash_between_publish_and_cursor_skips_and_repeats_nothing(
    sandbox: Sandbox,
) -> None:
    sink = RecordingSink()
    cursors = MemoryCursorStore(sink)
    cursors.fail_on_commit = True  # every page is published, then the process 'dies'
    with pytest.raises(RuntimeError, match="crash before the cursor moved"):
        await poll_once(sink, POLLED[:1], config=sandbox.config(), cursors=cursors)
    assert len(sink.events) == 4 and cursors.states["acme-trading"].pending is not None
    cursors.fail_on_commit = False
    results = await poll_pass(sink, POLLED[:1], config=sandbox.config(), cursors=cursors)
    assert results[0].recovered == 4
    assert sorted(sink.keys) == sorted(set(sink.keys))
    assert len(sink.keys) == 10


async def test_a_broker_failure_mid_page_loses_and_repeats_nothing(sandbox: Sandbox) -> None:
    sink = RecordingSink(fail_after=6)  # dies in the second page
    cursors = MemoryCursorStore(sink)
    with pytest.raises(ConnectionError):
        await poll_once(sink, POLLED[:1], config=sandbox.config(), cursors=cursors)
    sink.fail_after = None
    await poll_once(sink, POLLED[:1], config=sandbox.config(), cursors=cursors)
    assert len(sink.keys) == 10 == len(set(sink.keys))


async def test_rate_limits_are_waited_out(sandbox: Sandbox) -> None:
    sandbox.box.faults = Faults(rate_limit=2, rate_window=0.5)
    sink = RecordingSink()
    # Both accounts share one personal token, so they share one budget and run into 429s.
    token = sandbox.box.static_token or ""
    config = sandbox.config(
        client_id=None,
        client_secret=None,
        tokens={"acme-trading": token, "globex": token},
        page_size=2,
    )
    await poll_once(sink, POLLED, config=config, cursors=MemoryCursorStore(sink))
    assert len(sink.keys) == 14 == len(set(sink.keys))
    assert sandbox.box.stats.rate_limited >= 1


async def test_5xx_answers_are_retried(sandbox: Sandbox) -> None:
    sandbox.box.faults = Faults(fail_every=3)
    sink = RecordingSink()
    await poll_once(sink, POLLED[:1], config=sandbox.config(), cursors=MemoryCursorStore(sink))
    assert len(sink.keys) == 10 and sandbox.box.stats.failed >= 1


async def test_an_expired_token_is_renewed(sandbox: Sandbox) -> None:
    class ExpiringSink(RecordingSink):
        async def publish_received(self, *args: Any, **kwargs: Any) -> str:
            sandbox.box._tokens.clear()  # every token the sandbox issued is now unknown
            return await super().publish_received(*args, **kwargs)

    sink = ExpiringSink()
    await poll_once(sink, POLLED[:1], config=sandbox.config(), cursors=MemoryCursorStore(sink))
    assert len(sink.keys) == 10
    assert sandbox.box.stats.tokens_issued >= 3


async def test_credentials_problems_are_clear(sandbox: Sandbox) -> None:
    sink = RecordingSink()
    cursors = MemoryCursorStore(sink)
    with pytest.raises(DextApiError, match="refused the client credentials") as bad_secret:
        await poll_once(
            sink, POLLED[:1], config=sandbox.config(client_secret="wrong"), cursors=cursors
        )
    assert bad_secret.value.kind == "auth"
    with pytest.raises(DextApiError, match="BILLSTREAM_DEXT_TOKEN_ACME_TRADING"):
        await poll_once(
            sink,
            POLLED[:1],
            config=sandbox.config(client_id=None, client_secret=None, tokens={"acme-trading": "x"}),
            cursors=cursors,
        )
    with pytest.raises(DextApiError, match="no credentials for Dext account 'acme-trading'"):
        DextApiClient(sandbox.config(client_id=None, client_secret=None), "acme-trading")
    initech = [TENANTS.get("initech")]
    with pytest.raises(DextApiError, match="no account 'initech'"):
        await poll_once(sink, initech, config=sandbox.config(), cursors=cursors)
    assert sink.events == []


async def test_an_item_without_id_is_reported_not_invented(sandbox: Sandbox) -> None:
    sandbox.box.items[("acme-trading", "DX-100002")].item["id"] = None
    sink = RecordingSink()
    (result, _) = await poll_pass(
        sink, POLLED, config=sandbox.config(), cursors=MemoryCursorStore(sink)
    )
    assert result.published == 9
    assert result.skipped == ["item 2 of the page after cursor start: the item has no Dext id"]


def test_configuration_from_the_environment() -> None:
    env = {
        "BILLSTREAM_DEXT_API_URL": "https://dext.example/api/",
        "BILLSTREAM_DEXT_TOKEN_ACME_TRADING": "personal",
        "BILLSTREAM_DEXT_STATUSES": "Ready, Published",
        "BILLSTREAM_DEXT_POLL_INTERVAL": "15",
    }
    config = DextApiConfig.from_env(env, accounts=["acme-trading", "globex"])
    assert config.url == "https://dext.example/api"
    assert dict(config.tokens) == {"acme-trading": "personal"}
    assert config.statuses == ("ready", "published")
    assert config.interval == 15.0
    assert "personal" not in repr(config)
    assert DextApiConfig.from_env(config.env(), accounts=["acme-trading"]) == config
    with pytest.raises(DextApiError, match="BILLSTREAM_DEXT_API_URL is not set"):
        DextApiConfig.from_env({})


# --- the wire, exactly: numbers, rate-limit headers ---------------------------------------


class Script:
    """A scripted API: each request gets the next answer; the waits the client asks for are
    recorded instead of slept."""

    def __init__(self, answers: list[httpx.Response]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)


def page(items: str, cursor: str, more: bool = False, **headers: str) -> httpx.Response:
    text = f'{{"items": {items}, "next_cursor": "{cursor}", "has_more": {json.dumps(more)}}}'
    return httpx.Response(200, content=text.encode(), headers=headers)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, *args: Any) -> None:
        recorded.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(api_module.asyncio, "sleep", fake_sleep)
    return recorded


async def run_script(script: Script) -> RecordingSink:
    sink = RecordingSink()
    config = DextApiConfig(url="https://dext.test", tokens={"acme-trading": "t"}, page_size=2)
    await poll_once(
        sink,
        POLLED[:1],
        config=config,
        cursors=MemoryCursorStore(sink),
        transport=httpx.MockTransport(script),
    )
    return sink


async def test_amounts_keep_their_exact_text(waits: list[float]) -> None:
    script = Script([page('[{"id": 7, "total_amount": 1957.10, "vat_amount": 0}]', "c1")])
    sink = await run_script(script)
    (event,) = sink.events
    assert event.subject == "acme-uk:7"
    assert event.data.item["total_amount"] == "1957.10"
    assert event.data.item["vat_amount"] == "0"


async def test_retry_after_and_an_exhausted_budget_are_honoured(waits: list[float]) -> None:
    script = Script(
        [
            httpx.Response(429, headers={"Retry-After": "7"}),
            page(
                '[{"id": "A"}]',
                "c1",
                True,
                **{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"},
            ),
            page('[{"id": "B"}]', "c2"),
        ]
    )
    sink = await run_script(script)
    assert sink.keys == ["acme-uk:A", "acme-uk:B"]
    assert len(script.requests) == 3
    assert script.requests[2].url.params["cursor"] == "c1"
    assert [round(w) for w in waits if w >= 1] == [7, 30]


async def test_a_page_without_cursor_that_claims_more_is_a_contract_error(
    waits: list[float],
) -> None:
    answer = httpx.Response(200, content=b'{"items": [], "next_cursor": null, "has_more": true}')
    with pytest.raises(DextApiError, match="no cursor"):
        await run_script(Script([answer]))


async def test_two_crashes_on_the_same_page_still_repeat_nothing(sandbox: Sandbox) -> None:
    sink = RecordingSink(fail_after=2)  # the first attempt publishes 2 of the page's 4
    cursors = MemoryCursorStore(sink)
    with pytest.raises(ConnectionError):
        await poll_once(sink, POLLED[:1], config=sandbox.config(), cursors=cursors)
    sink.fail_after = 3  # the second attempt publishes one more, then fails again
    with pytest.raises(ConnectionError):
        await poll_once(sink, POLLED[:1], config=sandbox.config(), cursors=cursors)
    sink.fail_after = None
    await poll_once(sink, POLLED[:1], config=sandbox.config(), cursors=cursors)
    assert len(sink.keys) == 10 == len(set(sink.keys))
