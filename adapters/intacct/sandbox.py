"""A Sage Intacct stand-in: a stateful HTTP server speaking the XML Web Services API.

It answers the generic functions (``create``, ``update``, ``delete``, ``query``,
``readByQuery``, ``readMore``, ``read``, ``readByName``) for VENDOR, APBILL, APADJUSTMENT
and REPORTINGPERIOD, and the legacy functions the official SDKs still generate
(``getAPISession``, ``create_bill``, ``create_supdoc``, ``create_supdocfolder``, ``get``), so
any Intacct client can be pointed at it. It behaves like the gateway where it matters to a
client:

- the sender id/password are checked in the control block and the company and user in the
  authentication block, each failing with ``XL03000006`` where Intacct puts it;
- ``getAPISession`` must travel alone and returns a session id and a session endpoint;
  sessions expire (``--session-timeout``) and slide forward on use;
- bills dated in a closed period are refused with Intacct's closed-period text;
- past ``--concurrency`` requests in flight per company it answers HTTP 429 ``GW-0010``;
- ``transaction="true"`` rolls the whole operation back, the failed function ``failure``
  and the others ``aborted``, each with ``XL03000009``;
- ``uniqueid=true`` refuses a function whose control id already ran successfully;
- faults on demand (``--fail-rate``, ``--fail-modes``, or queued through the admin API):
  ``rate_limit`` (429 before anything runs), ``unavailable`` (503 before anything runs),
  ``after_write`` (HTTP 524 after the request was carried out), ``drop_after_write`` (the
  connection is closed after the request was carried out), ``hang_after_write`` (no answer
  for ``--hang-seconds``, then 504, after the request was carried out). The admin queue also
  takes ``ok``, to let a request through before the next queued fault.

Two answers are the sandbox's own choice, as our reference material does not confirm
Intacct's: a repeated control id under ``uniqueid`` fails with ``XL03000004`` ("A successful
transaction has already been recorded with the control id …"), and a ``getAPISession`` sent
with other functions fails with ``XL03000005``. Period closing is exposed on
REPORTINGPERIOD as a ``CLOSED`` field (``true``/``false``), one period per calendar month.

Admin endpoints (JSON, under ``/admin``) let tests and the demo harness close and open
periods, add companies, inspect bills/attachments per item key, read request counters,
delete a bill or an attachment by hand, and queue faults.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import random
import re
import secrets
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from aiohttp import web

from adapters.intacct.keys import item_key_of
from adapters.intacct.xml import (
    EnvelopeError,
    ErrorDetail,
    Function,
    ParsedRequest,
    authentication_failure,
    control_failure,
    element,
    element_value,
    format_date,
    parse_amount,
    parse_date,
    parse_request,
    result_element,
    success_response,
)

log = logging.getLogger("billstream.intacct.sandbox")

GATEWAY_PATH = "/ia/xml/xmlgw.phtml"
SESSION_GATEWAY_PATH = "/na1/ia/xml/xmlgw.phtml"  # the "session endpoint" getAPISession names

DEFAULT_PORT = 8910
DEFAULT_SENDER_ID = "billstream-sandbox"
DEFAULT_SENDER_PASSWORD = "sandbox-sender-secret"
DEFAULT_COMPANY = "BILLSTREAM-DEMO"
DEFAULT_USER_ID = "xml_gateway"
DEFAULT_USER_PASSWORD = "sandbox-user-secret"

FAULT_MODES = ("rate_limit", "unavailable", "after_write", "drop_after_write", "hang_after_write")
DEFAULT_FAULT_MODES = ("rate_limit", "unavailable", "after_write", "drop_after_write")
_AFTER_WRITE = {"after_write", "drop_after_write", "hang_after_write"}

E_AUTH = "XL03000006"
E_PARSE = "XL03000003"
E_ROLLED_BACK = "XL03000009"
E_REPEATED = "XL03000004"
E_NOT_ALONE = "XL03000005"
E_CREATE = "BL01001973"
E_FIELD = "BL03000018"
E_EXISTS = "BL34000061"
E_READ = "DL02000001"
E_QUERY = "Query Failed"

ROLLED_BACK = ErrorDetail(
    E_ROLLED_BACK,
    "The entire transaction in this operation has been rolled back due to an error.",
)

CLOSED_TEXT = (
    "Periods are closed. Your transaction date ({date}) is within a period that's been closed. "
    "You can add, modify, or delete a transaction only if the date of the transaction is within "
    "a period that's open."
)

OBJECT_FIELDS: dict[str, tuple[str, ...]] = {
    "VENDOR": (
        "RECORDNO",
        "VENDORID",
        "NAME",
        "TAXID",
        "STATUS",
        "PRINTAS",
        "EMAIL1",
        "TERMNAME",
        "CURRENCY",
        "VENDTYPE",
        "ONHOLD",
        "WHENCREATED",
        "WHENMODIFIED",
    ),
    "APBILL": (
        "RECORDNO",
        "RECORDID",
        "VENDORID",
        "VENDORNAME",
        "DOCNUMBER",
        "DESCRIPTION",
        "WHENCREATED",
        "WHENPOSTED",
        "WHENDUE",
        "TERMNAME",
        "CURRENCY",
        "BASECURR",
        "STATE",
        "TRX_TOTALENTERED",
        "TOTALENTERED",
        "TRX_TOTALDUE",
        "SUPDOCID",
        "WHENMODIFIED",
        "RECORDTYPE",
    ),
    "REPORTINGPERIOD": (
        "RECORDNO",
        "NAME",
        "HEADER1",
        "START_DATE",
        "END_DATE",
        "STATUS",
        "CLOSED",
    ),
}
OBJECT_FIELDS["APADJUSTMENT"] = OBJECT_FIELDS["APBILL"]
DOCUMENTS = {"APBILL": "APBILLITEMS", "APADJUSTMENT": "APADJUSTMENTITEMS"}
DATE_FIELDS = frozenset({"WHENCREATED", "WHENPOSTED", "WHENDUE", "START_DATE", "END_DATE"})
NUMBER_FIELDS = frozenset({"RECORDNO", "TRX_TOTALENTERED", "TOTALENTERED", "TRX_TOTALDUE"})
VENDOR_ID_MAX = 20
SUPDOC_ID_MAX = 20
PERIOD_YEARS = range(2000, 2100)


class Refusal(Exception):
    """A function fails with these errors (specific cause first, generic wrappers after)."""

    def __init__(self, *errors: ErrorDetail) -> None:
        super().__init__(errors[0].description2 or errors[0].description)
        self.errors = errors


def _support_id() -> str:
    # Intacct URL-encodes the ``~`` of its support ids inside description2.
    return f"{secrets.token_hex(4)}%7E{secrets.token_hex(6)}"


def _refuse(
    errorno: str, description: str, description2: str = "", correction: str = ""
) -> Refusal:
    text = f"{description2} [Support ID: {_support_id()}]" if description2 else ""
    return Refusal(ErrorDetail(errorno, description, text, correction))


def _cannot_create(obj: str, cause: ErrorDetail) -> Refusal:
    label = {"APBILL": "APBill", "APADJUSTMENT": "APAdjustment", "VENDOR": "Vendor"}.get(obj, obj)
    return Refusal(cause, ErrorDetail(E_CREATE, f"Could not create {label} record!"))


def _period(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _month_end(year: int, month: int) -> dt.date:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def _now_text() -> str:
    return dt.datetime.now().strftime("%m/%d/%Y %H:%M:%S")


def _money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), "f")


def _text(el: Element | None, path: str) -> str:
    if el is None:
        return ""
    found = el.find(path)
    return "" if found is None or found.text is None else found.text.strip()


def _find_ci(el: Element, name: str) -> Element | None:
    """Element names are upper case in generic functions; accept any case, as Intacct does."""
    for child in el:
        if child.tag.upper() == name.upper():
            return child
    return None


# -- state ----------------------------------------------------------------------------------


@dataclass
class Company:
    id: str
    vendors: dict[int, dict[str, str]] = field(default_factory=dict)
    # APBILL and APADJUSTMENT records: field -> text, plus "_object" and "_lines".
    documents: dict[int, dict[str, Any]] = field(default_factory=dict)
    supdocs: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, str]] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    executed: set[str] = field(default_factory=set)
    accounts: set[str] | None = None  # a chart of accounts to check ACCOUNTNO against
    vendor_sequence: bool = False  # VENDORID auto-numbering (document sequencing)

    def snapshot(self) -> tuple[Any, ...]:
        # Records are replaced, never changed in place, so shallow copies are a full snapshot.
        return (
            dict(self.vendors),
            dict(self.documents),
            dict(self.supdocs),
            dict(self.folders),
            set(self.closed),
            set(self.executed),
        )

    def restore(self, snap: tuple[Any, ...]) -> None:
        (
            self.vendors,
            self.documents,
            self.supdocs,
            self.folders,
            self.closed,
            self.executed,
        ) = snap

    def period_closed(self, day: dt.date) -> bool:
        return _period(day) in self.closed

    def rows(self, obj: str) -> list[dict[str, Any]]:
        if obj == "VENDOR":
            return list(self.vendors.values())
        if obj in DOCUMENTS:
            return [r for r in self.documents.values() if r["_object"] == obj]
        if obj == "REPORTINGPERIOD":
            return self._periods()
        raise _refuse(E_QUERY, f"Object definition {obj} not found")

    def _periods(self) -> list[dict[str, Any]]:
        rows = []
        for year in PERIOD_YEARS:
            for month in range(1, 13):
                start = dt.date(year, month, 1)
                rows.append(
                    {
                        "RECORDNO": str((year - PERIOD_YEARS.start) * 12 + month),
                        "NAME": start.strftime("Month Ended %B %Y"),
                        "HEADER1": start.strftime("%B %Y"),
                        "START_DATE": format_date(start),
                        "END_DATE": format_date(_month_end(year, month)),
                        "STATUS": "active",
                        "CLOSED": "true" if _period(start) in self.closed else "false",
                    }
                )
        return rows


@dataclass
class _Session:
    company: str
    user_id: str
    location_id: str
    expires: dt.datetime


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    fail_modes: tuple[str, ...] = DEFAULT_FAULT_MODES
    hang_seconds: float = 30.0
    closed_periods: tuple[str, ...] = ()
    concurrency: int = 2
    sender_id: str = DEFAULT_SENDER_ID
    sender_password: str = dataclasses.field(default=DEFAULT_SENDER_PASSWORD, repr=False)
    companies: tuple[str, ...] = (DEFAULT_COMPANY,)
    user_id: str = DEFAULT_USER_ID
    user_password: str = dataclasses.field(default=DEFAULT_USER_PASSWORD, repr=False)
    session_timeout: float = 3600.0
    vendor_sequence: bool = False
    state_dir: Path | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail rate must be between 0 and 1")
        unknown = set(self.fail_modes) - set(FAULT_MODES)
        if unknown:
            raise ValueError(f"unknown fail modes: {', '.join(sorted(unknown))}")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        for period in self.closed_periods:
            _check_period(period)
        if not self.companies:
            raise ValueError("at least one company is needed")


def _check_period(period: str) -> str:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}", period):
            raise ValueError
        dt.date.fromisoformat(f"{period}-01")
    except ValueError:
        raise ValueError(f"a period is YYYY-MM with a month 01-12, not {period!r}") from None
    return period


@dataclass
class Stats:
    requests: int = 0
    by_path: collections.Counter[str] = field(default_factory=collections.Counter)
    by_company: collections.Counter[str] = field(default_factory=collections.Counter)
    functions: collections.Counter[str] = field(default_factory=collections.Counter)
    rate_limited: int = 0
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    sessions: int = 0
    bills_created: int = 0
    supdocs_created: int = 0
    vendors_created: int = 0
    max_in_flight: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_path": dict(self.by_path),
            "by_company": dict(self.by_company),
            "functions": dict(self.functions),
            "function_total": sum(self.functions.values()),
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "sessions": self.sessions,
            "bills_created": self.bills_created,
            "supdocs_created": self.supdocs_created,
            "vendors_created": self.vendors_created,
            "max_in_flight": self.max_in_flight,
        }


# -- the gateway ----------------------------------------------------------------------------


Handler = Callable[
    ["IntacctSandbox", Company, Element, "_Context"], tuple[Element | None, str | None]
]


@dataclass
class _Context:
    request: ParsedRequest
    function: Function
    base_url: str
    company: Company
    user_id: str
    location_id: str


class IntacctSandbox:
    """The sandbox's state and its aiohttp application."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.companies: dict[str, Company] = {}
        self.sessions: dict[str, _Session] = {}
        self.stats = Stats()
        self.fault_queue: collections.deque[str] = collections.deque()
        self.fail_rate = config.fail_rate
        self.fail_modes = tuple(config.fail_modes)
        self._rng = random.Random(config.seed)
        self._recordno = 1000
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._result_sets: dict[str, dict[str, Any]] = {}
        for company in config.companies:
            self.add_company(company)
        if config.state_dir is not None:
            self._load(config.state_dir / "intacct-sandbox.json")

    # -- companies ------------------------------------------------------------------------

    def add_company(self, company_id: str, *, accounts: Iterable[str] | None = None) -> Company:
        key = company_id.casefold()
        company = self.companies.get(key)
        if company is None:
            company = Company(
                id=company_id,
                closed=set(self.config.closed_periods),
                vendor_sequence=self.config.vendor_sequence,
            )
            self.companies[key] = company
        if accounts is not None:
            company.accounts = set(accounts)
        return company

    def company(self, company_id: str) -> Company:
        company = self.companies.get(company_id.casefold())
        if company is None:
            raise KeyError(company_id)
        return company

    def _next_recordno(self) -> int:
        self._recordno += 1
        return self._recordno

    # -- HTTP -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(GATEWAY_PATH, self._gateway)
        app.router.add_post(SESSION_GATEWAY_PATH, self._gateway)
        admin = [
            web.get("/admin/health", self._admin_health),
            web.get("/admin/stats", self._admin_stats),
            web.post("/admin/stats/reset", self._admin_reset_stats),
            web.post("/admin/companies", self._admin_add_company),
            web.post("/admin/periods", self._admin_period),
            web.get("/admin/inventory", self._admin_inventory),
            web.get("/admin/bills", self._admin_bills),
            web.get("/admin/vendors", self._admin_vendors),
            web.get("/admin/supdocs", self._admin_supdocs),
            web.delete("/admin/bills/{company}/{recordno}", self._admin_delete_bill),
            web.delete("/admin/attachments/{company}/{recordno}", self._admin_delete_attachment),
            web.post("/admin/faults", self._admin_faults),
            web.post("/admin/sessions/expire", self._admin_expire_sessions),
        ]
        app.router.add_routes(admin)
        return app

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

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        self.stats.by_path[request.path] += 1
        body = await request.read()
        try:
            parsed = parse_request(body)
        except EnvelopeError as exc:
            return _xml(
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
            return _xml(answer)
        finally:
            self._in_flight[company_key] -= 1

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
        return _xml(body, status=429, headers={"Retry-After": "1"})

    # -- one request ----------------------------------------------------------------------

    def process(self, req: ParsedRequest, base_url: str) -> bytes:
        """Answer one parsed request; synchronous, so each request sees consistent state."""
        cfg = self.config
        if req.sender_id != cfg.sender_id or req.sender_password != cfg.sender_password:
            return control_failure(
                [ErrorDetail(E_AUTH, "Incorrect Intacct XML Partner ID or password.")],
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
            ctx = _Context(req, fn, base_url, company, user_id, location_id)
            try:
                if fn.name == "getAPISession" and not alone:
                    raise _refuse(
                        E_NOT_ALONE,
                        "getAPISession must be the only function in its request",
                        "Send getAPISession in a request of its own.",
                    )
                if req.unique_id and fn.controlid in company.executed:
                    raise _refuse(
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

    def _call(self, fn: Function, ctx: _Context) -> tuple[Element | None, str | None]:
        handler = _HANDLERS.get(fn.name)
        if handler is None:
            raise _refuse(
                E_PARSE,
                "XML Parse schema error",
                f"Unknown or unsupported function <{fn.name}>.",
            )
        try:
            return handler(self, ctx.company, fn.body, ctx)
        except ValueError as exc:
            # A malformed value anywhere in the function fails that function, as Intacct does.
            raise _refuse(E_FIELD, "Invalid value", str(exc)) from None

    # -- getAPISession --------------------------------------------------------------------

    def _get_api_session(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        location = ctx.location_id
        loc_el = body.find("locationid")
        if loc_el is not None:
            location = (loc_el.text or "").strip()
        session_id = secrets.token_urlsafe(24)
        self.sessions[session_id] = _Session(
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

    # -- generic create / update / delete -------------------------------------------------

    def _create(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        created = []
        for obj_el in body:
            obj = obj_el.tag.upper()
            if obj == "VENDOR":
                created.append(self._create_vendor(company, obj_el))
            elif obj in DOCUMENTS:
                fields, lines = _document_fields(obj_el, obj)
                recordno = self._create_document(company, obj, fields, lines)
                created.append(element(obj.lower(), {"RECORDNO": str(recordno)}))
            else:
                raise _refuse(E_CREATE, f"Object {obj} is not supported by this sandbox")
        if not created:
            raise _refuse(E_FIELD, "Required field missing", "create holds no object.")
        return element("data", created, {"listtype": "objects", "count": str(len(created))}), None

    def _create_vendor(self, company: Company, el: Element) -> Element:
        values = {k: v for k, v in _flat(el).items() if isinstance(v, str)}
        contact = _find_ci(el, "DISPLAYCONTACT")
        printas = _text(contact, "PRINTAS") if contact is not None else ""
        name = values.get("NAME", "")
        if not name:
            raise _cannot_create("VENDOR", _missing("NAME"))
        if contact is None or not printas:
            raise _cannot_create("VENDOR", _missing("DISPLAYCONTACT.PRINTAS"))
        vendor_id = values.get("VENDORID", "")
        if not vendor_id:
            if not company.vendor_sequence:
                raise _cannot_create("VENDOR", _missing("VENDORID"))
            vendor_id = f"V{len(company.vendors) + 1:05d}"
            while any(v["VENDORID"] == vendor_id for v in company.vendors.values()):
                vendor_id = f"V{int(vendor_id[1:]) + 1:05d}"
        if len(vendor_id) > VENDOR_ID_MAX:
            raise _cannot_create(
                "VENDOR",
                ErrorDetail(
                    E_FIELD,
                    "Field too long",
                    f"VENDORID '{vendor_id}' is longer than {VENDOR_ID_MAX} characters.",
                ),
            )
        if any(v["VENDORID"].casefold() == vendor_id.casefold() for v in company.vendors.values()):
            raise _cannot_create(
                "VENDOR",
                ErrorDetail(
                    E_EXISTS,
                    "Another Vendor with the given value(s) already exists",
                    f"Another record with the value '{vendor_id}' already exists.",
                    "Use a unique value instead.",
                ),
            )
        recordno = self._next_recordno()
        now = _now_text()
        company.vendors[recordno] = {
            "RECORDNO": str(recordno),
            "VENDORID": vendor_id,
            "NAME": name,
            "TAXID": values.get("TAXID", ""),
            "STATUS": values.get("STATUS", "active") or "active",
            "PRINTAS": printas,
            "EMAIL1": _text(contact, "EMAIL1") if contact is not None else "",
            "TERMNAME": values.get("TERMNAME", ""),
            "CURRENCY": values.get("CURRENCY", ""),
            "VENDTYPE": values.get("VENDTYPE", ""),
            "ONHOLD": values.get("ONHOLD", "false"),
            "WHENCREATED": now,
            "WHENMODIFIED": now,
        }
        self.stats.vendors_created += 1
        return element("vendor", {"RECORDNO": str(recordno), "VENDORID": vendor_id})

    def _vendor_by_id(self, company: Company, vendor_id: str) -> dict[str, str] | None:
        for vendor in company.vendors.values():
            if vendor["VENDORID"].casefold() == vendor_id.casefold():
                return vendor
        return None

    def _create_document(
        self,
        company: Company,
        obj: str,
        fields: dict[str, str],
        lines: list[dict[str, Any]],
    ) -> int:
        draft = fields.get("ACTION", "").casefold() == "draft"
        vendor_id = fields.get("VENDORID", "")
        vendor = self._vendor_by_id(company, vendor_id) if vendor_id else None
        if not vendor_id and not draft:
            raise _cannot_create(obj, _missing("VENDORID"))
        if vendor_id and vendor is None:
            raise _cannot_create(
                obj,
                ErrorDetail(
                    E_CREATE, "Invalid Vendor", f"Vendor '{vendor_id}' specified is not valid."
                ),
            )
        created = self._date(obj, fields, "WHENCREATED", required=not draft)
        posted = self._date(obj, fields, "WHENPOSTED", required=False)
        due = self._date(obj, fields, "WHENDUE", required=False)
        if obj == "APBILL" and not draft and due is None and not fields.get("TERMNAME"):
            raise _cannot_create(obj, _missing("WHENDUE"))
        posting = posted or created
        if posting is not None and company.period_closed(posting):
            raise _closed(obj, posting)
        if not lines:
            raise _cannot_create(
                obj,
                ErrorDetail(E_FIELD, "Required field missing", "A bill needs at least one line."),
            )
        total = Decimal(0)
        clean_lines = []
        for number, line in enumerate(lines, start=1):
            clean, amount = self._line(company, obj, number, line)
            clean_lines.append(clean)
            total += amount
        supdoc = fields.get("SUPDOCID", "")
        if supdoc and supdoc not in company.supdocs:
            raise _cannot_create(
                obj,
                ErrorDetail(
                    E_CREATE, "Invalid attachment", f"Attachment '{supdoc}' does not exist."
                ),
            )
        recordno = self._next_recordno()
        now = _now_text()
        record: dict[str, Any] = {name: "" for name in OBJECT_FIELDS[obj]}
        record.update({k: v for k, v in fields.items() if k in OBJECT_FIELDS[obj]})
        record.update(
            {
                "RECORDNO": str(recordno),
                "VENDORNAME": vendor["NAME"] if vendor else "",
                "WHENCREATED": format_date(created) if created else "",
                "WHENPOSTED": format_date(posted) if posted else "",
                "WHENDUE": format_date(due) if due else "",
                "STATE": "Draft" if draft else "Posted",
                "TRX_TOTALENTERED": _money(total),
                "TOTALENTERED": _money(total),
                "TRX_TOTALDUE": _money(total),
                "WHENMODIFIED": now,
                "RECORDTYPE": obj.lower(),
                "_object": obj,
                "_lines": clean_lines,
            }
        )
        company.documents[recordno] = record
        self.stats.bills_created += 1
        return recordno

    def _date(
        self, obj: str, fields: Mapping[str, str], name: str, *, required: bool
    ) -> dt.date | None:
        raw = fields.get(name, "")
        if not raw:
            if required:
                raise _cannot_create(obj, _missing(name))
            return None
        try:
            return parse_date(raw)
        except ValueError:
            raise _cannot_create(
                obj,
                ErrorDetail(
                    E_FIELD, "Invalid date", f"Illegal format for {name}: '{raw}'. Use mm/dd/yyyy."
                ),
            ) from None

    def _line(
        self, company: Company, obj: str, number: int, line: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Decimal]:
        account = str(line.get("ACCOUNTNO") or "")
        if not account and not line.get("ACCOUNTLABEL"):
            raise _cannot_create(obj, _missing(f"ACCOUNTNO (line {number})"))
        if account and company.accounts is not None and account not in company.accounts:
            raise _cannot_create(
                obj, ErrorDetail(E_CREATE, "Invalid account", f"Account {account} is not valid")
            )
        try:
            amount = parse_amount(str(line.get("TRX_AMOUNT") or ""))
        except ValueError:
            raise _cannot_create(
                obj,
                ErrorDetail(
                    E_FIELD,
                    "Invalid amount",
                    f"Illegal format for TRX_AMOUNT on line {number}: "
                    f"'{line.get('TRX_AMOUNT', '')}'.",
                ),
            ) from None
        taxes = []
        raw_taxes = line.get("TAXENTRIES")
        entries = raw_taxes.get("TAXENTRY", []) if isinstance(raw_taxes, dict) else []
        for entry in entries if isinstance(entries, list) else [entries]:
            if not isinstance(entry, dict) or not entry.get("DETAILID"):
                raise _cannot_create(obj, _missing(f"TAXENTRY.DETAILID (line {number})"))
            tax = parse_amount(str(entry.get("TRX_TAX") or "0"))
            taxes.append({"DETAILID": str(entry["DETAILID"]), "TRX_TAX": _money(tax)})
            amount += tax
        clean: dict[str, Any] = {k: v for k, v in line.items() if isinstance(v, str)}
        clean["TRX_AMOUNT"] = _money(parse_amount(str(line["TRX_AMOUNT"])))
        if taxes:
            clean["TAXENTRIES"] = taxes
        return clean, amount

    def _update(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        updated = []
        for obj_el in body:
            obj = obj_el.tag.upper()
            values = {k: v for k, v in _flat(obj_el).items() if isinstance(v, str)}
            if obj == "VENDOR":
                vendor = None
                if values.get("RECORDNO", "").isdigit():
                    vendor = company.vendors.get(int(values["RECORDNO"]))
                elif values.get("VENDORID"):
                    vendor = self._vendor_by_id(company, values["VENDORID"])
                if vendor is None:
                    raise _refuse(E_CREATE, "Could not update Vendor record!", "No such vendor.")
                changes = {k: v for k, v in values.items() if k in OBJECT_FIELDS["VENDOR"]}
                changes.pop("RECORDNO", None)
                changes.pop("VENDORID", None)
                new = {**vendor, **changes, "WHENMODIFIED": _now_text()}
                company.vendors[int(vendor["RECORDNO"])] = new
                updated.append(
                    element("vendor", {"RECORDNO": new["RECORDNO"], "VENDORID": new["VENDORID"]})
                )
            elif obj in DOCUMENTS:
                updated.append(self._update_document(company, obj, obj_el, values))
            else:
                raise _refuse(E_CREATE, f"Object {obj} is not supported by this sandbox")
        return element("data", updated, {"listtype": "objects", "count": str(len(updated))}), None

    def _update_document(
        self, company: Company, obj: str, obj_el: Element, values: dict[str, str]
    ) -> Element:
        label = {"APBILL": "APBill", "APADJUSTMENT": "APAdjustment"}[obj]
        recordno = values.get("RECORDNO", "")
        record = company.documents.get(int(recordno)) if recordno.isdigit() else None
        if record is None or record["_object"] != obj:
            raise _refuse(
                E_CREATE,
                f"Could not update {label} record!",
                f"No {obj} with RECORDNO '{recordno}'.",
            )
        when = record.get("WHENPOSTED") or record.get("WHENCREATED")
        if when and company.period_closed(parse_date(when)):
            raise Refusal(
                ErrorDetail(
                    E_CREATE, f"Could not update {label} record!", CLOSED_TEXT.format(date=when)
                ),
            )
        supdoc = values.get("SUPDOCID")
        if supdoc and supdoc not in company.supdocs:
            raise _refuse(
                E_CREATE,
                f"Could not update {label} record!",
                f"Attachment '{supdoc}' does not exist.",
            )
        changes = {
            k: v
            for k, v in values.items()
            if k in OBJECT_FIELDS[obj]
            and k not in {"RECORDNO", "STATE", "RECORDTYPE"}
            and not k.startswith("TRX_TOTAL")
            and k != "TOTALENTERED"
        }
        new = {**record, **changes, "WHENMODIFIED": _now_text()}
        company.documents[int(recordno)] = new
        return element(obj.lower(), {"RECORDNO": recordno})

    def _delete(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        obj = _text(body, "object").upper()
        keys = [k.strip() for k in _text(body, "keys").split(",") if k.strip()]
        for key in keys:
            if obj == "VENDOR":
                if not key.isdigit() or company.vendors.pop(int(key), None) is None:
                    raise _refuse(E_CREATE, "Could not delete Vendor record!", f"No vendor {key}.")
            elif obj in DOCUMENTS:
                record = company.documents.get(int(key)) if key.isdigit() else None
                if record is None or record["_object"] != obj:
                    raise _refuse(E_CREATE, "Could not delete record!", f"No {obj} {key}.")
                when = record.get("WHENPOSTED") or record.get("WHENCREATED")
                if when and company.period_closed(parse_date(when)):
                    raise Refusal(
                        ErrorDetail(
                            E_CREATE, "Could not delete record!", CLOSED_TEXT.format(date=when)
                        )
                    )
                del company.documents[int(key)]
            else:
                raise _refuse(E_CREATE, f"Object {obj} is not supported by this sandbox")
        return None, None

    # -- reading --------------------------------------------------------------------------

    def _query(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        obj = _text(body, "object").upper()
        rows = company.rows(obj)
        select = body.find("select")
        fields = [
            f.text.strip().upper()
            for f in (select.findall("field") if select is not None else [])
            if f.text
        ]
        if not fields:
            raise _refuse(E_QUERY, "Query Failed", "select must name at least one field.")
        _check_fields(obj, fields)
        options = body.find("options")
        ci = _text(options, "caseinsensitive").lower() == "true"
        flt = body.find("filter")
        if flt is not None:
            conds = list(flt)
            if len(conds) != 1:
                raise _refuse(E_QUERY, "Query Failed", "filter must hold exactly one condition.")
            rows = [r for r in rows if _matches(conds[0], r, ci)]
        orderby = body.find("orderby")
        if orderby is not None:
            for order in reversed(orderby.findall("order")):
                name = _text(order, "field").upper()
                _check_fields(obj, [name])
                descending = order.find("descending") is not None
                rows.sort(key=functools.partial(_row_key, name), reverse=descending)
        pagesize = _bounded(_text(body, "pagesize"), 100, 2000)
        offset = max(int(_text(body, "offset") or 0), 0)
        page = rows[offset : offset + pagesize]
        data = element(
            "data",
            [element(obj, {f: str(r.get(f, "")) for f in fields}) for r in page],
            {
                "listtype": obj,
                "totalcount": str(len(rows)),
                "offset": str(offset),
                "count": str(len(page)),
                "numremaining": str(max(len(rows) - offset - len(page), 0)),
            },
        )
        return data, None

    def _read_by_query(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        obj = _text(body, "object").upper()
        rows = company.rows(obj)
        fields = _field_list(obj, _text(body, "fields"))
        text = _text(body, "query")
        if text:
            try:
                predicate = parse_sql(text)
            except ValueError as exc:
                raise _refuse(E_QUERY, "Query Failed", f"Invalid query: {exc}") from None
            rows = [r for r in rows if predicate(r)]
        pagesize = _bounded(_text(body, "pagesize"), 100, 1000)
        return self._page(obj, rows, fields, pagesize, 0), None

    def _page(
        self, obj: str, rows: list[dict[str, Any]], fields: list[str], pagesize: int, offset: int
    ) -> Element:
        page = rows[offset : offset + pagesize]
        remaining = max(len(rows) - offset - len(page), 0)
        result_id = ""
        if remaining:
            result_id = secrets.token_hex(8)
            self._result_sets[result_id] = {
                "object": obj,
                "rows": rows,
                "fields": fields,
                "pagesize": pagesize,
                "offset": offset + len(page),
            }
        return element(
            "data",
            [element(obj.lower(), {f: str(r.get(f, "")) for f in fields}) for r in page],
            {
                "listtype": obj.lower(),
                "count": str(len(page)),
                "totalcount": str(len(rows)),
                "numremaining": str(remaining),
                "resultId": result_id,
            },
        )

    def _read_more(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        result_id = _text(body, "resultId")
        state = self._result_sets.pop(result_id, None)
        if state is None:
            raise _refuse(
                E_READ,
                "There was an error processing the request.",
                f"Unknown resultId '{result_id}'.",
            )
        return self._page(
            state["object"], state["rows"], state["fields"], state["pagesize"], state["offset"]
        ), None

    def _read(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        obj = _text(body, "object").upper()
        rows = company.rows(obj)
        fields = _field_list(obj, _text(body, "fields"))
        keys = {k.strip() for k in _text(body, "keys").split(",") if k.strip()}
        found = [r for r in rows if not keys or r.get("RECORDNO") in keys]
        return element(
            "data",
            [element(obj.lower(), {f: str(r.get(f, "")) for f in fields}) for r in found],
            {"listtype": obj.lower(), "count": str(len(found))},
        ), None

    def _read_by_name(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        obj = _text(body, "object").upper()
        if obj != "VENDOR":
            raise _refuse(
                E_READ, "There was an error processing the request.", f"readByName on {obj}."
            )
        fields = _field_list(obj, _text(body, "fields"))
        keys = {k.strip().casefold() for k in _text(body, "keys").split(",") if k.strip()}
        found = [r for r in company.rows(obj) if r["VENDORID"].casefold() in keys]
        return element(
            "data",
            [element("vendor", {f: str(r.get(f, "")) for f in fields}) for r in found],
            {"listtype": "vendor", "count": str(len(found))},
        ), None

    # -- legacy functions -----------------------------------------------------------------

    def _create_bill(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        fields: dict[str, str] = {}
        simple = {
            "vendorid": "VENDORID",
            "billno": "RECORDID",
            "ponumber": "DOCNUMBER",
            "description": "DESCRIPTION",
            "termname": "TERMNAME",
            "action": "ACTION",
            "currency": "CURRENCY",
            "basecurr": "BASECURR",
            "supdocid": "SUPDOCID",
        }
        for tag, name in simple.items():
            value = _text(body, tag)
            if value:
                fields[name] = value
        for tag, name in (
            ("datecreated", "WHENCREATED"),
            ("dateposted", "WHENPOSTED"),
            ("datedue", "WHENDUE"),
        ):
            el = body.find(tag)
            if el is not None:
                fields[name] = _legacy_date(el, tag)
        if "WHENDUE" not in fields and "TERMNAME" not in fields:
            raise _cannot_create("APBILL", _missing("datedue or termname"))
        lines: list[dict[str, Any]] = []
        items = body.find("billitems")
        for item in items.findall("lineitem") if items is not None else []:
            line: dict[str, Any] = {
                "ACCOUNTNO": _text(item, "glaccountno"),
                "ACCOUNTLABEL": _text(item, "accountlabel"),
                "TRX_AMOUNT": _text(item, "amount"),
                "ENTRYDESCRIPTION": _text(item, "memo"),
                "LOCATIONID": _text(item, "locationid"),
                "DEPARTMENTID": _text(item, "departmentid"),
                "PROJECTID": _text(item, "projectid"),
            }
            taxes = [
                {"DETAILID": _text(t, "detailid"), "TRX_TAX": _text(t, "trx_tax") or "0"}
                for t in item.findall("taxentries/taxentry")
            ]
            if taxes:
                line["TAXENTRIES"] = {"TAXENTRY": taxes}
            lines.append({k: v for k, v in line.items() if v})
        recordno = self._create_document(company, "APBILL", fields, lines)
        return None, str(recordno)

    def _create_supdocfolder(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        name = _text(body, "supdocfoldername")
        if not name:
            raise _refuse(E_FIELD, "Required field missing", "supdocfoldername is required.")
        if name.casefold() in {f.casefold() for f in company.folders}:
            raise Refusal(
                ErrorDetail(
                    E_EXISTS,
                    "Another Attachment Folder with the given value(s) already exists",
                    f"Another record with the value '{name}' already exists.",
                    "Use a unique value instead.",
                )
            )
        parent = _text(body, "supdocparentfoldername")
        if parent and parent not in company.folders:
            raise _refuse(E_CREATE, "Invalid folder", f"Parent folder '{parent}' does not exist.")
        company.folders[name] = {
            "name": name,
            "description": _text(body, "supdocfolderdescription"),
            "parent": parent,
        }
        return None, name

    def _create_supdoc(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        supdoc = _text(body, "supdocid")
        if not supdoc:
            raise _refuse(E_FIELD, "Required field missing", "supdocid is required.")
        if len(supdoc) > SUPDOC_ID_MAX:
            raise _refuse(
                E_FIELD, "Field too long", f"supdocid '{supdoc}' is longer than 20 characters."
            )
        folder = _text(body, "supdocfoldername")
        if not folder:
            raise _refuse(E_FIELD, "Required field missing", "supdocfoldername is required.")
        if folder not in company.folders:
            raise _refuse(E_CREATE, "Invalid folder", f"Folder '{folder}' does not exist.")
        if supdoc in company.supdocs:
            raise Refusal(
                ErrorDetail(
                    E_EXISTS,
                    "Another Attachment with the given value(s) already exists",
                    f"Another record with the value '{supdoc}' already exists.",
                    "Use a unique value instead.",
                )
            )
        files = []
        for att in body.findall("attachments/attachment"):
            raw = _text(att, "attachmentdata")
            try:
                content = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise _refuse(
                    E_FIELD, "Invalid attachment data", "attachmentdata is not base64."
                ) from None
            files.append(
                {
                    "name": _text(att, "attachmentname"),
                    "type": _text(att, "attachmenttype"),
                    "content": content,
                }
            )
        company.supdocs[supdoc] = {
            "recordno": str(self._next_recordno()),
            "supdocid": supdoc,
            "supdocname": _text(body, "supdocname") or "Unnamed",
            "folder": folder,
            "description": _text(body, "supdocdescription"),
            "creationdate": dt.date.today().strftime("%m/%d/%Y"),
            "createdby": ctx.user_id,
            "files": files,
        }
        self.stats.supdocs_created += 1
        return None, supdoc

    def _get(
        self, company: Company, body: Element, ctx: _Context
    ) -> tuple[Element | None, str | None]:
        obj = body.get("object", "").lower()
        key = body.get("key", "")
        wanted = {f.text.strip().lower() for f in body.findall("fields/field") if f.text}
        if obj == "supdoc":
            doc = company.supdocs.get(key)
            records = []
            if doc is not None:
                view: dict[str, Any] = {
                    "recordno": doc["recordno"],
                    "supdocid": doc["supdocid"],
                    "supdocname": doc["supdocname"],
                    "folder": doc["folder"],
                    "description": doc["description"],
                    "creationdate": doc["creationdate"],
                    "createdby": doc["createdby"],
                    "attachments": {
                        "attachment": [
                            {
                                "attachmentname": f["name"],
                                "attachmenttype": f["type"],
                                "attachmentdata": base64.b64encode(f["content"]).decode("ascii"),
                            }
                            for f in doc["files"]
                        ]
                    },
                }
                if wanted:
                    view = {k: v for k, v in view.items() if k in wanted}
                records.append(element("supdoc", view))
        elif obj == "supdocfolder":
            folder = company.folders.get(key)
            records = []
            if folder is not None:
                records.append(
                    element(
                        "supdocfolder",
                        {
                            "name": folder["name"],
                            "description": folder["description"],
                            "parentfolder": folder["parent"],
                        },
                    )
                )
        else:
            raise _refuse(
                E_READ, "There was an error processing the request.", f"get of object '{obj}'."
            )
        return element("data", records, {"listtype": obj, "count": str(len(records))}), None

    # -- admin ----------------------------------------------------------------------------

    async def _admin_health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _admin_stats(self, request: web.Request) -> web.Response:
        stats = self.stats.as_dict()
        stats["bills"] = sum(len(c.documents) for c in self.companies.values())
        stats["supdocs"] = sum(len(c.supdocs) for c in self.companies.values())
        stats["vendors"] = sum(len(c.vendors) for c in self.companies.values())
        return web.json_response(stats)

    async def _admin_reset_stats(self, request: web.Request) -> web.Response:
        self.stats = Stats()
        return web.json_response({"ok": True})

    async def _admin_add_company(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        company_id = str(body.get("company_id") or f"SANDBOX-{secrets.token_hex(4).upper()}")
        accounts = body.get("accounts")
        company = self.add_company(
            company_id, accounts=accounts if isinstance(accounts, list) else None
        )
        if body.get("vendor_sequence") is not None:
            company.vendor_sequence = bool(body["vendor_sequence"])
        return web.json_response({"company_id": company.id})

    def _admin_company(self, request: web.Request) -> Company:
        name = request.query.get("company") or request.match_info.get("company") or ""
        try:
            return self.company(name)
        except KeyError:
            raise web.HTTPNotFound(text=f"no company {name!r}") from None

    async def _admin_period(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            period = _check_period(str(body.get("period", "")))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        status = body.get("status")
        if status not in {"open", "closed"}:
            raise web.HTTPBadRequest(text="status must be 'open' or 'closed'")
        targets = (
            [self._company_by_name(str(body["company"]))]
            if body.get("company")
            else list(self.companies.values())
        )
        for company in targets:
            if status == "closed":
                company.closed.add(period)
            else:
                company.closed.discard(period)
        return web.json_response(
            {"period": period, "status": status, "companies": [c.id for c in targets]}
        )

    def _company_by_name(self, name: str) -> Company:
        try:
            return self.company(name)
        except KeyError:
            raise web.HTTPNotFound(text=f"no company {name!r}") from None

    async def _admin_inventory(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        return web.json_response({"company": company.id, "items": inventory(company)})

    async def _admin_bills(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        bills = [
            {
                **{k: v for k, v in r.items() if not k.startswith("_")},
                "OBJECT": r["_object"],
                "LINES": r["_lines"],
            }
            for r in company.documents.values()
        ]
        return web.json_response({"company": company.id, "bills": bills})

    async def _admin_vendors(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        return web.json_response({"company": company.id, "vendors": list(company.vendors.values())})

    async def _admin_supdocs(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        docs = [
            {
                "supdocid": d["supdocid"],
                "supdocname": d["supdocname"],
                "folder": d["folder"],
                "description": d["description"],
                "files": [
                    {
                        "name": f["name"],
                        "type": f["type"],
                        "size": len(f["content"]),
                        "sha256": hashlib.sha256(f["content"]).hexdigest(),
                    }
                    for f in d["files"]
                ],
            }
            for d in company.supdocs.values()
        ]
        return web.json_response({"company": company.id, "supdocs": docs})

    async def _admin_delete_bill(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        recordno = request.match_info["recordno"]
        if not recordno.isdigit() or company.documents.pop(int(recordno), None) is None:
            raise web.HTTPNotFound(text=f"no bill {recordno}")
        return web.json_response({"deleted": recordno})

    async def _admin_delete_attachment(self, request: web.Request) -> web.Response:
        company = self._admin_company(request)
        recordno = request.match_info["recordno"]
        record = company.documents.get(int(recordno)) if recordno.isdigit() else None
        if record is None or not record.get("SUPDOCID"):
            raise web.HTTPNotFound(text=f"bill {recordno} has no attachment")
        company.supdocs.pop(record["SUPDOCID"], None)
        company.documents[int(recordno)] = {**record, "SUPDOCID": ""}
        return web.json_response({"deleted": record["SUPDOCID"], "bill": recordno})

    async def _admin_faults(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            if "fail_rate" in body:
                rate = float(body["fail_rate"])
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("fail_rate must be between 0 and 1")
                self.fail_rate = rate
            if "modes" in body:
                modes = tuple(str(m) for m in body["modes"])
                if set(modes) - set(FAULT_MODES):
                    raise ValueError(f"modes must be among {', '.join(FAULT_MODES)}")
                self.fail_modes = modes
            if "next" in body:
                queued = [str(m) for m in body["next"]]
                if set(queued) - {*FAULT_MODES, "ok"}:
                    raise ValueError(f"next must be among ok, {', '.join(FAULT_MODES)}")
                self.fault_queue.extend(queued)
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response(
            {
                "fail_rate": self.fail_rate,
                "modes": list(self.fail_modes),
                "next": list(self.fault_queue),
            }
        )

    async def _admin_expire_sessions(self, request: web.Request) -> web.Response:
        expired = len(self.sessions)
        self.sessions.clear()
        return web.json_response({"expired": expired})

    # -- persistence ----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        data = {
            "recordno": self._recordno,
            "companies": [
                {
                    "id": c.id,
                    "vendors": list(c.vendors.values()),
                    "documents": list(c.documents.values()),
                    "supdocs": [
                        {
                            **{k: v for k, v in d.items() if k != "files"},
                            "files": [
                                {**f, "content": base64.b64encode(f["content"]).decode("ascii")}
                                for f in d["files"]
                            ],
                        }
                        for d in c.supdocs.values()
                    ],
                    "folders": list(c.folders.values()),
                    "closed": sorted(c.closed),
                    "executed": sorted(c.executed),
                    "accounts": None if c.accounts is None else sorted(c.accounts),
                    "vendor_sequence": c.vendor_sequence,
                }
                for c in self.companies.values()
            ],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(path)

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        data = json.loads(path.read_text(encoding="utf-8"))
        self._recordno = int(data["recordno"])
        for raw in data["companies"]:
            company = self.add_company(raw["id"])
            company.vendors = {int(v["RECORDNO"]): v for v in raw["vendors"]}
            company.documents = {int(d["RECORDNO"]): d for d in raw["documents"]}
            company.supdocs = {
                d["supdocid"]: {
                    **d,
                    "files": [{**f, "content": base64.b64decode(f["content"])} for f in d["files"]],
                }
                for d in raw["supdocs"]
            }
            company.folders = {f["name"]: f for f in raw["folders"]}
            company.closed = set(raw["closed"]) | set(self.config.closed_periods)
            company.executed = set(raw["executed"])
            company.accounts = None if raw["accounts"] is None else set(raw["accounts"])
            company.vendor_sequence = bool(raw["vendor_sequence"])


_HANDLERS: dict[str, Handler] = {
    "getAPISession": IntacctSandbox._get_api_session,
    "create": IntacctSandbox._create,
    "update": IntacctSandbox._update,
    "delete": IntacctSandbox._delete,
    "query": IntacctSandbox._query,
    "readByQuery": IntacctSandbox._read_by_query,
    "readMore": IntacctSandbox._read_more,
    "read": IntacctSandbox._read,
    "readByName": IntacctSandbox._read_by_name,
    "create_bill": IntacctSandbox._create_bill,
    "create_supdoc": IntacctSandbox._create_supdoc,
    "create_supdocfolder": IntacctSandbox._create_supdocfolder,
    "get": IntacctSandbox._get,
}


def inventory(company: Company) -> dict[str, dict[str, int]]:
    """Item key -> bills carrying it and how many of them have an existing attachment."""
    items: dict[str, dict[str, int]] = {}
    for record in company.documents.values():
        key = item_key_of(record.get("DESCRIPTION"))
        if key is None:
            continue
        entry = items.setdefault(key, {"bills": 0, "attachments": 0})
        entry["bills"] += 1
        if record.get("SUPDOCID") and record["SUPDOCID"] in company.supdocs:
            entry["attachments"] += 1
    return items


# -- helpers --------------------------------------------------------------------------------


def _xml(body: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=body, status=status, content_type="application/xml", charset="utf-8", headers=headers
    )


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def _missing(name: str) -> ErrorDetail:
    return ErrorDetail(E_FIELD, "Required field missing", f"Required field {name} is missing.")


def _closed(obj: str, day: dt.date) -> Refusal:
    label = {"APBILL": "APBill", "APADJUSTMENT": "APAdjustment"}.get(obj, obj)
    return Refusal(
        ErrorDetail(
            E_CREATE,
            "Could not create Document record!",
            f"{CLOSED_TEXT.format(date=format_date(day))} [Support ID: {_support_id()}]",
            "Change the transaction date to one in an open period, or reopen the period.",
        ),
        ErrorDetail(E_CREATE, f"Could not create {label} record!"),
    )


def _flat(el: Element) -> dict[str, Any]:
    """Children by upper-case name: text for leaves, nested values otherwise."""
    out: dict[str, Any] = {}
    for child in el:
        out[child.tag.upper()] = element_value(child)
    return out


def _document_fields(el: Element, obj: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    fields: dict[str, str] = {}
    lines: list[dict[str, Any]] = []
    items_tag = DOCUMENTS[obj]
    for child in el:
        tag = child.tag.upper()
        if tag == items_tag:
            for item in child:
                value = element_value(item)
                if isinstance(value, dict):
                    lines.append({k.upper(): v for k, v in value.items()})
        elif len(child) == 0:
            fields[tag] = (child.text or "").strip()
    return fields, lines


def _legacy_date(el: Element, tag: str) -> str:
    try:
        day = dt.date(int(_text(el, "year")), int(_text(el, "month")), int(_text(el, "day")))
    except ValueError:
        raise _cannot_create(
            "APBILL",
            ErrorDetail(
                E_FIELD, "Invalid date", f"{tag} must hold a valid <year>, <month> and <day>."
            ),
        ) from None
    return format_date(day)


def _check_fields(obj: str, fields: Iterable[str]) -> None:
    known = OBJECT_FIELDS.get(obj, ())
    bad = [f for f in fields if f not in known]
    if bad:
        raise _refuse(E_QUERY, "Query Failed", f"Invalid field(s) for {obj}: {', '.join(bad)}")


def _field_list(obj: str, text: str) -> list[str]:
    if not text or text.strip() == "*":
        return list(OBJECT_FIELDS.get(obj, ()))
    fields = [f.strip().upper() for f in text.split(",") if f.strip()]
    _check_fields(obj, fields)
    return fields


def _bounded(text: str, default: int, maximum: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        value = default
    return min(max(value, 1), maximum)


def _typed(name: str, value: str, ci: bool) -> Any:
    if name in DATE_FIELDS:
        return parse_date(value) if value else None
    if name in NUMBER_FIELDS:
        return parse_amount(value) if value else None
    return value.casefold() if ci else value


def _row_key(name: str, row: Mapping[str, Any]) -> tuple[int, Any]:
    return _sort_key(name, str(row.get(name, "")))


def _sort_key(name: str, value: str) -> tuple[int, Any]:
    try:
        typed = _typed(name, value, False)
    except ValueError:
        typed = value
    return (0, typed) if typed is not None else (1, "")


def _like(pattern: str, value: str, ci: bool) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ci else re.DOTALL) is not None


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "equalto": lambda a, b: a == b,
    "notequalto": lambda a, b: a != b,
    "lessthan": lambda a, b: a is not None and b is not None and a < b,
    "lessthanorequalto": lambda a, b: a is not None and b is not None and a <= b,
    "greaterthan": lambda a, b: a is not None and b is not None and a > b,
    "greaterthanorequalto": lambda a, b: a is not None and b is not None and a >= b,
}


def _matches(cond: Element, row: Mapping[str, Any], ci: bool) -> bool:
    op = cond.tag.lower()
    if op == "and":
        return all(_matches(c, row, ci) for c in cond)
    if op == "or":
        return any(_matches(c, row, ci) for c in cond)
    name = _text(cond, "field").upper()
    raw = str(row.get(name, ""))
    values = [(v.text or "").strip() for v in cond.findall("value")]
    try:
        if op == "isnull":
            return raw == ""
        if op == "isnotnull":
            return raw != ""
        if op in {"like", "notlike"}:
            hit = bool(values) and _like(values[0], raw, ci)
            return hit if op == "like" else not hit
        left = _typed(name, raw, ci)
        if op in {"in", "notin"}:
            inside = left in {_typed(name, v, ci) for v in values}
            return inside if op == "in" else not inside
        if op == "between":
            if len(values) != 2:
                raise _refuse(E_QUERY, "Query Failed", "between needs two values.")
            low, high = (_typed(name, v, ci) for v in values)
            return left is not None and low <= left <= high
        compare = _COMPARE.get(op)
        if compare is None:
            raise _refuse(E_QUERY, "Query Failed", f"Unknown filter operator <{cond.tag}>.")
        if len(values) != 1:
            raise _refuse(E_QUERY, "Query Failed", f"<{cond.tag}> needs one value.")
        return compare(left, _typed(name, values[0], ci))
    except ValueError as exc:
        raise _refuse(E_QUERY, "Query Failed", f"Bad value for {name}: {exc}") from None


# -- readByQuery's SQL-like language --------------------------------------------------------

_SQL_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:\\.|''|[^'\\])*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<op><=|>=|<>|!=|=|<|>)|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


def _sql_tokens(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _SQL_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"unexpected text at {pos}: {text[pos : pos + 10]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)|''", lambda g: g.group(1) or "'", value[1:-1])
        tokens.append((kind, value))
        pos = m.end()
    return tokens


Predicate = Callable[[Mapping[str, Any]], bool]


def parse_sql(text: str) -> Predicate:
    """``NAME = 'Jane\\'s Deli' AND STATUS = 'T'``: readByQuery's filter as a predicate."""
    tokens = _sql_tokens(text)
    pos = 0

    def peek(word: str | None = None) -> bool:
        if pos >= len(tokens):
            return False
        kind, value = tokens[pos]
        return word is None or (kind == "word" and value.upper() == word)

    def take(kind: str | None = None) -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError("query ends too early")
        token = tokens[pos]
        if kind is not None and token[0] != kind:
            raise ValueError(f"expected {kind}, found {token[1]!r}")
        pos += 1
        return token

    def value() -> str:
        kind, text_value = take()
        if kind not in {"str", "num"}:
            raise ValueError(f"expected a value, found {text_value!r}")
        return text_value

    def or_expr() -> Predicate:
        parts = [and_expr()]
        while peek("OR"):
            take()
            parts.append(and_expr())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_expr() -> Predicate:
        parts = [not_expr()]
        while peek("AND"):
            take()
            parts.append(not_expr())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def not_expr() -> Predicate:
        if peek("NOT"):
            take()
            inner = not_expr()
            return lambda r: not inner(r)
        return primary()

    def primary() -> Predicate:
        if pos < len(tokens) and tokens[pos][0] == "lp":
            take("lp")
            inner = or_expr()
            take("rp")
            return inner
        _, name = take("word")
        name = name.upper()
        if peek("IS"):
            take()
            negate = peek("NOT")
            if negate:
                take()
            if not peek("NULL"):
                raise ValueError("expected NULL after IS")
            take()
            return lambda r: (str(r.get(name, "")) == "") != negate
        negate = peek("NOT")
        if negate:
            take()
        if peek("IN"):
            take()
            take("lp")
            options = [value()]
            while pos < len(tokens) and tokens[pos][0] == "comma":
                take("comma")
                options.append(value())
            take("rp")
            wanted = {_typed(name, o, False) for o in options}
            return lambda r: (_typed(name, str(r.get(name, "")), False) in wanted) != negate
        if peek("LIKE"):
            take()
            pattern = value()
            return lambda r: _like(pattern, str(r.get(name, "")), False) != negate
        if negate:
            raise ValueError("NOT must be followed by IN or LIKE here")
        _, op = take("op")
        right = _typed(name, value(), False)
        compare = {
            "=": _COMPARE["equalto"],
            "!=": _COMPARE["notequalto"],
            "<>": _COMPARE["notequalto"],
            "<": _COMPARE["lessthan"],
            "<=": _COMPARE["lessthanorequalto"],
            ">": _COMPARE["greaterthan"],
            ">=": _COMPARE["greaterthanorequalto"],
        }[op]
        return lambda r: compare(_typed(name, str(r.get(name, "")), False), right)

    predicate = or_expr()
    if pos != len(tokens):
        raise ValueError(f"unexpected {tokens[pos][1]!r}")
    return predicate


# -- running it -----------------------------------------------------------------------------


def ready_line(sandbox: IntacctSandbox, base_url: str) -> dict[str, Any]:
    cfg = sandbox.config
    return {
        "system": "intacct",
        "url": base_url + GATEWAY_PATH,
        "base_url": base_url,
        "admin_url": base_url + "/admin",
        "companies": [c.id for c in sandbox.companies.values()],
        "credentials": {
            "sender_id": cfg.sender_id,
            "sender_password": cfg.sender_password,
            "company_id": cfg.companies[0],
            "user_id": cfg.user_id,
            "user_password": cfg.user_password,
        },
    }


async def serve(
    config: SandboxConfig,
    on_ready: Callable[[dict[str, Any]], Awaitable[None] | None],
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``); report readiness once bound."""
    sandbox = IntacctSandbox(config)
    # A short shutdown grace: a request held by hang_after_write must not delay SIGTERM.
    runner = web.AppRunner(
        sandbox.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        host, port = runner.addresses[0][:2]
        shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
        if ":" in shown:
            shown = f"[{shown}]"
        maybe = on_ready(ready_line(sandbox, f"http://{shown}:{port}"))
        if maybe is not None:
            await maybe
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
        if config.state_dir is not None:
            sandbox.save(config.state_dir / "intacct-sandbox.json")


def company_ids(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v.strip())) or (DEFAULT_COMPANY,)
