"""What a built pipeline is made of (the Faust app, its topics, tables and agents) and the
per-stage "done" table; apart from ``app`` so that the agents and notifications can name a
pipeline without importing the module that builds one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust

from domain.events import Stage
from streams.config import Settings
from streams.pipeline.wiring import Ports


@dataclass
class Pipeline:
    app: faust.App
    settings: Settings
    ports: Ports
    topics: dict[Stage, Any] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    agents: dict[str, Any] = field(default_factory=dict)


def done_table(pipeline: Pipeline, stage_name: str) -> Any:
    """The changelog-backed record of what one stage already did, keyed by item key.

    ``use_partitioner`` puts each entry in the changelog partition of its item key, the same
    partition as the item's events, so it travels with the item across workers.
    """
    table = pipeline.app.Table(
        f"done-{stage_name}",
        key_type=bytes,
        value_type=bytes,
        partitions=pipeline.settings.partitions,
        use_partitioner=True,
    )
    pipeline.tables[stage_name] = table
    return table
