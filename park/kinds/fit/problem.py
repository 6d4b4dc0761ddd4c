"""Worker-side numerics of a fit: chi-squared, local least squares, and the statistics.

A unit runs on its payload merged over its job's context: the whole problem (model,
data, parameter layout, local-solver settings) as plain JSON, built by `problem_payload`
from the normalised spec and sent with each lease, so units stored on the log stay small
and any worker can run any unit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from park.kinds.fit.model import Array, Model, Vector


def problem_payload(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of every unit's payload that describes the problem."""
    params = spec["parameters"]
    free = [n for n, p in params.items() if not p["fixed"]]
    opts = spec["options"]
    return {
        "model": spec["model"],
        "x": spec["data"]["x"],
        "y": spec["data"]["y"],
        "dy": spec["data"]["dy"],
        "names": list(params),
        "free": free,
        "fixed": {n: p["value"] for n, p in params.items() if p["fixed"]},
        "lower": [params[n]["min"] for n in free],
        "upper": [params[n]["max"] for n in free],
        "local": {k: opts[k] for k in ("local", "xtol", "ftol", "gtol", "max_nfev")},
    }


def finite_or_none(value: float) -> float | None:
    """JSON has no inf or nan: a failed evaluation is reported as null."""
    return float(value) if math.isfinite(value) else None


TIE = 1e-9  # chi-squared values this close (relative) are the same minimum


def preferred(candidates: list[tuple[float, int]]) -> int:
    """The position in `candidates` ((chisq, start index) pairs) of the fit to report:
    the lowest start index among those tied with the smallest chi-squared. Models with
    exchange symmetry (sums of exponentials or peaks) reach one minimum under many
    labellings; the earliest start, the given values first, picks the labelling."""
    low = min(c for c, _ in candidates)
    tied = [k for k, (c, _) in enumerate(candidates) if c <= low + TIE * abs(low)]
    return min(tied, key=lambda k: candidates[k][1])


@dataclass(slots=True)
class LocalFit:
    start: list[float]
    x: list[float]
    chisq: float
    nfev: int
    njev: int
    status: int
    message: str


