"""The Intacct sandbox's gateway: one XML request in, one XML response out.

It checks the sender in the control block and the login or session in the authentication
block, holds each company to ``--concurrency`` requests in flight (HTTP 429 ``GW-0010``),
injects the faults asked for, and runs the functions: ``transaction="true"`` rolls them all
back when one fails, ``uniqueid`` refuses a control id that already ran. ``getAPISession``
opens the sessions that later requests sign in with.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Mapping
from xml.etree.ElementTree import Element

from aiohttp import web

from adapters.intacct.xml import (
    EnvelopeError,
    ErrorDetail,
    Function,
    ParsedRequest,
    authentication_failure,
    control_failure,
    element,
    parse_request,
    result_element,
    success_response,
)
from sandboxes.intacct.core import Context, Reply, SandboxCore
from sandboxes.intacct.errors import (
    E_AUTH,
    E_FIELD,
    E_NOT_ALONE,
    E_PARSE,
    E_REPEATED,
    ROLLED_BACK,
    Refusal,
    refuse,
)
from sandboxes.intacct.state import Company, Session

GATEWAY_PATH = "/ia/xml/xmlgw.phtml"

SESSION_GATEWAY_PATH = "/na1/ia/xml/xmlgw.phtml"  # the "session endpoint" getAPISession names


def xml_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=body, status=status, content_type="application/xml", charset="utf-8", headers=headers
    )


class GatewayMixin(SandboxCore):
    """Requests, sign-in, sessions, the concurrency limit and injected faults."""

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        self.stats.by_path[request.path] += 1
        body = await request.read()
        try:
            parsed = parse_request(body)
        except EnvelopeError as exc:
            return xml_response(
                control_failure(
                    [ErrorDetail(E_PARSE, "XML Parse schema error", str(exc))],
                )
            )
        company_key = self._company_of(parsed)
        self.stats.by_company[company_key] += 1
        if company_key and self._in_flight[company_key] >= self.config.concurrency:
            self.stats.rate_limited += 1
            return self._rate_limited(parsed)
        self._in_flight[company_key] += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight[company_key])
        try:
            if self.config.latency_ms:
                await asyncio.sleep(self.config.latency_ms / 1000)
            fault = self._next_fault()
            if fault:
                self.stats.faults[fault] += 1
            if fault == "rate_limit":
                return self._rate_limited(parsed)
            if fault == "unavailable":
                return web.Response(
                    status=503, text="Service Temporarily Unavailable", content_type="text/plain"
                )
            base_url = f"{request.scheme}://{request.host}"
            answer = self.process(parsed, base_url)
            if fault == "after_write":
                return web.Response(
                    status=524, text="A timeout occurred", content_type="text/plain"
                )
            if fault == "drop_after_write":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            if fault == "hang_after_write":
                await asyncio.sleep(self.config.hang_seconds)
                return web.Response(status=504, text="Gateway Timeout", content_type="text/plain")
            return xml_response(answer)
        finally:
            self._in_flight[company_key] -= 1

    def _company_of(self, req: ParsedRequest) -> str:
        if req.login is not None:
            return req.login.company_id.casefold()
        session = self.sessions.get(req.session_id or "")
        return session.company if session else ""

    def _next_fault(self) -> str | None:
        if self.fault_queue:
            queued = self.fault_queue.popleft()
            return None if queued == "ok" else queued
        if self.fail_rate and self.fail_modes and self._rng.random() < self.fail_rate:
            return self._rng.choice(self.fail_modes)
        return None

    def _rate_limited(self, parsed: ParsedRequest) -> web.Response:
        body = control_failure(
            [
                ErrorDetail(
                    "GW-0010",
                    "Rate limit exceeded",
                    f"Too many concurrent requests for this company: the limit is "
                    f"{self.config.concurrency}. Retry after a short wait.",
                    "Send fewer requests at once.",
                )
            ],
            sender_id=parsed.sender_id,
            control_id=parsed.control_id,
        )
        return xml_response(body, status=429, headers={"Retry-After": "1"})

    def process(self, req: ParsedRequest, base_url: str) -> bytes:
        """Answer one parsed request; synchronous, so each request sees consistent state."""
        cfg = self.config
        if req.sender_id != cfg.sender_id or req.sender_password != cfg.sender_password:
            return control_failure(
                # Intacct leaves description empty and puts the text in description2.
                [ErrorDetail(E_AUTH, "", "Incorrect Intacct XML Partner ID or password.")],
                sender_id=req.sender_id,
                control_id=req.control_id,
            )
        if req.dtd_version not in {"3.0", "2.1"}:
            return control_failure(
                [ErrorDetail(E_PARSE, "XML Parse schema error", f"dtdversion {req.dtd_version!r}")],
                sender_id=req.sender_id,
                control_id=req.control_id,
            )
        auth = self._authenticate(req)
        if isinstance(auth, bytes):
            return auth
        company, user_id, location_id = auth
        now = dt.datetime.now(dt.UTC).astimezone().replace(microsecond=0)
        results = self._run_functions(req, company, user_id, location_id, base_url)
        return success_response(
            sender_id=req.sender_id,
            control_id=req.control_id,
            unique_id=req.unique_id,
            user_id=user_id,
            company_id=company.id,
            location_id=location_id,
            session_timestamp=now,
            session_timeout=now + dt.timedelta(seconds=cfg.session_timeout),
            results=results,
        )

    def _authenticate(self, req: ParsedRequest) -> tuple[Company, str, str] | bytes:
        def failure(*errors: ErrorDetail, user: str = "", company: str = "") -> bytes:
            return authentication_failure(
                errors,
                sender_id=req.sender_id,
                control_id=req.control_id,
                unique_id=req.unique_id,
                user_id=user,
                company_id=company,
            )

        if req.login is not None:
            login = req.login
            company = self.companies.get(login.company_id.casefold())
            if company is None:
                return failure(
                    ErrorDetail(
                        E_AUTH,
                        "Invalid Web Services Authorization",
                        f"The sender ID '{req.sender_id}' is not authorized to make Web Services "
                        f"requests to company ID '{login.company_id}'.",
                        "Contact the company administrator to grant Web Services authorization "
                        "to this sender ID.",
                    ),
                    user=login.user_id,
                    company=login.company_id,
                )
            if login.user_id != self.config.user_id or login.password != self.config.user_password:
                return failure(
                    ErrorDetail(
                        E_AUTH,
                        "Sign-in information is incorrect",
                        "Sign-in information is incorrect. Please check your request.",
                    ),
                    user=login.user_id,
                    company=login.company_id,
                )
            return company, login.user_id, login.location_id or ""
        session = self.sessions.get(req.session_id or "")
        now = dt.datetime.now(dt.UTC)
        if session is None or session.expires <= now:
            if session is not None:
                self.sessions.pop(req.session_id or "", None)
            return failure(
                ErrorDetail(
                    E_AUTH,
                    "Sign-in information is incorrect",
                    "The session is invalid or has expired.",
                    "Request a new session with getAPISession.",
                )
            )
        session.expires = now + dt.timedelta(seconds=self.config.session_timeout)
        return self.companies[session.company], session.user_id, session.location_id

    def _run_functions(
        self,
        req: ParsedRequest,
        company: Company,
        user_id: str,
        location_id: str,
        base_url: str,
    ) -> list[Element]:
        outcomes: list[tuple[Function, Element | None, str | None, tuple[ErrorDetail, ...]]] = []
        tx_snapshot = company.snapshot() if req.transaction else None
        failed_at: int | None = None
        alone = len(req.functions) == 1
        for index, fn in enumerate(req.functions):
            self.stats.functions[fn.name] += 1
            if failed_at is not None:
                outcomes.append((fn, None, None, ()))
                continue
            snap = None if req.transaction else company.snapshot()
            ctx = Context(req, fn, base_url, company, user_id, location_id)
            try:
                if fn.name == "getAPISession" and not alone:
                    raise refuse(
                        E_NOT_ALONE,
                        "getAPISession must be the only function in its request",
                        "Send getAPISession in a request of its own.",
                    )
                if req.unique_id and fn.controlid in company.executed:
                    raise refuse(
                        E_REPEATED,
                        "Duplicate control id",
                        f"A successful transaction has already been recorded with the control "
                        f"id '{fn.controlid}'.",
                        "Use a new control id, or send uniqueid false to repeat the function.",
                    )
                data, key = self._call(fn, ctx)
            except Refusal as refusal:
                if snap is not None:
                    company.restore(snap)
                outcomes.append((fn, None, None, refusal.errors))
                if req.transaction:
                    failed_at = index
                continue
            if req.unique_id and fn.controlid:
                company.executed.add(fn.controlid)
            outcomes.append((fn, data, key, ()))
        if failed_at is not None and tx_snapshot is not None:
            company.restore(tx_snapshot)
            return [
                result_element(
                    status="failure" if i == failed_at else "aborted",
                    function=fn.name,
                    controlid=fn.controlid,
                    errors=(*errors, ROLLED_BACK) if i == failed_at else (ROLLED_BACK,),
                )
                for i, (fn, _, _, errors) in enumerate(outcomes)
            ]
        return [
            result_element(
                status="failure" if errors else "success",
                function=fn.name,
                controlid=fn.controlid,
                data=data,
                key=key,
                errors=errors,
            )
            for fn, data, key, errors in outcomes
        ]

    def _call(self, fn: Function, ctx: Context) -> Reply:
        handler = self.handlers.get(fn.name)
        if handler is None:
            raise refuse(
                E_PARSE,
                "XML Parse schema error",
                f"Unknown or unsupported function <{fn.name}>.",
            )
        try:
            return handler(ctx.company, fn.body, ctx)
        except ValueError as exc:
            # A malformed value anywhere in the function fails that function, as Intacct does.
            raise refuse(E_FIELD, "Invalid value", str(exc)) from None

    def _get_api_session(self, company: Company, body: Element, ctx: Context) -> Reply:
        location = ctx.location_id
        loc_el = body.find("locationid")
        if loc_el is not None:
            location = (loc_el.text or "").strip()
        session_id = secrets.token_urlsafe(24)
        self.sessions[session_id] = Session(
            company=company.id.casefold(),
            user_id=ctx.user_id,
            location_id=location,
            expires=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.config.session_timeout),
        )
        self.stats.sessions += 1
        api = element(
            "api",
            {
                "sessionid": session_id,
                "endpoint": ctx.base_url + SESSION_GATEWAY_PATH,
                "locationid": location,
            },
        )
        return element("data", api, {"listtype": "api", "count": "1"}), None
