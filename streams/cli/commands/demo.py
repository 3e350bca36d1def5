"""``billstream demo``."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sandboxes.harness import HARNESSES
from streams.cli.base import cli, print_json
from streams.config import REPO_ROOT

if TYPE_CHECKING:
    from streams.demo import DemoResult

# The worker's default (BILLSTREAM_METRICS_PORT), so a Prometheus set up for a worker works.
METRICS_PORT = 9464


@cli.command()
@click.option(
    "--items",
    type=click.IntRange(1, 100_000),
    default=60,
    show_default=True,
    help="How many sample items to send (the sample set is cycled, each copy with "
    "its own id and invoice number).",
)
@click.option(
    "--scenario",
    type=click.Choice(["basic", "period-reopen"]),
    default="basic",
    show_default=True,
    help="period-reopen: September 2026 is closed, its invoices park as "
    "period_closed, the period reopens, replay puts them back.",
)
@click.option(
    "--ledger",
    type=click.Choice(sorted(HARNESSES)),
    default="local",
    show_default=True,
    help="Where bills go: the local SQLite ledger or a sandbox.",
)
@click.option(
    "--source",
    type=click.Choice(["dext-api", "sample", "einvoices"]),
    default="dext-api",
    show_default=True,
    help="dext-api: items come over HTTP from the Dext sandbox through the API poller and "
    "the attach stage downloads their documents; sample: read straight from the files; "
    "einvoices: seven official UBL, CII and Factur-X samples dropped in an export folder for "
    "a German tenant (eu-gmbh) and read by the folder source (--items is ignored).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Fresh folder for this run (default BILLSTREAM_DATA_DIR/demo; wiped first).",
)
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to wait for every item to finish.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--serve-metrics",
    is_flag=True,
    help="Keep the worker's /metrics endpoint (and the worker, broker and sandboxes) up after "
    "the run until Ctrl-C, for Prometheus and Grafana to look at.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help=f"Port of the worker's /metrics (default {METRICS_PORT} with --serve-metrics, "
    "otherwise a free one).",
)
def demo(
    items: int,
    scenario: str,
    ledger: str,
    source: str,
    data_dir: Path | None,
    timeout: float,
    as_json: bool,
    serve_metrics: bool,
    metrics_port: int | None,
) -> None:
    """Run the whole pipeline on the sample invoices and print what happened.

    Starts the embedded broker (unless BILLSTREAM_KAFKA_URL is set), a worker process, the
    ledger (a sandbox in its own process for intacct and sage-accounting) and the Dext
    sandbox, polls the items from it, waits until every one is attached or failed, and prints a
    summary: received, attached, failed by reason, bills, attachments, duplicates (bills
    sharing an item key, which must be 0), replayed, seconds.
    """
    from streams.config import Settings
    from streams.demo import DemoOptions, run_demo

    port = metrics_port if metrics_port is not None else METRICS_PORT if serve_metrics else 0
    host = Settings().metrics_host
    if port and not _port_free(host, port):
        raise click.UsageError(f"{host}:{port} is in use: choose another --metrics-port")

    async def hold(result: DemoResult) -> None:
        _print_summary(result, as_json)
        _print_serving(host, port)
        await asyncio.Event().wait()  # until Ctrl-C (or SIGTERM) cancels the run

    try:
        result = run_demo(
            DemoOptions(
                items=items,
                scenario=scenario,
                ledger=ledger,
                source=source,
                data_dir=data_dir,
                timeout=timeout,
                progress=not as_json,
                metrics_port=port,
                hold=hold if serve_metrics else None,
            )
        )
    except KeyboardInterrupt:
        if not serve_metrics:
            raise
        click.echo("stopped: worker, broker and sandboxes are down", err=True)
        return
    _print_summary(result, as_json)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # As the metrics server binds: a port left in TIME_WAIT by the last run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _print_serving(host: str, port: int) -> None:
    target = f"{host}:{port}"
    click.echo(
        f"""
Metrics: http://{target}/metrics  (the worker, the broker and the sandboxes stay up; Ctrl-C stops)
Prometheus, e.g. prometheus --config.file=demo-prometheus.yml with:
  global: {{scrape_interval: 5s}}
  rule_files: [{REPO_ROOT / "deploy/prometheus/alerts.yml"}]
  scrape_configs:
    - job_name: billstream
      static_configs: [{{targets: ["{target}"]}}]
Grafana: a Prometheus data source with uid "prometheus" at that Prometheus, then import
  {REPO_ROOT / "grafana/dashboards/billstream.json"} (README, "Watching it run").""",
        err=True,
    )


def _print_summary(result: DemoResult, as_json: bool) -> None:
    if as_json:
        print_json(result.as_dict())
        return
    click.echo(f"received    {result.received}")
    click.echo(f"attached    {result.attached}")
    for reason, n in result.failed.items():
        click.echo(f"failed      {n:<5} {reason}")
    click.echo(
        f"bills       {result.bills}   attachments {result.attachments}   "
        f"duplicates {result.duplicates}   replayed {result.replayed}"
    )
    for key, value in result.extra.items():
        if isinstance(value, dict):  # e.g. calls by name: one line each, the largest first
            for name, n in value.items():
                click.echo(f"{key:<11} {n:<5} {name}")
        else:
            click.echo(f"{key:<11} {value}")
    click.echo(f"seconds     {result.seconds:.1f}  ({result.items_per_second:.0f} items/s)")
    click.echo("")
    click.echo("What happened to one invoice (the event log is kept in the data folder):")
    for name, key in result.examples.items():
        click.echo(f"  billstream --data-dir {result.data_dir} audit {key}    # {name}")
    click.echo(
        f"Replay what is parked:\n  billstream --data-dir {result.data_dir} replay "
        "--reason any --dry-run"
    )
