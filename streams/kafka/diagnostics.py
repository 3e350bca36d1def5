"""Where a running worker's tasks are waiting, for the SIGUSR1 dump of a stuck worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """The frames from the task's coroutine down to what it awaits now.

    ``Task.print_stack`` shows only the outermost frame of a suspended task, which for a
    Faust agent is always the same line of Faust; the line that waits is at the bottom of
    the ``await`` chain. Frames only: never local variables, which hold credentials.
    """
    lines: list[str] = []
    awaited: Any = task.get_coro()
    for _ in range(64):  # a cycle cannot happen in CPython, a bound keeps it obvious
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    # The innermost frame awaits a future through an iterator that does not expose it; the
    # task itself knows it (a private attribute of asyncio, so read with care).
    waiter = getattr(task, "_fut_waiter", None)
    if isinstance(waiter, asyncio.Task):
        lines.append(f"  awaiting task {waiter.get_name()}")
    elif isinstance(waiter, asyncio.Future):
        lines.append(f"  awaiting {type(waiter).__name__}")
    return lines


def describe_tasks(tasks: Iterable[asyncio.Task[Any]]) -> str:
    """One block per task: its name, then its await chain."""
    blocks = []
    for task in sorted(tasks, key=lambda t: t.get_name()):
        blocks.append("\n".join([f"Task {task.get_name()}:", *await_chain(task)]))
    return "\n".join(blocks) + "\n"


def describe_consumer(app: Any) -> str:
    """What the worker's Kafka consumer holds, fetches and has committed, per partition.

    Read from Faust's and aiokafka's internals for a human looking at a stuck worker; each
    line is best-effort, a missing attribute is reported rather than raised.
    """
    consumer = getattr(app, "consumer", None)
    if consumer is None:
        return "consumer: not started\n"
    lines = [f"consumer: flow {'active' if getattr(consumer, 'flow_active', '?') else 'STOPPED'}"]

    def read(name: str) -> Any:
        value = getattr(consumer, name, None)
        return value() if callable(value) else value

    try:
        assigned = sorted(read("assignment") or ())
    except Exception as exc:  # a diagnostic must not fail on a half-started consumer
        lines.append(f"  assignment unreadable: {exc!r}")
        assigned = []
    active = set(read("_active_partitions") or ())
    paused = set(read("_paused_partitions") or ())
    buffered = set(read("_buffered_partitions") or ())
    read_offsets = read("_read_offset") or {}
    committed = read("_committed_offset") or {}
    unacked: dict[Any, list[int]] = {}
    for message in list(read("_unacked_messages") or ()):
        unacked.setdefault(message.tp, []).append(message.offset)
    aio = _aiokafka(consumer)
    aio_paused = set(aio.paused()) if aio is not None else set()
    fetcher = getattr(aio, "_fetcher", None)
    buffered_in_aio = set(getattr(fetcher, "_records", {}) or {})
    for tp in assigned:
        flags = [
            name
            for name, held in (
                ("inactive", tp not in active),
                ("paused", tp in paused),
                ("buffer-full", tp in buffered),
                ("paused-in-aiokafka", tp in aio_paused),
            )
            if held
        ]
        pending = sorted(unacked.get(tp, ()))
        lines.append(
            f"  {tp.topic}[{tp.partition}] read={read_offsets.get(tp)} "
            f"committed={committed.get(tp)} unacked={len(pending)}"
            + (f" from {pending[0]}" if pending else "")
            + f" aiokafka={_fetch_state(consumer, tp)}"
            + (" records-buffered" if tp in buffered_in_aio else "")
            + (f" ({', '.join(flags)})" if flags else "")
        )
    return "\n".join(lines) + "\n"


def _aiokafka(consumer: Any) -> Any:
    """The aiokafka consumer inside Faust's consumer thread (None before it starts)."""
    return getattr(getattr(consumer, "_thread", None), "_consumer", None)


def partition_state(consumer: Any, tp: Any) -> Any:
    """aiokafka's state of one partition of Faust's ``consumer`` (position, pause, reset),
    or None when it has none: not started, not assigned, or mid-rebalance."""
    try:
        return _aiokafka(consumer)._subscription.subscription.assignment.state_value(tp)
    except Exception:
        return None


def _fetch_state(consumer: Any, tp: Any) -> str:
    """aiokafka's own view of a partition: where it fetches next, or why it does not."""
    state = partition_state(consumer, tp)
    if state is None:
        return "unassigned"
    if state.awaiting_reset:
        return "awaiting-reset"
    return f"position {state.position}" if state.has_valid_position else "no-position"
