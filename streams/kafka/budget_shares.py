"""Dividing every Sage business's budget between the workers, by the partitions they hold.

A business's items are spread over the stage topics' partitions by item key, so the worker
holding a quarter of the partitions does about a quarter of its calls: it gets a quarter of
the business's calls and bytes (``adapters.sage_accounting.budget.WORKER_SHARE``), re-divided
after every rebalance. Workers need not talk to each other, and together they stay within
the business's limit.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from adapters.sage_accounting.budget import WORKER_SHARE, partition_share
from domain.events import STAGES
from streams.config import Settings

log = logging.getLogger(__name__)

_installed: list[Any] = []


def stage_partitions(settings: Settings) -> dict[str, int]:
    """The topics whose agents call the ledger (each stage's input), with their partitions."""
    return {settings.topic(source): settings.partitions for source, _ in STAGES.values()}


def install(settings: Settings) -> None:
    """Re-divide the budgets whenever this process's Faust app gets its partitions (once)."""
    if _installed:
        return
    partitions = stage_partitions(settings)

    async def on_assigned(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The signal's argument is the whole new assignment (Faust's eager rebalance), not a
        # delta.
        assigned = args[0] if args else kwargs.get("assigned", ())
        fraction = partition_share(((tp.topic, tp.partition) for tp in assigned), partitions)
        WORKER_SHARE.set(fraction)
        log.info("ledger budgets: this worker's share is %.4f of each business's", fraction)

    # Class-level, as streams.metrics does: reaches the app however the worker built it.
    faust.App.on_partitions_assigned.connect(on_assigned)
    _installed.append(on_assigned)
