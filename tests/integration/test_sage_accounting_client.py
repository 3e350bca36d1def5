"""The client against the sandbox in its own process: budgets under a burst, tokens dying
mid-flight, and faults that never create a bill or an attachment twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from adapters.sage_accounting.budget import Budget
from adapters.sage_accounting.ledger import SageAccountingLedger
from adapters.sage_accounting.schema import SchemaViolation
from domain.errors import LedgerError, Reason
from domain.models import Document, LedgerBill
from domain.tenants import LedgerConfig, Tenant
from sandboxes.sage_accounting.harness import SandboxProcess
from tests.contract.ledger_contract import PDF, draft

P = "SAGE_IT"
TAX = [{"id": "GB_STANDARD", "name": "S20", "percentage": "20"}]
T = TypeVar("T")


def make_ledger(
    sb: SandboxProcess,
    tmp_path: Path,
    *,
    budget: Budget | None = None,
    timeout: float | None = None,
) -> SageAccountingLedger:
    business, refresh = sb.new_business({"tax_rates": TAX})
    tenant = Tenant(
        id="it",
        ledger=LedgerConfig(
            kind="sage-accounting", company=business, credentials_env=P, url=sb.url
        ),
        base_currency="GBP",
        currencies=["GBP"],
    )
    creds = sb.credentials
    env = {
        f"{P}_CLIENT_ID": creds["client_id"],
        f"{P}_CLIENT_SECRET": creds["client_secret"],
        f"{P}_REFRESH_TOKEN": refresh,
        f"{P}_VALIDATE_SCHEMA": "1",
    }
    if timeout is not None:
        env[f"{P}_TIMEOUT"] = str(timeout)
    ledger = SageAccountingLedger.from_tenant(tenant, env, tmp_path / f"tokens-{business}")
    if budget is not None:
        ledger.client.budget = budget
    return ledger


async def test_rate_budget_slows_down_before_sage_refuses(tmp_path: Path) -> None:
    """60 concurrent lookups, 20 calls allowed per 2 s: the client waits, Sage never says 429."""
    with SandboxProcess(["--rate-limit", "20", "--rate-window", "2"]) as sb:
        ledger = make_ledger(sb, tmp_path, budget=Budget(calls=20, call_window=2))
        try:
            await ledger.check_connection()
            found = await asyncio.gather(*(ledger.find_vendor(f"Nobody {i}") for i in range(60)))
            assert found == [None] * 60
            snap = ledger.budget_snapshot()
            assert snap["waits"] > 0 and snap["total_calls"] == 61
            assert snap["throttled"] == 0
            assert sb.stats()["throttled"] == 0
        finally:
            await ledger.aclose()


async def test_without_the_budget_sage_would_have_refused(tmp_path: Path) -> None:
    """The control: same burst, no budget. Sage throttles; Retry-After still gets it done."""
    with SandboxProcess(["--rate-limit", "20", "--rate-window", "2"]) as sb:
        ledger = make_ledger(sb, tmp_path, budget=Budget(calls=10_000, call_window=2))
        try:
            found = await asyncio.gather(*(ledger.find_vendor(f"Nobody {i}") for i in range(40)))
            assert found == [None] * 40
            assert sb.stats()["throttled"] > 0
            assert ledger.budget_snapshot()["throttled"] > 0  # every caller held off
        finally:
            await ledger.aclose()


async def test_byte_budget_paces_attachments(tmp_path: Path) -> None:
    """~1.4 MB of base64 per upload, 3.2 MB allowed per 3 s: uploads wait, none is refused."""
    with SandboxProcess(["--byte-limit", "3200000", "--byte-window", "3"]) as sb:
        ledger = make_ledger(sb, tmp_path, budget=Budget(max_bytes=3_200_000, byte_window=3))
        try:
            vendor = await ledger.create_vendor("Heavy Paper Ltd")
            bills = [
                await ledger.create_draft_bill(vendor, draft(vendor.name, f"H-{i}"))
                for i in range(4)
            ]
            doc = Document.of("scan.pdf", "application/pdf", PDF + bytes(1_000_000))
            await asyncio.gather(*(ledger.attach_document(b, doc) for b in bills))
            assert ledger.budget_snapshot()["waits"] > 0
            assert sb.stats()["throttled"] == 0
            assert sb.inventory(ledger.client.business_id)["attachments"] == 4
        finally:
            await ledger.aclose()


async def test_access_token_revoked_mid_flight_is_refreshed_once(tmp_path: Path) -> None:
    with SandboxProcess() as sb:
        ledger = make_ledger(sb, tmp_path)
        try:
            await ledger.check_connection()
            sb.admin("POST", "expire_access_tokens")
            await asyncio.gather(*(ledger.find_vendor(f"V{i}") for i in range(5)))
            assert ledger.client.oauth.refreshes == 2
            assert sb.stats()["by_status"].get("401", 0) >= 1
        finally:
            await ledger.aclose()


async def test_expired_connection_is_auth_naming_the_command(tmp_path: Path) -> None:
    with SandboxProcess() as sb:
        ledger = make_ledger(sb, tmp_path)
        try:
            sb.expire_refresh_tokens()
            with pytest.raises(LedgerError) as err:
                await ledger.check_connection()
            assert err.value.reason is Reason.AUTH
            assert "billstream connect sage-accounting --tenant it" in err.value.message
        finally:
            await ledger.aclose()


async def test_a_request_breaking_the_schema_never_leaves(tmp_path: Path) -> None:
    with SandboxProcess() as sb:
        ledger = make_ledger(sb, tmp_path)
        try:
            await ledger.check_connection()
            sent = sb.stats()["requests"]
            with pytest.raises(SchemaViolation):
                await ledger.client.call(
                    "postContacts",
                    body={"contact": {"name": "No Types"}},
                    write=True,
                    what="a broken request",
                )
            assert sb.stats()["requests"] == sent
        finally:
            await ledger.aclose()


async def test_missing_credentials_are_auth_not_a_crash(tmp_path: Path) -> None:
    tenant = Tenant(
        id="x",
        ledger=LedgerConfig(kind="sage-accounting", company="0" * 32, credentials_env="NOPE"),
        base_currency="GBP",
        currencies=["GBP"],
    )
    ledger = SageAccountingLedger.from_tenant(tenant, {}, tmp_path)
    with pytest.raises(LedgerError) as err:
        await ledger.check_connection()
    assert err.value.reason is Reason.AUTH and "NOPE_CLIENT_ID" in err.value.message
    await ledger.aclose()


# -- faults: retry the way the pipeline does, and count what Sage holds ------------------------


async def stage(fn: Callable[[], Awaitable[T]], attempts: int = 40) -> T:
    """The pipeline's rule: a transient failure re-runs the whole stage after a backoff."""
    for attempt in range(attempts):
        try:
            return await fn()
        except LedgerError as exc:
            if not exc.transient or attempt == attempts - 1:
                raise
            await asyncio.sleep(min(0.5, 0.02 * 2**attempt) * random.uniform(0.5, 1))
    raise AssertionError("unreachable")


