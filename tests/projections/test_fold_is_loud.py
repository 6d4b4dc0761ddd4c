"""The fold is loud and all-or-nothing: an event it cannot apply is counted with its offset
and leaves the state exactly as before it; after every event the tables agree
(`ParkState.check`: leases, unit states, worker holdings, reserved credit)."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from park.domain import Priority
from park.events.schema import (
    Event,
    JobCancelled,
    JobSubmitted,
    LeaseExtended,
    PlannedUnit,
    UnitCompleted,
    UnitFailed,
    UnitGranted,
    UnitLeaseExpired,
    UnitsPlanned,
    WorkerJoined,
    WorkerLeft,
)
from park.projections.state import ParkState

_FOLD_RECORD = {"offset", "fold_errors", "recent_fold_errors"}


def tables(state: ParkState) -> bytes:
    """Everything but the offset and the fold's own record of what it left out."""
    return pickle.dumps(
        [getattr(state, f.name) for f in dataclasses.fields(state) if f.name not in _FOLD_RECORD]
    )


def start(jobs: int = 2, units: int = 2) -> list[Event]:
    events: list[Event] = [WorkerJoined(at=1.0, worker_id=w, name=w, cpus=1) for w in ("w1", "w2")]
    for j in range(jobs):
        events += [
            JobSubmitted(
                at=1.0, job_id=f"j{j}", user=f"u{j}", kind="map", priority=Priority.NORMAL,
                spec={"function": "m:f", "inputs": list(range(units)), "chunk": 1},
            ),
            UnitsPlanned(at=1.0, job_id=f"j{j}", units=[
                PlannedUnit(unit_id=f"j{j}/{i}", payload={"function": "m:f", "start": i,
                                                         "items": [i]})
                for i in range(units)
            ]),
        ]  # fmt: skip
    return events


def test_an_event_the_fold_cannot_apply_is_counted_and_changes_nothing() -> None:
    state = ParkState()
    for offset, event in enumerate(start(), 1):
        state.apply(offset, event)
    grant = UnitGranted(at=2.0, unit_id="j0/0", job_id="j0", worker_id="w1", lease_deadline=32.0,
                        priority=Priority.NORMAL, price=1.0, reserved=1.0)  # fmt: skip
    state.apply(state.offset + 1, grant)
    before = tables(state)
    bad = UnitCompleted(at=3.0, unit_id="j0/0", job_id="j0", worker_id="w1",
                        result={"not": "a list"}, cpu_seconds=1.0, charged=1.0)  # fmt: skip
    state.apply(state.offset + 1, bad)
    assert state.fold_errors == 1
    [error] = state.recent_fold_errors
    assert (error.offset, error.type) == (state.offset, "unit.completed")
    assert "expected a list of 1 outputs" in error.message
    assert tables(state) == before
    assert state.check() == []
    good = UnitCompleted(at=3.0, unit_id="j0/0", job_id="j0", worker_id="w1", result=[7],
                         cpu_seconds=1.0, charged=1.0)  # fmt: skip
    state.apply(state.offset + 1, good)
    assert state.fold_errors == 1 and state.jobs["j0"].units_done == 1
    assert state.check() == []


_units = st.sampled_from([f"j{j}/{i}" for j in range(2) for i in range(2)] + ["nope"])
_workers = st.sampled_from(["w1", "w2", "w3"])
_at = st.floats(2.0, 100.0)


def _job(unit: str) -> str:
    return unit.split("/")[0]


_event: st.SearchStrategy[Any] = st.one_of(
    st.builds(lambda u, w, at, price: UnitGranted(
        at=at, unit_id=u, job_id=_job(u), worker_id=w, lease_deadline=at + 30,
        priority=Priority.NORMAL, price=price, reserved=price), _units, _workers, _at,
        st.sampled_from([0.0, 1.0, 2.5])),
    st.builds(lambda u, w, at, result: UnitCompleted(
        at=at, unit_id=u, job_id=_job(u), worker_id=w, result=result, cpu_seconds=1.0,
        charged=1.0), _units, _workers, _at, st.sampled_from([[1], [], "x", None, [1, 2]])),
    st.builds(lambda u, w, at: UnitFailed(at=at, unit_id=u, job_id=_job(u), worker_id=w,
                                          error="boom"), _units, _workers, _at),
    st.builds(lambda u, w, at: UnitLeaseExpired(at=at, unit_id=u, job_id=_job(u),
                                                worker_id=w), _units, _workers, _at),
    st.builds(lambda us, w, at: LeaseExtended(at=at, worker_id=w, unit_ids=us,
                                              lease_deadline=at + 60),
              st.lists(_units, max_size=3), _workers, _at),
    st.builds(lambda w, at: WorkerLeft(at=at, worker_id=w), _workers, _at),
    st.builds(lambda j, at: JobCancelled(at=at, job_id=j, by="u0"),
              st.sampled_from(["j0", "j1"]), _at),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_event, max_size=25))
def test_any_sequence_of_events_keeps_the_tables_consistent(events: list[Event]) -> None:
    state = ParkState()
    for offset, event in enumerate(start(), 1):
        state.apply(offset, event)
    assert state.check() == []
    for event in events:
        before, errors = tables(state), state.fold_errors
        state.apply(state.offset + 1, event)
        if state.fold_errors > errors:
            assert tables(state) == before, state.recent_fold_errors[-1]
        assert state.check() == [], (event, state.recent_fold_errors)
