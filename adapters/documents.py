"""Fetching an item's original document for the attach stage, safely.

Only what a tenant allows is read:

- ``file:`` documents from configured folders (the sample set, an export folder);
- ``https:`` documents from hosts on the tenant's ``document_hosts`` allow-list. An entry is a
  host name (``docs.example.com``), a wildcard for its sub-domains (``*.example.com``), and
  may carry a port (``docs.example.com:8443``). After DNS resolution every address must be a
  public one: a listed name that resolves to a private, loopback or link-local address (DNS
  rebinding, a poisoned record, a cloud metadata endpoint) is refused, and the connection is
  made to the vetted address itself so the answer cannot change between check and use;
- ``http:`` only to a loopback address that the tenant lists *literally, with its port*
  (``127.0.0.1:8091``, ``[::1]:8091``, ``localhost:8091``): the local sandboxes. Listing a
  loopback address and port is the only way to lift the private-address ban, it lifts it for
  that tenant, host and port only, and it never extends to other private or link-local ranges
  (listing ``169.254.169.254`` or ``10.0.0.5`` grants nothing). A loopback entry without a
  port grants nothing: the tenants file refuses it.

Redirects are followed by hand, each hop checked by the same rules. The size is capped before
and while reading, the whole download has a deadline, and the bytes must really be a PDF,
PNG, JPEG or TIFF. Anything else is ``document_unavailable`` with the reason. Messages and
logs name the file and the host, never the URL: its query is often a signature.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from adapters.http import backoff
from domain.errors import Reason, StageError
from domain.models import Document, DocumentRef
from domain.tenants import Tenant

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_REDIRECTS = 5

_MAGIC: list[tuple[bytes, str]] = [
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
Links = Callable[[DocumentRef, Tenant], Awaitable[DocumentRef]]
# Schemes of references a source keeps in the log instead of a signed link.
REFERENCE_SCHEMES = frozenset({"dext"})


class _RedactQueries(logging.Filter):
    """httpx logs every request's full URL at INFO; a document link's query is a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, httpx.URL) and a.query for a in record.args
        ):
            record.args = tuple(
                a.copy_with(query=b"redacted") if isinstance(a, httpx.URL) and a.query else a
                for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_RedactQueries())


def sniff(content: bytes) -> str | None:
    """The real type of a document from its first bytes, whatever its name says."""
    for magic, mime in _MAGIC:
        if content.startswith(magic):
            return mime
    return None


