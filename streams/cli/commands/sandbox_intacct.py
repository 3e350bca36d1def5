"""``billstream sandbox intacct``: the Sage Intacct XML gateway stand-in."""

from __future__ import annotations

from pathlib import Path

import click

from streams.cli.base import fail, sandbox


@sandbox.command("intacct")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8910,
    show_default=True,
    help="Port to bind; 0 picks a free one (the ready line reports it).",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Delay before each request is answered (held inside the concurrency limit).",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests that fail, with a mode drawn from --fail-modes.",
)
@click.option(
    "--fail-modes",
    default="rate_limit,unavailable,after_write,drop_after_write",
    show_default=True,
    help="Comma list among rate_limit, unavailable (both before the request runs), "
    "after_write, drop_after_write, hang_after_write (after it ran).",
)
@click.option(
    "--hang-seconds",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="How long hang_after_write keeps the client waiting.",
)
@click.option(
    "--closed-period",
    "closed_periods",
    multiple=True,
    metavar="YYYY-MM",
    help="A closed accounting period (repeat for several); bills dated in it are refused.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Requests in flight per company before GW-0010 (HTTP 429).",
)
@click.option("--sender-id", default="billstream-sandbox", show_default=True)
@click.option("--sender-password", default="sandbox-sender-secret", show_default=True)
@click.option(
    "--company",
    "companies",
    multiple=True,
    help="Company id the sender is authorised for (repeat for several). [default: BILLSTREAM-DEMO]",
)
@click.option("--user-id", default="xml_gateway", show_default=True)
@click.option("--user-password", default="sandbox-user-secret", show_default=True)
@click.option(
    "--session-timeout",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    help="Seconds an API session lives without use.",
)
@click.option(
    "--vendor-sequence/--no-vendor-sequence",
    default=False,
    show_default=True,
    help="Number vendors automatically when VENDORID is left out.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the state in intacct-sandbox.json here (loaded at start, saved at exit).",
)
@click.option("--seed", type=int, default=None, help="Seed for --fail-rate draws.")
def sandbox_intacct(
    host: str,
    port: int,
    latency_ms: float,
    fail_rate: float,
    fail_modes: str,
    hang_seconds: float,
    closed_periods: tuple[str, ...],
    concurrency: int,
    sender_id: str,
    sender_password: str,
    companies: tuple[str, ...],
    user_id: str,
    user_password: str,
    session_timeout: float,
    vendor_sequence: bool,
    state_dir: Path | None,
    seed: int | None,
) -> None:
    """Sage Intacct XML Web Services (vendors, AP bills, attachments), in memory.

    Prints one JSON line when ready: {"url": gateway endpoint, "credentials": {sender_id,
    sender_password, company_id, user_id, user_password}, "admin_url", "companies"}.
    Runs until SIGTERM or Ctrl-C.
    """
    import asyncio

    from sandboxes.intacct.sandbox import SandboxConfig, company_ids, serve

    try:
        config = SandboxConfig(
            host=host,
            port=port,
            latency_ms=latency_ms,
            fail_rate=fail_rate,
            fail_modes=tuple(m.strip() for m in fail_modes.split(",") if m.strip()),
            hang_seconds=hang_seconds,
            closed_periods=closed_periods,
            concurrency=concurrency,
            sender_id=sender_id,
            sender_password=sender_password,
            companies=company_ids(companies),
            user_id=user_id,
            user_password=user_password,
            session_timeout=session_timeout,
            vendor_sequence=vendor_sequence,
            state_dir=state_dir,
            seed=seed,
        )
    except ValueError as exc:
        fail(str(exc))
        return
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}")
