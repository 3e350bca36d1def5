"""``billstream duplicates scan``: the duplicate check over files, in order, with no broker.

The same check the pipeline makes before a bill is created (``domain.duplicates``), over
items read as the export folder reads them (``adapters.dext.files``) and validated for the
tenant, so a firm can run it over a backlog before switching billstream on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import click

from adapters.dext.files import CSV_FORMAT, JSON_FORMAT, FileRead, ReadItem, read_file
from domain.duplicates import Candidate, Decision, DuplicateIndex
from domain.models import DocumentRef, item_key
from domain.tenants import Tenant
from domain.validation import validate_item
from streams.cli.base import cli, fail, load_tenants_or_fail, print_json
from streams.config import Settings

MAX_FILE_BYTES = 64 * 1024 * 1024  # bigger than any invoice or export
INVALID = "invalid"
SAME_ITEM = "same_item"  # one Dext item given twice: the pipeline reads it once

SCAN_HELP = """Check items for duplicates of the items before them, as the pipeline would.

FILES are read in the order given, and the items in each file in order: each item is
checked against every item before it, then added. Formats: Dext JSON (one item or an array),
Dext CSV export, UBL, CII and Factur-X PDF. Each item is validated for --tenant first (as
the validate stage does); one that does not validate is reported as invalid with its
problems and takes no part in the check.

\b
Rules (strongest first; [tenants.<id>.duplicates] rules = [...] picks which hold):
  same_number           the same invoice number, as written, from the same supplier
  number_variant        the same number once case, spaces, punctuation, prefixes (INV, #,
                        No., Rechnung...) and leading zeros are set aside: INV-0042 is 42
  same_document         the same file (SHA-256) under any supplier or number
  same_total_near_date  the same supplier, currency and total, dates at most window_days
                        apart (default 7) under another number: a re-issued invoice
The supplier is the same by tax number, or by name once case, accents, punctuation and
legal forms (Ltd/Limited, GmbH, &/and) are set aside. A credit note is only ever compared
with credit notes, never with the invoice it credits.

\b
Decisions:
  new        nothing alike before it
  hold       a near match: the pipeline parks it (possible_duplicate) for a person
  duplicate  same_number: the bill the ledger already has
  invalid    the item does not validate for the tenant (its problems are listed)
A document is hashed when it is a local file beside the item's file or in one of the
tenant's document_dirs (an e-invoice is its own document); otherwise it is null.

\b
With --json, one JSON line per item:
  {"key", "source", "decision", "rule", "matches": [earlier keys], "rules": {rule: keys},
   "supplier", "number", "date", "currency", "total", "credit_note", "document_sha256"}
and for an invalid item {"key", "source", "decision": "invalid", "problems": [...]}.

