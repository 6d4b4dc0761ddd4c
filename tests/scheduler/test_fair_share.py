"""Fixed-value tests of the fair-share policy, in the style of Slurm's fair-share tests
and YARN's TestComputeFairShares: given jobs, weights and usage, the exact grants."""

from __future__ import annotations

from collections import Counter

import pytest

from park.commands import grant_events
from park.domain import Priority, WorkerPolicy
from park.events.schema import BudgetSet, PolicyConfigured, UnitCompleted, WorkerJoined
from park.projections.state import ParkState
from park.scheduler.config import DAY, PolicyConfig
from park.scheduler.policy import (
    WorkRequest,
    age_boost,
    effective_priority,
    fairshare_factor,
    grant,
)
from tests.scheduler.support import fold, job, lease

ANY = WorkerJoined(at=0.0, worker_id="any", name="any", cpus=1)
# Usage measured in single credits, so the tests' small charges count as big ones.
SMALL_SCALE = PolicyConfigured(at=0.0, config=PolicyConfig(usage_scale=1.0).model_dump(mode="json"))


def test_grants_follow_the_priority_weights_exactly() -> None:
    state = fold(
        ANY,
        *job("F", "ann", Priority.FREE, 1.0, 1000),
        *job("N", "bob", Priority.NORMAL, 2.0, 1000),
        *job("U", "cat", Priority.URGENT, 3.0, 1000),
    )
    sequence = "".join(lease(state, "any", 21, at=10.0))
    assert sequence == "FNUUUUNUUUUNUUUUNUUUU"
    more = Counter(lease(state, "any", 21 * 9, at=10.0))
    assert more == {"U": 16 * 9, "N": 4 * 9, "F": 9}


def test_a_multi_unit_lease_equals_that_many_single_grants() -> None:
    events = [
        ANY,
        *job("F", "ann", Priority.FREE, 1.0, 50),
        *job("H", "bob", Priority.HIGH, 2.0, 50),
    ]
    one_by_one = lease(fold(*events), "any", 27, at=5.0)
    batch = [g.job_id for g in grant(fold(*events), WorkRequest("any", 27, 5.0))]
    assert batch == one_by_one
    assert Counter(batch) == {"H": 24, "F": 3}


def test_a_new_job_enters_at_the_current_virtual_time() -> None:
    state = fold(ANY, *job("old", "ann", Priority.FREE, 1.0, 500))
    assert lease(state, "any", 100, at=5.0) == ["old"] * 100
    fold(*job("new", "bob", Priority.FREE, 6.0, 500), state=state)
    # equal weights: the newcomer alternates with the old job, it does not catch up 100
    assert Counter(lease(state, "any", 40, at=7.0)) == {"old": 20, "new": 20}


def stream_of_small_jobs(config: PolicyConfig) -> list[str]:
    """ann's old job, while bob submits a new one-unit job before every grant: who is
    served, in order ("old" or "new")."""
    policy = PolicyConfigured(at=0.0, config=config.model_dump(mode="json"))
    state = fold(ANY, policy, *job("old", "ann", Priority.FREE, 1.0, 500))
    assert lease(state, "any", 10, at=5.0) == ["old"] * 10
    granted: list[str] = []
    for i in range(40):
        fold(*job(f"new{i}", "bob", Priority.FREE, 6.0 + i, 1), state=state)
        granted += lease(state, "any", 1, at=6.0 + i)
    return ["old" if j == "old" else "new" for j in granted]


def test_a_stream_of_new_jobs_cannot_starve_an_older_one() -> None:
    # Under the old rule every newcomer enters ahead of the old job: it never runs again.
    assert stream_of_small_jobs(PolicyConfig()) == ["new"] * 40
    # Entering one stride on, newcomers queue behind the job just served at their pass:
    # the old job runs once a round, after every job that was waiting at its pass (1, 2,
    # 3... newcomers as the backlog grows, since they arrive as fast as the pool serves).
    served = stream_of_small_jobs(PolicyConfig(entry_after_stride=True))
    rounds = "".join("o" if s == "old" else "n" for s in served).split("o")
    assert rounds == ["", "n", "nn", "nnn", "nnnn", "nnnnn", "nnnnnn", "nnnnnnn", "nnnn"]


def charge(user_job: str, unit: str, credits: float, at: float) -> UnitCompleted:
    return UnitCompleted(
        at=at, unit_id=unit, job_id=user_job, worker_id="any", result=[0],
        cpu_seconds=credits, charged=credits,
    )  # fmt: skip


