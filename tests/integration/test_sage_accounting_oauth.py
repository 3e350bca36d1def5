"""Tokens: refresh early, rotate, store atomically (0600), one refresh for many callers.

The sandbox runs in this process (same event loop) for speed; the client talks to it over
real HTTP on loopback. The crash test runs the refreshing side in a child process and kills
it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adapters.sage_accounting.oauth import Endpoints, SageOAuth, TokenSet, TokenStore
from domain.errors import LedgerError, Reason
from sandboxes.sage_accounting.sandbox import SageSandbox, SandboxOptions, running

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SageSandbox, str]]:
    async with running(SandboxOptions(access_token_ttl=300)) as pair:
        yield pair


def make_oauth(url: str, path: Path, seed: str | None, clock: object = None) -> SageOAuth:
    kwargs = {} if clock is None else {"clock": clock}
    return SageOAuth(
        client_id="billstream-sandbox",
        client_secret="sandbox-secret",
        endpoints=Endpoints.resolve(url, {}, "X"),
        store=TokenStore(path),
        tenant_id="t1",
        seed_refresh_token=seed,
        **kwargs,  # type: ignore[arg-type]
    )


def seed_of(sb: SageSandbox) -> str:
    return next(iter(sb.ready_tokens.values()))


async def api_ok(url: str, token: str) -> int:
    async with httpx.AsyncClient() as http:
        r = await http.get(
            f"{url}/v3.1/financial_settings", headers={"Authorization": f"Bearer {token}"}
        )
        return r.status_code


async def test_first_use_seeds_refreshes_and_stores_privately(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    sb, url = sandbox
    path = tmp_path / "tokens" / "t.json"
    oauth = make_oauth(url, path, seed_of(sb))
    token = await oauth.access_token()
    assert await api_ok(url, token) == 200
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["access_token"] == token
    assert stored["refresh_token"] != seed_of(sb)  # rotated, and the new one kept
    assert not list(path.parent.glob(".*.tmp"))
    assert token not in repr(oauth) and token not in repr(TokenStore(path).read())


async def test_rotation_kills_the_old_refresh_token(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    sb, url = sandbox
    oauth = make_oauth(url, tmp_path / "t.json", seed_of(sb))
    await oauth.access_token()
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": seed_of(sb),
                "client_id": "billstream-sandbox",
                "client_secret": "sandbox-secret",
            },
        )
    assert r.status_code == 400 and r.json() == {"error": "invalid_grant"}


async def test_access_token_is_refreshed_early_and_reused_until_then(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    sb, url = sandbox
    now = [1_000_000.0]
    oauth = make_oauth(url, tmp_path / "t.json", seed_of(sb), clock=lambda: now[0])
    first = await oauth.access_token()
    now[0] += 200  # 300 s tokens are renewed 60 s early
    assert await oauth.access_token() == first
    now[0] += 45
    second = await oauth.access_token()
    assert second != first
    assert oauth.refreshes == 2
    assert sb.stats["token_refreshes"] == 2


async def test_two_concurrent_refreshes_make_one(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    """Two clients on one token file (as two workers are), ten callers: one refresh."""
    sb, url = sandbox
    path = tmp_path / "t.json"
    a = make_oauth(url, path, seed_of(sb))
    b = make_oauth(url, path, seed_of(sb))
    tokens = await asyncio.gather(*(x.access_token() for x in (a, b) * 5))
    assert len(set(tokens)) == 1
    assert sb.stats["token_refreshes"] == 1
    assert sb.stats["token_failures"] == 0
    assert a.refreshes + b.refreshes == 1
    assert TokenStore(path).read().access_token == tokens[0]  # type: ignore[union-attr]


async def test_a_refresh_by_another_worker_is_picked_up_not_repeated(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    sb, url = sandbox
    path = tmp_path / "t.json"
    now = [1_000_000.0]
    a = make_oauth(url, path, seed_of(sb), clock=lambda: now[0])
    b = make_oauth(url, path, seed_of(sb), clock=lambda: now[0])
    assert await a.access_token() == await b.access_token()
    now[0] += 300  # both in-memory tokens are now stale
    fresh = await a.access_token()  # a rotates the refresh token
    assert await b.access_token() == fresh  # b must read the file, not reuse a dead token
    assert sb.stats["token_refreshes"] == 2
    assert sb.stats["token_failures"] == 0


async def test_unauthorized_access_token_is_replaced(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    sb, url = sandbox
    oauth = make_oauth(url, tmp_path / "t.json", seed_of(sb))
    old = await oauth.access_token()
    sb.access_tokens = dict.fromkeys(sb.access_tokens, 0.0)  # revoked server-side
    assert await api_ok(url, old) == 401
    new = await oauth.after_unauthorized(old)
    assert new != old and await api_ok(url, new) == 200


async def test_expired_refresh_token_is_auth_with_the_reconnect_command(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    sb, url = sandbox
    for grant in sb.refresh_tokens.values():
        grant.expires_at = 0.0  # 31 days went by
    oauth = make_oauth(url, tmp_path / "t.json", seed_of(sb))
    with pytest.raises(LedgerError) as err:
        await oauth.access_token()
    assert err.value.reason is Reason.AUTH
    assert "billstream connect sage-accounting --tenant t1" in err.value.message


async def test_locally_known_expiry_does_not_even_ask(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    store.write(TokenSet(refresh_token="r", refresh_expires_at=1.0))
    oauth = make_oauth("http://127.0.0.1:9", store.path, None)  # nothing listens there
    with pytest.raises(LedgerError) as err:
        await oauth.access_token()
    assert err.value.reason is Reason.AUTH and "31 days" in err.value.message


async def test_not_connected_says_so(tmp_path: Path) -> None:
    oauth = make_oauth("http://127.0.0.1:9", tmp_path / "t.json", None)
    with pytest.raises(LedgerError) as err:
        await oauth.access_token()
    assert err.value.reason is Reason.AUTH and "connect sage-accounting" in err.value.message


async def test_the_seed_is_used_only_while_there_is_no_file(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    sb, url = sandbox
    path = tmp_path / "t.json"
    first = await make_oauth(url, path, seed_of(sb)).access_token()
    # a later worker still has the (now dead) seed in its environment: the file wins
    again = await make_oauth(url, path, seed_of(sb)).access_token()
    assert again == first
    assert sb.stats["token_failures"] == 0


_CHILD = textwrap.dedent("""
    import asyncio, os, sys, time
    from pathlib import Path
    from adapters.sage_accounting import oauth as o

    url, path, marker, where = sys.argv[1:5]

    def stall(*args, **kwargs):
        Path(marker).write_text("got the new token, not stored yet")
        time.sleep(60)

    if where == "before-write":
        o.TokenStore.write = lambda self, tokens: stall()
    else:  # between writing the new file and renaming it over the old one
        o.os.replace = stall

    async def main():
        oauth = o.SageOAuth(client_id="billstream-sandbox", client_secret="sandbox-secret",
                            endpoints=o.Endpoints.resolve(url, {}, "X"),
                            store=o.TokenStore(Path(path)), tenant_id="t1")
        await oauth.access_token()

    asyncio.run(main())
