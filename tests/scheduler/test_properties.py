"""Properties of the policy under any mix of jobs, workers and events (hypothesis)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from park import commands, core
from park.commands import UnitReport
from park.domain import Priority, UnitStatus, WorkerPolicy
from park.events.schema import Event, UnitCompleted, WorkerJoined
from park.scheduler.policy import WorkRequest, grant, job_weight, wait_bound
from tests.scheduler.support import fold, job, lease

PRIORITIES = st.sampled_from(list(Priority))
USERS = st.sampled_from(["ann", "bob", "cat"])
ANY = WorkerJoined(at=0.0, worker_id="any", name="any", cpus=1)


@settings(max_examples=60, deadline=None)
@given(
    first=st.lists(st.tuples(PRIORITIES, USERS), min_size=1, max_size=6),
    late=st.lists(st.tuples(PRIORITIES, USERS, st.integers(1, 150)), max_size=3),
)
def test_no_runnable_job_waits_longer_than_the_bound(
    first: list[tuple[Priority, str]], late: list[tuple[Priority, str, int]]
) -> None:
    state = fold(ANY)
    for i, (priority, user) in enumerate(first):
        fold(*job(f"j{i}", user, priority, float(i), 500), state=state)
    arrivals = {when: (f"late{i}", p, u) for i, (p, u, when) in enumerate(late)}
    waited: Counter[str] = Counter()
    for step in range(200):
        if step in arrivals:
            job_id, priority, user = arrivals[step]
            fold(*job(job_id, user, priority, 100.0 + step, 500), state=state)
        weights = {j: job_weight(state, state.jobs[j], 0.0) for j in state.runnable}
        bounds = {j: wait_bound(weights, j) for j in weights}
        [granted] = lease(state, "any", 1, at=0.0)
        for j in weights:
            waited[j] = 0 if j == granted else waited[j] + 1
            assert waited[j] <= bounds[j], (j, waited[j], bounds[j])


@settings(max_examples=60, deadline=None)
@given(jobs=st.lists(st.tuples(PRIORITIES, USERS), min_size=2, max_size=6))
def test_share_grows_monotonically_with_weight(jobs: list[tuple[Priority, str]]) -> None:
    state = fold(ANY)
    for i, (priority, user) in enumerate(jobs):
        fold(*job(f"j{i}", user, priority, float(i), 500), state=state)
    weights = {j: job_weight(state, state.jobs[j], 0.0) for j in state.runnable}
    counts = Counter(lease(state, "any", 400, at=0.0))
    for a, wa in weights.items():
        for b, wb in weights.items():
            if wa < wb:
                assert counts[a] <= counts[b] + 1, (weights, counts)


@settings(max_examples=60, deadline=None)
@given(
    jobs=st.lists(st.tuples(PRIORITIES, USERS, st.integers(1, 5)), min_size=1, max_size=6),
    owners=st.lists(USERS, min_size=1, max_size=3),
    requests=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4)), max_size=20),
)
def test_own_only_workers_never_get_another_users_unit(
    jobs: list[tuple[Priority, str, int]],
    owners: list[str],
    requests: list[tuple[int, int]],
) -> None:
    state = fold(
        *(
            WorkerJoined(at=0.0, worker_id=f"w{i}", name="desk", cpus=1, owner=owner,
                         policy=WorkerPolicy.OWN_ONLY)
            for i, owner in enumerate(owners)
        )
    )  # fmt: skip
    for i, (priority, user, units) in enumerate(jobs):
        fold(*job(f"j{i}", user, priority, float(i), units), state=state)
    for worker_index, n in requests:
        worker = state.workers[f"w{worker_index % len(owners)}"]
        events = commands.lease_units(state, worker.id, n, now=1.0, lease_seconds=60)
        for e in events:
            if isinstance(e, UnitCompleted):  # pragma: no cover - leases only
                raise AssertionError
            if e.type == "unit.granted":
                assert state.jobs[e.job_id].user == worker.owner
        fold(*events, state=state)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("lease"), st.integers(0, 1), st.integers(1, 3)),
        st.tuples(st.just("complete"), st.integers(0, 50), st.floats(0.0, 5.0)),
        st.tuples(st.just("expire"), st.integers(0, 50), st.just(0.0)),
        st.tuples(st.just("crash"), st.just(0), st.just(0.0)),
    ),
    max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(ops=OPS, priorities=st.lists(PRIORITIES, min_size=1, max_size=3))
def test_ledger_totals_equal_settled_charges_under_any_interleaving(
    ops: list[tuple[str, int, float]], priorities: list[Priority]
) -> None:
    log: list[Event] = [
        WorkerJoined(at=0.0, worker_id="w0", name="a", cpus=1),
        WorkerJoined(at=0.0, worker_id="w1", name="b", cpus=1),
    ]
    for i, priority in enumerate(priorities):
        log += job(f"j{i}", ["ann", "bob"][i % 2], priority, float(i), 6)
    state = fold(*log)

    def append(events: Sequence[Event]) -> range:
        log.extend(events)
        return range(len(log) - len(events) + 1, len(log) + 1)

    now = 10.0
    for op, a, b in ops:
        now += 1.0
        command: core.Command | None = None
        if op == "lease":
            command = core.LeaseUnits(worker_id=f"w{a}", max_units=int(b), lease_seconds=5)
        elif op == "complete":  # any holder, current or past: the first report wins
            all_units = sorted(u for j in state.jobs.values() for u in j.unit_ids)
            if all_units:
                unit = all_units[a % len(all_units)]
                report = UnitReport(unit, True, [0], None, b)
                command = core.ReportUnits(worker_id=f"w{a % 2}", reports=[report])
        elif op == "expire":
            now += 5.0 * (a % 2)
            command = core.ExpireLeases(worker_timeout=float("inf"), seen={}, since=0.0)
        elif op == "crash":  # restart: rebuild everything from the log alone
            rebuilt = fold(*log)
            assert rebuilt == state
            state = rebuilt
        if command is not None:  # as the service runs it: decide, record, fold, settle
            core.execute(state, command, now, append)

    settled: dict[str, float] = defaultdict(float)
    seen: set[str] = set()
    granted_price: dict[str, float] = {}
    for e in log:
        if e.type == "unit.granted":
            granted_price[e.unit_id] = e.price
        if isinstance(e, UnitCompleted) and e.unit_id not in seen:
            seen.add(e.unit_id)
            settled[state.jobs[e.job_id].user] += e.charged
            # charged by slot time (the time the unit held the worker), never above what
            # the worker reported
            assert e.charged == e.slot_seconds * granted_price[e.unit_id]
            assert e.slot_seconds <= max(e.cpu_seconds, e.wall_seconds)
    assert len(seen) == sum(1 for e in log if isinstance(e, UnitCompleted))
    for user in ("ann", "bob"):
        rows = [entry for (u, _), entry in state.ledger.items() if u == user]
        assert sum(r.charged for r in rows) == sum_close(settled[user], rows)
        outstanding = sum(
            unit.reserved for unit in state.units.values()
            if unit.status is UnitStatus.LEASED and state.jobs[unit.job_id].user == user
        )  # fmt: skip
        assert abs(sum(r.reserved for r in rows) - outstanding) < 1e-9


def sum_close(expected: float, rows: list[object]) -> float:
    """The ledger adds charges per priority, the test per user: equal up to rounding."""
    total = sum(r.charged for r in rows)  # type: ignore[attr-defined]
    assert abs(total - expected) < 1e-9
    return total


def test_grant_never_mutates_the_state() -> None:
    state = fold(ANY, *job("a", "ann", Priority.NORMAL, 1.0, 5))
    before = fold(ANY, *job("a", "ann", Priority.NORMAL, 1.0, 5))
    grant(state, WorkRequest("any", 3, 2.0))
    assert state == before
