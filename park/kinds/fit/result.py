"""The result of a fit, assembled on the server from the statistics a worker computed.

Kept separate from the methods so `multistart`, `de` and `scan` all answer in one shape:
parameters with value and stderr, chi-squared, reduced chi-squared, degrees of freedom,
evaluations, covariance and correlation with their names, and the history.
"""

from __future__ import annotations

import math
from typing import Any


def correlation(cov: list[list[float]]) -> list[list[float]]:
    sd = [math.sqrt(cov[i][i]) for i in range(len(cov))]
    return [
        [cov[i][j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else 0.0 for j in range(len(cov))]
        for i in range(len(cov))
    ]


SCALED = "scaled by the reduced chi-square (lmfit scale_covar=True); stderr_unscaled has the other"
UNSCALED = (
    "not scaled: (J^T J)^-1 with residuals weighted by 1/dy (lmfit scale_covar=False); "
    "stderr_scaled has the other"
)


def information_criteria(chisq: float | None, ndata: int, nvarys: int) -> dict[str, Any]:
    """AIC and BIC as lmfit defines them: n ln(chi^2/n) + 2k, and + ln(n) k."""
    if chisq is None or chisq <= 0 or ndata <= 0:
        return {"aic": None, "bic": None}
    neg2_log_likelihood = ndata * math.log(chisq / ndata)
    return {
        "aic": neg2_log_likelihood + 2 * nvarys,
        "bic": neg2_log_likelihood + math.log(ndata) * nvarys,
    }


def assemble(
    spec: dict[str, Any],
    stats: dict[str, Any],
    *,
    nfev: int,
    njev: int,
    history: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    params = spec["parameters"]
    free = [n for n, p in params.items() if not p["fixed"]]
    values = dict(zip(free, stats["x"], strict=True))
    stderr = dict(zip(free, stats["stderr"], strict=True)) if stats["stderr"] else {}
    redchi = stats["redchi"]
    scaled = stats.get("covariance_scaled")
    if scaled is None:  # a worker from before the flag: the rule it followed
        asked = spec.get("options", {}).get("scale_covar")
        scaled = spec["data"].get("dy") is None if asked is None else bool(asked)
    factor = math.sqrt(redchi) if redchi is not None and redchi > 0 else None
    parameters: dict[str, dict[str, Any]] = {}
    for name, p in params.items():
        if p["fixed"]:
            parameters[name] = {"value": p["value"], "stderr": 0.0, "fixed": True}
            continue
        err = stderr.get(name)
        other = None
        if err is not None and factor is not None:
            other = err / factor if scaled else err * factor
        parameters[name] = {
            "value": values[name],
            "stderr": err,
            "stderr_scaled": err if scaled else other,
            "stderr_unscaled": other if scaled else err,
            "init": p["value"],
            "fixed": False,
        }
    cov = stats["covariance"]
    result: dict[str, Any] = {
        "method": spec["method"],
        "parameters": parameters,
        "chisq": stats["chisq"],
        "redchi": stats["redchi"],
        "dof": stats["dof"],
        "ndata": len(spec["data"]["x"]),
        "nvarys": len(free),
        **information_criteria(stats["chisq"], len(spec["data"]["x"]), len(free)),
        "rsquared": stats.get("rsquared"),
        "covariance_scaling": SCALED if scaled else UNSCALED,
        "nfev": nfev,
        "njev": njev,
        "covariance": {"names": free, "matrix": cov} if cov is not None else None,
        "correlation": {"names": free, "matrix": correlation(cov)} if cov is not None else None,
        "history": history,
    }
    if stats.get("warning"):
        result["warning"] = stats["warning"]
    result.update(extra)
    return result
