"""What a job page's plot costs the server: the first plot of a fresh process (matplotlib
imported on first use, then the figure drawn) beside later ones, per kind of plot.

Each plot is drawn by `park.api.plots` as the server draws it (`fit_svg`, `map_svg`). The
first draw runs in a fresh Python process (`--runs` of them); later draws in this one, best
and median of `--repeat`. Times are this process's CPU seconds (on a machine shared with
other jobs, the wall clock mostly measures the others); the fresh process's wall time is
shown beside, as a user waits it.

    python benchmarks/plots.py              # ~2 min (load average 7 on 2 cores)
    python benchmarks/plots.py --runs 5 --repeat 9
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fit_case(method: str, n: int = 10) -> tuple[dict[str, Any], dict[str, Any]]:
    from park.kinds.fit.spec import parse_spec

    x = [float(i) for i in range(1, n + 1)]
    y = [10 * (1 - math.exp(-0.02 * v * 100 / n)) for v in x]
    spec = parse_spec(
        {
            "model": "b1*(1-exp(-b2*x))",
            "data": {"x": x, "y": y, "dy": [0.1] * n},
            "parameters": {
                "b1": {"value": 5, "min": 0, "max": 100},
                "b2": {"value": 0.01, "min": 0, "max": 1},
            },
        }
    )
    result: dict[str, Any] = {
        "method": method,
        "parameters": {
            "b1": {"value": 10.0, "stderr": 0.1},
            "b2": {"value": 0.02 * 100 / n, "stderr": 0.001},
        },
        "chisq": 0.34,
        "redchi": 0.04,
        "dof": n - 2,
    }
    if method == "de":
        result["history"] = [
            {"generation": g, "best_chisq": 1e5 / (g + 1) ** 3, "mean_chisq": 1e6 / (g + 1) ** 2}
            for g in range(25)
        ]
    elif method == "multistart":
        result["history"] = [{"start": s, "chisq": 1 + s, "best_chisq": 1.0} for s in range(20)]
    else:  # scan over (b1, b2) or b1 alone, 100 points an axis
        axes = {"b1": [i for i in range(100)], "b2": [i / 100 for i in range(100)]}
        names = ["b1", "b2"] if method == "scan-2" else ["b1"]
        chisq: Any = [
            [(a - 10) ** 2 + (b - 0.2) ** 2 * 1e3 + 0.3 for b in axes["b2"]] for a in axes["b1"]
        ]
        if names == ["b1"]:
            chisq = [row[20] for row in chisq]
        result.update(
            method="scan",
            history=[{"best_chisq": 0.34}],
            surface={"names": names, "axes": {k: axes[k] for k in names}, "chisq": chisq},
        )
    return spec, result


CASES = {
    "fit de, 10 points": lambda: ("fit", *fit_case("de")),
    "fit multistart, 101 points": lambda: ("fit", *fit_case("multistart", 101)),
    "scan, 100x100 heat map": lambda: ("fit", *fit_case("scan-2")),
    "scan, 100-point profile": lambda: ("fit", *fit_case("scan-1")),
    "map, 1000 outputs": lambda: ("map", list(range(1000)), [float(i % 37) for i in range(1000)]),
}


def drawing(case: str) -> Any:
    """The call that draws `case`, its data made (park imported, as in the server)."""
    from park.api.plots import fit_svg, map_svg

    kind, a, b = CASES[case]()
    return lambda: (fit_svg if kind == "fit" else map_svg)(a, b)


def child(case: str) -> None:
    """In a fresh process: the first draw (matplotlib is imported on first use)."""
    draw = drawing(case)
    cpu, wall = time.process_time(), time.perf_counter()
    draw()
    print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per plot")
    parser.add_argument("--repeat", type=int, default=5, help="later draws per plot")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"{'plot':28} {'first CPU s':>12} {'first wall s':>13} {'later CPU s (best/median)':>27}")
    for case in CASES:
        firsts = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, __file__, "--child", case],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            )
            firsts.append(json.loads(out.stdout))
        later = []
        draw = drawing(case)
        draw()  # (this process's own first draw, not counted)
        for _ in range(args.repeat):
            cpu = time.process_time()
            draw()
            later.append(time.process_time() - cpu)
        first_cpu = statistics.median(f["cpu"] for f in firsts)
        first_wall = statistics.median(f["wall"] for f in firsts)
        print(
            f"{case:28} {first_cpu:12.2f} {first_wall:13.2f} "
            f"{min(later):13.2f} / {statistics.median(later):.2f}"
        )


if __name__ == "__main__":
    main()
