"""The Dext sandbox speaks the provisional contract and misbehaves on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandboxes.dext.samples import sample_items
from sandboxes.dext.sandbox import DextSandbox, Faults, decode_cursor, encode_cursor, start_sandbox


@pytest.fixture
async def box() -> AsyncIterator[tuple[DextSandbox, httpx.AsyncClient]]:
    sandbox = DextSandbox(
        [("acme-trading", s.item, s.document_path) for s in sample_items(5)],
        accounts=["globex"],
        ready=4,
    )
    runner, url = await start_sandbox(sandbox)
    async with httpx.AsyncClient(base_url=url) as client:
        yield sandbox, client
    await runner.cleanup()


async def token(client: httpx.AsyncClient, box: DextSandbox) -> str:
    answer = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": box.client_id,
            "client_secret": box.client_secret,
        },
    )
    assert answer.status_code == 200
    return str(answer.json()["access_token"])


async def test_oauth_token_endpoint(box: tuple[DextSandbox, httpx.AsyncClient]) -> None:
    sandbox, client = box
    wrong = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    basic = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(sandbox.client_id, sandbox.client_secret),
    )
    body = basic.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    refreshed = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(sandbox.client_id, sandbox.client_secret),
    )
    assert refreshed.status_code == 200
    assert (await client.get("/v1/accounts")).status_code == 401
    accounts = await client.get(
        "/v1/accounts", headers={"Authorization": f"Bearer {await token(client, sandbox)}"}
    )
    assert accounts.json() == {"accounts": [{"id": "acme-trading"}, {"id": "globex"}]}


async def test_listing_pages_through_ready_items(
    box: tuple[DextSandbox, httpx.AsyncClient],
) -> None:
    sandbox, client = box
    auth = {"Authorization": f"Bearer {sandbox.static_token}"}
    first = (await client.get("/v1/accounts/acme-trading/items?limit=3", headers=auth)).json()
    assert [i["id"] for i in first["items"]] == ["DX-100001", "DX-100002", "DX-100003"]
    assert first["has_more"] is True
    second = (
        await client.get(
            "/v1/accounts/acme-trading/items",
            params={"limit": "3", "cursor": first["next_cursor"]},
            headers=auth,
        )
    ).json()
    assert [i["id"] for i in second["items"]] == ["DX-100004"]  # DX-100005 is processing
    assert second["has_more"] is False
    processing = (
        await client.get("/v1/accounts/acme-trading/items?status=processing", headers=auth)
    ).json()
    assert [i["status"] for i in processing["items"]] == ["processing"]
    bad = await client.get("/v1/accounts/acme-trading/items?cursor=zzz", headers=auth)
    assert bad.status_code == 400
    assert (await client.get("/v1/accounts/nobody/items", headers=auth)).status_code == 404
    assert decode_cursor(encode_cursor(42)) == 42


async def test_documents_need_a_valid_unexpired_signature(
    box: tuple[DextSandbox, httpx.AsyncClient],
) -> None:
    sandbox, client = box
    auth = {"Authorization": f"Bearer {sandbox.static_token}"}
    item = (await client.get("/v1/accounts/acme-trading/items/DX-100001", headers=auth)).json()
    url = httpx.URL(item["document"]["url"])
    good = await client.get(url)
    assert good.status_code == 200 and good.content.startswith(b"%PDF-")
    tampered = url.copy_set_param("signature", "0" * 64)
    assert (await client.get(tampered)).json()["error"] == "invalid_signature"
    other = url.copy_with(path=url.path.replace("DX-100001/", "DX-100002/"))
    assert (await client.get(other)).status_code == 403
    sandbox.url_ttl = -10
    item = (await client.get("/v1/accounts/acme-trading/items/DX-100001", headers=auth)).json()
    expired = await client.get(item["document"]["url"])
    assert (expired.status_code, expired.json()["error"]) == (403, "expired")


async def test_rate_limit_headers_and_429(box: tuple[DextSandbox, httpx.AsyncClient]) -> None:
    sandbox, client = box
    sandbox.faults = Faults(rate_limit=2, rate_window=60)
    auth = {"Authorization": f"Bearer {sandbox.static_token}"}
    answers = [await client.get("/v1/accounts", headers=auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "2"
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60


async def test_faults_and_control_api(box: tuple[DextSandbox, httpx.AsyncClient]) -> None:
    sandbox, client = box
    assert (await client.post("/_sandbox/faults", json={"fail_every": 1})).status_code == 200
    auth = {"Authorization": f"Bearer {sandbox.static_token}"}
    assert (await client.get("/v1/accounts", headers=auth)).status_code == 503
    await client.post("/_sandbox/faults", json={"fail_every": 0})
    moved = (await client.post("/_sandbox/advance", json={"count": 5})).json()
    assert moved == {"moved": ["DX-100005"]}
    patched = await client.post("/_sandbox/items/acme-trading/DX-100001", json={"status": "review"})
    assert patched.json() == {"id": "DX-100001", "status": "review"}
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats["statuses"] == {"review": 1, "ready": 4}
    assert stats["failed"] == 1


async def test_tokens_expire(box: tuple[DextSandbox, httpx.AsyncClient]) -> None:
    sandbox, client = box
    sandbox.token_ttl = -1  # issued already expired
    access = await token(client, sandbox)
    answer = await client.get("/v1/accounts", headers={"Authorization": f"Bearer {access}"})
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")
