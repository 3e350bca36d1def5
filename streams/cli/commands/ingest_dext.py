"""``billstream ingest dext-api`` and ``billstream ingest folder``: Dext items into received."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from pathlib import Path
from typing import Any

import click

from adapters.dext.api import (
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_INTERVAL,
    ENV_PAGE_SIZE,
    ENV_STATUSES,
    ENV_TOKEN_PREFIX,
    ENV_TOKEN_URL,
    ENV_URL,
    DextApiConfig,
    DextApiError,
    poll_forever,
    poll_pass,
    tenants_by_account,
)
from adapters.dext.folder import ExportFolder, FolderState
from domain.tenants import Tenants
from streams.cli.base import fail, ingest, load_tenants_or_fail, print_json
from streams.config import Settings
from streams.kafka.publish import Publisher
from streams.kafka.topics import cursor_store, ensure_topics
from streams.pipeline.runtime import kafka_for


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: work in hand is finished, then the command ends."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def load_settings_and_tenants(tenant: str | None = None) -> tuple[Settings, Tenants]:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return settings, load_tenants_or_fail(settings.tenants_file, tenant)


API_HELP = f"""Poll the Dext items API for every tenant with a dext_account.

One poller per Dext account, each with a durable cursor (Kafka topic <prefix>cursors), so a
restart neither skips nor repeats an item. With --once: one pass, then a JSON summary.

\b
Environment (secrets only from here):
  {ENV_URL}            API base URL (required; try `billstream sandbox dext`)
  {ENV_CLIENT_ID}, {ENV_CLIENT_SECRET}
                                     OAuth2 client of the partner app
  {ENV_TOKEN_PREFIX}<ACCOUNT>  personal token for one account, instead
                                     (acme-trading -> {ENV_TOKEN_PREFIX}ACME_TRADING)
  {ENV_TOKEN_URL}          token endpoint (default <url>/oauth/token)
  {ENV_STATUSES}           statuses to take (default ready)
  {ENV_PAGE_SIZE}, {ENV_INTERVAL} (100, 60 s)
"""


@ingest.command("dext-api", help=API_HELP)
@click.option("--once", is_flag=True, help="One pass over every account, then exit.")
@click.option("--account", "accounts", multiple=True, help="Only this Dext account (repeatable).")
@click.option("--status", "statuses", help="Comma-separated statuses, e.g. ready,published.")
@click.option("--interval", type=float, help="Seconds between passes (default 60).")
@click.option("--page-size", type=int, help="Items per request (default 100).")
def ingest_dext_api(
    once: bool,
    accounts: tuple[str, ...],
    statuses: str | None,
    interval: float | None,
    page_size: int | None,
) -> None:
    settings, tenants = load_settings_and_tenants()
    try:
        mapping = tenants_by_account(tenants.all(), accounts or None)
        if not mapping:
            fail("no tenant has a dext_account in the tenants file")
        config = DextApiConfig.from_env(os.environ, accounts=list(mapping))
    except (ValueError, DextApiError) as exc:
        fail(getattr(exc, "message", str(exc)))
        return
    changes: dict[str, Any] = {}
    if statuses:
        changes["statuses"] = tuple(s.strip().lower() for s in statuses.split(",") if s.strip())
    if interval is not None:
        changes["interval"] = interval
    if page_size is not None:
        changes["page_size"] = page_size
    config = dataclasses.replace(config, **changes)
    try:
        asyncio.run(_run_api(settings, tenants, config, list(mapping), once))
    except DextApiError as exc:
        fail(
            f"Dext API ({exc.kind}): {exc.message}", code=2 if exc.kind in ("auth", "config") else 1
        )


async def _run_api(
    settings: Settings, tenants: Tenants, config: DextApiConfig, accounts: list[str], once: bool
) -> None:
    stop = stop_on_signals()
    with kafka_for(settings) as kafka_url:
        await ensure_topics(settings, kafka_url)
        async with (
            Publisher(settings, kafka_url) as publisher,
            cursor_store(settings, kafka_url) as cursors,
        ):
            if not once:
                await poll_forever(
                    publisher,
                    tenants.all(),
                    config=config,
                    cursors=cursors,
                    stop=stop,
                    accounts=accounts,
                )
                return
            results = await poll_pass(
                publisher,
                tenants.all(),
                config=config,
                cursors=cursors,
                accounts=accounts,
                stop=stop,
            )
            print_json(
                {
                    "published": sum(r.published for r in results),
                    "accounts": [dataclasses.asdict(r) for r in results],
                    "interrupted": stop.is_set(),
                }
            )


@ingest.command("folder")
@click.argument(
    "path", type=click.Path(exists=True, file_okay=False, path_type=Path, resolve_path=True)
)
@click.option("--watch", is_flag=True, help="Keep scanning for new files until stopped.")
@click.option(
    "--tenant",
    help="Tenant of every file in PATH. Without it, each sub-folder named after a tenant's "
    "Dext account (or tenant id) belongs to that tenant.",
)
@click.option("--name", help="Name of this folder in event sources (default: its own name).")
@click.option(
    "--settle",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds a file must be unchanged before it is read (half-written files wait).",
)
@click.option("--interval", type=float, default=10.0, show_default=True, help="Scan period.")
def ingest_folder(
    path: Path,
    watch: bool,
    tenant: str | None,
    name: str | None,
    settle: float,
    interval: float,
) -> None:
    """Ingest Dext CSV exports (and JSON items) from PATH, matched to documents in it.

    Each file is processed once, even across restarts (its content hash is kept under the
    data folder). Bad rows are reported with their line number; the others go through.
    One pass prints a JSON report and exits 1 if any file had a problem.
    """
    settings, tenants = load_settings_and_tenants(tenant)
    code = asyncio.run(_run_folder(settings, tenants, path, watch, tenant, name, settle, interval))
    raise SystemExit(code)


async def _run_folder(
    settings: Settings,
    tenants: Tenants,
    path: Path,
    watch: bool,
    tenant: str | None,
    name: str | None,
    settle: float,
    interval: float,
) -> int:
    stop = stop_on_signals()
    state = FolderState(settings.data_dir / "dext" / "folder.sqlite")
    try:
        with kafka_for(settings) as kafka_url:
            await ensure_topics(settings, kafka_url)
            async with Publisher(settings, kafka_url) as publisher:
                try:
                    folder = ExportFolder(
                        path,
                        tenants=tenants,
                        sink=publisher,
                        state=state,
                        tenant=tenant,
                        name=name,
                        settle=settle,
                        document_roots=settings.document_dirs,
                    )
                except ValueError as exc:
                    fail(str(exc))
                    return 2
                if watch:
                    await folder.watch(interval, stop)
                    return 0
                reports = await folder.scan_once()
                print_json(
                    {
                        "folder": str(path),
                        "source": folder.source,
                        "published": sum(r.published for r in reports),
                        "files": [r.to_json() for r in reports],
                    }
                )
                return 1 if any(r.problems for r in reports) else 0
    finally:
        state.close()
