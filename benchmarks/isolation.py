"""What isolation costs on the hot paths: the fold's checks, the full invariant check, and
the edge's bounds check of request bodies.

(a) fold: the events of realistic map-job histories (benchmarks/log.py's `history`:
    plans, lease rounds of work.requested + unit.granted, completions) folded into a fresh
    `ParkState` as shipped (each handler checked, a unit's result checked by its kind,
    the touched units' invariants checked after each event) against the same fold with
    those checks patched out. Best of `--repeat`, alternating.
(b) `ParkState.check()`, the full invariant check (property tests, `park replay
    --verify`), on a state with `--queued` queued and `--leased` leased units.
(c) `check_json` (park.events.bounds) on request bodies, against `json.loads` of the same
    text: a map spec of 100,000 numbers, one of 10,000 small objects, a 1 MB string.

    python benchmarks/isolation.py                   # ~30 s
    python benchmarks/isolation.py --events 100000   # a quick run
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any
from unittest import mock

from log import Row, active_jobs, history, print_table

from park.domain import Priority
from park.events.bounds import check_json
from park.events.schema import Event, UnitGranted, WorkerJoined
from park.kinds.map import MapKind
from park.projections import invariants
from park.projections.state import ParkState


def fold(events: Sequence[Event]) -> tuple[ParkState, float]:
    state = ParkState()
    gc.disable()
    try:
        t0 = time.process_time()  # CPU time: steadier than wall time on a shared machine
        for offset, event in enumerate(events, 1):
            state.apply(offset, event)
        seconds = time.process_time() - t0
    finally:
        gc.enable()
    return state, seconds


def unchecked() -> Any:
    """The fold without its isolation checks: no invariant check, no result check."""
    stack = mock.patch.object(invariants, "unit_problem", lambda state, unit_id: None)
    kind = mock.patch.object(MapKind, "check_result", lambda self, st, payload, result: None)

    class Both:
        def __enter__(self) -> None:
            stack.__enter__()
            kind.__enter__()

        def __exit__(self, *exc: object) -> None:
            kind.__exit__(*exc)
            stack.__exit__(*exc)

    return Both()


def bench_fold(count: int, repeat: int) -> list[Row]:
    events = list(history(count))
    best_checked = best_plain = float("inf")
    for _ in range(repeat):  # alternating, so a busy spell of the machine hits both
        state, seconds = fold(events)
        assert state.fold_errors == 0
        best_checked = min(best_checked, seconds)
        with unchecked():
            _, seconds = fold(events)
        best_plain = min(best_plain, seconds)
    cost = (best_checked / best_plain - 1) * 100
    return [
        Row("fold without the checks", len(events), best_plain, "patched out"),
        Row("fold as shipped", len(events), best_checked, f"{cost:+.1f}% time"),
    ]


def bench_check(queued: int, leased: int) -> list[Row]:
    jobs = max(1, (queued + leased) // 3)
    state = ParkState()
    events: list[Event] = [WorkerJoined(at=1.0, worker_id="w", name="w", cpus=leased or 1)]
    events += list(active_jobs(jobs, 3, first_job_no=0))
    for offset, event in enumerate(events, 1):
        state.apply(offset, event)
    to_lease = [u for u in state.units.values()][:leased]
    for unit in to_lease:
        grant = UnitGranted(at=2.0, unit_id=unit.id, job_id=unit.job_id, worker_id="w",
                            lease_deadline=32.0, priority=Priority.NORMAL, price=1.0,
                            reserved=1.0)  # fmt: skip
        state.apply(state.offset + 1, grant)
    t0 = time.perf_counter()
    problems = state.check()
    seconds = time.perf_counter() - t0
    assert problems == [], problems[:3]
    return [Row("ParkState.check()", len(state.units), seconds, f"{leased:,} of them leased")]


def timed(action: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_bounds() -> list[Row]:
    bodies = {
        "100,000 numbers": {"kind": "map", "spec": {"inputs": [i * 0.5 for i in range(100_000)]}},
        "10,000 objects": {"kind": "map", "spec": {"inputs": [{"x": i, "name": f"p{i}"}
                                                              for i in range(10_000)]}},
        "a 1 MB string": {"kind": "map", "spec": {"inputs": ["é" * 500_000]}},
    }  # fmt: skip
    rows = []
    for name, body in bodies.items():
        text = json.dumps(body, ensure_ascii=False)
        parse = timed(lambda text=text: json.loads(text))  # type: ignore[misc]
        value = json.loads(text)
        check = timed(lambda value=value: check_json(value, ""))  # type: ignore[misc]
        rows.append(Row(f"json.loads, {name}", 1, parse, f"{len(text):,} bytes"))
        rows.append(Row(f"check_json, {name}", 1, check, f"{check / parse:.2f}x json.loads"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000, help="(a): events folded")
    parser.add_argument("--repeat", type=int, default=3, help="(a): best of this many")
    parser.add_argument("--queued", type=int, default=100_000, help="(b): queued units")
    parser.add_argument("--leased", type=int, default=1_000, help="(b): leased units")
    args = parser.parse_args(argv)
    print_table("(a) the fold with and without its checks, best of "
                f"{args.repeat}", bench_fold(args.events, args.repeat))  # fmt: skip
    print_table("(b) the full invariant check", bench_check(args.queued, args.leased), "units")
    print_table("(c) the edge's bounds check of a request body", bench_bounds(), "bodies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
