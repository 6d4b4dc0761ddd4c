"""What must hold between the tables of `ParkState`, checked so a fold bug is seen at once.

A unit is leased exactly when the lease table has it at its deadline and its holder's
worker lists it; a unit that is not leased holds no credit; each user's reserved credit is
what their leased units hold; a job's queue holds only its queued units, and a job is in
the scheduler's runnable index exactly when it is active with a non-empty queue. The fold
checks the units an event concerns after every event (cheap); `check` checks everything
(property tests, `park replay --verify`, start-up).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from park.domain import Priority, UnitStatus

if TYPE_CHECKING:
    from park.projections.state import ParkState

_CREDIT_TOLERANCE = 1e-6


def unit_problem(state: ParkState, unit_id: str) -> str | None:
    """Why this unit's lease, its holder's list and its reservation disagree, or None."""
    unit = state.units.get(unit_id)
    if unit is None:
        return None if unit_id not in state.leased else f"unit {unit_id}: leased but unknown"
    if unit.status is UnitStatus.LEASED:
        if state.leased.get(unit_id) != unit.lease_deadline or unit.lease_deadline is None:
            return f"unit {unit_id}: leased, but the lease table says {state.leased.get(unit_id)}"
        worker = state.workers.get(unit.worker_id or "")
        if worker is None or unit_id not in worker.units:
            return f"unit {unit_id}: leased to {unit.worker_id}, who does not hold it"
        if unit.reserved < 0:
            return f"unit {unit_id}: reserves {unit.reserved} credit"
        return _backup_problem(state, unit_id)
    if unit_id in state.backup_leased or unit.backup_worker_id is not None:
        return f"unit {unit_id}: {unit.status.value}, but with a backup attempt"
    if unit_id in state.leased:
        return f"unit {unit_id}: {unit.status.value}, but in the lease table"
    if unit.reserved != 0.0:
        return f"unit {unit_id}: {unit.status.value}, but still reserves {unit.reserved} credit"
    if unit.worker_id is not None:
        worker = state.workers.get(unit.worker_id)
        if worker is not None and unit_id in worker.units:
            return f"unit {unit_id}: {unit.status.value}, but {unit.worker_id} still holds it"
    return None


def _backup_problem(state: ParkState, unit_id: str) -> str | None:
    """A leased unit's backup attempt: in the backup lease table at its deadline, held by
    its worker, another than the current holder."""
    unit = state.units[unit_id]
    if unit.backup_worker_id is None:
        return None if unit_id not in state.backup_leased else f"unit {unit_id}: stray backup"
    if state.backup_leased.get(unit_id) != unit.backup_deadline or unit.backup_deadline is None:
        return f"unit {unit_id}: backup lease table says {state.backup_leased.get(unit_id)}"
    worker = state.workers.get(unit.backup_worker_id)
    if worker is None or unit_id not in worker.units or unit.backup_worker_id == unit.worker_id:
        return f"unit {unit_id}: backup on {unit.backup_worker_id}, who does not hold it"
    return None


def check(state: ParkState) -> list[str]:
    """Every disagreement between the tables (empty when the state is consistent)."""
    problems = [p for unit_id in state.units if (p := unit_problem(state, unit_id))]
    problems += [
        f"unit {u}: in the lease table, not a unit"
        for u in [*state.leased, *state.backup_leased]
        if u not in state.units
    ]
    for worker in state.workers.values():
        for unit_id in worker.units:
            unit = state.units.get(unit_id)
            if (
                unit is None
                or unit.status is not UnitStatus.LEASED
                or worker.id not in (unit.worker_id, unit.backup_worker_id)
            ):
                problems.append(f"worker {worker.id}: holds unit {unit_id}, not leased to it")
    reserved: dict[tuple[str, Priority], float] = defaultdict(float)
    for unit in state.units.values():
        if unit.status is UnitStatus.LEASED:
            job = state.jobs.get(unit.job_id)
            if job is None:
                problems.append(f"unit {unit.id}: of unknown job {unit.job_id}")
                continue
            reserved[(job.user, unit.priority)] += unit.reserved
    for key in set(reserved) | set(state.ledger):
        held = state.ledger[key].reserved if key in state.ledger else 0.0
        if abs(held - reserved.get(key, 0.0)) > _CREDIT_TOLERANCE * max(1.0, abs(held)):
            problems.append(
                f"ledger {key[0]}/{key[1].value}: reserves {held}, "
                f"its leased units {reserved.get(key, 0.0)}"
            )
    for job in state.jobs.values():
        for unit_id in job.queue:
            unit = state.units.get(unit_id)
            if unit is None or unit.status is not UnitStatus.QUEUED or unit.job_id != job.id:
                problems.append(
                    f"job {job.id}: queues unit {unit_id}, which is not its queued unit"
                )
        if (job.id in state.runnable) != (job.active and bool(job.queue)):
            problems.append(f"job {job.id}: runnable index says {job.id in state.runnable}")
    if len(state.queue_index) != len(state.runnable):
        problems.append(
            f"scheduler index holds {len(state.queue_index)} jobs, {len(state.runnable)} runnable"
        )
    return problems
