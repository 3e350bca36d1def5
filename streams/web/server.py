"""The operator page: what is parked and why, one item's timeline, and a Replay button.

Server-rendered HTML (Jinja2, autoescaped: supplier names come from outside) over aiohttp;
one small script polls a replay's progress, and every page works without it. Replay runs
``streams.ops.replay.replay``, the very function behind ``billstream replay``.

Access: loopback by default. A token (``BILLSTREAM_WEB_TOKEN``) is required when the page is
bound to any other address, and always when it is set: as ``Authorization: Bearer``, or
once as ``?token=`` which becomes an HttpOnly cookie. Every form carries a per-server
anti-forgery value, so another site open in the same browser cannot press Replay. A request
whose ``Host`` is not one of the page's own names is refused (421), so a DNS-rebinding page
cannot read the page or its anti-forgery value.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import ipaddress
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from adapters.notify import TITLES, replay_command
from domain.errors import ADVICE, RETRY_OF, Reason, Retry
from domain.events import PIPELINE
from domain.tenants import Tenants
from streams.config import Settings
from streams.ops.replay import ReplayFilter, replay
from streams.web.view import LogView

log = logging.getLogger("billstream.web")

HERE = Path(__file__).parent
COOKIE = "billstream_token"
TOKEN_ENV = "BILLSTREAM_WEB_TOKEN"
MIN_TOKEN = 16

VIEW_KEY = web.AppKey("view", LogView)
STATE_KEY: web.AppKey[PageState] = web.AppKey("state")


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ALLOWED_HOSTS_ENV = "BILLSTREAM_WEB_ALLOWED_HOSTS"


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a request's ``Host`` may carry: loopback names, the bound address, ``extra``.

    A DNS-rebinding page reaches the server under its own name (``attacker.example``), so a
    request for any other name is refused before anything is read or done.
    """
    names = set(LOOPBACK_NAMES)
    if bind and bind not in ("0.0.0.0", "::"):
        names.add(bind.strip("[]").lower())
    names.update(h.strip().strip("[]").lower() for h in extra if h.strip())
    return frozenset(names)


