"""``billstream check`` as a person runs it, against the sandboxes: all green; then a wrong
Intacct sender id, a closed current period and an expired Sage token each turn exactly one
line red, with the advice that fixes it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from domain.tenants import parse_tenants
from sandboxes.intacct.harness import SandboxProcess as IntacctSandbox
from sandboxes.sage_accounting.harness import SageAccountingHarness
from streams.config import REPO_ROOT, Settings
from streams.kafka.topics import ensure_topics

pytestmark = [pytest.mark.broker, pytest.mark.slow]

INTACCT_COMPANY = "BOOKS-INTACCT"
INTACCT_ENV = "T_CHECK_INTACCT"

TENANTS = {
    "books-intacct": {
        "name": "Books on Intacct",
        "dext_account": "acme-trading",
        "base_currency": "GBP",
        "gl_accounts": {"Office Supplies": "7500"},
        "tax_codes": {"20": "S20"},
        "ledger": {"kind": "intacct", "company": INTACCT_COMPANY, "credentials_env": INTACCT_ENV},
    },
    "books-sage": {
        "name": "Books on Sage Accounting",
        "dext_account": "globex",
        "base_currency": "GBP",
        "gl_accounts": {"Office Supplies": "7500", "Travel": "7400"},
        "tax_codes": {"20": "S20", "0": "Z0"},
        "ledger": {"kind": "sage-accounting", "company": "placeholder"},
    },
}


class Sandboxes:
    def __init__(self, workdir: Path, settings: Settings) -> None:
        self.workdir = workdir
        self.settings = settings
        self.intacct = IntacctSandbox(
            ["--company", INTACCT_COMPANY], log_path=workdir / "intacct.log"
        )
        self.sage = SageAccountingHarness()
        self.dext: subprocess.Popen[str] | None = None
        self.env: dict[str, str] = {}
        self.tenants: dict[str, Any] = json.loads(json.dumps(TENANTS))

    def start(self) -> None:
        self.intacct.start()
        self.tenants["books-intacct"]["ledger"]["url"] = self.intacct.url
        sage_tenants = parse_tenants(tomli_w.dumps({"tenants": self.tenants}))
        self.sage.start(self.workdir, sage_tenants)
        sage_ledger = self.sage.ledger_config(sage_tenants.get("books-sage"))
        self.tenants["books-sage"]["ledger"] = sage_ledger.model_dump(exclude_none=True)
        self.dext = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "sandbox", "dext", "--port", "0"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.dext.stdout is not None
        ready = json.loads(self.dext.stdout.readline())
        self.env = {**self.intacct.env(INTACCT_ENV), **self.sage.env(), **ready["env"]}
        self.write_tenants()

    def write_tenants(self) -> None:
        self.settings.tenants_file.write_text(tomli_w.dumps({"tenants": self.tenants}))

    def stop(self) -> None:
        self.intacct.stop()
        self.sage.stop()
        if self.dext is not None:
            self.dext.terminate()
            try:
                self.dext.wait(10)
            except subprocess.TimeoutExpired:
                self.dext.kill()
                self.dext.wait(10)
            if self.dext.stdout is not None:
                self.dext.stdout.close()


@pytest.fixture
def sandboxes(tmp_path: Path, isolated: Settings) -> Iterator[Sandboxes]:
    isolated.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(isolated, str(isolated.kafka_url)))
    boxes = Sandboxes(tmp_path, isolated)
    try:
        boxes.start()
        yield boxes
    finally:
        boxes.stop()


def run_check(boxes: Sandboxes, *args: str, **env_over: str) -> subprocess.CompletedProcess[str]:
    s = boxes.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLSTREAM_")}
    env.update(boxes.env)
    env.update(
        {
            "BILLSTREAM_KAFKA_URL": str(s.kafka_url),
            "BILLSTREAM_DATA_DIR": str(s.data_dir),
            "BILLSTREAM_TENANTS_FILE": str(s.tenants_file),
            "BILLSTREAM_TOPIC_PREFIX": s.topic_prefix,
        }
    )
    env.update(env_over)
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "check", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def check(boxes: Sandboxes, **env_over: str) -> tuple[int, dict[str, Any]]:
    done = run_check(boxes, "--json", **env_over)
    assert done.stdout.strip(), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def lines(report: dict[str, Any], status: str) -> list[tuple[str | None, str]]:
    return [(c["tenant"], c["name"]) for c in report["checks"] if c["status"] == status]


def line(report: dict[str, Any], tenant: str, name: str) -> dict[str, Any]:
    (found,) = [c for c in report["checks"] if (c["tenant"], c["name"]) == (tenant, name)]
    return found


def test_check_against_the_sandboxes(sandboxes: Sandboxes) -> None:
    code, report = check(sandboxes)
    assert (code, report["ok"], lines(report, "fail")) == (0, True, []), report
    assert set(lines(report, "ok")) == set(
        [
            (None, "kafka"),
            ("books-intacct", "dext"),
            ("books-intacct", "ledger"),
            ("books-intacct", "documents"),
            ("books-intacct", "period"),
            ("books-sage", "dext"),
            ("books-sage", "ledger"),
            ("books-sage", "documents"),
            ("books-sage", "mapping"),
            ("books-sage", "period"),
        ]
    )
    # The Intacct sandbox, like a company whose role may not read GLACCOUNT, cannot list
    # its chart: that is said, not passed off as checked.
    assert lines(report, "skip") == [("books-intacct", "mapping")]

    # A wrong Intacct sender id: the ledger line of that tenant, and only it.
    code, report = check(sandboxes, **{f"{INTACCT_ENV}_SENDER_ID": "not-our-sender"})
    assert code == 1 and lines(report, "fail") == [("books-intacct", "ledger")]
    red = line(report, "books-intacct", "ledger")
    assert "XL03000006" in red["detail"]
    assert f"{INTACCT_ENV}_SENDER_ID" in red["advice"]
    assert "Web Services authorizations" in red["advice"]
    assert line(report, "books-intacct", "period")["status"] == "skip"
    # The same, as a person reads it; a password never shows.
    wrong = {f"{INTACCT_ENV}_SENDER_PASSWORD": "wrong-sender-password-42"}
    done = run_check(sandboxes, "--tenant", "books-intacct", **wrong)
    assert done.returncode == 1
    assert "books-intacct (Books on Intacct)" in done.stdout and "books-sage" not in done.stdout
    assert "  FAIL ledger" in done.stdout and "  OK   kafka" in done.stdout
    assert f"-> Check {INTACCT_ENV}_SENDER_ID" in done.stdout and "1 red line" in done.stdout
    assert "wrong-sender-password-42" not in done.stdout + done.stderr

    # A closed current period in Intacct: that tenant's period line.
    month = f"{dt.date.today():%Y-%m}"
    sandboxes.intacct.set_period(INTACCT_COMPANY, month, "closed")
    code, report = check(sandboxes)
    assert code == 1 and lines(report, "fail") == [("books-intacct", "period")]
    red = line(report, "books-intacct", "period")
    assert f"closed period ({month})" in red["detail"]
    assert red["advice"].startswith(f"Reopen {month} in Sage")
    sandboxes.intacct.set_period(INTACCT_COMPANY, month, "open")

    # A GL account the Sage business does not have: the mapping line names it.
    sandboxes.tenants["books-sage"]["gl_accounts"]["Repairs"] = "7999"
    sandboxes.write_tenants()
    code, report = check(sandboxes)
    assert code == 1 and lines(report, "fail") == [("books-sage", "mapping")]
    assert "GL account 7999 (Repairs)" in line(report, "books-sage", "mapping")["detail"]
    del sandboxes.tenants["books-sage"]["gl_accounts"]["Repairs"]
    sandboxes.write_tenants()

    # An expired Sage connection (refresh token past its 31 days): that tenant's ledger.
    sage = sandboxes.sage.sandbox
    assert sage is not None
    sage.expire_refresh_tokens()
    sage.admin("POST", "expire_access_tokens", {})
    code, report = check(sandboxes)
    assert code == 1 and lines(report, "fail") == [("books-sage", "ledger")]
    red = line(report, "books-sage", "ledger")
    assert "reconnect" in red["detail"]
    assert "billstream connect sage-accounting --tenant books-sage" in red["advice"]
    assert line(report, "books-intacct", "ledger")["status"] == "ok"
