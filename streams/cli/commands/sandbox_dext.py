"""``billstream sandbox dext``: the provisional Dext items API over the sample set."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from domain.tenants import TenantsFileError, load_tenants
from sandboxes.dext.samples import sample_items
from sandboxes.dext.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TOKEN,
    DextSandbox,
    Faults,
    serve,
)
from streams.cli.base import fail, sandbox
from streams.config import Settings


@sandbox.command("dext")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8091, show_default=True, help="0 picks a free port.")
@click.option("--items", "count", type=int, help="How many items (default: the sample set once).")
@click.option("--ready", type=int, help="Only the first N are ready; the rest are processing.")
@click.option("--latency-ms", type=int, default=0, show_default=True, help="Added to each answer.")
@click.option(
    "--rate-limit", type=int, default=0, show_default=True, help="Requests per window (0: none)."
)
@click.option(
    "--rate-window", type=float, default=60.0, show_default=True, help="Window in seconds."
)
@click.option(
    "--fail-every", type=int, default=0, show_default=True, help="Every Nth request gets 503."
)
@click.option(
    "--token-ttl", type=float, default=3600.0, show_default=True, help="Access token life (s)."
)
@click.option(
    "--url-ttl", type=float, default=7 * 86400.0, show_default=True, help="Document link life (s)."
)
@click.option("--client-id", default=DEFAULT_CLIENT_ID, show_default=True)
@click.option("--client-secret", default=DEFAULT_CLIENT_SECRET, show_default=True)
@click.option(
    "--token", default=DEFAULT_TOKEN, show_default=True, help="A personal token accepted too."
)
@click.option(
    "--tenants",
    "tenants_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tenants file naming each sample tenant's Dext account (default: the configured one).",
)
def sandbox_dext(
    host: str,
    port: int,
    count: int | None,
    ready: int | None,
    latency_ms: int,
    rate_limit: int,
    rate_window: float,
    fail_every: int,
    token_ttl: float,
    url_ttl: float,
    client_id: str,
    client_secret: str,
    token: str,
    tenants_file: Path | None,
) -> None:
    """Serve the provisional Dext items API (see adapters/dext/api.py) over the sample set.

    OAuth2 token endpoint, item listing by status with cursor pagination, documents through
    signed expiring links; 429s with X-RateLimit-* headers, latency and 503s on demand.
    The control API under /_sandbox moves items along: POST /_sandbox/advance {"count": N}
    makes the next N processing items ready; GET /_sandbox/stats counts requests.

    When ready it prints one JSON line: "url", "credentials" (client_id, client_secret,
    token, accounts) and "env", the variables `billstream ingest dext-api` needs. Tenants
    must list "127.0.0.1:PORT" (this port) in document_hosts for the attach stage to fetch
    its documents.
    """
    settings = Settings()
    try:
        tenants = load_tenants(tenants_file or settings.tenants_file)
    except TenantsFileError as exc:
        fail(str(exc))
        return
    account_of = {t.id: t.dext_account or t.id for t in tenants.all()}
    samples = sample_items(count)
    box = DextSandbox(
        [(account_of.get(s.tenant, s.tenant), s.item, s.document_path) for s in samples],
        accounts=account_of.values(),
        ready=ready,
        client_id=client_id,
        client_secret=client_secret,
        token=token,
        token_ttl=token_ttl,
        url_ttl=url_ttl,
        faults=Faults(latency_ms, rate_limit, rate_window, fail_every),
    )
    try:
        asyncio.run(serve(box, host, port, items=len(samples)))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
