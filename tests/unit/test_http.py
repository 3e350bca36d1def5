"""The shared retry timing of the HTTP adapters (adapters.http)."""

from __future__ import annotations

import datetime as dt

import pytest

from adapters.http import backoff, delay_seconds, retry_after

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),  # IMF-fixdate
        ("Sunday, 01-Mar-26 12:01:00 GMT", 60.0),  # obsolete RFC 850 form
        ("Sun Mar  1 12:00:10 2026", 10.0),  # obsolete asctime form, GMT by definition
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # in the past: now
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("nan", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, seconds: float | None) -> None:
    assert retry_after(value, now=NOW) == seconds


def test_delay_seconds_is_seconds_only() -> None:
    assert delay_seconds("3") == 3.0
    assert delay_seconds("Sun, 01 Mar 2026 12:00:30 GMT") is None


def test_backoff_is_full_jitter_capped() -> None:
    for attempt in range(1, 12):
        ceiling = min(8.0, 0.25 * 2 ** (attempt - 1))
        waits = [backoff(attempt, 8.0, base=0.25) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2  # spread over the range, not pinned low
    assert backoff(10_000, 30.0) <= 30.0  # no overflow, however many attempts


def test_backoff_lets_a_longer_retry_after_win_up_to_the_cap() -> None:
    assert backoff(1, 10.0, base=0.001, retry_after=4.0) == 4.0
    assert backoff(1, 10.0, base=0.001, retry_after=60.0) == 10.0
    assert backoff(1, 10.0, base=0.001, retry_after=None) <= 0.001
