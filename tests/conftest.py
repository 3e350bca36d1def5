"""Shared fixtures: a tenant, items, a ports bundle over the local ledger."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.documents import DocumentFetcher
from adapters.sqlite_ledger import LocalLedger
from domain.tenants import Tenants, parse_tenants
from sandboxes.dext.samples import DOCUMENTS_DIR
from streams.config import Settings
from streams.kafka import aiokafka_patches
from streams.pipeline.wiring import Ports

# The tests' Kafka consumers (Faust apps, the Dext cursor, the event log readers) run in
# this process, not behind an entry point: give them the empty-fetch wait too.
aiokafka_patches.apply()

TODAY = dt.date(2026, 11, 27)

TENANTS_TOML = """
[tenants.t1]
name = "Test One Ltd"
locale = "en-GB"
base_currency = "GBP"
currencies = ["GBP", "EUR"]
auto_create_vendors = true

[tenants.t1.ledger]
kind = "local"
company = "t1"

[tenants.t1.gl_accounts]
"Office Supplies" = "7500"
"Travel" = "7400"

[tenants.t1.tax_codes]
"20" = "S20"
"0" = "Z0"

[tenants.t2]
base_currency = "USD"
currencies = ["USD"]
auto_create_vendors = false
closed_period = "redate"

[tenants.t2.ledger]
kind = "local"
company = "t2"

[tenants.t2.gl_accounts]
"Office Supplies" = "6100"
"""


def dext_item(**over: Any) -> dict[str, Any]:
    """A valid Dext item for tenant t1, amounts as strings (as domain.dext reads them)."""
    item: dict[str, Any] = {
        "id": "DX-1",
        "type": "invoice",
        "payee": "Viking Direct Ltd",
        "invoice_number": "INV-1",
        "date": "2026-10-15",
        "due_date": "2026-11-14",
        "currency": "GBP",
        "total_amount": "120.00",
        "vat_amount": "20.00",
        "category": "Office Supplies",
        "line_items": [
            {
                "description": "Paper",
                "category": "Office Supplies",
                "quantity": "2",
                "unit_price": "50.00",
                "net_amount": "100.00",
                "tax_amount": "20.00",
                "total_amount": "120.00",
                "tax_rate": "20",
            },
        ],
        "document": {
            "url": (DOCUMENTS_DIR / "DX-100001.pdf").as_uri(),
            "filename": "DX-100001.pdf",
            "content_type": "application/pdf",
        },
    }
    item.update(over)
    return item


@pytest.fixture
def tenants() -> Tenants:
    return parse_tenants(TENANTS_TOML, "test-tenants.toml")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        tenants_file=tmp_path / "tenants.toml",
        retry_attempts=3,
        retry_max_seconds=0.05,
        metrics_port=-1,
    )


@pytest.fixture
async def ports(settings: Settings, tenants: Tenants) -> AsyncIterator[Ports]:
    ports = Ports(
        settings=settings,
        tenants=tenants,
        documents=DocumentFetcher(allowed_dirs=[DOCUMENTS_DIR]),
        clock=lambda: TODAY,
    )
    yield ports
    await ports.aclose()


def ledger_of(ports: Ports, tenant: str) -> LocalLedger:
    ledger = ports.ledger(tenant)
    assert isinstance(ledger, LocalLedger)
    return ledger
