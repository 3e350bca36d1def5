"""Sage as the ceiling: with the ledger the bottleneck, how much of what its limits allow
billstream puts to use.

Sage Intacct: the sandbox answers after 300 ms and holds each company to 2 requests in
flight, so a company takes at most 2 / 0.3 requests a second. Sage Accounting: 200 calls a
minute per business, enforced by the sandbox and by the workers' budget.

Intacct's share is its requests a second while half to nine tenths of the items finished (no
warm-up, no draining tail) over that ceiling. Sage Accounting's is over the whole run: its
limit is a sliding minute, so no call may make 201 in any 60 s: over a run of T seconds at
most 200 * ceil(T / 60) calls get through (a minute's allowance at once, then again).
Both for the busiest company: the sample's two tenants are not the same size.
``python -m tests.bench.ceiling`` on its own, or as part of ``make bench``.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from streams.demo import DemoOptions, DemoResult, run_demo

INTACCT_LATENCY_S = 0.3
INTACCT_CONCURRENCY = 2
SAGE_CALLS_PER_MINUTE = 200
# Enough that the busier Sage Accounting business spends about two minutes' allowance.
ITEMS = {"intacct": 300, "sage-accounting": 300}


def _companies(result: DemoResult) -> int:
    return len({key.split(":", 1)[0] for key in result.inventory})


def measure(ledger: str, items: int, root: Path) -> dict[str, Any]:
    if ledger == "intacct":
        options: dict[str, Any] = {
            "latency_ms": INTACCT_LATENCY_S * 1000,
            "concurrency": INTACCT_CONCURRENCY,
        }
    else:
        options = {"calls_per_minute": SAGE_CALLS_PER_MINUTE}
    result = run_demo(
        DemoOptions(
            items=items,
            ledger=ledger,
            source="sample",
            ledger_options=options,
            progress=False,
            data_dir=root / ledger,
            timeout=900.0,
        )
    )
    per_company = (
        INTACCT_CONCURRENCY / INTACCT_LATENCY_S
        if ledger == "intacct"
        else SAGE_CALLS_PER_MINUTE / 60
    )
    if ledger == "intacct":
        rates = result.extra.get("steady_requests_per_second_by_company") or {}
    else:
        calls = result.extra.get("sage_requests_by_company") or {}
        rates = {c: round(n / result.seconds, 3) for c, n in calls.items() if result.seconds}
        windows = math.ceil(result.seconds / 60)
        per_company = SAGE_CALLS_PER_MINUTE * windows / result.seconds
    busiest = max(rates, key=rates.__getitem__) if rates else None
    rate = rates[busiest] if busiest else None
    ceiling = per_company
    return {
        "ledger": ledger,
        "items": items,
        "attached": result.attached,
        "company": busiest,
        "companies": _companies(result),
        "ceiling_requests_per_second": round(ceiling, 2),
        "requests_per_second": rate,
        "share": round(rate / ceiling, 3) if rate else None,
        "items_per_second": round(result.items_per_second, 2),
        "requests_per_bill": result.extra.get("requests_per_bill"),
    }


def ceiling_shares(root: Path) -> dict[str, dict[str, Any]]:
    return {ledger: measure(ledger, n, root) for ledger, n in ITEMS.items()}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="billstream-ceiling-") as tmp:
        shares = ceiling_shares(Path(tmp))
    for figures in shares.values():
        print(
            f"{figures['ledger']:<16} share {figures['share']}  "
            f"({figures['requests_per_second']} of {figures['ceiling_requests_per_second']} "
            f"requests/s, {figures['items_per_second']} items/s)"
        )
    print(json.dumps(shares))


if __name__ == "__main__":
    main()
