"""The Sage Intacct XML client and the ledger port on top of it.

``IntacctClient`` owns the wire: one API session (``getAPISession`` in a request of its own,
then the session id at the endpoint it names, renewed when it lapses or is refused), a limit
on requests in flight per company shared by every caller of the instance, batching of the
functions that queue up behind that limit into one request, and retries with capped,
jittered exponential backoff for what is safe to retry.

What is safe to retry: anything refused before it ran (``GW-0010``/HTTP 429, HTTP 5xx other
than 524, a connection never made), and reads whatever happened. A write that may have run
(timeout, HTTP 524, a connection lost mid-answer) is not retried here: it is raised with
``uncertain=True`` so the pipeline looks the bill up before writing again (DESIGN §4.4).
Writes also carry function control ids derived from what they write, under
``uniqueid=true``, so Intacct itself refuses a repeat that slips through.

``IntacctLedger`` implements ``domain.ports.Ledger`` with generic functions (``query``,
``create``, ``update``) for vendors and bills (credit notes as AP adjustments) and the legacy
``create_supdoc``/``create_supdocfolder``/``get`` for attachments.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, tostring

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from adapters import observability
from adapters.intacct.errors import (
    classify,
    is_already_exists,
    is_repeated_controlid,
    is_rolled_back_only,
    ledger_error,
)
from adapters.intacct.keys import (
    derived_vendor_id,
    item_key_of,
    read_controlid,
    supdoc_id,
    tag_description,
    write_controlid,
)
from adapters.intacct.xml import (
    EnvelopeError,
    ErrorDetail,
    Function,
    Login,
    Response,
    Result,
    build_request,
    element,
    format_amount,
    format_date,
    parse_amount,
    parse_date,
    parse_response,
)
from domain.errors import LedgerError, Reason, is_transient
from domain.models import Attachment, Document, DraftBill, LedgerBill, Vendor
from domain.normalize import vendor_match_key
from domain.tenants import Tenant

DEFAULT_ENDPOINT = "https://api.intacct.com/ia/xml/xmlgw.phtml"
# The ``operation`` label of the request metrics: every request is one or the other.
OPERATIONS = ("read", "write")
DEFAULT_CONCURRENCY = 2  # the usual per-company allowance of concurrent XML requests
DEFAULT_MAX_BATCH = 25  # functions per request when callers queue up
DEFAULT_FOLDER = "billstream"
MISS_TTL = 5.0  # seconds a lookup that found nothing spares the write after it its own

log = logging.getLogger("billstream.intacct")


# -- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class IntacctCredentials:
    """Web Services sender + company user. Passwords never appear in ``repr`` or logs."""

    sender_id: str
    sender_password: str = field(repr=False)
    company_id: str
    user_id: str
    user_password: str = field(repr=False)
    entity_id: str | None = None

    def login(self) -> Login:
        return Login(
            user_id=self.user_id,
            company_id=self.company_id,
            password=self.user_password,
            location_id=self.entity_id,
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per call for what is safe to retry, and the backoff between them."""

    attempts: int = 5
    initial: float = 0.25
    maximum: float = 8.0


@dataclass
class ClientStats:
    requests: int = 0  # HTTP requests sent, sessions included
    functions: int = 0  # functions answered
    sessions: int = 0  # getAPISession requests
    retries: int = 0
    batched_requests: int = 0  # requests that carried more than one caller's functions
    max_in_flight: int = 0


@dataclass
class _Session:
    session_id: str = field(repr=False)
    endpoint: str
    deadline: float  # time.monotonic() after which the session is renewed before use


@dataclass(eq=False)
class _Unit:
    """One caller's functions: they travel together, in order, in one request."""

    functions: list[Function]
    write: bool
    transaction: bool
    future: asyncio.Future[list[Result]]


def _retryable(exc: BaseException, write: bool) -> bool:
    return isinstance(exc, LedgerError) and exc.transient and not (exc.uncertain and write)


def _for_unit(err: LedgerError, write: bool) -> LedgerError:
    # One request failing fails every caller in it; only the writers are left uncertain.
    return LedgerError(
        err.reason,
        err.message,
        problems=err.problems,
        detail=dict(err.detail),
        uncertain=err.uncertain and write,
        retry_after=err.retry_after,
    )


def _restamped(fn: Function) -> Function:
    kind = fn.controlid.rsplit("-", 1)[0].removeprefix("bs-") or "read"
    return Function(read_controlid(kind), fn.body)


def _causes(results: Sequence[Result]) -> list[ErrorDetail]:
    """The errors of failed functions, leaving out those only rolled back for another's."""
    failed = [r for r in results if not r.ok]
    causes = [e for r in failed if not is_rolled_back_only(r.errors) for e in r.errors]
    return causes or [e for r in failed for e in r.errors]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


# -- the client -----------------------------------------------------------------------------


