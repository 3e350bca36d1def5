"""The demo harness for Sage Accounting: a sandbox process, one business per tenant."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.sage_accounting.ledger import SageAccountingLedger
from domain.models import BillLine, Document, DraftBill
from domain.normalize import vendor_match_key
from domain.tenants import Tenant, parse_tenants
from sandboxes.harness import ItemInventory, LedgerHarness, harness_for
from sandboxes.sage_accounting.harness import SageAccountingHarness
from tests.contract.ledger_contract import PDF
from tests.support import wait_until

TENANTS = """
[tenants.acme-uk]
name = "Acme Trading Ltd"
base_currency = "GBP"
currencies = ["GBP", "EUR"]
[tenants.acme-uk.ledger]
kind = "local"
company = "acme-uk"
[tenants.acme-uk.gl_accounts]
"Office Supplies" = "7500"
[tenants.acme-uk.tax_codes]
"20" = "S20"
"0" = "Z0"
[tenants.acme-uk.suppliers."Smith & Jones LLP"]
gl_account = "7710"

[tenants.globex-us]
base_currency = "USD"
currencies = ["USD"]
[tenants.globex-us.ledger]
kind = "local"
company = "globex-us"
[tenants.globex-us.gl_accounts]
"Travel" = "6400"
[tenants.globex-us.tax_codes]
"0" = "EXEMPT"
"""


def bill_for(tenant: Tenant, key: str, gl: str, tax_code: str, tax: str) -> DraftBill:
    net, t = Decimal("100.00"), Decimal(tax)
    return DraftBill(
        item_key=key,
        vendor_name="Harness Supplier",
        vendor_match_key=vendor_match_key("Harness Supplier"),
        number=key.split(":")[1],
        date=dt.date(2026, 10, 2),
        due_date=dt.date(2026, 11, 1),
        currency=tenant.base_currency,
        net=net,
        tax=t,
        total=net + t,
        lines=[
            BillLine(
                description="Things",
                gl_account=gl,
                unit_price=net,
                net=net,
                tax=t,
                total=net + t,
                tax_code=tax_code,
            )
        ],
    )


async def test_harness_end_to_end(tmp_path: Path) -> None:
    tenants = parse_tenants(TENANTS)
    harness = harness_for("sage-accounting")
    assert isinstance(harness, SageAccountingHarness)
    _: LedgerHarness = harness  # structurally a LedgerHarness (mypy checks this line)
    harness.start(tmp_path, tenants)
    try:
        env = harness.env()
        made = {}
        for tenant, gl, code, tax in (
            (tenants.get("acme-uk"), "7710", "S20", "20.00"),
            (tenants.get("globex-us"), "6400", "EXEMPT", "0.00"),
        ):
            config = harness.ledger_config(tenant)
            assert config.kind == "sage-accounting" and config.url
            assert f"{config.credentials_env}_REFRESH_TOKEN" in env
            worker_view = tenant.model_copy(update={"ledger": config})
            ledger = SageAccountingLedger.from_tenant(worker_view, env, tmp_path / "tokens")
            try:
                key = f"{tenant.id}:DX-1"
                vendor = await ledger.create_vendor("Harness Supplier")
                bill = await ledger.create_draft_bill(vendor, bill_for(tenant, key, gl, code, tax))
                await ledger.attach_document(bill, Document.of("x.pdf", "application/pdf", PDF))
                await ledger.create_draft_bill(
                    vendor, bill_for(tenant, f"{tenant.id}:DX-2", gl, code, tax)
                )
                made[tenant.id] = key
                # Sage closes by lock date: the month and everything before it...
                harness.close_period(tenant, "2026-10")
                assert not await ledger.period_is_open(dt.date(2026, 10, 2))
                assert not await ledger.period_is_open(dt.date(2026, 8, 20))
                assert await ledger.period_is_open(dt.date(2026, 11, 1))
                # ...and reopening gives back what the close took, not only that month
                harness.open_period(tenant, "2026-10")
                assert await ledger.period_is_open(dt.date(2026, 10, 2))
                assert await ledger.period_is_open(dt.date(2026, 8, 20))
            finally:
                await ledger.aclose()
        for tenant_id, key in made.items():
            inventory = harness.inventory(tenants.get(tenant_id))
            assert inventory[key] == ItemInventory(bills=1, attachments=1)
            assert inventory[f"{tenant_id}:DX-2"] == ItemInventory(bills=1, attachments=0)
        summary = harness.extra_summary()
        assert summary["sage_requests"] > 0
        assert summary["requests_per_bill"] == pytest.approx(summary["sage_requests"] / 4, 0.01)
        assert summary["sage_schema_violations"] == 0
        process = harness.sandbox.process  # type: ignore[union-attr]
        assert process is not None and process.poll() is None
    finally:
        harness.stop()
    assert process.poll() is not None
    assert (tmp_path / "sage-accounting" / "businesses.json").exists()


def gone(pid: int) -> bool:
    """The process has exited: reaped, or a zombie waiting for init to reap it."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except (ProcessLookupError, FileNotFoundError):  # reaped, perhaps between the two
        return True


_PARENT = """
import sys
from sandboxes.sage_accounting.harness import SandboxProcess
sb = SandboxProcess()
sb.start()
print(sb.process.pid, flush=True)
sys.stdin.read()
"""


def test_sandbox_dies_with_a_killed_parent() -> None:
    """SIGKILL gives the harness no chance to clean up; the sandbox must still go."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        try:
            wait_until(lambda: gone(pid), 15, "the sandbox to exit after its parent", interval=0.1)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the sandbox outlived its parent")
    finally:
        parent.kill()
        parent.wait(10)
