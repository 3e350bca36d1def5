"""The Sage Accounting v3.1 HTTP client: ``SageAccountingClient``, one per business.

``X-Business`` on every call, the per-business call and byte budgets (``budget``), the
bearer token refreshed once on a 401 (``oauth``), ``Retry-After`` honoured on 429 and 503,
and retries with capped, jittered backoff (``adapters.http``) where repeating is safe; every
other answer becomes a ``LedgerError`` (``errors``). The ledger port on top is
``adapters.sage_accounting.ledger``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from adapters import observability
from adapters.http import backoff
from adapters.http import retry_after as parse_retry_after
from adapters.sage_accounting import wire
from adapters.sage_accounting.budget import (
    Budget,
    BudgetTooSmall,
)
from adapters.sage_accounting.errors import from_response
from adapters.sage_accounting.oauth import Endpoints, SageOAuth
from adapters.sage_accounting.schema import check_request, check_response, spec
from domain.errors import LedgerError, Reason

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0  # seconds: the longest backoff between two tries of one call


@dataclass(frozen=True)
class _Request:
    """One operation ready to send (and to send again)."""

    op_id: str
    method: str
    template: str  # the Swagger path, for logs
    url: str
    query: dict[str, str]
    payload: bytes | None
    write: bool
    what: str


def _never_sent(exc: httpx.HTTPError) -> bool:
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _transport_error(exc: httpx.HTTPError, request: _Request) -> LedgerError:
    if _never_sent(exc):
        # never reached Sage: nothing happened there
        return LedgerError(
            Reason.UNAVAILABLE, f"Cannot reach Sage Accounting for {request.what} ({exc!r})."
        )
    return LedgerError(
        Reason.UNAVAILABLE,
        f"No answer from Sage Accounting for {request.what} ({type(exc).__name__}).",
        uncertain=request.write,
    )


class SageAccountingClient:
    """HTTP to one Sage business. One instance per tenant per worker, shared by all stages."""

    def __init__(
        self,
        *,
        endpoints: Endpoints,
        oauth: SageOAuth,
        business_id: str,
        tenant_id: str,
        budget: Budget | None = None,
        timeout: float = 30.0,
        validate: bool = False,
        max_attempts: int = 4,
        max_inline_wait: float = 10.0,
        concurrency: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.oauth = oauth
        self.business_id = business_id
        self.tenant_id = tenant_id
        self.budget = budget or Budget()
        self.validate = validate
        self.max_attempts = max_attempts
        self.max_inline_wait = max_inline_wait
        # Sage asks for low read concurrency; the budget covers the rate, this the overlap.
        self._inflight = asyncio.Semaphore(concurrency)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            limits=httpx.Limits(max_connections=concurrency * 2),
            transport=transport,
        )
        self.requests = 0
        self.retries = 0
        self.by_operation: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"SageAccountingClient(business={self.business_id!r}, api={self.endpoints.api!r})"

    def budget_snapshot(self) -> dict[str, Any]:
        snap = self.budget.snapshot()
        snap.update(
            business_id=self.business_id,
            requests=self.requests,
            retries=self.retries,
            token_refreshes=self.oauth.refreshes,
        )
        return snap

    def budgets_in_use(self) -> observability.Budgets:
        """Calls and request bytes in the current windows against their limits (gauge)."""
        snap = self.budget_snapshot()
        return {
            "calls": (snap["calls_in_window"], snap["call_limit"]),
            "request_bytes": (snap["bytes_in_window"], snap["byte_limit"]),
        }

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- one operation ---------------------------------------------------------------------------

    async def call(
        self,
        op_id: str,
        *,
        key: str | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        write: bool = False,
        idempotent: bool = True,
        what: str,
        ok: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """One Sage operation (by Swagger ``operationId``); 2xx and ``ok`` statuses return.

        ``write`` + not ``idempotent`` (attachments) means a failure after sending is
        reported as uncertain rather than retried: only a lookup can tell what happened.
        """
        request = self._request(op_id, key, params, body, write=write, what=what)
        safe_to_repeat = not write or idempotent
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                response, token = await self._send(request)
            except httpx.HTTPError as exc:
                if not self._may_resend(exc, attempt, safe_to_repeat):
                    raise _transport_error(exc, request) from None
                self.retries += 1
                await asyncio.sleep(backoff(attempt, MAX_BACKOFF))
                continue
            status = response.status_code
            data = self._json(response)
            if self.validate and (200 <= status < 300 or data is not None):
                check_response(op_id, status, data)
            if 200 <= status < 300 or status in ok:
                return status, data
            if status == 401 and not refreshed:
                refreshed = True
                await self.oauth.after_unauthorized(token)
                continue
            after = parse_retry_after(response.headers.get("Retry-After"))
            delay = self._retry_delay(status, after, attempt, safe_to_repeat)
            if delay is None:
                raise self._refusal(request, response, data, after)
            self.retries += 1
            if delay > 0:
                await asyncio.sleep(delay)

    def _request(
        self,
        op_id: str,
        key: str | None,
        params: Mapping[str, Any] | None,
        body: Any,
        *,
        write: bool,
        what: str,
    ) -> _Request:
        """The operation's method, URL, query string and JSON body, checked if asked to."""
        method, template, _ = spec().operation(op_id)
        path = template.replace("{key}", quote(key or "", safe=""))
        query = {k: v for k, v in (params or {}).items() if v is not None}
        query = {
            k: ("true" if v is True else "false" if v is False else str(v))
            for k, v in query.items()
        }
        if self.validate:
            check_request(op_id, body, query)
        payload = wire.dumps(body) if body is not None else None
        return _Request(
            op_id, method, template, self.endpoints.api + path, query, payload, write, what
        )

    async def _send(self, request: _Request) -> tuple[httpx.Response, str]:
        """Send once, within the concurrency slot and the budget; the answer and the token."""
        async with self._inflight:
            # Budget after the slot: a call counted is a call sent, so Sage sees the spacing
            # the budget made, not a bunch released by the semaphore. The token after the
            # budget: a long wait must not outlive it.
            try:
                await self.budget.acquire(len(request.payload or b""))
            except BudgetTooSmall as exc:
                raise LedgerError(
                    Reason.VALIDATION, f"Cannot send {request.what}: {exc}."
                ) from None
            token = await self.oauth.access_token()
            headers = {
                "Authorization": f"Bearer {token}",
                "X-Business": self.business_id,
                "Accept": "application/json",
            }
            if request.payload is not None:
                headers["Content-Type"] = "application/json"
            self.requests += 1
            self.by_operation[request.op_id] = self.by_operation.get(request.op_id, 0) + 1
            response = await observability.observed(
                self._http.request(
                    request.method,
                    request.url,
                    params=request.query,
                    content=request.payload,
                    headers=headers,
                ),
                system="sage_accounting",
                company=self.business_id,
                operation=request.op_id,
                client=self,
            )
        return response, token

    def _may_resend(self, exc: httpx.HTTPError, attempt: int, safe_to_repeat: bool) -> bool:
        """Whether a transport failure may be retried: one that never reached Sage always."""
        return attempt < self.max_attempts and (_never_sent(exc) or safe_to_repeat)

    def _retry_delay(
        self, status: int, after: float | None, attempt: int, safe_to_repeat: bool
    ) -> float | None:
        """Seconds to wait before retrying a refused call, or None to give up on it."""
        if status == 429:
            # Everyone sharing this business's budget waits, not only this caller.
            self.budget.hold_off(after if after is not None else 5.0)
            if attempt < self.max_attempts and (after or 0.0) <= self.max_inline_wait:
                return 0.0  # the budget's hold-off is the wait
            return None
        if status >= 500 and safe_to_repeat and attempt < self.max_attempts:
            floor = after if status == 503 and after is not None else 0.0
            return max(backoff(attempt, MAX_BACKOFF), floor)
        return None

    def _refusal(
        self, request: _Request, response: httpx.Response, data: Any, after: float | None
    ) -> LedgerError:
        """The ``LedgerError`` a final non-2xx answer means, logged with Sage's request id."""
        request_id = response.headers.get("x-request-id")
        err = from_response(
            response.status_code,
            data,
            what=request.what,
            tenant=self.tenant_id,
            request_id=request_id,
            retry_after=after,
            write=request.write,
        )
        log.warning(
            "sage-accounting %s %s -> %s (%s, request id %s)",
            request.method,
            request.template,
            response.status_code,
            err.reason.value,
            request_id,
        )
        return err

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if not response.content:
            return None
        if "json" not in response.headers.get("content-type", ""):
            return None
        try:
            return wire.loads(response.content)
        except ValueError:
            return None

    async def list_all(
        self, op_id: str, *, params: Mapping[str, Any], what: str, max_pages: int = 1000
    ) -> list[dict[str, Any]]:
        """Every item of a list operation, 200 per page.

        More than ``max_pages`` pages is an error, not a shorter list: a caller that reads
        "not in the list" as "not in Sage" would act on an answer it never got.
        """
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            _, data = await self.call(
                op_id, params={**params, "items_per_page": 200, "page": page}, what=what
            )
            batch = data.get("$items", []) if isinstance(data, dict) else []
            items.extend(batch)
            if not data or not data.get("$next") or not batch:
                return items
            if page >= max_pages:
                raise LedgerError(
                    Reason.UNAVAILABLE,
                    f"Sage answered {what} with more than {max_pages} pages of "
                    f"{len(batch)}; billstream does not act on a list it could not read whole.",
                )
            page += 1
