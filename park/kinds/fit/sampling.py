"""Seeded sampling of parameter vectors: start points and initial populations.

The generator is always made from the spec's seed plus a stream number (the generation,
for `de`), never from global state, so the same spec yields the same points on any server,
before and after a crash.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from park.kinds.fit.model import Array


def generator(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def free_layout(spec: dict[str, Any]) -> tuple[list[str], Array, Array, Array]:
    """Free parameter names, their values, lower and upper bounds (+-inf when open)."""
    params = spec["parameters"]
    free = [n for n, p in params.items() if not p["fixed"]]
    value = np.array([params[n]["value"] for n in free], dtype=float)
    lower = np.array([-np.inf if params[n]["min"] is None else params[n]["min"] for n in free])
    upper = np.array([np.inf if params[n]["max"] is None else params[n]["max"] for n in free])
    return free, value, lower, upper


def sample(
    rng: np.random.Generator, count: int, value: Array, lower: Array, upper: Array, spread: float
) -> Array:
    """`count` points: uniform inside two-sided bounds; otherwise around the value, a
    log-uniform factor of up to 10**spread either way (a scale-free guess, sign kept),
    folded back inside a one-sided bound."""
    m = value.size
    u = rng.random((count, m))
    factor = 10.0 ** (spread * (2.0 * rng.random((count, m)) - 1.0))
    around = np.where(value != 0, value * factor, (2.0 * u - 1.0) * 10.0**spread)
    out = np.empty((count, m))
    for k in range(m):
        lo, hi = lower[k], upper[k]
        if np.isfinite(lo) and np.isfinite(hi):
            out[:, k] = lo + u[:, k] * (hi - lo)
        elif np.isfinite(lo):
            gap = value[k] - lo if value[k] > lo else max(abs(lo), 1.0)
            out[:, k] = lo + gap * factor[:, k]
        elif np.isfinite(hi):
            gap = hi - value[k] if value[k] < hi else max(abs(hi), 1.0)
            out[:, k] = hi - gap * factor[:, k]
        else:
            out[:, k] = around[:, k]
    return out
