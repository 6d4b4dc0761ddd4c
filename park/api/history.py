"""Query parameters of the history routes: job listings and usage per day."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from park.domain import JobStatus
from park.errors import InvalidRequest
from park.projections.archive import DAY, DayUsage, JobQuery, day_of


def parse_time(value: str | None, name: str) -> float | None:
    """Seconds since the epoch, or an ISO date or date-time (UTC unless it says)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"{name}: expected seconds since the epoch or an ISO date, not {value!r}", field=name
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def job_query(
    user: str | None,
    tags: list[str],
    statuses: list[JobStatus],
    kinds: list[str],
    since: str | None,
    until: str | None,
    before: int | None,
    limit: int,
) -> JobQuery:
    wanted: list[tuple[str, str | None]] = []
    for tag in tags:
        key, eq, value = tag.partition("=")
        wanted.append((key, value if eq else None))
    return JobQuery(
        user=user,
        tags=tuple(wanted),
        statuses=tuple(s.value for s in statuses),
        kinds=tuple(kinds),
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        before=before,
        limit=limit,
    )


def day_range(first: str | None, last: str | None, now: float) -> tuple[float, float]:
    """`from` and `to` of the ledger's days: the last 30 days up to today by default."""
    to = parse_time(last, "to")
    to = now if to is None else to
    start = parse_time(first, "from")
    start = to - 29 * DAY if start is None else start
    if start > to:
        raise InvalidRequest("from: must not be after to", field="from")
    if day_of(to) - day_of(start) > 366 * 10:
        raise InvalidRequest("from: at most ten years of days at once", field="from")
    return start, to


def days_json(days: list[DayUsage]) -> list[dict[str, Any]]:
    return [
        {
            "day": datetime.fromtimestamp(d.day * DAY, UTC).date().isoformat(),
            "user": d.user,
            "charged": d.charged,
            "core_seconds": d.core_seconds,
            "units": d.units,
        }
        for d in days
    ]
