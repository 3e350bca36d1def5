"""Telling people about parked invoices: Slack incoming webhooks and e-mail over SMTP.

A ``Digest`` is one message about one tenant and one reason: the invoices it covers
(supplier, number, amount), the reason in plain words, what to do, and the replay command.
``channels_for`` builds the tenant's channels from its ``[notify]`` table and the environment;
``deliver`` sends one digest on one channel with capped, jittered retries.

Secrets (the webhook URL, the SMTP login) come from the environment and never reach a log
line or an exception message: errors name the channel and the tenant, not the address.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import socket
import ssl
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from adapters.http import backoff
from domain.errors import ADVICE, Reason
from domain.tenants import EmailNotify, Tenant

log = logging.getLogger("billstream.notify")

# The reason as a finance person would say it: the subject line and the headline.
TITLES: dict[Reason, str] = {
    Reason.VALIDATION: "the invoice data is incomplete or inconsistent",
    Reason.MAPPING_MISSING: "a category or tax rate has no GL mapping",
    Reason.CURRENCY_MISMATCH: "the currency is not enabled for the company",
    Reason.VENDOR_NOT_FOUND: "the supplier is not in Sage",
    Reason.PERIOD_CLOSED: "the accounting period is closed",
    Reason.DUPLICATE: "a bill with the same supplier and number is already in Sage",
    Reason.POSSIBLE_DUPLICATE: "the invoice looks like one billstream has already seen",
    Reason.AUTH: "Sage refused billstream's credentials",
    Reason.RATE_LIMITED: "Sage kept throttling billstream",
    Reason.UNAVAILABLE: "Sage or the network was unavailable",
    Reason.DOCUMENT_UNAVAILABLE: "the original document could not be fetched",
    Reason.ATTACHMENT_FAILED: "the PDF could not be attached to the bill",
    Reason.ATTACHMENT_TOO_LARGE: "the document is too large for Sage, even compressed",
    Reason.ATTACHMENT_TYPE: "Sage does not take this kind of document",
    Reason.UNREADABLE: "a record in the event log could not be read",
}

SLACK_MAX_ITEMS = 15  # Slack folds long messages; the rest is one command away
EMAIL_MAX_ITEMS = 1000
MESSAGE_CHARS = 240


def replay_command(reason: Reason, tenant_id: str) -> str:
    """What to run about a reason: a replay, or the review for held duplicates."""
    if reason is Reason.POSSIBLE_DUPLICATE:
        return f"billstream duplicates held --tenant {tenant_id}"
    return f"billstream replay --reason {reason.value} --tenant {tenant_id}"


@dataclass(frozen=True)
class DigestItem:
    key: str  # tenant:dext_item_id
    supplier: str
    number: str
    amount: str  # "GBP 120.00", as the invoice says it
    message: str  # the human message of the failure
    resolved: bool = False  # reached Sage since (a replay ran before the digest went out)


@dataclass(frozen=True)
class Digest:
    tenant_id: str
    tenant_name: str
    reason: Reason
    items: Sequence[DigestItem]
    page_url: str | None = None

    @property
    def title(self) -> str:
        return TITLES[self.reason]

    @property
    def advice(self) -> str:
        return ADVICE[self.reason]

    @property
    def command(self) -> str:
        return replay_command(self.reason, self.tenant_id)

    @property
    def who(self) -> str:
        name = " ".join(self.tenant_name.split())  # no line breaks into a header
        return f"{name} ({self.tenant_id})" if name and name != self.tenant_id else self.tenant_id

    @property
    def headline(self) -> str:
        n = len(self.items)
        return f"{n} invoice{'s' if n != 1 else ''} parked for {self.who}: {self.title}"

    @property
    def resolved(self) -> int:
        return sum(1 for i in self.items if i.resolved)


def _clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _item_line(item: DigestItem) -> str:
    done = "  (since reached Sage)" if item.resolved else ""
    return f"{item.supplier} · {item.number} · {item.amount}  [{item.key}]{done}"


def render_email(digest: Digest) -> tuple[str, str]:
    """(subject, plain-text body)."""
    lines = [
        digest.headline + ".",
        "",
        f"Why: {digest.title}.",
        f"What to do: {digest.advice}",
        "",
        "Replay them once that is done:",
        f"    {digest.command}",
    ]
    if digest.page_url:
        lines += ["", f"Or press Replay on the operator page: {digest.page_url}"]
    if digest.resolved:
        lines += ["", f"{digest.resolved} of them reached Sage since (replayed already)."]
    lines += ["", "Invoices:"]
    for item in digest.items[:EMAIL_MAX_ITEMS]:
        lines.append(f"  - {_item_line(item)}")
        lines.append(f"      {_clip(item.message)}")
    more = len(digest.items) - EMAIL_MAX_ITEMS
    if more > 0:
        lines.append(f"  … and {more} more (the replay command covers them all)")
    lines += ["", "-- ", "billstream: Dext invoices into Sage as draft bills"]
    subject = f"billstream: {digest.headline}"
    return subject, "\n".join(lines) + "\n"


def _slack_escape(text: str) -> str:
    # Slack mrkdwn reserves these three; everything else from Dext is shown as typed.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_slack(digest: Digest) -> dict[str, object]:
    """An incoming-webhook payload: one mrkdwn text, short enough never to be truncated."""
    e = _slack_escape
    lines = [
        f"*{e(digest.headline)}*",
        f"What to do: {e(digest.advice)}",
        f"Replay them: `{e(digest.command)}`",
    ]
    if digest.page_url:
        lines.append(f"<{digest.page_url}|Open the operator page>")
    if digest.resolved:
        lines.append(f"_{digest.resolved} of them reached Sage since (replayed already)._")
    for item in digest.items[:SLACK_MAX_ITEMS]:
        lines.append(f"• {e(_item_line(item))}")
    more = len(digest.items) - SLACK_MAX_ITEMS
    if more > 0:
        lines.append(f"_… and {more} more; the replay command covers them all._")
    if digest.items:
        lines.append(f"> {e(_clip(digest.items[0].message))}")
    text = "\n".join(lines)
    return {"text": text, "unfurl_links": False, "unfurl_media": False}


# -- channels -----------------------------------------------------------------------------


class NotifyError(Exception):
    """A channel could not deliver; ``transient`` errors are worth another try."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.retry_after = retry_after


