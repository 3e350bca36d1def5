"""Building the ports a worker needs from settings and the tenants file (the bootstrap)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from adapters.dext.api import ENV_URL, DextApiConfig, DextDocumentLinks
from adapters.documents import DocumentFetcher
from domain.duplicates import Candidate, DuplicateIndex, Verdict
from domain.ports import DocumentSource, DuplicateCheck, Ledger
from domain.tenants import Tenant, Tenants, load_tenants
from streams.config import Settings


def build_ledger(
    tenant: Tenant, settings: Settings, env: Mapping[str, str] | None = None
) -> Ledger:
    """The ledger adapter for a tenant's ``[ledger]`` section; credentials from ``env``."""
    env = os.environ if env is None else env
    kind = tenant.ledger.kind
    if kind == "local":
        from adapters.sqlite_ledger import LocalLedger

        path = settings.ledgers_dir / f"{tenant.ledger.company}.sqlite"
        return LocalLedger(path, company=tenant.ledger.company)
    if kind == "intacct":
        from adapters.intacct.ledger import IntacctLedger

        return IntacctLedger.from_tenant(tenant, env)
    if kind == "sage-accounting":
        from adapters.sage_accounting.ledger import SageAccountingLedger

        return SageAccountingLedger.from_tenant(tenant, env, token_dir=settings.data_dir / "tokens")
    raise ValueError(f"tenant {tenant.id}: unknown ledger kind {kind!r}")


def dext_links(tenants: Tenants, env: Mapping[str, str] | None = None) -> DextDocumentLinks | None:
    """What resolves ``dext://`` document references, when the Dext API is configured."""
    env = os.environ if env is None else env
    if not env.get(ENV_URL, "").strip():
        return None
    accounts = [t.dext_account for t in tenants.all() if t.dext_account]
    return DextDocumentLinks(DextApiConfig.from_env(env, accounts))


class LocalDuplicates:
    """The duplicate index in this process only: for tests, tools and a single run. A
    worker shares its index with the others (``streams.kafka.duplicate_log``)."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self.indexes: dict[str, DuplicateIndex] = {}

    async def check(self, candidate: Candidate) -> Verdict:
        tenant = candidate.tenant
        if tenant not in self.indexes:
            rules = self.tenants.get(tenant).duplicate_rules
            self.indexes[tenant] = DuplicateIndex(tenant, rules)
        return self.indexes[tenant].check_and_add(candidate)


@dataclass
class Ports:
    """Everything the stage functions reach the outside world through, per tenant."""

    settings: Settings
    tenants: Tenants
    documents: DocumentSource
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    clock: Callable[[], dt.date] | None = None  # tests pin "today"
    duplicates: DuplicateCheck | None = None  # None: a LocalDuplicates made on first use
    _ledgers: dict[str, Ledger] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Ports:
        tenants = load_tenants(settings.tenants_file)
        return cls(
            settings=settings,
            tenants=tenants,
            documents=DocumentFetcher(
                allowed_dirs=list(settings.document_dirs), links=dext_links(tenants)
            ),
        )

    def today(self) -> dt.date:
        return self.clock() if self.clock else dt.date.today()

    def tenant(self, tenant_id: str) -> Tenant:
        return self.tenants.get(tenant_id)

    def duplicate_check(self) -> DuplicateCheck:
        if self.duplicates is None:
            self.duplicates = LocalDuplicates(self.tenants)
        return self.duplicates

    def ledger(self, tenant_id: str) -> Ledger:
        # One client per tenant for the life of the worker: shared sessions, budgets, limits.
        if tenant_id not in self._ledgers:
            self._ledgers[tenant_id] = build_ledger(self.tenant(tenant_id), self.settings, self.env)
        return self._ledgers[tenant_id]

    async def aclose(self) -> None:
        stop = getattr(self.duplicates, "stop", None)
        if stop is not None:
            with contextlib.suppress(Exception):
                await stop()
        for ledger in self._ledgers.values():
            await ledger.aclose()
        self._ledgers.clear()
        close = getattr(self.documents, "aclose", None)
        if close is not None:
            await close()
