"""Queued units re-cut when the pool has more idle slots than queued units, decided by the
pure settle step and folded (the integration test runs it on a real server): multistart
starts and scan grid ranges, only units never granted, the same result either way."""

from __future__ import annotations

from typing import Any

from park import commands
from park.domain import Priority
from park.events.schema import Event, UnitLeaseExpired, UnitsSplit, WorkerJoined
from park.kinds.fit.kind import FitKind
from park.projections.state import ParkState
from tests.kinds.test_fit_kind import sine_spec


def submitted(spec: dict[str, Any], workers: int) -> tuple[ParkState, list[Event]]:
    state, log = ParkState(), []
    events: list[Event] = [
        WorkerJoined(at=0.0, worker_id=f"w{i}", name=f"w{i}", cpus=1) for i in range(workers)
    ]
    events += commands.submit_job(
        job_id="j", user="ann", kind="fit", spec=spec, priority=Priority.FREE, tags={},
        notify=None, now=1.0,
    )  # fmt: skip
    for e in events:
        state.apply(state.offset + 1, e)
        log.append(e)
    return state, log


def settle(state: ParkState, log: list[Event], now: float = 2.0) -> list[Event]:
    """Settle until nothing follows, as the service does."""
    out: list[Event] = []
    events = commands.settle_jobs(state, ["j"], now)
    while events:
        for e in events:
            state.apply(state.offset + 1, e)
        out += events
        events = commands.settle_jobs(state, ["j"], now)
    log += out
    return out


def run_all(state: ParkState, log: list[Event]) -> dict[str, Any]:
    """Lease and run every unit to the end (really: FitKind.run_unit), one worker."""
    kind = FitKind()
    job = state.jobs["j"]
    context = kind.unit_context(job.spec)
    now = 3.0
    while job.active:
        leased = commands.lease_units(state, "w0", 1, now=now, lease_seconds=30.0)
        assert leased, "nothing to lease, yet the job is active"
        for e in leased:
            state.apply(state.offset + 1, e)
        unit = state.units[leased[-1].unit_id]  # type: ignore[union-attr]
        result = FitKind.run_unit({**context, **unit.payload})
        report = commands.UnitReport(unit.id, True, result, None, 0.01, 0.01)
        events, _ = commands.report_units(state, "w0", [report], now=now)
        for e in events:
            state.apply(state.offset + 1, e)
        log += leased + events
        settle(state, log, now)
        now += 1.0
    assert state.check() == []
    return dict(job.result)


def test_a_multistart_with_fewer_units_than_idle_slots_is_cut_and_gives_the_same_answer() -> None:
    spec = sine_spec("multistart", starts=9, seed=3, per_unit=9)
    state, log = submitted(spec, workers=3)
    planned, split = settle(state, log)
    assert [u.unit_id for u in planned.units] == ["j/0"]  # type: ignore[attr-defined]
    assert isinstance(split, UnitsSplit) and split.unit_id == "j/0"
    # Three idle slots, one queued unit: cut in three, in its place in the queue.
    assert [(u.unit_id, u.payload["first"], len(u.payload["starts"])) for u in split.units] == [
        ("j/0.0", 0, 3), ("j/0.1", 3, 3), ("j/0.2", 6, 3)
    ]  # fmt: skip
    job = state.jobs["j"]
    assert list(job.queue) == ["j/0.0", "j/0.1", "j/0.2"] and job.units_total == 3
    assert "j/0" not in state.units and state.check() == []
    cut = run_all(state, log)
    whole_state, whole_log = submitted(spec, workers=1)  # one slot: never cut
    assert not any(isinstance(e, UnitsSplit) for e in settle(whole_state, whole_log))
    whole = run_all(whole_state, whole_log)
    assert cut["chisq"] == whole["chisq"] and cut["parameters"] == whole["parameters"]
    assert [h["chisq"] for h in cut["history"]] == [h["chisq"] for h in whole["history"]]
    # The split is re-folded alike from the log.
    again = ParkState()
    for offset, e in enumerate(log, 1):
        again.apply(offset, e)
    assert again.jobs["j"].result == state.jobs["j"].result and again.fold_errors == 0


def test_a_scan_grid_range_is_cut_and_granted_units_never_are() -> None:
    spec = sine_spec("scan", points={"A": 4, "omega": 4, "phi": 1}, per_unit=16)
    state, log = submitted(spec, workers=2)
    _, split = settle(state, log)
    assert isinstance(split, UnitsSplit)
    assert [(u.payload["start"], u.payload["stop"]) for u in split.units] == [(0, 8), (8, 16)]
    for worker in ("w0", "w1"):
        for e in commands.lease_units(state, worker, 1, now=3.0, lease_seconds=30.0):
            state.apply(state.offset + 1, e)
    # w1's lease is lost and a third worker joins: two idle slots, one queued unit, but
    # a unit once granted is never cut.
    for e in [
        UnitLeaseExpired(at=4.0, unit_id="j/0.1", job_id="j", worker_id="w1"),
        WorkerJoined(at=4.0, worker_id="w2", name="w2", cpus=1),
    ]:
        state.apply(state.offset + 1, e)
    assert list(state.jobs["j"].queue) == ["j/0.1"]
    assert settle(state, log, 4.0) == []
    assert state.check() == []


def test_no_cut_while_queued_units_keep_every_slot_busy() -> None:
    state, log = submitted(sine_spec("multistart", starts=8, seed=3, per_unit=4), workers=2)
    (planned,) = settle(state, log)  # two units, two idle slots
    assert len(planned.units) == 2  # type: ignore[attr-defined]
