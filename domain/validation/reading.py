"""Reading one field at a time, leniently, by the tenant's locale; each problem noted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from domain import problems as P
from domain.dates import DateError, parse_date
from domain.money import AmountError, parse_amount
from domain.normalize import clean_text
from domain.tenants import Tenant

LABELS = {
    "total_amount": "total",
    "vat_amount": "tax amount",
    "net_amount": "net amount",
    "tax_amount": "tax amount",
    "unit_price": "unit price",
    "quantity": "quantity",
    "date": "invoice date",
    "due_date": "due date",
    "tax_rate": "tax rate",
}


def label(field_path: str) -> str:
    leaf = field_path.rsplit(".", 1)[-1]
    where = ""
    if field_path.startswith("line_items["):
        where = f"line {int(field_path[11 : field_path.index(']')]) + 1} "
    return f"the {where}{LABELS.get(leaf, leaf.replace('_', ' '))}".replace("the line", "line")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class Reader:
    """Reads fields of one item by one tenant's conventions, noting each problem."""

    def __init__(self, tenant: Tenant, out: P.Problems) -> None:
        self.conv = tenant.conventions
        self.out = out
        self.currency: str | None = None  # once known: amounts marked otherwise are refused

    def text(
        self, data: Mapping[str, Any], key: str, path: str, *, required: str | None = None
    ) -> str | None:
        value = data.get(key)
        if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
            text = clean_text(str(value))
            if text:
                return text
        elif value is not None:
            self.out.add(P.INVALID, path, f"{label(path).capitalize()} must be text.")
            return None
        if required:
            self.out.add(P.MISSING, path, required)
        return None

    def amount(
        self, value: Any, path: str, *, required: bool, currency: bool = True
    ) -> Decimal | None:
        if _blank(value):
            if required:
                self.out.add(
                    P.MISSING, path, f"{label(path).capitalize()} is missing; enter it in Dext."
                )
            return None
        try:
            return parse_amount(
                value,
                decimal=self.conv.decimal,
                indian_grouping=self.conv.indian_grouping,
                currency=self.currency,
                allow_currency=currency,
            )
        except AmountError as exc:
            code = P.MISSING if exc.code == "missing" else exc.code
            fix = (
                "correct the amount or the item's currency"
                if code == P.CURRENCY_CONFLICT
                else "correct it in Dext"
            )
            self.out.add(code, path, f"{label(path).capitalize()}: {exc.message}; {fix}.")
            return None

    def quantity(self, value: Any, path: str) -> Decimal:
        """A line's quantity; absent means one, as on a one-off charge."""
        if _blank(value):
            return Decimal(1)
        try:
            quantity = parse_amount(
                value,
                decimal=self.conv.decimal,
                indian_grouping=self.conv.indian_grouping,
                allow_currency=False,
            )
        except AmountError as exc:
            self.out.add(
                P.INVALID_QUANTITY,
                path,
                f"{label(path).capitalize()}: {exc.message}; correct it in Dext.",
            )
            return Decimal(1)
        if quantity == 0:
            self.out.add(
                P.INVALID_QUANTITY,
                path,
                f"{label(path).capitalize()} is zero; correct it in Dext.",
            )
        return quantity

    def date(self, value: Any, path: str, *, required: bool) -> dt.date | None:
        if _blank(value):
            if required:
                self.out.add(P.MISSING, path, f"The {LABELS[path]} is missing; enter it in Dext.")
            return None
        try:
            return parse_date(value, self.conv.date_order)
        except DateError as exc:
            self.out.add(exc.code, path, f"The {LABELS[path]}: {exc.message}.")
            return None

    def rate(self, value: Any, path: str) -> tuple[Decimal | None, str | None]:
        """A tax rate as a percent, or the rate's name ("Exempt") when it is not a number."""
        if _blank(value):
            return None, None
        if isinstance(value, str) and not any(c.isdigit() for c in value):
            return None, clean_text(value)
        text = value.strip().removesuffix("%") if isinstance(value, str) else value
        try:
            rate = parse_amount(
                text,
                decimal=self.conv.decimal,
                indian_grouping=self.conv.indian_grouping,
                allow_currency=False,
            )
        except AmountError as exc:
            self.out.add(
                P.INVALID_TAX_RATE,
                path,
                f"{label(path).capitalize()}: {exc.message}; write it as a percentage such as 20.",
            )
            return None, None
        if not 0 <= rate <= 100:
            self.out.add(
                P.INVALID_TAX_RATE,
                path,
                f"{label(path).capitalize()} {rate}% is not a percentage between 0 and 100.",
            )
            return None, None
        return rate, None


def flag(value: Any) -> bool | None:
    """A yes/no field as Dext and spreadsheets write it; None when it says neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "yes": True, "y": True, "1": True}.get(
            value.strip().casefold(),
            {"false": False, "no": False, "n": False, "0": False}.get(value.strip().casefold()),
        )
    return None
