"""Units' attempts, time limits, routing by allow list and silent workers, decided by the
pure commands and folded (no server: the integration tests run the real one)."""

from __future__ import annotations

from park import commands
from park.commands import UnitReport
from park.domain import JobStatus, UnitStatus
from park.events.schema import Event, UnitFailed, UnitGranted, WorkerExpired, WorkerJoined
from park.projections.state import ParkState
from park.scheduler.explain import explain
from tests.projections.test_fold import fold, job_with_units


def lease(state: ParkState, worker: str, now: float, n: int = 1) -> list[UnitGranted]:
    events = commands.lease_units(state, worker, n, now=now, lease_seconds=30.0)
    fold(*events, state=state)
    return [e for e in events if isinstance(e, UnitGranted)]


def fail(state: ParkState, worker: str, unit: str, now: float) -> list[Event]:
    events, ignored = commands.report_units(
        state, worker, [UnitReport(unit, False, error="ValueError: flaky")], now=now
    )
    assert ignored == []
    fold(*events, state=state)
    return events


def test_a_failed_unit_is_tried_again_on_another_worker_until_max_attempts() -> None:
    state = fold(*job_with_units(1))
    (first,) = lease(state, "w1", 2.0)
    assert (first.unit_id, first.worker_id, first.attempt) == ("j/0", "w1", 1)
    (failed,) = fail(state, "w1", "j/0", 3.0)
    assert isinstance(failed, UnitFailed) and failed.retry and failed.attempt == 1
    assert state.units["j/0"].status is UnitStatus.QUEUED
    assert state.jobs["j"].status is JobStatus.RUNNING
    # w1 failed it and w2 may run it: w1 is not given it again, w2 is.
    assert lease(state, "w1", 4.0) == []
    (second,) = lease(state, "w2", 4.0)
    assert (second.worker_id, second.attempt) == ("w2", 2)
    fail(state, "w2", "j/0", 5.0)
    # Both have failed it now: whoever asks gets it; the third failure fails the job.
    (third,) = lease(state, "w1", 6.0)
    assert third.attempt == 3
    (last,) = fail(state, "w1", "j/0", 7.0)
    assert isinstance(last, UnitFailed) and not last.retry
    fold(*commands.settle_jobs(state, ["j"], 7.0), state=state)
    job = state.jobs["j"]
    assert job.status is JobStatus.FAILED
    assert job.error == "unit j/0 failed (attempt 3 of 3): ValueError: flaky"


def test_explain_and_the_unit_show_every_failed_attempt() -> None:
    state = fold(*job_with_units(2))
    lease(state, "w1", 2.0)
    fail(state, "w1", "j/0", 3.0)
    unit = state.units["j/0"]
    assert (unit.attempts, unit.failures, unit.failed_on) == (1, 1, ["w1"])
    assert unit.last_error == "ValueError: flaky"
    why = explain(state, "j", 4.0)
    assert why["failed_attempts"] == [
        {
            "unit": "j/0",
            "status": "queued",
            "attempts": 1,
            "failures": 1,
            "failed_on": ["w1"],
            "last_error": "ValueError: flaky",
        }
    ]
    assert any("failed an attempt" in r for r in why["reasons"])


def test_a_unit_past_its_time_limit_fails_an_attempt_a_lost_lease_does_not() -> None:
    state = fold(*job_with_units(2))
    (a, _) = lease(state, "w1", 2.0, n=2)
    assert a.time_limit == 3600.0  # the map kind's default, under the policy's cap
    # w1 keeps extending: never past the time limit plus grace.
    for now in range(20, 3700, 20):
        fold(
            *commands.extend_leases(state, "w1", ["j/0"], now=now, lease_seconds=30.0),
            state=state,
        )
    assert state.units["j/0"].lease_deadline == 2.0 + 3600.0 + commands.TIME_LIMIT_GRACE
    expired = commands.expire_leases(state, 3610.0)
    kinds = {e.unit_id: type(e).__name__ for e in expired}
    assert kinds == {"j/0": "UnitFailed", "j/1": "UnitLeaseExpired"}
    timed_out = next(e for e in expired if isinstance(e, UnitFailed))
    assert timed_out.timed_out and timed_out.retry
    assert "max_unit_seconds=3600" in timed_out.error
    fold(*expired, state=state)
    assert state.units["j/0"].failures == 1
    assert state.units["j/1"].failures == 0


def test_heartbeats_extend_only_held_units_and_name_what_to_stop() -> None:
    state = fold(*job_with_units(2))
    lease(state, "w1", 2.0)  # j/0
    lease(state, "w2", 2.0)  # j/1
    events = commands.extend_leases(state, "w1", ["j/0", "j/1", "nope"], now=10, lease_seconds=30)
    assert [e.unit_ids for e in events] == [["j/0"]]  # type: ignore[attr-defined]
    assert commands.leases_to_stop(state, "w1", ["j/0", "j/1", "nope"]) == ["j/1", "nope"]
    fold(*commands.cancel_job(state, "j", by=None, now=11.0), state=state)
    assert commands.leases_to_stop(state, "w1", ["j/0"]) == ["j/0"]


def test_units_go_only_to_workers_whose_allow_list_has_their_function() -> None:
    state = fold(
        *job_with_units(1)[:2],
        WorkerJoined(at=1.0, worker_id="plain", name="plain", cpus=1, allowed=[]),
        WorkerJoined(at=1.0, worker_id="mine", name="mine", cpus=1, allowed=["m:*"]),
    )
    assert lease(state, "plain", 2.0) == []
    (granted,) = lease(state, "mine", 2.0)
    assert granted.worker_id == "mine"


def test_a_job_no_worker_may_run_waits_and_explain_says_why() -> None:
    state = fold(
        *job_with_units(1)[:2],
        WorkerJoined(at=1.0, worker_id="plain", name="plain", cpus=1, allowed=["json:*"]),
    )
    assert lease(state, "plain", 2.0) == []
    why = explain(state, "j", 2.0)
    assert why["status"] == "pending"
    assert any("allows m:f" in r and "PARK_ALLOWED_FUNCTIONS" in r for r in why["reasons"])


def test_a_silent_worker_expires_and_its_leases_go_back() -> None:
    state = fold(*job_with_units(2))
    lease(state, "w1", 2.0)
    seen = {"w2": 85.0}
    events = commands.expire_workers(state, 91.0, timeout=90.0, seen=seen, since=0.0)
    assert events == []  # w1 asked for work at 2.0, w2 called at 85
    events = commands.expire_workers(state, 92.5, timeout=90.0, seen={}, since=0.0)
    fold(*events, state=state)
    assert [type(e).__name__ for e in events] == [
        "UnitLeaseExpired",
        "WorkerExpired",
        "WorkerExpired",
    ]
    assert isinstance(events[1], WorkerExpired) and events[1].worker_id == "w1"
    assert state.units["j/0"].status is UnitStatus.QUEUED
    assert not state.workers["w1"].active and state.workers["w1"].expired
    # A restart gives every worker a full timeout: `since` is the server's start.
    fresh = fold(*job_with_units(2))
    assert commands.expire_workers(fresh, 92.5, timeout=90.0, seen={}, since=10.0) == []
