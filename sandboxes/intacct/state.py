"""What the Intacct sandbox holds: its configuration, companies, sessions and counters.

A ``Company`` keeps vendors, AP bills and adjustments, attachments (supdocs) and their
folders, closed periods and the control ids already carried out. ``OBJECT_FIELDS`` names
the fields each object answers queries with, as Intacct's object definitions do.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from adapters.intacct.xml import element_value, format_date
from sandboxes.intacct.errors import E_QUERY, refuse
from sandboxes.intacct.objects import (
    APBILL_FIELDS,
    APBILLITEM_FIELDS,
    DATE_ONLY,
    DECIMAL_FIELDS,
    INTEGER_FIELDS,
    VENDOR_FIELDS,
)

DEFAULT_PORT = 8910

DEFAULT_SENDER_ID = "billstream-sandbox"

DEFAULT_SENDER_PASSWORD = "sandbox-sender-secret"

DEFAULT_COMPANY = "BILLSTREAM-DEMO"

DEFAULT_USER_ID = "xml_gateway"

DEFAULT_USER_PASSWORD = "sandbox-user-secret"


FAULT_MODES = ("rate_limit", "unavailable", "after_write", "drop_after_write", "hang_after_write")

DEFAULT_FAULT_MODES = ("rate_limit", "unavailable", "after_write", "drop_after_write")


OBJECT_FIELDS: dict[str, tuple[str, ...]] = {
    "VENDOR": VENDOR_FIELDS,
    "APBILL": APBILL_FIELDS,
    "APBILLITEM": APBILLITEM_FIELDS,
    "REPORTINGPERIOD": (
        "RECORDNO",
        "NAME",
        "HEADER1",
        "START_DATE",
        "END_DATE",
        "STATUS",
        "CLOSED",
    ),
}

OBJECT_FIELDS["APADJUSTMENT"] = OBJECT_FIELDS["APBILL"]

DOCUMENTS = {"APBILL": "APBILLITEMS", "APADJUSTMENT": "APADJUSTMENTITEMS"}

DATE_FIELDS = DATE_ONLY

NUMBER_FIELDS = INTEGER_FIELDS | DECIMAL_FIELDS

# The dimensions a bill line may carry, checked against the company's lists when it has them.
DIMENSIONS = ("DEPARTMENTID", "LOCATIONID", "PROJECTID", "CLASSID")

VENDOR_ID_MAX = 20

SUPDOC_ID_MAX = 20

PERIOD_YEARS = range(2000, 2100)


def period_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_end(year: int, month: int) -> dt.date:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def now_text() -> str:
    return dt.datetime.now().strftime("%m/%d/%Y %H:%M:%S")


def money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), "f")


def text_of(el: Element | None, path: str) -> str:
    if el is None:
        return ""
    found = el.find(path)
    return "" if found is None or found.text is None else found.text.strip()


def find_ci(el: Element, name: str) -> Element | None:
    """Element names are upper case in generic functions; accept any case, as Intacct does."""
    for child in el:
        if child.tag.upper() == name.upper():
            return child
    return None


def flat_fields(el: Element) -> dict[str, Any]:
    """Children by upper-case name: text for leaves, nested values otherwise."""
    out: dict[str, Any] = {}
    for child in el:
        out[child.tag.upper()] = element_value(child)
    return out


@dataclass
class Company:
    id: str
    vendors: dict[int, dict[str, str]] = field(default_factory=dict)
    # APBILL and APADJUSTMENT records: field -> text, plus "_object" and "_lines".
    documents: dict[int, dict[str, Any]] = field(default_factory=dict)
    supdocs: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, str]] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    executed: set[str] = field(default_factory=set)
    accounts: set[str] | None = None  # a chart of accounts to check ACCOUNTNO against
    # DEPARTMENTID/LOCATIONID/PROJECTID/CLASSID -> the ids a bill line may name; a dimension
    # absent here is not checked (the company keeps no list of it).
    dimensions: dict[str, set[str]] = field(default_factory=dict)
    vendor_sequence: bool = False  # VENDORID auto-numbering (document sequencing)
    stray_contacts: set[str] = field(default_factory=set)  # contacts with no vendor now

    def snapshot(self) -> tuple[Any, ...]:
        # Records are replaced, never changed in place, so shallow copies are a full snapshot.
        return (
            dict(self.vendors),
            dict(self.documents),
            dict(self.supdocs),
            dict(self.folders),
            set(self.closed),
            set(self.executed),
        )

    def restore(self, snap: tuple[Any, ...]) -> None:
        (
            self.vendors,
            self.documents,
            self.supdocs,
            self.folders,
            self.closed,
            self.executed,
        ) = snap

    def contact_names(self) -> set[str]:
        """Every contact's name, casefolded: the vendors' display contacts and the contacts
        left behind by vendors deleted since (``stray_contacts``)."""
        names = {
            str(v.get("DISPLAYCONTACT.CONTACTNAME", "")).casefold() for v in self.vendors.values()
        }
        return names | {n.casefold() for n in self.stray_contacts}

    def period_closed(self, day: dt.date) -> bool:
        return period_of(day) in self.closed

    def rows(self, obj: str) -> list[dict[str, Any]]:
        """The object's records as kept, to filter and sort; ``finish`` adds the derived
        fields to the ones that go out."""
        if obj == "VENDOR":
            return list(self.vendors.values())
        if obj in DOCUMENTS:
            return [r for r in self.documents.values() if r["_object"] == obj]
        if obj == "APBILLITEM":
            return [
                line_row(r, line)
                for r in self.documents.values()
                if r["_object"] == "APBILL"
                for line in r["_lines"]
            ]
        if obj == "REPORTINGPERIOD":
            return self._periods()
        raise refuse(E_QUERY, f"Object definition {obj} not found")

    def finish(self, obj: str, row: dict[str, Any], base_url: str) -> dict[str, Any]:
        """A record with every standard field of its object, derived ones worked out."""
        if obj == "VENDOR":
            return self._vendor_row(row, base_url)
        if obj in DOCUMENTS:
            return document_row(row, base_url)
        return row

    def _vendor_row(self, vendor: dict[str, str], base_url: str) -> dict[str, Any]:
        due = sum(
            (
                Decimal(str(r.get("TOTALDUE") or r.get("TRX_TOTALDUE") or 0))
                for r in self.documents.values()
                if r.get("VENDORID", "").casefold() == vendor["VENDORID"].casefold()
                and r.get("STATE") != "Draft"
            ),
            Decimal(0),
        )
        row: dict[str, Any] = {name: "" for name in VENDOR_FIELDS}
        row.update(vendor)
        row["DISPLAYCONTACT.EMAIL1"] = vendor.get("DISPLAYCONTACT.EMAIL1") or vendor.get(
            "EMAIL1", ""
        )
        row["DISPLAYCONTACT.COMPANYNAME"] = row["DISPLAYCONTACT.COMPANYNAME"] or vendor["NAME"]
        row["TOTALDUE"] = money(due)
        row["RECORD_URL"] = record_url(base_url, "vendor", vendor["RECORDNO"])
        return row

    def _periods(self) -> list[dict[str, Any]]:
        rows = []
        for year in PERIOD_YEARS:
            for month in range(1, 13):
                start = dt.date(year, month, 1)
                rows.append(
                    {
                        "RECORDNO": str((year - PERIOD_YEARS.start) * 12 + month),
                        "NAME": start.strftime("Month Ended %B %Y"),
                        "HEADER1": start.strftime("%B %Y"),
                        "START_DATE": format_date(start),
                        "END_DATE": format_date(month_end(year, month)),
                        "STATUS": "active",
                        "CLOSED": "true" if period_of(start) in self.closed else "false",
                    }
                )
        return rows


def record_url(base_url: str, kind: str, recordno: str) -> str:
    """The link Intacct gives a record (``RECORD_URL``): its page in the product."""
    return f"{base_url}/ia/acct/ur.phtml?.r={kind}:{recordno}"


def document_row(record: dict[str, Any], base_url: str) -> dict[str, Any]:
    row: dict[str, Any] = {name: "" for name in APBILL_FIELDS}
    row.update({k: v for k, v in record.items() if not k.startswith("_")})
    entered = Decimal(str(record.get("TRX_TOTALENTERED") or 0))
    paid = Decimal(str(record.get("TRX_TOTALPAID") or 0))
    row["TRX_TOTALPAID"] = row["TOTALPAID"] = money(paid)
    row["TRX_TOTALDUE"] = row["TOTALDUE"] = money(entered - paid)
    row["RAWSTATE"] = {"Draft": "D", "Posted": "A", "Partially Paid": "P", "Paid": "C"}.get(
        str(record.get("STATE")), ""
    )
    row["RECORD_URL"] = record_url(base_url, str(record.get("RECORDTYPE", "")), row["RECORDNO"])
    return row


def line_row(record: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {name: "" for name in APBILLITEM_FIELDS}
    row.update({k: v for k, v in line.items() if isinstance(v, str) and k in row})
    row.update(
        {
            "RECORDKEY": record["RECORDNO"],
            "RECORDTYPE": "apbillitem",
            "AMOUNT": line.get("TRX_AMOUNT", ""),
            "TOTALPAID": line.get("TRX_TOTALPAID", "0.00"),
            "TRX_TOTALPAID": line.get("TRX_TOTALPAID", "0.00"),
            "CURRENCY": record.get("CURRENCY", ""),
            "BASECURR": record.get("BASECURR", ""),
            "ENTRY_DATE": record.get("WHENCREATED", ""),
            "WHENMODIFIED": record.get("WHENMODIFIED", ""),
        }
    )
    return row


@dataclass
class Session:
    company: str
    user_id: str
    location_id: str
    expires: dt.datetime


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    fail_modes: tuple[str, ...] = DEFAULT_FAULT_MODES
    hang_seconds: float = 30.0
    closed_periods: tuple[str, ...] = ()
    concurrency: int = 2
    sender_id: str = DEFAULT_SENDER_ID
    sender_password: str = dataclasses.field(default=DEFAULT_SENDER_PASSWORD, repr=False)
    companies: tuple[str, ...] = (DEFAULT_COMPANY,)
    user_id: str = DEFAULT_USER_ID
    user_password: str = dataclasses.field(default=DEFAULT_USER_PASSWORD, repr=False)
    session_timeout: float = 3600.0
    vendor_sequence: bool = False
    state_dir: Path | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail rate must be between 0 and 1")
        unknown = set(self.fail_modes) - set(FAULT_MODES)
        if unknown:
            raise ValueError(f"unknown fail modes: {', '.join(sorted(unknown))}")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        for period in self.closed_periods:
            check_period(period)
        if not self.companies:
            raise ValueError("at least one company is needed")


def check_period(period: str) -> str:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}", period):
            raise ValueError
        dt.date.fromisoformat(f"{period}-01")
    except ValueError:
        raise ValueError(f"a period is YYYY-MM with a month 01-12, not {period!r}") from None
    return period


@dataclass
class Stats:
    requests: int = 0
    by_path: collections.Counter[str] = field(default_factory=collections.Counter)
    by_company: collections.Counter[str] = field(default_factory=collections.Counter)
    functions: collections.Counter[str] = field(default_factory=collections.Counter)
    rate_limited: int = 0
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    sessions: int = 0
    bills_created: int = 0
    supdocs_created: int = 0
    vendors_created: int = 0
    max_in_flight: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_path": dict(self.by_path),
            "by_company": dict(self.by_company),
            "functions": dict(self.functions),
            "function_total": sum(self.functions.values()),
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "sessions": self.sessions,
            "bills_created": self.bills_created,
            "supdocs_created": self.supdocs_created,
            "vendors_created": self.vendors_created,
            "max_in_flight": self.max_in_flight,
        }
