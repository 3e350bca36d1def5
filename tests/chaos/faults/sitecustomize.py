"""Fault injection for a worker process, loaded by Python at start-up when a test puts this
folder on the worker's PYTHONPATH (never otherwise).

``BILLSTREAM_FAULT=drop-fetched:<topic suffix>`` makes Faust drop the records of the first
fetched batch that holds records of a topic ending so, after aiokafka has handed them over:
the state two stalled kill tests showed (position past the commit, nothing in flight), made
certain instead of waiting for a rebalance to do it one run in ten.
"""

from __future__ import annotations

import os
from typing import Any

_FAULT = os.environ.get("BILLSTREAM_FAULT", "")

if _FAULT.startswith("drop-fetched:"):
    from faust.transport.consumer import Consumer

    _suffix = _FAULT.split(":", 1)[1]
    _original = Consumer._wait_next_records
    _dropped: list[Any] = []

    async def _wait_next_records(self: Any, timeout: float) -> Any:  # noqa: ASYNC109 - Faust's signature
        records, active = await _original(self, timeout)
        if _dropped or not records:
            return records, active
        hit = {tp for tp in records if tp.topic.endswith(_suffix)}
        if not hit:
            return records, active
        _dropped.extend(hit)
        print(f"fault: dropped the fetched records of {sorted(map(str, hit))}", flush=True)
        return {tp: r for tp, r in records.items() if tp not in hit}, active

    Consumer._wait_next_records = _wait_next_records  # type: ignore[method-assign]
