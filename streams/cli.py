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
    cli(prog_name="billstream")


if __name__ == "__main__":
    main()
