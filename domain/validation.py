"""Turn a Dext item into a clean invoice and a coded draft bill, or name every problem at once.

The validate stage calls ``validate_item`` and nothing else; the CLI ``billstream validate``
calls it too, so the pipeline and the command can never disagree.

The steps, each adding problems rather than stopping:

1. read every field leniently (amounts and dates by the tenant's locale, unknown fields kept);
2. work out the document's direction: a credit note (by type or by a negative total) is
   turned positive and marked, so ledgers post it as a credit note;
3. check the arithmetic on the amounts as written (line net + tax = total, quantity x price,
   tax at the stated rate, lines against the header) within the tenant's tolerance;
4. check the tenant's configuration: currency enabled, every category and rate mapped;
5. only when nothing is wrong: round to the currency's minor unit, put any rounding
   difference on the largest line so the bill adds up to the penny, and code each line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain import problems as P
from domain.coding import (
    dimensions_for,
    gl_account_for,
    infer_rate,
    tax_code_for_name,
    tax_code_for_rate,
)
from domain.dates import DateError, parse_date, resolve_due_date
from domain.dext import document_ref
from domain.errors import Problem, Reason
from domain.models import BillLine, DraftBill, Invoice, InvoiceLine, item_key
from domain.money import ISO_4217, AmountError, parse_amount, quantum, round_money
from domain.normalize import clean_text, vendor_match_key
from domain.tenants import SupplierRule, Tenant, rate_key

# Payment terms beyond a year are a misread year far more often than a real agreement.
MAX_TERMS_DAYS = 366

# Fields of a Dext item that end up in the Invoice itself; everything else is kept in
# ``Invoice.extra`` so nothing Dext sent is lost.
KNOWN_FIELDS = frozenset(
    {
        "id",
        "type",
        "payee",
        "supplier",
        "payee_tax_number",
        "supplier_tax_number",
        "invoice_number",
        "date",
        "due_date",
        "currency",
        "total_amount",
        "vat_amount",
        "net_amount",
        "category",
        "description",
        "payment_method",
        "paid",
        "line_items",
        "document",
    }
)
_LINE_FIELDS = frozenset(
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

_CREDIT_TYPES = frozenset(
    {"credit note", "credit", "refund", "credit note refund", "creditnote", "credit memo"}
)
_BILL_TYPES = frozenset(
    {"invoice", "bill", "purchase invoice", "receipt", "atm", "other", "mileage", "cost", "expense"}
)
_NOT_BILLS = {
    "statement": "a statement lists invoices that are (or will be) posted on their own",
    "delivery note": "a delivery note carries no amount owed",
    "remittance": "a remittance advice records a payment, not a bill",
    "sales invoice": "it is a sales document, not a supplier bill",
    "sales credit note": "it is a sales document, not a supplier bill",
    "quote": "a quote is not a bill",
    "purchase order": "a purchase order is not a bill",
}

# What OCR and people type when there is no number; posting them would make every such
# bill from one supplier look like a duplicate of the first.
_NO_NUMBER = frozenset({"n/a", "na", "none", "unknown", "null", "tbc", "tba", "-", "?"})

_LABELS = {
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


class ValidationResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    item: str | None
    ok: bool
    reason: Reason | None = None
    problems: list[Problem] = []
    invoice: Invoice | None = None
    bill: DraftBill | None = None


def _label(field_path: str) -> str:
    leaf = field_path.rsplit(".", 1)[-1]
    where = ""
    if field_path.startswith("line_items["):
        where = f"line {int(field_path[11 : field_path.index(']')]) + 1} "
    return f"the {where}{_LABELS.get(leaf, leaf.replace('_', ' '))}".replace("the line", "line")


class _Reader:
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
            self.out.add(P.INVALID, path, f"{_label(path).capitalize()} must be text.")
            return None
        if required:
            self.out.add(P.MISSING, path, required)
        return None

    def amount(
        self, value: Any, path: str, *, required: bool, currency: bool = True
    ) -> Decimal | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.out.add(
                    P.MISSING, path, f"{_label(path).capitalize()} is missing; enter it in Dext."
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
            self.out.add(code, path, f"{_label(path).capitalize()}: {exc.message}; {fix}.")
            return None

    def quantity(self, value: Any, path: str) -> Decimal:
        """A line's quantity; absent means one, as on a one-off charge."""
        if value is None or (isinstance(value, str) and not value.strip()):
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
                f"{_label(path).capitalize()}: {exc.message}; correct it in Dext.",
            )
            return Decimal(1)
        if quantity == 0:
            self.out.add(
                P.INVALID_QUANTITY,
                path,
                f"{_label(path).capitalize()} is zero; correct it in Dext.",
            )
        return quantity

    def date(self, value: Any, path: str, *, required: bool) -> dt.date | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.out.add(P.MISSING, path, f"The {_LABELS[path]} is missing; enter it in Dext.")
            return None
        try:
            return parse_date(value, self.conv.date_order)
        except DateError as exc:
            self.out.add(exc.code, path, f"The {_LABELS[path]}: {exc.message}.")
            return None

    def rate(self, value: Any, path: str) -> tuple[Decimal | None, str | None]:
        """A tax rate as a percent, or the rate's name ("Exempt") when it is not a number."""
        if value is None or (isinstance(value, str) and not value.strip()):
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
                f"{_label(path).capitalize()}: {exc.message}; write it as a percentage such as 20.",
            )
            return None, None
        if not 0 <= rate <= 100:
            self.out.add(
                P.INVALID_TAX_RATE,
                path,
                f"{_label(path).capitalize()} {rate}% is not a percentage between 0 and 100.",
            )
            return None, None
        return rate, None


