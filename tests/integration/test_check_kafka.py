"""``billstream check``'s Kafka line against a port nothing listens on (a real connection)."""

from __future__ import annotations

from pathlib import Path

from streams.config import Settings
from streams.ops.check import check_kafka


async def test_kafka_unreachable_is_red(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka_url="kafka://127.0.0.1:1")
    found = await check_kafka(settings)
    assert found.status == "fail" and "cannot reach kafka://127.0.0.1:1" in found.detail
