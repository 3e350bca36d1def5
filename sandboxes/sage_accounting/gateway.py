"""What every Sage Accounting sandbox API call goes through before its endpoint.

Latency, the bearer token, the business (``X-Business``), Sage's limits (calls per
minute, request bytes per hour, calls in flight: 429 with ``Retry-After``), the request
checked against Sage's Swagger definitions (422), injected faults (503 before the work,
a 502 page after it, or an answer too late) and the counters.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from adapters.sage_accounting import wire
from adapters.sage_accounting.schema import spec
from sandboxes.sage_accounting.answers import ApiError, issue, sage_json
from sandboxes.sage_accounting.core import SageCore
from sandboxes.sage_accounting.state import Business


class GatewayMixin(SageCore):
    """The API pipeline: auth, limits, faults, validation."""

    def api(
        self, op_id: str | None, handler: Callable[..., Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Wrap a handler with everything every API call goes through."""

        async def wrapped(request: web.Request) -> web.Response:
            route = f"{request.method} {request.match_info.route.resource.canonical}"  # type: ignore[union-attr]
            biz_id: str | None = None
            o = self.options
            try:
                if o.latency_ms:
                    await asyncio.sleep(o.latency_ms / 1000 * self.random.uniform(0.5, 1.5))
                raw = await request.read()
                self._authenticate(request)
                biz = self._business(request)
                biz_id = biz.id
                self._admit(biz, len(raw))
                body = self._body(op_id, request, raw)
                fault = self._fault()
                if fault == "before":
                    self.stats["faults"]["before"] += 1
                    raise ApiError(
                        503,
                        [issue("", "Service unavailable; try again.", "ServiceUnavailable")],
                        {"Retry-After": "1"},
                    )
                biz.inflight += 1
                try:
                    response = await handler(request, biz, body)
                finally:
                    biz.inflight -= 1
                if fault == "after":
                    self.stats["faults"]["after"] += 1
                    self._count(route, biz_id, 502)
                    return web.Response(
                        status=502,
                        text="<html><body>502 Bad Gateway</body></html>",
                        content_type="text/html",
                    )
                if fault == "timeout":
                    self.stats["faults"]["timeout"] += 1
                    await asyncio.sleep(o.hang_seconds)
                self._count(route, biz_id, response.status)
                return response
            except ApiError as err:
                self._count(route, biz_id, err.status)
                return sage_json(err.issues, err.status, err.headers)

        return wrapped

    def _business(self, request: web.Request) -> Business:
        wanted = request.headers.get("X-Business")
        if not wanted:
            return next(iter(self.businesses.values()))  # Sage: the user's lead business
        biz = self.businesses.get(wanted)
        if biz is None:
            raise ApiError(404, [issue("X-Business", "Business not found", "RecordNotFound")])
        return biz

    def _admit(self, biz: Business, nbytes: int) -> None:
        now = time.monotonic()
        o = self.options
        while biz.calls and biz.calls[0] <= now - o.rate_window:
            biz.calls.popleft()
        while biz.sent_bytes and biz.sent_bytes[0][0] <= now - o.byte_window:
            biz.sent_bytes.popleft()
        wait = 0.0
        if len(biz.calls) >= o.rate_limit:
            wait = biz.calls[len(biz.calls) - o.rate_limit] + o.rate_window - now
        used = sum(n for _, n in biz.sent_bytes)
        if used + nbytes > o.byte_limit:
            excess, freed = used + nbytes - o.byte_limit, 0
            for at, n in biz.sent_bytes:
                freed += n
                if freed >= excess:
                    wait = max(wait, at + o.byte_window - now)
                    break
            else:
                wait = max(wait, o.byte_window)  # bigger than the whole budget
        if o.max_concurrent and biz.inflight >= o.max_concurrent:
            wait = max(wait, 1.0)
        if wait > 0:
            self.stats["throttled"] += 1
            raise ApiError(
                429,
                [issue("", "Too many requests; slow down.", "TooManyRequests")],
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        biz.calls.append(now)
        biz.sent_bytes.append((now, nbytes))

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self.access_tokens.get(token)
        if expiry is None or time.time() >= expiry:
            raise ApiError(
                401,
                [issue("", "Access token invalid or expired.", "AuthenticationFailure")],
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    def _count(self, route: str, biz_id: str | None, status: int) -> None:
        s = self.stats
        s["requests"] += 1
        s["by_route"][route] = s["by_route"].get(route, 0) + 1
        key = str(status)
        s["by_status"][key] = s["by_status"].get(key, 0) + 1
        if biz_id:
            s["by_business"][biz_id] = s["by_business"].get(biz_id, 0) + 1

    def _fault(self) -> str | None:
        o = self.options
        if o.fail_rate > 0 and self.random.random() < o.fail_rate:
            return self.random.choice(o.fail_modes)
        return None

    def _body(self, op_id: str | None, request: web.Request, raw: bytes) -> Any:
        body: Any = None
        if raw:
            try:
                body = wire.loads(raw)
            except ValueError:
                raise ApiError(
                    400, [issue("", "The request body is not JSON.", "InvalidJSON")]
                ) from None
        if op_id is None:
            return body
        errors = spec().request_errors(op_id, body, dict(request.query))
        if errors:
            self.stats["schema_violations"] += 1
            raise ApiError(
                422,
                [issue(e.split(":", 1)[0], e.split(":", 1)[-1].strip()) for e in errors[:20]],
            )
        return body
