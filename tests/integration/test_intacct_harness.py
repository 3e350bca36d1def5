"""The demo's Intacct harness: sandbox in its own process, one company per tenant."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from adapters.intacct.ledger import IntacctLedger
from domain.models import Document
from domain.tenants import parse_tenants
from sandboxes.harness import ItemInventory, harness_for
from sandboxes.intacct.harness import IntacctHarness
from tests.contract.ledger_contract import PDF, draft

TENANTS = """
[tenants.acme-uk]
base_currency = "GBP"
currencies = ["GBP"]
[tenants.acme-uk.ledger]
kind = "local"
company = "acme-uk"

[tenants.globex-us]
base_currency = "USD"
currencies = ["USD"]
[tenants.globex-us.ledger]
kind = "local"
company = "globex-us"
"""


async def test_harness_starts_inventories_and_stops(tmp_path: Path) -> None:
    tenants = parse_tenants(TENANTS)
    harness = harness_for("intacct")
    assert isinstance(harness, IntacctHarness)
    harness.start(tmp_path, tenants)
    process = harness.process
    assert process is not None and process.proc is not None
    try:
        env = harness.env()
        acme, globex = tenants.get("acme-uk"), tenants.get("globex-us")
        for tenant in (acme, globex):
            config = harness.ledger_config(tenant)
            assert config.kind == "intacct"
            assert config.company == tenant.ledger.company
            assert config.url is not None and config.url.startswith("http://127.0.0.1:")
            assert config.credentials_env is not None
            assert f"{config.credentials_env}_SENDER_PASSWORD" in env
        ledger = IntacctLedger.from_tenant(
            acme.model_copy(update={"ledger": harness.ledger_config(acme)}), env
        )
        try:
            vendor = await ledger.create_vendor("Harness & Co")
            bill = await ledger.create_draft_bill(
                vendor, draft(vendor.name, "H-1", key="acme-uk:DX-1")
            )
            await ledger.create_draft_bill(vendor, draft(vendor.name, "H-2", key="acme-uk:DX-2"))
            await ledger.attach_document(bill, Document.of("H-1.pdf", "application/pdf", PDF))
            assert harness.inventory(acme) == {
                "acme-uk:DX-1": ItemInventory(bills=1, attachments=1),
                "acme-uk:DX-2": ItemInventory(bills=1, attachments=0),
            }
            assert harness.inventory(globex) == {}

            harness.close_period(acme, "2026-03")
            assert not await ledger.period_is_open(dt.date(2026, 3, 10))
            harness.open_period(acme, "2026-03")
            assert await ledger.period_is_open(dt.date(2026, 3, 10))
        finally:
            await ledger.aclose()
        summary = harness.extra_summary()
        assert summary["sage_requests"] >= 5
        assert summary["requests_per_bill"] == round(summary["sage_requests"] / 2, 3)
    finally:
        harness.stop()
    assert harness.process is None
    assert process.proc.returncode == 0
    assert (tmp_path / "intacct" / "intacct-sandbox.json").exists()
    assert (tmp_path / "intacct-sandbox.log").exists()
