"""A 2,000,000-point scan is planned lazily: the units planned and not done stay within a
window, whatever the grid (issue 10: memory bounded by the units in flight)."""

from __future__ import annotations

import math

from park.commands import settle_jobs, submit_job
from park.domain import Priority
from park.events.schema import JobSubmitted, UnitCompleted, UnitsPlanned
from park.kinds.fit.scan import WINDOW
from park.projections.state import ParkState
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
    # Three units complete: exactly three more are planned, continuing the grid.
    for unit in first.units[:3]:
        width = unit.payload["stop"] - unit.payload["start"]
        done = UnitCompleted(
            at=4.0, unit_id=unit.unit_id, job_id="s", worker_id="w",
            result={"chisq": [1.0] * width}, cpu_seconds=0.0, charged=0.0,
        )  # fmt: skip
        state.units[unit.unit_id].holders.append("w")  # as if granted to w
        state.apply(state.offset + 1, done)
    (more,) = settle(5.0)
    assert [u.payload["start"] for u in more.units] == [WINDOW * 100 + 100 * k for k in range(3)]
    assert len(state.units) == WINDOW + 3
    assert job.kind_state.chisq.itemsize == 8 and math.isinf(job.kind_state.chisq[-1])
