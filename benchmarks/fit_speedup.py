"""Wall time of a multistart `fit` through park (1 and 2 workers) vs an in-process loop.

One NIST StRD dataset (Thurber by default: ~0.1 s per start), parsed from the file as it
is (model formula, Start 1 values, data), fitted by `multistart` with `--starts` starts
(64) and seed 1, no bounds, no dy, one start per unit (the kind's default):

  (a) `park serve --workers 1` on a fresh temporary data directory,
  (b) the same with `--workers 2` (backup attempts of stragglers on, the default),
  (b') the same with `--workers 2 --backup-factor 0` (no backups; skip with --no-baseline),
  (c) the floor: the same units, planned by the `fit` kind from the same normalised spec,
      each run in this process with `FitKind.run_unit` (the worker-side function: the
      same two `scipy.optimize.least_squares` solves per start and the statistics of the
      unit's best), one after another; run `--repeat` times before the servers and
      as many times after them.
  (d) the machine's ceiling for two workers: the same units handed one at a time to a
      pool of two warm forked processes (`concurrent.futures.ProcessPoolExecutor`,
      `chunksize=1`), no park at all. On a VM the two cores are rarely two whole cores
      (a unit is slower while the other core is busy too), so this, not half the loop,
      is what two park workers can at best approach. Run with the floor.

For (a) and (b) the clock runs from the POST /v1/jobs to the end of the GET /v1/jobs/{id}
that shows the job complete (each GET asks `?wait=30`: the server answers as the job
ends, as `job.wait()` does). Server start-up, worker registration (GET /v1/workers) and a
warm-up fit (so every worker's child process has started and imported scipy; skip it
with --cold) happen before the clock starts. The servers run one after the other, never
together. Every wait is bounded. Jobs run at priority `normal` (1 credit per slot-second),
so each run's credits charged (the ledger's difference) show that backups cost the user
nothing: only the attempt that reports first is charged. `load` is the machine's 1-minute
load average when the run ended (2 cores: above 2, other work shares them). `unit CPU s`
is the CPU time spent in the units: for park as the workers report it (the ledger's
`core_seconds`), in process `time.process_time`; on a machine shared with other work it
tells slow-because-busy from real overhead.

Each configuration runs `--repeat` times (3); the table gives the best and the median.

    python benchmarks/fit_speedup.py                       # Thurber, 64 starts, ~1 min
    python benchmarks/fit_speedup.py --dataset Misra1a     # ~7 ms per start
    python benchmarks/fit_speedup.py --starts 16 --repeat 1 --cold
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from harness import free_port, wait_until

from park.kinds.fit.kind import FitKind

ROOT = Path(__file__).resolve().parents[1]
NIST_DIR = Path(os.environ.get("PARK_NIST_DIR") or ROOT / "tests" / "data" / "nist-strd")
WAIT_SECONDS = 30.0  # each GET of the job waits this long for its end (a long poll)
FINAL = ("complete", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float  # wall clock
    cpu: float  # CPU seconds spent running the units (park: as its workers report them)
    chisq: float  # the best chi^2 found
    split: tuple[int, ...] = ()  # units each park worker ran
    credits: float = 0.0  # charged to the user (park)
    backups: int = 0  # backup attempts granted (park)
    load: float = 0.0  # the 1-minute load average at the end of the run

    def __str__(self) -> str:
        shares = f" ({'+'.join(map(str, self.split))} units)" if len(self.split) > 1 else ""
        extra = f", {self.backups} backups" if self.backups else ""
        return f"{self.seconds:.2f}{shares}{extra} [load {self.load:.1f}]"


# -- NIST StRD file, read as it is ----------------------------------------------------------

_PARAM = re.compile(r"^\s*(b\d+)\s*=\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def nist_spec(path: Path, starts: int, seed: int) -> dict[str, Any]:
    """A multistart `fit` spec from the file's formula, Start 1 values and data."""
    lines = path.read_text().splitlines()
    start1 = {m[1]: float(m[2]) for m in map(_PARAM.match, lines) if m}
    at = next(i for i, line in enumerate(lines) if line.startswith("Model:"))
    formula: list[str] = []
    for line in lines[at + 1 :]:
        text = line.strip()
        if not formula and text.startswith("y") and "=" in text:
            text = text.split("=", 1)[1]
        elif not formula:
            continue
        formula.append(text)
        if re.search(r"\+\s*e\s*$", text):
            break
    model = re.sub(r"\+\s*e\s*$", "", " ".join(formula)).strip()
    head = next(i for i, line in enumerate(lines) if re.match(r"^Data:\s+y\s+x\s*$", line))
    rows = [[float(v) for v in line.split()] for line in lines[head + 1 :] if line.strip()]
    return {
        "model": model.replace("[", "(").replace("]", ")"),
        "data": {"x": [r[1] for r in rows], "y": [r[0] for r in rows]},
        "parameters": {name: {"value": value} for name, value in start1.items()},
        "method": "multistart",
        "options": {"starts": starts, "seed": seed},
    }


