"""Safe document download: allow-lists, address checks, redirects, size cap, sniffing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from adapters.dext.web import start_app
from adapters.documents import DocumentFetcher, HostRule, Resolver
from domain.errors import Reason, StageError
from domain.models import DocumentRef
from domain.tenants import Tenant, TenantsFileError, parse_tenants

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
HTML = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
CAP = 4096


def tenant(doc_id: str, hosts: Sequence[str], dirs: Sequence[str] = ()) -> Tenant:
    toml = f"""
[tenants.{doc_id}]
base_currency = "GBP"
currencies = ["GBP"]
document_hosts = {list(hosts)!r}
document_dirs = {list(dirs)!r}
[tenants.{doc_id}.ledger]
company = "{doc_id}"
""".replace("'", '"')
    return parse_tenants(toml).get(doc_id)


def sandboxed(server: str) -> Tenant:
    """A tenant that lists the loopback test server, with its port, as a document host."""
    return tenant("sandboxed", [f"127.0.0.1:{server.rsplit(':', 1)[1]}"])


SANDBOX_TENANT = sandboxed("http://127.0.0.1:9")
PLAIN_TENANT = tenant("plain", ["docs.example.com", "*.cdn.example.com"])


def ref(url: str, filename: str = "invoice.pdf") -> DocumentRef:
    return DocumentRef(url=url, filename=filename)


async def unavailable(fetcher: DocumentFetcher, url: str, who: Tenant) -> StageError:
    with pytest.raises(StageError) as caught:
        await fetcher.fetch(ref(url), who)
    assert caught.value.reason is Reason.DOCUMENT_UNAVAILABLE
    return caught.value


@pytest.fixture
async def server() -> AsyncIterator[str]:
    calls = {"flaky": 0}

    async def pdf(request: web.Request) -> web.Response:
        return web.Response(body=PDF, content_type="application/pdf")

    async def html(request: web.Request) -> web.Response:
        return web.Response(body=HTML, content_type="application/pdf")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-" + b"0" * (CAP * 2), content_type="application/pdf")

    async def big_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/pdf"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"%PDF-")
        for _ in range(10):
            await response.write(b"0" * 1024)
        await response.write_eof()
        return response

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)  # the scenario: a source slower than the fetcher's 0.5 s deadline
        return web.Response(body=PDF)

    async def flaky(request: web.Request) -> web.Response:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise web.HTTPServiceUnavailable()
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/doc.pdf", pdf)
    app.router.add_get("/invoice.pdf", html)
    app.router.add_get("/big.pdf", big)
    app.router.add_get("/stream-big.pdf", big_stream)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/missing.pdf", missing)
    app.router.add_get("/slow.pdf", slow)
    app.router.add_get("/flaky.png", flaky)
    runner, url = await start_app(app)
    yield url
    await runner.cleanup()


@pytest.fixture
def fetcher() -> DocumentFetcher:
    return DocumentFetcher(allowed_dirs=[], max_bytes=CAP, timeout=5.0)


# --- the sandbox grant: http to a loopback host the tenant lists --------------------------


async def test_sandbox_tenant_fetches_from_its_loopback_host(
    fetcher: DocumentFetcher, server: str
) -> None:
    document = await fetcher.fetch(ref(f"{server}/doc.pdf"), sandboxed(server))
    assert document.content == PDF
    assert document.content_type == "application/pdf"


async def test_loopback_url_from_a_tenant_without_the_grant_is_refused(
    fetcher: DocumentFetcher, server: str
) -> None:
    error = await unavailable(fetcher, f"{server}/doc.pdf", PLAIN_TENANT)
    assert "127.0.0.1 is not on tenant plain's document_hosts" in error.message


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1/doc.pdf",
        "http://[::1]/doc.pdf",
    ],
)
async def test_metadata_and_loopback_addresses_are_refused_for_a_plain_tenant(
    fetcher: DocumentFetcher, url: str
) -> None:
    error = await unavailable(fetcher, url, PLAIN_TENANT)
    assert "is not on tenant plain's document_hosts" in error.message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://169.254.169.254/latest/meta-data/", "link-local address 169.254.169.254"),
        ("http://169.254.169.254/latest/meta-data/", "plain http is allowed only"),
        ("https://10.0.0.5/doc.pdf", "private address 10.0.0.5"),
    ],
)
async def test_listing_a_non_loopback_private_address_grants_nothing(
    fetcher: DocumentFetcher, url: str, expected: str
) -> None:
    reckless = tenant("reckless", ["169.254.169.254", "10.0.0.5"])
    error = await unavailable(fetcher, url, reckless)
    assert expected in error.message


async def test_loopback_grant_is_for_the_listed_port_only(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    fetcher = DocumentFetcher(allowed_dirs=[], max_bytes=CAP)
    pinned = tenant("pinned", [f"127.0.0.1:{port}"])
    assert (await fetcher.fetch(ref(f"{server}/doc.pdf"), pinned)).content == PDF
    other = tenant("other", [f"127.0.0.1:{port + 1}"])
    error = await unavailable(fetcher, f"{server}/doc.pdf", other)
    assert "not on tenant other's document_hosts" in error.message


async def test_localhost_grant_allows_only_loopback_answers(server: str) -> None:
    port = server.rsplit(":", 1)[1]

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "localhost" else []

    fetcher = DocumentFetcher(allowed_dirs=[], max_bytes=CAP, resolver=resolve)
    local = tenant("local", [f"localhost:{port}"])
    document = await fetcher.fetch(ref(f"http://localhost:{port}/doc.pdf"), local)
    assert document.content == PDF


# --- https hosts: DNS answers are checked and pinned -------------------------------------


def fake_dns(answer: list[str]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return answer

    return resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("::ffff:127.0.0.1", "loopback"),
    ],
)
async def test_allowed_name_resolving_to_an_internal_address_is_refused(
    address: str, kind: str
) -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may leave for an internal address")

    fetcher = DocumentFetcher(
        allowed_dirs=[],
        resolver=fake_dns(["93.184.216.34", address]),
        transport=httpx.MockTransport(never),
    )
    error = await unavailable(fetcher, "https://docs.example.com/inv.pdf?sig=abc", PLAIN_TENANT)
    assert f"resolves to the {kind} address {address}" in error.message


async def test_https_request_goes_to_the_vetted_address_with_the_real_name() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=PDF)

    fetcher = DocumentFetcher(
        allowed_dirs=[],
        resolver=fake_dns(["93.184.216.34"]),
        transport=httpx.MockTransport(handler),
    )
    document = await fetcher.fetch(
        ref("https://files.cdn.example.com/a/inv.pdf?X-Signature=s3cr3t"), PLAIN_TENANT
    )
    assert document.content == PDF
    (request,) = seen
    assert request.url.host == "93.184.216.34"
    assert request.url.query == b"X-Signature=s3cr3t"
    assert request.headers["host"] == "files.cdn.example.com"
    assert request.extensions["sni_hostname"] == "files.cdn.example.com"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://cdn.example.com/inv.pdf", "not on tenant plain's document_hosts"),
        ("https://docs.example.com.evil.net/inv.pdf", "not on tenant plain's document_hosts"),
        ("http://docs.example.com/inv.pdf", "plain http is allowed only for a loopback"),
        ("ftp://docs.example.com/inv.pdf", "ftp URL scheme is not allowed"),
        ("https://user:pw@docs.example.com/inv.pdf", "user name or password"),
    ],
)
async def test_hosts_and_schemes_off_the_list_are_refused_before_any_lookup(
    url: str, expected: str
) -> None:
    async def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("refused before DNS")

    fetcher = DocumentFetcher(allowed_dirs=[], resolver=no_dns)
    error = await unavailable(fetcher, url, PLAIN_TENANT)
    assert expected in error.message


# --- redirects ---------------------------------------------------------------------------


async def test_redirect_to_a_foreign_host_is_refused(fetcher: DocumentFetcher, server: str) -> None:
    url = f"{server}/redirect?to=https://evil.example.net/steal.pdf"
    error = await unavailable(fetcher, url, sandboxed(server))
    assert "evil.example.net is not on tenant sandboxed's document_hosts" in error.message


async def test_redirect_to_the_metadata_address_is_refused(
    fetcher: DocumentFetcher, server: str
) -> None:
    url = f"{server}/redirect?to=http://169.254.169.254/latest/meta-data/"
    error = await unavailable(fetcher, url, sandboxed(server))
    assert "169.254.169.254 is not on" in error.message


async def test_redirect_within_the_allowed_host_is_followed(
    fetcher: DocumentFetcher, server: str
) -> None:
    document = await fetcher.fetch(ref(f"{server}/redirect?to=/doc.pdf"), sandboxed(server))
    assert document.content == PDF


# --- what comes back ---------------------------------------------------------------------


async def test_html_page_served_as_invoice_pdf_is_refused(
    fetcher: DocumentFetcher, server: str
) -> None:
    error = await unavailable(fetcher, f"{server}/invoice.pdf", sandboxed(server))
    assert "not a PDF, PNG, JPEG or TIFF file (it is an HTML page)" in error.message


@pytest.mark.parametrize("path", ["/big.pdf", "/stream-big.pdf"])
async def test_oversized_file_is_refused(fetcher: DocumentFetcher, server: str, path: str) -> None:
    error = await unavailable(fetcher, f"{server}{path}", sandboxed(server))
    assert f"over the {CAP}" in error.message


async def test_missing_document_names_the_status_but_never_the_signature(
    fetcher: DocumentFetcher, server: str
) -> None:
    error = await unavailable(
        fetcher, f"{server}/missing.pdf?expires=1&signature=TOPSECRET", sandboxed(server)
    )
    assert "HTTP 404" in error.message
    assert "TOPSECRET" not in error.message and "TOPSECRET" not in repr(error.detail)
    assert "missing.pdf" not in error.message  # the path is not echoed either


async def test_a_slow_source_hits_the_deadline(server: str) -> None:
    fetcher = DocumentFetcher(allowed_dirs=[], timeout=0.5)
    error = await unavailable(fetcher, f"{server}/slow.pdf", sandboxed(server))
    assert "no complete answer within 0.5 s" in error.message
    assert error.detail["transient"] is True


async def test_a_5xx_is_retried(fetcher: DocumentFetcher, server: str) -> None:
    document = await fetcher.fetch(ref(f"{server}/flaky.png", "scan.png"), sandboxed(server))
    assert document.content_type == "image/png"


# --- files (unchanged behaviour) and the static check ------------------------------------


async def test_file_documents_only_from_allowed_folders(tmp_path: Path) -> None:
    inside = tmp_path / "allowed"
    inside.mkdir()
    (inside / "a.pdf").write_bytes(PDF)
    (tmp_path / "b.pdf").write_bytes(PDF)
    fetcher = DocumentFetcher(allowed_dirs=[inside])
    assert (await fetcher.fetch(ref((inside / "a.pdf").as_uri()), PLAIN_TENANT)).content == PDF
    error = await unavailable(fetcher, (tmp_path / "b.pdf").as_uri(), PLAIN_TENANT)
    assert "its folder is not one this tenant allows" in error.message


def test_static_check_without_network() -> None:
    fetcher = DocumentFetcher(allowed_dirs=[])
    assert fetcher.check(ref("https://docs.example.com/x.pdf"), PLAIN_TENANT) is None
    assert "file URL scheme" in (fetcher.check(ref("file:///etc/passwd"), PLAIN_TENANT) or "")
    assert fetcher.check(ref("http://127.0.0.1:9/x.pdf"), SANDBOX_TENANT) is None
    assert fetcher.check(ref("http://127.0.0.1:9/x.pdf"), PLAIN_TENANT) is not None


def test_host_rules() -> None:
    assert HostRule.parse("Docs.Example.com.") == HostRule("docs.example.com", None)
    assert HostRule.parse("[::1]:8080") == HostRule("::1", 8080)
    assert HostRule.parse("127.0.0.1:80").loopback_grant
    assert not HostRule.parse("169.254.169.254").loopback_grant
    assert not HostRule.parse("10.0.0.1").loopback_grant
    assert HostRule.parse("*.example.com").matches("a.example.com", 443)
    assert not HostRule.parse("*.example.com").matches("example.com", 443)
    assert not HostRule.parse("*.example.com").matches("aexample.com", 443)


async def test_request_logs_never_carry_the_signature(
    fetcher: DocumentFetcher, server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await fetcher.fetch(ref(f"{server}/doc.pdf?expires=9&signature=TOPSECRET"), sandboxed(server))
    assert "doc.pdf" in caplog.text  # the request was logged...
    assert "TOPSECRET" not in caplog.text  # ...without its query


# --- a loopback entry names its port (security review: SSRF through "127.0.0.1") -----------


def test_a_loopback_entry_without_a_port_is_refused_by_the_tenants_file() -> None:
    for entry in ("127.0.0.1", "localhost", "[::1]", "::1", "127.0.0.2"):
        with pytest.raises(TenantsFileError, match="without a port"):
            tenant("bare", [entry])
    assert tenant("ported", ["127.0.0.1:8091", "[::1]:8091", "docs.example.com"])


async def test_a_loopback_grant_reaches_its_own_port_only(server: str) -> None:
    fetcher = DocumentFetcher(allowed_dirs=[], max_bytes=CAP)
    other_port = int(server.rsplit(":", 1)[1]) + 1
    error = await unavailable(fetcher, f"http://127.0.0.1:{other_port}/x.pdf", sandboxed(server))
    # Refused before any connection: what answers on that port is never revealed.
    assert "is not on tenant sandboxed's document_hosts" in error.message
    assert "reached" not in error.message and "HTTP" not in error.message
    assert HostRule.parse("127.0.0.1").loopback_grant is False
    assert HostRule.parse("127.0.0.1:8091").loopback_grant is True
