"""``billstream connect sage-accounting``: the authorization-code flow, end to end, as a user
runs it: the command prints the URL, a "browser" follows it to the sandbox's consent page,
the sandbox redirects to the loopback callback, the command swaps the code and stores tokens.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from sandboxes.sage_accounting.harness import SandboxProcess

REPO = Path(__file__).resolve().parents[2]


def read_url(
    proc: subprocess.Popen[str], seen: list[str], timeout: float = 30
) -> tuple[str, threading.Thread]:
    """The authorise URL from the command's stderr (read by a thread: no select on a
    buffered pipe, which can hide a line already read into the buffer), and that thread,
    which ends at the end of stderr."""
    assert proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    stderr = proc.stderr

    def pump() -> None:
        for line in iter(stderr.readline, ""):
            seen.append(line)
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if line.startswith("http"):
            return line.strip(), reader
    raise AssertionError("connect never printed the authorise URL")


def test_connect_stores_tokens_and_checks_the_business(tmp_path: Path) -> None:
    with SandboxProcess() as sb:
        creds = sb.credentials
        tenants = tmp_path / "tenants.toml"
        tenants.write_text(f"""
[tenants.acme]
base_currency = "GBP"
currencies = ["GBP"]
[tenants.acme.ledger]
kind = "sage-accounting"
company = "{creds["business_id"]}"
credentials_env = "ACME_SAGE"
url = "{sb.url}"
""")
        env = {
            **os.environ,
            "BILLSTREAM_TENANTS_FILE": str(tenants),
            "BILLSTREAM_DATA_DIR": str(tmp_path / "data"),
            "ACME_SAGE_CLIENT_ID": creds["client_id"],
            "ACME_SAGE_CLIENT_SECRET": creds["client_secret"],
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "connect",
                "sage-accounting",
                "--tenant",
                "acme",
                "--port",
                "0",
                "--wait",
                "30",
                "--json",
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            stderr_lines: list[str] = []
            url, reader = read_url(proc, stderr_lines)
            q = parse_qs(urlsplit(url).query)
            assert q["client_id"] == [creds["client_id"]] and q["response_type"] == ["code"]
            assert q["filter"] == ["apiv3.1"] and len(q["state"][0]) >= 20
            redirect = q["redirect_uri"][0]
            assert urlsplit(redirect).hostname == "127.0.0.1"
            # a forged callback (wrong state) is refused and the command keeps waiting
            forged = httpx.get(redirect, params={"code": "stolen", "state": "guess"})
            assert forged.status_code == 400
            # the user consents: the sandbox redirects the browser to the callback
            done = httpx.get(url, follow_redirects=True, timeout=30)
            assert done.status_code == 200 and "connected" in done.text
            out = proc.stdout.read() if proc.stdout else ""
            proc.wait(30)
            reader.join(10)  # it takes the last lines, up to the end of stderr
            assert not reader.is_alive(), "stderr did not reach its end 10 s after the exit"
            err = "".join(stderr_lines)
        finally:
            proc.kill()
            proc.wait(10)
        assert proc.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["business_id"] == creds["business_id"]
        token_file = Path(result["token_file"])
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        stored = json.loads(token_file.read_text())
        assert stored["refresh_token"] and stored["access_token"]
        assert stored["access_token"] not in out + err and stored["refresh_token"] not in out + err
        assert sb.stats()["token_requests"] == 1


def test_connect_refuses_a_tenant_on_another_ledger(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text("""
[tenants.local-one]
base_currency = "GBP"
currencies = ["GBP"]
[tenants.local-one.ledger]
kind = "local"
company = "x"
""")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "connect",
            "sage-accounting",
            "--tenant",
            "local-one",
        ],
        cwd=REPO,
        env={**os.environ, "BILLSTREAM_TENANTS_FILE": str(tenants)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "not sage-accounting" in run.stderr
