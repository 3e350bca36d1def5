"""``billstream serve web``: the operator page."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import click

from streams.cli.base import fail, print_json, serve
from streams.config import Settings


@serve.command("web")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback needs BILLSTREAM_WEB_TOKEN.",
)
@click.option("--port", type=int, default=8090, show_default=True, help="0 picks a free port.")
@click.option(
    "--allowed-host",
    "allowed",
    multiple=True,
    metavar="NAME",
    help="A host name the page is reached by besides loopback and --host (repeatable; also "
    "BILLSTREAM_WEB_ALLOWED_HOSTS, comma-separated). Requests for other names get 421.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the address as one JSON line.")
def serve_web(host: str, port: int, allowed: tuple[str, ...], as_json: bool) -> None:
    """Serve the operator page: counts per stage, parked invoices grouped by tenant and
    reason with what to do, search by supplier or invoice number, each invoice's timeline,
    and Replay buttons that run the same replay as `billstream replay`.

    Open the printed address in a browser. On loopback no token is needed (unless
    BILLSTREAM_WEB_TOKEN is set); bound to any other address the token is required: open
    the page once as http://HOST:PORT/?token=TOKEN, or send "Authorization: Bearer TOKEN".
    Uses BILLSTREAM_KAFKA_URL, or the embedded broker of the data folder when unset.
    """
    from streams.web.server import (
        ALLOWED_HOSTS_ENV,
        MIN_TOKEN,
        TOKEN_ENV,
        allowed_hosts,
        is_loopback,
    )

    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if token is None and not is_loopback(host):
        fail(f"{host} is not loopback: set {TOKEN_ENV} (at least {MIN_TOKEN} characters)")
    if token is not None and len(token) < MIN_TOKEN:
        fail(f"{TOKEN_ENV} must be at least {MIN_TOKEN} characters long")
    from streams.pipeline.runtime import kafka_for

    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    hosts = allowed_hosts(host, [*allowed, *os.environ.get(ALLOWED_HOSTS_ENV, "").split(",")])
    with kafka_for(settings) as kafka_url:
        asyncio.run(_serve(settings, kafka_url, host, port, token, hosts, as_json))


async def _serve(
    settings: Settings,
    kafka_url: str,
    host: str,
    port: int,
    token: str | None,
    hosts: frozenset[str],
    as_json: bool,
) -> None:
    from adapters.dext.web import start_app
    from domain.tenants import TenantsFileError, load_tenants
    from streams.web.server import make_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        tenants = load_tenants(settings.tenants_file)
    except TenantsFileError as exc:
        click.echo(f"billstream: tenant names not shown ({exc})", err=True)
        tenants = None
    app = make_app(settings, kafka_url, token=token, tenants=tenants, hosts=hosts)
    try:
        runner, url = await start_app(app, host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
        return
    try:
        if as_json:
            print_json({"url": url + "/", "token_required": token is not None})
        else:
            click.echo(f"operator page: {url}/" + ("  (token required)" if token else ""))
        await stop.wait()
    finally:
        await runner.cleanup()
