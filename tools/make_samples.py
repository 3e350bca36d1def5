"""Generate the sample Dext items and their PDFs (deterministic; run from the repo root).

    .venv/bin/python tools/make_samples.py

Writes sandboxes/dext/samples/items/*.json and sandboxes/dext/samples/documents/*.pdf.
The set is realistic on purpose: multi-line invoices, three currencies, VAT/sales tax,
credit notes, and a handful of bad items that must fail with a clear reason.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from fpdf import FPDF

ROOT = Path(__file__).resolve().parent.parent / "sandboxes" / "dext" / "samples"
CENT = Decimal("0.01")
TENANT_OF: dict[str, str] = {}

UK = {
    "tenant": "acme-uk",
    "client": "Acme Trading Ltd",
    "suppliers": [
        ("Viking Direct Ltd", "GBP", "Office Supplies", "7500", 20, "GB221334455"),
        ("Adobe Systems Software Ireland Ltd", "EUR", "Software Subscriptions", "7600", 23, None),
        ("Trainline.com Ltd", "GBP", "Travel", "7400", 0, None),
        ("British Gas Business", "GBP", "Utilities", "7200", 5, "GB100200300"),
        ("Smith & Jones Accountants LLP", "GBP", "Professional Fees", "7700", 20, None),
        ("Amazon Web Services EMEA SARL", "USD", "Software Subscriptions", "7600", 0, None),
        ("BT Business", "GBP", "Telephone and Internet", "7502", 20, "GB245719348"),
        ("Screwfix Direct Ltd", "GBP", "Repairs and Maintenance", "7800", 20, None),
        ("WeWork UK Ltd", "GBP", "Rent", "7100", 20, None),
        ("Müller Büromaschinen GmbH", "EUR", "Office Supplies", "7500", 19, "DE811569869"),
        ("O'Brien Catering Ltd", "GBP", "Cost of Sales", "5000", 20, None),
        ('Brown "The Printer" & Co', "GBP", "Advertising", "6100", 20, None),
    ],
}
US = {
    "tenant": "globex-us",
    "client": "Globex Corporation",
    "suppliers": [
        ("Staples, Inc.", "USD", "Office Supplies", "6100", 8, None),
        ("Comcast Business", "USD", "Telephone and Internet", "6320", 0, None),
        ("Delta Air Lines, Inc.", "USD", "Travel", "6400", 0, None),
        ("Acme Janitorial LLC", "USD", "Repairs and Maintenance", "6500", 0, None),
        ("Salesforce, Inc.", "USD", "Software Subscriptions", "6210", 0, None),
        ("AT&T Corp.", "USD", "Telephone and Internet", "6320", 0, None),
        ("Uline <Shipping Supplies>", "USD", "Cost of Sales", "5000", 7, None),
        ("Baker McKenzie LLP", "USD", "Professional Fees", "6700", 0, None),
    ],
}
LINE_WORDS = {
    "Office Supplies": ["A4 copier paper (box)", "Toner cartridge", "Desk organiser", "Pens (50)"],
    "Software Subscriptions": ["Annual licence", "Seat add-on", "Storage tier", "Support plan"],
    "Travel": ["Rail ticket", "Return fare", "Seat reservation", "Booking fee"],
    "Utilities": ["Electricity", "Gas", "Standing charge", "Climate change levy"],
    "Professional Fees": ["Year-end accounts", "Payroll bureau", "Tax advice", "Bookkeeping"],
    "Telephone and Internet": ["Broadband", "Mobile plan", "Line rental", "Call charges"],
    "Repairs and Maintenance": ["Plumbing parts", "Cleaning service", "Light fittings", "Labour"],
    "Rent": ["Office membership", "Meeting room hours", "Locker", "Mail handling"],
    "Cost of Sales": ["Catering for event", "Packaging", "Stock items", "Delivery"],
    "Advertising": ["Flyers (1000)", "Poster print", "Design fee", "Banner"],
}


def q(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def initials(name: str) -> str:
    return "".join(w[0] for w in name.split()[:2]).upper()


def make_item(rng: random.Random, n: int, book: dict, day: dt.date, **over: object) -> dict:
    TENANT_OF[f"DX-{100000 + n}"] = book["tenant"]
    name, currency, category, code, rate, vat_no = rng.choice(book["suppliers"])
    nlines = rng.choice([1, 1, 2, 3, 4])
    lines = []
    for i in range(nlines):
        qty = Decimal(rng.choice([1, 1, 2, 3, 5, 10]))
        unit = q(Decimal(rng.randint(250, 90000)) / 100)
        net = q(qty * unit)
        tax = q(net * Decimal(rate) / 100)
        lines.append(
            {
                "description": LINE_WORDS[category][i % 4],
                "category": category,
                "quantity": str(qty),
                "unit_price": str(unit),
                "net_amount": str(net),
                "tax_amount": str(tax),
                "total_amount": str(net + tax),
                "tax_rate": str(rate),
            }
        )
    net = sum(Decimal(ln["net_amount"]) for ln in lines)
    tax = sum(Decimal(ln["tax_amount"]) for ln in lines)
    item_id = f"DX-{100000 + n}"
    item = {
        "id": item_id,
        "type": "invoice",
        "status": "ready",
        "client": book["client"],
        "payee": name,
        "payee_tax_number": vat_no,
        "invoice_number": f"{initials(name)}-{rng.randint(1000, 99999)}",
        "date": day.isoformat(),
        "due_date": (day + dt.timedelta(days=rng.choice([14, 30, 30, 60]))).isoformat(),
        "currency": currency,
        "total_amount": str(net + tax),
        "vat_amount": str(tax),
        "category": category,
        "category_code": code,
        "description": f"{LINE_WORDS[category][0]} and related items",
        "payment_method": rng.choice(["Bank Transfer", "Direct Debit", "Credit Card"]),
        "paid": False,
        "base_currency": "GBP" if book is UK else "USD",
        "line_items": lines,
        "document": {
            "url": f"documents/{item_id}.pdf",
            "filename": f"{item_id}.pdf",
            "content_type": "application/pdf",
        },
    }
    item.update(over)
    return item


def pdf_for(item: dict) -> bytes:
    pdf = FPDF(format=(148, 210))
    pdf.set_creation_date(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    pdf.set_compression(True)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    credit = item["type"] == "credit_note"
    pdf.cell(0, 8, ("CREDIT NOTE" if credit else "INVOICE"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    for label, key in [
        ("Supplier", "payee"),
        ("VAT/Tax no", "payee_tax_number"),
        ("Invoice no", "invoice_number"),
        ("Date", "date"),
        ("Due", "due_date"),
        ("Bill to", "client"),
    ]:
        pdf.cell(0, 5, f"{label}: {item.get(key) or '-'}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for ln in item.get("line_items") or []:
        text = (
            f"{ln['quantity']} x {ln['description']} @ {ln['unit_price']}  "
            f"net {ln['net_amount']}  tax {ln['tax_amount']}  total {ln['total_amount']}"
        )
        pdf.cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(
        0,
        6,
        f"Tax {item.get('vat_amount')}   Total {item.get('currency')} {item.get('total_amount')}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    return bytes(pdf.output())


def main() -> None:
    rng = random.Random(20261127)
    items: list[dict] = []
    start = dt.date(2026, 8, 3)
    n = 1
    for book, count in ((UK, 36), (US, 22)):
        for _ in range(count):
            day = start + dt.timedelta(days=rng.randint(0, 105))
            items.append(make_item(rng, n, book, day))
            n += 1
    # Credit notes: negative totals in one, type "credit_note" with positive amounts in the other.
    uk_credit = make_item(rng, n, UK, dt.date(2026, 10, 14), type="credit_note")
    n += 1
    us_credit = make_item(rng, n, US, dt.date(2026, 9, 22))
    us_credit["type"] = "credit_note"
    us_credit["total_amount"] = "-" + us_credit["total_amount"]
    us_credit["vat_amount"] = "-" + us_credit["vat_amount"]
    for ln in us_credit["line_items"]:
        for k in ("net_amount", "tax_amount", "total_amount"):
            ln[k] = "-" + ln[k]
    n += 1
    items += [uk_credit, us_credit]
    # A big multi-line invoice with a thousands separator in the header amounts.
    big = make_item(rng, n, UK, dt.date(2026, 11, 2))
    big["total_amount"] = f"{Decimal(big['total_amount']):,}"
    items.append(big)
    n += 1

    # The bad ones, each failing for one clear reason.
    bad: list[dict] = []
    b = make_item(rng, n, UK, dt.date(2026, 10, 1), invoice_number=None)
    b["_expect"] = "validation: missing invoice number"
    bad.append(b)
    n += 1
    b = make_item(rng, n, UK, dt.date(2026, 10, 2))
    b["line_items"][0]["total_amount"] = str(Decimal(b["line_items"][0]["total_amount"]) + 10)
    b["_expect"] = "validation: line does not add up"
    bad.append(b)
    n += 1
    b = make_item(rng, n, US, dt.date(2026, 10, 5), currency="XYZ")
    b["_expect"] = "validation: not an ISO 4217 currency"
    bad.append(b)
    n += 1
    b = make_item(rng, n, UK, dt.date(2026, 10, 6), currency="JPY")
    b["_expect"] = "currency_mismatch: JPY not enabled for acme-uk"
    bad.append(b)
    n += 1
    b = make_item(rng, n, US, dt.date(2026, 10, 7))
    for ln in b["line_items"]:
        ln["category"] = "Entertainment"
    b["category"], b["category_code"] = "Entertainment", None
    b["_expect"] = "mapping_missing: category Entertainment has no GL account"
    bad.append(b)
    n += 1
    b = make_item(rng, n, UK, dt.date(2026, 10, 8), date=None)
    b["_expect"] = "validation: missing date"
    bad.append(b)
    n += 1
    b = make_item(rng, n, US, dt.date(2026, 10, 9), total_amount="N/A")
    b["_expect"] = "validation: total is not an amount"
    bad.append(b)
    n += 1
    twin = dict(items[3])
    twin.update(id=f"DX-{100000 + n}", document=dict(items[3]["document"]))
    TENANT_OF[twin["id"]] = TENANT_OF[items[3]["id"]]
    twin["_expect"] = f"duplicate: same supplier and invoice number as {items[3]['id']}"
    bad.append(twin)
    n += 1
    items += bad

    shutil.rmtree(ROOT / "items", ignore_errors=True)
    shutil.rmtree(ROOT / "documents", ignore_errors=True)
    for tenant in (UK["tenant"], US["tenant"]):
        (ROOT / "items" / tenant).mkdir(parents=True)
    (ROOT / "documents").mkdir(parents=True)
    for item in items:
        (ROOT / "items" / TENANT_OF[item["id"]] / f"{item['id']}.json").write_text(
            json.dumps(item, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        doc = ROOT / item["document"]["url"]
        if not doc.exists():
            doc.write_bytes(pdf_for(item))
    print(
        f"{len(items)} items ({len(bad)} bad) and {len(list((ROOT / 'documents').iterdir()))} PDFs"
    )


if __name__ == "__main__":
    main()
