"""Reading Dext CSV exports: lenient headers, exact amounts, safe dates, bad rows by line."""

from __future__ import annotations

import pytest

from adapters.dext.csv_export import RowError, derived_id, iso_date, parse_csv
from domain.tenants import Tenant
from tests.support import make_tenants

TENANTS = make_tenants()
UK = TENANTS.get("acme-uk")
US = TENANTS.get("globex-us")
NO_LOCALE = TENANTS.get("initech")


def test_a_typical_export_becomes_items_with_exact_amounts() -> None:
    data = (
        b"Date,Supplier,Invoice Number/Reference,Category,Total,Tax,Currency,Description,"
        b"Payment Method,Paid,Image Name,Owner\n"
        b'07/08/2026,Viking Direct Ltd,VD-1,Office Supplies,"1,957.15",312.49,gbp,Paper,'
        b"Bank Transfer,No,VD-1.pdf,Jo\n"
    )
    parsed = parse_csv(data, UK.conventions.date_order)
    assert parsed.problems == []
    assert parsed.ignored_columns == ["Owner"]
    (row,) = parsed.rows
    assert row.line == 2
    assert row.item == {
        "id": row.item["id"],
        "date": "2026-08-07",
        "payee": "Viking Direct Ltd",
        "invoice_number": "VD-1",
        "category": "Office Supplies",
        "total_amount": "1,957.15",
        "vat_amount": "312.49",
        "currency": "GBP",
        "description": "Paper",
        "payment_method": "Bank Transfer",
        "paid": False,
        "document": {"filename": "VD-1.pdf", "content_type": "application/pdf"},
    }
    assert row.item["id"].startswith("csv-")
    assert all(not isinstance(v, float) for v in row.item.values())


def test_header_names_are_matched_leniently_and_semicolons_are_fine() -> None:
    data = (
        "\ufeffITEM ID;supplier_name;Invoice No.;TOTAL AMOUNT;vat amount;Currency Code;"
        "Document Type;Due date;Nominal code\n"
        "DX-9;Acme;A-1;10.00;2.00;EUR;Credit Note;2026-09-01;7500\n"
    ).encode()
    (row,) = parse_csv(data, UK.conventions.date_order).rows
    assert row.item == {
        "id": "DX-9",
        "payee": "Acme",
        "invoice_number": "A-1",
        "total_amount": "10.00",
        "vat_amount": "2.00",
        "currency": "EUR",
        "type": "credit_note",
        "due_date": "2026-09-01",
        "category_code": "7500",
    }


def test_bad_rows_are_reported_with_their_line_and_the_rest_go_through() -> None:
    data = (
        b"ID,Date,Supplier,Total,Paid,Description\n"
        b"DX-1,2026-08-01,Good One,10.00,yes,fine\n"
        b'DX-2,2026-08-02,"Multi\nLine Ltd",11.00,no,"spans\ntwo lines"\n'
        b"DX-3,31/02/2026,Bad Date,12.00,no,x\n"
        b"DX-4,2026-08-04,Too Many,13.00,no,x,surplus\n"
        b"DX-5,2026-08-05,Bad Paid,14.00,maybe,x\n"
        b",,,,,\n"
        b"DX-6,2026-08-06,Good Two,15.00,,\n"
        b"DX-7,2026-08-07\n"
    )
    parsed = parse_csv(data, UK.conventions.date_order)
    assert [r.item["id"] for r in parsed.rows] == ["DX-1", "DX-2", "DX-6"]
    # DX-2 spans lines 3-5 (two quoted line breaks): later rows keep their real line numbers.
    assert [r.line for r in parsed.rows] == [2, 3, 10]
    assert parsed.rows[1].item["payee"] == "Multi\nLine Ltd"
    assert parsed.rows[2].item["paid"] is None
    problems = dict(parsed.problems)
    assert set(problems) == {6, 7, 8, 11}
    assert "not a real date" in problems[6]
    assert "7 fields, the header 6" in problems[7]
    assert "Paid is 'maybe'" in problems[8]
    assert "2 fields, the header 6" in problems[11]


def test_a_file_that_is_not_a_dext_export_is_one_problem() -> None:
    parsed = parse_csv(b"name,email\nJo,jo@example.com\n", UK.conventions.date_order)
    assert parsed.rows == []
    assert parsed.problems == [
        (1, "not a Dext CSV export: no Supplier or Total column (found: name, email)")
    ]


@pytest.mark.parametrize(
    ("text", "tenant", "expected"),
    [
        ("2026-08-07", NO_LOCALE, "2026-08-07"),
        ("2026-08-07T00:00:00Z", NO_LOCALE, "2026-08-07"),
        ("07/08/2026", UK, "2026-08-07"),
        ("07/08/2026", US, "2026-07-08"),
        ("31/08/2026", NO_LOCALE, "2026-08-31"),
        ("08/31/2026", NO_LOCALE, "2026-08-31"),
        ("7 Aug 2026", NO_LOCALE, "2026-08-07"),
        ("Aug 7, 2026", NO_LOCALE, "2026-08-07"),
    ],
)
def test_dates_follow_the_tenant(text: str, tenant: Tenant, expected: str) -> None:
    assert iso_date(text, tenant.conventions.date_order) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("03/04/2026", "could be"),
        ("13/13/2026", "not a real date"),
        ("soon", "not a date"),
    ],
)
def test_dates_that_are_not_guessed(text: str, why: str) -> None:
    with pytest.raises(RowError, match=why):
        iso_date(text, NO_LOCALE.conventions.date_order)


def test_ambiguous_date_without_locale_is_a_bad_row() -> None:
    parsed = parse_csv(
        b"Supplier,Date,Total\nAcme,03/04/2026,1.00\n", NO_LOCALE.conventions.date_order
    )
    assert parsed.rows == []
    assert parsed.problems[0][0] == 2
    assert "tenant's locale" in parsed.problems[0][1]


def test_derived_ids_are_stable_and_tell_items_apart() -> None:
    item = {"payee": "A", "invoice_number": "1", "date": "2026-01-01", "total_amount": "5"}
    assert derived_id(item) == derived_id(dict(item))
    assert derived_id(item) != derived_id({**item, "invoice_number": "2"})
