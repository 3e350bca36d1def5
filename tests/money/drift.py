"""Money drift: generated invoices whose bills must add up to the invoice to the minor unit.

Currencies with 0, 2 and 3 decimals (JPY, GBP, BHD); tax added to the net or included in
the line total; 1 to 50 lines with quantities and unit prices finer than the currency;
credit notes written negative. Every amount is text, as Dext sends it. The checks: the bill
validates, its lines' net, tax and total sum to the bill's, each amount has no more decimals
than the currency allows, the lines' totals equal the invoice total as written (rounded once),
and no float is anywhere in the item, the bill, or what a ledger stored.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from domain.models import DraftBill
from domain.tenants import Tenant, parse_tenants

DECIMALS = {"JPY": 0, "GBP": 2, "BHD": 3}
RATES = ["0", "5", "10", "17.5", "20"]

TENANT_TOML = """
[tenants.drift]
name = "Drift Testing Ltd"
locale = "en-GB"
base_currency = "GBP"
currencies = ["GBP", "JPY", "BHD"]
auto_create_vendors = true
max_invoice_age_days = 3650

[tenants.drift.ledger]
kind = "local"
company = "drift"

[tenants.drift.gl_accounts]
"Office Supplies" = "7500"

[tenants.drift.tax_codes]
"0" = "Z0"
"5" = "R5"
"10" = "R10"
"17.5" = "S175"
"20" = "S20"
"""


def drift_tenant() -> Tenant:
    return parse_tenants(TENANT_TOML).get("drift")


def _q(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def invoice(rng: random.Random, n: int) -> dict[str, Any]:
    """One generated Dext item; its amounts add up by construction, as a supplier's would."""
    currency = rng.choice(sorted(DECIMALS))
    places = DECIMALS[currency]
    inclusive = rng.random() < 0.5
    credit = rng.random() < 0.15
    lines = []
    for i in range(rng.randint(1, 50)):
        rate = Decimal(rng.choice(RATES))
        quantity = Decimal(rng.choice(["1", "2", "3", "0.5", "1.25", "12"]))
        price = Decimal(rng.randint(1, 2_000_000)).scaleb(-(places + rng.randint(0, 2)))
        if inclusive:
            total = _q(quantity * price, places)
            net = _q(total * 100 / (100 + rate), places)
            tax = total - net
        else:
            net = _q(quantity * price, places)
            tax = _q(net * rate / 100, places)
            total = net + tax
        if total == 0:
            total = net = Decimal(1).scaleb(-places)
            tax = Decimal(0)
            rate = Decimal(0)
        lines.append(
            {
                "description": f"line {i + 1}",
                "category": "Office Supplies",
                "quantity": str(quantity),
                "net_amount": str(net),
                "tax_amount": str(tax),
                "total_amount": str(total),
                "tax_rate": str(rate),
            }
        )
    total = sum((Decimal(ln["total_amount"]) for ln in lines), Decimal(0))
    tax = sum((Decimal(ln["tax_amount"]) for ln in lines), Decimal(0))
    sign = -1 if credit else 1
    return {
        "id": f"DRIFT-{n:06d}",
        "type": "credit_note" if credit and rng.random() < 0.5 else "invoice",
        "payee": f"Supplier {n % 97}",
        "invoice_number": f"D-{n:06d}",
        "date": "2026-10-15",
        "due_date": "2026-11-14",
        "currency": currency,
        "total_amount": str(sign * total),
        "vat_amount": str(sign * tax),
        "category": "Office Supplies",
        "line_items": lines,
    }


def invoices(count: int, seed: int = 5) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for n in range(count):
        yield invoice(rng, n)


def floats_in(value: Any, path: str = "") -> list[str]:
    """Where a float hides in nested data (models dumped in python mode, rows, items)."""
    if isinstance(value, float):
        return [path or "."]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in floats_in(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in floats_in(v, f"{path}[{i}]")]
    return []


def drift_of(item: Mapping[str, Any], bill: DraftBill) -> list[str]:
    """Every way the bill fails to add up to the item (empty when it adds up)."""
    places = DECIMALS[bill.currency]
    problems = []
    written = abs(Decimal(str(item["total_amount"])))
    if bill.total != _q(written, places):
        problems.append(f"bill total {bill.total} is not the invoice total {written}")
    for name in ("net", "tax", "total"):
        lines = sum((getattr(ln, name) for ln in bill.lines), Decimal(0))
        if lines != getattr(bill, name):
            problems.append(f"lines' {name} {lines} != bill {name} {getattr(bill, name)}")
    if bill.net + bill.tax != bill.total:
        problems.append(f"net {bill.net} + tax {bill.tax} != total {bill.total}")
    for ln in bill.lines:
        for name in ("net", "tax", "total"):
            value: Decimal = getattr(ln, name)
            if value.as_tuple().exponent < -places:  # type: ignore[operator]
                problems.append(f"a line's {name} {value} has more than {places} decimals")
    floats = floats_in(bill.model_dump(mode="python"))
    if floats:
        problems.append(f"floats in the bill at {floats[:3]}")
    return problems
