"""The SQLite reference ledger: a Sage-like company in one SQLite file, outliving any worker.

It is the reference implementation of the ledger port (``domain.ports.Ledger``): vendors,
draft bills with GL-coded lines, one attachment per bill, open and closed periods, and a
duplicate guard on vendor + invoice number. Every write is also journalled in ``writes`` so
tests can prove that a redelivered event repeated no side effect.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.errors import LedgerError, Reason
from domain.models import (
    Attachment,
    AttachmentLimits,
    Document,
    DraftBill,
    LedgerBill,
    Vendor,
)
from domain.normalize import vendor_match_key

# The local stand-in takes what billstream fetches at most (adapters.documents), any type.
LOCAL_LIMITS = AttachmentLimits(
    ledger="the local ledger", max_bytes=20 * 1024 * 1024, source="billstream's own"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vendors (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, match_key TEXT NOT NULL UNIQUE,
    tax_number TEXT, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bills (
    id TEXT PRIMARY KEY, vendor_id TEXT NOT NULL REFERENCES vendors(id),
    number TEXT NOT NULL, date TEXT NOT NULL, due_date TEXT NOT NULL, currency TEXT NOT NULL,
    net TEXT NOT NULL, tax TEXT NOT NULL, total TEXT NOT NULL,
    credit_note INTEGER NOT NULL, state TEXT NOT NULL, item_key TEXT, memo TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (vendor_id, number, credit_note)
);
CREATE TABLE IF NOT EXISTS bill_lines (
    bill_id TEXT NOT NULL REFERENCES bills(id), line_no INTEGER NOT NULL,
    description TEXT NOT NULL, gl_account TEXT NOT NULL, quantity TEXT NOT NULL,
    unit_price TEXT NOT NULL, net TEXT NOT NULL, tax TEXT NOT NULL, total TEXT NOT NULL,
    tax_code TEXT, department TEXT, location TEXT, project TEXT,
    PRIMARY KEY (bill_id, line_no)
);
CREATE TABLE IF NOT EXISTS attachments (
    id TEXT PRIMARY KEY, bill_id TEXT NOT NULL UNIQUE REFERENCES bills(id),
    filename TEXT NOT NULL, content_type TEXT NOT NULL, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, content BLOB NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS periods (period TEXT PRIMARY KEY, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS writes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, ref TEXT NOT NULL,
    item_key TEXT, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _period(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


class LocalLedger:
    """The ledger port over a SQLite file. Safe to open from several processes at once."""

    kind = "local"

    def __init__(
        self,
        path: Path | str,
        *,
        company: str = "local",
        attachment_limits: AttachmentLimits = LOCAL_LIMITS,
    ) -> None:
        self.path = Path(path)
        self.company = company
        # Tests give it a Sage ledger's limits to stand in for that ledger.
        self.attachment_limits = attachment_limits
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so a check-then-insert is atomic
        # even when two worker processes share the file.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def _next_id(self, db: sqlite3.Connection, prefix: str) -> str:
        db.execute(
            "INSERT INTO counters(name, value) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1",
            (prefix,),
        )
        (value,) = db.execute("SELECT value FROM counters WHERE name = ?", (prefix,)).fetchone()
        return f"{prefix}-{value:06d}"

    def _journal(self, db: sqlite3.Connection, op: str, ref: str, item_key: str | None) -> None:
        db.execute(
            "INSERT INTO writes(op, ref, item_key, at) VALUES (?, ?, ?, ?)",
            (op, ref, item_key, _now()),
        )

    @staticmethod
    def _vendor(row: sqlite3.Row) -> Vendor:
        return Vendor(id=row["id"], name=row["name"], tax_number=row["tax_number"])

    @staticmethod
    def _bill(row: sqlite3.Row) -> LedgerBill:
        return LedgerBill(
            id=row["id"],
            vendor_id=row["vendor_id"],
            number=row["number"],
            date=dt.date.fromisoformat(row["date"]),
            currency=row["currency"],
            total=Decimal(row["total"]),
            credit_note=bool(row["credit_note"]),
            state=row["state"],
            item_key=row["item_key"],
        )

    @staticmethod
    def _attachment(row: sqlite3.Row) -> Attachment:
        return Attachment(
            id=row["id"],
            bill_id=row["bill_id"],
            filename=row["filename"],
            sha256=row["sha256"],
            size=row["size"],
        )

    # -- the ledger port ----------------------------------------------------------------------

    async def find_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor | None:
        if tax_number:
            row = self._db.execute(
                "SELECT * FROM vendors WHERE tax_number = ?", (tax_number,)
            ).fetchone()
            if row is not None:
                return self._vendor(row)
        row = self._db.execute(
            "SELECT * FROM vendors WHERE match_key = ?", (vendor_match_key(name),)
        ).fetchone()
        return None if row is None else self._vendor(row)

    async def create_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor:
        key = vendor_match_key(name)
        with self._tx() as db:
            row = db.execute("SELECT * FROM vendors WHERE match_key = ?", (key,)).fetchone()
            if row is not None:
                return self._vendor(row)
            vendor_id = self._next_id(db, "V")
            db.execute(
                "INSERT INTO vendors(id, name, match_key, tax_number, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (vendor_id, name, key, tax_number, _now()),
            )
            self._journal(db, "create_vendor", vendor_id, None)
        return Vendor(id=vendor_id, name=name, tax_number=tax_number)

    async def find_bill(
        self, vendor_id: str, number: str, *, credit_note: bool = False
    ) -> LedgerBill | None:
        row = self._db.execute(
            "SELECT * FROM bills WHERE vendor_id = ? AND number = ? AND credit_note = ?",
            (vendor_id, number, int(credit_note)),
        ).fetchone()
        return None if row is None else self._bill(row)

    async def get_bill(self, bill_id: str) -> LedgerBill | None:
        row = self._db.execute("SELECT * FROM bills WHERE id = ?", (bill_id,)).fetchone()
        return None if row is None else self._bill(row)

    async def create_draft_bill(self, vendor: Vendor, bill: DraftBill) -> LedgerBill:
        if not await self.period_is_open(bill.date):
            raise LedgerError(
                Reason.PERIOD_CLOSED,
                f"The period {_period(bill.date)} is closed in {self.company}; a bill dated "
                f"{bill.date.isoformat()} cannot be posted.",
                detail={"period": _period(bill.date)},
            )
        with self._tx() as db:
            if db.execute("SELECT 1 FROM vendors WHERE id = ?", (vendor.id,)).fetchone() is None:
                raise LedgerError(Reason.VENDOR_NOT_FOUND, f"Vendor {vendor.id} does not exist.")
            dup = db.execute(
                "SELECT id, item_key FROM bills WHERE vendor_id = ? AND number = ? "
                "AND credit_note = ?",
                (vendor.id, bill.number, int(bill.credit_note)),
            ).fetchone()
            if dup is not None:
                raise LedgerError(
                    Reason.DUPLICATE,
                    f"Bill {bill.number} from {vendor.name} already exists as {dup['id']}.",
                    detail={"bill_id": dup["id"], "item_key": dup["item_key"]},
                )
            bill_id = self._next_id(db, "CN" if bill.credit_note else "B")
            db.execute(
                "INSERT INTO bills(id, vendor_id, number, date, due_date, currency, net, tax, "
                "total, credit_note, state, item_key, memo, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?, ?)",
                (
                    bill_id,
                    vendor.id,
                    bill.number,
                    bill.date.isoformat(),
                    bill.due_date.isoformat(),
                    bill.currency,
                    str(bill.net),
                    str(bill.tax),
                    str(bill.total),
                    int(bill.credit_note),
                    bill.item_key,
                    bill.memo,
                    _now(),
                ),
            )
            db.executemany(
                "INSERT INTO bill_lines VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        bill_id,
                        n,
                        ln.description,
                        ln.gl_account,
                        str(ln.quantity),
                        str(ln.unit_price),
                        str(ln.net),
                        str(ln.tax),
                        str(ln.total),
                        ln.tax_code,
                        ln.dimensions.department,
                        ln.dimensions.location,
                        ln.dimensions.project,
                    )
                    for n, ln in enumerate(bill.lines, start=1)
                ],
            )
            self._journal(db, "create_draft_bill", bill_id, bill.item_key)
            row = db.execute("SELECT * FROM bills WHERE id = ?", (bill_id,)).fetchone()
        return self._bill(row)

    async def find_attachment(self, bill: LedgerBill) -> Attachment | None:
        row = self._db.execute("SELECT * FROM attachments WHERE bill_id = ?", (bill.id,)).fetchone()
        return None if row is None else self._attachment(row)

    async def attach_document(self, bill: LedgerBill, document: Document) -> Attachment:
        limits = self.attachment_limits
        if len(document.content) > limits.max_bytes or not limits.takes(document.content_type):
            raise LedgerError(
                Reason.ATTACHMENT_TOO_LARGE
                if limits.takes(document.content_type)
                else Reason.ATTACHMENT_TYPE,
                f"{document.filename} ({document.content_type}, {len(document.content):,} "
                f"bytes) is not what {self.company} takes: {limits.max_bytes:,} bytes, "
                f"{', '.join(sorted(limits.types)) or 'any type'}.",
            )
        with self._tx() as db:
            if db.execute("SELECT 1 FROM bills WHERE id = ?", (bill.id,)).fetchone() is None:
                raise LedgerError(
                    Reason.ATTACHMENT_FAILED, f"Bill {bill.id} no longer exists in {self.company}."
                )
            row = db.execute("SELECT * FROM attachments WHERE bill_id = ?", (bill.id,)).fetchone()
            if row is not None:
                raise LedgerError(
                    Reason.ATTACHMENT_FAILED,
                    f"Bill {bill.id} already has attachment {row['id']}.",
                    detail={"attachment_id": row["id"]},
                )
            attachment_id = self._next_id(db, "A")
            db.execute(
                "INSERT INTO attachments VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    attachment_id,
                    bill.id,
                    document.filename,
                    document.content_type,
                    document.sha256,
                    len(document.content),
                    document.content,
                    _now(),
                ),
            )
            self._journal(db, "attach_document", attachment_id, bill.item_key)
        return Attachment(
            id=attachment_id,
            bill_id=bill.id,
            filename=document.filename,
            sha256=document.sha256,
            size=len(document.content),
        )

    async def period_is_open(self, day: dt.date) -> bool:
        row = self._db.execute(
            "SELECT status FROM periods WHERE period = ?", (_period(day),)
        ).fetchone()
        return row is None or row["status"] == "open"

    async def next_open_day(self, day: dt.date) -> dt.date | None:
        probe = day
        for _ in range(120):  # ten years of months is more than any ledger keeps closed
            if await self.period_is_open(probe):
                return probe
            probe = (probe.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        return None

    async def check_connection(self) -> None:
        try:
            self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(Reason.UNAVAILABLE, f"local ledger {self.path}: {exc}") from exc

    async def aclose(self) -> None:
        self._db.close()

    # -- administration (periods, inspection) -------------------------------------------------

    def set_period(self, period: str, status: str) -> None:
        dt.date.fromisoformat(f"{period}-01")  # refuse anything but YYYY-MM
        if status not in {"open", "closed"}:
            raise ValueError("status must be 'open' or 'closed'")
        with self._tx() as db:
            db.execute(
                "INSERT INTO periods(period, status) VALUES (?, ?) "
                "ON CONFLICT(period) DO UPDATE SET status = excluded.status",
                (period, status),
            )

    def close_period(self, period: str) -> None:
        self.set_period(period, "closed")

    def open_period(self, period: str) -> None:
        self.set_period(period, "open")

    def delete_bill(self, bill_id: str) -> None:
        """What a user does in Sage by hand; used to test reconciliation."""
        with self._tx() as db:
            db.execute("DELETE FROM attachments WHERE bill_id = ?", (bill_id,))
            db.execute("DELETE FROM bill_lines WHERE bill_id = ?", (bill_id,))
            db.execute("DELETE FROM bills WHERE id = ?", (bill_id,))

    def delete_attachment(self, bill_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM attachments WHERE bill_id = ?", (bill_id,))

    def attachment_content(self, bill_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT content FROM attachments WHERE bill_id = ?", (bill_id,)
        ).fetchone()
        return None if row is None else bytes(row["content"])

    def bill_lines(self, bill_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM bill_lines WHERE bill_id = ? ORDER BY line_no", (bill_id,)
        ).fetchall()
        return [dict(r) for r in rows]

    def summary(self) -> dict[str, int]:
        """Counts for the demo: bills, attachments, and bills sharing an item key."""
        q = self._db.execute
        bills = q("SELECT COUNT(*) FROM bills").fetchone()[0]
        attachments = q("SELECT COUNT(*) FROM attachments").fetchone()[0]
        duplicates = q(
            "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM bills "
            "WHERE item_key IS NOT NULL GROUP BY item_key HAVING n > 1)"
        ).fetchone()[0]
        vendors = q("SELECT COUNT(*) FROM vendors").fetchone()[0]
        return {
            "bills": bills,
            "attachments": attachments,
            "duplicates": duplicates,
            "vendors": vendors,
        }

    def bills_by_item(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT item_key, COUNT(*) AS n FROM bills WHERE item_key IS NOT NULL GROUP BY item_key"
        ).fetchall()
        return {r["item_key"]: r["n"] for r in rows}

    def inventory(self) -> dict[str, tuple[int, int]]:
        """Item key -> (bills carrying it, attachments on those bills)."""
        rows = self._db.execute(
            "SELECT b.item_key, COUNT(DISTINCT b.id) AS bills, COUNT(a.id) AS atts "
            "FROM bills b LEFT JOIN attachments a ON a.bill_id = b.id "
            "WHERE b.item_key IS NOT NULL GROUP BY b.item_key"
        ).fetchall()
        return {r["item_key"]: (int(r["bills"]), int(r["atts"])) for r in rows}

    def writes(self, op: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM writes" + (" WHERE op = ?" if op else "") + " ORDER BY seq"
        return [dict(r) for r in self._db.execute(sql, (op,) if op else ()).fetchall()]