class Problem:
    """A problem rebuilt on the worker from a payload's `problem` part."""

    def __init__(self, p: dict[str, Any]) -> None:
        self.x = np.asarray(p["x"], dtype=float)
        self.y = np.asarray(p["y"], dtype=float)
        self.dy = None if p["dy"] is None else np.asarray(p["dy"], dtype=float)
        self.weight = 1.0 / self.dy if self.dy is not None else np.ones_like(self.y)
        self.free: list[str] = list(p["free"])
        self.model = Model(p["model"], p["names"], self.free, p["fixed"], self.x)
        self.lower = np.array([-np.inf if v is None else v for v in p["lower"]], dtype=float)
        self.upper = np.array([np.inf if v is None else v for v in p["upper"]], dtype=float)
        self.local: dict[str, Any] = dict(p["local"])

    @property
    def bounded(self) -> bool:
        return bool(np.any(np.isfinite(self.lower)) or np.any(np.isfinite(self.upper)))

    def residuals(self, values: Vector) -> Array:
        r: Array = (self.y - self.model(values)) * self.weight
        return r

    def jacobian(self, values: Vector) -> Array:
        """Jacobian of the residuals (note the sign: r = (y - f) / dy)."""
        return -self.model.jacobian(values) * self.weight[:, None]

    def chisq(self, values: Vector) -> float:
        r = self.residuals(values)
        with np.errstate(all="ignore"):
            value = float(np.dot(r, r))
        return value if math.isfinite(value) else math.inf

    def chisq_many(self, vectors: Array) -> list[float]:
        """Chi-squared of each row; an expression is evaluated on blocks of rows at once
        (parameters as column vectors broadcast against x)."""
        vectors = np.asarray(vectors, dtype=float).reshape(-1, len(self.free))
        if self.model.expression is None:
            return [self.chisq(v) for v in vectors]
        out: list[float] = []
        block = max(1, 1_000_000 // max(1, self.x.size))
        for i in range(0, len(vectors), block):
            rows = vectors[i : i + block]
            columns = [rows[:, k : k + 1] for k in range(rows.shape[1])]
            with np.errstate(all="ignore"):
                y = np.broadcast_to(self.model(columns), (len(rows), self.x.size))
                r = (self.y - y) * self.weight
                values = np.einsum("ij,ij->i", r, r)
            out.extend(float(v) if math.isfinite(v) else math.inf for v in values)
        return out

    def _solve(self, x0: Array, method: str) -> Any:
        # scipy.optimize takes seconds to import: only a worker that solves pays for it, so
        # a map worker (a pilot's, say) starts that much sooner.
        from scipy.optimize import OptimizeWarning, least_squares

        max_nfev = self.local["max_nfev"] or 500 * (x0.size + 1)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            return least_squares(
                self.residuals,
                x0,
                jac=self.jacobian,
                bounds=(self.lower, self.upper),
                method=method,
                x_scale="jac",
                xtol=self.local["xtol"] or None,
                ftol=self.local["ftol"] or None,
                gtol=self.local["gtol"] or None,
                max_nfev=max_nfev,
            )

    def local_fit(self, start: Sequence[float]) -> LocalFit:
        """Local least squares from `start`, then once more from where it stopped: with
        tolerances near machine precision the restart recovers the last digits that a
        solver's trust region can leave behind on ill-conditioned problems."""
        x0 = np.clip(np.asarray(start, dtype=float), self.lower, self.upper)
        method = self.local["local"]
        if method == "lm" and self.bounded:
            method = "trf"
        if self.bounded:  # strictly inside, as trf/dogbox require
            span = np.where(np.isfinite(self.upper - self.lower), self.upper - self.lower, 1.0)
            x0 = np.clip(x0, self.lower + 1e-10 * span, self.upper - 1e-10 * span)
        if method == "lm" and x0.size > self.x.size:
            method = "trf"
        best = LocalFit(list(map(float, start)), x0.tolist(), self.chisq(x0), 1, 0, -1, "")
        if not math.isfinite(best.chisq):
            best.message = "the model is not finite at the start point"
            return best
        nfev, njev, current = 1, 0, x0
        for _ in range(2):
            try:
                r = self._solve(current, method)
            except (ValueError, np.linalg.LinAlgError) as err:
                best.message = str(err)
                break
            nfev += int(r.nfev)
            njev += int(r.njev or 0)
            chisq = self.chisq(r.x)
            if chisq <= best.chisq:
                best = LocalFit(best.start, r.x.tolist(), chisq, 0, 0, int(r.status), r.message)
            current = np.asarray(best.x)
        best.nfev, best.njev = nfev, njev
        return best

    def rsquared(self, values: Vector) -> float | None:
        """1 - RSS/TSS on the data as given (unweighted), as lmfit reports it."""
        with np.errstate(all="ignore"):
            fitted = np.asarray(self.model(values), dtype=float)
            rss = float(np.sum((self.y - fitted) ** 2))
            tss = float(np.sum((self.y - self.y.mean()) ** 2))
        return finite_or_none(1.0 - rss / tss) if tss > 0 else None

    def statistics(self, values: Vector, scale_covar: bool | None) -> dict[str, Any]:
        """Covariance from the Jacobian at the optimum: (J^T J)^-1, times chi^2/dof when
        the data have no dy (or when asked). Columns are scaled before the SVD so that
        parameters of very different magnitudes do not ruin the conditioning."""
        p = np.asarray(values, dtype=float)
        chisq = self.chisq(p)
        dof = self.x.size - p.size
        redchi = chisq / dof if dof > 0 else math.inf
        scale = self.dy is None if scale_covar is None else scale_covar
        out: dict[str, Any] = {
            "x": p.tolist(),
            "chisq": finite_or_none(chisq),
            "redchi": finite_or_none(redchi),
            "dof": dof,
            "covariance": None,
            "stderr": None,
            "covariance_scaled": bool(scale),
            "rsquared": self.rsquared(p),
            "warning": None,
        }
        try:
            jac = self.jacobian(p)
        except Exception as err:  # a user function that fails at the optimum
            out["warning"] = f"no Jacobian at the optimum: {err}"
            return out
        if not np.all(np.isfinite(jac)):
            out["warning"] = "the Jacobian is not finite at the optimum"
            return out
        norms = np.linalg.norm(jac, axis=0)
        if np.any(norms == 0):
            out["warning"] = "the model does not depend on some parameter at the optimum"
            return out
        _, s, vt = np.linalg.svd(jac / norms, full_matrices=False)
        if s[-1] <= s[0] * np.finfo(float).eps * max(jac.shape):
            out["warning"] = "the Jacobian is singular at the optimum: no covariance"
            return out
        cov = (vt.T / s**2) @ vt / np.outer(norms, norms)
        if scale:
            cov = cov * redchi
        if not np.all(np.isfinite(cov)):
            out["warning"] = "the covariance is not finite"
            return out
        out["covariance"] = cov.tolist()
        out["stderr"] = np.sqrt(np.diag(cov)).tolist()
        return out


def run_local(payload: dict[str, Any]) -> dict[str, Any]:
    """Local fits from each start in the payload; the best one with its statistics."""
    problem = Problem(payload["problem"])
    if payload.get("refine", True):
        fits = [problem.local_fit(s) for s in payload["starts"]]
    else:  # statistics only, at the given points
        fits = [
            LocalFit(list(s), list(s), problem.chisq(s), 1, 0, 0, "not refined")
            for s in payload["starts"]
        ]
    finite = [(f.chisq, i) for i, f in enumerate(fits) if math.isfinite(f.chisq)]
    best = finite[preferred(finite)][1] if finite else 0
    result: dict[str, Any] = {
        "fits": [
            {
                "x": f.x,
                "chisq": finite_or_none(f.chisq),
                "nfev": f.nfev,
                "njev": f.njev,
                "status": f.status,
                "message": f.message,
            }
            for f in fits
        ],
        "best": best,
        "stats": None,
    }
    if math.isfinite(fits[best].chisq):
        result["stats"] = problem.statistics(fits[best].x, payload["scale_covar"])
    return result


def run_evaluate(payload: dict[str, Any]) -> dict[str, Any]:
    """Chi-squared of each parameter vector (null where the model is not finite)."""
    problem = Problem(payload["problem"])
    vectors = np.asarray(payload["vectors"], dtype=float)
    return {"chisq": [finite_or_none(c) for c in problem.chisq_many(vectors)]}


def run_grid(payload: dict[str, Any]) -> dict[str, Any]:
    """Chi-squared on the grid points with flat indices start..stop-1."""
    problem = Problem(payload["problem"])
    axes = [np.asarray(a, dtype=float) for a in payload["axes"]]
    index = np.arange(payload["start"], payload["stop"])
    coords = np.unravel_index(index, tuple(a.size for a in axes))
    vectors = np.column_stack([a[c] for a, c in zip(axes, coords, strict=True)])
    return {"chisq": [finite_or_none(c) for c in problem.chisq_many(vectors)]}
