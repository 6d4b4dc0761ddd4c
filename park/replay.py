"""Replay: rebuild the projections from the log, and re-run every recorded decision.

`verify` folds the log from the start and, at each `work.requested` decision, runs the
policy on the state as it was and compares its grants (backup attempts included) with
the `unit.granted` events recorded after it (a `pending` ask, waiting for the scheduler
leader, decides nothing; a leader's decision is re-run on the state it names as its
`basis`, a first pass finding those). Any difference is a determinism bug (or a tampered log).
"""

from __future__ import annotations

from dataclasses import dataclass

from park.commands import grant_events
from park.events.log import EventLog
from park.events.schema import PoolDecided, UnitGranted, WorkRequested
from park.projections.state import ParkState
from park.scheduler.backups import lease_grants
from park.scheduler.pilots import PoolConfig, decide_pool
from park.scheduler.policy import WorkRequest


@dataclass(frozen=True, slots=True)
class Mismatch:
    offset: int
    worker_id: str
    recorded: list[tuple[object, ...]]
    replayed: list[tuple[object, ...]]


def _pool_mismatch(state: ParkState, e: PoolDecided, offset: int) -> Mismatch | None:
    """The adaptive pool's decision, re-made on the state it names (the state it was
    recorded on, since the leader records it at once)."""
    again = decide_pool(state, PoolConfig.model_validate(e.config), e.at)
    found = [(d.action, d.reason) for d in again if d.pilot_id in ("", e.pilot_id)]
    if (e.action, e.reason) in found:
        return None
    return Mismatch(offset, "pool", [(e.action, e.pilot_id, e.reason)], list(found))


def _decision(e: UnitGranted) -> tuple[object, ...]:
    return (e.unit_id, e.job_id, e.priority.value, e.price, e.reserved, e.vstart, e.vpass, e.backup)


@dataclass
class ReplayReport:
    state: ParkState
    requests: int
    grants: int
    mismatches: list[Mismatch]


def _expected(state: ParkState, event: WorkRequested) -> list[tuple[object, ...]]:
    request = WorkRequest(event.worker_id, event.max_units, event.at, event.max_seconds)
    grants = lease_grants(state, request)
    return [
        _decision(g)
        for g in grant_events(state, event.worker_id, grants, now=event.at, lease_seconds=0.0)
    ]


async def _late_decisions(
    log: EventLog, to: int | None
) -> dict[int, list[tuple[int, WorkRequested]]]:
    """Decisions recorded after other events landed on top of the state they were made on
    (a scheduler leader sharing the log with API servers), by the offset of that state."""
    late: dict[int, list[tuple[int, WorkRequested]]] = {}
    after = 0
    while batch := await log.read(after=after, limit=10_000):
        for rec in batch:
            if to is not None and rec.offset > to:
                return late
            e = rec.event
            if isinstance(e, WorkRequested) and e.basis is not None and e.basis < rec.offset - 1:
                late.setdefault(e.basis, []).append((rec.offset, e))
        after = batch[-1].offset
    return late


async def replay(log: EventLog, *, to: int | None = None, verify: bool = False) -> ReplayReport:
    state = ParkState()
    report = ReplayReport(state, 0, 0, [])
    pending: tuple[int, WorkRequested, list[tuple[object, ...]]] | None = None
    recorded: list[tuple[object, ...]] = []
    late = await _late_decisions(log, to) if verify else {}
    # What the policy gives on a late decision's own state, kept until it is reached.
    computed: dict[int, list[tuple[object, ...]]] = {
        offset: _expected(state, e) for offset, e in late.pop(0, [])
    }

    def settle_pending() -> None:
        nonlocal pending, recorded
        if pending is not None:
            offset, request, expected = pending
            if recorded != expected:
                report.mismatches.append(Mismatch(offset, request.worker_id, recorded, expected))
        pending, recorded = None, []

    decided_on = 0
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
                if isinstance(event, WorkRequested) and not event.pending:
                    report.requests += 1
                    expected = computed.pop(rec.offset, None)
                    if expected is None:
                        expected = _expected(state, event)
                    pending = (rec.offset, event, expected)
                if isinstance(event, PoolDecided) and event.basis == decided_on:
                    report.requests += 1
                    if (wrong := _pool_mismatch(state, event, rec.offset)) is not None:
                        report.mismatches.append(wrong)
            state.apply(rec.offset, event)
            if not isinstance(event, PoolDecided):  # (decisions change no state)
                decided_on = rec.offset
            if state.outbox:
                state.outbox.take()  # finished jobs leaving memory: replay only counts them
            if late:
                for offset, e in late.pop(rec.offset, []):
                    computed[offset] = _expected(state, e)
        else:
            after = batch[-1].offset
            continue
        break
    if verify:
        settle_pending()
    return report
