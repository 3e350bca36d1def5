"""The operator page in a real browser (Debian's Chromium, driven by Playwright).

A period-closed run parks September's invoices; the period reopens; a person opens the page,
sees the parked group with its plain-words reason, presses Replay and watches the invoices
arrive at attached. Screenshots go to ``test-output/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.events import Envelope, Failure, Stage
from domain.tenants import load_tenants
from streams.config import REPO_ROOT, Settings
from streams.kafka.broker import EmbeddedBroker
from streams.web.view import LogView
from tests.integration.helpers import (
    events_for,
    inventory,
    prepare,
    publish,
    sample_items,
    start_worker,
    stop_process,
    wait_terminal,
)
from tests.support import run_settings

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = REPO_ROOT / "test-output"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", *args],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing (no browser downloads here)."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None:
            pytest.skip("no /usr/bin/chromium and no apt-get to install Debian's chromium")
        if os.geteuid() != 0:
            pytest.skip("no /usr/bin/chromium, and installing it needs root (apt-get)")
        done = _apt("install", "-y", "-q", "chromium")
        if done.returncode != 0:  # a fresh machine has no package lists yet
            _apt("update", "-q")
            done = _apt("install", "-y", "-q", "chromium")
        if done.returncode != 0 or not CHROMIUM.exists():
            pytest.skip(f"apt-get could not install chromium: {done.stderr.strip()[-300:]}")
    return CHROMIUM


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    external = os.environ.get("BILLSTREAM_TEST_KAFKA_URL")
    broker = None if external else EmbeddedBroker(tmp_path / "broker").start()
    try:
        yield run_settings(tmp_path, external or (broker.url if broker else None), "web")
    finally:
        if broker is not None:
            broker.stop()


@contextlib.contextmanager
def browsing(sync_api: Any, chromium: Path, tmp_path: Path) -> Iterator[Any]:
    """Debian's Chromium under Playwright, headless, with a profile of the test's own."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1366, "height": 768},
        )
        try:
            yield browser
        finally:
            browser.close()


