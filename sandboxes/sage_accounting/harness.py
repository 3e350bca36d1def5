"""The Sage Accounting sandbox as the demo and the end-to-end tests drive it.

``SandboxProcess`` starts ``billstream sandbox sage-accounting --port 0`` in its own process,
reads its ready line and talks to its admin endpoints. ``SageAccountingHarness`` implements
``sandboxes.harness.LedgerHarness`` on it: one sandbox business per tenant, whose chart
of accounts and tax rates come from the tenant's GL mapping and tax codes, and one ready
refresh token per tenant (refresh tokens rotate, so tenants cannot share one).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters.sage_accounting.oauth import TokenSet, token_store_for
from adapters.sage_accounting.wire import idempotency_id
from domain.tenants import LedgerConfig, Tenant, Tenants
from sandboxes.harness import ItemInventory
from sandboxes.process import SandboxProcess as BaseSandboxProcess
from sandboxes.sage_accounting.state import DEFAULT_CHART

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTRA_ARGS_ENV = "BILLSTREAM_SAGE_SANDBOX_ARGS"
CALLS_ENV = "BILLSTREAM_SAGE_CALLS_PER_MINUTE"


class SandboxProcess(BaseSandboxProcess):
    """``billstream sandbox sage-accounting`` as a child process, with its admin API."""

    name = "sage-accounting"
    admin_prefix = "/_admin/"

    # -- admin -----------------------------------------------------------------------------------

    def new_business(self, config: Mapping[str, Any] | None = None) -> tuple[str, str]:
        """A fresh business (and a refresh token of its own): (business id, refresh token)."""
        made = self.admin("POST", "businesses", dict(config or {}))
        return str(made["business_id"]), str(made["refresh_token"])

    def stats(self) -> dict[str, Any]:
        return dict(self.admin("GET", "stats"))

    def inventory(self, business_id: str) -> dict[str, Any]:
        return dict(self.admin("GET", f"businesses/{business_id}/inventory"))

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return dict(self.admin("POST", "faults", faults))

    def close_period(self, business_id: str, period: str) -> None:
        self.admin("POST", f"businesses/{business_id}/close_period", {"period": period})

    def open_period(self, business_id: str, period: str) -> None:
        self.admin("POST", f"businesses/{business_id}/open_period", {"period": period})

    def delete_bill(self, business_id: str, bill_id: str) -> None:
        self.admin("POST", f"businesses/{business_id}/delete_bill", {"bill_id": bill_id})

    def delete_contact(self, business_id: str, contact_id: str) -> None:
        self.admin("POST", f"businesses/{business_id}/delete_contact", {"contact_id": contact_id})

    def delete_attachments(self, business_id: str, bill_id: str) -> int:
        done = self.admin(
            "POST", f"businesses/{business_id}/delete_attachments", {"bill_id": bill_id}
        )
        return int(done["deleted"])

    def expire_refresh_tokens(self, refresh_token: str | None = None) -> int:
        body = {"refresh_token": refresh_token} if refresh_token else {}
        return int(self.admin("POST", "expire_refresh_tokens", body)["expired"])


def env_prefix(tenant: Tenant) -> str:
    return "BILLSTREAM_SAGE_" + re.sub(r"[^A-Za-z0-9]", "_", tenant.id).upper()


def business_id_for(tenant: Tenant) -> str:
    company = tenant.ledger.company
    if re.fullmatch(r"[0-9a-f]{32}", company):
        return company
    return idempotency_id("sandbox-business", tenant.id)


def business_config(tenant: Tenant) -> dict[str, Any]:
    """The sandbox business that mirrors a tenant's books."""
    codes = {code for code, _ in DEFAULT_CHART}
    names = dict(DEFAULT_CHART)
    for category, gl in tenant.gl_accounts.items():
        if gl.isdigit():
            codes.add(int(gl))
            names.setdefault(int(gl), category)
    for supplier, rule in tenant.suppliers.items():
        if rule.gl_account and rule.gl_account.isdigit():
            codes.add(int(rule.gl_account))
            names.setdefault(int(rule.gl_account), f"{supplier} costs")
    config: dict[str, Any] = {
        "id": business_id_for(tenant),
        "name": tenant.name or tenant.id,
        "base_currency": tenant.base_currency,
        "currencies": tenant.currencies,
        "ledger_accounts": [{"nominal_code": c, "name": names[c]} for c in sorted(codes)],
    }
    if tenant.tax_codes:
        config["tax_rates"] = [
            {"id": code, "name": code, "percentage": percent}
            for percent, code in tenant.tax_codes.items()
        ]
    return config


