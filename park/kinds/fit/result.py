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
    parameters: dict[str, dict[str, Any]] = {}
    for name, p in params.items():
        if p["fixed"]:
            parameters[name] = {"value": p["value"], "stderr": 0.0, "fixed": True}
        else:
            parameters[name] = {
                "value": values[name],
                "stderr": stderr.get(name),
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
