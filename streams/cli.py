"""Entry point of the ``billstream`` console script."""

from __future__ import annotations

import importlib
import pkgutil

from streams import commands
from streams.cli_base import cli


def _load_commands() -> None:
    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{module.name}")


_load_commands()


def main() -> None:
    from adapters import kafka_fetch
    from streams.cli_base import fail
    from streams.runtime import BrokerBusy

    # Every Kafka consumer a command starts (the worker's, the Dext cursor's, the event log
    # readers') must wait out an empty fetch: see adapters.kafka_fetch.
    kafka_fetch.apply()
    try:
        cli(prog_name="billstream")
    except BrokerBusy as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
