"""Serving a sandbox until it is told to stop, announcing it with one JSON ready line.

Every sandbox runs the same way: bind (port 0 lets the OS choose), print one JSON line that
holds at least ``url`` and ``credentials`` (``sandboxes.process.SandboxProcess``, the tests
and the demo read it), then serve until SIGTERM or SIGINT, or until stdin closes when asked
to (for parents that may die without cleaning up).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from aiohttp import web

ReadyLine = Mapping[str, Any]
Announce = Callable[[ReadyLine], Awaitable[None] | None]


def print_ready_line(line: ReadyLine) -> None:
    """The ready line: one JSON object on one line of stdout, flushed at once."""
    sys.stdout.write(orjson.dumps(line, default=str).decode() + "\n")
    sys.stdout.flush()


@contextlib.asynccontextmanager
async def listening(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 1.0,
    wildcard_as_loopback: bool = False,
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` while inside; yields the base URL it is bound to.

    The URL names the address the socket reports (IPv6 in brackets); with
    ``wildcard_as_loopback`` a wildcard bind (0.0.0.0, ::) is reported as 127.0.0.1. The
    shutdown grace is short so that a request held open on purpose does not delay SIGTERM.
    """
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = str(bound_host)
        if wildcard_as_loopback and shown in {"0.0.0.0", "::"}:
            shown = "127.0.0.1"
        if ":" in shown:
            shown = f"[{shown}]"
        yield f"http://{shown}:{bound_port}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def _stopping(stop: asyncio.Event, exit_on_stdin_eof: bool) -> Iterator[None]:
    """``stop`` is set by SIGTERM, SIGINT and (if asked) the end of stdin while inside."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    fd = sys.stdin.fileno() if exit_on_stdin_eof else None
    if fd is not None:

        def on_stdin() -> None:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)
                stop.set()

        loop.add_reader(fd, on_stdin)
    try:
        yield
    finally:
        if fd is not None:
            loop.remove_reader(fd)
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def serve_until_stopped(
    serving: AbstractAsyncContextManager[str],
    ready_line: Callable[[str], ReadyLine],
    *,
    announce: Announce = print_ready_line,
    stop: asyncio.Event | None = None,
    exit_on_stdin_eof: bool = False,
) -> None:
    """Enter ``serving`` (it yields the base URL), announce ``ready_line(url)``, and wait.

    Returns once SIGTERM or SIGINT arrives, ``stop`` is set, or (``exit_on_stdin_eof``)
    stdin closes; leaving ``serving`` then stops the server.
    """
    stop = stop or asyncio.Event()
    with _stopping(stop, exit_on_stdin_eof):
        async with serving as url:
            maybe = announce(ready_line(url))
            if maybe is not None:
                await maybe
            await stop.wait()