# -- (c) the floor: the kind's own units, run in this process -------------------------------


def in_process(spec: dict[str, Any]) -> Run:
    """Every planned unit run here with `FitKind.run_unit`, one after another."""
    kind = FitKind()
    normal = kind.parse_spec(spec)
    state = kind.start(normal)
    units = kind.next_units(normal, state)
    kind.planned(state, units)
    started, cpu = time.perf_counter(), time.process_time()
    context = kind.unit_context(normal)
    results = [FitKind.run_unit({**context, **payload}) for payload in units]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    for payload, result in zip(units, results, strict=True):
        kind.absorb(state, payload, result)
    finished = kind.outcome(normal, state)
    assert finished is not None and finished.error is None, finished
    return Run(seconds, cpu, float(finished.result["chisq"]), load=os.getloadavg()[0])


def _timed_unit(payload: dict[str, Any]) -> tuple[Any, float]:
    started = time.process_time()
    result = FitKind.run_unit(payload)
    return result, time.process_time() - started


def in_pool(spec: dict[str, Any], processes: int = 2) -> Run:
    """The units of `in_process`, each handed alone to a pool of warm processes."""
    kind = FitKind()
    normal = kind.parse_spec(spec)
    state = kind.start(normal)
    units = kind.next_units(normal, state)
    kind.planned(state, units)
    context = kind.unit_context(normal)
    payloads = [{**context, **payload} for payload in units]
    fork = multiprocessing.get_context("fork")  # the children start with scipy imported
    with ProcessPoolExecutor(processes, mp_context=fork) as pool:
        list(pool.map(_timed_unit, payloads[:processes], chunksize=1))  # all started
        started = time.perf_counter()
        timed = list(pool.map(_timed_unit, payloads, chunksize=1))
        seconds = time.perf_counter() - started
    for payload, (result, _) in zip(units, timed, strict=True):
        kind.absorb(state, payload, result)
    finished = kind.outcome(normal, state)
    assert finished is not None and finished.error is None, finished
    cpu = sum(unit_cpu for _, unit_cpu in timed)
    return Run(seconds, cpu, float(finished.result["chisq"]), load=os.getloadavg()[0])


# -- (a), (b): a real `park serve --workers N` ---------------------------------------------


@contextlib.contextmanager
def park_serve(workers: int, base: Path, backups: bool = True) -> Iterator[httpx.Client]:
    """`park serve --workers N` on a fresh data dir; yields a client once all N workers
    have registered. The server (which stops its own workers) is ended by its pid."""
    port = free_port()
    name = f"{workers}{'' if backups else '-no-backups'}"
    log_path = base / f"serve-{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "park", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers),
             "--data-dir", str(base / f"data-{name}"),
             *([] if backups else ["--backup-factor", "0"])],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as http:

            def up() -> bool:
                if proc.poll() is not None:
                    tail = log_path.read_text()[-2000:]
                    raise RuntimeError(f"park serve exited ({proc.returncode}):\n{tail}")
                return http.get("/healthz").status_code == 200

            wait_until(up, 60, "park serve /healthz")
            wait_until(
                lambda: len(http.get("/v1/workers").json()["workers"]) >= workers,
                60,
                f"{workers} worker(s) registered",
            )
            yield http
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def core_seconds(http: httpx.Client) -> float:
    """CPU seconds the workers have reported for all units so far (the ledger's total)."""
    users = http.get("/v1/ledger").json()["users"]
    return float(sum(u["core_seconds"] for u in users.values()))


