"""The worker's logging stays at its configured level (regression: Faust's spinner put the
root logger at DEBUG, so every faust and aiokafka debug record was built on the hot path)."""

from __future__ import annotations

import io
import logging

import faust.worker  # noqa: F401 - imported at collection: croniter runs `file` once
from mode.utils.logging import setup_logging

from streams.pipeline.runtime import _worker_class


def test_the_root_logger_keeps_the_configured_level() -> None:
    worker_cls = _worker_class()
    worker = object.__new__(worker_cls)  # the hook alone; no app, no loop
    worker.spinner = object()
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        level = setup_logging(loglevel="WARNING", logfile=io.StringIO())
        worker.on_setup_root_logger(root, level)
        assert root.level == logging.WARNING
        assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
        assert worker.spinner is None
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
