"""Serving an aiohttp application on a loopback port chosen by the OS when asked for 0."""

from __future__ import annotations

import socket

from aiohttp import web


async def start_app(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve ``app``; returns the runner (``await runner.cleanup()`` stops it) and base URL.

    The socket is bound here rather than by aiohttp so that ``port=0`` reports the real port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound = int(sock.getsockname()[1])
    # A short grace for open keep-alive connections, so that SIGTERM stops a server promptly.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return runner, f"http://{shown}:{bound}"
