"""Replay: rebuild the projections from the log, and re-run every recorded decision.

`verify` folds the log from the start and, at each `work.requested` event, runs the policy
on the state as it was and compares its grants with the `unit.granted` events that were
recorded after it. Any difference is a determinism bug (or a tampered log).
"""

from __future__ import annotations

from dataclasses import dataclass

from park.commands import grant_events
from park.events.log import EventLog
from park.events.schema import UnitGranted, WorkRequested
from park.projections.state import ParkState
from park.scheduler.policy import WorkRequest, grant


@dataclass(frozen=True, slots=True)
class Mismatch:
    offset: int
    worker_id: str
    recorded: list[tuple[object, ...]]
    replayed: list[tuple[object, ...]]


def _decision(e: UnitGranted) -> tuple[object, ...]:
    return (e.unit_id, e.job_id, e.priority.value, e.price, e.reserved, e.vstart, e.vpass)


@dataclass
class ReplayReport:
    state: ParkState
    requests: int
    grants: int
    mismatches: list[Mismatch]


async def replay(log: EventLog, *, to: int | None = None, verify: bool = False) -> ReplayReport:
    state = ParkState()
    report = ReplayReport(state, 0, 0, [])
    pending: tuple[int, WorkRequested, list[tuple[object, ...]]] | None = None
    recorded: list[tuple[object, ...]] = []

    def settle_pending() -> None:
        nonlocal pending, recorded
        if pending is not None:
            offset, request, expected = pending
            if recorded != expected:
                report.mismatches.append(Mismatch(offset, request.worker_id, recorded, expected))
        pending, recorded = None, []

    after = 0
    while True:
        batch = await log.read(after=after, limit=10_000)
        if not batch:
            break
        for rec in batch:
            if to is not None and rec.offset > to:
                break
            event = rec.event
            if verify:
                if isinstance(event, UnitGranted) and pending is not None:
                    recorded.append(_decision(event))
                    report.grants += 1
                else:
                    settle_pending()
                if isinstance(event, WorkRequested):
                    report.requests += 1
                    request = WorkRequest(event.worker_id, event.max_units, event.at)
                    grants = grant(state, request)
                    expected = [
                        _decision(g)
                        for g in grant_events(
                            state, event.worker_id, grants, now=event.at, lease_seconds=0.0
                        )
                    ]
                    pending = (rec.offset, event, expected)
            state.apply(rec.offset, event)
        else:
            after = batch[-1].offset
            continue
        break
    if verify:
        settle_pending()
    return report
