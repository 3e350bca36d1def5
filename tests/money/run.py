"""``make drift``: generated invoices through validation and the ledgers; nothing may drift.

100,000 through validation and the local SQLite ledger, 5,000 through each sandbox (Intacct
XML and Sage Accounting JSON, over HTTP, in their own processes); for each bill the stored
lines must sum to the invoice total to the minor unit and no float may appear on the way.
Prints a table and one JSON line; exits 1 on any drift.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sqlite3
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.sqlite_ledger import LocalLedger
from domain.errors import StageError
from domain.models import DraftBill
from domain.ports import Ledger
from domain.tenants import Tenant, parse_tenants
from domain.validation import validate_item
from sandboxes.harness import LedgerHarness, harness_for
from streams.config import Settings
from streams.pipeline.wiring import build_ledger
from tests.money.drift import TENANT_TOML, drift_of, drift_tenant, floats_in, invoices

TODAY = dt.date(2026, 11, 27)


def validated(
    count: int, seed: int, tenant: Tenant
) -> tuple[list[tuple[dict[str, Any], DraftBill]], list[str]]:
    out: list[tuple[dict[str, Any], DraftBill]] = []
    problems: list[str] = []
    for item in invoices(count, seed):
        result = validate_item(item, tenant, today=TODAY)
        if not result.ok or result.bill is None:
            problems.append(f"{item['id']}: refused: {[p.message for p in result.problems[:2]]}")
            continue
        problems += [f"{item['id']}: {p}" for p in drift_of(item, result.bill)]
        out.append((item, result.bill))
    return out, problems


async def through_ledger(
    ledger: Ledger, bills: list[tuple[dict[str, Any], DraftBill]], refused: list[str]
) -> list[str]:
    """Post every bill; what the ledger answers must carry the bill's total exactly."""
    problems: list[str] = []
    vendors: dict[str, Any] = {}
    sem = asyncio.Semaphore(16)

    async def post(item: dict[str, Any], bill: DraftBill) -> None:
        async with sem:
            vendor = vendors.get(bill.vendor_name)
            if vendor is None:
                vendor = await ledger.find_vendor(bill.vendor_name) or await ledger.create_vendor(
                    bill.vendor_name
                )
                vendors[bill.vendor_name] = vendor
            try:
                created = await ledger.create_draft_bill(vendor, bill)
            except StageError as exc:
                # Refused with a reason (Intacct keeps two decimals): not posted, no drift.
                refused.append(f"{item['id']}: {exc.reason.value}")
                return
        if created.total != bill.total:
            problems.append(f"{item['id']}: the ledger holds {created.total}, not {bill.total}")
        if floats_in(created.model_dump(mode="python")):
            problems.append(f"{item['id']}: a float in what the ledger answered")

    for name in sorted({b.vendor_name for _, b in bills}):
        vendors[name] = await ledger.find_vendor(name) or await ledger.create_vendor(name)
    await asyncio.gather(*(post(item, bill) for item, bill in bills))
    return problems


def stored_drift(path: Path) -> list[str]:
    """The local ledger's own rows: lines add up to the bill, amounts stored as exact text."""
    db = sqlite3.connect(path)
    problems = []
    rows = db.execute(
        "SELECT b.id, b.total, b.net, b.tax, group_concat(l.total, '|'), group_concat(l.net, '|'),"
        " group_concat(l.tax, '|') FROM bills b JOIN bill_lines l ON l.bill_id = b.id GROUP BY b.id"
    ).fetchall()
    for bill_id, total, net, tax, line_totals, line_nets, line_taxes in rows:
        for name, whole, parts in (
            ("total", total, line_totals),
            ("net", net, line_nets),
            ("tax", tax, line_taxes),
        ):
            if sum(Decimal(p) for p in parts.split("|")) != Decimal(whole):
                problems.append(f"{bill_id}: stored lines' {name} do not add up to {whole}")
            if not isinstance(whole, str):
                problems.append(f"{bill_id}: {name} stored as {type(whole).__name__}")
    db.close()
    return problems


def sandbox_run(
    kind: str, bills: list[tuple[dict[str, Any], DraftBill]], root: Path, refused: list[str]
) -> list[str]:
    options: dict[str, Any] = (
        {"latency_ms": 0.0, "concurrency": 8}
        if kind == "intacct"
        else {
            "sandbox_args": ["--latency-ms", "0"],
            "calls_per_minute": 1_000_000,
        }
    )
    harness: LedgerHarness = harness_for(kind, **options)
    tenants = parse_tenants(TENANT_TOML)
    harness.start(root, tenants)
    try:
        config = harness.ledger_config(drift_tenant())
        tenant = drift_tenant().model_copy(update={"ledger": config})
        ledger = build_ledger(tenant, Settings(data_dir=root), harness.env())

        async def go() -> list[str]:
            try:
                return await through_ledger(ledger, bills, refused)
            finally:
                await ledger.aclose()

        return asyncio.run(go())
    finally:
        harness.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--sandbox-items", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    started = time.monotonic()
    bills, problems = validated(args.items, args.seed, drift_tenant())
    figures["validation"] = {"items": args.items, "bills": len(bills), "drift": len(problems)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "drift.sqlite"
        local = LocalLedger(path, company="drift")
        refused: list[str] = []
        local_problems = asyncio.run(through_ledger(local, bills, refused)) + stored_drift(path)
        figures["local"] = {
            "bills": len(bills),
            "refused": len(refused),
            "drift": len(local_problems),
        }
        problems += local_problems
        for kind in ("intacct", "sage-accounting"):
            subset = bills[: args.sandbox_items]
            refused = []
            found = sandbox_run(kind, subset, Path(tmp) / kind, refused)
            figures[kind] = {"bills": len(subset), "refused": len(refused), "drift": len(found)}
            problems += found
    figures["seconds"] = round(time.monotonic() - started, 1)
    for name, fig in figures.items():
        print(f"{name:<18} {fig}")
    for p in problems[:20]:
        print(f"  {p}", file=sys.stderr)
    print(json.dumps(figures))
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