def credits(http: httpx.Client) -> float:
    """Credits charged to every user so far (the ledger's total)."""
    users = http.get("/v1/ledger").json()["users"]
    return float(sum(u["charged"] for u in users.values()))


def units_done(http: httpx.Client) -> dict[str, int]:
    return {w["id"]: w["units_done"] for w in http.get("/v1/workers").json()["workers"]}


def run_job(http: httpx.Client, spec: dict[str, Any], timeout: float) -> Run:
    """Wall seconds from POST to the GET that shows the job complete (a long poll)."""
    cpu, before, charged = core_seconds(http), units_done(http), credits(http)
    started = time.perf_counter()
    response = http.post("/v1/jobs", json={"kind": "fit", "spec": spec, "priority": "normal"})
    response.raise_for_status()
    job_id = response.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.0, min(WAIT_SECONDS, deadline - time.monotonic()))
        status = http.get(f"/v1/jobs/{job_id}", params={"wait": left}).json()["status"]
        if status in FINAL:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {status} after {timeout:.0f}s")
    seconds = time.perf_counter() - started
    body = http.get(f"/v1/jobs/{job_id}/result").json()
    if body["status"] != "complete":
        raise RuntimeError(f"job {job_id} ended {body['status']}: {body}")
    after = units_done(http)
    split = tuple(sorted((n - before.get(w, 0) for w, n in after.items()), reverse=True))
    summary = http.get(f"/v1/jobs/{job_id}").json()["units_summary"]
    return Run(
        seconds,
        core_seconds(http) - cpu,
        float(body["result"]["chisq"]),
        split,
        credits=credits(http) - charged,
        backups=summary["attempts"] - summary["count"],
        load=os.getloadavg()[0],
    )


def warm_up(http: httpx.Client, spec: dict[str, Any], workers: int, timeout: float) -> None:
    """Small fits until every worker has run a unit (its child process is up, scipy in)."""
    small = {**spec, "options": {**spec["options"], "starts": 4 * workers}}
    for _ in range(10):
        run_job(http, small, timeout)
        done = list(units_done(http).values())
        if len(done) >= workers and all(n > 0 for n in done):
            return
    print(f"  (warm-up: not every worker ran a unit: {done})", file=sys.stderr)


def bench_park(
    spec: dict[str, Any],
    workers: int,
    base: Path,
    repeat: int,
    cold: bool,
    timeout: float,
    backups: bool = True,
) -> list[Run]:
    with park_serve(workers, base, backups) as http:
        if not cold:
            warm_up(http, spec, workers, timeout)
        return [run_job(http, spec, timeout) for _ in range(repeat)]