def test_fairshare_factor_is_two_to_the_minus_usage_over_shares() -> None:
    state = fold(
        ANY,
        SMALL_SCALE,
        *job("a", "ann", Priority.NORMAL, 1.0, 10),
        *job("b", "bob", Priority.NORMAL, 1.0, 10),
    )
    lease(state, "any", 2, at=2.0)  # a/0 and b/0
    fold(charge("a", "a/0", 30.0, at=3.0), charge("b", "b/0", 10.0, at=3.0), state=state)
    # ann used 3/4 of all, bob 1/4; two users with work, each entitled to 1/2
    assert fairshare_factor(state, "ann", now=3.0) == pytest.approx(2 ** (-0.75 * 2))
    assert fairshare_factor(state, "bob", now=3.0) == pytest.approx(2 ** (-0.25 * 2))
    assert fairshare_factor(state, "carl", now=3.0) == 1.0


def test_usage_decays_with_the_half_life() -> None:
    state = fold(
        ANY,
        SMALL_SCALE,
        *job("a", "ann", Priority.NORMAL, 0.0, 10),
        *job("b", "bob", Priority.NORMAL, 0.0, 10),
    )
    lease(state, "any", 2, at=0.0)
    fold(charge("a", "a/0", 8.0, at=0.0), state=state)
    fold(charge("b", "b/0", 8.0, at=7 * DAY), state=state)  # a week later: ann's is half
    half_life = state.policy.half_life
    assert state.usage["ann"].at_time(7 * DAY, half_life) == pytest.approx(4.0)
    assert fairshare_factor(state, "ann", now=7 * DAY) == pytest.approx(2 ** (-(4 / 12) * 2))
    assert fairshare_factor(state, "bob", now=7 * DAY) == pytest.approx(2 ** (-(8 / 12) * 2))


def test_less_recent_usage_gets_the_larger_share() -> None:
    state = fold(
        ANY,
        SMALL_SCALE,
        *job("a", "ann", Priority.NORMAL, 1.0, 500),
        *job("b", "bob", Priority.NORMAL, 1.0, 500),
    )
    lease(state, "any", 2, at=2.0)
    fold(charge("a", "a/0", 30.0, at=3.0), charge("b", "b/0", 10.0, at=3.0), state=state)
    counts = Counter(lease(state, "any", 300, at=3.0))
    # weights 4*2^-1.5 : 4*2^-0.5 = 1 : 2
    assert counts["b"] == pytest.approx(200, abs=2)
    assert counts["a"] == pytest.approx(100, abs=2)


@pytest.mark.parametrize(
    ("waited", "boost"), [(0, 1.0), (60, 1.0), (360, 1.5), (660, 2.0), (10 * DAY, 4.0)]
)
def test_age_boost_grows_after_the_grace_up_to_the_cap(waited: float, boost: float) -> None:
    state = fold(ANY, *job("a", "ann", Priority.FREE, 100.0, 1))
    assert age_boost(state, state.jobs["a"], now=100.0 + waited) == pytest.approx(boost)


def test_a_spent_budget_demotes_paid_work_to_free_and_charges_nothing() -> None:
    state = fold(ANY, BudgetSet(at=0.0, user="ann", credits=2.0))
    fold(*job("a", "ann", Priority.URGENT, 1.0, 10), state=state)
    lease(state, "any", 1, at=2.0)
    assert state.units["a/0"].priority is Priority.URGENT
    assert state.units["a/0"].price == 4.0
    fold(charge("a", "a/0", 2.5, at=3.0), state=state)
    assert state.budget_left("ann") == pytest.approx(-0.5)
    assert effective_priority(state, state.jobs["a"]) is Priority.FREE
    lease(state, "any", 1, at=4.0)
    assert state.units["a/1"].priority is Priority.FREE
    assert state.units["a/1"].price == 0.0
    assert state.jobs["a"].status.value == "running"  # demoted, never killed


WORKERS = [
    ANY,
    WorkerJoined(at=0.0, worker_id="bob-only", name="desk", cpus=1, owner="bob",
                 policy=WorkerPolicy.OWN_ONLY),
    WorkerJoined(at=0.0, worker_id="bob-first", name="desk2", cpus=1, owner="bob",
                 policy=WorkerPolicy.OWN_FIRST),
    WorkerJoined(at=0.0, worker_id="pilot", name="pilot", cpus=1, policy=WorkerPolicy.JOB,
                 job_id="old"),
]  # fmt: skip


def units(state: ParkState, worker: str, n: int) -> list[str]:
    return [g.unit_id for g in grant(state, WorkRequest(worker, n, 1.0))]


