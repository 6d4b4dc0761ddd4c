"""Grants, completions and planned units are built without validation
(park/events/trusted.py): each must be exactly what validating its values makes, write
the same JSON, and read back."""

from __future__ import annotations

import pytest

from park import core
from park.domain import Priority, UnitReport
from park.events.schema import (
    Event,
    PlannedUnit,
    UnitCompleted,
    UnitGranted,
    UnitsPlanned,
    WorkRequested,
    event_from_json,
    event_to_json,
)
from park.events.trusted import trusted
from park.projections.state import ParkState

SPEC = {"function": "park.builtins:sleep", "inputs": [0, 1, 2, 3], "chunk": 1}


def run_a_job(now: float) -> list[Event]:
    """A paid job (prices, reservations, charges), leased directly and through an ask
    (a request id), reported with integer times, all at an integer clock."""
    state, log = ParkState(), []

    def append(events: object) -> range:
        batch = list(events)  # type: ignore[call-overload]
        log.extend(batch)
        return range(len(log) - len(batch) + 1, len(log) + 1)

    def run(command: core.Command) -> core.Step:
        return core.execute(state, command, now, append)

    job = core.SubmitJob(job_id="j", user="ann", kind="map", spec=SPEC, priority=Priority.HIGH)
    run(job)
    run(core.RegisterWorker(worker_id="w", details={"name": "w", "cpus": 2}))
    granted = run(core.LeaseUnits(worker_id="w", max_units=2, lease_seconds=30)).events
    ask = core.AskForWork(worker_id="w", max_units=2, request_id="r1", wait=5)
    asked = run(ask).events[0]
    assert isinstance(asked, WorkRequested)
    granted += run(core.AnswerAsk(ask=asked, lease_seconds=30, even_empty=False)).events
    leased = core.leased_units(state, granted)
    assert len(leased) == 4
    reports = [
        UnitReport(lu.unit.id, True, [i], cpu_seconds=i * 0.5, wall_seconds=float(i))
        for i, lu in enumerate(leased)
    ]
    run(core.ReportUnits(worker_id="w", reports=reports))
    assert state.jobs["j"].result == [0, 1, 2, 3]
    return log


@pytest.mark.parametrize("now", [1_700_000_000.25, 100])
def test_grants_and_completions_are_what_validation_makes(now: float) -> None:
    events = [e for e in run_a_job(now) if isinstance(e, UnitGranted | UnitCompleted)]
    assert sum(isinstance(e, UnitGranted) for e in events) == 4
    assert sum(isinstance(e, UnitCompleted) for e in events) == 4
    assert any(isinstance(e, UnitGranted) and e.request_id == "r1" for e in events)
    for event in events:
        validated = type(event).model_validate(event.model_dump())
        assert event == validated
        assert event_to_json(event) == event_to_json(validated)  # field order, 30.0 not 30
        assert event_from_json(event_to_json(event)) == event
        assert all(
            type(getattr(event, name)) is type(getattr(validated, name))
            for name in type(event).model_fields
        )


def test_planned_units_are_what_validation_makes() -> None:
    planned = [e for e in run_a_job(5.0) if isinstance(e, UnitsPlanned)]
    assert [len(e.units) for e in planned] == [4]
    for unit in planned[0].units:
        validated = PlannedUnit.model_validate(unit.model_dump())
        assert unit == validated
        assert unit.model_dump_json() == validated.model_dump_json()
    assert event_from_json(event_to_json(planned[0])) == planned[0]


def test_a_field_left_out_is_refused() -> None:
    with pytest.raises(TypeError, match="unit_id"):
        trusted(UnitCompleted, {"v": 1, "at": 1.0, "type": "unit.completed"})
