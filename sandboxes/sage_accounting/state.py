"""What the Sage Accounting sandbox holds: its options, businesses and refresh tokens.

A ``Business`` keeps its chart of accounts, tax rates, contacts, purchase invoices and
credit notes, attachments (with their files), the idempotency ids it has seen and its lock
date; ``make_business`` builds one from the ``--businesses-file`` / admin format.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandboxes.sage_accounting.answers import base_object, new_id, now_iso

DEFAULT_CLIENT_ID = "billstream-sandbox"

DEFAULT_CLIENT_SECRET = "sandbox-secret"

DEFAULT_BUSINESS_ID = "0d40342d0287cd6b13555c54afca6c90"

MAX_FILE_SIZE = 2_621_440

IDEMPOTENCY_WINDOW = 7 * 24 * 3600.0

CODE_TTL = 60.0

# What Sage's attachments guide says a user can attach ("a pdf, jpg or png file"); the
# Swagger lists no types. docs/ledger-limits.md.
MIME_TYPES = {"application/pdf", "image/png", "image/jpeg"}

FAIL_MODES = ("before", "after", "timeout")

ITEM_RE = re.compile(r"(?m)^billstream item: (\S+)\s*$")


DEFAULT_CHART: tuple[tuple[int, str], ...] = (
    (5000, "Cost of sales - goods"),
    (6100, "Advertising and marketing"),
    (6210, "Software subscriptions"),
    (6320, "Telephone"),
    (6400, "Travel"),
    (6500, "Repairs"),
    (6700, "Professional fees"),
    (7100, "Rent"),
    (7200, "Electricity"),
    (7400, "Travelling"),
    (7500, "Office costs"),
    (7502, "Telephone and internet"),
    (7600, "Legal and professional fees"),
    (7700, "Equipment hire"),
    (7710, "Accountancy fees"),
    (7800, "Repairs and maintenance"),
)


DEFAULT_TAX_RATES: tuple[tuple[str, str, str], ...] = (
    ("GB_STANDARD", "Standard", "20"),
    ("GB_LOWER", "Lower Rate", "5"),
    ("GB_ZERO", "Zero Rated", "0"),
    ("GB_EXEMPT", "Exempt", "0"),
    ("GB_NO_TAX", "No VAT", "0"),
)


@dataclass
class SandboxOptions:
    host: str = "127.0.0.1"
    port: int = 0
    latency_ms: int = 0
    fail_rate: float = 0.0
    fail_modes: tuple[str, ...] = FAIL_MODES
    hang_seconds: float = 30.0
    closed_before: dt.date | None = None
    rate_limit: int = 200
    rate_window: float = 60.0
    byte_limit: int = 100_000_000
    byte_window: float = 3600.0
    max_concurrent: int = 0
    access_token_ttl: int = 300
    refresh_token_ttl: int = 2_678_400
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    business_id: str = DEFAULT_BUSINESS_ID
    businesses_file: Path | None = None
    state_dir: Path | None = None
    seed: int | None = None
    # stop when stdin reaches EOF: a parent that dies (even by SIGKILL) takes us with it
    exit_on_stdin_eof: bool = False


@dataclass
class Business:
    id: str
    name: str
    base_currency: str = "GBP"
    currencies: list[str] = field(default_factory=lambda: ["GBP"])
    multi_currency: bool = False
    lock_date: dt.date | None = None
    accounts_start: dt.date | None = None
    year_end: dt.date = dt.date(2026, 12, 31)
    ledger_accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    tax_rates: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    purchase_invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    purchase_credit_notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # attachment id -> base64
    idempotency: dict[str, dict[str, Any]] = field(default_factory=dict)
    sequence: int = 0
    # lock date before an admin close_period(P), so open_period(P) can put it back
    period_locks: dict[str, dt.date | None] = field(default_factory=dict)
    # not persisted: windows of the rate and byte limits, requests in flight
    calls: deque[float] = field(default_factory=deque)
    sent_bytes: deque[tuple[float, int]] = field(default_factory=deque)
    inflight: int = 0

    def next_number(self) -> int:
        self.sequence += 1
        return self.sequence

    def collection(self, kind: str) -> dict[str, dict[str, Any]]:
        stores: dict[str, dict[str, dict[str, Any]]] = {
            "contacts": self.contacts,
            "purchase_invoices": self.purchase_invoices,
            "purchase_credit_notes": self.purchase_credit_notes,
            "attachments": self.attachments,
            "ledger_accounts": self.ledger_accounts,
            "tax_rates": self.tax_rates,
        }
        return stores[kind]

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "$path": "/financial_settings",
            "year_end_date": self.year_end.isoformat(),
            "base_currency": base_object("currencies", self.base_currency, self.base_currency),
            "multi_currency_enabled": self.multi_currency,
            "use_live_exchange_rates": False,
            "accounting_type": "accrual",
            "updated_at": now_iso(),
        }
        # Sage sends null for an unset date; the Swagger type is a plain string, so the
        # sandbox leaves the key out instead (readers treat both as "none").
        if self.lock_date is not None:
            out["year_end_lockdown_date"] = self.lock_date.isoformat()
        if self.accounts_start is not None:
            out["accounts_start_date"] = self.accounts_start.isoformat()
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "base_currency": self.base_currency,
            "currencies": self.currencies,
            "multi_currency": self.multi_currency,
            "lock_date": self.lock_date.isoformat() if self.lock_date else None,
            "accounts_start": self.accounts_start.isoformat() if self.accounts_start else None,
            "year_end": self.year_end.isoformat(),
            "ledger_accounts": self.ledger_accounts,
            "tax_rates": self.tax_rates,
            "contacts": self.contacts,
            "purchase_invoices": self.purchase_invoices,
            "purchase_credit_notes": self.purchase_credit_notes,
            "attachments": self.attachments,
            "files": self.files,
            "idempotency": self.idempotency,
            "sequence": self.sequence,
            "period_locks": {k: v.isoformat() if v else None for k, v in self.period_locks.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Business:
        def day(v: Any) -> dt.date | None:
            return dt.date.fromisoformat(v) if v else None

        return cls(
            id=data["id"],
            name=data["name"],
            base_currency=data["base_currency"],
            currencies=list(data["currencies"]),
            multi_currency=bool(data["multi_currency"]),
            lock_date=day(data.get("lock_date")),
            accounts_start=day(data.get("accounts_start")),
            year_end=day(data.get("year_end")) or dt.date(2026, 12, 31),
            ledger_accounts=data["ledger_accounts"],
            tax_rates=data["tax_rates"],
            contacts=data["contacts"],
            purchase_invoices=data["purchase_invoices"],
            purchase_credit_notes=data["purchase_credit_notes"],
            attachments=data["attachments"],
            files=data["files"],
            idempotency=data["idempotency"],
            sequence=int(data["sequence"]),
            period_locks={k: day(v) for k, v in data.get("period_locks", {}).items()},
        )


def make_business(config: dict[str, Any], *, default_id: str | None = None) -> Business:
    """A business from a config dict (the ``--businesses-file`` / admin format)."""
    base = str(config.get("base_currency", "GBP")).upper()
    currencies = [str(c).upper() for c in config.get("currencies", [base])]
    if base not in currencies:
        currencies.insert(0, base)
    biz = Business(
        id=str(config.get("id") or default_id or new_id()),
        name=str(config.get("name") or "Sandbox Business"),
        base_currency=base,
        currencies=currencies,
        multi_currency=bool(config.get("multi_currency", len(currencies) > 1)),
        lock_date=dt.date.fromisoformat(config["lock_date"]) if config.get("lock_date") else None,
        accounts_start=(
            dt.date.fromisoformat(config["accounts_start_date"])
            if config.get("accounts_start_date")
            else None
        ),
    )
    if not re.fullmatch(r"[0-9a-f]{32}", biz.id):
        raise ValueError(f"business id {biz.id!r} is not 32 lowercase hex characters")
    rates = config.get("tax_rates") or [
        {"id": i, "name": n, "percentage": p} for i, n, p in DEFAULT_TAX_RATES
    ]
    for rate in rates:
        rid = str(rate["id"])
        pct = Decimal(str(rate.get("percentage", "0")))
        name = str(rate.get("name") or rid)
        biz.tax_rates[rid] = {
            **base_object("tax_rates", rid, f"{name} {pct}%"),
            "name": name,
            "percentage": pct,
            "is_visible": True,
            "editable": False,
            "deletable": False,
            "is_combined_rate": False,
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
    accounts = config.get("ledger_accounts") or [
        {"nominal_code": c, "name": n} for c, n in DEFAULT_CHART
    ]
    for acct in accounts:
        aid = new_id()
        code = int(acct["nominal_code"])
        name = str(acct.get("name") or f"Account {code}")
        biz.ledger_accounts[aid] = {
            **base_object("ledger_accounts", aid, f"{name} ({code})"),
            "nominal_code": code,
            "name": name,
            "display_name": name,
            "included_in_chart": True,
            "visible_in_expenses": bool(acct.get("visible_in_expenses", True)),
            "visible_in_sales": False,
            "visible_in_banking": False,
            "visible_in_journals": True,
            "visible_in_other_payments": True,
            "visible_in_other_receipts": False,
            "visible_in_reporting": True,
            "fixed_tax_rate": False,
            "is_control_account": False,
            "ledger_account_type": base_object("ledger_account_types", "EXPENSES", "Expenses"),
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
    return biz


@dataclass
class Grant:
    """A refresh token and what it may do."""

    client_id: str
    expires_at: float
    used: bool = False