Exit status: 0 when no item is held or a duplicate (invalid items alone do not change it),
1 when at least one is, 2 when the command cannot run (unknown tenant, unreadable file).
"""


@dataclass(frozen=True)
class _Source:
    path: Path
    read: FileRead
    sha256: str  # of the file itself: an e-invoice's document


@cli.group()
def duplicates() -> None:
    """Find invoices billstream has already seen (duplicate check, no broker)."""


@duplicates.command("scan", help=SCAN_HELP)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--tenant", "tenant_id", required=True, help="The tenant the items belong to.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines for scripts (see above).")
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Judge invoice dates as of this day when validating (default: today); a backlog "
    "older than the tenant's max_invoice_age_days needs it.",
)
def scan(files: tuple[Path, ...], tenant_id: str, as_json: bool, today: dt.datetime | None) -> None:
    tenant = load_tenants_or_fail(Settings().tenants_file, tenant_id).get(tenant_id)
    # Every file is read before anything is printed: an unreadable one stops the command
    # rather than leave a report that looks complete.
    sources = [_read(path, tenant) for path in files]
    day = today.date() if today else dt.date.today()
    index = DuplicateIndex(tenant.id, tenant.duplicate_rules)
    seen: set[str] = set()
    found = False
    for source in sources:
        for line in _lines(source, tenant, day, index, seen):
            found = found or line["decision"] in (Decision.HOLD, Decision.DUPLICATE)
            if as_json:
                print_json(line)
            else:
                click.echo(_readable(line))
    raise SystemExit(1 if found else 0)


def _read(path: Path, tenant: Tenant) -> _Source:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            fail(f"{path}: over {MAX_FILE_BYTES:,} bytes; not an invoice or an export")
        data = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror}")
        raise  # unreachable: fail exits
    read = read_file(str(path), path.name, data, tenant.conventions.date_order)
    return _Source(path, read, hashlib.sha256(data).hexdigest())


def _lines(
    source: _Source, tenant: Tenant, today: dt.date, index: DuplicateIndex, seen: set[str]
) -> list[dict[str, Any]]:
    read = source.read
    out = [
        _invalid(
            None,
            f"{read.file}#{p.line}" if p.line else read.file,
            [{"code": p.code or "unreadable", "field": None, "message": p.message}],
        )
        for p in read.problems
    ]
    for ri in read.items:
        result = validate_item(ri.item, tenant, today=today)
        key = item_key(tenant.id, str(ri.item.get("id")))
        if not result.ok or result.invoice is None:
            problems = [
                {"code": p.code, "field": p.field, "message": p.message} for p in result.problems
            ]
            out.append(_invalid(key, ri.origin, problems))
            continue
        sha = _document_sha(source, ri, tenant)
        candidate = Candidate.of_invoice(result.invoice, tenant.id, key=key, document_sha256=sha)
        verdict: dict[str, Any] = (
            {"key": key, "decision": Decision.DUPLICATE.value, "rule": SAME_ITEM}
            | {"matches": [key], "rules": {SAME_ITEM: [key]}}
            if key in seen
            else index.check_and_add(candidate).to_json()
        )
        out.append({**verdict, "source": ri.origin, **_described(candidate)})
        seen.add(key)
    return out


def _described(c: Candidate) -> dict[str, Any]:
    return {
        "supplier": c.supplier,
        "number": c.number,
        "date": c.date.isoformat(),
        "currency": c.currency,
        "total": str(c.total),
        "credit_note": c.credit_note,
        "document_sha256": c.document_sha256,
    }


def _invalid(key: str | None, origin: str, problems: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "key": key,
        "source": origin,
        "decision": INVALID,
        "rule": None,
        "matches": [],
        "problems": problems,
    }


def _document_sha(source: _Source, ri: ReadItem, tenant: Tenant) -> str | None:
    """The SHA-256 of the item's document when it is a local file billstream may read."""
    if ri.source_format not in (JSON_FORMAT, CSV_FORMAT):
        return source.sha256  # an e-invoice: the file is the document
    path = _document_path(source.path, ri)
    if path is None or not _allowed(path, source.path, tenant):
        return None
    try:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None  # not synced yet, or gone: the check goes on without it


def _document_path(near: Path, ri: ReadItem) -> Path | None:
    ref: DocumentRef | None = ri.ref
    if ref is not None:
        url = urlparse(ref.url)
        if url.scheme == "file":
            return Path(unquote(url.path))
        if url.scheme == "" and ref.url:
            return near.parent / unquote(ref.url)
        return None  # https and the like: a fetch, which a scan does not make
    if ri.row is not None and ri.row.document and "://" not in ri.row.document:
        return near.parent / Path(ri.row.document).name
    doc = ri.item.get("document")
    name = doc.get("filename") if isinstance(doc, dict) else None
    return near.parent / Path(str(name)).name if name else None


def _allowed(path: Path, near: Path, tenant: Tenant) -> bool:
    """Only files beside the item's file or in the tenant's document folders are read: an
    item must not make the scan hash any file it names."""
    try:
        resolved = path.resolve()
    except OSError:
        return False
    roots = [near.resolve().parent, *(Path(d).resolve() for d in tenant.document_dirs)]
    return resolved.is_file() and any(resolved.is_relative_to(root) for root in roots)


_COLOURS = {"new": "green", "hold": "yellow", "duplicate": "red", INVALID: "magenta"}


def _readable(line: dict[str, Any]) -> str:
    decision = click.style(f"{line['decision']:<9}", fg=_COLOURS.get(line["decision"]))
    if line["decision"] == INVALID:
        problems = "; ".join(f"[{p['code']}] {p['message']}" for p in line["problems"])
        return f"{decision} {line['key'] or line['source']}  {problems}"
    kind = " credit note" if line["credit_note"] else ""
    head = (
        f"{decision} {line['key']}  {line['supplier']}  {line['number']}  {line['date']}  "
        f"{line['currency']} {line['total']}{kind}"
    )
    if line["rule"] is None:
        return head
    rules = "; ".join(f"{rule}: {', '.join(keys)}" for rule, keys in line["rules"].items())
    return f"{head}\n          {rules}"
