"""``billstream reconcile``: what the event log says was attached, against Sage now."""

from __future__ import annotations

import asyncio
import sys

import click

from streams.cli.base import cli, fail, load_tenants_or_fail, print_json
from streams.config import Settings


@cli.command()
@click.option("--tenant", default=None, help="Only this tenant's items.")
@click.option(
    "--since",
    default=None,
    metavar="TIME",
    help="Only items attached since TIME: ISO (2026-11-01T09:00Z) or relative (90m, 2h, 7d).",
)
@click.option(
    "--repair-attachments",
    is_flag=True,
    help="Attach the missing documents again, through the attach stage.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def reconcile(
    tenant: str | None, since: str | None, repair_attachments: bool, as_json: bool
) -> None:
    """Compare every attached invoice with what Sage holds now.

    The bill must still exist with the same vendor, number and total, and its attachment
    must be there with the SHA-256 of the document billstream sent. Every difference is
    reported (bill_missing, bill_changed, attachment_missing, attachment_changed,
    unreadable); nothing is changed unless --repair-attachments is given, which attaches
    missing documents again and records it in the event log. Deleted or changed bills are
    only reported. Exit 0 when Sage matches the log, 1 when something differs.
    """
    from tqdm import tqdm

    from streams.ops.reconcile import reconcile as run_reconcile
    from streams.ops.replay import parse_since
    from streams.pipeline.runtime import kafka_for

    try:
        when = parse_since(since) if since else None
    except ValueError as exc:
        fail(str(exc))
    settings = Settings()
    load_tenants_or_fail(settings.tenants_file, tenant)  # exits 2 on a bad file or tenant
    bar = tqdm(desc="reconciling", unit="item", file=sys.stderr, disable=as_json)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    with kafka_for(settings) as url, bar:
        report = asyncio.run(
            run_reconcile(
                settings,
                url,
                tenant=tenant,
                since=when,
                repair_attachments=repair_attachments,
                progress=progress,
            )
        )
    unresolved = [d for d in report.differences if not d.repaired]
    if as_json:
        print_json(report.as_dict())
        raise SystemExit(1 if unresolved else 0)
    for d in report.differences:
        click.echo(f"{d.item:<32} {d.kind:<19} {d.detail}")
        if d.repair:
            click.echo(f"{'':<32} {'':<19} {d.repair}")
    click.echo(
        f"checked {report.checked} attached item{'s' if report.checked != 1 else ''}: "
        f"{len(report.differences)} difference{'s' if len(report.differences) != 1 else ''}"
        + (f", {report.repaired} repaired" if repair_attachments else "")
        + (f"; {report.reencoded} hold a re-encoded copy, as recorded" if report.reencoded else "")
    )
    raise SystemExit(1 if unresolved else 0)
