"""The Grafana dashboard and the alert rules, checked against a real Prometheus.

Debian's ``prometheus`` (installed if missing) runs by PID on loopback with its own config:
it scrapes the worker of a demo run every second and loads ``deploy/prometheus/alerts.yml``.
The demo is the README's, with the period-reopen scenario so that replays happen too. Once
every item has finished (the worker still up), every PromQL expression of the dashboard is
evaluated through Prometheus's HTTP API and must parse and return at least one series with a
number; so must every alert rule, by this rule:

An alert expression is a condition, empty while all is well (a healthy demo must not fire
"nothing attached"). So the full expression must parse and Prometheus must have evaluated
the rule without error, and each *operand* of its conditions (the expression split at its
top-level comparisons and ``and``/``or``/``unless``, threshold numbers dropped) must return at
least one series. No ``or vector(0)`` is added anywhere, and every expression and operand is
evaluated again with its metric names misspelt, which must return nothing: a wrong metric
or label value fails the check.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from streams.config import REPO_ROOT, Settings
from streams.demo import DemoOptions, DemoResult, run_demo
from tests.debian import ensure_debian
from tests.support import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DASHBOARD = REPO_ROOT / "grafana" / "dashboards" / "billstream.json"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"

# What Grafana puts in place of its variables: $__rate_interval is at least 4 scrape
# intervals (1 minute with the compose Prometheus's 15 s) and grows with the time range shown;
# "All" tenants is the regex .*. The check widens the rate interval to the whole run (see
# check_everything).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$tenant": ".*"}
NEVER = "0001-01-01T00:00:00Z"  # Prometheus's lastEvaluation of a rule not evaluated yet


def ensure_prometheus() -> str:
    return ensure_debian("prometheus", "prometheus")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- expressions ----------------------------------------------------------------------------


def dashboard_targets(rate_interval: str = "1m") -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, Grafana variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], grafana_expr(target["expr"], rate_interval)))
    return out


def grafana_expr(expr: str, rate_interval: str = "1m") -> str:
    for name, value in {**GRAFANA_VARIABLES, "$__rate_interval": rate_interval}.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"a Grafana variable the check does not know: {expr}"
    return expr


def template_queries() -> list[tuple[str, str]]:
    """(metric selector, label) of every ``label_values(...)`` variable of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for var in dashboard["templating"]["list"]:
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
        assert match, f"variable {var['name']}: only label_values(metric, label) is checked"
        out.append((match.group(1), match.group(2)))
    return out


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


_OPERATOR = re.compile(r"==|!=|>=|<=|>|<|\band\b|\bor\b|\bunless\b")
_MODIFIERS = re.compile(
    r"\s*(?:bool\b)?\s*(?:(?:on|ignoring)\s*\([^)]*\))?\s*(?:(?:group_left|group_right)\s*(?:\([^)]*\))?)?"
)
_NUMBER = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*")


def operands(expr: str) -> list[str]:
    """The expression split at top-level comparison and set operators, numbers dropped."""
    parts, depth, start, i, quote = [], 0, 0, 0, ""
    while i < len(expr):
        ch = expr[i]
        if quote:
            quote = "" if ch == quote and expr[i - 1] != "\\" else quote
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and (match := _OPERATOR.match(expr, i)):
            parts.append(expr[start:i])
            i = match.end()
            modifiers = _MODIFIERS.match(expr, i)  # all optional: always matches
            i = modifiers.end() if modifiers else i
            start = i
            continue
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts if p.strip() and not _NUMBER.fullmatch(p)]


def misspelt(expr: str) -> str:
    return re.sub(r"\b(billstream_[a-z_]+)\b", r"\1_misspelt", expr)


# -- Prometheus -----------------------------------------------------------------------------