async def run_item(ledger: SageAccountingLedger, n: int, supplier: str) -> None:
    bill = draft(supplier, f"F-{n}", key=f"fault:item-{n}", day=dt.date(2026, 10, 1 + n % 28))
    doc = Document.of(f"F-{n}.pdf", "application/pdf", PDF + str(n).encode())

    async def resolve_vendor() -> str:
        found = await ledger.find_vendor(supplier)
        return (found or await ledger.create_vendor(supplier)).id

    vendor_id = await stage(resolve_vendor)
    vendor = await ledger.find_vendor(supplier)
    assert vendor is not None and vendor.id == vendor_id

    async def create_bill() -> LedgerBill:
        found = await ledger.find_bill(vendor_id, bill.number)
        if found is not None:
            assert found.item_key == bill.item_key, "someone else's bill"
            return found
        return await ledger.create_draft_bill(vendor, bill)

    made = await stage(create_bill)

    async def attach() -> None:
        if await ledger.find_attachment(made) is None:
            await ledger.attach_document(made, doc)

    await stage(attach)


async def test_faults_never_create_a_bill_or_attachment_twice(tmp_path: Path) -> None:
    args = ["--fail-rate", "0.25", "--hang-seconds", "1.2", "--seed", "11"]
    with SandboxProcess(args) as sb:
        ledger = make_ledger(sb, tmp_path, timeout=0.8)
        try:
            suppliers = [f"Fault Supplier {i}" for i in range(4)]
            await asyncio.gather(*(run_item(ledger, n, suppliers[n % 4]) for n in range(16)))
            stats = sb.stats()
            inventory = sb.inventory(ledger.client.business_id)
        finally:
            await ledger.aclose()
    assert sum(stats["faults"].values()) >= 10, stats["faults"]  # the test did meet faults
    assert all(stats["faults"][mode] > 0 for mode in ("before", "after", "timeout"))
    assert inventory["items"] == {
        f"fault:item-{n}": {"bills": 1, "attachments": 1} for n in range(16)
    }
    assert inventory["bills"] == 16 and inventory["attachments"] == 16
    assert inventory["vendors"] == 4
    assert stats["schema_violations"] == 0
