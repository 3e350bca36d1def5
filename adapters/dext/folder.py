"""The export folder: Dext CSV exports (and JSON items), e-invoices, plus the documents, as items.

A folder, for example one that Dext's cloud back-up keeps in sync, holds CSV exports and the
original PDFs or images. Each CSV row becomes an item, matched to its document by the file
name in the row or, failing that, by a file named after the item's id or invoice number.

- A file is processed once, even across restarts and renames: its SHA-256 is recorded (in a
  SQLite file under the data folder: the folder lives on one machine, so its record does too).
- A file still being written is left alone: it must have been quiet for ``settle`` seconds and
  must not change while it is read; temporary names (``.part``, ``.tmp``, ``~$x``...) are
  never read.
- A bad row is reported with its line number and the reason; the other rows go through.
- An item already received from this folder is not sent again; one that comes back with
  different content is reported, because the pipeline keys items by their Dext id.
- An e-invoice (``adapters.einvoice``: a UBL or CII ``.xml``, or a Factur-X / ZUGFeRD ``.pdf``
  with the XML embedded) is one item, the file itself its document. A PDF without embedded
  XML is a document for the other items, as before; one that is read once is not read again.
  An XML invoice's document is a PDF rendering of it, the XML embedded, written once under
  ``.billstream/rendered/`` in the folder (the attach stage and Sage take PDFs, not XML).

CSV columns and how rows are read: ``adapters.dext.csv_export``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from adapters.dext.csv_export import Row, document_name
from adapters.dext.files import FileProblem, read_file
from adapters.dext.items import ReceivedSink, SourceItem, guess_content_type
from adapters.einvoice.reader import EInvoiceRead
from adapters.einvoice.render import write_rendering
from domain.models import DocumentRef
from domain.tenants import Tenant, Tenants

log = logging.getLogger("billstream.dext.folder")

DOCUMENT_SUFFIXES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff"})
ITEM_SUFFIXES = frozenset({".csv", ".json", ".xml"})
# Read as items when they embed an invoice XML, else only documents for the other items.
MAYBE_ITEM_SUFFIXES = frozenset({".pdf"})
# billstream's own files in a folder (renderings here, pushed e-invoices in a tenant's
# document folder): never scanned as items or documents. Renderings of XML invoices live
# inside the folder because the attach stage reads the folder already.
OWN_FILES = Path(".billstream")
RENDERINGS = OWN_FILES / "rendered"
_TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".swp", "~")


# --- state ---------------------------------------------------------------------------------


class FolderState:
    """What a folder source has done: processed files (by content) and items received."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS files (
                folder TEXT NOT NULL, sha256 TEXT NOT NULL, path TEXT NOT NULL,
                processed_at REAL NOT NULL, published INTEGER NOT NULL, report TEXT NOT NULL,
                PRIMARY KEY (folder, sha256));
            CREATE TABLE IF NOT EXISTS items (
                folder TEXT NOT NULL, item_key TEXT NOT NULL, digest TEXT NOT NULL,
                origin TEXT NOT NULL, PRIMARY KEY (folder, item_key));
            """
        )

    def close(self) -> None:
        self._db.close()

    def file_seen(self, folder: str, sha256: str) -> str | None:
        row = self._db.execute(
            "SELECT path FROM files WHERE folder = ? AND sha256 = ?", (folder, sha256)
        ).fetchone()
        return None if row is None else str(row[0])

    def item_seen(self, folder: str, key: str) -> tuple[str, str] | None:
        row = self._db.execute(
            "SELECT digest, origin FROM items WHERE folder = ? AND item_key = ?", (folder, key)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def record(
        self, folder: str, sha256: str, path: str, published: Sequence[SourceItem], report: str
    ) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)",
                [(folder, si.key, si.digest, si.origin) for si in published],
            )
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                (folder, sha256, path, time.time(), len(published), report),
            )


# --- the source ----------------------------------------------------------------------------


@dataclass
class FileReport:
    file: str
    outcome: str  # processed, duplicate, pending, skipped; document (a plain PDF, not reported)
    published: int = 0
    already_received: int = 0
    problems: list[FileProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "outcome": self.outcome,
            "published": self.published,
            "already_received": self.already_received,
            "problems": [p.to_json() for p in self.problems],
            "notes": self.notes,
        }


def is_temporary(path: Path) -> bool:
    name = path.name
    lowered = name.lower()
    return (
        name.startswith((".", "~$", ".~lock"))
        or lowered.endswith(_TEMP_SUFFIXES)
        or lowered.startswith("~")
    )


class ExportFolder:
    """One export folder feeding the received topic."""

    def __init__(
        self,
        root: Path,
        *,
        tenants: Tenants,
        sink: ReceivedSink,
        state: FolderState,
        tenant: str | None = None,
        name: str | None = None,
        settle: float = 5.0,
        document_roots: Iterable[Path] = (),
    ) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise ValueError(f"{root} is not a folder")
        self.tenants = tenants
        self.tenant = tenants.get(tenant) if tenant else None
        self.name = name or self.root.name
        self.source = f"folder/{self.name}"
        self.sink = sink
        self.state = state
        self.settle = settle
        self.document_roots = [Path(d).resolve() for d in document_roots]
        self._by_folder = {t.dext_account: t for t in tenants.all() if t.dext_account}
        self._by_folder.update({t.id: t for t in tenants.all()})
        self._reported: set[str] = set()
        # PDFs found to hold no invoice, by (size, mtime): not opened again while unchanged.
        self._plain_pdfs: dict[Path, tuple[int, int]] = {}
        for t in [self.tenant] if self.tenant else self._mapped_tenants():
            self._check_documents_reachable(t)

    def _mapped_tenants(self) -> list[Tenant]:
        return [
            self._by_folder[p.name]
            for p in sorted(self.root.iterdir())
            if p.is_dir() and p.name in self._by_folder
        ]

    def _check_documents_reachable(self, tenant: Tenant) -> None:
        roots = self.document_roots + [Path(d).resolve() for d in tenant.document_dirs]
        if not any(self.root.is_relative_to(r) for r in roots):
            raise ValueError(
                f"the attach stage could not read documents from {self.root}: it is not in "
                f"tenant {tenant.id}'s document_dirs (add it in the tenants file)"
            )

    def tenant_of(self, path: Path) -> Tenant | None:
        if self.tenant is not None:
            return self.tenant
        relative = path.relative_to(self.root)
        if len(relative.parts) < 2:
            return None
        return self._by_folder.get(relative.parts[0])

    def _files(self) -> list[Path]:
        """Every path under the root, but billstream's own files."""
        own = self.root / OWN_FILES
        return [p for p in sorted(self.root.rglob("*")) if not p.is_relative_to(own)]

    def _index(self) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
        by_name: dict[str, list[Path]] = {}
        by_stem: dict[str, list[Path]] = {}
        for path in self._files():
            if path.suffix.lower() in DOCUMENT_SUFFIXES and not is_temporary(path):
                by_name.setdefault(path.name.lower(), []).append(path)
                by_stem.setdefault(path.stem.lower(), []).append(path)
        return by_name, by_stem

    async def scan_once(self) -> list[FileReport]:
        """Process every file that is ready and new; report on each file looked at."""
        reports: list[FileReport] = []
        index = self._index()
        for path in self._files():
            if not path.is_file() or not self._may_hold_items(path):
                continue
            if is_temporary(path):
                continue
            report = await self.process_file(path, index)
            if report.outcome == "document" or (
                path.suffix.lower() in MAYBE_ITEM_SUFFIXES
                and report.outcome in ("pending", "skipped")
            ):
                continue  # a PDF is reported once it has proved to be an e-invoice
            if report.outcome == "skipped":
                if report.file not in self._reported:  # say it once, not at every scan
                    self._reported.add(report.file)
                    self._log(report)
            elif report.outcome == "processed":
                self._log(report)
            reports.append(report)
        return reports

    def _may_hold_items(self, path: Path) -> bool:
        suffix = path.suffix.lower()
        if suffix in ITEM_SUFFIXES:
            return True
        if suffix not in MAYBE_ITEM_SUFFIXES:
            return False
        stat = path.stat()
        return self._plain_pdfs.get(path) != (stat.st_size, stat.st_mtime_ns)

    def _log(self, report: FileReport) -> None:
        for problem in report.problems:
            where = f"{problem.file}:{problem.line}" if problem.line else problem.file
            log.warning("%s: %s", where, problem.message)
        if report.outcome == "processed":
            log.info(
                "%s: %d items published, %d already received, %d problems",
                report.file,
                report.published,
                report.already_received,
                len(report.problems),
            )

    def _read_when_settled(self, path: Path) -> bytes | None:
        before = path.stat()
        if time.time() - before.st_mtime < self.settle:
            return None
        data = path.read_bytes()
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return None
        if len(data) != after.st_size:
            return None
        return data

    async def process_file(
        self,
        path: Path,
        index: tuple[dict[str, list[Path]], dict[str, list[Path]]] | None = None,
    ) -> FileReport:
        shown = str(path.relative_to(self.root))
        tenant = self.tenant_of(path)
        if tenant is None:
            return FileReport(
                shown,
                "skipped",
                problems=[
                    FileProblem(
                        shown,
                        None,
                        "no tenant for this file: give --tenant, or put it in a sub-folder "
                        "named after the tenant's Dext account",
                    )
                ],
            )
        data = await asyncio.to_thread(self._read_when_settled, path)
        if data is None:
            return FileReport(shown, "pending", notes=["still being written; read it later"])
        sha = hashlib.sha256(data).hexdigest()
        first = self.state.file_seen(self.name, sha)
        if first is not None:
            note = "already processed" if first == shown else f"same content as {first}"
            return FileReport(shown, "duplicate", notes=[note])
        report = FileReport(shown, "processed")
        candidates = self._items_of(path, data, tenant, report, index or self._index())
        if report.outcome == "document":
            return report  # not recorded: it is a document, read when an item names it
        todo: list[SourceItem] = []
        for si in candidates:
            seen = self.state.item_seen(self.name, si.key)
            if seen is None:
                todo.append(si)
            elif seen[0] == si.digest:
                report.already_received += 1
            else:
                report.problems.append(
                    FileProblem(
                        shown,
                        _line_of(si.origin),
                        f"item {si.item['id']} was already received (from {seen[1]}) with "
                        "different content; an item is received once, correct the bill in "
                        "Sage instead",
                    )
                )
        await asyncio.gather(
            *(
                self.sink.publish_received(
                    si.tenant, si.item, source=self.source, document=si.document, origin=si.origin
                )
                for si in todo
            )
        )
        report.published = len(todo)
        # Recorded only once every publish is acknowledged: a crash before this line means
        # the file is read again (the same items, the same event ids), never lost.
        self.state.record(self.name, sha, shown, todo, json.dumps(report.to_json()))
        return report

    def _items_of(
        self,
        path: Path,
        data: bytes,
        tenant: Tenant,
        report: FileReport,
        index: tuple[dict[str, list[Path]], dict[str, list[Path]]],
    ) -> list[SourceItem]:
        read = read_file(report.file, path.name, data, tenant.conventions.date_order)
        if read.plain_pdf:
            stat = path.stat()
            self._plain_pdfs[path] = (stat.st_size, stat.st_mtime_ns)
            report.outcome = "document"
            return []
        report.problems.extend(read.problems)
        report.notes.extend(read.notes)
        out: dict[str, SourceItem] = {}
        for ri in read.items:
            if ri.row is not None:
                ref = self._row_document(path, ri.row, index)
                if ref is None:
                    report.notes.append(f"line {ri.line}: no document found for {ri.item['id']}")
            elif read.einvoice is not None:
                ref = (
                    self._ref(path)
                    if read.einvoice.embedded_name
                    else self._rendering(path, data, read.einvoice, report)
                )
            else:
                ref = self._json_document(path, ri.item, ri.ref, index)
            si = SourceItem(tenant.id, ri.item, ref, ri.origin)
            out[si.key] = si
        return list(out.values())

    def _rendering(
        self, path: Path, data: bytes, read: EInvoiceRead, report: FileReport
    ) -> DocumentRef:
        """The readable PDF of an XML invoice as its document (the XML embedded in it)."""
        try:
            target = write_rendering(read.invoice, data, path.name, self.root / RENDERINGS)
        except Exception as exc:
            # The invoice must not be lost for want of its picture: it goes with the XML,
            # which the attach stage reports as unavailable, naming the file.
            report.notes.append(f"no PDF rendering ({type(exc).__name__}: {exc}); XML attached")
            return self._ref(path)
        name = f"{path.stem}.pdf"
        read.item["document"] = {"filename": name, "content_type": "application/pdf"}
        read.item["einvoice"]["original_filename"] = path.name
        return DocumentRef(url=target.as_uri(), filename=name, content_type="application/pdf")

    def _find(self, name: str, near: Path, table: dict[str, list[Path]]) -> Path | None:
        found = table.get(name.lower(), [])
        same_folder = [p for p in found if p.parent == near.parent]
        choice = same_folder or found
        return choice[0] if len(choice) == 1 or same_folder else None

    def _ref(self, path: Path) -> DocumentRef:
        return DocumentRef(
            url=path.as_uri(), filename=path.name, content_type=guess_content_type(path.name)
        )

    def _row_document(
        self, path: Path, row: Row, index: tuple[dict[str, list[Path]], dict[str, list[Path]]]
    ) -> DocumentRef | None:
        by_name, by_stem = index
        if row.document:
            if re.match(r"^https://", row.document, re.I):
                name = document_name(row.document)
                return DocumentRef(
                    url=row.document, filename=name, content_type=guess_content_type(name)
                )
            name = document_name(row.document)
            found = self._find(name, path, by_name)
            if found is None:
                # Not synced yet, perhaps: point where it should be; the attach stage reports
                # document_unavailable (replayable) if it is still missing then.
                return self._ref(path.parent / name)
            return self._ref(found)
        for reference in (row.item.get("id"), row.item.get("invoice_number")):
            if reference:
                found = self._find(str(reference), path, by_stem)
                if found is not None:
                    return self._ref(found)
        return None

    def _json_document(
        self,
        path: Path,
        item: dict[str, Any],
        ref: DocumentRef | None,
        index: tuple[dict[str, list[Path]], dict[str, list[Path]]],
    ) -> DocumentRef | None:
        if ref is not None and urlparse(ref.url).scheme == "https":
            return ref
        by_name, by_stem = index
        doc = item.get("document")
        name = doc.get("filename") if isinstance(doc, dict) else None
        if name:
            found = self._find(str(name), path, by_name)
            return self._ref(found) if found is not None else self._ref(path.parent / str(name))
        found = self._find(str(item["id"]), path, by_stem)
        return self._ref(found) if found is not None else None

    async def watch(self, interval: float, stop: asyncio.Event) -> None:
        """Scan every ``interval`` seconds until ``stop`` is set.

        Polling rather than file-system events: synced and network folders often do not
        deliver those, and a scan of unchanged files costs only a stat each.
        """
        while not stop.is_set():
            await self.scan_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


def _line_of(origin: str) -> int | None:
    tail = re.split(r"[:#]", origin)[-1]
    return int(tail) if tail.isdigit() else None
