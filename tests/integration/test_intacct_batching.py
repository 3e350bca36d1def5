"""Requests per bill under load: queued creates share requests instead of one round trip each.

50 concurrent ``create_draft_bill`` calls from one client (the pipeline's shape: several items
in flight per stage, one client per tenant per worker) against the sandbox in its own process
answering each request after 50 ms, with Intacct's usual limit of 2 requests in flight.
Each bill needs two functions (the duplicate lookup, then the create with its read-back), so
unbatched it costs 2 requests; batched it must cost well under one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from adapters.intacct.ledger import IntacctLedger
from domain.tenants import LedgerConfig, Tenant
from sandboxes.intacct.harness import SandboxProcess
from tests.contract.ledger_contract import draft

BILLS = 50
PREFIX = "BATCH_INTACCT"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(["--latency-ms", "50", "--concurrency", "2"]) as process:
        yield process


async def measure(sandbox: SandboxProcess, max_batch: int) -> dict[str, float]:
    company = sandbox.new_company()
    tenant = Tenant(
        id="batch",
        ledger=LedgerConfig(kind="intacct", company=company, credentials_env=PREFIX),
        base_currency="GBP",
        currencies=["GBP"],
    )
    env = sandbox.env(PREFIX) | {f"{PREFIX}_MAX_BATCH": str(max_batch)}
    ledger = IntacctLedger.from_tenant(tenant, env)
    try:
        vendors = [await ledger.create_vendor(f"Batch Supplier {n}") for n in range(5)]
        sandbox.reset_stats()
        loop = asyncio.get_running_loop()
        started = loop.time()
        made = await asyncio.gather(
            *(
                ledger.create_draft_bill(
                    vendors[n % 5], draft(vendors[n % 5].name, f"B-{n:03d}", key=f"batch:{n}")
                )
                for n in range(BILLS)
            )
        )
        seconds = loop.time() - started
    finally:
        await ledger.aclose()
    stats = sandbox.stats()
    assert len({b.id for b in made}) == BILLS
    assert sorted(b.item_key or "" for b in made) == sorted(f"batch:{n}" for n in range(BILLS))
    assert stats["bills_created"] == BILLS
    assert stats["rate_limited"] == 0  # the client kept to the limit on its own
    assert stats["max_in_flight"] <= 2
    return {
        "requests": stats["requests"],
        "requests_per_bill": stats["requests"] / BILLS,
        "functions_per_request": stats["function_total"] / stats["requests"],
        "seconds": seconds,
    }


async def test_queued_creates_cost_well_under_one_request_per_bill(
    sandbox: SandboxProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    batched = await measure(sandbox, max_batch=25)
    unbatched = await measure(sandbox, max_batch=1)
    with capsys.disabled():
        print(
            f"\n[intacct batching] {BILLS} concurrent draft bills, 50 ms latency, 2 in flight: "
            f"batched {batched['requests']:.0f} requests = {batched['requests_per_bill']:.2f}/bill "
            f"({batched['functions_per_request']:.1f} functions/request, "
            f"{batched['seconds']:.2f}s); unbatched {unbatched['requests']:.0f} requests = "
            f"{unbatched['requests_per_bill']:.2f}/bill ({unbatched['seconds']:.2f}s)"
        )
    assert unbatched["requests_per_bill"] == 2.0
    assert batched["requests_per_bill"] < 0.5
