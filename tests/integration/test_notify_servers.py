"""Real local servers for the notification tests, and the channels tested against them.

``SmtpServer``: aiosmtpd on loopback, STARTTLS required (a self-signed certificate made
here) and AUTH required after it. ``SlackReceiver``: an aiohttp server standing in for a
Slack incoming webhook, answering ``ok`` or failing on demand. Both run on a thread of
their own, so a worker in another process and a test in this one can both use them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from adapters.notify import (
    DeliveryRetries,
    Digest,
    DigestItem,
    NotifyError,
    SlackWebhook,
    SmtpEmail,
    channels_for,
    deliver,
)
from domain.errors import Reason
from domain.tenants import EmailNotify, parse_tenants
from tests.support import wait_until as wait_until  # test_notify_pipeline takes it from here

SMTP_USER = "billstream-relay"
SMTP_PASSWORD = "relay-password-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class _Inbox:
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls_seen: list[bool] = field(default_factory=list)
    fail_next: int = 0  # answer 451 (try later) to the next N messages

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_next > 0:
            self.fail_next -= 1
            return "451 4.3.0 try again later"
        self.tls_seen.append(session.ssl is not None)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


class SmtpServer:
    """aiosmtpd with STARTTLS and AUTH both required."""

    def __init__(self, directory: Path) -> None:
        import ssl

        self.cert, key = self_signed(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.inbox = _Inbox()
        self.port = free_port()

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and data.login == SMTP_USER.encode()
                and data.password == SMTP_PASSWORD.encode()
            )
            if ok:
                self.inbox.logins.append(SMTP_USER)
            return AuthResult(success=ok, handled=False)

        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=authenticate,
        )

    @property
    def messages(self) -> list[EmailMessage]:
        return self.inbox.messages

    def config(self, **over: Any) -> EmailNotify:
        values: dict[str, Any] = {
            "to": ["ap-team@acme.example"],
            "sender": "billstream@acme.example",
            "host": "127.0.0.1",
            "port": self.port,
            "security": "starttls",
            "username_env": "T_SMTP_USER",
            "password_env": "T_SMTP_PASSWORD",
            "ca_file": str(self.cert),
        }
        values.update(over)
        return EmailNotify.model_validate(values)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class SlackReceiver:
    """A stand-in for a Slack incoming webhook on loopback, in a thread of its own."""

    PATH = "/services/T000/B000/test-secret-part"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.requests = 0
        self.fail_next = 0  # answer 503 to the next N posts
        self.status: int | None = None  # answer every post with this status (e.g. 404)
        self.delay = 0.0  # seconds before answering
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.PATH}"

    async def _post(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status is not None:
            return web.Response(status=self.status, text="no_service")
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503, text="unavailable")
        body = await request.json()
        if not isinstance(body, dict) or not body.get("text"):
            return web.Response(status=400, text="no_text")
        self.messages.append(body)
        return web.Response(text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post(self.PATH, self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> SlackReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# -- the channels against them ----------------------------------------------------------------


def digest(n: int = 3, reason: Reason = Reason.PERIOD_CLOSED) -> Digest:
    return Digest(
        tenant_id="acme-uk",
        tenant_name="Acme Trading Ltd",
        reason=reason,
        items=[
            DigestItem(
                key=f"acme-uk:DX-{i}",
                supplier=f"Supplier <{i}> & Sons",
                number=f"INV-{i}",
                amount=f"GBP {i}00.00",
                message=f"The period 2026-09 is closed in acme-uk; bill INV-{i} cannot be posted.",
            )
            for i in range(1, n + 1)
        ],
    )


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


async def test_email_goes_through_starttls_and_login(smtp: SmtpServer) -> None:
    channel = SmtpEmail(
        config=smtp.config(), tenant_id="acme-uk", username=SMTP_USER, password=SMTP_PASSWORD
    )
    await channel.send(digest())
    (msg,) = smtp.messages
    assert smtp.inbox.tls_seen == [True] and smtp.inbox.logins == [SMTP_USER]
    assert msg["Subject"] == (
        "billstream: 3 invoices parked for Acme Trading Ltd (acme-uk): "
        "the accounting period is closed"
    )
    assert msg["To"] == "ap-team@acme.example"
    body = msg.get_content()
    assert "billstream replay --reason period_closed --tenant acme-uk" in body
    for i in (1, 2, 3):
        assert f"Supplier <{i}> & Sons · INV-{i} · GBP {i}00.00" in body
    assert "Reopen the period in Sage" in body


async def test_a_wrong_password_is_a_permanent_error_that_names_no_secret(
    smtp: SmtpServer,
) -> None:
    channel = SmtpEmail(
        config=smtp.config(), tenant_id="acme-uk", username=SMTP_USER, password="not-it"
    )
    with pytest.raises(NotifyError) as info:
        await deliver(channel, digest(), DeliveryRetries(attempts=3, initial=0.01))
    assert not info.value.transient
    assert "login refused" in info.value.message and "not-it" not in info.value.message
    assert smtp.messages == []


async def test_an_untrusted_certificate_is_refused(smtp: SmtpServer) -> None:
    channel = SmtpEmail(
        config=smtp.config(ca_file=None),
        tenant_id="acme-uk",
        username=SMTP_USER,
        password=SMTP_PASSWORD,
    )
    with pytest.raises(NotifyError) as info:
        await channel.send(digest())
    assert not info.value.transient and "not trusted" in info.value.message


async def test_a_busy_relay_is_retried(smtp: SmtpServer) -> None:
    smtp.inbox.fail_next = 2
    channel = SmtpEmail(
        config=smtp.config(), tenant_id="acme-uk", username=SMTP_USER, password=SMTP_PASSWORD
    )
    await deliver(channel, digest(), DeliveryRetries(attempts=4, initial=0.01, maximum=0.05))
    assert len(smtp.messages) == 1


async def test_smtp_check_logs_in_without_sending(smtp: SmtpServer) -> None:
    channel = SmtpEmail(
        config=smtp.config(), tenant_id="acme-uk", username=SMTP_USER, password=SMTP_PASSWORD
    )
    await channel.check()
    assert smtp.inbox.logins == [SMTP_USER] and smtp.messages == []


async def test_slack_gets_one_short_message(slack: SlackReceiver) -> None:
    await SlackWebhook(url=slack.url, tenant_id="acme-uk").send(digest(40))
    (msg,) = slack.messages
    text = msg["text"]
    assert text.startswith("*40 invoices parked for Acme Trading Ltd (acme-uk)")
    assert "`billstream replay --reason period_closed --tenant acme-uk`" in text
    assert "Supplier &lt;1&gt; &amp; Sons · INV-1 · GBP 100.00" in text  # mrkdwn-escaped
    assert "INV-15 " in text and "INV-16 " not in text
    assert "… and 25 more" in text
    assert len(text) < 4000


async def test_slack_failures_are_retried_then_delivered(slack: SlackReceiver) -> None:
    slack.fail_next = 2
    channel = SlackWebhook(url=slack.url, tenant_id="acme-uk")
    await deliver(channel, digest(), DeliveryRetries(attempts=4, initial=0.01, maximum=0.05))
    assert slack.requests == 3 and len(slack.messages) == 1


async def test_a_revoked_webhook_is_not_retried_and_not_shown(slack: SlackReceiver) -> None:
    slack.status = 404
    channel = SlackWebhook(url=slack.url, tenant_id="acme-uk")
    with pytest.raises(NotifyError) as info:
        await deliver(channel, digest(), DeliveryRetries(attempts=4, initial=0.01))
    assert slack.requests == 1 and not info.value.transient
    assert "HTTP 404" in info.value.message and "test-secret-part" not in info.value.message
    assert "test-secret-part" not in repr(channel)


async def test_a_slow_webhook_times_out_as_transient(slack: SlackReceiver) -> None:
    slack.delay = 2.0
    channel = SlackWebhook(url=slack.url, tenant_id="acme-uk", timeout=0.3)
    with pytest.raises(NotifyError) as info:
        await channel.send(digest())
    assert info.value.transient and "test-secret-part" not in info.value.message


def test_channels_come_from_the_tenant_and_the_environment(tmp_path: Path) -> None:
    tenant = parse_tenants(
        """
[tenants.t1]
base_currency = "GBP"
ledger = { company = "t1" }
[tenants.t1.notify]
slack_webhook_env = "T1_SLACK"
[tenants.t1.notify.email]
to = ["ap@t1.example"]
sender = "bs@t1.example"
host = "smtp.t1.example"
username_env = "T1_USER"
password_env = "T1_PASSWORD"
"""
    ).get("t1")
    none = channels_for(tenant, {})
    assert none.channels == []
    assert none.problems == [
        "T1_SLACK is not set (the Slack webhook URL)",
        "T1_USER, T1_PASSWORD not set (the SMTP login)",
    ]
    env = {
        "T1_SLACK": "https://hooks.example/x",
        "T1_USER": "u",
        "T1_PASSWORD": "p",
    }
    found = channels_for(tenant, env)
    assert [c.name for c in found.channels] == ["slack", "email"] and found.problems == []
    assert "hooks.example" not in repr(found.channels[0]) and "'p'" not in repr(found.channels[1])