class SageAccountingHarness:
    """``LedgerHarness`` for ``billstream demo --ledger sage-accounting``.

    Extra sandbox options (``--fail-rate 0.05``, ``--latency-ms 20``...) come from the
    constructor or ``BILLSTREAM_SAGE_SANDBOX_ARGS``. Sage's pace is 200 calls a minute per
    business (about 45 bills); ``BILLSTREAM_SAGE_CALLS_PER_MINUTE`` raises the sandbox's limit
    and the workers' budget together for a quicker demo.
    """

    kind = "sage-accounting"

    def __init__(
        self, sandbox_args: Sequence[str] | None = None, *, calls_per_minute: int | None = None
    ) -> None:
        if sandbox_args is None:
            sandbox_args = shlex.split(os.environ.get(EXTRA_ARGS_ENV, ""))
        if calls_per_minute is None and os.environ.get(CALLS_ENV):
            calls_per_minute = int(os.environ[CALLS_ENV])
        # Sage's limit and the client's budget move together: {P}_CALLS_PER_MINUTE is the
        # business's whole budget, which the workers divide by the partitions they hold.
        self.calls_per_minute = calls_per_minute
        if calls_per_minute is not None:
            sandbox_args = ["--rate-limit", str(calls_per_minute), *sandbox_args]
        self.sandbox_args = list(sandbox_args)
        self.sandbox: SandboxProcess | None = None
        self._tenants: dict[str, tuple[str, str]] = {}  # tenant id -> business, refresh token
        self._prefixes: dict[str, str] = {}

    def _running(self) -> SandboxProcess:
        if self.sandbox is None:
            raise RuntimeError("start() the Sage Accounting harness first")
        return self.sandbox

    def start(self, workdir: Path, tenants: Tenants) -> None:
        home = workdir / "sage-accounting"
        home.mkdir(parents=True, exist_ok=True)
        configs = [business_config(t) for t in tenants.all()]
        businesses_file = home / "businesses.json"
        businesses_file.write_text(json.dumps({"businesses": configs}, indent=1))
        self.sandbox = SandboxProcess(
            ["--businesses-file", str(businesses_file), *self.sandbox_args],
            log_path=home / "sandbox.log",
        )
        ready = self.sandbox.start().ready
        tokens = {b["business_id"]: b["refresh_token"] for b in ready["businesses"]}
        for tenant in tenants.all():
            biz = business_id_for(tenant)
            self._tenants[tenant.id] = (biz, tokens[biz])
            self._prefixes[tenant.id] = env_prefix(tenant)

    def _business(self, tenant: Tenant) -> str:
        try:
            return self._tenants[tenant.id][0]
        except KeyError:
            raise KeyError(f"tenant {tenant.id} was not given to start()") from None

    def ledger_config(self, tenant: Tenant) -> LedgerConfig:
        return LedgerConfig(
            kind="sage-accounting",
            company=self._business(tenant),
            credentials_env=self._prefixes[tenant.id],
            url=self._running().url,
        )

    def env(self) -> dict[str, str]:
        creds = self._running().credentials
        out: dict[str, str] = {}
        for tenant_id, (_, refresh_token) in self._tenants.items():
            p = self._prefixes[tenant_id]
            out[f"{p}_CLIENT_ID"] = creds["client_id"]
            out[f"{p}_CLIENT_SECRET"] = creds["client_secret"]
            out[f"{p}_REFRESH_TOKEN"] = refresh_token
            if self.calls_per_minute is not None:
                out[f"{p}_CALLS_PER_MINUTE"] = str(self.calls_per_minute)
        return out

    def reconnect(self, tenant: Tenant, token_dir: Path) -> None:
        """What ``billstream connect sage-accounting`` leaves once the user has consented
        again: a new refresh token in the tenant's token store (the sandbox mints it)."""
        made = self._running().admin("POST", "refresh_tokens", {})
        token_store_for(token_dir, tenant.id).write(
            TokenSet(refresh_token=str(made["refresh_token"]))
        )

    def close_period(self, tenant: Tenant, period: str) -> None:
        self._running().close_period(self._business(tenant), period)

    def open_period(self, tenant: Tenant, period: str) -> None:
        self._running().open_period(self._business(tenant), period)

    def inventory(self, tenant: Tenant) -> dict[str, ItemInventory]:
        items = self._running().inventory(self._business(tenant))["items"]
        return {k: ItemInventory(v["bills"], v["attachments"]) for k, v in items.items()}

    def extra_summary(self) -> dict[str, Any]:
        sandbox = self._running()
        stats = sandbox.stats()
        bills = sum(sandbox.inventory(b)["bills"] for b, _ in self._tenants.values())
        requests = int(stats["requests"])
        return {
            "sage_requests": requests,
            "requests_per_bill": round(requests / bills, 2) if bills else None,
            "sage_requests_by_company": dict(stats["by_business"]),
            "sage_token_requests": int(stats["token_requests"]),
            "sage_throttled": int(stats["throttled"]),
            "sage_faults": sum(stats["faults"].values()),
            "sage_schema_violations": int(stats["schema_violations"]),
            # where the calls go: the first thing to read when calls per bill rise
            "sage_calls": dict(sorted(stats["by_route"].items(), key=lambda kv: -int(kv[1]))),
        }

    def stop(self) -> None:
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None


@contextlib.contextmanager
def sandbox_process(*args: str, log_path: Path | None = None) -> Iterator[SandboxProcess]:
    """``with sandbox_process("--fail-rate", "0.2") as sb:`` for scripts and tests."""
    sb = SandboxProcess(args, log_path=log_path)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()
