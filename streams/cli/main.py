"""Entry point of the ``billstream`` console script: every command loaded, patches applied."""

from __future__ import annotations

import importlib
import pkgutil

from streams.cli import commands
from streams.cli.base import cli


def _load_commands() -> None:
    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{module.name}")


_load_commands()


def main() -> None:
    from streams.cli.base import fail
    from streams.kafka import aiokafka_patches
    from streams.pipeline.runtime import BrokerBusy

    # Every Kafka consumer a command starts (the worker's, the Dext cursor's, the event log
    # readers') must wait out an empty fetch: see streams.kafka.aiokafka_patches.
    aiokafka_patches.apply()
    try:
        cli(prog_name="billstream")
    except BrokerBusy as exc:
        fail(str(exc))
