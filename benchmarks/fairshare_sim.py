"""Seeded simulator of the fair-share policy: the real policy and fold, no HTTP.

Reports, side by side with their goals:
- fairness error over windows of 1,000 grants, max_j |S_j/sum S - w_j/sum w| / (w_j/sum w),
  for a mix of priorities and users whose jobs all stay runnable;
- the worst wait of a `free` job (in grants to others, and in seconds at the simulated
  throughput) while urgent and normal jobs compete, against the documented bound;
- policy decisions per second with 10,000 active jobs from 1,000 users (one core), the
  grant computed by `grant` and folded into the projections as the service does.

    python benchmarks/fairshare_sim.py [--seed 1] [--jobs 10000] [--users 1000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

from park.commands import grant_events
from park.domain import Priority
from park.events.schema import Event, JobSubmitted, PlannedUnit, UnitsPlanned, WorkerJoined
from park.projections.state import ParkState
from park.scheduler.explain import explain
from park.scheduler.policy import WorkRequest, grant, job_weight, wait_bound


def submit(state: ParkState, job_id: str, user: str, priority: Priority, at: float, n: int) -> None:
    events: list[Event] = [
        JobSubmitted(
            at=at, job_id=job_id, user=user, kind="map", priority=priority,
            spec={"function": "m:f", "inputs": [0] * n, "chunk": 1},
        ),
        UnitsPlanned(
            at=at, job_id=job_id,
            units=[PlannedUnit(unit_id=f"{job_id}/{i}", payload={"start": i, "items": [0]})
                   for i in range(n)],
        ),
    ]  # fmt: skip
    for e in events:
        state.apply(state.offset + 1, e)


def step(state: ParkState, worker: str, at: float) -> str | None:
    grants = grant(state, WorkRequest(worker, 1, at))
    if not grants:
        return None
    for e in grant_events(state, worker, grants, now=at, lease_seconds=60):
        state.apply(state.offset + 1, e)
    return grants[0].job_id


def new_state() -> ParkState:
    state = ParkState()
    state.apply(1, WorkerJoined(at=0.0, worker_id="w", name="sim", cpus=1))
    return state


def fairness(jobs: int, windows: int) -> tuple[float, float]:
    """Worst relative share error over the windows, and the smallest target share.
    Priorities cycle free..urgent over the jobs; seven users."""
    state = new_state()
    priorities = list(Priority)
    for i in range(jobs):
        submit(state, f"j{i}", f"u{i % 7}", priorities[i % 5], float(i), windows * 1000)
    worst, smallest = 0.0, 1.0
    for _ in range(windows):
        weights = {j: job_weight(state, state.jobs[j], 0.0) for j in state.runnable}
        total = sum(weights.values())
        counts = Counter(step(state, "w", 0.0) for _ in range(1000))
        for j, w in weights.items():
            target = w / total
            smallest = min(smallest, target)
            worst = max(worst, abs(counts[j] / 1000 - target) / target)
    return worst, smallest


def free_job_wait(seed: int, grants: int, rate: float) -> tuple[int, int]:
    """Worst observed wait of the free job, and its bound, with 30 paid jobs competing."""
    rng = random.Random(seed)
    state = new_state()
    submit(state, "free", "fran", Priority.FREE, 0.0, 100_000)
    for i in range(30):
        priority = rng.choice([Priority.NORMAL, Priority.HIGH, Priority.URGENT])
        submit(state, f"paid{i}", f"u{i}", priority, 1.0 + i, 100_000)
    weights = {j: job_weight(state, state.jobs[j], 0.0) for j in state.runnable}
    bound = wait_bound(weights, "free")
    worst, waited = 0, 0
    for n in range(grants):
        granted = step(state, "w", n / rate)
        waited = 0 if granted == "free" else waited + 1
        worst = max(worst, waited)
    return worst, bound


def decisions_per_second(jobs: int, users: int, seconds: float, seed: int) -> float:
    rng = random.Random(seed)
    state = new_state()
    for i in range(jobs):
        submit(state, f"j{i}", f"u{rng.randrange(users)}", rng.choice(list(Priority)), i, 60)
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    # Stop well before units run short, so every decision is a real grant among ~all jobs.
    while time.perf_counter() < deadline and done < jobs * 30:
        for _ in range(1000):
            if step(state, "w", 1000.0) is None:
                raise RuntimeError("ran out of units")
        done += 1000
    return done / (time.perf_counter() - started)


def explain_latency(jobs: int, users: int, seed: int, samples: int = 300) -> tuple[float, float]:
    """p50 and p99 of `explain` (ms) for random jobs among `jobs` active ones."""
    rng = random.Random(seed)
    state = new_state()
    for i in range(jobs):
        submit(state, f"j{i}", f"u{rng.randrange(users)}", rng.choice(list(Priority)), i, 3)
    for _ in range(2000):  # some history: recent grants, passes, a virtual time
        step(state, "w", 1000.0)
    times = []
    for _ in range(samples):
        job_id = f"j{rng.randrange(jobs)}"
        started = time.perf_counter()
        explain(state, job_id, 1000.0)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(0.99 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    error5, small5 = fairness(5, args.windows)
    error20, small20 = fairness(20, args.windows)
    rate = 1000.0  # grants per second assumed for the wait in seconds
    worst, bound = free_job_wait(args.seed, 20_000, rate)
    speed = decisions_per_second(args.jobs, args.users, args.seconds, args.seed)
    p50, p99 = explain_latency(args.jobs, args.users, args.seed)
    rows = [
        (f"fairness error, 5 jobs (smallest share {small5:.1%})", f"{error5:.2%}", "<= 5%"),
        (
            f"fairness error, 20 jobs (smallest share {small20:.1%})",
            f"{error20:.2%}",
            "<= 5% (1 grant = 1/(1000 x share))",
        ),
        ("worst wait of a free job (grants to others)", f"{worst}", f"<= bound {bound}"),
        (f"  ... in seconds at {rate:,.0f} grants/s", f"{worst / rate:.3f}", f"{bound / rate:.3f}"),
        (f"decisions/s, {args.jobs:,} jobs / {args.users:,} users", f"{speed:,.0f}", ">= 20,000"),
        (f"explain p50 ms, {args.jobs:,} active jobs", f"{p50:.1f}", ""),
        (f"explain p99 ms, {args.jobs:,} active jobs", f"{p99:.1f}", "< 100"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>10}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>10}  {goal}")


if __name__ == "__main__":
    main()