@dataclass
class _Line:
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


def _document_kind(reader: _Reader, item: Mapping[str, Any]) -> bool:
    """Whether the type says credit note; refuses types that are not supplier bills."""
    raw = reader.text(item, "type", "type")
    if raw is None:
        return False
    kind = " ".join(raw.casefold().replace("_", " ").replace("-", " ").replace("/", " ").split())
    if kind in _CREDIT_TYPES:
        return True
    if kind in _NOT_BILLS:
        reader.out.add(
            P.UNSUPPORTED_TYPE,
            "type",
            f"A {raw!r} cannot become a bill: {_NOT_BILLS[kind]}. Archive it in Dext.",
        )
    elif kind not in _BILL_TYPES:
        reader.out.add(
            P.UNSUPPORTED_TYPE,
            "type",
            f"Unknown document type {raw!r}; set the type in Dext to Invoice, Receipt or "
            "Credit note.",
        )
    return False


def _complete_amounts(
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


@dataclass(frozen=True)
class _Header:
    """Header fields a line falls back to when it has none of its own."""

    description: str | None
    category: str | None
    category_code: str | None
    department: str | None
    location: str | None
    project: str | None
    supplier: str | None


def _read_lines(reader: _Reader, raw_lines: list[Any], header: _Header) -> tuple[list[_Line], bool]:
    """The lines as written, and whether every one of them could be read completely."""
    lines: list[_Line] = []
    complete = True
    for i, raw in enumerate(raw_lines):
        path = f"line_items[{i}]"
        if not isinstance(raw, Mapping):
            reader.out.add(P.INVALID, path, f"Line {i + 1} is not an object with amounts.")
            complete = False
            continue
        before = len(reader.out.items)
        net = reader.amount(raw.get("net_amount"), f"{path}.net_amount", required=False)
        tax = reader.amount(raw.get("tax_amount"), f"{path}.tax_amount", required=False)
        total = reader.amount(raw.get("total_amount"), f"{path}.total_amount", required=False)
        quantity = reader.quantity(raw.get("quantity"), f"{path}.quantity")
        unit = reader.amount(raw.get("unit_price"), f"{path}.unit_price", required=False)
        rate, rate_name = reader.rate(raw.get("tax_rate"), f"{path}.tax_rate")
        net, tax, total = _complete_amounts(net, tax, total, quantity, unit, rate, reader.currency)
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
            complete = False
            continue
        if len(reader.out.items) > before:
            complete = False
        lines.append(
            _Line(
                index=i,
                description=reader.text(raw, "description", f"{path}.description")
                or header.description
                or category
                or header.supplier
                or "",
                category=category,
                category_code=code,
                quantity=quantity,
                unit_price=unit,
                net=net,
                tax=tax,
                total=total,
                tax_rate=rate,
                tax_rate_name=rate_name,
                department=reader.text(raw, "department", f"{path}.department")
                or header.department,
                location=reader.text(raw, "location", f"{path}.location") or header.location,
                project=reader.text(raw, "project", f"{path}.project") or header.project,
                extra={k: v for k, v in raw.items() if k not in _LINE_FIELDS},
            )
        )
    return lines, complete


def _check_line(line: _Line, out: P.Problems, tol: Decimal) -> None:
    n = (line.index or 0) + 1
    if abs(line.net + line.tax - line.total) > tol:
        out.add(
            P.LINE_ARITHMETIC,
            line.path,
            f"Line {n}: net {line.net} + tax {line.tax} = {line.net + line.tax}, not the line "
            f"total {line.total}; correct the line in Dext.",
        )
    if line.unit_price is not None and line.quantity != 0:
        expected = line.quantity * line.unit_price
        # A unit price is itself rounded: allow half its last digit per unit.
        exponent = line.unit_price.as_tuple().exponent
        slack = abs(line.quantity) * Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
        if abs(abs(expected) - abs(line.net)) > tol + slack / 2:
            out.add(
                P.LINE_QUANTITY_PRICE,
                line.at("unit_price"),
                f"Line {n}: quantity {line.quantity} x unit price {line.unit_price} = "
                f"{expected.normalize():f}, not the line net {line.net}; correct the "
                "quantity, unit price or net in Dext.",
            )


def _check_rate(line: _Line, out: P.Problems, tol: Decimal) -> None:
    if line.tax_rate is None:
        return
    expected = line.net * line.tax_rate / 100
    if abs(expected - line.tax) > tol:
        where = "The invoice" if line.index is None else f"Line {line.index + 1}"
        out.add(
            P.TAX_RATE_MISMATCH,
            line.at("tax_amount", "vat_amount"),
            f"{where}: tax {line.tax} is not {rate_key(line.tax_rate)}% of the net {line.net} "
            f"(that would be {expected.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}); "
            "correct the tax amount or the tax rate.",
        )


def _allocate(lines: list[_Line], net: Decimal, tax: Decimal) -> None:
    """Put the rounding difference between the header and the rounded lines on the largest
    line, so that the bill's lines add up to its header to the last minor unit."""
    if not lines:
        return
    tax_gap = tax - sum((ln.tax for ln in lines), Decimal(0))
    if tax_gap:
        target = max(lines, key=lambda ln: (abs(ln.tax), abs(ln.total)))
        target.tax += tax_gap
    net_gap = net - sum((ln.net for ln in lines), Decimal(0))
    if net_gap:
        target = max(lines, key=lambda ln: abs(ln.net))
        target.net += net_gap
    for ln in lines:
        ln.total = ln.net + ln.tax


def _unit_price(value: Decimal, currency: str) -> Decimal:
    """A unit price keeps the currency's minor unit unless that would lose a real fraction
    (0.125 per screw), in which case up to six decimals are kept."""
    rounded = round_money(value, currency)
    if rounded == value:
        return rounded
    return value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP).normalize()


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "yes": True, "y": True, "1": True}.get(
            value.strip().casefold(),
            {"false": False, "no": False, "n": False, "0": False}.get(value.strip().casefold()),
        )
    return None


