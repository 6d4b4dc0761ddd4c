"""Smaller units when the pool idles: a job's queued work re-cut to keep every slot busy.

A kind plans its units before it knows the pool; with `per_unit` starts or grid points per
unit, a job with fewer queued units than idle worker slots would leave slots idle while
one worker runs several starts in a row. Then the queued units that were never granted
are cut (`JobKind.split`: multistart's starts, a scan's grid ranges) into as many more
units as there are spare slots, recorded as `units.split`. Pure: run when jobs are
settled, on the state alone.
"""

from __future__ import annotations

from park.events.schema import PlannedUnit, UnitsSplit
from park.kinds import KINDS, JobKind
from park.projections.state import JobView, ParkState
from park.scheduler.policy import may_serve


def idle_slots(state: ParkState, job: JobView) -> int:
    """CPUs of active workers that may run the job and hold fewer units than CPUs."""
    return sum(
        max(0, w.cpus - len(w.units))
        for w in state.workers.values()
        if w.active and may_serve(w, job)
    )


def queued_units(state: ParkState) -> int:
    """Units waiting in every runnable job's queue."""
    return sum(len(state.jobs[j].queue) for j in state.runnable)


def resplit(state: ParkState, job: JobView, now: float) -> list[UnitsSplit]:
    """Splits of the job's queued, never granted units, first in queue order, until the
    pool's idle slots are matched by queued units (none when they already are)."""
    kind = KINDS[job.kind]
    if not job.queue or type(kind).split is JobKind.split:
        # Nothing to cut: and counting the idle slots walks the whole pool, which at
        # every lease and report of a thousand workers' map jobs cost a third of the
        # server's time (benchmarks/many_workers.py).
        return []
    spare = idle_slots(state, job) - queued_units(state)
    events: list[UnitsSplit] = []
    for unit_id in job.queue:
        if spare <= 0:
            break
        unit = state.units[unit_id]
        if unit.attempts:
            continue
        pieces = kind.split(unit.payload, spare + 1)
        if len(pieces) < 2:
            continue
        units = [PlannedUnit(unit_id=f"{unit_id}.{k}", payload=p) for k, p in enumerate(pieces)]
        events.append(UnitsSplit(at=now, job_id=job.id, unit_id=unit_id, units=units))
        spare -= len(pieces) - 1
    return events


__all__ = ["idle_slots", "queued_units", "resplit"]
