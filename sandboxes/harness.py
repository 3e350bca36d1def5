"""How the demo and the end-to-end tests drive a ledger they do not own the process of.

A harness starts the ledger (for Intacct and Sage Accounting: their sandbox in its own
process, for the local ledger: nothing but a folder), says how tenants reach it (ledger
config + environment for the worker), and can inspect it afterwards: which item keys have
how many bills and attachments. ``harness_for(kind)`` picks one by ledger kind.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from adapters.sqlite_ledger import LocalLedger
from domain.tenants import LedgerConfig, Tenant, Tenants


@dataclass(frozen=True)
class ItemInventory:
    """What a ledger holds for one item key."""

    bills: int
    attachments: int


class LedgerHarness(Protocol):
    kind: str

    def start(self, workdir: Path, tenants: Tenants) -> None:
        """Start the ledger (a sandbox process, a file); ``workdir`` is the demo's data dir."""
        ...

    def ledger_config(self, tenant: Tenant) -> LedgerConfig:
        """The ``[ledger]`` section the worker must use for this tenant."""
        ...

    def env(self) -> dict[str, str]:
        """Environment (credentials) the worker process needs to reach the ledger."""
        ...

    def close_period(self, tenant: Tenant, period: str) -> None: ...

    def open_period(self, tenant: Tenant, period: str) -> None: ...

    def inventory(self, tenant: Tenant) -> dict[str, ItemInventory]:
        """Item key -> bills and attachments held for it (bills we created carry the key)."""
        ...

    def extra_summary(self) -> dict[str, Any]:
        """Ledger-specific figures for the demo summary (e.g. HTTP requests, per bill)."""
        ...

    def stop(self) -> None: ...


class LocalHarness:
    """The local SQLite ledger: nothing to start, files under ``<workdir>/ledgers``."""

    kind = "local"

    def __init__(self) -> None:
        self.workdir: Path | None = None

    def start(self, workdir: Path, tenants: Tenants) -> None:
        self.workdir = workdir

    def _ledger(self, tenant: Tenant) -> LocalLedger:
        assert self.workdir is not None, "start() first"
        return LocalLedger(self.workdir / "ledgers" / f"{tenant.ledger.company}.sqlite")

    def ledger_config(self, tenant: Tenant) -> LedgerConfig:
        return LedgerConfig(kind="local", company=tenant.ledger.company)

    def env(self) -> dict[str, str]:
        return {}

    def close_period(self, tenant: Tenant, period: str) -> None:
        self._ledger(tenant).close_period(period)

    def open_period(self, tenant: Tenant, period: str) -> None:
        self._ledger(tenant).open_period(period)

    def inventory(self, tenant: Tenant) -> dict[str, ItemInventory]:
        held = self._ledger(tenant).inventory()
        return {key: ItemInventory(bills, atts) for key, (bills, atts) in held.items()}

    def extra_summary(self) -> dict[str, Any]:
        return {}

    def stop(self) -> None:
        pass


HARNESSES: dict[str, str] = {
    "local": "sandboxes.harness:LocalHarness",
    "intacct": "sandboxes.intacct.harness:IntacctHarness",
    "sage-accounting": "sandboxes.sage_accounting.harness:SageAccountingHarness",
}


def harness_for(kind: str, **options: Any) -> LedgerHarness:
    """The harness of a ledger kind; ``options`` go to its constructor (e.g. fail_rate)."""
    module, _, name = HARNESSES[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    harness: LedgerHarness = cls(**options)
    return harness
