"""The Dext API poller, against a *provisional* items contract.

Dext documents no public items API (reference/dext-api.md), so this module is the one place
that knows the contract; if partner access brings a different one, only this file changes.
The contract follows the legacy Receipt Bank API (OAuth2 bearer tokens, its item fields) and
adds what a poller needs:

- ``POST {token_url}`` (default ``{url}/oauth/token``), form-encoded OAuth2
  ``client_credentials`` or ``refresh_token`` grant; or a personal token per account.
- ``GET {url}/v1/accounts/{account}/items?status=ready&cursor=C&limit=N`` answers
  ``{"items": [...], "next_cursor": "...", "has_more": bool}``: items whose status is one of
  ``status`` that changed after cursor ``C``, oldest change first. An item carries
  ``document: {url, filename, content_type}``, the url being a signed download link.
- ``429`` with ``Retry-After`` / ``X-RateLimit-Reset`` when over the budget; every answer may
  carry ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``.

``billstream sandbox dext`` plays this contract over the sample set.

Configuration comes from the environment (secrets only from there):

- ``BILLSTREAM_DEXT_API_URL``: the API's base URL (required);
- ``BILLSTREAM_DEXT_CLIENT_ID`` and ``BILLSTREAM_DEXT_CLIENT_SECRET``: the partner app's
  OAuth2 client, used for every account without a personal token;
- ``BILLSTREAM_DEXT_TOKEN_<ACCOUNT>``: a personal bearer token for one Dext account
  (``acme-trading`` -> ``BILLSTREAM_DEXT_TOKEN_ACME_TRADING``);
- ``BILLSTREAM_DEXT_TOKEN_URL``, ``BILLSTREAM_DEXT_STATUSES`` (default ``ready``),
  ``BILLSTREAM_DEXT_PAGE_SIZE`` (100), ``BILLSTREAM_DEXT_POLL_INTERVAL`` (60 seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from adapters.dext.cursor import CursorState, CursorStore, Pending
from adapters.dext.items import ReceivedSink, SourceItem, canonical_item, env_suffix
from adapters.dext.links import document_reference, parse_reference, unavailable
from adapters.http import backoff, delay_seconds, retry_after
from domain.dext import check_item, document_ref, item_id
from domain.models import DocumentRef
from domain.tenants import Tenant

log = logging.getLogger("billstream.dext.api")

ENV_URL = "BILLSTREAM_DEXT_API_URL"
ENV_TOKEN_URL = "BILLSTREAM_DEXT_TOKEN_URL"
ENV_CLIENT_ID = "BILLSTREAM_DEXT_CLIENT_ID"
ENV_CLIENT_SECRET = "BILLSTREAM_DEXT_CLIENT_SECRET"
ENV_TOKEN_PREFIX = "BILLSTREAM_DEXT_TOKEN_"
ENV_STATUSES = "BILLSTREAM_DEXT_STATUSES"
ENV_PAGE_SIZE = "BILLSTREAM_DEXT_PAGE_SIZE"
ENV_INTERVAL = "BILLSTREAM_DEXT_POLL_INTERVAL"


def token_env(account: str) -> str:
    return f"{ENV_TOKEN_PREFIX}{env_suffix(account)}"


class DextApiError(Exception):
    """The API cannot be used as it is: ``kind`` is auth, access, contract or unavailable."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Retryable(Exception):
    """Worth another try after a backoff: connection trouble or a 5xx."""


