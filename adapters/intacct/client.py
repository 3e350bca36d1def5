"""The Sage Intacct XML gateway client: ``IntacctClient`` owns the wire for one company.

One API session (``getAPISession`` in a request of its own, then the session id at the
endpoint it names, renewed when it lapses or is refused), a limit on requests in flight per
company shared by every caller of the instance, batching of the functions that queue up
behind that limit into one request, and retries with capped, jittered exponential backoff
(``adapters.http``) for what is safe to retry.

What is safe to retry: anything refused before it ran (``GW-0010``/HTTP 429, HTTP 5xx other
than 524, a connection never made), and reads whatever happened. A write that may have run
(timeout, HTTP 524, a connection lost mid-answer) is not retried here: it is raised with
``uncertain=True`` so the pipeline looks the bill up before writing it again. Writes also
carry function control ids derived from what they write, under ``uniqueid=true``, so Intacct
itself refuses a repeat that slips through. The ledger port on top is ``adapters.intacct.ledger``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from adapters import observability
from adapters.http import backoff
from adapters.http import retry_after as parse_retry_after
from adapters.intacct.errors import classify, ledger_error
from adapters.intacct.keys import read_controlid
from adapters.intacct.xml import (
    EnvelopeError,
    ErrorDetail,
    Function,
    Login,
    Response,
    Result,
    build_request,
    element,
    parse_response,
)
from domain.errors import LedgerError, Reason, is_transient

DEFAULT_ENDPOINT = "https://api.intacct.com/ia/xml/xmlgw.phtml"
# The ``operation`` label of the request metrics: every request is one or the other.
OPERATIONS = ("read", "write")
DEFAULT_CONCURRENCY = 2  # the usual per-company allowance of concurrent XML requests
DEFAULT_MAX_BATCH = 25  # functions per request when callers queue up
# Seconds a function waits for others to share its request when a slot is free: Intacct
# bills each request against the company's entitlement, and bills arrive a few ms apart.
DEFAULT_BATCH_WINDOW = 0.1

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
class RequestRetries:
    """Attempts per call for what is safe to retry, and the backoff between them (seconds:
    the first wait is at most ``initial``, each next one at most twice the last, up to
    ``maximum``)."""

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


def _answer(resp: httpx.Response, write: bool) -> Response:
    """The parsed answer of an HTTP response, or the ``LedgerError`` its status means."""
    status = resp.status_code
    detail: dict[str, Any] = {"system": "intacct", "http_status": status}
    parsed: Response | None = None
    if "xml" in resp.headers.get("content-type", "") or resp.content.lstrip().startswith(b"<?xml"):
        try:
            parsed = parse_response(resp.content)
        except EnvelopeError:
            parsed = None
    retry_after = parse_retry_after(resp.headers.get("retry-after"))
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


def _slide(session: _Session, stamp: dt.datetime | None, timeout: dt.datetime | None) -> None:
    # The timeout slides forward on every call; trust the server's span, not our clock.
    lifetime = 1800.0
    if stamp is not None and timeout is not None:
        lifetime = max((timeout - stamp).total_seconds(), 1.0)
    margin = min(60.0, lifetime / 4)
    session.deadline = time.monotonic() + lifetime - margin


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
        batch_window: float = DEFAULT_BATCH_WINDOW,
        timeout: float = 120.0,
        retry: RequestRetries | None = None,
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
        self.batch_window = max(batch_window, 0.0)
        self.retry = retry or RequestRetries()
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
        self._window: asyncio.TimerHandle | None = None
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
        if self._window is not None:
            self._window.cancel()
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
        exc = state.outcome.exception() if state.outcome else None
        hint = exc.retry_after if isinstance(exc, LedgerError) else None
        return backoff(
            state.attempt_number, self.retry.maximum, base=self.retry.initial, retry_after=hint
        )

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
        self._schedule(gather=True)
        return await unit.future

    def _schedule(self, *, gather: bool = False) -> None:
        """Dispatch on the next loop turn, so callers that arrive together share a request;
        a newcomer with a slot free waits up to ``batch_window`` for company, unless its
        request is already full. (Units that queued for a slot have waited enough.)"""
        if self._closed or self._dispatch_pending:
            return
        loop = asyncio.get_running_loop()
        if gather and self.batch_window > 0 and self._queued_functions() < self.max_batch:
            if self._window is None:
                self._window = loop.call_later(self.batch_window, self._dispatch)
            return
        if self._window is not None:
            self._window.cancel()
            self._window = None
        self._dispatch_pending = True
        loop.call_soon(self._dispatch)

    def _queued_functions(self) -> int:
        return sum(len(u.functions) for u in self._queue if not u.future.done())

    def _dispatch(self) -> None:
        self._dispatch_pending = False
        self._window = None
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
            _slide(session, auth.session_timestamp, auth.session_timeout)
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
        return _answer(resp, write)

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
        _slide(session, auth.session_timestamp, auth.session_timeout)
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