def _looks_like(content: bytes) -> str:
    head = content[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return " (it is an HTML page)"
    if head.startswith((b"{", b"[")):
        return " (it is JSON)"
    if not content:
        return " (it is empty)"
    return ""


def _unavailable(
    ref: DocumentRef, why: str, *, host: str | None = None, transient: bool = False
) -> StageError:
    # The URL's query may be a signature: name the file (and host), never the full URL.
    detail: dict[str, object] = {"filename": ref.filename, "transient": transient}
    if host:
        detail["host"] = host
    return StageError(
        Reason.DOCUMENT_UNAVAILABLE,
        f"Document {ref.filename!r} is unavailable: {why}.",
        detail=detail,
    )


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 scope id
        if address not in out:
            out.append(address)
    return out


@dataclass(frozen=True)
class HostRule:
    """One ``document_hosts`` entry."""

    host: str
    port: int | None

    @classmethod
    def parse(cls, entry: str) -> HostRule:
        text = entry.strip().lower().rstrip(".")
        if text.startswith("["):  # [::1]:8080
            host, _, rest = text[1:].partition("]")
            return cls(host, int(rest[1:]) if rest.startswith(":") else None)
        if text.count(":") == 1:
            host, _, port = text.partition(":")
            return cls(host, int(port)) if port.isdigit() else cls(text, None)
        return cls(text, None)

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def loopback_grant(self) -> bool:
        """Listed literally as loopback *with its port*: the only way to allow http and a
        non-public address. Without the port anyone who can push an item could make the
        worker fetch from every local service (and read which ports answer)."""
        return self.loopback and self.port is not None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and host != self.host[2:]
        return host == self.host


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _is_public(ip.ipv4_mapped)
    return ip.is_global and not ip.is_multicast


class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


class _Transient(Exception):
    """A failure worth another try (connection trouble, 429, 5xx)."""


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str
    port: int
    rule: HostRule


class DocumentFetcher:
    """The ``DocumentSource`` port: file documents from allowed folders, https from allowed
    hosts, http from loopback sandboxes a tenant lists."""

    def __init__(
        self,
        *,
        allowed_dirs: list[Path],
        max_bytes: int = MAX_DOCUMENT_BYTES,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_redirects: int = MAX_REDIRECTS,
        attempts: int = 3,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        links: Links | None = None,
    ) -> None:
        self.allowed_dirs = [d.resolve() for d in allowed_dirs]
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.attempts = attempts
        self._resolve = resolver or system_resolver
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        # Turns a reference the log keeps (``dext://…``) into a download link when needed.
        self._links = links

    def _http(self) -> httpx.AsyncClient:
        # One client for the fetcher's life: building one per download costs an SSL context
        # (tens of ms of CPU on the event loop) and throws away pooled connections.
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                trust_env=False,  # a proxy from the environment would bypass the address checks
                follow_redirects=False,
                timeout=httpx.Timeout(self.timeout),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        close = getattr(self._links, "aclose", None)
        if close is not None:
            await close()

    async def fetch(self, ref: DocumentRef, tenant: Tenant) -> Document:
        scheme = urlparse(ref.url).scheme.lower()
        if scheme in REFERENCE_SCHEMES:
            if self._links is None:
                raise _unavailable(
                    ref,
                    f"it is a {scheme}: reference and this worker cannot resolve it (set "
                    "BILLSTREAM_DEXT_API_URL and its credentials for the worker)",
                )
            ref = await self._links(ref, tenant)
            scheme = urlparse(ref.url).scheme.lower()
            if scheme not in ("http", "https"):
                raise _unavailable(ref, "the source gave a link that is not http(s)")
        if scheme == "file":
            content = await asyncio.to_thread(self._read_file, ref, tenant)
        elif scheme in ("http", "https"):
            try:
                async with asyncio.timeout(self.timeout):
                    content = await self._download(ref, tenant)
            except TimeoutError:
                raise _unavailable(
                    ref, f"no complete answer within {self.timeout:g} s", transient=True
                ) from None
        else:
            raise _unavailable(ref, f"the {scheme or 'missing'} URL scheme is not allowed")
        mime = sniff(content)
        if mime is None:
            raise _unavailable(
                ref, f"it is not a PDF, PNG, JPEG or TIFF file{_looks_like(content)}"
            )
        return Document.of(ref.filename, mime, content)

    def check(self, ref: DocumentRef, tenant: Tenant) -> str | None:
        """Why this URL would be refused without going to the network, or None if it may be
        tried (DNS and the answer are checked at fetch time)."""
        if urlparse(ref.url).scheme.lower() in REFERENCE_SCHEMES:
            return None  # resolved, and its link checked, when the document is fetched
        try:
            self._vet(httpx.URL(ref.url), tenant, ref)
        except StageError as exc:
            return exc.message
        except httpx.InvalidURL:
            return "the URL is not valid"
        return None

    # --- files -----------------------------------------------------------------------------

    def _read_file(self, ref: DocumentRef, tenant: Tenant) -> bytes:
        path = Path(unquote(urlparse(ref.url).path)).resolve()
        roots = self.allowed_dirs + [Path(d).resolve() for d in tenant.document_dirs]
        if not any(path.is_relative_to(root) for root in roots):
            raise _unavailable(ref, "its folder is not one this tenant allows")
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise _unavailable(ref, f"it is {size} bytes, over the {self.max_bytes} cap")
            return path.read_bytes()
        except FileNotFoundError:
            raise _unavailable(ref, "the file does not exist") from None
        except OSError as exc:
            raise _unavailable(ref, exc.strerror or "it cannot be read") from None

    # --- http(s) ---------------------------------------------------------------------------

    def _vet(self, url: httpx.URL, tenant: Tenant, ref: DocumentRef) -> _Target:
        scheme = url.scheme.lower()
        host = url.host.lower().rstrip(".")
        if scheme not in ("http", "https"):
            raise _unavailable(ref, f"the {scheme or 'missing'} URL scheme is not allowed")
        if not host:
            raise _unavailable(ref, "the URL has no host")
        if url.userinfo:
            raise _unavailable(
                ref, "URLs carrying a user name or password are not allowed", host=host
            )
        port = url.port or (443 if scheme == "https" else 80)
        rule = next(
            (r for r in map(HostRule.parse, tenant.document_hosts) if r.matches(host, port)), None
        )
        if rule is None:
            raise _unavailable(
                ref, f"the host {host} is not on tenant {tenant.id}'s document_hosts", host=host
            )
        if scheme == "http" and not rule.loopback_grant:
            raise _unavailable(
                ref, f"plain http is allowed only for a loopback sandbox, not for {host}", host=host
            )
        literal = _ip(host)
        if literal is not None and not self._address_ok(literal, rule):
            raise _unavailable(
                ref, f"{self._kind(literal)} address {host} is not allowed", host=host
            )
        return _Target(url=url, host=host, port=port, rule=rule)

    @staticmethod
    def _address_ok(ip: IPAddress, rule: HostRule) -> bool:
        if rule.loopback_grant:
            return ip.is_loopback or (
                isinstance(ip, ipaddress.IPv6Address)
                and ip.ipv4_mapped is not None
                and ip.ipv4_mapped.is_loopback
            )
        return _is_public(ip)

    @staticmethod
    def _kind(ip: IPAddress) -> str:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            return "the loopback"
        if ip.is_link_local:
            return "the link-local"
        if ip.is_private:
            return "the private"
        return "the non-public"

    async def _pick_address(self, target: _Target, ref: DocumentRef) -> str:
        if _ip(target.host) is not None:
            return target.host
        try:
            addresses = await self._resolve(target.host, target.port)
        except OSError:
            raise _unavailable(
                ref, f"the host {target.host} cannot be resolved", host=target.host, transient=True
            ) from None
        if not addresses:
            raise _unavailable(ref, f"the host {target.host} has no address", host=target.host)
        for text in addresses:
            ip = _ip(text)
            if ip is None or not self._address_ok(ip, target.rule):
                what = self._kind(ip) if ip is not None else "an invalid"
                raise _unavailable(
                    ref,
                    f"the host {target.host} resolves to {what} address {text}",
                    host=target.host,
                )
        return addresses[0]

    async def _download(self, ref: DocumentRef, tenant: Tenant) -> bytes:
        url = httpx.URL(ref.url)
        client = self._http()
        for _ in range(self.max_redirects + 1):
            target = self._vet(url, tenant, ref)
            address = await self._pick_address(target, ref)
            try:
                return await self._get_with_retries(client, target, address, ref)
            except _Redirect as redirect:
                try:
                    url = httpx.URL(urljoin(str(url), redirect.location))
                except httpx.InvalidURL:
                    raise _unavailable(
                        ref, "the source redirected to an invalid URL", host=target.host
                    ) from None
        raise _unavailable(ref, f"more than {self.max_redirects} redirects", host=url.host)

    async def _get_with_retries(
        self, client: httpx.AsyncClient, target: _Target, address: str, ref: DocumentRef
    ) -> bytes:
        last: _Transient | None = None
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(_Transient),
                stop=stop_after_attempt(self.attempts),
                wait=lambda state: backoff(state.attempt_number, 2.0),
                reraise=True,
            ):
                with attempt:
                    return await self._get(client, target, address, ref)
        except _Transient as exc:
            last = exc
        raise _unavailable(ref, str(last), host=target.host, transient=True)

    async def _get(
        self, client: httpx.AsyncClient, target: _Target, address: str, ref: DocumentRef
    ) -> bytes:
        # Connect to the vetted address; the name still goes in Host and in TLS (SNI and
        # certificate check), so the server sees an ordinary request for its own name.
        pinned = target.url.copy_with(host=address)
        host_header = target.url.netloc.decode("ascii").rpartition("@")[2]
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        request = client.build_request(
            "GET", pinned, headers={"Host": host_header}, extensions=extensions
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _Transient(
                f"the host {target.host} could not be reached ({type(exc).__name__})"
            ) from None
        try:
            status = response.status_code
            if status in (301, 302, 303, 307, 308):
                location = response.headers.get("location")
                if not location:
                    raise _unavailable(ref, f"HTTP {status} without a location", host=target.host)
                raise _Redirect(location)
            if status == 429 or status >= 500:
                raise _Transient(f"the host {target.host} kept failing (HTTP {status})")
            if status in (401, 403):
                raise _unavailable(
                    ref,
                    f"the host {target.host} refused access (HTTP {status}); a signed link may "
                    "have expired",
                    host=target.host,
                )
            if status != 200:
                raise _unavailable(
                    ref, f"the host {target.host} answered HTTP {status}", host=target.host
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise _unavailable(
                    ref, f"it is {declared} bytes, over the {self.max_bytes} cap", host=target.host
                )
            chunks: list[bytes] = []
            size = 0
            try:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise _unavailable(
                            ref, f"it is over the {self.max_bytes} bytes cap", host=target.host
                        )
                    chunks.append(chunk)
            except httpx.TransportError as exc:
                raise _Transient(
                    f"the download from {target.host} broke off ({type(exc).__name__})"
                ) from None
            return b"".join(chunks)
        finally:
            await response.aclose()
