"""``billstream validate``: the validate stage's own functions, run on files, no Kafka."""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from domain.dext import ItemFormatError, loads_items
from domain.tenants import Tenant, Tenants, TenantsFileError, load_tenants
from domain.validation import ValidationResult, validate_item
from streams.cli.base import cli, fail, print_json

DEFAULT_TENANTS_FILE = "tenants.example.toml"


@dataclass(frozen=True)
class _Entry:
    source: str  # file, and index when the file holds a JSON array
    tenant: Tenant
    item: dict[str, Any]


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        # Hidden folders (.git, .billstream) never hold Dext exports.
        return sorted(
            p
            for p in path.rglob("*.json")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    fail(f"{path}: no such file or folder")
    return []


def _tenant_for(file: Path, tenants: Tenants, tenant_id: str | None) -> Tenant:
    if tenant_id is not None:
        try:
            return tenants.get(tenant_id)
        except KeyError as exc:
            fail(str(exc.args[0]))
    for folder in file.resolve().parents:
        if folder.name in tenants.tenants:
            return tenants.tenants[folder.name]
    if len(tenants.tenants) == 1:
        return next(iter(tenants.tenants.values()))
    fail(
        f"{file}: cannot tell which tenant it belongs to (it is not under a folder named "
        f"after one); use --tenant ({', '.join(sorted(tenants.tenants))})"
    )
    raise AssertionError("unreachable")


def _read(path: Path, tenants: Tenants, tenant_id: str | None) -> list[_Entry]:
    """Every item under ``path`` with its tenant; any unreadable file stops the command
    before anything is printed, so a partial report is never mistaken for a full one."""
    entries: list[_Entry] = []
    files = _files(path)
    if not files:
        fail(f"{path}: no .json files found")
    for file in files:
        tenant = _tenant_for(file, tenants, tenant_id)
        try:
            items = loads_items(file.read_bytes())
        except OSError as exc:
            fail(f"{file}: cannot read: {exc.strerror}")
        except ItemFormatError as exc:
            fail(f"{file}: {exc}")
        for i, item in enumerate(items):
            source = str(file) if len(items) == 1 else f"{file}[{i}]"
            entries.append(_Entry(source=source, tenant=tenant, item=item))
    return entries


def _as_json(entry: _Entry, result: ValidationResult) -> dict[str, Any]:
    return {
        "item": result.item,
        "ok": result.ok,
        "reason": result.reason.value if result.reason else None,
        "tenant": entry.tenant.id,
        "source": entry.source,
        "problems": [p.model_dump() for p in result.problems],
        "invoice": result.invoice.model_dump(mode="json") if result.invoice else None,
        "bill": result.bill.model_dump(mode="json") if result.bill else None,
    }


def _report(entry: _Entry, result: ValidationResult) -> None:
    name = result.item or entry.source
    if result.ok and result.bill is not None:
        bill = result.bill
        kind = "credit note" if bill.credit_note else "bill"
        accounts = ", ".join(dict.fromkeys(ln.gl_account for ln in bill.lines))
        click.echo(
            f"{click.style('ok  ', fg='green')} {name}  {entry.tenant.id}  {bill.vendor_name}  "
            f"{bill.number}  {bill.date}  {bill.currency} {bill.total:,}  {kind}, "
            f"{len(bill.lines)} line{'s' if len(bill.lines) != 1 else ''} -> {accounts}"
        )
        return
    reason = result.reason.value if result.reason else "failed"
    click.echo(f"{click.style('FAIL', fg='red')} {name}  {entry.tenant.id}  {reason}")
    for p in result.problems:
        click.echo(f"       {p.field or '(item)'} [{p.code}]: {p.message}")


@cli.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--tenants",
    "tenants_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Tenants file (default: $BILLSTREAM_TENANTS_FILE, else ./{DEFAULT_TENANTS_FILE}).",
)
@click.option(
    "--tenant",
    "tenant_id",
    default=None,
    help="Tenant whose books the items belong to (default: the folder the item is in, "
    "when it is named after a tenant, or the only tenant in the file).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per item, one per line.")
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Judge future and old invoice dates as of this day (default: today).",
)
def validate(
    path: Path,
    tenants_file: Path | None,
    tenant_id: str | None,
    as_json: bool,
    today: dt.datetime | None,
) -> None:
    """Check Dext items and show the invoice and coded draft bill each one would become.

    PATH is a Dext item JSON file, a file holding a JSON array of items, or a folder of
    them (searched recursively). Uses exactly the functions of the pipeline's validate
    stage: every problem is listed at once with its code, field and what to fix.

    Exit status: 0 when every item was checked (even if some failed validation);
    2 when the input cannot be read or the tenants file is not valid.
    """
    file = tenants_file or Path(os.environ.get("BILLSTREAM_TENANTS_FILE") or DEFAULT_TENANTS_FILE)
    try:
        tenants = load_tenants(file)
    except TenantsFileError as exc:
        fail(str(exc))
    entries = _read(path, tenants, tenant_id)
    day = today.date() if today else dt.date.today()
    outcomes: Counter[str] = Counter()
    for entry in entries:
        result = validate_item(entry.item, entry.tenant, today=day)
        outcomes[result.reason.value if result.reason else "ok"] += 1
        if as_json:
            print_json(_as_json(entry, result))
        else:
            _report(entry, result)
    if not as_json:
        failed = sum(n for k, n in outcomes.items() if k != "ok")
        by_reason = ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items()) if k != "ok")
        click.echo(
            f"\n{len(entries)} item{'s' if len(entries) != 1 else ''}: {outcomes['ok']} ok, "
            f"{failed} failed" + (f" ({by_reason})" if by_reason else "")
        )
