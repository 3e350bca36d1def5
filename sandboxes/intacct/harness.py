"""The Intacct sandbox in its own process, for the demo (``LedgerHarness``) and the tests.

``SandboxProcess`` starts ``billstream sandbox intacct --port 0 …`` with the interpreter that
runs us, reads its one JSON ready line, talks to its admin endpoints, and stops it (SIGTERM,
then SIGKILL if it does not go). ``IntacctHarness`` is the demo's view of it: one company
per tenant, one set of credentials in the worker's environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from domain.tenants import LedgerConfig, Tenant, Tenants
from sandboxes.harness import ItemInventory
from sandboxes.process import SandboxError
from sandboxes.process import SandboxProcess as BaseSandboxProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = "BILLSTREAM_INTACCT"


class SandboxProcess(BaseSandboxProcess):
    """``billstream sandbox intacct`` as a child process, with its admin API at hand."""

    name = "intacct"
    admin_prefix = "/admin/"

    @property
    def base_url(self) -> str:
        return str(self.ready["base_url"])

    @property
    def admin_base(self) -> str:
        return self.base_url

    def env(self, prefix: str = ENV_PREFIX) -> dict[str, str]:
        """The variables ``IntacctLedger.from_tenant`` reads, for tenants using ``prefix``."""
        creds = self.credentials
        return {
            f"{prefix}_SENDER_ID": creds["sender_id"],
            f"{prefix}_SENDER_PASSWORD": creds["sender_password"],
            f"{prefix}_USER_ID": creds["user_id"],
            f"{prefix}_USER_PASSWORD": creds["user_password"],
            f"{prefix}_URL": self.url,
        }

    # -- admin ----------------------------------------------------------------------------

    def new_company(
        self,
        company_id: str | None = None,
        *,
        accounts: Sequence[str] | None = None,
        vendor_sequence: bool | None = None,
        dimensions: Mapping[str, Sequence[str]] | None = None,
    ) -> str:
        """A fresh company (a random id unless given); ``accounts`` limits ACCOUNTNO and
        ``dimensions`` (``{"DEPARTMENTID": [...], ...}``) the dimension ids on bill lines."""
        body: dict[str, Any] = {}
        if company_id:
            body["company_id"] = company_id
        if accounts is not None:
            body["accounts"] = list(accounts)
        if vendor_sequence is not None:
            body["vendor_sequence"] = vendor_sequence
        if dimensions is not None:
            body["dimensions"] = {k: list(v) for k, v in dimensions.items()}
        return str(self.admin("POST", "companies", body)["company_id"])

    def add_contact(self, company: str, name: str) -> None:
        """A contact with no vendor, named ``name``, in ``company``."""
        self.admin("POST", "contacts", {"company": company, "name": name})

    def pay_bill(
        self, company: str, recordno: str, amount: str, date: str | None = None
    ) -> dict[str, Any]:
        """A payment of ``amount`` on a posted bill (``date`` YYYY-MM-DD, today if not given)."""
        body = {"company": company, "recordno": recordno, "amount": amount, "date": date}
        paid: dict[str, Any] = self.admin("POST", "payments", body)
        return paid

    def set_period(self, company: str | None, period: str, status: str) -> None:
        self.admin("POST", "periods", {"company": company, "period": period, "status": status})

    def inventory(self, company: str) -> dict[str, dict[str, int]]:
        items: dict[str, dict[str, int]] = self.admin("GET", f"inventory?company={company}")[
            "items"
        ]
        return items

    def bills(self, company: str) -> list[dict[str, Any]]:
        bills: list[dict[str, Any]] = self.admin("GET", f"bills?company={company}")["bills"]
        return bills

    def supdocs(self, company: str) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = self.admin("GET", f"supdocs?company={company}")["supdocs"]
        return docs

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.admin("GET", "stats")
        return stats

    def reset_stats(self) -> None:
        self.admin("POST", "stats/reset")

    def faults(self, **settings: Any) -> dict[str, Any]:
        """``fail_rate=``, ``modes=[...]``, ``next=[...]`` (queued, used first)."""
        state: dict[str, Any] = self.admin("POST", "faults", settings)
        return state

    def delete_bill(self, company: str, recordno: str) -> None:
        self.admin("DELETE", f"bills/{company}/{recordno}")

    def delete_attachment(self, company: str, recordno: str) -> None:
        self.admin("DELETE", f"attachments/{company}/{recordno}")

    def expire_sessions(self) -> int:
        return int(self.admin("POST", "sessions/expire")["expired"])


class IntacctHarness:
    """``sandboxes.harness.LedgerHarness`` for Intacct: the sandbox in its own process."""

    kind = "intacct"

    def __init__(
        self,
        *,
        latency_ms: float = 50.0,
        fail_rate: float = 0.0,
        concurrency: int = 2,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.concurrency = concurrency
        self.extra_args = list(extra_args)
        self.process: SandboxProcess | None = None

    def _running(self) -> SandboxProcess:
        if self.process is None:
            raise SandboxError("IntacctHarness.start() first")
        return self.process

    def start(self, workdir: Path, tenants: Tenants) -> None:
        args: list[str] = []
        for company in dict.fromkeys(t.ledger.company for t in tenants.all()):
            args += ["--company", company]
        args += [
            "--latency-ms",
            str(self.latency_ms),
            "--fail-rate",
            str(self.fail_rate),
            "--concurrency",
            str(self.concurrency),
            "--state-dir",
            str(workdir / "intacct"),
            *self.extra_args,
        ]
        self.process = SandboxProcess(args, log_path=workdir / "intacct-sandbox.log").start()

    def ledger_config(self, tenant: Tenant) -> LedgerConfig:
        return LedgerConfig(
            kind="intacct",
            company=tenant.ledger.company,
            credentials_env=ENV_PREFIX,
            url=self._running().url,
        )

    def env(self) -> dict[str, str]:
        return self._running().env(ENV_PREFIX)

    def close_period(self, tenant: Tenant, period: str) -> None:
        self._running().set_period(tenant.ledger.company, period, "closed")

    def open_period(self, tenant: Tenant, period: str) -> None:
        self._running().set_period(tenant.ledger.company, period, "open")

    def inventory(self, tenant: Tenant) -> dict[str, ItemInventory]:
        items = self._running().inventory(tenant.ledger.company)
        return {key: ItemInventory(v["bills"], v["attachments"]) for key, v in items.items()}

    def extra_summary(self) -> dict[str, Any]:
        stats = self._running().stats()
        requests = int(stats["requests"])
        bills = int(stats["bills"])
        return {
            "sage_requests": requests,
            "requests_per_bill": round(requests / bills, 3) if bills else None,
            "sage_functions": int(stats["function_total"]),
            "functions_per_bill": (
                round(int(stats["function_total"]) / bills, 3) if bills else None
            ),
            "sage_function_counts": dict(
                sorted(stats["functions"].items(), key=lambda kv: (-kv[1], kv[0]))
            ),
            "sage_requests_by_company": dict(stats["by_company"]),
            "sage_rate_limited": int(stats["rate_limited"]),
            "sage_sessions": int(stats["sessions"]),
        }

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
