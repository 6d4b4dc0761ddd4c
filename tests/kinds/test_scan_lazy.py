"""A 2,000,000-point scan is planned lazily: the units planned and not done stay within a
window, whatever the grid, and what the fold keeps of it (units, surface, history) stays
bounded as it runs (issue 10: memory bounded by the units in flight)."""

from __future__ import annotations

from park.commands import settle_jobs, submit_job
from park.domain import Priority
from park.events.schema import JobSubmitted, PlannedUnit, UnitCompleted, UnitsPlanned
from park.kinds.fit.scan import HISTORY_CHUNKS, SURFACE_POINTS, WINDOW
from park.projections.state import RECENT_DONE_UNITS, ParkState
from tests.kinds.test_fit_kind import sine_spec


def test_a_two_million_point_scan_plans_only_a_window_of_units() -> None:
    spec = sine_spec("scan", points={"A": 1000, "omega": 2000, "phi": 1}, per_unit=100)
    state = ParkState()
    (submitted,) = submit_job(
        job_id="s", user="ann", kind="fit", spec=spec, priority=Priority.FREE, tags={},
        notify=None, now=1.0,
    )  # fmt: skip
    assert isinstance(submitted, JobSubmitted)
    state.apply(1, submitted)
    job = state.jobs["s"]
    assert job.kind_state.total == 2_000_000

    def settle(now: float) -> list[UnitsPlanned]:
        events = settle_jobs(state, ["s"], now)
        for e in events:
            state.apply(state.offset + 1, e)
        return [e for e in events if isinstance(e, UnitsPlanned)]

    (first,) = settle(2.0)
    assert len(first.units) == WINDOW  # not the 20,000 units of the whole grid
    assert settle(3.0) == []  # the window is full

    def complete(units: list[PlannedUnit], now: float) -> None:
        for unit in units:
            width = unit.payload["stop"] - unit.payload["start"]
            done = UnitCompleted(
                at=now, unit_id=unit.unit_id, job_id="s", worker_id="w",
                result={"chisq": [float(unit.payload["start"])] * width},
                cpu_seconds=0.0, charged=0.0,
            )  # fmt: skip
            state.units[unit.unit_id].holders.append("w")
            state.apply(state.offset + 1, done)

    # Three units complete: exactly three more are planned, continuing the grid.
    complete(first.units[:3], 4.0)
    (more,) = settle(5.0)
    assert [u.payload["start"] for u in more.units] == [WINDOW * 100 + 100 * k for k in range(3)]
    assert len(state.units) == WINDOW + 3
    # Hundreds of units later, the unit table holds those in flight and the latest done.
    waiting = first.units[3:] + more.units
    for step in range(400):
        complete(waiting[:1], 6.0 + step)
        (planned,) = settle(6.0 + step)
        waiting = waiting[1:] + planned.units
    assert job.units_done == 403
    assert len(state.units) == WINDOW + RECENT_DONE_UNITS
    assert len(job.unit_ids) == WINDOW + RECENT_DONE_UNITS
    assert state.check() == []
    scan = job.kind_state
    assert len(scan.surface) <= SURFACE_POINTS and len(scan.runs) <= HISTORY_CHUNKS
    assert (scan.best, scan.best_chisq) == (0, 0.0)
    # A repeated plan of units that completed and left the table plans nothing again.
    state.apply(state.offset + 1, first)
    assert job.units_total == 403 + WINDOW