# -- the table ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Thurber", help="NIST StRD file stem")
    parser.add_argument("--starts", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (best and median)")
    parser.add_argument("--cold", action="store_true", help="no warm-up job before the clock")
    parser.add_argument("--timeout", type=float, default=600.0, help="per job, seconds")
    parser.add_argument("--keep", type=Path, help="keep data dirs and logs here")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip 2 workers without backup attempts"
    )
    args = parser.parse_args()

    path = NIST_DIR / f"{args.dataset}.dat"
    if not path.is_file():
        sys.exit(f"no {path} (set PARK_NIST_DIR)")
    spec = nist_spec(path, args.starts, args.seed)
    n_params = len(spec["parameters"])
    print(
        f"{args.dataset}: {len(spec['data']['x'])} points, {n_params} parameters, "
        f"multistart {args.starts} starts, seed {args.seed}, runs of each: {args.repeat}"
        f"{', cold workers' if args.cold else ''}; {os.cpu_count()} cores"
    )

    floor_name = "in-process loop"
    pool_name = "pool of 2 processes"
    plain = "2 workers, no backups"
    names: tuple[str, ...] = (
        "park serve --workers 1", "park serve --workers 2", floor_name, pool_name,
    )  # fmt: skip
    if not args.no_baseline:
        names = (*names, plain)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    # The floor is measured before and after the servers, so a neighbour's load on a
    # shared machine is less likely to flatter or hurt it alone.
    runs[floor_name] += [in_process(spec) for _ in range(args.repeat)]
    runs[pool_name] += [in_pool(spec) for _ in range(args.repeat)]
    with tempfile.TemporaryDirectory(prefix="park-fit-bench-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for workers in (1, 2):
            name = f"park serve --workers {workers}"
            runs[name] = bench_park(spec, workers, base, args.repeat, args.cold, args.timeout)
        if plain in runs:
            runs[plain] = bench_park(
                spec, 2, base, args.repeat, args.cold, args.timeout, backups=False
            )
    runs[floor_name] += [in_process(spec) for _ in range(args.repeat)]
    runs[pool_name] += [in_pool(spec) for _ in range(args.repeat)]

    best = {name: min(r, key=lambda run: run.seconds) for name, r in runs.items()}
    median = {name: statistics.median(run.seconds for run in r) for name, r in runs.items()}

    print()
    print(
        f"{'run':<24} {'wall s':>8} {'median s':>9} {'per start':>10} {'unit CPU s':>11} "
        f"{'best chi^2':>13} {'credits (median)':>17}"
    )
    for name in names:
        run = best[name]
        charged = statistics.median(r.credits for r in runs[name])
        print(
            f"{name:<24} {run.seconds:>8.2f} {median[name]:>9.2f} "
            f"{1000 * run.seconds / args.starts:>8.1f}ms {run.cpu:>11.2f} {run.chisq:>13.8g} "
            f"{charged if name not in (floor_name, pool_name) else float('nan'):>17.2f}"
        )
    print()
    print(f"{'':<44} {'best':>6} {'median':>7}")
    for label, ratio in (
        ("speed-up, 2 workers vs 1", lambda t: t[names[0]] / t[names[1]]),
        ("park overhead, 1 worker / in-process", lambda t: t[names[0]] / t[floor_name]),
        ("park overhead, 2 workers / (in-proc / 2)", lambda t: 2 * t[names[1]] / t[floor_name]),
        ("the machine's speed-up, pool of 2 vs loop", lambda t: t[floor_name] / t[pool_name]),
        ("park overhead, 2 workers / pool of 2", lambda t: t[names[1]] / t[pool_name]),
        *(
            [("speed-up, 2 workers, no backups vs 1", lambda t: t[names[0]] / t[plain])]
            if plain in runs
            else []
        ),
    ):
        walls = {name: best[name].seconds for name in names}
        print(f"{label:<44} {ratio(walls):>5.2f}x {ratio(median):>6.2f}x")
    if len(runs[floor_name]) > 1:
        print("all runs (s):")
        for name in names:
            print(f"  {name:<22} " + "; ".join(map(str, runs[name])))
    chisq = best[floor_name].chisq
    every = [run for r in runs.values() for run in r]
    agree = all(math.isclose(run.chisq, chisq, rel_tol=1e-9) for run in every)
    print(f"same best chi^2 in every run: {'yes' if agree else 'NO'} ({chisq:.8g})")
    with_backups = statistics.median(r.credits for r in runs[names[1]])
    print(f"credits charged per job, median: 2 workers with backups {with_backups:.2f}", end="")
    if plain in runs:
        without = statistics.median(r.credits for r in runs[plain])
        print(f", without {without:.2f} (ratio {with_backups / without:.3f})", end="")
    print(f"; 1 worker {statistics.median(r.credits for r in runs[names[0]]):.2f}")


if __name__ == "__main__":
    main()
