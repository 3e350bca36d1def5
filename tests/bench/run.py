"""``make bench``: figures, printed, never asserted.

- validation: Dext items validated and GL-coded per second (pure domain, one core)
- pipeline: the demo end to end on the embedded broker and the local ledger, items/s
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from domain.tenants import load_tenants
from domain.validation import validate_item
from sandboxes.dext.samples import sample_items
from streams.config import REPO_ROOT, Settings
from streams.demo import DemoOptions, run_demo


def bench_validation(n: int) -> dict[str, float]:
    tenants = load_tenants(REPO_ROOT / "tenants.example.toml")
    items = sample_items(n)
    today = dt.date(2026, 11, 27)
    started = time.perf_counter()
    for s in items:
        validate_item(s.item, tenants.get(s.tenant), today=today)
    seconds = time.perf_counter() - started
    return {"items": n, "seconds": round(seconds, 3), "items_per_second": round(n / seconds)}


def bench_pipeline(n: int, ledger: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        result = run_demo(
            DemoOptions(items=n, ledger=ledger, data_dir=Path(tmp) / "demo", progress=False),
            Settings(data_dir=Path(tmp)),
        )
    out = result.as_dict()
    return {
        k: out[k]
        for k in ("received", "attached", "bills", "duplicates", "seconds", "items_per_second")
    } | result.extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--ledger", default="local")
    args = parser.parse_args()
    figures = {
        "validation": bench_validation(max(args.items, 2000)),
        f"pipeline_{args.ledger}": bench_pipeline(args.items, args.ledger),
    }
    for name, fig in figures.items():
        print(f"{name:<22} " + "  ".join(f"{k}={v}" for k, v in fig.items()))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
