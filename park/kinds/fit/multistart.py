"""`multistart`: bounded local least squares from many seeded start points.

All starts are drawn at once from the seed (the first is the given values), so the whole
job is planned in one step and a replay plans exactly the same units. Each unit runs
`per_unit` starts on a worker and reports every start's chi-squared and the statistics of
its best; the job's answer is the best over all units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from park.kinds.base import Finished
from park.kinds.fit.local import LocalResults, local_payloads
from park.kinds.fit.result import assemble
from park.kinds.fit.sampling import free_layout, generator, sample


@dataclass(slots=True)
class MultistartState:
    fits: LocalResults = field(default_factory=LocalResults)


def start_points(spec: dict[str, Any]) -> list[list[float]]:
    opts = spec["options"]
    _, value, lower, upper = free_layout(spec)
    first = np.clip(value, lower, upper)[None, :]
    rest = sample(generator(opts["seed"]), opts["starts"] - 1, value, lower, upper, opts["spread"])
    return [[float(v) for v in row] for row in np.vstack([first, rest])]


MAX_UNITS = 256  # by default: every unit carries the data, so the log grows with units


def per_unit(spec: dict[str, Any]) -> int:
    """Starts per unit: as asked, else one each for up to MAX_UNITS units."""
    opts = spec["options"]
    return int(opts["per_unit"] or max(1, math.ceil(opts["starts"] / MAX_UNITS)))


def next_units(spec: dict[str, Any], state: MultistartState) -> list[dict[str, Any]]:
    if state.fits.planned:
        return []
    return local_payloads(spec, start_points(spec), per_unit(spec), stage="starts")


def planned(state: MultistartState, payload: dict[str, Any]) -> None:
    state.fits.plan(payload)


def absorb(state: MultistartState, payload: dict[str, Any], result: Any) -> None:
    state.fits.absorb(payload, result)


def outcome(spec: dict[str, Any], state: MultistartState) -> Finished | None:
    fits = state.fits
    if not fits.complete:
        return None
    best = fits.best
    if best is None:
        return Finished(error="no start point gave a finite chi-squared")
    return Finished(
        result=assemble(
            spec,
            best[2],
            nfev=fits.total_nfev,
            njev=fits.total_njev,
            history=fits.history(),
            starts=fits.planned,
            best_start=best[1],
        )
    )


def progress(state: MultistartState) -> dict[str, Any]:
    fits = state.fits
    best = min((c for c in fits.chisq if c is not None), default=None)
    return {
        "stage": "starts",
        "starts_done": fits.done,
        "starts_total": fits.planned,
        "best_chisq": best,
    }
