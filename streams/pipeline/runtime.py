"""Running things: which Kafka to use, and the worker process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker

log = logging.getLogger("billstream")


class BrokerBusy(RuntimeError):
    """The data folder's embedded broker belongs to another running process."""


@contextlib.contextmanager
def kafka_for(settings: Settings) -> Iterator[str]:
    """The configured Kafka, or an embedded broker under ``data_dir`` for as long as needed.

    SIGTERM is turned into a normal exit first, so the broker is stopped on Ctrl-C, SIGTERM
    and any error alike.
    """
    if settings.kafka_url:
        yield settings.kafka_url
        return
    running = EmbeddedBroker.running_pid(settings.broker_dir)
    if running is not None:
        # Two brokers on one data folder would overwrite each other's snapshot.
        raise BrokerBusy(
            f"the embedded broker of {settings.data_dir} is already running (pid {running}); "
            "stop it, or set BILLSTREAM_KAFKA_URL to its address to share it"
        )
    broker = EmbeddedBroker(settings.broker_dir)
    previous = signal.getsignal(signal.SIGTERM)

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminate)
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _worker_class() -> Any:
    import faust

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            # Faust's progress spinner sets the root logger to DEBUG so that every record
            # turns it: every debug record of faust and aiokafka was then built and dropped
            # (5 % of a busy worker's time). A service has no terminal to spin.
            self.spinner = None

        def _on_sigusr1(self) -> None:
            # mode's own handler dumps every task WITH its local variables, request bodies
            # and credentials included; the await chains alone explain a stuck worker.
            from streams.kafka.diagnostics import describe_consumer, describe_tasks

            sys.stderr.write(describe_tasks(asyncio.all_tasks(self.loop)))
            sys.stderr.write(describe_consumer(self.app))
            sys.stderr.flush()

        def _on_sigusr2(self) -> None:
            # mode would start pdb on a daemon's closed stdin; a service must not stop.
            log.warning("SIGUSR2 ignored (send SIGUSR1 for task stacks)")

    return Worker


def run_worker(settings: Settings, kafka_url: str) -> int:
    """Run the stage agents until SIGTERM/SIGINT. Blocks; returns the exit code."""
    from domain.events import STAGES, Stage
    from streams import metrics
    from streams.kafka import aiokafka_patches
    from streams.kafka.duplicate_log import SharedDuplicateLog
    from streams.kafka.topics import ensure_topics
    from streams.pipeline.app import create_app
    from streams.pipeline.wiring import Ports

    # Faust's consumers must wait out an empty fetch (see streams.kafka.aiokafka_patches), whoever
    # started the worker.
    aiokafka_patches.apply()
    asyncio.run(ensure_topics(settings, kafka_url))
    ports = Ports.from_settings(settings)
    # Every worker checks against the same index: a compacted topic, a SQLite view each.
    ports.duplicates = SharedDuplicateLog(settings, kafka_url, ports.tenants)
    pipeline = create_app(settings, kafka_url, ports)
    if settings.metrics_port >= 0:
        topics = [settings.topic(stage) for stage in Stage]
        metrics.initialise(STAGES, ports.tenants, topics)
        port = metrics.serve(settings.metrics_host, settings.metrics_port)
        print(f"metrics: http://{settings.metrics_host}:{port}/metrics", file=sys.stderr)
    try:
        return run_app(pipeline.app, settings)
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(ports.aclose())


def run_app(app: Any, settings: Settings) -> int:
    """Run a Faust app in this process until SIGTERM/SIGINT; returns the exit code."""
    worker = _worker_class()(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