def host_name(host_header: str) -> str:
    """``Host`` without its port, lower case: ``[::1]:8090`` -> ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ReplayJob:
    id: str
    label: str
    flt: ReplayFilter
    state: str = "waiting"  # waiting, sending, sent, failed
    total: int = 0
    sent: int = 0
    error: str = ""
    items: dict[str, int] = field(default_factory=dict)  # item key -> attempt sent
    started: float = field(default_factory=time.time)


@dataclass
class PageState:
    settings: Settings
    kafka_url: str
    tenants: Tenants | None
    token: str | None
    hosts: frozenset[str] = LOOPBACK_NAMES
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    jobs: dict[str, ReplayJob] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.globals.update(
        titles={r.value: t for r, t in TITLES.items()},
        advice={r.value: a for r, a in ADVICE.items()},
        stages=[s.value for s in PIPELINE],
    )
    return env


def _when(iso: str) -> str:
    if not iso:
        return ""
    try:
        moment = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


TEMPLATES = _env()


def _render(request: web.Request, name: str, **context: Any) -> web.Response:
    state = request.app[STATE_KEY]
    view = request.app[VIEW_KEY]
    html = TEMPLATES.get_template(name).render(
        csrf=state.csrf,
        loading=not view.ready.is_set(),
        view_error=view.error,
        prefix=state.settings.topic_prefix,
        **context,
    )
    return web.Response(text=html, content_type="text/html")


def _tenant_name(state: PageState, tenant: str) -> str:
    if state.tenants and tenant in state.tenants.tenants:
        name = state.tenants.tenants[tenant].name
        return f"{name} ({tenant})" if name else tenant
    return tenant


# -- middlewares ----------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def security(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if host_name(request.headers.get("Host", "")) not in state.hosts:
        return web.Response(
            status=421,
            text="billstream operator page: this Host is not served here (see --allowed-host)\n",
        )
    if state.token is not None and request.path != "/healthz":
        given = request.query.get("token")
        if given is not None and hmac.compare_digest(given.encode(), state.token.encode()):
            # Swap the token in the address for a cookie, so it leaves the history and logs.
            rest = {k: v for k, v in request.query.items() if k != "token"}
            target = request.path + (f"?{urlencode(rest)}" if rest else "")
            response = web.Response(status=303, headers={"Location": target})
            response.set_cookie(
                COOKIE, state.token, httponly=True, samesite="Strict", path="/", max_age=43_200
            )
            return response
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        cookie = request.cookies.get(COOKIE, "")
        if not any(
            v and hmac.compare_digest(v.encode(), state.token.encode()) for v in (bearer, cookie)
        ):
            return web.Response(
                status=401,
                text="billstream operator page: open it with ?token=<BILLSTREAM_WEB_TOKEN>\n",
                headers={"WWW-Authenticate": "Bearer"},
            )
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if origin and origin != "null" and origin.split("://", 1)[-1] != request.host:
            return web.Response(status=403, text="cross-site request refused\n")
        form = await request.post()
        if not hmac.compare_digest(str(form.get("csrf", "")).encode(), state.csrf.encode()):
            return web.Response(status=403, text="stale or forged form: reload the page\n")
    served = await handler(request)
    served.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    served.headers.setdefault("X-Content-Type-Options", "nosniff")
    served.headers.setdefault("Referrer-Policy", "no-referrer")
    served.headers.setdefault("Cache-Control", "no-store")
    return served


# -- pages ----------------------------------------------------------------------------------


def _group_rows(request: web.Request) -> list[dict[str, Any]]:
    state, view = request.app[STATE_KEY], request.app[VIEW_KEY]
    rows = []
    for g in view.groups():
        example = g.items[0].failure
        rows.append(
            {
                "tenant": g.tenant,
                "tenant_name": _tenant_name(state, g.tenant),
                "reason": g.reason.value,
                "count": len(g.items),
                "message": example.message if example else "",
                "replayable": RETRY_OF[g.reason] is not Retry.NEVER,
                "command": replay_command(g.reason, g.tenant),
                "link": "/parked?" + urlencode({"tenant": g.tenant, "reason": g.reason.value}),
            }
        )
    return rows


async def index(request: web.Request) -> web.Response:
    view = request.app[VIEW_KEY]
    if not view.ready.is_set():
        # A page right after start shows the log read so far rather than keep anyone waiting.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(view.ready.wait(), 5)
    jobs = sorted(request.app[STATE_KEY].jobs.values(), key=lambda j: -j.started)[:5]
    return _render(
        request,
        "index.html",
        counts=view.counts(),
        groups=_group_rows(request),
        jobs=jobs,
    )


async def parked(request: web.Request) -> web.Response:
    state, view = request.app[STATE_KEY], request.app[VIEW_KEY]
    tenant = request.query.get("tenant", "")
    try:
        reason = Reason(request.query.get("reason", ""))
    except ValueError:
        raise web.HTTPNotFound(text="no such reason") from None
    group = view.group(tenant, reason)
    matched = {k for i in group.items if i.failure for k in i.failure.matches}
    return _render(
        request,
        "group.html",
        tenant=tenant,
        tenant_name=_tenant_name(state, tenant),
        reason=reason.value,
        items=group.items,
        replayable=RETRY_OF[reason] is not Retry.NEVER,
        review=reason is Reason.POSSIBLE_DUPLICATE,
        others={k: view.items[k] for k in matched if k in view.items},
        command=replay_command(reason, tenant),
    )


async def search(request: web.Request) -> web.Response:
    view = request.app[VIEW_KEY]
    query = request.query.get("q", "")
    return _render(request, "search.html", q=query, results=view.search(query))


async def item(request: web.Request) -> web.Response:
    from streams.ops.audit import timeline

    state, view = request.app[STATE_KEY], request.app[VIEW_KEY]
    key = request.match_info["key"]
    if ":" not in key:
        raise web.HTTPNotFound(text="an item key is tenant:dext_item_id")
    steps = await timeline(state.settings, state.kafka_url, key)
    current = view.items.get(key)
    return _render(
        request,
        "item.html",
        key=key,
        item=current,
        steps=steps,
        replayable=bool(
            current
            and current.parked
            and current.failure
            and RETRY_OF[current.failure.reason] is not Retry.NEVER
        ),
    )


# -- review of held duplicates --------------------------------------------------------------


async def review(request: web.Request) -> web.StreamResponse:
    """Release or reject a held duplicate: ``streams.ops.review.decide``, as the CLI does."""
    from streams.ops.review import ReviewError, decide

    state = request.app[STATE_KEY]
    form = await request.post()
    key = str(form.get("item", "")).strip()
    decision = str(form.get("decision", ""))
    by = str(form.get("by", "")).strip()
    if decision not in ("release", "reject") or ":" not in key:
        raise web.HTTPBadRequest(text="a review names an item and release or reject")
    if not by:
        raise web.HTTPBadRequest(text="say who decides: the log keeps it for the auditor")
    try:
        await decide(
            state.settings,
            state.kafka_url,
            key,
            "release" if decision == "release" else "reject",
            by=by,
            note=str(form.get("note", "")).strip(),
        )
    except ReviewError as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    raise web.HTTPSeeOther(f"/item/{key}")


# -- replay ---------------------------------------------------------------------------------


async def start_replay(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    form = await request.post()
    reason_text = str(form.get("reason", "")).strip()
    tenant = str(form.get("tenant", "")).strip() or None
    item_key = str(form.get("item", "")).strip() or None
    try:
        reasons = frozenset({Reason(reason_text)}) if reason_text else None
    except ValueError:
        raise web.HTTPBadRequest(text="unknown reason") from None
    if reasons is None and item_key is None:
        raise web.HTTPBadRequest(text="replay needs a reason group or an item")
    if item_key is not None:
        label = item_key
    else:
        assert reasons is not None
        who = _tenant_name(state, tenant) if tenant else "every tenant"
        label = f"{TITLES[next(iter(reasons))]} · {who}"
    job = ReplayJob(
        id=uuid.uuid4().hex[:12],
        label=label,
        flt=ReplayFilter(reasons=reasons, tenant=tenant, item=item_key),
    )
    state.jobs[job.id] = job
    task = asyncio.create_task(_run_job(state, job), name=f"replay-{job.id}")
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    raise web.HTTPSeeOther(f"/jobs/{job.id}")


async def _run_job(state: PageState, job: ReplayJob) -> None:
    async with state.lock:  # one replay at a time: progress stays readable, sends in order
        job.state = "sending"

        def progress(done: int, total: int) -> None:
            job.sent, job.total = done, total

        try:
            report = await replay(state.settings, state.kafka_url, job.flt, progress=progress)
        except Exception as exc:
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("replay %s failed", job.id)
            return
        job.total, job.sent = report.matched, report.sent
        job.items = {entry["item"]: int(entry["attempt"]) for entry in report.items}
        job.state = "sent"
        log.info("replay %s (%s): %d sent", job.id, job.label, report.sent)


def job_status(job: ReplayJob, view: LogView) -> dict[str, Any]:
    attached = failed = 0
    rows = []
    for key, attempt in sorted(job.items.items()):
        current = view.items.get(key)
        outcome = "on its way"
        if current is not None and current.attached_attempt >= attempt:
            outcome = "attached"
            attached += 1
        elif current is not None and current.failure and current.failure.attempt >= attempt:
            outcome = f"failed again: {current.failure.reason.value}"
            failed += 1
        rows.append(
            {
                "key": key,
                "supplier": current.supplier if current else "?",
                "number": current.number if current else "?",
                "outcome": outcome,
            }
        )
    return {
        "id": job.id,
        "label": job.label,
        "state": job.state,
        "total": job.total,
        "sent": job.sent,
        "attached": attached,
        "failed": failed,
        "pending": len(job.items) - attached - failed,
        "finished": job.state == "failed"
        or (job.state == "sent" and attached + failed == len(job.items)),
        "error": job.error,
        "items": rows,
    }


def _job(request: web.Request) -> ReplayJob:
    job = request.app[STATE_KEY].jobs.get(request.match_info["job"])
    if job is None:
        raise web.HTTPNotFound(text="no such replay")
    return job


async def job_page(request: web.Request) -> web.Response:
    job = _job(request)
    return _render(request, "job.html", job=job_status(job, request.app[VIEW_KEY]))


async def job_json(request: web.Request) -> web.Response:
    return web.json_response(job_status(_job(request), request.app[VIEW_KEY]))


async def summary_json(request: web.Request) -> web.Response:
    view = request.app[VIEW_KEY]
    return web.json_response(
        {"ready": view.ready.is_set(), "counts": view.counts(), "groups": _group_rows(request)}
    )


async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # no icon: keeps the browser console clean


async def healthz(request: web.Request) -> web.Response:
    view = request.app[VIEW_KEY]
    return web.json_response({"ok": view.error is None, "ready": view.ready.is_set()})


# -- the application ------------------------------------------------------------------------


def make_app(
    settings: Settings,
    kafka_url: str,
    *,
    token: str | None,
    tenants: Tenants | None = None,
    view: LogView | None = None,
    hosts: frozenset[str] = LOOPBACK_NAMES,
) -> web.Application:
    app = web.Application(middlewares=[security], client_max_size=64 * 1024)
    the_view = view or LogView(settings, kafka_url)
    app[VIEW_KEY] = the_view
    app[STATE_KEY] = PageState(
        settings=settings, kafka_url=kafka_url, tenants=tenants, token=token, hosts=hosts
    )
    app.router.add_get("/", index)
    app.router.add_get("/parked", parked)
    app.router.add_get("/search", search)
    app.router.add_get("/item/{key}", item)
    app.router.add_post("/replay", start_replay)
    app.router.add_post("/review", review)
    app.router.add_get("/jobs/{job:[0-9a-f]+}.json", job_json)
    app.router.add_get("/jobs/{job:[0-9a-f]+}", job_page)
    app.router.add_get("/api/summary.json", summary_json)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/static/", HERE / "static", append_version=True)

    async def on_startup(app: web.Application) -> None:
        app[VIEW_KEY].start()

    async def on_cleanup(app: web.Application) -> None:
        for task in list(app[STATE_KEY].tasks):
            task.cancel()
        await app[VIEW_KEY].stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
