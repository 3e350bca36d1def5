"""``billstream worker`` and ``billstream broker``."""

from __future__ import annotations

import socket
import time

import click

from streams.cli.base import cli, print_json
from streams.config import Settings


@cli.command()
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Port of the /metrics endpoint (default BILLSTREAM_METRICS_PORT, 9464; "
    "0 picks a free one).",
)
def worker(metrics_port: int | None) -> None:
    """Run the stage agents (validate, resolve_vendor, create_bill, attach, failed).

    Uses BILLSTREAM_KAFKA_URL, or starts the embedded broker when it is unset. Run more
    workers against the same Kafka to spread the partitions. Stops cleanly on SIGTERM/Ctrl-C.
    """
    from streams.kafka import budget_shares
    from streams.pipeline.runtime import kafka_for, run_worker

    settings = Settings()
    if metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": metrics_port})
    if settings.kafka_url is None and settings.group_instance_id is None:
        # noida-db 0.2.3 keeps a SIGKILLed member as group leader and wedges the group;
        # a static member id lets the restarted worker take its place at once.
        settings = settings.model_copy(
            update={"group_instance_id": f"embedded-{socket.gethostname()}"}
        )
    # Each Sage business's budget is for all its workers: this one takes its partitions' part.
    budget_shares.install(settings)
    with kafka_for(settings) as url:
        code = run_worker(settings, url)
    raise SystemExit(code)


@cli.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Loopback port.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the broker keeps its snapshot (default BILLSTREAM_DATA_DIR/broker).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the broker URL as JSON when ready.")
def broker(port: int, data_dir: str | None, as_json: bool) -> None:
    """Run the embedded Kafka-protocol broker (noida-db) in the foreground until Ctrl-C.

    Point other processes at it with BILLSTREAM_KAFKA_URL=kafka://127.0.0.1:PORT.
    """
    from pathlib import Path

    from streams.kafka.broker import EmbeddedBroker

    settings = Settings()
    embedded = EmbeddedBroker(Path(data_dir) if data_dir else settings.broker_dir, port=port)
    with embedded:
        if as_json:
            print_json({"url": embedded.url, "pid": embedded.proc.pid if embedded.proc else None})
        else:
            click.echo(f"broker ready: {embedded.url} (data in {embedded.data_dir})")
        try:
            while embedded.proc is not None and embedded.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
