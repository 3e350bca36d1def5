"""A Sage Intacct stand-in: a stateful HTTP server speaking the XML Web Services API.

It answers the generic functions (``create``, ``update``, ``delete``, ``query`` with
aggregates such as ``count``, ``readByQuery``, ``readMore``, ``read``, ``readByName``,
``inspect``, ``lookup``) for VENDOR, APBILL, APBILLITEM (read only), APADJUSTMENT and
REPORTINGPERIOD with their standard fields, and the legacy functions the official SDKs
still generate (``getAPISession``, ``create_bill``, ``update_bill``, ``delete_bill``,
``delete_vendor``, ``get_list``, ``create_supdoc``, ``create_supdocfolder``, ``get``), so
any Intacct client can be pointed at it. It behaves like the gateway where it matters to a
client:

- the sender id/password are checked in the control block and the company and user in the
  authentication block, each failing with ``XL03000006`` where Intacct puts it;
- ``getAPISession`` must travel alone and returns a session id and a session endpoint;
  sessions expire (``--session-timeout``) and slide forward on use;
- bills dated in a closed period are refused with Intacct's closed-period text, and so are
  accounts and dimension ids (department, location, project, class) the company does not
  have, when it keeps lists of them; a paid bill and a vendor with bills cannot be deleted;
- past ``--concurrency`` requests in flight per company it answers HTTP 429 ``GW-0010``;
- ``transaction="true"`` rolls the whole operation back, the failed function ``failure``
  and the others ``aborted``, each with ``XL03000009``;
- ``uniqueid=true`` refuses a function whose control id already ran successfully;
- faults on demand (``--fail-rate``, ``--fail-modes``, or queued through the admin API):
  ``rate_limit`` (429 before anything runs), ``unavailable`` (503 before anything runs),
  ``after_write`` (HTTP 524 after the request was carried out), ``drop_after_write`` (the
  connection is closed after the request was carried out), ``hang_after_write`` (no answer
  for ``--hang-seconds``, then 504, after the request was carried out). The admin queue also
  takes ``ok``, to let a request through before the next queued fault.

Two answers are the sandbox's own choice, as our reference material does not confirm
Intacct's: a repeated control id under ``uniqueid`` fails with ``XL03000004`` ("A successful
transaction has already been recorded with the control id …"), and a ``getAPISession`` sent
with other functions fails with ``XL03000005``. Period closing is exposed on
REPORTINGPERIOD as a ``CLOSED`` field (``true``/``false``), one period per calendar month.

Admin endpoints (JSON, under ``/admin``) let tests and the demo harness close and open
periods, add companies, inspect bills/attachments per item key, read request counters,
delete a bill or an attachment by hand, and queue faults.

The parts: ``gateway`` (requests, sign-in, sessions, faults), ``records``, ``vendors``,
``bills``, ``legacy``, ``bill_updates`` and ``deletes`` (writes), ``attachments`` (supdocs),
``objects`` (field lists), ``queries``, ``filters``, ``sql``, ``inspect`` and ``lists``
(reads), ``admin``, ``persistence``; this module puts them together and serves them.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import random
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from sandboxes.intacct.admin import AdminMixin, inventory
from sandboxes.intacct.attachments import AttachmentsMixin
from sandboxes.intacct.bill_updates import BillUpdatesMixin
from sandboxes.intacct.deletes import DeletesMixin
from sandboxes.intacct.gateway import GATEWAY_PATH, SESSION_GATEWAY_PATH, GatewayMixin
from sandboxes.intacct.inspect import InspectMixin
from sandboxes.intacct.lists import ListsMixin
from sandboxes.intacct.persistence import PersistenceMixin
from sandboxes.intacct.queries import QueriesMixin
from sandboxes.intacct.records import RecordsMixin
from sandboxes.intacct.sql import parse_sql
from sandboxes.intacct.state import (
    DEFAULT_COMPANY,
    DEFAULT_PORT,
    DEFAULT_SENDER_ID,
    DEFAULT_SENDER_PASSWORD,
    DEFAULT_USER_ID,
    DEFAULT_USER_PASSWORD,
    FAULT_MODES,
    OBJECT_FIELDS,
    Company,
    SandboxConfig,
    Session,
    Stats,
)
from sandboxes.serving import Announce, listening, print_ready_line, serve_until_stopped

__all__ = [
    "DEFAULT_COMPANY",
    "DEFAULT_PORT",
    "DEFAULT_SENDER_ID",
    "DEFAULT_SENDER_PASSWORD",
    "DEFAULT_USER_ID",
    "DEFAULT_USER_PASSWORD",
    "FAULT_MODES",
    "GATEWAY_PATH",
    "OBJECT_FIELDS",
    "Company",
    "IntacctSandbox",
    "SandboxConfig",
    "company_ids",
    "inventory",
    "parse_sql",
    "ready_line",
    "serve",
]


class IntacctSandbox(
    GatewayMixin,
    RecordsMixin,
    BillUpdatesMixin,
    DeletesMixin,
    QueriesMixin,
    InspectMixin,
    ListsMixin,
    AttachmentsMixin,
    AdminMixin,
    PersistenceMixin,
):
    """The sandbox's state and its aiohttp application."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.companies: dict[str, Company] = {}
        self.sessions: dict[str, Session] = {}
        self.stats = Stats()
        self.fault_queue: collections.deque[str] = collections.deque()
        self.fail_rate = config.fail_rate
        self.fail_modes = tuple(config.fail_modes)
        self._rng = random.Random(config.seed)
        self._recordno = 1000
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._result_sets: dict[str, dict[str, Any]] = {}
        self.handlers = {
            "getAPISession": self._get_api_session,
            "create": self._create,
            "update": self._update,
            "delete": self._delete,
            "query": self._query,
            "readByQuery": self._read_by_query,
            "readMore": self._read_more,
            "read": self._read,
            "readByName": self._read_by_name,
            "create_bill": self._create_bill,
            "update_bill": self._update_bill,
            "delete_bill": self._delete_bill,
            "delete_vendor": self._delete_vendor,
            "inspect": self._inspect,
            "lookup": self._lookup,
            "get_list": self._get_list,
            "create_supdoc": self._create_supdoc,
            "create_supdocfolder": self._create_supdocfolder,
            "get": self._get,
        }
        for company in config.companies:
            self.add_company(company)
        if config.state_dir is not None:
            self._load(config.state_dir / "intacct-sandbox.json")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(GATEWAY_PATH, self._gateway)
        app.router.add_post(SESSION_GATEWAY_PATH, self._gateway)
        app.router.add_routes(self._admin_routes())
        return app


def ready_line(sandbox: IntacctSandbox, base_url: str) -> dict[str, Any]:
    cfg = sandbox.config
    return {
        "system": "intacct",
        "url": base_url + GATEWAY_PATH,
        "base_url": base_url,
        "admin_url": base_url + "/admin",
        "companies": [c.id for c in sandbox.companies.values()],
        "credentials": {
            "sender_id": cfg.sender_id,
            "sender_password": cfg.sender_password,
            "company_id": cfg.companies[0],
            "user_id": cfg.user_id,
            "user_password": cfg.user_password,
        },
    }


async def serve(
    config: SandboxConfig,
    on_ready: Announce = print_ready_line,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``); report readiness once bound."""
    sandbox = IntacctSandbox(config)
    serving = listening(sandbox.app(), config.host, config.port, wildcard_as_loopback=True)
    try:
        await serve_until_stopped(
            serving, functools.partial(ready_line, sandbox), announce=on_ready, stop=stop
        )
    finally:
        if config.state_dir is not None:
            sandbox.save(config.state_dir / "intacct-sandbox.json")


def company_ids(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v.strip())) or (DEFAULT_COMPANY,)
