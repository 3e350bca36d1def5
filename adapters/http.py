"""The retry timing every HTTP adapter shares: how long a server asks us to wait, and how long
to back off when it does not say.

``retry_after`` reads a ``Retry-After`` header in both forms RFC 9110 allows (delay-seconds
and HTTP-date); ``backoff`` is capped exponential backoff with full jitter, so that clients
that failed together do not all come back together.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random


def delay_seconds(value: str | None) -> float | None:
    """A header's non-negative number of seconds (fractions allowed); None if it is not one."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value; None when absent or unreadable.

    RFC 9110 §10.2.3: either delay-seconds or an HTTP-date; a date in the past means now (0).
    """
    if not value or not value.strip():
        return None
    seconds = delay_seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 850 / asctime forms carry no zone: they are GMT
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def backoff(
    attempt: int, max_seconds: float, *, base: float = 0.2, retry_after: float | None = None
) -> float:
    """Seconds to wait after failed ``attempt`` (1 for the first): full jitter, capped.

    A random time between 0 and ``base * 2 ** (attempt - 1)``, at most ``max_seconds``; a
    server's ``retry_after`` wins when it is longer, up to the same cap.
    """
    # The exponent is bounded so that a long run of failures cannot overflow the float.
    delay = random.uniform(0, min(max_seconds, base * 2.0 ** min(max(attempt - 1, 0), 64)))
    if retry_after:
        delay = max(delay, min(retry_after, max_seconds))
    return delay