class IntacctClient:
    """Async client of one company's XML gateway. Share one instance per company."""

    def __init__(
        self,
        credentials: IntacctCredentials,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_batch: int = DEFAULT_MAX_BATCH,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.credentials = credentials
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.max_batch = max_batch
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            headers={
                "Content-Type": "application/xml",
                "Accept": "application/xml",
                "User-Agent": "billstream-intacct/0.1",
            },
        )
        self._queue: collections.deque[_Unit] = collections.deque()
        self._in_flight = 0
        self._dispatch_pending = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: _Session | None = None
        self._session_lock = asyncio.Lock()
        self._closed = False

    @property
    def company_id(self) -> str:
        return self.credentials.company_id

    def budgets_in_use(self) -> observability.Budgets:
        """Requests in flight against the per-company limit, for the budget gauge."""
        return {"in_flight": (self._in_flight, self.concurrency)}

    # -- public ---------------------------------------------------------------------------

    async def execute(
        self, functions: Sequence[Function], *, write: bool, transaction: bool = False
    ) -> list[Result]:
        """Run one caller's functions and return their results, failures included.

        Raises ``LedgerError`` when the request as a whole failed (control, authentication,
        HTTP, transport) once the retry budget for it is spent.
        """
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: _retryable(exc, write)),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                batch = list(functions)
                if not write and attempt.retry_state.attempt_number > 1:
                    # A read that rode with a write under uniqueid=true may have "run" before
                    # the answer was lost; its control id would now be refused as a repeat.
                    batch = [_restamped(fn) for fn in batch]
                results = await self._submit(batch, write, transaction)
                self._raise_refused(results)
                return results
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def ensure_session(self) -> None:
        """Sign in now (``getAPISession``), raising ``auth``/``unavailable`` if it fails."""
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: _retryable(exc, False)),
            before_sleep=self._before_sleep,
            reraise=True,
        ):
            with attempt:
                await self._current_session()

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with suppress(asyncio.CancelledError):
                await task
        while self._queue:
            unit = self._queue.popleft()
            if not unit.future.done():
                unit.future.set_exception(
                    LedgerError(Reason.UNAVAILABLE, "The Intacct client was closed.")
                )
        await self._http.aclose()

    # -- retries --------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(multiplier=self.retry.initial, max=self.retry.maximum)
        delay = float(backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, LedgerError) and exc.retry_after:
            delay = max(delay, min(exc.retry_after, self.retry.maximum))
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.info(
            "intacct %s: %s; retry %d after %.2fs",
            self.company_id,
            getattr(exc, "message", exc),
            state.attempt_number,
            state.upcoming_sleep,
        )

    @staticmethod
    def _raise_refused(results: Sequence[Result]) -> None:
        # A function refused for load ("rate limit exceeded" in a 200 answer) did not run.
        for res in results:
            if not res.ok and res.errors and is_transient(classify(res.errors)):
                raise ledger_error(res.errors, what=f"the {res.function}")

    # -- queue and dispatch ---------------------------------------------------------------

    async def _submit(
        self, functions: list[Function], write: bool, transaction: bool
    ) -> list[Result]:
        if self._closed:
            raise LedgerError(Reason.UNAVAILABLE, "The Intacct client is closed.")
        loop = asyncio.get_running_loop()
        unit = _Unit(functions, write, transaction, loop.create_future())
        self._queue.append(unit)
        self._schedule()
        return await unit.future

    def _schedule(self) -> None:
        # Dispatch on the next loop turn, so callers that arrive together share a request.
        if not self._dispatch_pending and not self._closed:
            self._dispatch_pending = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_pending = False
        while self._in_flight < self.concurrency:
            batch = self._take()
            if not batch:
                return
            self._in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Unit]:
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()
        if not self._queue:
            return []
        if self._queue[0].transaction:
            # A transaction is all-or-nothing: batching it with others would let one
            # caller's failure roll back another's work.
            return [self._queue.popleft()]
        selected: list[_Unit] = []
        rest: collections.deque[_Unit] = collections.deque()
        count = 0
        for unit in self._queue:
            if unit.future.done():
                continue
            fits = not selected or count + len(unit.functions) <= self.max_batch
            if not unit.transaction and fits:
                selected.append(unit)
                count += len(unit.functions)
            else:
                rest.append(unit)
        self._queue = rest
        return selected

    async def _run(self, batch: list[_Unit]) -> None:
        try:
            functions = [fn for unit in batch for fn in unit.functions]
            write = any(unit.write for unit in batch)
            transaction = len(batch) == 1 and batch[0].transaction
            if len(batch) > 1:
                self.stats.batched_requests += 1
            results = await self._send(functions, write=write, transaction=transaction)
            start = 0
            for unit in batch:
                end = start + len(unit.functions)
                if not unit.future.done():
                    unit.future.set_result(results[start:end])
                start = end
        except LedgerError as err:
            for unit in batch:
                if not unit.future.done():
                    unit.future.set_exception(_for_unit(err, unit.write))
        except Exception as exc:
            # Nothing may strand a caller: an unexpected failure still answers every unit.
            log.exception("intacct %s: request failed unexpectedly", self.company_id)
            for unit in batch:
                if not unit.future.done():
                    unit.future.set_exception(
                        LedgerError(
                            Reason.UNAVAILABLE,
                            f"The Intacct request failed unexpectedly: {type(exc).__name__}",
                            uncertain=unit.write,
                        )
                    )
        finally:
            # Cancelled by aclose(), say: the callers still get an answer, never a hang.
            for unit in batch:
                if not unit.future.done():
                    unit.future.set_exception(
                        LedgerError(
                            Reason.UNAVAILABLE,
                            "The Intacct client was closed while the request was in flight.",
                            uncertain=unit.write,
                        )
                    )
            self._in_flight -= 1
            self._schedule()

    # -- one request ----------------------------------------------------------------------

    async def _send(
        self, functions: list[Function], *, write: bool, transaction: bool
    ) -> list[Result]:
        for renewed in (False, True):
            session = await self._current_session()
            body = build_request(
                sender_id=self.credentials.sender_id,
                sender_password=self.credentials.sender_password,
                auth=session.session_id,
                functions=functions,
                control_id=f"bs-req-{uuid.uuid4().hex}",
                transaction=transaction,
                unique_id=write,
            )
            response = await self._post(session.endpoint, body, write=write, n=len(functions))
            if response.control_status != "success":
                raise ledger_error(response.errors, what="the request", level="control")
            auth = response.authentication
            if auth is None or not auth.ok:
                if not renewed:
                    # Sessions lapse or get revoked: nothing ran, so sign in again and resend.
                    self._drop_session(session)
                    continue
                raise ledger_error(
                    auth.errors if auth else (),
                    what="the sign-in",
                    level="authentication",
                )
            self._slide(session, auth.session_timestamp, auth.session_timeout)
            if len(response.results) != len(functions):
                raise LedgerError(
                    Reason.UNAVAILABLE,
                    f"Sage Intacct answered {len(response.results)} of {len(functions)} functions.",
                    uncertain=write,
                )
            self.stats.functions += len(functions)
            return list(response.results)
        raise AssertionError("unreachable")

    async def _post(self, url: str, body: bytes, *, write: bool, n: int) -> Response:
        self.stats.requests += 1
        log.debug("intacct %s: POST %d function(s)", self.company_id, n)
        try:
            resp = await observability.observed(
                self._http.post(url, content=body),
                system="intacct",
                company=self.company_id,
                operation="write" if write else "read",
                client=self,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise LedgerError(
                Reason.UNAVAILABLE,
                f"Sage Intacct could not be reached ({type(exc).__name__}).",
                detail={"system": "intacct"},
            ) from exc
        except httpx.TimeoutException as exc:
            raise LedgerError(
                Reason.UNAVAILABLE,
                "Sage Intacct did not answer in time; the request may still have been carried out.",
                detail={"system": "intacct", "timeout": True},
                uncertain=write,
            ) from exc
        except httpx.TransportError as exc:
            raise LedgerError(
                Reason.UNAVAILABLE,
                f"The connection to Sage Intacct broke ({type(exc).__name__}); the request "
                "may have been carried out.",
                detail={"system": "intacct"},
                uncertain=write,
            ) from exc
        return self._read(resp, write)

    def _read(self, resp: httpx.Response, write: bool) -> Response:
        status = resp.status_code
        detail: dict[str, Any] = {"system": "intacct", "http_status": status}
        parsed: Response | None = None
        if "xml" in resp.headers.get("content-type", "") or resp.content.lstrip().startswith(
            b"<?xml"
        ):
            try:
                parsed = parse_response(resp.content)
            except EnvelopeError:
                parsed = None
        retry_after = _retry_after(resp.headers.get("retry-after"))
        if status == 429:
            errors = parsed.errors if parsed and parsed.errors else ()
            if not errors:
                errors = (ErrorDetail("GW-0010", "Rate limit exceeded", f"HTTP {status}"),)
            raise ledger_error(
                errors,
                what="the request",
                level="http",
                reason=Reason.RATE_LIMITED,
                retry_after=retry_after,
                extra=detail,
            )
        if status == 524:
            # The CDN gave up waiting; Intacct itself keeps processing the request.
            raise LedgerError(
                Reason.UNAVAILABLE,
                "Sage Intacct's gateway timed out (HTTP 524) while the request was still "
                "being processed; it may have been carried out.",
                detail=detail,
                uncertain=write,
                retry_after=retry_after,
            )
        if status >= 500:
            raise LedgerError(
                Reason.UNAVAILABLE,
                f"Sage Intacct answered HTTP {status}.",
                detail=detail,
                retry_after=retry_after,
            )
        if status >= 400:
            if parsed is not None and parsed.errors:
                raise ledger_error(parsed.errors, what="the request", level="control", extra=detail)
            reason = Reason.AUTH if status in {401, 403} else Reason.VALIDATION
            raise LedgerError(reason, f"Sage Intacct answered HTTP {status}.", detail=detail)
        if parsed is None:
            raise LedgerError(
                Reason.UNAVAILABLE,
                "Sage Intacct's answer was not a readable XML response.",
                detail=detail,
                uncertain=write,
            )
        return parsed

    # -- sessions -------------------------------------------------------------------------

    async def _current_session(self) -> _Session:
        session = self._session
        if session is not None and time.monotonic() < session.deadline:
            return session
        async with self._session_lock:
            session = self._session
            if session is None or time.monotonic() >= session.deadline:
                session = self._session = await self._open_session()
            return session

    def _drop_session(self, session: _Session) -> None:
        if self._session is session:
            self._session = None

    async def _open_session(self) -> _Session:
        # getAPISession must travel alone, signed in with the login credentials.
        entity = self.credentials.entity_id
        fn = Function(
            read_controlid("session"),
            element("getAPISession", {"locationid": entity} if entity else None),
        )
        body = build_request(
            sender_id=self.credentials.sender_id,
            sender_password=self.credentials.sender_password,
            auth=self.credentials.login(),
            functions=[fn],
            control_id=f"bs-req-{uuid.uuid4().hex}",
        )
        self.stats.sessions += 1
        response = await self._post(self.endpoint, body, write=False, n=1)
        if response.control_status != "success":
            raise ledger_error(response.errors, what="the sign-in", level="control")
        auth = response.authentication
        if auth is None or not auth.ok:
            raise ledger_error(
                auth.errors if auth else (), what="the sign-in", level="authentication"
            )
        result = response.results[0] if response.results else None
        if result is None or not result.ok:
            raise ledger_error(
                result.errors if result else (),
                what="the session request",
                level="authentication",
            )
        records = result.records()
        api = records[0] if records else {}
        session_id = str(api.get("sessionid") or "")
        if not session_id:
            raise LedgerError(Reason.UNAVAILABLE, "Sage Intacct returned no session id.")
        session = _Session(session_id, self._trusted_endpoint(str(api.get("endpoint") or "")), 0.0)
        self._slide(session, auth.session_timestamp, auth.session_timeout)
        return session

    def _trusted_endpoint(self, url: str) -> str:
        """The session endpoint Intacct names, if it is one we may send a session id to."""
        if not url:
            return self.endpoint
        given, ours = urlsplit(url), urlsplit(self.endpoint)
        same_origin = (given.scheme, given.hostname, given.port) == (
            ours.scheme,
            ours.hostname,
            ours.port,
        )
        intacct = given.scheme == "https" and (given.hostname or "").endswith(".intacct.com")
        if same_origin or intacct:
            return url
        log.warning("intacct %s: ignoring untrusted session endpoint host", self.company_id)
        return self.endpoint

    @staticmethod
    def _slide(session: _Session, stamp: dt.datetime | None, timeout: dt.datetime | None) -> None:
        # The timeout slides forward on every call; trust the server's span, not our clock.
        lifetime = 1800.0
        if stamp is not None and timeout is not None:
            lifetime = max((timeout - stamp).total_seconds(), 1.0)
        margin = min(60.0, lifetime / 4)
        session.deadline = time.monotonic() + lifetime - margin


# -- XML helpers for the ledger -------------------------------------------------------------

BILL = "APBILL"
ADJUSTMENT = "APADJUSTMENT"  # vendor credit notes are AP adjustments
VENDOR_FIELDS = ["RECORDNO", "VENDORID", "NAME", "TAXID", "STATUS"]
BILL_FIELDS = [
    "RECORDNO",
    "VENDORID",
    "RECORDID",
    "WHENCREATED",
    "CURRENCY",
    "TRX_TOTALENTERED",
    "STATE",
    "DESCRIPTION",
    "SUPDOCID",
]
SUPDOC_FIELDS = ["supdocid", "supdocname", "folder", "description"]
PERIOD_OBJECT = "REPORTINGPERIOD"


def _cond(op: str, name: str, value: str) -> Element:
    return element(op, {"field": name, "value": value})


def _all(*conds: Element) -> Element:
    return conds[0] if len(conds) == 1 else element("and", list(conds))


def _any(*conds: Element) -> Element:
    return conds[0] if len(conds) == 1 else element("or", list(conds))


def _query(
    obj: str,
    fields: Sequence[str],
    where: Element,
    *,
    caseinsensitive: bool = False,
    orderby: str | None = None,
    pagesize: int = 100,
    offset: int = 0,
) -> Element:
    q = element("query", {"object": obj, "select": {"field": list(fields)}})
    q.append(element("filter", where))
    if orderby:
        q.append(element("orderby", {"order": {"field": orderby, "ascending": ""}}))
    if caseinsensitive:
        q.append(element("options", {"caseinsensitive": True}))
    q.append(element("pagesize", str(pagesize)))
    if offset:
        q.append(element("offset", str(offset)))
    return q


def _get_supdoc(key: str, fields: Sequence[str] | None = SUPDOC_FIELDS) -> Element:
    return element(
        "get",
        {"fields": {"field": list(fields)}} if fields else None,
        attrs={"object": "supdoc", "key": key},
    )


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _bill_object(credit: bool) -> str:
    return ADJUSTMENT if credit else BILL


def _ledger_bill(row: Mapping[str, Any], credit: bool) -> LedgerBill:
    total = parse_amount(str(row.get("TRX_TOTALENTERED") or "0"))
    return LedgerBill(
        id=str(row["RECORDNO"]),
        vendor_id=str(row.get("VENDORID", "")),
        number=str(row.get("RECORDID", "")),
        date=parse_date(str(row["WHENCREATED"])),
        currency=str(row.get("CURRENCY", "")),
        total=abs(total),  # adjustments carry negative amounts; the port keeps credits positive
        credit_note=credit,
        state=str(row.get("STATE") or "draft").lower(),
        item_key=item_key_of(str(row.get("DESCRIPTION") or "")),
    )


def _vendor(row: Mapping[str, Any]) -> Vendor:
    return Vendor(
        id=str(row["VENDORID"]),
        name=str(row.get("NAME", "")),
        tax_number=str(row.get("TAXID") or "").strip() or None,
    )


def _active(row: Mapping[str, Any]) -> bool:
    return str(row.get("STATUS", "active")).lower() in {"active", "t", "true", ""}


def _probe_word(name: str, key: str) -> str | None:
    """The longest word of the name that survives normalisation: what NAME ``like`` finds."""
    tokens = set(key.split())
    words = [w for w in re.findall(r"[^\W_]+", name) if w.casefold() in tokens and len(w) >= 3]
    return max(words, key=len) if words else None


def _extension(document: Document) -> tuple[str, str]:
    stem, dot, ext = document.filename.rpartition(".")
    if dot and stem and 0 < len(ext) <= 8:
        return stem, ext.lower()
    guessed = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}
    return document.filename, guessed.get(document.content_type, "bin")