class Channel(Protocol):
    name: str  # "slack" or "email": recorded per item, so each channel delivers once

    async def send(self, digest: Digest) -> None:
        """Deliver once or raise ``NotifyError``."""
        ...


@dataclass
class SlackWebhook:
    """A Slack incoming webhook (the URL is the secret: it is never logged or shown)."""

    url: str = field(repr=False)
    tenant_id: str
    timeout: float = 15.0
    name: str = "slack"

    async def send(self, digest: Digest) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(self.url, json=render_slack(digest)) as resp,
            ):
                body = (await resp.text())[:200]
                status = resp.status
                after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise NotifyError(
                f"Slack webhook of tenant {self.tenant_id}: no answer ({type(exc).__name__})",
                transient=True,
            ) from None
        if status == 200:
            return
        what = f"Slack webhook of tenant {self.tenant_id}: HTTP {status} {_clip(body, 80)!r}"
        if status == 429 or status >= 500:
            retry_after = float(after) if after and after.isdigit() else None
            raise NotifyError(what, transient=True, retry_after=retry_after)
        # 400 invalid_payload, 403 action_prohibited, 404 no_service, 410 channel archived:
        # asking again changes nothing; someone must fix the webhook.
        raise NotifyError(what, transient=False)


@dataclass
class SmtpEmail:
    """E-mail through an SMTP relay: STARTTLS (or implicit TLS) and a login when named."""

    config: EmailNotify
    tenant_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 20.0
    name: str = "email"

    def message(self, digest: Digest) -> EmailMessage:
        subject, body = render_email(digest)
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = make_msgid(idstring=uuid.uuid4().hex[:12], domain="billstream")
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        msg.set_content(body)
        return msg

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file)

    def _open(self) -> smtplib.SMTP:
        """A connection ready to send: secured and logged in as configured."""
        cfg = self.config
        smtp: smtplib.SMTP
        if cfg.security == "tls":
            smtp = smtplib.SMTP_SSL(
                cfg.host, cfg.effective_port, timeout=self.timeout, context=self._tls()
            )
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.effective_port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if cfg.security == "starttls":
                smtp.starttls(context=self._tls())
                smtp.ehlo()
            if self.username is not None and self.password is not None:
                smtp.login(self.username, self.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _send_blocking(self, msg: EmailMessage) -> None:
        with self._open() as smtp:
            smtp.send_message(msg)

    def _check_blocking(self) -> None:
        with self._open() as smtp:
            smtp.noop()

    def _error(self, exc: BaseException) -> NotifyError:
        where = f"SMTP relay {self.config.host}:{self.config.effective_port} of tenant "
        where += self.tenant_id
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return NotifyError(
                f"{where}: login refused ({exc.smtp_code}); check the variables named by "
                "username_env and password_env",
                transient=False,
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return NotifyError(f"{where}: every recipient was refused", transient=False)
        if isinstance(exc, smtplib.SMTPResponseException):
            said = exc.smtp_error
            text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
            # 4xx is "try again later" in SMTP; 5xx is final.
            return NotifyError(
                f"{where}: {exc.smtp_code} {text[:120]}", transient=400 <= exc.smtp_code < 500
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return NotifyError(f"{where}: {exc} (check security)", transient=False)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return NotifyError(
                f"{where}: its certificate is not trusted ({exc.verify_message}); set ca_file",
                transient=False,
            )
        if isinstance(exc, smtplib.SMTPException | OSError | socket.timeout):
            return NotifyError(f"{where}: {type(exc).__name__}: {exc}", transient=True)
        return NotifyError(f"{where}: {type(exc).__name__}", transient=True)

    async def send(self, digest: Digest) -> None:
        msg = self.message(digest)
        try:
            # smtplib is blocking: a thread keeps the worker's event loop (the stages) free.
            await asyncio.to_thread(self._send_blocking, msg)
        except Exception as exc:
            raise self._error(exc) from None

    async def check(self) -> None:
        """Connect, secure, log in and say NOOP: what sending needs, without a message."""
        try:
            await asyncio.to_thread(self._check_blocking)
        except Exception as exc:
            raise self._error(exc) from None


@dataclass(frozen=True)
class Channels:
    """A tenant's working channels, and what is wrong with the ones that cannot work."""

    channels: list[Channel]
    problems: list[str]


def channels_for(tenant: Tenant, env: Mapping[str, str]) -> Channels:
    cfg = tenant.notify
    if cfg is None:
        return Channels([], [])
    channels: list[Channel] = []
    problems: list[str] = []
    if cfg.slack_webhook_env:
        url = env.get(cfg.slack_webhook_env, "").strip()
        if not url:
            problems.append(f"{cfg.slack_webhook_env} is not set (the Slack webhook URL)")
        elif not url.startswith(("https://", "http://")):
            problems.append(f"{cfg.slack_webhook_env} does not hold an http(s) URL")
        else:
            channels.append(SlackWebhook(url=url, tenant_id=tenant.id))
    if cfg.email is not None:
        email = cfg.email
        user = env.get(email.username_env, "") if email.username_env else None
        password = env.get(email.password_env, "") if email.password_env else None
        missing = [
            name
            for name, value in ((email.username_env, user), (email.password_env, password))
            if name and not value
        ]
        if missing:
            problems.append(f"{', '.join(missing)} not set (the SMTP login)")
        else:
            channels.append(
                SmtpEmail(config=email, tenant_id=tenant.id, username=user, password=password)
            )
    return Channels(channels, problems)


# -- delivery with retries ----------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRetries:
    """Tries per digest delivery, and the backoff between them (seconds: the first wait is at
    most twice ``initial``, each next one at most twice the last, up to ``maximum``)."""

    attempts: int = 4
    initial: float = 1.0
    maximum: float = 30.0


def _wait(policy: DeliveryRetries) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = exc.retry_after if isinstance(exc, NotifyError) else None
        # attempt + 1: the first wait is up to 2 x initial, as it always was here.
        return backoff(
            state.attempt_number + 1, policy.maximum, base=policy.initial, retry_after=hint
        )

    return wait


async def deliver(channel: Channel, digest: Digest, policy: DeliveryRetries | None = None) -> None:
    """Send with retries for transient failures; raise the last ``NotifyError`` otherwise."""
    policy = policy or DeliveryRetries()

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s digest (%s, %s): try %d failed, retrying: %s",
            channel.name,
            digest.tenant_id,
            digest.reason.value,
            state.attempt_number,
            exc.message if isinstance(exc, NotifyError) else type(exc).__name__,
        )

    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=_wait(policy),
        retry=retry_if_exception(lambda e: isinstance(e, NotifyError) and e.transient),
        reraise=True,
        before_sleep=log_retry,
    ):
        with attempt:
            await channel.send(digest)