class Prometheus:
    def __init__(self, binary: str, tmp: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tmp
        config = {
            # A 1 s interval means a 1 s scrape timeout: on a loaded CI machine the busy worker
            # missed scrapes during the run and every rate() came out flat (NaN quantiles).
            "global": {
                "scrape_interval": "2s",
                "scrape_timeout": "2s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "billstream", "static_configs": [{"targets": [target]}]}
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.cmd = [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    def __enter__(self) -> Prometheus:
        with open(self.dir / "prometheus.log", "wb") as log:
            self.proc = subprocess.Popen(
                self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_until(self._ready, 30, lambda: f"Prometheus to get ready: {self.log()}", interval=0.2)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log()
        try:
            return self.http.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        path = self.dir / "prometheus.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def query(self, expr: str, at: float) -> dict[str, Any]:
        answer = self.http.get("/api/v1/query", params={"query": expr, "time": f"{at:.3f}"})
        body: dict[str, Any] = answer.json()
        return body

    def wait_for_scrape_after(self, moment: float, timeout: float = 30.0) -> float:
        """Until a scrape that started after ``moment`` is stored; returns its time."""

        def scraped() -> float | None:
            body = self.query('timestamp(up{job="billstream"} == 1)', time.time())
            result = body.get("data", {}).get("result", [])
            at = float(result[0]["value"][1]) if result else 0.0
            return at if at > moment else None

        return wait_until(
            scraped,
            timeout,
            lambda: f"a scrape of the worker after the run: {self.log()}",
            interval=0.3,
        )

    def wait_for_first_scrape(self, timeout: float = 60.0) -> None:
        """Until the worker has answered a scrape: its zeros are the baseline of every rate()."""
        wait_until(
            lambda: series(self.query('up{job="billstream"} == 1', time.time())),
            timeout,
            lambda: f"a first scrape of the worker: {self.log()}",
            interval=0.3,
        )

    def wait_for_rules_evaluated_after(self, moment: float, timeout: float = 30.0) -> None:
        """Until every rule has been evaluated again after ``moment`` (a wall-clock time)."""

        def evaluated() -> bool:
            rules = self.rules()
            return bool(rules) and all(
                dt.datetime.fromisoformat(rule.get("lastEvaluation", NEVER)).timestamp() > moment
                for rule in rules
            )

        wait_until(
            evaluated,
            timeout,
            lambda: f"an evaluation of every rule after {moment:.3f}: {self.log()}",
            interval=0.3,
        )

    def rules(self) -> list[dict[str, Any]]:
        groups = self.http.get("/api/v1/rules").json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


def series(body: dict[str, Any]) -> list[tuple[dict[str, str], float]]:
    data = body["data"]
    if data["resultType"] == "scalar":
        return [({}, float(data["result"][1]))]
    if data["resultType"] == "matrix":
        return [(s["metric"], float(s["values"][-1][1])) for s in data["result"]]
    return [(s["metric"], float(s["value"][1])) for s in data["result"]]


# -- the check -------------------------------------------------------------------------------


def check_everything(prom: Prometheus, started: float, finished: float) -> dict[str, Any]:
    """Every query; returns what was found and the list of problems."""
    # The panels' rate() windows span the whole run, as Grafana's would when showing it: with
    # a fixed 1 m, a run slowed down on a loaded CI machine left the stages' histograms without
    # an observation in the last minute (validate is done long before the replays) and every
    # quantile came out NaN although the queries were right.
    rate_interval = f"{max(60, math.ceil(finished - started) + 15)}s"
    # A rate() needs two samples of a series: a counter born late in the run (the replays,
    # counted when the replayed events arrive) has them once two scrapes (2 s apart)
    # followed the end.
    at = prom.wait_for_scrape_after(finished + 4.5)
    # Rules are evaluated every second: wait for an evaluation over the final data. That scrape
    # is stored by now; an evaluation started over an interval later is of a later tick, even
    # if Prometheus ran it late.
    prom.wait_for_rules_evaluated_after(time.time() + 1.0)
    problems: list[str] = []
    report: dict[str, Any] = {"dashboard": [], "template": [], "alerts": []}

    def returns_data(what: str, expr: str) -> list[tuple[dict[str, str], float]]:
        body = prom.query(expr, at)
        if body.get("status") != "success":
            problems.append(f"{what}: {expr!r} does not evaluate: {body.get('error')}")
            return []
        found = series(body)
        if not found:
            problems.append(f"{what}: {expr!r} returns no series")
        elif not any(math.isfinite(value) for _, value in found):
            problems.append(f"{what}: {expr!r} returns only NaN/Inf: {found}")
        wrong = prom.query(misspelt(expr), at)
        if wrong.get("status") == "success" and series(wrong):
            problems.append(f"{what}: {expr!r} returns data with its metric names misspelt")
        return found

    for title, expr in dashboard_targets(rate_interval):
        found = returns_data(f"panel {title!r}", expr)
        report["dashboard"].append({"panel": title, "expr": expr, "series": len(found)})

    for selector, label in template_queries():
        values = prom.http.get(f"/api/v1/label/{label}/values", params={"match[]": selector})
        names = values.json().get("data", [])
        if not names:
            problems.append(f"variable label_values({selector}, {label}) has no values")
        report["template"].append({"selector": selector, "label": label, "values": names})

    loaded = {rule["name"]: rule for rule in prom.rules()}
    for rule in alert_rules():
        name, expr = rule["alert"], rule["expr"].strip()
        body = prom.query(expr, at)
        if body.get("status") != "success":
            problems.append(f"alert {name}: does not evaluate: {body.get('error')}")
        state = loaded.get(name)
        if state is None or state.get("health") != "ok" or not state.get("lastEvaluation"):
            problems.append(f"alert {name}: not loaded or not evaluated cleanly by Prometheus")
        parts = operands(expr)
        if len(parts) < 1 or any(_NUMBER.fullmatch(p) for p in parts):
            problems.append(f"alert {name}: cannot split {expr!r} into operands")
        for part in parts:
            found = returns_data(f"alert {name}", part)
            report["alerts"].append({"alert": name, "operand": part, "series": len(found)})
    report["problems"] = problems
    report["evaluated_at"] = at
    report["rate_interval"] = rate_interval
    report["started"], report["finished"] = started, finished
    # Which scrapes of the run succeeded and how long they took: the first thing to look at
    # when a rate() comes out flat.
    window = f"[{math.ceil(at - started) + 5}s]"
    report["scrapes"] = {
        name: prom.query(f'{name}{{job="billstream"}}{window}', at)["data"]["result"]
        for name in ("up", "scrape_duration_seconds")
    }
    return report


def test_every_dashboard_query_and_alert_rule_returns_data(tmp_path: Path, kafka_url: str) -> None:
    binary = ensure_prometheus()
    metrics_port = free_port()
    report: dict[str, Any] = {}

    async def hold(result: DemoResult) -> None:
        finished = time.time()
        report.update(await asyncio.to_thread(check_everything, prom, started, finished))
        report["demo"] = result.as_dict()

    async def before() -> None:
        await asyncio.to_thread(prom.wait_for_first_scrape)

    (tmp_path / "prometheus").mkdir()
    with Prometheus(binary, tmp_path / "prometheus", f"127.0.0.1:{metrics_port}") as prom:
        started = time.time()
        run_demo(
            DemoOptions(
                items=60,
                scenario="period-reopen",
                ledger="intacct",
                data_dir=tmp_path / "demo",
                timeout=240,
                progress=False,
                metrics_port=metrics_port,
                before=before,
                hold=hold,
            ),
            Settings(kafka_url=kafka_url, data_dir=tmp_path, metrics_port=metrics_port),
        )
    out = REPO_ROOT / "test-output" / "dashboard-check.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    assert report, "the demo finished without calling hold"
    assert report["demo"]["replayed"] > 0  # the replay panel and counter were exercised
    assert not report["problems"], "\n".join(report["problems"])
    assert len(report["dashboard"]) == len(dashboard_targets()) >= 15
    assert {a["alert"] for a in report["alerts"]} == {r["alert"] for r in alert_rules()}


# -- the splitter itself, no Prometheus needed ---------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('max by (tenant) (x{reason="auth"}) > 0', ['max by (tenant) (x{reason="auth"})']),
        (
            'sum by (t) (increase(a{o!="r"}[15m])) > 0\nunless on (t)\nsum by (t) (b) > 0',
            ['sum by (t) (increase(a{o!="r"}[15m]))', "sum by (t) (b)"],
        ),
        ("a / b >= 0.9", ["a / b"]),
        ("a > bool 1", ["a"]),
        ("a and ignoring (x) group_left b", ["a", "b"]),
        ('x{l=~"a|b>c"}', ['x{l=~"a|b>c"}']),
    ],
)
def test_operands(expr: str, expected: list[str]) -> None:
    assert operands(expr) == expected


def _iter_exprs() -> Iterator[str]:
    yield from (expr for _, expr in dashboard_targets())
    yield from (rule["expr"] for rule in alert_rules())


def test_every_expression_names_billstream_metrics() -> None:
    # The misspelling check only proves something for expressions that read our metrics.
    for expr in _iter_exprs():
        assert re.search(r"\bbillstream_[a-z_]+\b", expr), expr
