"""Which stage-topic configurations would delete what audit and replay read."""

from __future__ import annotations

from streams.config import Settings
from streams.kafka.topics import retention_problems, stage_topic_configs, topic_names

WEEK = str(7 * 86_400_000)


def _all(settings: Settings, **config: str) -> dict[str, dict[str, str]]:
    return {name: dict(config) for name in topic_names(settings).values()}


def test_topics_are_created_with_the_configured_retention_and_no_size_limit() -> None:
    assert stage_topic_configs(Settings()) == {"retention.ms": "-1", "retention.bytes": "-1"}
    year = Settings(topic_retention_ms=365 * 86_400_000)
    assert stage_topic_configs(year)["retention.ms"] == str(365 * 86_400_000)


def test_kept_for_ever_is_fine_and_a_week_is_not() -> None:
    settings = Settings()
    assert retention_problems(settings, _all(settings, **{"retention.ms": "-1"})) == []
    problems = retention_problems(settings, _all(settings, **{"retention.ms": WEEK}))
    assert len(problems) == 6
    assert problems[0] == "ap.received deletes events after 7 days (wanted: for ever)"


def test_longer_than_wanted_is_fine_shorter_is_not() -> None:
    settings = Settings(topic_retention_ms=30 * 86_400_000)
    assert retention_problems(settings, _all(settings, **{"retention.ms": "-1"})) == []
    assert (
        retention_problems(settings, _all(settings, **{"retention.ms": str(60 * 86_400_000)})) == []
    )
    (first, *_) = retention_problems(settings, _all(settings, **{"retention.ms": WEEK}))
    assert first.endswith("after 7 days (wanted: 30 days)")


def test_size_limits_and_compaction_are_problems_too() -> None:
    settings = Settings()
    sized = retention_problems(settings, _all(settings, **{"retention.bytes": "1073741824"}))
    assert sized[0] == "ap.received deletes events past 1073741824 bytes"
    compacted = retention_problems(settings, _all(settings, **{"cleanup.policy": "compact"}))
    assert "compacted" in compacted[0]


def test_a_topic_the_broker_did_not_describe_is_a_problem_not_a_pass() -> None:
    settings = Settings()
    configs = _all(settings, **{"retention.ms": "-1"})
    configs.pop("ap.attached")
    assert retention_problems(settings, configs) == [
        "ap.attached: the broker did not describe its configuration"
    ]