@dataclass(frozen=True)
class DextApiConfig:
    url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # account -> token
    token_url: str | None = None
    statuses: tuple[str, ...] = ("ready",)
    page_size: int = 100
    interval: float = 60.0
    timeout: float = 30.0
    attempts: int = 5  # per request, for connection errors and 5xx
    rate_limit_waits: int = 20  # per request, for 429s
    max_wait: float = 120.0  # longest single wait a 429 may impose

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, accounts: Iterable[str] = ()
    ) -> DextApiConfig:
        env = os.environ if env is None else env
        url = env.get(ENV_URL, "").strip()
        if not url:
            raise DextApiError(
                "config",
                f"{ENV_URL} is not set: the Dext items API has no public address; point it "
                "at your partner endpoint or at `billstream sandbox dext`",
            )
        tokens = {a: env[token_env(a)] for a in accounts if env.get(token_env(a))}
        statuses = tuple(
            s.strip().lower() for s in env.get(ENV_STATUSES, "ready").split(",") if s.strip()
        )
        return cls(
            url=url.rstrip("/"),
            client_id=env.get(ENV_CLIENT_ID) or None,
            client_secret=env.get(ENV_CLIENT_SECRET) or None,
            tokens=tokens,
            token_url=env.get(ENV_TOKEN_URL) or None,
            statuses=statuses or ("ready",),
            page_size=int(env.get(ENV_PAGE_SIZE, "100")),
            interval=float(env.get(ENV_INTERVAL, "60")),
        )

    @classmethod
    def from_sandbox(cls, ready_line: Mapping[str, Any], **overrides: Any) -> DextApiConfig:
        """From the JSON line ``billstream sandbox dext`` prints when it is ready."""
        creds = ready_line["credentials"]
        return cls(
            url=str(ready_line["url"]).rstrip("/"),
            client_id=creds.get("client_id"),
            client_secret=creds.get("client_secret"),
            **overrides,
        )

    def env(self) -> dict[str, str]:
        """The environment that gives ``from_env`` this configuration (for child processes)."""
        out = {ENV_URL: self.url, ENV_STATUSES: ",".join(self.statuses)}
        out[ENV_PAGE_SIZE] = str(self.page_size)
        out[ENV_INTERVAL] = str(self.interval)
        if self.client_id and self.client_secret:
            out[ENV_CLIENT_ID] = self.client_id
            out[ENV_CLIENT_SECRET] = self.client_secret
        if self.token_url:
            out[ENV_TOKEN_URL] = self.token_url
        for account, token in self.tokens.items():
            out[token_env(account)] = token
        return out


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool


class DextApiClient:
    """One Dext account's view of the API: token handling, rate limits, retries."""

    def __init__(
        self,
        config: DextApiConfig,
        account: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.account = account
        self._personal = config.tokens.get(account)
        if self._personal is None and not (config.client_id and config.client_secret):
            raise DextApiError(
                "config",
                f"no credentials for Dext account {account!r}: set {token_env(account)}, or "
                f"{ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}",
            )
        self._http = httpx.AsyncClient(
            base_url=config.url,
            transport=transport,
            timeout=httpx.Timeout(config.timeout),
            headers={"Accept": "application/json", "User-Agent": "billstream-dext-poller"},
        )
        self._access: str | None = self._personal
        self._refresh: str | None = None
        self._expires_at = float("inf")
        self._not_before = 0.0  # when the rate-limit window lets us ask again
        self.rate_limited = 0  # 429s seen, for the summary

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> DextApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- tokens ----------------------------------------------------------------------------

    async def _token(self, force: bool = False) -> str:
        if self._personal is not None:
            return self._personal
        if not force and self._access and time.monotonic() < self._expires_at - 30:
            return self._access
        data = {
            "client_id": self.config.client_id or "",
            "client_secret": self.config.client_secret or "",
        }
        if self._refresh and not force:
            data |= {"grant_type": "refresh_token", "refresh_token": self._refresh}
        else:
            data |= {"grant_type": "client_credentials"}
        url = self.config.token_url or f"{self.config.url}/oauth/token"
        answer = await self._send("POST", url, data=data, authorized=False)
        if answer.status_code == 400 and data["grant_type"] == "refresh_token":
            self._refresh = None
            return await self._token(force=True)
        if answer.status_code in (400, 401, 403):
            raise DextApiError(
                "auth", f"Dext refused the client credentials (HTTP {answer.status_code})"
            )
        if answer.status_code != 200:
            raise DextApiError("contract", f"the token endpoint answered HTTP {answer.status_code}")
        try:
            body = answer.json()
            self._access = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise DextApiError(
                "contract", "the token endpoint's answer has no access_token"
            ) from None
        self._refresh = body.get("refresh_token") or self._refresh
        self._expires_at = time.monotonic() + float(body.get("expires_in") or 3600)
        return self._access

    # --- requests --------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        authorized: bool = True,
    ) -> httpx.Response:
        """One logical request: waits out rate limits, retries connection errors and 5xx."""
        refreshed = False
        waits = 0
        while True:
            delay = self._not_before - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            headers = {}
            if authorized:
                headers["Authorization"] = f"Bearer {await self._token()}"
            response = await self._with_retries(method, url, params, data, headers)
            self._note_budget(response)
            if response.status_code == 429:
                waits += 1
                self.rate_limited += 1
                if waits > self.config.rate_limit_waits:
                    raise DextApiError(
                        "rate_limited", f"still rate-limited after {waits - 1} waits"
                    )
                wait = self._retry_after(response)
                log.info("Dext account %s: rate-limited, waiting %.1f s", self.account, wait)
                self._not_before = time.monotonic() + wait
                continue
            if response.status_code == 401 and authorized and not refreshed:
                if self._personal is not None:
                    raise DextApiError(
                        "auth", f"Dext refused the token in {token_env(self.account)} (HTTP 401)"
                    )
                refreshed = True
                self._access = None
                await self._token(force=True)
                continue
            return response

    async def _with_retries(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(_Retryable),
                stop=stop_after_attempt(self.config.attempts),
                wait=lambda state: backoff(state.attempt_number, 15.0, base=0.5),
                reraise=True,
            ):
                with attempt:
                    try:
                        response = await self._http.request(
                            method, url, params=params, data=data, headers=headers
                        )
                    except httpx.TransportError as exc:
                        raise _Retryable(type(exc).__name__) from None
                    if response.status_code >= 500:
                        raise _Retryable(f"HTTP {response.status_code}")
                    return response
        except _Retryable as exc:
            raise DextApiError(
                "unavailable",
                f"Dext did not answer properly after {self.config.attempts} tries ({exc})",
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _note_budget(self, response: httpx.Response) -> None:
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset = delay_seconds(response.headers.get("X-RateLimit-Reset"))
        if remaining is not None and remaining.strip() == "0" and reset is not None:
            # The budget is spent: do not ask again before the window resets.
            self._not_before = max(
                self._not_before, time.monotonic() + min(reset, self.config.max_wait)
            )

    def _retry_after(self, response: httpx.Response) -> float:
        wait = retry_after(response.headers.get("Retry-After"))
        if wait is None:
            wait = delay_seconds(response.headers.get("X-RateLimit-Reset"))
        if wait is None:
            wait = 1.0
        return min(wait, self.config.max_wait) + random.uniform(0, 0.25)

    async def list_items(self, cursor: str | None, statuses: Sequence[str], limit: int) -> Page:
        params = {"status": ",".join(statuses), "limit": str(limit)}
        if cursor:
            params["cursor"] = cursor
        response = await self._send("GET", f"/v1/accounts/{self.account}/items", params=params)
        if response.status_code in (401, 403):
            raise DextApiError(
                "auth",
                f"Dext refused access to account {self.account!r} (HTTP {response.status_code})",
            )
        if response.status_code == 404:
            raise DextApiError(
                "access", f"Dext has no account {self.account!r} for these credentials"
            )
        if response.status_code != 200:
            raise DextApiError("contract", f"listing items answered HTTP {response.status_code}")
        try:
            # Numbers keep their exact text: an amount must never pass through a float.
            body = json.loads(response.content, parse_float=str, parse_int=str)
            items = body["items"]
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise TypeError("items is not a list of objects")
            next_cursor = body.get("next_cursor")
            has_more = body.get("has_more") is True
        except (ValueError, KeyError, TypeError) as exc:
            raise DextApiError("contract", f"the item listing is not as expected: {exc}") from None
        return Page(items, None if next_cursor is None else str(next_cursor), has_more)

    async def get_item(self, item_id: str) -> dict[str, Any]:
        """One item as Dext shows it now (its document link signed afresh)."""
        path = f"/v1/accounts/{self.account}/items/{quote(item_id, safe='')}"
        response = await self._send("GET", path)
        if response.status_code in (401, 403):
            raise DextApiError(
                "auth",
                f"Dext refused access to account {self.account!r} (HTTP {response.status_code})",
            )
        if response.status_code == 404:
            raise DextApiError("gone", f"Dext no longer has item {item_id!r}")
        if response.status_code != 200:
            raise DextApiError("contract", f"reading an item answered HTTP {response.status_code}")
        try:
            item = json.loads(response.content, parse_float=str, parse_int=str)
        except ValueError as exc:
            raise DextApiError("contract", f"the item is not JSON: {exc}") from None
        if not isinstance(item, dict):
            raise DextApiError("contract", "the item is not a JSON object")
        return item


@dataclass
class PollResult:
    account: str
    tenant: str
    published: int = 0
    pages: int = 0
    skipped: list[str] = field(default_factory=list)  # why items could not be published
    recovered: int = 0  # items of an interrupted page found already published


class AccountPoller:
    """Feeds one Dext account's ready items to the received topic, resuming where it was."""

    def __init__(
        self,
        client: DextApiClient,
        tenant: Tenant,
        sink: ReceivedSink,
        cursors: CursorStore,
        *,
        statuses: Sequence[str] = ("ready",),
        page_size: int = 100,
    ) -> None:
        if not tenant.dext_account:
            raise ValueError(f"tenant {tenant.id} has no dext_account")
        self.client = client
        self.account = tenant.dext_account
        self.tenant = tenant
        self.sink = sink
        self.cursors = cursors
        self.statuses = tuple(statuses)
        self.page_size = page_size
        self.source = f"dext-api/{self.account}"

    def _source_items(self, page: Page, cursor: str | None, result: PollResult) -> list[SourceItem]:
        by_key: dict[str, SourceItem] = {}
        for n, raw in enumerate(page.items):
            item, ref = canonical_item(raw)
            if ref is not None and item_id(item) is not None:
                # The signed link stays out of the log: events carry where the document is,
                # and the attach stage asks Dext for a fresh link (adapters.dext.links).
                ref = document_reference(self.account, str(item_id(item)), ref)
            refused = check_item(item)
            if refused:
                # Without a usable id, or too big for any stage to carry, an item cannot
                # enter the pipeline; say so loudly rather than invent or truncate one.
                messages = "; ".join(p.message for p in refused)
                why = f"item {n + 1} of the page after cursor {cursor or 'start'}: {messages}"
                log.error("Dext account %s: %s; it was not published", self.account, why)
                result.skipped.append(why)
                continue
            si = SourceItem(self.tenant.id, item, ref, f"cursor {cursor or 'start'}")
            by_key[si.key] = si
        return list(by_key.values())

    async def poll_once(self, stop: asyncio.Event | None = None) -> PollResult:
        """Read every page there is now; publish, then move the cursor past each page."""
        result = PollResult(self.account, self.tenant.id)
        state = await self.cursors.load(self.account)
        done: set[str] = set()
        if state.pending is not None:
            done = await self.cursors.published_since(state.pending)
            result.recovered = len(done)
            log.warning(
                "Dext account %s: the last run stopped mid-page; %d of its %d items had "
                "been published and are not sent again",
                self.account,
                len(done),
                len(state.pending.keys),
            )
        cursor = state.cursor
        while stop is None or not stop.is_set():
            page = await self.client.list_items(cursor, self.statuses, self.page_size)
            result.pages += 1
            batch = self._source_items(page, cursor, result)
            if batch:
                # Resuming an interrupted page, keep its older offsets: a second crash must
                # still see what the first attempt published.
                offsets = (
                    state.pending.offsets
                    if state.pending is not None
                    else await self.cursors.received_offsets()
                )
                pending = Pending(page.next_cursor, tuple(si.key for si in batch), offsets)
                await self.cursors.save(self.account, CursorState(cursor, pending))
                todo = [si for si in batch if si.key not in done]
                await asyncio.gather(
                    *(
                        self.sink.publish_received(
                            si.tenant,
                            si.item,
                            source=self.source,
                            document=si.document,
                            origin=si.origin,
                        )
                        for si in todo
                    )
                )
                result.published += len(todo)
            if page.next_cursor is None and page.has_more:
                raise DextApiError("contract", "a page says there is more but gives no cursor")
            new_cursor = cursor if page.next_cursor is None else page.next_cursor
            if batch or new_cursor != cursor or state.pending is not None:
                # Only now, with every publish acknowledged, does the cursor move on.
                await self.cursors.save(self.account, CursorState(new_cursor))
            cursor = new_cursor
            state = CursorState(cursor)
            done = set()
            if not page.has_more or not page.items:
                break
        return result

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set; errors wait for the next turn."""
        while not stop.is_set():
            try:
                result = await self.poll_once(stop)
                if result.published:
                    log.info("Dext account %s: %d items received", self.account, result.published)
            except DextApiError as exc:
                log.error("Dext account %s: %s", self.account, exc.message)
            except Exception:
                # The broker or the network failed mid-pass: the cursor and its intent are
                # consistent whatever the point, so the next turn simply resumes.
                log.exception("Dext account %s: the pass failed; retrying next turn", self.account)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


def tenants_by_account(
    tenants: Iterable[Tenant], accounts: Iterable[str] | None = None
) -> dict[str, Tenant]:
    """Dext account -> tenant, for the tenants that have one (optionally only ``accounts``)."""
    out: dict[str, Tenant] = {}
    for tenant in tenants:
        if tenant.dext_account:
            if tenant.dext_account in out:
                raise ValueError(
                    f"tenants {out[tenant.dext_account].id} and {tenant.id} both name Dext "
                    f"account {tenant.dext_account!r}"
                )
            out[tenant.dext_account] = tenant
    if accounts is not None:
        wanted = list(accounts)
        unknown = [a for a in wanted if a not in out]
        if unknown:
            raise ValueError(f"no tenant has Dext account {', '.join(map(repr, unknown))}")
        out = {a: out[a] for a in wanted}
    return out


async def poll_pass(
    sink: ReceivedSink,
    tenants: Iterable[Tenant],
    *,
    config: DextApiConfig,
    cursors: CursorStore,
    accounts: Iterable[str] | None = None,
    stop: asyncio.Event | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[PollResult]:
    """One complete pass over every tenant's Dext account: publish all ready items, move the
    cursors. Accounts are polled side by side; the first error is raised after the others
    finished their pass."""
    mapping = tenants_by_account(tenants, accounts)

    async def one(account: str, tenant: Tenant) -> PollResult:
        async with DextApiClient(config, account, transport=transport) as client:
            poller = AccountPoller(
                client,
                tenant,
                sink,
                cursors,
                statuses=config.statuses,
                page_size=config.page_size,
            )
            return await poller.poll_once(stop)

    outcomes = await asyncio.gather(
        *(one(a, t) for a, t in mapping.items()), return_exceptions=True
    )
    results: list[PollResult] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        results.append(outcome)
    return results


async def poll_once(
    sink: ReceivedSink,
    tenants: Iterable[Tenant],
    *,
    config: DextApiConfig,
    cursors: CursorStore,
    accounts: Iterable[str] | None = None,
    stop: asyncio.Event | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """``poll_pass``, returning how many items were published.

    ``sink`` is an entered ``streams.kafka.publish.Publisher``; ``cursors`` an entered
    ``KafkaCursorStore``; ``config`` e.g. ``DextApiConfig.from_sandbox(ready_line)``.
    """
    results = await poll_pass(
        sink,
        tenants,
        config=config,
        cursors=cursors,
        accounts=accounts,
        stop=stop,
        transport=transport,
    )
    return sum(r.published for r in results)


async def poll_forever(
    sink: ReceivedSink,
    tenants: Iterable[Tenant],
    *,
    config: DextApiConfig,
    cursors: CursorStore,
    stop: asyncio.Event,
    accounts: Iterable[str] | None = None,
) -> None:
    """One poller per account, every ``config.interval`` seconds, until ``stop`` is set."""
    mapping = tenants_by_account(tenants, accounts)
    clients = [DextApiClient(config, a) for a in mapping]
    try:
        pollers = [
            AccountPoller(
                c,
                mapping[c.account],
                sink,
                cursors,
                statuses=config.statuses,
                page_size=config.page_size,
            )
            for c in clients
        ]
        await asyncio.gather(*(p.run(config.interval, stop) for p in pollers))
    finally:
        for c in clients:
            await c.aclose()


class DextDocumentLinks:
    """Turns a ``dext:`` reference into today's signed link, through the Dext API."""

    def __init__(
        self, config: DextApiConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._config = config
        self._transport = transport
        self._clients: dict[str, DextApiClient] = {}
        self.requests = 0

    async def __call__(self, ref: DocumentRef, tenant: Tenant) -> DocumentRef:
        parsed = parse_reference(ref.url)
        if parsed is None:
            raise unavailable(ref, "its Dext reference is not valid")
        account, item_id, _ = parsed
        if account != tenant.dext_account:
            raise unavailable(ref, f"it belongs to Dext account {account!r}, not this tenant's")
        client = self._clients.get(account)
        try:
            if client is None:
                client = DextApiClient(self._config, account, transport=self._transport)
                self._clients[account] = client
            self.requests += 1
            item = await client.get_item(item_id)
        except DextApiError as exc:
            raise unavailable(ref, f"Dext did not give a fresh link ({exc})") from None
        fresh = document_ref(item)
        if fresh is None:
            raise unavailable(ref, "Dext no longer offers a document for the item")
        return fresh.model_copy(update={"filename": ref.filename, "content_type": ref.content_type})

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
