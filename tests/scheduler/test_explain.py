"""`park explain` on a running job tells its progress and expected finish (not a start),
and on a job only owner-only workers of other users could take, says so and guesses no
start."""

from __future__ import annotations

from park.commands import UnitReport, report_units
from park.domain import Priority, WorkerPolicy
from park.events.schema import WorkerJoined
from park.scheduler.explain import explain
from tests.scheduler.support import fold, job, lease


def test_a_running_job_has_progress_and_an_expected_finish_not_a_start() -> None:
    state = fold(*job("j", "ann", Priority.NORMAL, 0.0, 10),
                 WorkerJoined(at=0.0, worker_id="w", name="w", cpus=2))  # fmt: skip
    lease(state, "w", 4, at=1.0)
    done = [UnitReport(f"j/{i}", True, [i]) for i in range(4)]
    fold(*report_units(state, "w", done, now=11.0)[0], state=state)
    lease(state, "w", 2, at=11.0)

    answer = explain(state, "j", now=11.0)
    assert answer["estimated_start"] is None
    assert answer["progress"] == {"done": 4, "total": 10, "running": 2}
    # 4 units in the 10 s since it started: 6 more take about 15 s.
    assert abs(answer["expected_finish"] - 26.0) < 1e-6
    assert any("4/10 units done, 2 running" in r for r in answer["reasons"])
    assert any("expected to finish in about 15 s" in r for r in answer["reasons"])


def test_owner_only_workers_of_others_give_no_start() -> None:
    state = fold(
        *job("mine", "bob", Priority.NORMAL, 0.0, 5),
        *job("hers", "ann", Priority.NORMAL, 0.0, 50),
        WorkerJoined(at=0.0, worker_id="desk", name="desk", cpus=1, owner="ann",
                     policy=WorkerPolicy.OWN_ONLY),
    )  # fmt: skip
    assert lease(state, "desk", 3, at=1.0) == ["hers"] * 3  # grants happen, for ann only
    answer = explain(state, "mine", now=2.0)
    assert answer["estimated_start"] is None
    assert any("owner-only workers serve only their owners' jobs (ann)" in r
               for r in answer["reasons"]), answer["reasons"]  # fmt: skip
    assert any("may run it" in r for r in answer["reasons"])
