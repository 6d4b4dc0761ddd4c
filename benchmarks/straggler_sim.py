"""The fit_speedup job on a simulated clock: what the scheduling policy (backups on or off)
makes of Thurber's heavy-tailed starts, whatever else the machine runs.

Each of the job's units (a `multistart` of NIST StRD Thurber, 64 starts, seed 1: the same
spec as fit_speedup.py) is run once, for real, in this process (`FitKind.run_unit`): its
result and its CPU time are kept. Then the real service core (park.core: the same
decide, fold and settle as `park serve`, backup attempts included) runs the job with W
simulated workers on a simulated clock, each modelled on `park worker --cpus 1`: it
leases when its child is free (up to `target_batch_seconds` = 0.5 s of work by the job's
unit times so far), runs the batch's units one after another, each taking the unit's
measured CPU time plus `--overhead` (5 ms), reports the batch when it ends, heartbeats
every second and skips or kills the units the answer says to stop (`--restart`, 0.1 s, a
new child), and waits, when nothing is granted, until another worker reports or a unit
becomes a straggler. The wall time is the simulated time from submission to the job's
completion; the credits are its charge at priority `normal`. `--report-each`: workers
report each unit as it ends, not with their batch; `--unbounded-batches`: without the
policy's `batch_growth` bound (as before it, a lease sized by the first units' times).

    python benchmarks/straggler_sim.py                  # Thurber, 64 starts
    python benchmarks/straggler_sim.py --scale 0.15     # unit times as on a quiet machine
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fit_speedup import NIST_DIR, nist_spec

from park import commands, core
from park.domain import Priority, UnitReport, WorkerPolicy
from park.kinds.fit.kind import FitKind
from park.projections.state import ParkState
from park.scheduler.backups import next_straggler_at
from park.scheduler.config import BACKUP_FACTOR, BATCH_GROWTH, PolicyConfig


def measure(spec: dict[str, Any]) -> dict[int, tuple[Any, float]]:
    """Each planned unit's result and CPU seconds, by its first start's index."""
    kind = FitKind()
    normal = kind.parse_spec(spec)
    state = kind.start(normal)
    context = kind.unit_context(normal)
    measured = {}
    for payload in kind.next_units(normal, state):
        cpu = time.process_time()
        result = FitKind.run_unit({**context, **payload})
        measured[payload["first"]] = (result, time.process_time() - cpu)
    return measured


@dataclass
class Worker:
    id: str
    batch: list[str] = field(default_factory=list)
    running: str | None = None
    generation: int = 0  # bumped when the running unit is killed (its end is void)
    reports: list[UnitReport] = field(default_factory=list)
    stopped: set[str] = field(default_factory=set)
    idle: bool = False


def simulate(
    spec: dict[str, Any],
    measured: dict[int, tuple[Any, float]],
    workers: int,
    *,
    backups: bool,
    scale: float,
    overhead: float,
    restart: float,
    each: bool = False,
    growth: float | None = BATCH_GROWTH,
) -> tuple[float, float, int]:
    """Simulated seconds to complete the job, its credits, and its backup attempts."""
    state = ParkState()
    now = 0.0
    log_offset = itertools.count(1)

    def run(command: core.Command) -> core.Step:
        return core.execute(state, command, now, lambda ev: [next(log_offset) for _ in ev])

    policy = PolicyConfig(backup_factor=BACKUP_FACTOR if backups else None, batch_growth=growth)
    run(core.Decide(decide=lambda s, at: commands.configure_policy(s, policy, at)))
    pool = [Worker(f"w{i}") for i in range(workers)]
    for w in pool:
        details: Any = {"name": w.id, "cpus": 1, "policy": WorkerPolicy.ANY}
        run(core.RegisterWorker(worker_id=w.id, details=details))
    run(core.SubmitJob(job_id="j", user="ann", kind="fit", spec=spec, priority=Priority.NORMAL))
    queue: list[tuple[float, int, str, str, int]] = []  # (time, seq, what, worker, generation)
    seq = itertools.count()

    def at(t: float, what: str, w: Worker) -> None:
        heapq.heappush(queue, (t, next(seq), what, w.id, w.generation))

    def wake_idle() -> None:
        """A report may make work for idle workers (a straggler's median moves)."""
        for other in pool:
            if other.idle:
                other.idle = False
                at(now, "free", other)

    def start_next(w: Worker) -> None:
        while w.batch and w.batch[0] in w.stopped:
            w.batch.pop(0)  # told to stop before it began: skipped
        if not w.batch:
            w.running = None
            if w.reports:
                run(core.ReportUnits(worker_id=w.id, reports=w.reports))
                w.reports = []
                wake_idle()
            at(now, "free", w)
            return
        unit_id = w.batch.pop(0)
        w.running = unit_id
        first = state.units[unit_id].payload["first"]
        at(now + scale * measured[first][1] + overhead, "done", w)

    by_id = {w.id: w for w in pool}
    for w in pool:
        at(0.0, "free", w)
        at(1.0, "beat", w)
    while state.jobs["j"].active:
        now, _, what, wid, generation = heapq.heappop(queue)
        if now > 100_000:
            raise RuntimeError("the simulated job does not finish")
        w = by_id[wid]
        if what == "free":
            if w.running is not None or w.batch:
                continue
            step = run(
                core.LeaseUnits(worker_id=w.id, max_units=256, lease_seconds=30.0, max_seconds=0.5)
            )
            w.batch = [lu.unit.id for lu in core.leased_units(state, step.events)]
            w.stopped.clear()
            if w.batch:
                start_next(w)
            else:
                w.idle = True
                due = next_straggler_at(state, w.id, now)
                if due is not None:
                    w.idle = False
                    at(due + 1e-6, "free", w)
        elif what == "done" and generation == w.generation and w.running is not None:
            unit = state.units.get(w.running)
            if unit is not None and w.running not in w.stopped:
                first = unit.payload["first"]
                result, cpu = measured[first]
                wall = scale * cpu + overhead
                w.reports.append(UnitReport(w.running, True, result, None, wall, wall))
                if each:  # reported as it ends, not with its batch
                    run(core.ReportUnits(worker_id=w.id, reports=w.reports))
                    w.reports = []
                    wake_idle()
            start_next(w)
        elif what == "beat":
            running = [u for u in [w.running, *w.batch] if u is not None]
            stop = commands.leases_to_stop(state, w.id, running)
            w.stopped.update(stop)
            if w.running is not None and w.running in stop:
                w.generation += 1  # killed: a new child takes the rest of the batch
                w.running = None
                at(now + restart, "restart", w)
            at(now + 1.0, "beat", w)
        elif what == "restart" and generation == w.generation:
            start_next(w)
    job = state.jobs["j"]
    return now, job.charged, job.attempts - job.units_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Thurber")
    parser.add_argument("--starts", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="times the measured CPU s")
    parser.add_argument("--overhead", type=float, default=0.005, help="seconds per unit")
    parser.add_argument("--restart", type=float, default=0.1, help="seconds to replace a child")
    parser.add_argument(
        "--report-each", action="store_true", help="workers report each unit as it ends"
    )
    parser.add_argument(
        "--unbounded-batches",
        action="store_true",
        help="no batch_growth bound (a lease sized by the first units' times alone)",
    )
    args = parser.parse_args()
    path = Path(NIST_DIR) / f"{args.dataset}.dat"
    if not path.is_file():
        sys.exit(f"no {path} (set PARK_NIST_DIR)")
    spec = nist_spec(path, args.starts, args.seed)
    measured = measure(spec)
    cpus = sorted(args.scale * c for _, c in measured.values())
    print(
        f"{args.dataset}, {args.starts} starts: {len(cpus)} units, unit CPU s x {args.scale:g}: "
        f"total {sum(cpus):.2f}, median {statistics.median(cpus):.3f}, "
        f"longest {', '.join(f'{c:.2f}' for c in cpus[-4:][::-1])}"
    )
    options = {
        "scale": args.scale,
        "overhead": args.overhead,
        "restart": args.restart,
        "each": args.report_each,
        "growth": None if args.unbounded_batches else BATCH_GROWTH,
    }
    one, one_credits, _ = simulate(spec, measured, 1, backups=True, **options)
    print(f"\n{'simulated run':<28} {'wall s':>8} {'speed-up':>9} {'credits':>8} {'backups':>8}")
    print(f"{'1 worker':<28} {one:>8.2f} {1.0:>8.2f}x {one_credits:>8.2f} {0:>8}")
    for backups in (True, False):
        wall, credits, made = simulate(spec, measured, 2, backups=backups, **options)
        name = f"2 workers, backups {'on' if backups else 'off'}"
        print(f"{name:<28} {wall:>8.2f} {one / wall:>8.2f}x {credits:>8.2f} {made:>8}")
    print(f"ideal (total / 2): {sum(cpus) / 2 + len(cpus) * args.overhead / 2:.2f} s")


if __name__ == "__main__":
    main()
