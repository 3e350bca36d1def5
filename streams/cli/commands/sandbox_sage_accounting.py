"""``billstream sandbox sage-accounting``: the Sage Accounting v3.1 stand-in (see its module)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import click

from streams.cli.base import sandbox


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected YYYY-MM-DD") from None


@sandbox.command("sage-accounting")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 picks a free port; the ready line says which.",
)
@click.option(
    "--latency-ms",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Delay every API call by about this much (0.5x to 1.5x).",
)
@click.option(
    "--fail-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of API calls that fail: 503 before the work, a 502 gateway page "
    "after it, or an answer too late for the client.",
)
@click.option(
    "--fail-mode",
    "fail_modes",
    multiple=True,
    type=click.Choice(["before", "after", "timeout"]),
    help="Which failures --fail-rate injects (repeatable; default all three).",
)
@click.option(
    "--hang-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="How late a 'timeout' failure answers.",
)
@click.option(
    "--closed-before",
    callback=_date,
    metavar="YYYY-MM-DD",
    help="Lock date: bills dated before this day are refused.",
)
@click.option(
    "--rate-limit",
    default=200,
    show_default=True,
    type=click.IntRange(1),
    help="API calls per --rate-window per business before 429.",
)
@click.option("--rate-window", default=60.0, show_default=True, type=click.FloatRange(0.1))
@click.option(
    "--byte-limit",
    default=100_000_000,
    show_default=True,
    type=click.IntRange(1),
    help="Request-body bytes per --byte-window per business before 429.",
)
@click.option("--byte-window", default=3600.0, show_default=True, type=click.FloatRange(0.1))
@click.option(
    "--max-concurrent",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Calls in flight per business before 429 (0: no limit).",
)
@click.option("--access-token-ttl", default=300, show_default=True, type=click.IntRange(1))
@click.option("--refresh-token-ttl", default=2_678_400, show_default=True, type=click.IntRange(1))
@click.option("--client-id", default="billstream-sandbox", show_default=True)
@click.option("--client-secret", default="sandbox-secret", show_default=True)
@click.option(
    "--business-id",
    default="0d40342d0287cd6b13555c54afca6c90",
    show_default=True,
    help="Id of the one business made when no --businesses-file is given.",
)
@click.option(
    "--businesses-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSON {"businesses": [{"id", "name", "base_currency", "currencies", '
    '"ledger_accounts": [{"nominal_code", "name"}], "tax_rates": [{"id", "name", '
    '"percentage"}], "lock_date"}]}.',
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the state in this folder across restarts.",
)
@click.option("--seed", type=int, help="Seed for latency and fault injection.")
@click.option(
    "--exit-on-stdin-eof",
    is_flag=True,
    help="Stop when stdin closes (for parents that may die without cleaning up).",
)
def sandbox_sage_accounting(
    host: str,
    port: int,
    latency_ms: int,
    fail_rate: float,
    fail_modes: tuple[str, ...],
    hang_seconds: float,
    closed_before: dt.date | None,
    rate_limit: int,
    rate_window: float,
    byte_limit: int,
    byte_window: float,
    max_concurrent: int,
    access_token_ttl: int,
    refresh_token_ttl: int,
    client_id: str,
    client_secret: str,
    business_id: str,
    businesses_file: Path | None,
    state_dir: Path | None,
    seed: int | None,
    exit_on_stdin_eof: bool,
) -> None:
    """Sage Accounting v3.1 (OAuth, contacts, bills, attachments) on 127.0.0.1.

    Prints one JSON line when ready: {"url", "api", "credentials": {"client_id",
    "client_secret", "business_id", "refresh_token"}, "businesses", "admin"}. Runs until
    SIGTERM or Ctrl-C.
    """
    from sandboxes.sage_accounting.sandbox import FAIL_MODES, SandboxOptions, serve

    options = SandboxOptions(
        host=host,
        port=port,
        latency_ms=latency_ms,
        fail_rate=fail_rate,
        fail_modes=fail_modes or FAIL_MODES,
        hang_seconds=hang_seconds,
        closed_before=closed_before,
        rate_limit=rate_limit,
        rate_window=rate_window,
        byte_limit=byte_limit,
        byte_window=byte_window,
        max_concurrent=max_concurrent,
        access_token_ttl=access_token_ttl,
        refresh_token_ttl=refresh_token_ttl,
        client_id=client_id,
        client_secret=client_secret,
        business_id=business_id,
        businesses_file=businesses_file,
        state_dir=state_dir,
        seed=seed,
        exit_on_stdin_eof=exit_on_stdin_eof,
    )
    try:
        asyncio.run(serve(options))
    except ValueError as exc:  # a bad businesses file
        raise click.ClickException(str(exc)) from None
