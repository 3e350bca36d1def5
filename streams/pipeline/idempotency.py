"""``StageRunner``: run a stage at most once per item, retrying transient failures in place.

Kafka delivers at least once, so each stage makes its effect idempotent: the runner looks in the
stage's changelog-backed table first: an item that already passed re-emits the recorded
result and repeats no side effect. Only a newer attempt (a replay) re-runs a recorded
failure. Within a process a per-item lock stops two deliveries of one item from racing;
across processes Kafka's partitioning gives each item to one worker at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from weakref import WeakValueDictionary

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from adapters.http import backoff
from domain.errors import Problem, Reason, StageError
from domain.events import Envelope, Failure, Received, Stage, Work
from streams import metrics
from streams.pipeline import done as done_records
from streams.pipeline import poison
from streams.pipeline.poison import Delivered
from streams.pipeline.stages import StageContext
from streams.pipeline.wiring import Ports

log = logging.getLogger("billstream.stage")

StageFn = Callable[[Any, StageContext], Awaitable[Work]]


@dataclass(frozen=True)
class StageSpec:
    name: str
    source: Stage
    target: Stage
    fn: StageFn


@dataclass(frozen=True)
class Outcome:
    event: Envelope
    replayed: bool  # True: re-emitted from the table, nothing was done again
    raw: bytes = b""  # the event as it goes on the log (already serialised once)

    @property
    def value(self) -> bytes:
        return self.raw or self.event.to_bytes()


class _Unexpected(StageError):
    """A bug or an unmapped library error: retried like a transient, then parked."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, StageError) and (exc.transient or isinstance(exc, _Unexpected))


def _wait(max_seconds: float) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        # Capped exponential backoff with full jitter; a server's Retry-After wins if longer.
        exc = state.outcome.exception() if state.outcome else None
        hint = exc.retry_after if isinstance(exc, StageError) else None
        return backoff(state.attempt_number, max_seconds, retry_after=hint)

    return wait


def _context(
    event: Envelope,
    ports: Ports,
    *,
    today: dt.date | None = None,
    received_at: dt.datetime | None = None,
) -> StageContext:
    tenant = ports.tenant(event.tenant)
    data = event.data
    if received_at is None:
        received_at = data.received_at if isinstance(data, Work) else event.time
    return StageContext(
        tenant=tenant,
        ledger=ports.ledger(event.tenant),
        documents=ports.documents,
        received_at=received_at,
        subject=event.subject,
        today=today or ports.today(),
        duplicates=ports.duplicate_check(),
    )


async def run_stage(
    event: Envelope, spec: StageSpec, ports: Ports, *, today: dt.date | None = None
) -> Envelope:
    """Run the stage function with in-place retries; a ``Failure`` event when it gives up."""
    try:
        ctx = _context(event, ports, today=today)
    except KeyError as exc:
        err = StageError(
            Reason.VALIDATION,
            f"Tenant {event.tenant!r} is not in the tenants file: {exc.args[0]}",
            problems=[Problem(code="unknown_tenant", field="tenant", message=str(exc.args[0]))],
        )
        return event.follow(Stage.FAILED, Failure.of(err, event))
    if not isinstance(event.data, Received | Work):
        err = StageError(Reason.VALIDATION, f"{spec.name} cannot process a {event.type} event")
        return event.follow(Stage.FAILED, Failure.of(err, event))
    settings = ports.settings
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(settings.retry_attempts),
            wait=_wait(settings.retry_max_seconds),
            retry=retry_if_exception(_retryable),
            reraise=True,
            before_sleep=lambda s: log.warning(
                "%s %s: retrying after %s",
                spec.name,
                event.subject,
                s.outcome.exception() if s.outcome else "?",
            ),
        ):
            with attempt:
                try:
                    result = await spec.fn(event.data, ctx)
                except StageError:
                    raise
                except Exception as exc:
                    log.exception("%s %s: unexpected error", spec.name, event.subject)
                    raise _Unexpected(
                        Reason.UNAVAILABLE, f"unexpected error: {type(exc).__name__}: {exc}"
                    ) from exc
    except StageError as err:
        return event.follow(Stage.FAILED, Failure.of(err, event))
    return event.follow(spec.target, result)


class StageRunner:
    """Runs a stage function once per item (the done table remembers), with retries: shared by
    every stage agent."""

    def __init__(self, ports: Ports) -> None:
        self.ports = ports
        self._locks: WeakValueDictionary[tuple[str, str], asyncio.Lock] = WeakValueDictionary()

    def _lock(self, stage: str, key: str) -> asyncio.Lock:
        lock = self._locks.get((stage, key))
        if lock is None:
            lock = asyncio.Lock()
            self._locks[(stage, key)] = lock
        return lock

    async def __call__(
        self,
        event: Envelope,
        spec: StageSpec,
        done: MutableMapping[bytes, bytes],
        delivered: Delivered | None = None,
    ) -> Outcome:
        key = event.subject.encode()
        async with self._lock(spec.name, event.subject):
            previous = await self._previous(event, spec, done.get(key))
            # A success is final; a failure is re-run only by a newer attempt (a replay).
            if previous is not None and (
                previous.stage is not Stage.FAILED or previous.attempt >= event.attempt
            ):
                metrics.record_stage(spec.name, event.tenant, "replayed", 0.0)
                return Outcome(previous, replayed=True)
            started = time.perf_counter()
            today = self.ports.today()
            out = await run_stage(event, spec, self.ports, today=today)
            if delivered is None:
                delivered = Delivered(spec.source.value, -1, -1, key, event.to_bytes())
            # Neither the log nor the table's changelog takes a record over ~1 MiB: a result
            # that big is parked by reference before it can stop the partition.
            out, raw = poison.bounded(out, out.to_bytes(), delivered, spec.source)
            done[key] = done_records.record(event, out, today).to_bytes()
        outcome = "failed" if out.stage is Stage.FAILED else "ok"
        metrics.record_stage(spec.name, event.tenant, outcome, time.perf_counter() - started)
        if out.stage is Stage.ATTACHED and isinstance(out.data, Work):
            age = dt.datetime.now(dt.UTC) - out.data.received_at
            metrics.record_attached(event.tenant, age.total_seconds())
        return Outcome(out, replayed=False, raw=raw)

    async def _previous(
        self, event: Envelope, spec: StageSpec, recorded: bytes | None
    ) -> Envelope | None:
        """The event this stage already emitted for the item, or None (also when the entry
        cannot be read or rebuilt: the stage then runs again)."""
        if recorded is None:
            return None
        try:
            entry = done_records.read(recorded)
            if isinstance(entry, Envelope):
                return entry
            if entry.event is not None:
                return entry.event
            work = done_records.work_of(event, entry)
            if work is None:  # validation: no side effect, re-derived on the day it ran
                ctx = _context(event, self.ports, today=entry.today, received_at=entry.received_at)
                work = await spec.fn(event.data, ctx)
            return done_records.rebuilt(event, entry, work)
        except (ValueError, KeyError, StageError) as exc:
            log.warning(
                "%s %s: the recorded result is unusable (%s); running again",
                spec.name,
                event.subject,
                exc,
            )
            return None
