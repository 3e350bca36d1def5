"""Shared fixtures of the domain unit tests: the example tenants and a valid item to bend."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from domain.tenants import Tenant, Tenants, load_tenants

REPO = Path(__file__).resolve().parents[2]
TENANTS_FILE = REPO / "tenants.example.toml"
SAMPLES = REPO / "sandboxes" / "dext" / "samples" / "items"
TODAY = dt.date(2026, 11, 27)  # the day the sample set is built around

# A two-line UK invoice that validates cleanly for acme-uk; tests change what they need.
BASE_ITEM: dict[str, Any] = {
    "id": "DX-900001",
    "type": "invoice",
    "payee": "Viking Direct Ltd",
    "payee_tax_number": "GB221334455",
    "invoice_number": "VD-1001",
    "date": "2026-10-01",
    "due_date": "2026-10-31",
    "currency": "GBP",
    "total_amount": "180.00",
    "vat_amount": "30.00",
    "category": "Office Supplies",
    "category_code": "7500",
    "description": "Stationery",
    "payment_method": "Bank Transfer",
    "paid": False,
    "base_currency": "GBP",
    "line_items": [
        {
            "description": "Copier paper",
            "category": "Office Supplies",
            "quantity": "2",
            "unit_price": "50.00",
            "net_amount": "100.00",
            "tax_amount": "20.00",
            "total_amount": "120.00",
            "tax_rate": "20",
        },
        {
            "description": "Toner",
            "category": "Office Supplies",
            "quantity": "1",
            "unit_price": "50.00",
            "net_amount": "50.00",
            "tax_amount": "10.00",
            "total_amount": "60.00",
            "tax_rate": "20",
        },
    ],
    "document": {"url": "documents/DX-900001.pdf", "filename": "DX-900001.pdf"},
}


def make_item(**overrides: Any) -> dict[str, Any]:
    """A deep copy of ``BASE_ITEM``; ``None`` as a value removes the key."""
    item = copy.deepcopy(BASE_ITEM)
    for key, value in overrides.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item


# Named apart from tests/conftest.py's ``tenants`` fixture, which other unit tests rely on.
@pytest.fixture(scope="session")
def example_tenants() -> Tenants:
    return load_tenants(TENANTS_FILE)


@pytest.fixture(scope="session")
def acme(example_tenants: Tenants) -> Tenant:
    return example_tenants.get("acme-uk")


@pytest.fixture(scope="session")
def globex(example_tenants: Tenants) -> Tenant:
    return example_tenants.get("globex-us")


# Unit tests start no process and open no network socket: the tier keeps its promise.
from tests.tiers import no_socket_or_process  # noqa: E402, F401
