"""``billstream check``: is everything billstream needs there and usable, tenant by tenant?

One line per check, each ``ok``, ``fail`` or ``skip``; a failed line says what to do. A skip
is not a failure: it says why nothing could be checked (the ledger cannot list its chart of
accounts, or the ledger connection already failed and the lines that need it would only
repeat that). Only reads: nothing is posted, created or moved, apart from what a connection
itself does (a Sage Accounting token refresh is stored, exactly as the worker stores it).

Per tenant: the Dext source, the Sage ledger (credentials; the sender's authorisation for
Intacct; the business for Sage Accounting), the folders documents are read from, the GL
accounts and tax codes of the mapping, whether today is in an open period, and the
notification channels. Kafka is checked once for all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from adapters.notify import SmtpEmail, channels_for
from domain.errors import LedgerError, Reason
from domain.ports import Ledger
from domain.tenants import Tenant, Tenants
from streams.config import Settings

Status = Literal["ok", "warn", "fail", "skip"]
CHECK_TIMEOUT = 45.0


@dataclass(frozen=True)
class Check:
    tenant: str | None  # None: shared by every tenant (Kafka)
    name: str
    status: Status
    detail: str
    advice: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@runtime_checkable
class AccountCatalog(Protocol):
    """A ledger that can say which GL accounts and tax codes it lacks (read-only).

    ``None`` means the ledger cannot tell (the company does not let the API read its chart).
    Implemented by the Sage Accounting and Sage Intacct ledgers; the local ledger accepts
    any account code, so it has nothing to check.
    """

    async def unknown_gl_accounts(self, codes: Collection[str]) -> list[str] | None: ...

    async def unknown_tax_codes(self, codes: Collection[str]) -> list[str] | None: ...


LedgerFactory = Callable[[Tenant], Ledger]


def _ledger_name(tenant: Tenant) -> str:
    kind = {
        "local": "local ledger",
        "intacct": "Sage Intacct",
        "sage-accounting": "Sage Accounting",
    }
    return f"{kind[tenant.ledger.kind]} {tenant.ledger.company}"


def ledger_advice(tenant: Tenant, err: LedgerError) -> str:
    """What to do about a ledger that refused us, for each kind of ledger."""
    prefix = tenant.ledger.credentials_env
    if err.reason is Reason.AUTH:
        if tenant.ledger.kind == "intacct":
            p = prefix or "BILLSTREAM_INTACCT"
            return (
                f"Check {p}_SENDER_ID / {p}_SENDER_PASSWORD (the Web Services sender) and "
                f"{p}_USER_ID / {p}_USER_PASSWORD; in Intacct, the company administrator must "
                "list the sender ID under Company > Setup > Company > Security > Web Services "
                "authorizations."
            )
        if tenant.ledger.kind == "sage-accounting":
            return (
                f"Reconnect the company: billstream connect sage-accounting --tenant {tenant.id}"
                f" (and check {prefix or '<credentials_env>'}_CLIENT_ID / _CLIENT_SECRET)."
            )
        return "Fix the ledger's credentials in the environment."
    if err.reason in (Reason.UNAVAILABLE, Reason.RATE_LIMITED):
        return "Sage did not answer properly; check the network and Sage's status, then again."
    return "Check the tenant's [ledger] section (company, url) in the tenants file."


async def _timed(name: str, tenant: str | None, work: Awaitable[Check | None]) -> Check | None:
    try:
        return await asyncio.wait_for(work, CHECK_TIMEOUT)
    except TimeoutError:
        return Check(
            tenant, name, "fail", f"no answer within {CHECK_TIMEOUT:.0f} s", "Check the network."
        )
    except Exception as exc:
        # A check must end in a line, never in a traceback that hides the other lines.
        return Check(
            tenant,
            name,
            "fail",
            f"could not be checked: {type(exc).__name__}: {exc}",
            "Check the configuration this line is about.",
        )


async def _line(name: str, tenant: str | None, work: Awaitable[Check]) -> Check:
    found = await _timed(name, tenant, work)
    assert found is not None
    return found


# -- Kafka --------------------------------------------------------------------------------


async def check_kafka(settings: Settings) -> Check:
    from streams.kafka.broker import noida_binary
    from streams.kafka.topics import days, describe_topics, retention_problems, topic_names

    if not settings.kafka_url:
        try:
            binary = noida_binary()
        except RuntimeError as exc:
            return Check(None, "kafka", "fail", str(exc), "Reinstall billstream (make install).")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(settings.data_dir, os.W_OK):
            return Check(
                None,
                "kafka",
                "fail",
                f"the data folder {settings.data_dir} is not writable",
                "Point BILLSTREAM_DATA_DIR at a writable folder.",
            )
        from streams.kafka.broker import embedded_log_warning

        warning = embedded_log_warning(settings.broker_dir)
        if warning:
            return Check(
                None,
                "kafka",
                "warn",
                warning,
                "Run Apache Kafka (docker compose up, or any cluster) and set "
                "BILLSTREAM_KAFKA_URL; see the README's section on the embedded broker.",
            )
        return Check(
            None,
            "kafka",
            "ok",
            f"embedded broker ({binary.name}): each command starts it on {settings.broker_dir}; "
            "set BILLSTREAM_KAFKA_URL for a shared Kafka",
        )
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.kafka.broker import bootstrap_of

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_of(settings.kafka_url), request_timeout_ms=10_000
    )
    try:
        await asyncio.wait_for(admin.start(), 15)
        existing = set(await asyncio.wait_for(admin.list_topics(), 15))
        present = [n for n in topic_names(settings).values() if n in existing]
        configs = await asyncio.wait_for(describe_topics(admin, present), 15) if present else {}
    except Exception as exc:
        return Check(
            None,
            "kafka",
            "fail",
            f"cannot reach {settings.kafka_url} ({type(exc).__name__})",
            "Check BILLSTREAM_KAFKA_URL and that the brokers are up.",
        )
    finally:
        await admin.close()
    missing = sorted(n for n in topic_names(settings).values() if n not in existing)
    if missing:
        return Check(
            None,
            "kafka",
            "fail",
            f"{settings.kafka_url} is up but lacks the topics {', '.join(missing)}",
            "Start a worker (billstream worker): it creates them with "
            f"{settings.partitions} partitions.",
        )
    short = retention_problems(settings, configs)
    if short:
        return Check(
            None,
            "kafka",
            "fail",
            "; ".join(short),
            "The stage topics are the audit log and what replay reads: set retention.ms to -1 "
            "(or BILLSTREAM_TOPIC_RETENTION_MS) and retention.bytes to -1 on them "
            "(kafka-configs.sh --alter --add-config).",
        )
    keep = days(settings.topic_retention_ms)
    return Check(
        None,
        "kafka",
        "ok",
        f"{settings.kafka_url}: the six {settings.topic_prefix}* topics exist, events kept {keep}",
    )


# -- per tenant ---------------------------------------------------------------------------


async def check_dext(tenant: Tenant, env: Mapping[str, str]) -> Check:
    from adapters.dext.api import ENV_URL, DextApiClient, DextApiConfig, DextApiError
    from adapters.dext.push import secret_env

    if env.get(ENV_URL):
        if not tenant.dext_account:
            return Check(
                tenant.id,
                "dext",
                "fail",
                f"{ENV_URL} is set but the tenant names no dext_account",
                f'Add dext_account = "..." to [tenants.{tenant.id}].',
            )
        try:
            config = DextApiConfig.from_env(env, [tenant.dext_account])
            async with DextApiClient(config, tenant.dext_account) as client:
                # A one-item page with no cursor: proves the token and the account, moves
                # nothing (the poller's cursor lives elsewhere).
                await client.list_items(None, config.statuses, 1)
        except DextApiError as exc:
            advice = {
                "config": "Set the Dext credentials named in the message.",
                "auth": "Renew the Dext token or client secret.",
                "access": f"Check dext_account of tenant {tenant.id} against Dext.",
            }.get(exc.kind, "Check the Dext API address and its status.")
            return Check(tenant.id, "dext", "fail", f"Dext API: {exc.message}", advice)
        return Check(tenant.id, "dext", "ok", f"Dext API answers for account {tenant.dext_account}")
    if env.get(secret_env(tenant.id)):
        return Check(tenant.id, "dext", "ok", f"push endpoint secret set ({secret_env(tenant.id)})")
    return Check(
        tenant.id,
        "dext",
        "skip",
        f"no Dext API ({ENV_URL}) nor push secret ({secret_env(tenant.id)}) is set; an "
        "export folder (billstream ingest folder) is checked when it runs",
        "Set one of them if this tenant's items are to come from Dext directly.",
    )


def check_documents(tenant: Tenant, settings: Settings) -> Check:
    folders = [Path(d) for d in settings.document_dirs] + [Path(d) for d in tenant.document_dirs]
    bad: list[str] = []
    for folder in folders:
        if not folder.is_dir():
            bad.append(f"{folder} does not exist")
        elif not os.access(folder, os.R_OK | os.X_OK):
            bad.append(f"{folder} is not readable")
    hosts = f"; download hosts {', '.join(tenant.document_hosts)}" if tenant.document_hosts else ""
    if bad:
        return Check(
            tenant.id,
            "documents",
            "fail",
            "; ".join(bad),
            "Create the folder or fix document_dirs (tenant) / BILLSTREAM_DOCUMENT_DIRS.",
        )
    if not folders and not tenant.document_hosts:
        return Check(tenant.id, "documents", "skip", "no document folder or host is configured")
    shown = ", ".join(str(f) for f in folders) or "none"
    return Check(tenant.id, "documents", "ok", f"readable: {shown}{hosts}")


async def check_ledger(tenant: Tenant, ledger: Ledger | LedgerError) -> Check:
    name = _ledger_name(tenant)
    if isinstance(ledger, LedgerError):
        return Check(tenant.id, "ledger", "fail", ledger.message, ledger_advice(tenant, ledger))
    try:
        await ledger.check_connection()
    except LedgerError as err:
        return Check(tenant.id, "ledger", "fail", err.message, ledger_advice(tenant, err))
    what = {
        "intacct": "session opened: sender authorised for the company",
        "sage-accounting": "token valid, business reachable",
        "local": "file opens",
    }[tenant.ledger.kind]
    return Check(tenant.id, "ledger", "ok", f"{name}: {what}")


async def check_mapping(tenant: Tenant, ledger: Ledger) -> Check:
    accounts = set(tenant.gl_accounts.values()) | {
        r.gl_account for r in tenant.suppliers.values() if r.gl_account
    }
    taxes = set(tenant.tax_codes.values()) | {
        r.tax_code for r in tenant.suppliers.values() if r.tax_code
    }
    if not isinstance(ledger, AccountCatalog):
        return Check(
            tenant.id,
            "mapping",
            "skip",
            f"the {ledger.kind} ledger keeps no chart of accounts: any code is accepted "
            f"({len(accounts)} GL accounts, {len(taxes)} tax codes mapped)",
        )
    try:
        gl = await ledger.unknown_gl_accounts(accounts)
        tax = await ledger.unknown_tax_codes(taxes)
    except LedgerError as err:
        return Check(tenant.id, "mapping", "fail", err.message, ledger_advice(tenant, err))
    if gl is None and tax is None:
        return Check(
            tenant.id,
            "mapping",
            "skip",
            "the company does not let the API read its GL accounts or tax details; the "
            "codes are checked as each bill posts (mapping_missing)",
        )
    problems: list[str] = []
    used_by = {account: category for category, account in tenant.gl_accounts.items()}
    for code in gl or []:
        problems.append(f"GL account {code} ({used_by.get(code, 'a supplier rule')})")
    rate_of = {code: rate for rate, code in tenant.tax_codes.items()}
    for code in tax or []:
        problems.append(f"tax code {code} (rate {rate_of.get(code, 'of a supplier rule')})")
    if problems:
        return Check(
            tenant.id,
            "mapping",
            "fail",
            f"not in {_ledger_name(tenant)}: {'; '.join(problems)}",
            f"Create them in Sage, or correct [tenants.{tenant.id}.gl_accounts] / "
            "[tax_codes] in the tenants file.",
        )
    unread = " (tax details not readable)" if tax is None else ""
    unread += " (GL accounts not readable)" if gl is None else ""
    return Check(
        tenant.id,
        "mapping",
        "ok",
        f"all {len(accounts)} GL accounts and {len(taxes)} tax codes exist{unread}",
    )


async def check_period(tenant: Tenant, ledger: Ledger, today: dt.date) -> Check:
    try:
        if await ledger.period_is_open(today):
            return Check(
                tenant.id, "period", "ok", f"today ({today.isoformat()}) is in an open period"
            )
        later = await ledger.next_open_day(today)
    except LedgerError as err:
        return Check(tenant.id, "period", "fail", err.message, ledger_advice(tenant, err))
    month = f"{today.year:04d}-{today.month:02d}"
    if tenant.closed_period == "redate" and later is not None:
        return Check(
            tenant.id,
            "period",
            "ok",
            f"today's period {month} is closed; policy redate posts bills on {later.isoformat()}",
        )
    return Check(
        tenant.id,
        "period",
        "fail",
        f"today ({today.isoformat()}) is in a closed period ({month}) of "
        f"{_ledger_name(tenant)}: bills dated today park as period_closed",
        f'Reopen {month} in Sage, or set closed_period = "redate" for tenant {tenant.id} '
        "to post to the next open period.",
    )


async def check_notify(tenant: Tenant, env: Mapping[str, str]) -> Check | None:
    if tenant.notify is None:
        return None
    found = channels_for(tenant, env)
    if found.problems:
        return Check(
            tenant.id,
            "notify",
            "fail",
            "; ".join(found.problems),
            "Set the named environment variables in the worker's environment.",
        )
    said: list[str] = []
    for channel in found.channels:
        if isinstance(channel, SmtpEmail):
            from adapters.notify import NotifyError

            try:
                await channel.check()
            except NotifyError as exc:
                return Check(
                    tenant.id,
                    "notify",
                    "fail",
                    exc.message,
                    "Check the [notify.email] host, port, security and the SMTP login.",
                )
            said.append(f"e-mail via {channel.config.host} (login and TLS ok)")
        else:
            # Slack has no dry run: a test post would reach the channel, so only the
            # configuration is checked.
            said.append("Slack webhook set")
    reasons = ", ".join(r.value for r in tenant.notify.reasons)
    return Check(tenant.id, "notify", "ok", f"{'; '.join(said)}; for {reasons}")


async def check_tenant(
    tenant: Tenant,
    settings: Settings,
    env: Mapping[str, str],
    ledger_for: LedgerFactory,
    today: dt.date,
) -> list[Check]:
    try:
        ledger: Ledger | LedgerError = ledger_for(tenant)
    except LedgerError as err:
        ledger = err
    try:
        dext = _line("dext", tenant.id, check_dext(tenant, env))
        link = _line("ledger", tenant.id, check_ledger(tenant, ledger))
        notify = _timed("notify", tenant.id, check_notify(tenant, env))
        dext_check, ledger_check, notify_check = await asyncio.gather(dext, link, notify)
        checks = [dext_check, ledger_check, check_documents(tenant, settings)]
        if ledger_check.status == "ok" and not isinstance(ledger, LedgerError):
            checks.append(await _line("mapping", tenant.id, check_mapping(tenant, ledger)))
            checks.append(await _line("period", tenant.id, check_period(tenant, ledger, today)))
        else:
            for name in ("mapping", "period"):
                checks.append(
                    Check(tenant.id, name, "skip", "not checked: the ledger connection failed")
                )
        if notify_check is not None:
            checks.append(notify_check)
        return checks
    finally:
        if not isinstance(ledger, LedgerError):
            await ledger.aclose()


async def run_checks(
    settings: Settings,
    tenants: Tenants,
    *,
    only: str | None = None,
    env: Mapping[str, str] | None = None,
    ledger_for: LedgerFactory | None = None,
    today: dt.date | None = None,
) -> list[Check]:
    from streams.pipeline.wiring import build_ledger

    env = dict(os.environ) if env is None else env
    chosen = [tenants.get(only)] if only else tenants.all()

    def default_ledger(tenant: Tenant) -> Ledger:
        return build_ledger(tenant, settings, env)

    factory = ledger_for or default_ledger
    day = today or dt.date.today()
    results = await asyncio.gather(
        _line("kafka", None, check_kafka(settings)),
        *(check_tenant(t, settings, env, factory, day) for t in chosen),
    )
    kafka, *per_tenant = results
    assert isinstance(kafka, Check)
    out = [kafka]
    for checks in per_tenant:
        assert isinstance(checks, list)
        out.extend(checks)
    return out


def all_green(checks: list[Check]) -> bool:
    return all(c.status != "fail" for c in checks)