""")


@pytest.mark.parametrize("where", ["before-write", "before-rename"])
async def test_crash_between_getting_and_storing_a_token(
    sandbox: tuple[SageSandbox, str], tmp_path: Path, where: str
) -> None:
    """SIGKILL after Sage rotated the token but before we stored it.

    The old file must survive whole (never half a file), the lock must be free, and the
    next refresh must fail as ``auth`` with the reconnect command, not loop or corrupt.
    """
    sb, url = sandbox
    path = tmp_path / "t.json"
    store = TokenStore(path)
    await make_oauth(url, path, seed_of(sb)).access_token()
    stale = TokenStore(path).read()
    assert stale is not None
    store.write(TokenSet(refresh_token=stale.refresh_token))  # access token gone: must refresh
    before = path.read_bytes()
    marker = tmp_path / "marker"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, url, str(path), str(marker), where, cwd=REPO
    )
    try:
        for _ in range(300):
            if marker.exists() or child.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert marker.exists(), "the child never reached the crash point"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.returncode is None:
            child.kill()
        await asyncio.wait_for(child.wait(), 10)
    assert path.read_bytes() == before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    async with asyncio.timeout(2):
        async with store.locked():  # the dead child's flock went with it
            pass
    with pytest.raises(LedgerError) as err:
        await make_oauth(url, path, None).access_token()
    assert err.value.reason is Reason.AUTH
    assert "billstream connect sage-accounting --tenant t1" in err.value.message
    assert sb.stats["token_refreshes"] == 2  # the child's refresh did happen at Sage
    assert bool(leftovers(tmp_path)) == (where == "before-rename")
    store.write(TokenSet(refresh_token="after-reconnect"))  # the next writer tidies up
    assert not leftovers(tmp_path)


def leftovers(folder: Path) -> list[Path]:
    return list(folder.glob(".t.json.*.tmp"))
