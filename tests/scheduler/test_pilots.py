"""The pure pilot decisions: requests, private pilots due and done, the adaptive pool, and
a pilot's worker granted only units it can finish before it leaves."""

from __future__ import annotations

import pytest

from park.commands import checked_resources
from park.domain import Priority, WorkerPolicy
from park.errors import InvalidRequest
from park.events.schema import (
    JobCancelled,
    PilotStateChanged,
    PilotSubmitted,
    UnitCompleted,
    UnitGranted,
    WorkerJoined,
)
from park.scheduler.pilots import (
    PoolConfig,
    decide_pool,
    parse_walltime,
    pilot_request_from_text,
    private_pilots_done,
    private_pilots_due,
)
from park.scheduler.policy import WorkRequest, grant
from tests.scheduler.support import fold, job


def test_walltimes_and_the_short_form_of_a_pilot() -> None:
    assert parse_walltime("1:00:00") == 3600
    assert parse_walltime("05:30") == 330
    assert parse_walltime(90) == 90
    request = pilot_request_from_text("slurm:nodes=2,walltime=1:00:00,queue=debug,cpus=4")
    assert (request.nodes, request.walltime, request.queue, request.cpus_per_node) == (
        2, 3600, "debug", 4,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"pilot\.scheduler"):
        pilot_request_from_text("lsf:nodes=1")


def test_a_bad_pilot_request_names_its_field() -> None:
    with pytest.raises(InvalidRequest) as err:
        checked_resources({"pilot": {"nodes": 0}})
    assert err.value.field == "resources.pilot.nodes"
    with pytest.raises(InvalidRequest) as err:
        checked_resources({"pilot": {"walltime": "soon"}})
    assert err.value.field == "resources.pilot.walltime"
    with pytest.raises(InvalidRequest) as err:
        checked_resources({"gpus": 2})
    assert err.value.field == "resources.gpus"


def private_job(job_id: str) -> list:  # type: ignore[type-arg]
    events = job(job_id, "ann", Priority.FREE, 0.0, 3)
    return [events[0].model_copy(update={"resources": {"pilot": {"nodes": 1}}}), events[1]]


def pilot(
    pilot_id: str, at: float, job_id: str | None = None, pool: bool = False
) -> PilotSubmitted:
    return PilotSubmitted(
        at=at, pilot_id=pilot_id, scheduler="slurm", batch_id=pilot_id.upper(),
        request={"nodes": 1, "cpus_per_node": 1}, job_id=job_id, pool=pool,
    )  # fmt: skip


def test_a_private_pilot_is_due_while_its_job_waits_and_done_when_the_job_ends() -> None:
    state = fold(*private_job("j"), *job("other", "bob", Priority.FREE, 0.0, 2))
    assert [j.id for j in private_pilots_due(state)] == ["j"]
    fold(pilot("p1", 1.0, "j"), state=state)
    assert private_pilots_due(state) == []  # one live pilot is enough
    fold(PilotStateChanged(at=2.0, pilot_id="p1", state="ended"), state=state)
    assert [j.id for j in private_pilots_due(state)] == ["j"]  # its time ran out: another
    fold(pilot("p2", 3.0, "j"), state=state)
    assert private_pilots_done(state) == []
    fold(JobCancelled(at=4.0, job_id="j", by="ann"), state=state)
    assert private_pilots_done(state) == ["p2"]


def test_a_pilot_that_could_not_be_submitted_is_not_retried() -> None:
    state = fold(*private_job("j"), pilot("p1", 1.0, "j"))
    fold(PilotStateChanged(at=1.0, pilot_id="p1", state="failed", reason="sbatch: no"), state=state)
    assert private_pilots_due(state) == []


def test_the_pool_grows_to_its_maximum_and_releases_idle_pilots() -> None:
    config = PoolConfig(max_nodes=2, max_pending=1, target=10, idle=30, unit_seconds=5)
    state = fold(*job("j", "ann", Priority.FREE, 0.0, 10))  # 50 core-s queued
    [grow] = decide_pool(state, config, 1.0)
    assert grow.action == "grow" and "50 queued core-s exceed what 0 cpu(s)" in grow.reason
    fold(pilot("p1", 1.0, pool=True), state=state)
    assert decide_pool(state, config, 2.0) == []  # one pending already: the maximum
    fold(WorkerJoined(at=3.0, worker_id="w1", name="n", cpus=1, pilot_id="p1"), state=state)
    assert [d.action for d in decide_pool(state, config, 3.0)] == ["grow"]
    fold(pilot("p2", 3.0, pool=True), state=state)
    fold(WorkerJoined(at=4.0, worker_id="w2", name="n", cpus=1, pilot_id="p2"), state=state)
    assert decide_pool(state, config, 4.0) == []  # two nodes: the maximum
    fold(JobCancelled(at=5.0, job_id="j", by="ann"), state=state)
    assert decide_pool(state, config, 20.0) == []  # not idle long enough
    released = decide_pool(state, config, 40.0)
    assert [(d.action, d.pilot_id) for d in released] == [("release", "p1"), ("release", "p2")]
    assert "idle for 36 s" in released[1].reason


def test_a_pilots_worker_gets_no_unit_it_cannot_finish_before_it_leaves() -> None:
    state = fold(*job("j", "ann", Priority.FREE, 0.0, 5))
    fold(WorkerJoined(at=0.0, worker_id="w", name="n", cpus=1, until=100.0), state=state)
    first = grant(state, WorkRequest("w", 1, 10.0))  # no unit time known yet: granted
    assert [g.unit_id for g in first] == ["j/0"]
    fold(
        UnitGranted(at=10.0, unit_id="j/0", job_id="j", worker_id="w", lease_deadline=50.0,
                    price=0.0, reserved=0.0),
        UnitCompleted(at=30.0, unit_id="j/0", job_id="j", worker_id="w", result=[0],
                      cpu_seconds=20.0, charged=0.0, wall_seconds=20.0),
        state=state,
    )  # fmt: skip
    assert len(grant(state, WorkRequest("w", 1, 75.0))) == 1  # 75 + 20 <= 100
    assert grant(state, WorkRequest("w", 1, 85.0)) == []  # 85 + 20 > 100
    fold(
        WorkerJoined(at=0.0, worker_id="v", name="n", cpus=1, policy=WorkerPolicy.ANY), state=state
    )
    assert len(grant(state, WorkRequest("v", 1, 85.0))) == 1  # no deadline: any unit


def test_explain_names_the_pilot_a_job_waits_for() -> None:
    from park.scheduler.explain import explain

    state = fold(*private_job("j"), *job("k", "bob", Priority.FREE, 0.0, 2))
    fold(
        pilot("p1", 1.0, "j"),
        PilotStateChanged(at=2.0, pilot_id="p1", state="queued", reason="Priority", queue="debug"),
        pilot("p2", 1.0, pool=True).model_copy(
            update={"reason": "the adaptive pool: 2 queued core-s exceed what 0 cpu(s) finish"}
        ),
        state=state,
    )
    mine = explain(state, "j", 3.0)["reasons"]
    assert "waiting for pilot P1 in queue debug (slurm): Priority" in mine
    others = explain(state, "k", 3.0)["reasons"]
    assert any(
        r.startswith("the adaptive pool's pilot P2 waits in queue default; the adaptive pool: 2")
        for r in others
    ), others
