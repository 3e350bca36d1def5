"""``billstream ingest inspect``: what a file would give the pipeline, read with no broker."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from adapters.dext.files import ReadItem, read_file, source_format_of
from adapters.dext.folder import OWN_FILES, is_temporary
from domain.locales import DateOrder
from domain.tenants import Tenant
from domain.validation import validate_item
from streams.cli.base import ingest, load_tenants_or_fail, print_json
from streams.config import Settings

# Bigger than any invoice; a bigger file is reported rather than read into memory.
MAX_FILE_BYTES = 64 * 1024 * 1024

INSPECT_HELP = """Read source files as the folder source would, and print what they give.

PATH is a file or a folder (read recursively, temporary and billstream's own files left
out). Formats: Dext JSON (an item or an array), Dext CSV export, UBL 2.1 Invoice or
CreditNote, UN/CEFACT CII, Factur-X / ZUGFeRD PDF. Nothing is published, nothing recorded:
this is how to check a file before dropping it in the folder.

A CSV's dates are read in the tenant's date order (--tenant, from the tenants file) or the
one given with --date-order; with neither, a date that could be day-first or month-first is
a problem, as it would be for a tenant with no locale. With --tenant each item is also
validated for that tenant as the validate stage would (currency, GL coding, arithmetic,
dates), and the result is in the item's line.

\b
With --json, one JSON line per item: the item's fields as the pipeline receives them, plus
  source_format (dext-json, dext-csv, ubl-invoice, ubl-creditnote, cii, facturx-pdf),
  origin (file#n, file:line or the file) and file_sha256;
  with --tenant, validation: {"ok": true|false, "reason", "problems": [{"code", "message"}]};
and one line per file that has problems or gives no item:
  {"file": ..., "problems": [{"line", "code", "message"}...], "items": n, "notes": [...]}.

Exit status: 0 when every file reads cleanly (and, with --tenant, every item validates), 1
when any file or item has a problem, 2 when the
command cannot run (unknown tenant, unreadable tenants file).
"""


@ingest.command("inspect", help=INSPECT_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--tenant", help="Read CSV dates in this tenant's date order (tenants file).")
@click.option(
    "--date-order",
    type=click.Choice([o.value for o in DateOrder], case_sensitive=False),
    help="Read CSV dates in this order instead (DMY: 03/04/2026 is 3 April).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines for scripts (see above).")
def ingest_inspect(
    paths: tuple[Path, ...], tenant: str | None, date_order: str | None, as_json: bool
) -> None:
    order = DateOrder(date_order.upper()) if date_order else None
    judge: Tenant | None = None
    if tenant is not None:
        judge = load_tenants_or_fail(Settings().tenants_file, tenant).get(tenant)
        order = order or judge.conventions.date_order
    bad = False
    today = dt.date.today()
    for path, shown in _files(paths):
        lines = inspect_file(path, shown, order, judge, today)
        bad = bad or any(_bad(line) for line in lines)
        for line in lines:
            if as_json:
                print_json(line)
            else:
                click.echo(_readable(line))
    raise SystemExit(1 if bad else 0)


def inspect_file(
    path: Path,
    shown: str,
    date_order: DateOrder | None,
    tenant: Tenant | None = None,
    today: dt.date | None = None,
) -> list[dict[str, Any]]:
    """The JSON lines for one file: its items (validated for ``tenant`` when given), or one
    line with its problems (both when only some of its items are bad)."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return [_file_line(shown, [_problem(None, "file_too_large", _too_large(size))], 0, [])]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [_file_line(shown, [_problem(None, "unreadable", str(exc))], 0, [])]
    read = read_file(shown, path.name, data, date_order)
    sha = hashlib.sha256(data).hexdigest()
    lines = [_item_line(ri, sha) for ri in read.items]
    if tenant is not None:
        for ri, line in zip(read.items, lines, strict=True):
            line["validation"] = _validation(ri.item, tenant, today or dt.date.today())
    if read.problems or not lines:
        problems = [_problem(p.line, p.code, p.message) for p in read.problems]
        notes = list(read.notes)
        if read.plain_pdf:
            problems = []  # in a folder it is a document of the other items, not an error
            notes.append("a PDF with no invoice inside: a document for other items, no item")
        lines.append(_file_line(shown, problems, len(lines), notes))
    return lines


def _bad(line: dict[str, Any]) -> bool:
    return bool(line.get("problems")) or line.get("validation", {}).get("ok") is False


def _validation(item: dict[str, Any], tenant: Tenant, today: dt.date) -> dict[str, Any]:
    result = validate_item(item, tenant, today=today)
    return {
        "ok": result.ok,
        "reason": result.reason,
        "problems": [{"code": p.code, "message": p.message} for p in result.problems],
    }


def _item_line(ri: ReadItem, sha: str) -> dict[str, Any]:
    return {**ri.item, "source_format": ri.source_format, "origin": ri.origin, "file_sha256": sha}


def _file_line(
    shown: str, problems: list[dict[str, Any]], items: int, notes: list[str]
) -> dict[str, Any]:
    return {"file": shown, "problems": problems, "items": items, "notes": notes}


def _problem(line: int | None, code: str | None, message: str) -> dict[str, Any]:
    return {"line": line, "code": code or "bad_input", "message": message}


def _too_large(size: int) -> str:
    return f"the file is {size:,} bytes, over the {MAX_FILE_BYTES:,} read here; not an invoice"


def _files(paths: tuple[Path, ...]) -> Iterator[tuple[Path, str]]:
    """Each file to read and how to name it; a folder's files in name order."""
    for path in paths:
        if path.is_file():
            yield path, str(path)
            continue
        for found in sorted(p for p in path.rglob("*") if p.is_file()):
            relative = found.relative_to(path)
            if OWN_FILES.parts[0] in relative.parts or is_temporary(found):
                continue
            if source_format_of(found.suffix) is not None:
                yield found, str(found)


def _readable(line: dict[str, Any]) -> str:
    if "problems" in line and "source_format" not in line:
        head = f"{line['file']}: {line['items']} item(s)"
        rows = [head] + [
            f"  line {p['line']}: [{p['code']}] {p['message']}"
            if p["line"]
            else f"  [{p['code']}] {p['message']}"
            for p in line["problems"]
        ]
        return "\n".join(rows + [f"  note: {n}" for n in line["notes"]])
    supplier = line.get("payee") or line.get("supplier") or "?"
    total = f"{line.get('total_amount')} {line.get('currency') or ''}".strip()
    return (
        f"{line['origin']}: {line['source_format']} {line.get('id')} {supplier} "
        f"no. {line.get('invoice_number')} {line.get('date')} total {total}"
    ) + "".join(
        f"\n  [{p['code']}] {p['message']}" for p in line.get("validation", {}).get("problems", [])
    )
