"""`scan`: chi-squared on every point of a grid over the bounded free parameters.

Units carry only a range of flat grid indices, so a million-point scan is a few small
payloads, and they are planned lazily: at most `WINDOW` grid units are planned and not yet
done, more as those complete, so the unit table and the log's plans grow with the units
in flight, not with the grid (the surface itself is kept as 8 bytes per point).
When the surface is complete the best grid point is polished with
local least squares (or, with `polish: false`, only its statistics are computed), and the
result carries the whole surface.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from park.kinds.base import Finished
from park.kinds.fit.local import LocalResults, local_payloads
from park.kinds.fit.result import assemble

# Grid units planned ahead of those done.
WINDOW = 64


@dataclass(slots=True)
class ScanState:
    total: int
    chisq: array[float] = field(default_factory=lambda: array("d"))  # inf: failed, or unknown
    planned: int = 0
    done: int = 0
    best_chisq: float = math.inf
    chunks: list[dict[str, Any]] = field(default_factory=list)
    polish: LocalResults = field(default_factory=LocalResults)


def axes(spec: dict[str, Any]) -> dict[str, list[float]]:
    params, points, log = spec["parameters"], spec["options"]["points"], spec["options"]["log"]
    out = {}
    for name, n in points.items():
        lo, hi = params[name]["min"], params[name]["max"]
        space = np.geomspace if name in log else np.linspace
        out[name] = [float(v) for v in space(lo, hi, n)] if n > 1 else [params[name]["value"]]
    return out


def start(spec: dict[str, Any]) -> ScanState:
    total = math.prod(spec["options"]["points"].values())
    return ScanState(total=total, chisq=array("d", [math.inf]) * total)


def _grid_point(spec: dict[str, Any], index: int) -> list[float]:
    ax = list(axes(spec).values())
    shape = tuple(len(a) for a in ax)
    coords = np.unravel_index(index, shape)
    return [ax[k][int(c)] for k, c in enumerate(coords)]


def best_index(state: ScanState) -> int:
    return min(range(state.total), key=lambda i: (state.chisq[i], i))


def next_units(spec: dict[str, Any], state: ScanState) -> list[dict[str, Any]]:
    if state.planned < state.total:
        per_unit = spec["options"]["per_unit"]
        in_flight = -(-(state.planned - state.done) // per_unit)
        room = WINDOW - in_flight
        if room <= 0:
            return []
        until = min(state.total, state.planned + room * per_unit)
        return [
            {"task": "grid", "start": i, "stop": min(i + per_unit, state.total)}
            for i in range(state.planned, until, per_unit)
        ]
    if state.done < state.total or state.polish.planned:
        return []
    i = best_index(state)
    if not math.isfinite(state.chisq[i]):
        return []
    refine = bool(spec["options"]["polish"])
    return local_payloads(spec, [_grid_point(spec, i)], 1, stage="polish", refine=refine)


def planned(state: ScanState, payload: dict[str, Any]) -> None:
    if payload["task"] == "local":
        state.polish.plan(payload)
    else:
        state.planned += payload["stop"] - payload["start"]


def absorb(state: ScanState, payload: dict[str, Any], result: Any) -> None:
    if payload["task"] == "local":
        state.polish.absorb(payload, result)
        return
    start_index = payload["start"]
    for k, c in enumerate(result["chisq"]):
        state.chisq[start_index + k] = math.inf if c is None else float(c)
    state.done += len(result["chisq"])
    finite = [c for c in result["chisq"] if c is not None]
    chunk_best = min(finite, default=None)
    if chunk_best is not None:
        state.best_chisq = min(state.best_chisq, chunk_best)
    state.chunks.append({"start": start_index, "stop": payload["stop"], "best_chisq": chunk_best})


def outcome(spec: dict[str, Any], state: ScanState) -> Finished | None:
    idle = state.planned and state.done >= state.total and not state.polish.planned
    if idle and not math.isfinite(state.chisq[best_index(state)]):
        return Finished(error="the model is not finite anywhere on the grid")
    polished = state.polish.best
    if not state.polish.complete or polished is None:
        if state.polish.complete:
            return Finished(error="no finite chi-squared at the best grid point")
        return None
    grid = axes(spec)
    shape = [len(a) for a in grid.values()]
    values = np.array(state.chisq, dtype=float)
    surface = np.where(np.isfinite(values), values, np.nan).reshape(shape).tolist()
    surface = _nan_to_none(surface)
    i = best_index(state)
    history = sorted(state.chunks, key=lambda c: c["start"])
    return Finished(
        result=assemble(
            spec,
            polished[2],
            nfev=state.total + state.polish.total_nfev,
            njev=state.polish.total_njev,
            history=history,
            surface={"names": list(grid), "axes": grid, "chisq": surface},
            grid_best={
                "parameters": dict(zip(grid, _grid_point(spec, i), strict=True)),
                "chisq": state.chisq[i],
            },
        )
    )


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def progress(state: ScanState) -> dict[str, Any]:
    best = state.best_chisq
    if state.polish.done and math.isfinite(state.polish.best_chisq):
        best = min(best, state.polish.best_chisq)
    return {
        "stage": "polish" if state.polish.planned else "grid",
        "points_done": state.done,
        "points_total": state.total,
        "best_chisq": best if math.isfinite(best) else None,
    }