_META = "billstream:"


def _supdoc_description(bill: LedgerBill, document: Document) -> str:
    meta = {
        "item": bill.item_key,
        "file": document.filename,
        "sha256": document.sha256,
        "size": len(document.content),
    }
    return f"Original of {bill.number} {_META}{json.dumps(meta, separators=(',', ':'))}"


def _supdoc_meta(description: str) -> dict[str, Any] | None:
    _, found, rest = description.partition(_META)
    if not found:
        return None
    try:
        meta = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(meta, dict) or not {"file", "sha256", "size"} <= meta.keys():
        return None
    return meta


@dataclass(frozen=True)
class _AttachmentView:
    bill_exists: bool
    linked: str = ""  # the bill's SUPDOCID
    linked_doc: dict[str, Any] | None = None  # that supdoc, if it exists
    derived_doc: dict[str, Any] | None = None  # the supdoc under our derived id, if any


class _KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


# -- the ledger port ------------------------------------------------------------------------

_REQUIRED_ENV = ("SENDER_ID", "SENDER_PASSWORD", "USER_ID", "USER_PASSWORD")


class IntacctLedger:
    """``domain.ports.Ledger`` on one Intacct company."""

    kind = "intacct"

    def __init__(
        self,
        client: IntacctClient,
        *,
        vendor_ids: Literal["derived", "auto"] = "derived",
        folder: str = DEFAULT_FOLDER,
    ) -> None:
        self.client = client
        self.vendor_ids = vendor_ids
        self.folder = folder
        self._vendor_locks = _KeyedLocks()
        self._folder_ready = False
        self._folder_lock = asyncio.Lock()
        self._period_warned = False
        # Lookups that just found nothing, by what they looked for: the pipeline looks
        # before it writes (DESIGN §4.3), so the write need not look again moments later.
        self._misses: dict[tuple[str, ...], tuple[float, Any]] = {}

    def _remember_miss(self, key: tuple[str, ...], value: Any = None) -> None:
        now = time.monotonic()
        if len(self._misses) > 10_000:
            self._misses = {k: v for k, v in self._misses.items() if now - v[0] < MISS_TTL}
        self._misses[key] = (now, value)

    def _recent_miss(self, key: tuple[str, ...]) -> tuple[bool, Any]:
        """Whether this lookup came up empty a moment ago (and what it saw); used once."""
        seen = self._misses.pop(key, None)
        if seen is None or time.monotonic() - seen[0] > MISS_TTL:
            return False, None
        return True, seen[1]

    @property
    def company(self) -> str:
        return self.client.company_id

    @classmethod
    def from_tenant(cls, tenant: Tenant, env: Mapping[str, str]) -> IntacctLedger:
        """Credentials from ``{credentials_env}_SENDER_ID`` etc.; company from the tenant."""
        prefix = tenant.ledger.credentials_env or "BILLSTREAM_INTACCT"

        def get(name: str) -> str:
            return env.get(f"{prefix}_{name}", "").strip()

        missing = [f"{prefix}_{name}" for name in _REQUIRED_ENV if not get(name)]
        if missing:
            raise LedgerError(
                Reason.AUTH,
                f"Sage Intacct credentials for tenant {tenant.id} are not set: "
                f"{', '.join(missing)}.",
                detail={"missing": missing},
            )

        def number(name: str, default: float, *, integer: bool = True) -> Any:
            raw = get(name)
            if not raw:
                return default
            try:
                value = int(raw) if integer else float(raw)
            except ValueError:
                value = 0
            if value <= 0:
                raise LedgerError(
                    Reason.AUTH, f"{prefix}_{name} must be a positive number, not {raw!r}."
                )
            return value

        policy = get("VENDOR_IDS") or "derived"
        if policy not in {"derived", "auto"}:
            raise LedgerError(
                Reason.AUTH, f"{prefix}_VENDOR_IDS must be 'derived' or 'auto', not {policy!r}."
            )
        credentials = IntacctCredentials(
            sender_id=get("SENDER_ID"),
            sender_password=get("SENDER_PASSWORD"),
            company_id=tenant.ledger.company,
            user_id=get("USER_ID"),
            user_password=get("USER_PASSWORD"),
            entity_id=get("ENTITY_ID") or None,
        )
        client = IntacctClient(
            credentials,
            endpoint=tenant.ledger.url or get("URL") or DEFAULT_ENDPOINT,
            concurrency=number("CONCURRENCY", DEFAULT_CONCURRENCY),
            max_batch=number("MAX_BATCH", DEFAULT_MAX_BATCH),
            timeout=number("TIMEOUT", 120.0, integer=False),
            retry=RetryPolicy(attempts=number("RETRY_ATTEMPTS", RetryPolicy.attempts)),
        )
        return cls(
            client,
            vendor_ids="auto" if policy == "auto" else "derived",
            folder=get("SUPDOC_FOLDER") or DEFAULT_FOLDER,
        )

    async def _run(
        self, functions: Sequence[Function], *, write: bool = False, transaction: bool = False
    ) -> list[Result]:
        return await self.client.execute(functions, write=write, transaction=transaction)

    async def _query(self, query: Element, what: str) -> Result:
        [res] = await self._run([Function(read_controlid("query"), query)])
        if not res.ok:
            raise ledger_error(res.errors, what=what)
        return res

    async def _query_all(
        self,
        obj: str,
        fields: Sequence[str],
        where: Element,
        *,
        what: str,
        caseinsensitive: bool = False,
        orderby: str | None = None,
        max_pages: int = 5,
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for page in range(max_pages):
            res = await self._query(
                _query(
                    obj,
                    fields,
                    where,
                    caseinsensitive=caseinsensitive,
                    orderby=orderby,
                    pagesize=2000,
                    offset=page * 2000,
                ),
                what,
            )
            rows.extend(res.records())
            if res.numremaining <= 0:
                break
        return rows

    # -- vendors --------------------------------------------------------------------------

    async def find_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor | None:
        key = vendor_match_key(name)
        rows = await self._vendor_rows(name, key, tax_number)
        found = self._pick_vendor(rows, key, tax_number)
        if found is None:
            self._remember_miss(("vendor", key, tax_number or ""))
        return found

    async def _vendor_rows(
        self, name: str, key: str, tax_number: str | None
    ) -> list[dict[str, Any]]:
        # Intacct cannot filter on our normalised name, so cast a net the server can evaluate
        # (derived id, exact name, a distinctive word, tax id) and match precisely here.
        conds = [_cond("equalto", "VENDORID", derived_vendor_id(key))]
        if name.strip():
            conds.append(_cond("equalto", "NAME", name.strip()))
        word = _probe_word(name, key)
        if word:
            conds.append(_cond("like", "NAME", f"%{word}%"))
        if tax_number and tax_number.strip():
            conds.append(_cond("equalto", "TAXID", tax_number.strip()))
            compact = re.sub(r"[^0-9A-Za-z]", "", tax_number)
            if len(compact) >= 5:
                # Tax ids are stored as typed ("GB 123 4567 89"): match any spacing here and
                # compare the compact forms below.
                conds.append(_cond("like", "TAXID", "%" + "%".join(compact) + "%"))
        return await self._query_all(
            "VENDOR",
            VENDOR_FIELDS,
            _any(*conds),
            what=f"the lookup of vendor {name!r}",
            caseinsensitive=True,
            orderby="RECORDNO",
        )

    @staticmethod
    def _pick_vendor(rows: list[dict[str, Any]], key: str, tax_number: str | None) -> Vendor | None:
        def tax(value: Any) -> str:
            return re.sub(r"[^0-9A-Z]", "", str(value or "").upper())

        chosen: list[dict[str, Any]] = []
        if tax_number and tax(tax_number):
            chosen = [r for r in rows if tax(r.get("TAXID")) == tax(tax_number)]
        if not chosen:
            chosen = [r for r in rows if vendor_match_key(str(r.get("NAME", ""))) == key]
        if not chosen:
            return None
        chosen.sort(key=lambda r: (not _active(r), _int(r.get("RECORDNO"))))
        return _vendor(chosen[0])

    async def _vendor_by_id(self, vendor_id: str) -> dict[str, Any] | None:
        res = await self._query(
            _query("VENDOR", VENDOR_FIELDS, _cond("equalto", "VENDORID", vendor_id)),
            f"the lookup of vendor {vendor_id}",
        )
        rows = res.records()
        return rows[0] if rows else None

    async def create_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor:
        key = vendor_match_key(name)
        try:
            return await self._create_vendor_once(name, key, tax_number)
        finally:
            # Lookups made on the way are stale once we have written.
            self._misses.pop(("vendor", key, tax_number or ""), None)

    async def _create_vendor_once(self, name: str, key: str, tax_number: str | None) -> Vendor:
        async with self._vendor_locks.hold(key):
            # With derived ids a vendor made meanwhile collides on its id and is adopted
            # below, so a lookup that just missed need not be repeated.
            missed, _ = self._recent_miss(("vendor", key, tax_number or ""))
            if not missed or self.vendor_ids == "auto":
                found = await self.find_vendor(name, tax_number=tax_number)
                self._recent_miss(("vendor", key, tax_number or ""))
                if found is not None:
                    return found
            if self.vendor_ids == "auto":
                return await self._create_vendor_auto(name, key, tax_number)
            for attempt in range(4):
                vendor_id = derived_vendor_id(key, attempt)
                res = await self._create_vendor(name, key, tax_number, vendor_id)
                if res.ok:
                    tax = (tax_number or "").strip() or None
                    return Vendor(id=vendor_id, name=name.strip(), tax_number=tax)
                if not (is_already_exists(res.errors) or is_repeated_controlid(res.errors)):
                    raise ledger_error(res.errors, what=f"the new vendor {name!r}")
                # Another worker won the race for this id (or our own earlier, uncertain
                # try did): converge on that vendor when it is the same supplier.
                holder = await self._vendor_by_id(vendor_id)
                if holder is not None and vendor_match_key(str(holder.get("NAME", ""))) == key:
                    return _vendor(holder)
                found = await self.find_vendor(name, tax_number=tax_number)
                if found is not None:
                    return found
            raise LedgerError(
                Reason.VALIDATION,
                f"Could not create vendor {name!r}: every derived VENDORID is taken by "
                "another supplier.",
            )

    async def _create_vendor(
        self, name: str, key: str, tax_number: str | None, vendor_id: str | None
    ) -> Result:
        body = element(
            "create",
            {
                "VENDOR": {
                    "VENDORID": vendor_id,
                    "NAME": name.strip(),
                    "TAXID": tax_number,
                    "DISPLAYCONTACT": {"PRINTAS": name.strip()},
                }
            },
        )
        fn = Function(write_controlid("vendor", key, vendor_id or "auto"), body)
        [res] = await self._run([fn], write=True)
        return res

    async def _create_vendor_auto(self, name: str, key: str, tax_number: str | None) -> Vendor:
        res = await self._create_vendor(name, key, tax_number, None)
        if not res.ok and not is_repeated_controlid(res.errors):
            raise ledger_error(res.errors, what=f"the new vendor {name!r}")
        # With document sequencing two racing workers each get a vendor; both then pick the
        # oldest one, so every bill still lands on a single vendor.
        found = await self.find_vendor(name, tax_number=tax_number)
        if found is None:
            raise LedgerError(
                Reason.UNAVAILABLE,
                f"Vendor {name!r} was created but cannot be found yet.",
                uncertain=True,
            )
        return found

    # -- bills ----------------------------------------------------------------------------

    def _find_bill_query(self, vendor_id: str, number: str, credit: bool) -> Element:
        return _query(
            _bill_object(credit),
            BILL_FIELDS,
            _all(_cond("equalto", "VENDORID", vendor_id), _cond("equalto", "RECORDID", number)),
            orderby="RECORDNO",
        )

    async def find_bill(
        self, vendor_id: str, number: str, *, credit_note: bool = False
    ) -> LedgerBill | None:
        res = await self._query(
            self._find_bill_query(vendor_id, number, credit_note),
            f"the lookup of {'credit note' if credit_note else 'bill'} {number}",
        )
        rows = res.records()
        if not rows:
            self._remember_miss(("bill", vendor_id, number, str(credit_note)))
            return None
        return _ledger_bill(rows[0], credit_note)

    async def get_bill(self, bill_id: str) -> LedgerBill | None:
        if not bill_id.isdigit():
            return None
        # RECORDNO is shared by bills and adjustments, so one of the two answers.
        functions = [
            Function(
                read_controlid("get-bill"),
                _query(obj, BILL_FIELDS, _cond("equalto", "RECORDNO", bill_id)),
            )
            for obj in (BILL, ADJUSTMENT)
        ]
        results = await self._run(functions)
        for res, credit in zip(results, (False, True), strict=True):
            if not res.ok:
                raise ledger_error(res.errors, what=f"the lookup of bill {bill_id}")
            rows = res.records()
            if rows:
                return _ledger_bill(rows[0], credit)
        return None

    @staticmethod
    def _bill_element(vendor: Vendor, bill: DraftBill) -> Element:
        credit = bill.credit_note
        sign = Decimal(-1) if credit else Decimal(1)
        lines = []
        for line in bill.lines:
            dims = line.dimensions
            # With a tax code the line goes in net and Intacct books the tax entry (VAT/GST
            # companies); without one, the tax stays in the expense, as US companies book it.
            taxed = bool(line.tax_code)
            item: dict[str, Any] = {
                "ACCOUNTNO": line.gl_account,
                "TRX_AMOUNT": format_amount(sign * (line.net if taxed else line.total)),
                "ENTRYDESCRIPTION": line.description[:1000],
                "LOCATIONID": dims.location,
                "DEPARTMENTID": dims.department,
                "PROJECTID": dims.project,
            }
            if taxed:
                item["TAXENTRIES"] = {
                    "TAXENTRY": [
                        {"DETAILID": line.tax_code, "TRX_TAX": format_amount(sign * line.tax)}
                    ]
                }
            lines.append(item)
        header: dict[str, Any] = {
            "WHENCREATED": format_date(bill.date),
            "VENDORID": vendor.id,
            "RECORDID": bill.number,
            "DESCRIPTION": tag_description(bill.memo, bill.item_key),
            "CURRENCY": bill.currency,
        }
        if credit:
            header["ACTION"] = "Draft"
            header["APADJUSTMENTITEMS"] = {"APADJUSTMENTITEM": lines}
            return element(ADJUSTMENT, header)
        header["WHENDUE"] = format_date(bill.due_date)
        header["ACTION"] = "Draft"
        header["APBILLITEMS"] = {"APBILLITEM": lines}
        return element(BILL, header)

    async def create_draft_bill(self, vendor: Vendor, bill: DraftBill) -> LedgerBill:
        try:
            return await self._create_draft_bill(vendor, bill)
        finally:
            self._misses.pop(("bill", vendor.id, bill.number, str(bill.credit_note)), None)

    async def _create_draft_bill(self, vendor: Vendor, bill: DraftBill) -> LedgerBill:
        kind = "credit note" if bill.credit_note else "bill"
        missed, _ = self._recent_miss(("bill", vendor.id, bill.number, str(bill.credit_note)))
        existing = None
        if not missed:
            existing = await self.find_bill(vendor.id, bill.number, credit_note=bill.credit_note)
            self._recent_miss(("bill", vendor.id, bill.number, str(bill.credit_note)))
        if existing is not None:
            if existing.item_key == bill.item_key:
                return existing
            raise LedgerError(
                Reason.DUPLICATE,
                f"{kind.capitalize()} {bill.number} from {vendor.name} already exists in "
                f"{self.company} as record {existing.id}.",
                detail={"bill_id": existing.id, "item_key": existing.item_key},
            )
        obj = self._bill_element(vendor, bill)
        digest = hashlib.sha256(tostring(obj)).hexdigest()
        # Read the bill back in the same request: Intacct's create answers only RECORDNO.
        readback = Function(
            read_controlid("readback"),
            self._find_bill_query(vendor.id, bill.number, bill.credit_note),
        )
        salt = ""
        while True:
            create = Function(
                write_controlid("bill", bill.item_key, digest, salt), element("create", obj)
            )
            created, found = await self._run([create, readback], write=True)
            if created.ok:
                break
            if not is_repeated_controlid(created.errors):
                raise ledger_error(
                    created.errors,
                    what=f"{kind} {bill.number} from {vendor.name}",
                    extra={"item_key": bill.item_key},
                )
            # This very bill was posted before: by our own earlier try, or by another worker
            # on the same item just now. Adopt it; if it is gone (deleted by hand since, as
            # the lookup above also found), post it afresh, once.
            again = await self.find_bill(vendor.id, bill.number, credit_note=bill.credit_note)
            if again is not None and again.item_key == bill.item_key:
                return again
            if salt:
                raise LedgerError(
                    Reason.UNAVAILABLE,
                    f"Sage Intacct says {kind} {bill.number} was already posted, but it "
                    "cannot be found.",
                    uncertain=True,
                )
            salt = uuid.uuid4().hex
            readback = Function(read_controlid("readback"), readback.body)
        records = created.records()
        recordno = str(records[0].get("RECORDNO", "")) if records else ""
        read_rows = found.records() if found.ok else []
        rows = [r for r in read_rows if str(r.get("RECORDNO")) == recordno]
        if rows:
            return _ledger_bill(rows[0], bill.credit_note)
        made = await self.get_bill(recordno) if recordno else None
        if made is None:
            raise LedgerError(
                Reason.UNAVAILABLE,
                f"{kind.capitalize()} {bill.number} was created but could not be read back.",
                uncertain=True,
            )
        return made

    # -- attachments ----------------------------------------------------------------------

    async def _attachment_view(self, bill: LedgerBill) -> _AttachmentView:
        derived = supdoc_id(bill.item_key, bill.id)
        bill_res, doc_res = await self._run(
            [
                Function(
                    read_controlid("att-bill"),
                    _query(
                        _bill_object(bill.credit_note),
                        ["RECORDNO", "SUPDOCID"],
                        _cond("equalto", "RECORDNO", bill.id),
                    ),
                ),
                # Fetched speculatively in the same request: it is the usual answer.
                Function(read_controlid("att-doc"), _get_supdoc(derived)),
            ]
        )
        if not bill_res.ok:
            raise ledger_error(bill_res.errors, what=f"the lookup of bill {bill.id}")
        rows = bill_res.records()
        if not rows:
            return _AttachmentView(bill_exists=False)
        derived_doc = self._first(doc_res)
        linked = str(rows[0].get("SUPDOCID") or "").strip()
        if not linked:
            return _AttachmentView(True, derived_doc=derived_doc)
        if linked == derived:
            return _AttachmentView(True, linked, derived_doc, derived_doc)
        [other] = await self._run([Function(read_controlid("att-doc"), _get_supdoc(linked))])
        return _AttachmentView(True, linked, self._first(other), derived_doc)

    @staticmethod
    def _first(res: Result) -> dict[str, Any] | None:
        # A missing supdoc answers with no record (or a failure): either way, none.
        records = res.records() if res.ok else []
        return records[0] if records else None

    async def _attachment(
        self, bill: LedgerBill, supdoc: str, doc: Mapping[str, Any]
    ) -> Attachment:
        meta = _supdoc_meta(str(doc.get("description") or ""))
        if meta is not None:
            return Attachment(
                id=supdoc,
                bill_id=bill.id,
                filename=str(meta["file"]),
                sha256=str(meta["sha256"]),
                size=int(meta["size"]),
            )
        # Attached by someone else: fetch the file itself to describe it.
        [full] = await self._run([Function(read_controlid("att-data"), _get_supdoc(supdoc, None))])
        record = self._first(full) or {}
        files = (
            (record.get("attachments") or {}).get("attachment")
            if isinstance(record.get("attachments"), dict)
            else None
        )
        first = files[0] if isinstance(files, list) else files
        if not isinstance(first, dict):
            return Attachment(id=supdoc, bill_id=bill.id, filename="", sha256="", size=0)
        content = base64.b64decode(str(first.get("attachmentdata") or ""))
        name = str(first.get("attachmentname") or "")
        ext = str(first.get("attachmenttype") or "")
        return Attachment(
            id=supdoc,
            bill_id=bill.id,
            filename=f"{name}.{ext}" if ext else name,
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
        )

    async def find_attachment(self, bill: LedgerBill) -> Attachment | None:
        view = await self._attachment_view(bill)
        if not view.linked or view.linked_doc is None:
            self._remember_miss(("attachment", bill.id), view)
            return None
        return await self._attachment(bill, view.linked, view.linked_doc)

    async def _ensure_folder(self) -> None:
        if self._folder_ready:
            return
        async with self._folder_lock:
            if self._folder_ready:
                return
            # A fresh control id each time: a folder deleted by hand must be made again.
            fn = Function(
                read_controlid("folder"),
                element(
                    "create_supdocfolder",
                    {
                        "supdocfoldername": self.folder,
                        "supdocfolderdescription": "Original documents attached by billstream",
                    },
                ),
            )
            [res] = await self._run([fn], write=True)
            if not res.ok and not is_already_exists(res.errors):
                raise self._attach_error(res.errors, f"the attachments folder {self.folder!r}")
            self._folder_ready = True

    @staticmethod
    def _attach_error(errors: Sequence[ErrorDetail], what: str) -> LedgerError:
        err = ledger_error(errors, what=what)
        if err.transient or err.reason in {Reason.AUTH, Reason.PERIOD_CLOSED}:
            return err
        return LedgerError(Reason.ATTACHMENT_FAILED, err.message, detail=err.detail)

    def _create_supdoc(self, supdoc: str, bill: LedgerBill, document: Document) -> Function:
        stem, ext = _extension(document)
        body = element(
            "create_supdoc",
            {
                "supdocid": supdoc,
                "supdocname": f"{bill.number} {document.filename}"[:100],
                "supdocfoldername": self.folder,
                "supdocdescription": _supdoc_description(bill, document),
                "attachments": {
                    "attachment": {
                        "attachmentname": stem,
                        "attachmenttype": ext,
                        "attachmentdata": base64.b64encode(document.content).decode("ascii"),
                    }
                },
            },
        )
        return Function(write_controlid("supdoc", supdoc, document.sha256), body)

    async def attach_document(self, bill: LedgerBill, document: Document) -> Attachment:
        try:
            return await self._attach_document(bill, document)
        finally:
            self._misses.pop(("attachment", bill.id), None)

    async def _attach_document(self, bill: LedgerBill, document: Document) -> Attachment:
        await self._ensure_folder()
        missed, seen = self._recent_miss(("attachment", bill.id))
        view = seen if missed and isinstance(seen, _AttachmentView) else None
        view = view or await self._attachment_view(bill)
        if not view.bill_exists:
            raise LedgerError(
                Reason.ATTACHMENT_FAILED,
                f"Bill {bill.id} ({bill.number}) no longer exists in {self.company}.",
                detail={"bill_id": bill.id},
            )
        if view.linked and view.linked_doc is not None:
            raise LedgerError(
                Reason.ATTACHMENT_FAILED,
                f"Bill {bill.id} ({bill.number}) already has attachment {view.linked}.",
                detail={"attachment_id": view.linked, "bill_id": bill.id},
            )
        supdoc = supdoc_id(bill.item_key, bill.id)
        # Setting SUPDOCID again is harmless, and a link undone by hand must be redone: a fresh
        # control id, so uniqueid never refuses it.
        link = Function(
            read_controlid("link"),
            element(
                "update",
                {_bill_object(bill.credit_note): {"RECORDNO": bill.id, "SUPDOCID": supdoc}},
            ),
        )
        if view.derived_doc is not None:
            # Uploaded earlier for this item (a retry, or the bill was re-created): link it.
            results = await self._run([link], write=True)
        else:
            # Upload and link as one unit: a supdoc never exists without its bill's link.
            upload = self._create_supdoc(supdoc, bill, document)
            results = await self._run([upload, link], write=True, transaction=True)
            if is_repeated_controlid(_causes(results)) and await self.find_attachment(bill) is None:
                # Uploaded before, then deleted by hand since (nothing is linked now, and the
                # view above found no supdoc): upload again, once, under a fresh control id.
                fresh = Function(
                    write_controlid("supdoc", upload.controlid, uuid.uuid4().hex), upload.body
                )
                link = Function(read_controlid("link"), link.body)
                results = await self._run([fresh, link], write=True, transaction=True)
        if all(r.ok for r in results):
            doc = view.derived_doc or {"description": _supdoc_description(bill, document)}
            return await self._attachment(bill, supdoc, doc)
        errors = _causes(results)
        if is_already_exists(errors) or is_repeated_controlid(errors):
            # Another worker, or our own uncertain earlier try, got there first.
            again = await self.find_attachment(bill)
            if again is not None:
                return again
            [res] = await self._run([Function(read_controlid("link"), link.body)], write=True)
            if res.ok:
                again = await self.find_attachment(bill)
                if again is not None:
                    return again
        raise self._attach_error(errors, f"the attachment of {bill.number}")

    # -- periods --------------------------------------------------------------------------

    async def _closed_ranges(
        self, since: dt.date, until: dt.date | None = None
    ) -> list[tuple[dt.date, dt.date]]:
        conds = [
            _cond("equalto", "CLOSED", "true"),
            _cond("greaterthanorequalto", "END_DATE", format_date(since)),
        ]
        if until is not None:
            conds.append(_cond("lessthanorequalto", "START_DATE", format_date(until)))
        query = _query(
            PERIOD_OBJECT,
            ["NAME", "START_DATE", "END_DATE"],
            _all(*conds),
            orderby="START_DATE",
            pagesize=2000,
        )
        [res] = await self._run([Function(read_controlid("periods"), query)])
        if not res.ok:
            if is_transient(classify(res.errors)):
                raise ledger_error(res.errors, what="the period lookup")
            # Not every company exposes period closing to the API: then a closed period
            # shows up only as the refusal of a bill (period_closed), which is still handled.
            if not self._period_warned:
                self._period_warned = True
                log.warning(
                    "intacct %s: closed periods cannot be read (%s); treating periods as open",
                    self.company,
                    "; ".join(e.text for e in res.errors),
                )
            return []
        ranges = []
        for row in res.records():
            try:
                start = parse_date(str(row["START_DATE"]))
                end = parse_date(str(row["END_DATE"]))
            except (KeyError, ValueError):
                continue
            ranges.append((start, end))
        return sorted(ranges)

    async def period_is_open(self, day: dt.date) -> bool:
        ranges = await self._closed_ranges(day, day)
        return not any(start <= day <= end for start, end in ranges)

    async def next_open_day(self, day: dt.date) -> dt.date | None:
        ranges = await self._closed_ranges(day)
        probe = day
        for start, end in ranges:
            if start <= probe <= end:
                probe = end + dt.timedelta(days=1)
        if any(start <= probe <= end for start, end in ranges):
            return None
        return probe

    async def _unknown(self, obj: str, key: str, codes: Collection[str]) -> list[str] | None:
        wanted = sorted({c.strip() for c in codes if c.strip()})
        if not wanted:
            return []
        where = element("in", {"field": key, "value": wanted})
        [res] = await self._run(
            [
                Function(
                    read_controlid("catalog"), _query(obj, [key, "STATUS"], where, pagesize=2000)
                )
            ]
        )
        if not res.ok:
            reason = classify(res.errors)
            if is_transient(reason) or reason is Reason.AUTH:
                raise ledger_error(res.errors, what=f"the lookup of {obj}")
            # Not every company (or role) lets the API read its chart: the codes are then
            # checked only as bills post, and the caller says so.
            return None
        active = {str(r.get(key, "")).strip() for r in res.records() if _active(r)}
        return [c for c in wanted if c not in active]

    async def unknown_gl_accounts(self, codes: Collection[str]) -> list[str] | None:
        """The account numbers without an active GLACCOUNT; None when it cannot be read."""
        return await self._unknown("GLACCOUNT", "ACCOUNTNO", codes)

    async def unknown_tax_codes(self, codes: Collection[str]) -> list[str] | None:
        """The tax detail ids without an active TAXDETAIL; None when it cannot be read."""
        return await self._unknown("TAXDETAIL", "DETAILID", codes)

    async def check_connection(self) -> None:
        await self.client.ensure_session()

    async def aclose(self) -> None:
        await self.client.aclose()