def _money_text(amount: Decimal, currency: str) -> str:
    return f"{currency} {amount:,}"


def validate_item(item: Mapping[str, Any], tenant: Tenant, *, today: dt.date) -> ValidationResult:
    """Validate, normalise and GL-code one Dext item for one tenant. Pure; never raises."""
    try:
        return _validate(item, tenant, today)
    except Exception as exc:
        # A poison item must park with a reason, not crash the stage into a retry loop.
        # The tests feed arbitrary items to prove this branch is never taken.
        ident = item.get("id") if isinstance(item, Mapping) else None
        return ValidationResult(
            item=str(ident) if isinstance(ident, str | int) else None,
            ok=False,
            reason=Reason.VALIDATION,
            problems=[
                Problem(
                    code=P.INTERNAL,
                    field="",
                    message=f"billstream could not validate this item ({type(exc).__name__}); "
                    "report it to the billstream team with the item's id.",
                )
            ],
        )


def _validate(item: Mapping[str, Any], tenant: Tenant, today: dt.date) -> ValidationResult:
    out = P.Problems()
    if not isinstance(item, Mapping):
        out.add(P.INVALID, "", "The item is not a JSON object; it cannot be a Dext item.")
        return _result(None, out, P.Problems())
    r = _Reader(tenant, out)

    # 1. Read every field.
    dext_id = r.text(item, "id", "id", required="The item has no Dext id, so it cannot be tracked.")
    credit = _document_kind(r, item)
    supplier = r.text(item, "payee", "payee") or r.text(item, "supplier", "supplier")
    if supplier is None and not out.has("payee") and not out.has("supplier"):
        out.add(P.MISSING, "payee", "The supplier (payee) is missing; set the supplier in Dext.")
    elif supplier is not None and not any(c.isalnum() for c in supplier):
        out.add(P.INVALID, "payee", f"The supplier {supplier!r} is not a name; correct it in Dext.")
    number = r.text(
        item,
        "invoice_number",
        "invoice_number",
        required="The invoice number is missing; enter it in Dext (duplicates are caught by it).",
    )
    if number is not None and (
        not any(c.isalnum() for c in number) or number.casefold() in _NO_NUMBER
    ):
        out.add(
            P.MISSING,
            "invoice_number",
            f"The invoice number {number!r} is a placeholder, not a number; enter the real one "
            "in Dext (duplicates are caught by it).",
        )
        number = None
    currency = r.text(
        item, "currency", "currency", required="The currency is missing; set it in Dext."
    )
    if currency is not None:
        if currency.upper() in ISO_4217:
            currency = r.currency = currency.upper()
        else:
            out.add(
                P.INVALID_CURRENCY,
                "currency",
                f"{currency!r} is not an ISO 4217 currency code; set a three-letter code such as "
                f"{tenant.base_currency} in Dext.",
            )
            currency = None
    issued = r.date(item.get("date"), "date", required=True)
    due = r.date(item.get("due_date"), "due_date", required=False)
    total = r.amount(item.get("total_amount"), "total_amount", required=True)
    vat = r.amount(item.get("vat_amount"), "vat_amount", required=False)
    head_net = r.amount(item.get("net_amount"), "net_amount", required=False)
    base = r.text(item, "base_currency", "base_currency")
    if base is not None and base.upper() in ISO_4217 and base.upper() != tenant.base_currency:
        out.add(
            P.BASE_CURRENCY_MISMATCH,
            "base_currency",
            f"The item comes from books in {base.upper()}, but tenant {tenant.id} keeps its books "
            f"in {tenant.base_currency}; it was probably sent to the wrong tenant.",
        )
    tax_number = r.text(item, "payee_tax_number", "payee_tax_number") or r.text(
        item, "supplier_tax_number", "supplier_tax_number"
    )
    payment_method = r.text(item, "payment_method", "payment_method")
    # Sources may strip the document's location from the item and pass it beside the item
    # (adapters.dext.items): a document without a url here is normal, not a problem.
    document = document_ref(item)
    header = _Header(
        description=r.text(item, "description", "description"),
        category=r.text(item, "category", "category"),
        category_code=r.text(item, "category_code", "category_code"),
        department=r.text(item, "department", "department"),
        location=r.text(item, "location", "location"),
        project=r.text(item, "project", "project"),
        supplier=supplier,
    )
    raw_lines = item.get("line_items")
    if raw_lines is None:
        raw_lines = []
    elif not isinstance(raw_lines, list):
        out.add(P.INVALID, "line_items", "The line items must be a list of lines.")
        raw_lines = None
    lines, complete = _read_lines(r, raw_lines or [], header)
    header_rate, header_rate_name = r.rate(item.get("tax_rate"), "tax_rate")

    cur = currency or tenant.base_currency
    tol = tenant.tolerance_for(cur)
    unit = quantum(cur)

    # 2. Direction: a credit note is posted as positive amounts marked credit_note.
    tax_h = Decimal(0)
    if total is not None:
        # Sage posts in minor units: 0.001 is a bill of 0.00, as empty as a zero.
        if round_money(total, cur) == 0:
            out.add(
                P.ZERO_TOTAL,
                "total_amount",
                "The total is zero, so there is nothing to post; check the total in Dext or "
                "archive the item.",
            )
        if total < 0:
            credit = True
            total = -total
            vat = -vat if vat is not None else None
            head_net = -head_net if head_net is not None else None
            for ln in lines:
                ln.flip()
        if credit:
            # Credit notes come written every way: a positive header over negative lines,
            # or a negative total with a positive VAT figure. The total's sign is the truth.
            if vat is not None and vat < 0:
                vat = -vat
            line_sum = sum((ln.total for ln in lines), Decimal(0))
            if lines and line_sum < 0 and abs(line_sum + total) <= tol:
                for ln in lines:
                    ln.flip()
        if raw_lines == []:
            h_net, h_tax, h_total = _complete_amounts(
                head_net, vat, total, Decimal(1), None, header_rate, currency
            )
            lines = [
                _Line(
                    index=None,
                    description=header.description or header.category or supplier or "",
                    category=header.category,
                    category_code=header.category_code,
                    quantity=Decimal(1),
                    unit_price=None,
                    net=h_net if h_net is not None else total,
                    tax=h_tax if h_tax is not None else Decimal(0),
                    total=h_total if h_total is not None else total,
                    tax_rate=header_rate,
                    tax_rate_name=header_rate_name,
                    department=header.department,
                    location=header.location,
                    project=header.project,
                )
            ]
        tax_h = vat if vat is not None else sum((ln.tax for ln in lines), Decimal(0))
        _check_tax(tax_h, total, credit, out, tol)

    # 3. Arithmetic, on the amounts as written.
    if total is not None:
        if head_net is not None and abs(head_net + tax_h - total) > tol:
            out.add(
                P.HEADER_ARITHMETIC,
                "net_amount",
                f"Net {head_net} + tax {tax_h} = {head_net + tax_h}, not the total {total}; "
                "correct the amounts in Dext.",
            )
        for ln in lines:
            if ln.index is not None:
                _check_line(ln, out, tol)
            _check_rate(ln, out, tol + unit / 2)
        if raw_lines and complete:
            line_total = sum((ln.total for ln in lines), Decimal(0))
            if abs(line_total - total) > tol:
                out.add(
                    P.LINES_TOTAL,
                    "line_items",
                    f"The lines add up to {_money_text(line_total, cur)}, but the invoice total "
                    f"is {_money_text(total, cur)}; correct the lines or the total in Dext.",
                )
            line_tax = sum((ln.tax for ln in lines), Decimal(0))
            if vat is not None and abs(line_tax - vat) > tol:
                out.add(
                    P.LINES_TAX,
                    "line_items",
                    f"The lines' tax adds up to {_money_text(line_tax, cur)}, but the invoice tax "
                    f"is {_money_text(vat, cur)}; correct the lines or the tax in Dext.",
                )

    # Dates, by the tenant's policy.
    if issued is not None:
        latest = today + dt.timedelta(days=tenant.max_future_days)
        if issued > latest:
            out.add(
                P.FUTURE_DATE,
                "date",
                f"The invoice date {issued} is more than {tenant.max_future_days} days after "
                f"today ({today}){_swap_hint(issued, today, tenant)}; correct the date in Dext.",
            )
        if issued < today - dt.timedelta(days=tenant.max_invoice_age_days):
            out.add(
                P.TOO_OLD,
                "date",
                f"The invoice date {issued} is older than tenant {tenant.id}'s limit of "
                f"{tenant.max_invoice_age_days} days; check the year, or post it by hand.",
            )
        if due is not None and due < issued:
            out.add(
                P.DUE_BEFORE_DATE,
                "due_date",
                f"The due date {due} is before the invoice date {issued}; correct it in Dext.",
            )
        elif due is not None and (due - issued).days > MAX_TERMS_DAYS:
            out.add(
                P.DUE_TOO_FAR,
                "due_date",
                f"The due date {due} is more than {MAX_TERMS_DAYS} days after the invoice date "
                f"{issued}; check its year and correct it in Dext.",
            )

    # 4. The tenant's configuration.
    cfg = P.Problems()
    if currency is not None and currency not in tenant.currencies:
        cfg.add(
            P.CURRENCY_MISMATCH,
            "currency",
            f"{currency} is not enabled for tenant {tenant.id} (Sage company "
            f"{tenant.ledger.company}); enabled: {', '.join(tenant.currencies)}. Enable "
            f"{currency} for the company and add it to the tenant's currencies, or correct "
            "the item's currency.",
        )
    rule = tenant.supplier_rule(supplier) if supplier else None
    coded = _code(lines, tenant, rule, out, cfg, tol + unit / 2)

    if out or cfg:
        return _result(dext_id, out, cfg)
    assert dext_id and supplier and number and issued and currency and total is not None

    # 5. Round, balance, and build.
    total_r = round_money(total, currency)
    tax_r = round_money(tax_h, currency)
    for ln in lines:
        ln.net, ln.tax = round_money(ln.net, currency), round_money(ln.tax, currency)
        ln.total = ln.net + ln.tax
    _allocate(lines, total_r - tax_r, tax_r)
    due_date, _ = resolve_due_date(
        due,
        issued,
        supplier_terms_days=rule.terms_days if rule else None,
        default_terms_days=tenant.default_terms_days,
    )
    invoice_lines: list[InvoiceLine] = []
    bill_lines: list[BillLine] = []
    for ln, (account, tax_code, rate) in zip(lines, coded, strict=True):
        quantity = abs(ln.quantity)
        if ln.unit_price is not None:
            price = abs(ln.unit_price) if ln.net >= 0 else -abs(ln.unit_price)
        else:
            price = ln.net / quantity
        price = _unit_price(price, currency)
        invoice_lines.append(
            InvoiceLine(
                description=ln.description,
                category=ln.category,
                category_code=ln.category_code,
                quantity=quantity,
                unit_price=price,
                net=ln.net,
                tax=ln.tax,
                total=ln.total,
                tax_rate=ln.tax_rate,
                extra=ln.extra,
            )
        )
        assert account is not None  # every uncoded line was reported as a problem
        bill_lines.append(
            BillLine(
                description=ln.description,
                gl_account=account,
                quantity=quantity,
                unit_price=price,
                net=ln.net,
                tax=ln.tax,
                total=ln.total,
                tax_code=tax_code,
                tax_rate=rate,
                dimensions=dimensions_for(
                    rule, department=ln.department, location=ln.location, project=ln.project
                ),
            )
        )
    invoice = Invoice(
        dext_id=dext_id,
        supplier=supplier,
        supplier_tax_number=tax_number,
        number=number,
        date=issued,
        due_date=due_date,
        currency=currency,
        net=total_r - tax_r,
        tax=tax_r,
        total=total_r,
        credit_note=credit,
        description=header.description,
        category=header.category,
        payment_method=payment_method,
        paid=_flag(item.get("paid")),
        lines=invoice_lines,
        document=document,
        extra={k: v for k, v in item.items() if k not in KNOWN_FIELDS},
    )
    bill = DraftBill(
        item_key=item_key(tenant.id, dext_id),
        vendor_name=supplier,
        vendor_match_key=vendor_match_key(supplier),
        vendor_tax_number=invoice.supplier_tax_number,
        number=number,
        date=issued,
        due_date=due_date,
        currency=currency,
        credit_note=credit,
        net=invoice.net,
        tax=invoice.tax,
        total=invoice.total,
        memo=header.description,
        lines=bill_lines,
    )
    return ValidationResult(item=dext_id, ok=True, invoice=invoice, bill=bill)


