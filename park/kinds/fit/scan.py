"""`scan`: chi-squared on every point of a grid over the bounded free parameters.

Units carry only a range of flat grid indices, so a million-point scan is a few small
payloads, and they are planned lazily: at most `WINDOW` grid units are planned and not yet
done, more as those complete. What the server keeps of the results is bounded too,
whatever the grid (up to 2M points): the best point so far, the surface at most
`SURFACE_POINTS` points (the whole grid when it is that small, else every `stride`-th
point along each axis), and the best chi-squared of at most `HISTORY_CHUNKS` runs of the
grid. When the grid is done its best point is polished with local least squares (or,
with `polish: false`, only its statistics are computed); the result carries that surface.
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
# The most points of the surface kept (and put in the result), and of the per-chunk
# history: a larger grid keeps every `stride`-th point of each axis, and chunks of the
# grid are merged into runs.
SURFACE_POINTS = 16_384
HISTORY_CHUNKS = 1_000


@dataclass(slots=True)
class ScanState:
    total: int
    shape: tuple[int, ...] = ()  # points per axis
    stride: tuple[int, ...] = ()  # the surface keeps every stride-th point of each axis
    surface: array[float] = field(default_factory=lambda: array("d"))  # inf: failed, unknown
    planned: int = 0
    done: int = 0
    best_chisq: float = math.inf
    best: int = -1  # flat index of the best grid point (lowest chi-squared, then index)
    run: int = 1  # grid points per history entry (whole units)
    runs: dict[int, list[Any]] = field(default_factory=dict)  # run -> [start, stop, best]
    polish: LocalResults = field(default_factory=LocalResults)

    @property
    def kept_shape(self) -> tuple[int, ...]:
        return tuple(-(-n // s) for n, s in zip(self.shape, self.stride, strict=True))


def axes(spec: dict[str, Any]) -> dict[str, list[float]]:
    params, points, log = spec["parameters"], spec["options"]["points"], spec["options"]["log"]
    out = {}
    for name, n in points.items():
        lo, hi = params[name]["min"], params[name]["max"]
        space = np.geomspace if name in log else np.linspace
        out[name] = [float(v) for v in space(lo, hi, n)] if n > 1 else [params[name]["value"]]
    return out


def start(spec: dict[str, Any]) -> ScanState:
    shape = tuple(spec["options"]["points"].values())
    total = math.prod(shape)
    stride = surface_stride(shape)
    per_unit = spec["options"]["per_unit"]
    units = -(-total // per_unit)
    state = ScanState(
        total=total, shape=shape, stride=stride, run=per_unit * -(-units // HISTORY_CHUNKS)
    )
    state.surface = array("d", [math.inf]) * math.prod(state.kept_shape)
    return state


def surface_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per axis, keep every stride-th point: the axis keeping most points is thinned
    first, until at most SURFACE_POINTS are kept (all of them for a small grid)."""
    stride = [1] * len(shape)
    kept = list(shape)
    while math.prod(kept) > SURFACE_POINTS:
        k = max(range(len(kept)), key=lambda a: (kept[a], -a))
        stride[k] += 1
        kept[k] = -(-shape[k] // stride[k])
    return tuple(stride)


def _grid_point(spec: dict[str, Any], index: int) -> list[float]:
    ax = list(axes(spec).values())
    shape = tuple(len(a) for a in ax)
    coords = np.unravel_index(index, shape)
    return [ax[k][int(c)] for k, c in enumerate(coords)]


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
    if state.best < 0:
        return []
    refine = bool(spec["options"]["polish"])
    return local_payloads(spec, [_grid_point(spec, state.best)], 1, stage="polish", refine=refine)


def planned(state: ScanState, payload: dict[str, Any]) -> None:
    if payload["task"] == "local":
        state.polish.plan(payload)
    else:
        state.planned += payload["stop"] - payload["start"]


def absorb(state: ScanState, payload: dict[str, Any], result: Any) -> None:
    if payload["task"] == "local":
        state.polish.absorb(payload, result)
        return
    first, chisq = payload["start"], result["chisq"]
    values = np.array([math.inf if c is None else float(c) for c in chisq], dtype=float)
    if values.size:
        k = int(np.argmin(values))  # the first of the lowest: the lowest index wins ties
        if values[k] < state.best_chisq or (
            values[k] == state.best_chisq and math.isfinite(values[k]) and first + k < state.best
        ):
            state.best_chisq, state.best = float(values[k]), first + k
    _keep_on_surface(state, first, values)
    state.done += len(chisq)
    finite = [c for c in chisq if c is not None]
    chunk_best = min(finite, default=None)
    run = state.runs.setdefault(first // state.run, [first, payload["stop"], None])
    run[0], run[1] = min(run[0], first), max(run[1], payload["stop"])
    if chunk_best is not None:
        run[2] = chunk_best if run[2] is None else min(run[2], chunk_best)


def _keep_on_surface(state: ScanState, first: int, values: Any) -> None:
    """The values of points on the kept surface (every stride-th point of each axis)."""
    if all(s == 1 for s in state.stride):
        state.surface[first : first + len(values)] = array("d", values.tolist())
        return
    coords = np.unravel_index(np.arange(first, first + len(values)), state.shape)
    kept = np.ones(len(values), dtype=bool)
    for c, s in zip(coords, state.stride, strict=True):
        kept &= c % s == 0
    if kept.any():
        where = np.ravel_multi_index(
            tuple(c[kept] // s for c, s in zip(coords, state.stride, strict=True)),
            state.kept_shape,
        )
        for i, v in zip(where.tolist(), values[kept].tolist(), strict=True):
            state.surface[i] = v


def outcome(spec: dict[str, Any], state: ScanState) -> Finished | None:
    idle = state.planned and state.done >= state.total and not state.polish.planned
    if idle and state.best < 0:
        return Finished(error="the model is not finite anywhere on the grid")
    polished = state.polish.best
    if not state.polish.complete or polished is None:
        if state.polish.complete:
            return Finished(error="no finite chi-squared at the best grid point")
        return None
    grid = axes(spec)
    kept = {n: a[::s] for (n, a), s in zip(grid.items(), state.stride, strict=True)}
    values = np.array(state.surface, dtype=float)
    surface = np.where(np.isfinite(values), values, np.nan).reshape(state.kept_shape).tolist()
    shown: dict[str, Any] = {"names": list(grid), "axes": kept, "chisq": _nan_to_none(surface)}
    if any(s > 1 for s in state.stride):
        shown["stride"] = dict(zip(grid, state.stride, strict=True))
    history = [
        {"start": r[0], "stop": r[1], "best_chisq": r[2]} for _, r in sorted(state.runs.items())
    ]
    return Finished(
        result=assemble(
            spec,
            polished[2],
            nfev=state.total + state.polish.total_nfev,
            njev=state.polish.total_njev,
            history=history,
            surface=shown,
            grid_best={
                "parameters": dict(zip(grid, _grid_point(spec, state.best), strict=True)),
                "chisq": state.best_chisq,
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
