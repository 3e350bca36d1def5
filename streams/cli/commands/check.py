"""``billstream check``: a green or red line per check and tenant, with what to do."""

from __future__ import annotations

import asyncio
import sys

import click

from streams.cli.base import cli, load_tenants_or_fail, print_json
from streams.config import Settings

MARKS = {
    "ok": ("OK  ", "green"),
    "warn": ("WARN", "yellow"),
    "fail": ("FAIL", "red"),
    "skip": ("SKIP", "yellow"),
}


@cli.command()
@click.option("--tenant", default=None, help="Only this tenant (Kafka is always checked).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as one JSON object.")
def check(tenant: str | None, as_json: bool) -> None:
    """Check that billstream can work: Kafka, and for each tenant the Dext source, the Sage
    ledger (credentials, Intacct sender authorisation, Sage Accounting business), the
    document folders, the GL accounts and tax codes of the mapping, today's period, and the
    notification channels.

    Nothing is posted or changed. Exit 0 only when no line is red; a skipped line (nothing
    to check, or the ledger connection already failed) and a warning (e.g. the embedded
    broker's log nearing its ceiling) are not red.
    """
    from streams.ops.check import all_green, run_checks

    settings = Settings()
    tenants = load_tenants_or_fail(settings.tenants_file, tenant)
    checks = asyncio.run(run_checks(settings, tenants, only=tenant))
    green = all_green(checks)
    if as_json:
        print_json(
            {
                "ok": green,
                "tenants_file": str(settings.tenants_file),
                "checks": [c.as_dict() for c in checks],
            }
        )
        raise SystemExit(0 if green else 1)
    color = sys.stdout.isatty()
    current: str | None = "-"
    for c in checks:
        if c.tenant != current:
            current = c.tenant
            if c.tenant is None:
                click.echo(f"billstream (tenants file {settings.tenants_file})")
            else:
                t = tenants.get(c.tenant)
                click.echo(f"{t.id}" + (f" ({t.name})" if t.name else ""))
        mark, shade = MARKS[c.status]
        shown = click.style(mark, fg=shade, bold=True) if color else mark
        click.echo(f"  {shown} {c.name:<10} {c.detail}")
        if c.advice and c.status in {"fail", "warn"}:
            click.echo(f"       {'':<10} -> {c.advice}")
    failed = sum(1 for c in checks if c.status == "fail")
    skipped = sum(1 for c in checks if c.status == "skip")
    summary = "all green" if green else f"{failed} red line{'s' if failed != 1 else ''}"
    click.echo(summary + (f" ({skipped} not checked)" if skipped else ""))
    raise SystemExit(0 if green else 1)