def _check_tax(tax: Decimal, total: Decimal, credit: bool, out: P.Problems, tol: Decimal) -> None:
    """Tax is part of the total: never more than it, never below zero (a credit note's amounts
    are already turned positive here, so a negative tax is wrong on either kind)."""
    if tax > total + tol:
        out.add(
            P.TAX_EXCEEDS_TOTAL,
            "vat_amount",
            f"The tax {tax} is more than the total {total}; correct the tax or the total in Dext.",
        )
    if tax < -tol:
        kind = "a credit note" if credit else "an invoice"
        out.add(
            P.NEGATIVE_TAX,
            "vat_amount",
            f"The tax {tax} is below zero on {kind}; correct its sign in Dext (a refund is "
            "a credit note).",
        )


def _result(dext_id: str | None, out: P.Problems, cfg: P.Problems) -> ValidationResult:
    found = out.items + cfg.items
    return ValidationResult(item=dext_id, ok=False, reason=P.reason_of(found), problems=found)


def _swap_hint(issued: dt.date, today: dt.date, tenant: Tenant) -> str:
    """Day and month read the wrong way round is the usual cause of a future date."""
    if issued.day > 12 or issued.day == issued.month:
        return ""
    try:
        swapped = issued.replace(month=issued.day, day=issued.month)
    except ValueError:
        return ""
    if today - dt.timedelta(days=tenant.max_invoice_age_days) <= swapped <= today:
        return f" (was it {swapped}, with day and month the other way round?)"
    return ""


