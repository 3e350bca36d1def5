"""An invoice's lines as written (signs and all, before rounding), and the amounts a line
leaves out worked out from those it states."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from domain import problems as P
from domain.money import quantum
from domain.validation.reading import Reader

LINE_FIELDS = frozenset(
    {
        "description",
        "category",
        "category_code",
        "quantity",
        "unit_price",
        "net_amount",
        "tax_amount",
        "total_amount",
        "tax_rate",
        "department",
        "location",
        "project",
    }
)


@dataclass
class Line:
    """One line as written, signs and all, before rounding."""

    index: int | None  # None: the single line made from the header
    description: str
    category: str | None
    category_code: str | None
    quantity: Decimal
    unit_price: Decimal | None
    net: Decimal
    tax: Decimal
    total: Decimal
    tax_rate: Decimal | None
    tax_rate_name: str | None
    department: str | None
    location: str | None
    project: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return "" if self.index is None else f"line_items[{self.index}]"

    def at(self, key: str, header_key: str | None = None) -> str:
        if self.index is None:
            return header_key or key
        return f"{self.path}.{key}"

    def flip(self) -> None:
        self.net, self.tax, self.total = -self.net, -self.tax, -self.total
        if self.unit_price is not None:
            self.unit_price = -self.unit_price


@dataclass(frozen=True)
class Header:
    """Header fields a line falls back to when it has none of its own."""

    description: str | None
    category: str | None
    category_code: str | None
    department: str | None
    location: str | None
    project: str | None
    supplier: str | None


def complete_amounts(
    net: Decimal | None,
    tax: Decimal | None,
    total: Decimal | None,
    quantity: Decimal,
    unit: Decimal | None,
    rate: Decimal | None,
    currency: str | None,
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """Fill in what a line leaves out from what it states. Dext's automatic extraction gives
    total and tax; manual lines may give quantity, unit price and rate only. Nothing is
    guessed: each derived amount follows from the others by arithmetic alone, and when they
    are all given, the checks compare them instead."""
    # Before the currency is known to be valid, cents are the likeliest minor unit; an item
    # with a bad currency fails anyway, so this only shapes the other problems it reports.
    q = quantum(currency) if currency else Decimal("0.01")
    if net is None and total is None and unit is not None:
        net = quantity * unit
    if tax is None and rate is not None:
        if net is not None and total is None:
            tax = (net * rate / 100).quantize(q, rounding=ROUND_HALF_UP)
        elif total is not None and net is None:
            net = (total * 100 / (100 + rate)).quantize(q, rounding=ROUND_HALF_UP)
            tax = total - net
    if total is None and net is not None:
        total = net + (tax or Decimal(0))
    elif net is None and total is not None:
        net = total - (tax or Decimal(0))
    if tax is None and net is not None and total is not None:
        tax = total - net
    return net, tax, total


class _Stated(NamedTuple):
    """What a line states about its amounts and coding, the missing amounts filled in."""

    net: Decimal
    tax: Decimal
    total: Decimal
    quantity: Decimal
    unit: Decimal | None
    rate: Decimal | None
    rate_name: str | None
    category: str | None
    code: str | None


def read_lines(reader: Reader, raw_lines: list[Any], header: Header) -> tuple[list[Line], bool]:
    """The lines as written, and whether every one of them could be read completely."""
    lines: list[Line] = []
    complete = True
    for i, raw in enumerate(raw_lines):
        path = f"line_items[{i}]"
        if not isinstance(raw, Mapping):
            reader.out.add(P.INVALID, path, f"Line {i + 1} is not an object with amounts.")
            complete = False
            continue
        before = len(reader.out.items)
        stated = _read_amounts(reader, i, raw, header)
        if stated is None:
            complete = False
            continue
        # A problem with the amounts or the category makes the lines incomplete; one in the
        # description or dimensions (read below) leaves the amounts to be checked.
        if len(reader.out.items) > before:
            complete = False
        lines.append(_line(reader, i, raw, header, stated))
    return lines, complete


def _read_amounts(reader: Reader, i: int, raw: Mapping[str, Any], header: Header) -> _Stated | None:
    """Line ``i``'s amounts and coding, or None (with a problem noted) when its amounts
    cannot be made out."""
    path = f"line_items[{i}]"
    net = reader.amount(raw.get("net_amount"), f"{path}.net_amount", required=False)
    tax = reader.amount(raw.get("tax_amount"), f"{path}.tax_amount", required=False)
    total = reader.amount(raw.get("total_amount"), f"{path}.total_amount", required=False)
    quantity = reader.quantity(raw.get("quantity"), f"{path}.quantity")
    unit = reader.amount(raw.get("unit_price"), f"{path}.unit_price", required=False)
    rate, rate_name = reader.rate(raw.get("tax_rate"), f"{path}.tax_rate")
    net, tax, total = complete_amounts(net, tax, total, quantity, unit, rate, reader.currency)
    category = reader.text(raw, "category", f"{path}.category")
    code = reader.text(raw, "category_code", f"{path}.category_code")
    if category is None and code is None:
        # A line with no category of its own is coded like the invoice.
        category, code = header.category, header.category_code
    if net is None or total is None or tax is None:
        if not reader.out.has(path):
            reader.out.add(
                P.MISSING,
                f"{path}.total_amount",
                f"Line {i + 1} has no amounts; enter its total (and tax) in Dext.",
            )
        return None
    return _Stated(net, tax, total, quantity, unit, rate, rate_name, category, code)


def _line(reader: Reader, i: int, raw: Mapping[str, Any], header: Header, stated: _Stated) -> Line:
    path = f"line_items[{i}]"
    return Line(
        index=i,
        description=reader.text(raw, "description", f"{path}.description")
        or header.description
        or stated.category
        or header.supplier
        or "",
        category=stated.category,
        category_code=stated.code,
        quantity=stated.quantity,
        unit_price=stated.unit,
        net=stated.net,
        tax=stated.tax,
        total=stated.total,
        tax_rate=stated.rate,
        tax_rate_name=stated.rate_name,
        department=reader.text(raw, "department", f"{path}.department") or header.department,
        location=reader.text(raw, "location", f"{path}.location") or header.location,
        project=reader.text(raw, "project", f"{path}.project") or header.project,
        extra={k: v for k, v in raw.items() if k not in LINE_FIELDS},
    )


def header_line(
    header: Header,
    net: Decimal | None,
    tax: Decimal | None,
    total: Decimal,
    rate: Decimal | None,
    rate_name: str | None,
    currency: str | None,
) -> Line:
    """The single line of an invoice that has no line items, made from its header."""
    h_net, h_tax, h_total = complete_amounts(net, tax, total, Decimal(1), None, rate, currency)
    return Line(
        index=None,
        description=header.description or header.category or header.supplier or "",
        category=header.category,
        category_code=header.category_code,
        quantity=Decimal(1),
        unit_price=None,
        net=h_net if h_net is not None else total,
        tax=h_tax if h_tax is not None else Decimal(0),
        total=h_total if h_total is not None else total,
        tax_rate=rate,
        tax_rate_name=rate_name,
        department=header.department,
        location=header.location,
        project=header.project,
    )