class WebServer:
    """``billstream serve web --port 0`` in its own process, stopped by PID."""

    def __init__(self, settings: Settings) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BILLSTREAM_")}
        env.update(
            {
                "BILLSTREAM_KAFKA_URL": str(settings.kafka_url),
                "BILLSTREAM_DATA_DIR": str(settings.data_dir),
                "BILLSTREAM_TENANTS_FILE": str(settings.tenants_file),
                "BILLSTREAM_TOPIC_PREFIX": settings.topic_prefix,
                "BILLSTREAM_PARTITIONS": str(settings.partitions),
            }
        )
        self.log = (settings.data_dir / "web.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "serve", "web", "--port", "0", "--json"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"the web server did not start (see {self.log.name})")
        self.url: str = json.loads(line)["url"]

    def stop(self) -> None:
        stop_process(self.proc)  # type: ignore[arg-type]
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


def test_replay_a_parked_group_from_the_operator_page(
    chromium: Path, settings: Settings, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

    # A period-closed run: September 2026 is closed in both local ledgers.
    harness = prepare(settings)
    tenants = load_tenants(settings.tenants_file)
    for tenant in tenants.all():
        harness.close_period(tenant, "2026-09")
    events = events_for(sample_items())
    worker = start_worker(settings)
    web = None
    try:
        asyncio.run(publish(settings, events))
        terminal = asyncio.run(wait_terminal(settings, {e.subject: 1 for e in events}))
        parked = sorted(
            key
            for key, (_, ev) in terminal.state.items()
            if key.startswith("acme-uk:")
            and isinstance(ev.data, Failure)
            and ev.data.reason.value == "period_closed"
        )
        assert len(parked) >= 2
        for tenant in tenants.all():
            harness.open_period(tenant, "2026-09")

        web = WebServer(settings)
        OUTPUT.mkdir(exist_ok=True)
        with browsing(sync_api, chromium, tmp_path) as browser:
            run_in_browser(browser, web.url, parked)
    finally:
        if web is not None:
            web.stop()
        stop_process(worker)

    # Independently of the page: each replayed invoice is attached once, with one bill.
    held = inventory(harness, settings)
    for key in parked:
        assert (held[key].bills, held[key].attachments) == (1, 1), key


def run_in_browser(browser: Any, url: str, parked: list[str]) -> None:
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)

    page.goto(url)
    group = page.locator('tr.group[data-tenant="acme-uk"][data-reason="period_closed"]')
    group.wait_for(timeout=30_000)
    assert "the accounting period is closed" in group.inner_text()
    assert "Reopen the period in Sage" in group.inner_text()
    assert group.locator("td.num").inner_text().strip() == str(len(parked))
    assert int(page.locator('[data-stage="parked"]').inner_text()) >= len(parked)
    page.screenshot(path=str(OUTPUT / "operator-page-parked.png"), full_page=True)

    # The parked group's items, then one item's timeline.
    group.locator("td.num a").click()
    rows = page.locator("table.items tbody tr")
    assert rows.count() == len(parked)
    assert sorted(rows.nth(i).get_attribute("data-item") for i in range(len(parked))) == parked
    page.goto(url)

    # Replay the group and watch it arrive.
    page.locator('tr.group[data-tenant="acme-uk"][data-reason="period_closed"] button').click()
    page.wait_for_url("**/jobs/*")
    page.locator("#job-done").wait_for(state="visible", timeout=120_000)
    assert page.locator("#job-attached").inner_text() == str(len(parked))
    assert page.locator("#job-failed").inner_text() == "0"
    outcomes = page.locator("#job-items td.outcome").all_inner_texts()
    assert outcomes == ["attached"] * len(parked)
    page.screenshot(path=str(OUTPUT / "operator-page.png"), full_page=True)

    # Search by invoice number finds a replayed invoice; its timeline shows the second try.
    first = page.locator("#job-items tr").first
    number = first.locator("a").inner_text()
    page.fill('input[name="q"]', number)
    page.press('input[name="q"]', "Enter")
    page.wait_for_url("**/search?q=*")
    hit = page.locator(f'table.items tr[data-item="{parked[0]}"]')  # rows are sorted by key
    assert "attached" in hit.inner_text()
    hit.locator("a").first.click()
    page.wait_for_url("**/item/*")
    timeline = page.locator("table.timeline tbody tr").all_inner_texts()
    assert any("billstream.failed" in row and "period_closed" in row for row in timeline)
    assert "billstream.attached" in timeline[-1] and "replay" in timeline[-1]

    # Back on the dashboard the group is gone.
    page.goto(url)
    page.locator("h2#parked-h").wait_for()
    gone = page.locator('tr.group[data-tenant="acme-uk"][data-reason="period_closed"]')
    assert gone.count() == 0
    assert problems == [], problems
    assert Stage.ATTACHED.value in page.locator(".stages").inner_text()


# -- access and escaping, without a browser -------------------------------------------------


class QuietView(LogView):
    """The page's view of the log, filled by the test instead of a consumer."""

    def start(self) -> None:
        self.ready.set()


def parked_event(supplier: str) -> Envelope:
    from domain.errors import Reason, StageError
    from domain.events import Received
    from tests.conftest import dext_item

    received = Envelope.new(
        stage=Stage.RECEIVED,
        subject="acme-uk:DX-X1",
        data=Received(item=dext_item(id="DX-X1", payee=supplier)),
        source="test",
    )
    err = StageError(Reason.PERIOD_CLOSED, "The period 2026-09 is closed.")
    return received.follow(Stage.FAILED, Failure.of(err, received))


@contextlib.asynccontextmanager
async def page_client(
    tmp_path: Path, token: str | None, hosts: frozenset[str] | None = None
) -> AsyncIterator[Any]:
    from aiohttp.test_utils import TestClient, TestServer

    from streams.web.server import make_app

    settings = Settings(data_dir=tmp_path, topic_prefix="t.")
    view = QuietView(settings, "kafka://127.0.0.1:1")
    view.apply(parked_event('<script>alert("x")</script> & Co'))
    client = TestClient(
        TestServer(
            make_app(
                settings,
                "kafka://127.0.0.1:1",
                token=token,
                view=view,
                **({} if hosts is None else {"hosts": hosts}),
            )
        )
    )
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_a_token_guards_every_page_when_set(tmp_path: Path) -> None:
    token = "a-token-of-enough-length"
    async with page_client(tmp_path, token) as client:
        assert (await client.get("/")).status == 401
        assert (
            await client.get("/", headers={"Authorization": "Bearer wrong-token"})
        ).status == 401
        assert (await client.get("/", headers={"Authorization": f"Bearer {token}"})).status == 200
        swap = await client.get(
            f"/parked?token={token}&reason=period_closed", allow_redirects=False
        )
        assert swap.status == 303 and swap.headers["Location"] == "/parked?reason=period_closed"
        cookie = swap.cookies["billstream_token"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert (await client.get("/")).status == 200  # the cookie now
        assert (await client.get("/healthz")).status == 200  # for probes, no secret in it


async def test_replay_needs_the_page_own_form(tmp_path: Path) -> None:
    async with page_client(tmp_path, None) as client:
        forged = await client.post("/replay", data={"reason": "period_closed"})
        assert forged.status == 403
        page = await (await client.get("/")).text()
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        elsewhere = await client.post(
            "/replay",
            data={"reason": "period_closed", "csrf": csrf},
            headers={"Origin": "http://evil.example"},
        )
        assert elsewhere.status == 403


async def test_a_rebinding_host_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    # A DNS-rebinding page read the page and its anti-forgery value under
    # Host: attacker.example and pressed Replay (303, the job ran).
    async with page_client(tmp_path, None) as client:
        page = await (await client.get("/")).text()
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        evil = {"Host": "attacker.example:8090"}
        assert (await client.get("/", headers=evil)).status == 421
        pressed = await client.post(
            "/replay",
            data={"reason": "period_closed", "csrf": csrf},
            headers=evil,
            allow_redirects=False,
        )
        assert pressed.status == 421
        assert (await client.get("/", headers={"Host": "localhost:8090"})).status == 200
        assert (await client.get("/", headers={"Host": "[::1]:8090"})).status == 200


async def test_an_allowed_host_is_served(tmp_path: Path) -> None:
    from streams.web.server import allowed_hosts

    hosts = allowed_hosts("0.0.0.0", ["ap.example.com"])
    async with page_client(tmp_path, None, hosts) as client:
        assert (await client.get("/", headers={"Host": "AP.example.com"})).status == 200
        assert (await client.get("/", headers={"Host": "other.example.com"})).status == 421


def test_host_names_drop_the_port() -> None:
    from streams.web.server import host_name

    assert host_name("Example.COM:8090") == "example.com"
    assert host_name("[::1]:8090") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("") == ""


async def test_what_comes_from_dext_is_shown_not_run(tmp_path: Path) -> None:
    async with page_client(tmp_path, None) as client:
        answer = await client.get("/parked?tenant=acme-uk&reason=period_closed")
        html = await answer.text()
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in html
        assert "<script>alert" not in html
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]


def test_serving_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLSTREAM_")}
    env["BILLSTREAM_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "serve", "web", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "set BILLSTREAM_WEB_TOKEN" in done.stderr


def test_review_held_duplicates_in_the_browser(chromium: Path, tmp_path: Path) -> None:
    """Two look-alikes of an attached invoice are held; on the page each stands beside what
    it matched; a person releases one (its bill is posted) and rejects the other."""
    import dataclasses

    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    external = os.environ.get("BILLSTREAM_TEST_KAFKA_URL")
    broker = None if external else EmbeddedBroker(tmp_path / "broker").start()
    # Every rule holds here (run_settings alone would hold sample copies by number only).
    settings = run_settings(
        tmp_path,
        external or (broker.url if broker else None),
        "review",
        tenants_from=REPO_ROOT / "tenants.example.toml",
    )
    base = next(s for s in sample_items() if s.item["id"] == "DX-100001")

    def copy(item_id: str, number: str) -> Any:
        return dataclasses.replace(
            base, item={**base.item, "id": item_id, "invoice_number": number}
        )

    harness = prepare(settings)
    worker = start_worker(settings)
    web = None
    try:
        asyncio.run(publish(settings, events_for([copy("DX-W1", "MB-0038199")])))
        asyncio.run(wait_terminal(settings, {"acme-uk:DX-W1": 1}))
        later = [copy("DX-W2", "mb 38199"), copy("DX-W3", "MB-40000")]
        asyncio.run(publish(settings, events_for(later)))
        asyncio.run(wait_terminal(settings, {"acme-uk:DX-W2": 1, "acme-uk:DX-W3": 1}))
        web = WebServer(settings)
        with browsing(sync_api, chromium, tmp_path) as browser:
            review_in_browser(browser, web.url)
    finally:
        if web is not None:
            web.stop()
        stop_process(worker)
        if broker is not None:
            broker.stop()
    bills = inventory(harness, settings)
    assert sorted(bills) == ["acme-uk:DX-W1", "acme-uk:DX-W2"]
    assert all((b.bills, b.attachments) == (1, 1) for b in bills.values())


def review_in_browser(browser: Any, url: str) -> None:
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(url)
    group = page.locator('tr.group[data-tenant="acme-uk"][data-reason="possible_duplicate"]')
    group.wait_for(timeout=30_000)
    assert group.locator("td.num").inner_text().strip() == "2"
    group.locator("td.num a").click()
    rows = page.locator("table.items tbody tr")
    assert rows.count() == 2
    for key in ("acme-uk:DX-W2", "acme-uk:DX-W3"):
        first = page.locator(f'tr[data-item="{key}"] .match[data-match="acme-uk:DX-W1"]')
        assert "MB-0038199" in first.inner_text() and "attached" in first.inner_text()
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "operator-page-duplicates.png"), full_page=True)

    row = page.locator('tr[data-item="acme-uk:DX-W2"]')
    row.locator('input[name="by"]').fill("ana")
    row.locator('button[value="release"]').click()
    page.wait_for_url("**/item/*")
    _wait_for_text(page, "released by ana")
    _wait_for_text(page, "billstream.attached")

    page.goto(url.rstrip("/") + "/parked?tenant=acme-uk&reason=possible_duplicate")
    row = page.locator('tr[data-item="acme-uk:DX-W3"]')
    row.locator('input[name="by"]').fill("ben")
    row.locator('input[name="note"]').fill("the same PDF again")
    row.locator('button[value="reject"]').click()
    page.wait_for_url("**/item/*")
    _wait_for_text(page, "Rejected by ben as a duplicate of acme-uk:DX-W1")
    assert problems == [], problems


def _wait_for_text(page: Any, text: str, within: float = 60.0) -> None:
    """Reload the item page until ``text`` is in its timeline (the log moves on its own)."""
    import time

    deadline = time.monotonic() + within
    while text not in page.locator("table.timeline").inner_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never showed: {page.inner_text('main')[:2000]}")
        page.wait_for_timeout(500)
        page.reload()