def _code(
    lines: list[_Line],
    tenant: Tenant,
    rule: SupplierRule | None,
    out: P.Problems,
    cfg: P.Problems,
    rate_tolerance: Decimal,
) -> list[tuple[str | None, str | None, Decimal | None]]:
    """GL account, tax code and tax rate per line. Unmapped categories and rates are reported
    once each, naming the lines they appear on, however many lines share them."""
    coded: list[tuple[str | None, str | None, Decimal | None]] = []
    no_category: list[_Line] = []
    unmapped: dict[str, list[_Line]] = {}
    unmapped_rates: dict[str, list[_Line]] = {}
    for ln in lines:
        account = rule.gl_account if rule and rule.gl_account else None
        if account is None:
            account = gl_account_for(tenant, category=ln.category, code=ln.category_code)
        if account is None:
            shown = ln.category or ln.category_code
            if shown is None:
                no_category.append(ln)
            else:
                unmapped.setdefault(shown.casefold(), []).append(ln)
        rate = ln.tax_rate
        tax_code: str | None = None
        if rule and rule.tax_code:
            tax_code = rule.tax_code
        elif ln.tax_rate_name is not None:
            tax_code = tax_code_for_name(tenant, ln.tax_rate_name)
            if tax_code is None and tenant.tax_codes:
                unmapped_rates.setdefault(ln.tax_rate_name.casefold(), []).append(ln)
        elif ln.tax_rate is not None:
            tax_code = tax_code_for_rate(tenant, ln.tax_rate)
            if tax_code is None and tenant.tax_codes:
                unmapped_rates.setdefault(rate_key(ln.tax_rate), []).append(ln)
        else:
            rate = infer_rate(tenant, ln.net, ln.tax, rate_tolerance)
            tax_code = tax_code_for_rate(tenant, rate) if rate is not None else None
        coded.append((account, tax_code, rate))
    if no_category:
        first = no_category[0]
        out.add(
            P.MISSING,
            first.at("category", "category"),
            f"{_where(no_category).capitalize()} "
            f"{'have' if len(no_category) > 1 else 'has'} no category, so it cannot be coded "
            "to a GL account; choose a category in Dext.",
        )
    for group in unmapped.values():
        first = group[0]
        shown = first.category or first.category_code
        cfg.add(
            P.MAPPING_MISSING,
            first.at("category", "category"),
            f"Category {shown!r} ({_where(group)}) has no GL account for tenant {tenant.id}; "
            f"add it under [tenants.{tenant.id}.gl_accounts] or pick a mapped category in Dext.",
        )
    for key, group in unmapped_rates.items():
        first = group[0]
        shown = first.tax_rate_name or f"{key}%"
        cfg.add(
            P.MAPPING_MISSING,
            first.at("tax_rate"),
            f"Tax rate {shown} ({_where(group)}) has no tax code for tenant {tenant.id}; add "
            f'"{first.tax_rate_name or key}" = "<tax code>" under [tenants.{tenant.id}.tax_codes].',
        )
    return coded


def _where(lines: list[_Line]) -> str:
    numbers = [str(ln.index + 1) for ln in lines if ln.index is not None]
    if not numbers:
        return "the invoice"
    return f"line {numbers[0]}" if len(numbers) == 1 else f"lines {', '.join(numbers)}"