def test_own_only_worker_never_gets_another_users_unit() -> None:
    state = fold(*WORKERS, *job("ann-job", "ann", Priority.URGENT, 1.0, 3))
    assert units(state, "bob-only", 5) == []
    fold(*job("bob-job", "bob", Priority.FREE, 2.0, 1), state=state)
    assert units(state, "bob-only", 5) == ["bob-job/0"]


def test_own_first_worker_prefers_its_owner_then_serves_others() -> None:
    state = fold(
        *WORKERS,
        *job("ann-job", "ann", Priority.URGENT, 1.0, 1),
        *job("bob-job", "bob", Priority.FREE, 2.0, 1),
    )
    assert units(state, "bob-first", 2) == ["bob-job/0", "ann-job/0"]


def test_a_dedicated_worker_serves_only_its_job() -> None:
    state = fold(
        *WORKERS,
        *job("new", "ann", Priority.URGENT, 5.0, 2),
        *job("old", "bob", Priority.FREE, 1.0, 1),
    )
    assert units(state, "pilot", 3) == ["old/0"]


def test_an_unknown_worker_gets_nothing() -> None:
    state = fold(*job("j", "ann", Priority.FREE, 1.0, 1))
    assert units(state, "ghost", 1) == []


def test_small_usage_does_not_outweigh_priorities() -> None:
    state = fold(
        ANY,
        *job("a", "ann", Priority.URGENT, 1.0, 10),
        *job("b", "bob", Priority.NORMAL, 1.0, 10),
    )
    lease(state, "any", 2, at=2.0)
    fold(charge("a", "a/0", 40.0, at=3.0), state=state)
    # 40 credits against the default scale of 3,600: ann keeps 2^(-40/3600) of her weight
    assert fairshare_factor(state, "ann", now=3.0) == pytest.approx(2 ** (-40 / 3600))
    assert fairshare_factor(state, "ann", now=3.0) > 0.99


def timed(job_id: str, unit: str, seconds: float) -> UnitCompleted:
    return UnitCompleted(
        at=5.0, unit_id=unit, job_id=job_id, worker_id="any", result=[0], cpu_seconds=0.0,
        charged=0.0, wall_seconds=seconds,
    )  # fmt: skip


def test_leases_hold_about_max_seconds_of_work_by_each_jobs_unit_time() -> None:
    state = fold(ANY, *job("fast", "ann", Priority.FREE, 1.0, 500))
    # A job with no unit time yet: one unit per lease, alone.
    assert (
        units(state, "any", 50) != [] and len(grant(state, WorkRequest("any", 50, 2.0, 0.5))) == 1
    )
    lease(state, "any", 1, at=2.0)
    fold(timed("fast", "fast/0", 0.01), state=state)
    assert len(grant(state, WorkRequest("any", 500, 3.0, 0.5))) == 50  # 0.5 s / 0.01 s
    assert len(grant(state, WorkRequest("any", 20, 3.0, 0.5))) == 20  # max_units still caps
    # A new job with unknown unit time ends a lease instead of joining it.
    fold(*job("slow", "bob", Priority.URGENT, 4.0, 5), state=state)
    leased = [g.job_id for g in grant(state, WorkRequest("any", 500, 4.0, 0.5))]
    assert leased == ["slow"]


def test_a_multi_unit_lease_equals_single_grants_even_for_an_aged_job() -> None:
    events = [
        ANY,
        *job("old", "ann", Priority.FREE, 0.0, 50),
        *job("new", "bob", Priority.NORMAL, 0.0, 50),
    ]
    at = 1000.0  # both have waited long enough for an age boost
    singles = fold(*events)
    one_by_one = lease(singles, "any", 12, at=at)
    batched = fold(*events)
    grants = grant(batched, WorkRequest("any", 12, at))
    fold(*grant_events(batched, "any", grants, now=at, lease_seconds=60), state=batched)
    assert [g.job_id for g in grants] == one_by_one
    assert {j: batched.jobs[j].vpass for j in ("old", "new")} == {
        j: singles.jobs[j].vpass for j in ("old", "new")
    }


def test_a_budget_is_spent_within_one_lease_as_across_several() -> None:
    events = [ANY, BudgetSet(at=0.0, user="ann", credits=8.0)]
    events += job("a", "ann", Priority.URGENT, 1.0, 10)  # urgent reserves 4 credits a unit
    batched = fold(*events)
    priorities = [g.priority for g in grant(batched, WorkRequest("any", 4, 2.0))]
    singles = fold(*events)
    lease(singles, "any", 4, at=2.0)
    assert priorities == [singles.units[f"a/{i}"].priority for i in range(4)]
    assert priorities == [Priority.URGENT, Priority.URGENT, Priority.FREE, Priority.FREE]
