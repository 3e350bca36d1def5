"""The Intacct sandbox in its own process, for the demo (``LedgerHarness``) and the tests.

``SandboxProcess`` starts ``billstream sandbox intacct --port 0 …`` with the interpreter that
runs us, reads its one JSON ready line, talks to its admin endpoints, and stops it (SIGTERM,
then SIGKILL if it does not go). ``IntacctHarness`` is the demo's view of it: one company
per tenant, one set of credentials in the worker's environment.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from adapters.harness import ItemInventory
from domain.tenants import LedgerConfig, Tenant, Tenants

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = "BILLSTREAM_INTACCT"


class SandboxError(RuntimeError):
    """The sandbox process did not start or answer as expected."""


class SandboxProcess:
    """``billstream sandbox intacct`` as a child process, with its admin API at hand."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        log_path: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self._log: IO[bytes] | None = None
        self._http: httpx.Client | None = None

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> SandboxProcess:
        cmd = [sys.executable, "-m", "streams.cli", "sandbox", "intacct", "--port", "0"]
        cmd += self.args
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self.ready = self._read_ready_line()
        except BaseException:
            self.stop()
            raise
        self._http = httpx.Client(base_url=self.base_url, timeout=30.0)
        return self

    def _read_ready_line(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SandboxError(
                        f"the Intacct sandbox gave no ready line in {self.startup_timeout}s"
                    )
                if not selector.select(timeout=min(left, 0.5)):
                    if self.proc.poll() is not None:
                        raise SandboxError(
                            f"the Intacct sandbox exited with {self.proc.returncode} before it was "
                            f"ready{self._log_hint()}"
                        )
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise SandboxError(
                        f"the Intacct sandbox exited with {self.proc.returncode} before it was "
                        f"ready{self._log_hint()}"
                    )
                buffer += chunk
        line = buffer.split(b"\n", 1)[0]
        try:
            ready = json.loads(line)
        except ValueError as exc:
            raise SandboxError(
                f"the Intacct sandbox's ready line is not JSON: {line[:200]!r}"
            ) from exc
        if not isinstance(ready, dict) or "url" not in ready or "credentials" not in ready:
            raise SandboxError(f"unexpected ready line: {ready!r}")
        return ready

    def _log_hint(self) -> str:
        return f" (see {self.log_path})" if self.log_path else ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate the sandbox and wait for it; returns its exit code."""
        if self._http is not None:
            self._http.close()
            self._http = None
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=timeout)
            code = self.proc.returncode
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> SandboxProcess:
        return self.start() if self.proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what it said ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return str(self.ready["url"])

    @property
    def base_url(self) -> str:
        return str(self.ready["base_url"])

    @property
    def credentials(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.ready["credentials"].items()}

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

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._http is None:
            raise SandboxError("the sandbox is not running")
        resp = self._http.request(method, f"/admin/{path.lstrip('/')}", json=body)
        if resp.status_code >= 400:
            raise SandboxError(f"admin {method} {path}: HTTP {resp.status_code} {resp.text}")
        return resp.json()

    def new_company(
        self,
        company_id: str | None = None,
        *,
        accounts: Sequence[str] | None = None,
        vendor_sequence: bool | None = None,
    ) -> str:
        """A fresh company (a random id unless given); ``accounts`` limits ACCOUNTNO."""
        body: dict[str, Any] = {}
        if company_id:
            body["company_id"] = company_id
        if accounts is not None:
            body["accounts"] = list(accounts)
        if vendor_sequence is not None:
            body["vendor_sequence"] = vendor_sequence
        return str(self.admin("POST", "companies", body)["company_id"])

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
    """``adapters.harness.LedgerHarness`` for Intacct: the sandbox in its own process."""

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
        # The demo's own type; imported here so the adapter does not need streams to load.

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
            "sage_rate_limited": int(stats["rate_limited"]),
            "sage_sessions": int(stats["sessions"]),
        }

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
