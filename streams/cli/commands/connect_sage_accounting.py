"""``billstream connect sage-accounting --tenant T``: the OAuth authorization-code flow.

Prints the authorise URL (with a fresh ``state``), listens on loopback for Sage's redirect,
swaps the code for tokens at once (a code lives 60 s), stores them in the tenant's token
file (0600) and checks that the tenant's business is reachable with them.
"""

from __future__ import annotations

import asyncio
import os
import time
import webbrowser
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from streams.cli.base import connect, fail, print_json

if TYPE_CHECKING:
    from domain.tenants import Tenant


@connect.command("sage-accounting")
@click.option("--tenant", "tenant_id", required=True, help="Tenant id from the tenants file.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Loopback port of the redirect URI (http://127.0.0.1:PORT/callback), which "
    "must be registered for the Sage app exactly.",
)
@click.option(
    "--wait",
    "wait_seconds",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="How long to wait for the browser.",
)
@click.option("--open-browser/--no-open-browser", default=False, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON result line.")
def connect_sage_accounting(
    tenant_id: str, port: int, wait_seconds: float, open_browser: bool, as_json: bool
) -> None:
    """Connect a tenant to its Sage Accounting business (OAuth 2.0, loopback callback)."""
    from domain.errors import LedgerError
    from domain.tenants import TenantsFileError, load_tenants
    from streams.config import Settings

    settings = Settings()
    try:
        tenant = load_tenants(settings.tenants_file).get(tenant_id)
    except (TenantsFileError, KeyError) as exc:
        fail(str(exc).strip("'\""))
        return
    if tenant.ledger.kind != "sage-accounting":
        fail(f"tenant {tenant_id} uses the {tenant.ledger.kind!r} ledger, not sage-accounting")
    try:
        result = asyncio.run(
            run_connect(
                tenant,
                dict(os.environ),
                settings.data_dir / "tokens",
                port=port,
                wait_seconds=wait_seconds,
                open_browser=open_browser,
            )
        )
    except LedgerError as exc:
        fail(exc.message, code=1)
        return
    if as_json:
        print_json(result)
    else:
        click.echo(f"Connected tenant {tenant_id} to Sage business {result['business_id']}.")


async def run_connect(
    tenant: Tenant,
    env: Mapping[str, str],
    token_dir: Path,
    *,
    port: int = 8765,
    wait_seconds: float = 300.0,
    open_browser: bool = False,
    on_url: Callable[[str], Awaitable[None] | None] | None = None,
) -> dict[str, Any]:
    """The whole flow; ``on_url`` (tests) receives the authorise URL instead of a person."""
    from adapters.sage_accounting.ledger import SageAccountingLedger
    from adapters.sage_accounting.oauth import CODE_LIFETIME, receive_callback
    from domain.errors import LedgerError, Reason

    ledger = SageAccountingLedger.from_tenant(tenant, env, token_dir)
    client = ledger.client  # raises auth when CLIENT_ID / CLIENT_SECRET are missing

    def show(url: str) -> None:
        click.echo("Open this URL, sign in to Sage and allow access:", err=True)
        click.echo(url, err=True)
        if open_browser:
            webbrowser.open(url)

    try:
        callback, redirect_uri = await receive_callback(
            client.oauth,
            port=port,
            wait_limit=wait_seconds,
            on_url=on_url or show,
        )
        tokens = await client.oauth.exchange_code(callback.code, redirect_uri)
        elapsed = time.time() - callback.received_at
        if elapsed > CODE_LIFETIME:  # only reachable if the exchange itself hung
            raise LedgerError(Reason.AUTH, "The code exchange took longer than Sage's 60 s.")
        await client.call("getFinancialSettings", what="checking the business")
        return {
            "tenant": tenant.id,
            "business_id": client.business_id,
            "token_file": str(client.oauth.store.path),
            "access_token_expires_in": round(tokens.access_expires_at - time.time()),
            "country": callback.country,
        }
    finally:
        await ledger.aclose()
