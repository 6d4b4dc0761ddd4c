"""Per-user limits, so that no one user's submissions crowd out the others: a cap on the
jobs a user has active and on the units they have queued. The defaults are generous for a
lab (a thousand jobs, a million queued units); `park serve` sets them."""

from __future__ import annotations

from dataclasses import dataclass

from park.errors import TooManyRequests
from park.projections.state import ParkState

ACTIVE_JOBS = 1000
QUEUED_UNITS = 1_000_000


@dataclass(frozen=True, slots=True)
class UserLimits:
    active_jobs: int = ACTIVE_JOBS
    queued_units: int = QUEUED_UNITS


def queued_units(state: ParkState, user: str) -> int:
    return sum(len(state.jobs[j].queue) for j in state.runnable_by_user.get(user, ()))


def check_submit(state: ParkState, user: str, limits: UserLimits) -> None:
    """Refuse (429) a new job from a user at either limit."""
    active = state.active_jobs_of.get(user, 0)
    if active >= limits.active_jobs:
        raise TooManyRequests(
            f"user {user!r} has {active:,} active jobs, the most this server takes from one "
            "user; submit more when some have finished (or cancel some)",
            details={"limit": "active_jobs", "value": limits.active_jobs},
        )
    queued = queued_units(state, user)
    if queued >= limits.queued_units:
        raise TooManyRequests(
            f"user {user!r} has {queued:,} units queued, the most this server holds for one "
            "user; submit more when some have run (or cancel some)",
            details={"limit": "queued_units", "value": limits.queued_units},
        )
