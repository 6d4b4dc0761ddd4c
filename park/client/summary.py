"""Human summaries of jobs, and a fit report that reads like lmfit's `fit_report`.

`park show`, `park wait` and `park submit --wait` print these (`--json` gives the raw
form); from Python, `park.fit_report(job.wait())` or `job.summary()`.
"""

from __future__ import annotations

import math
import time
from typing import Any

MIN_CORRELATION = 0.1


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _g(value: Any, digits: int = 7) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float | int) else str(value)


def job_summary(job: dict[str, Any], result: Any = None) -> str:
    """A job in a few lines: name, status, who, when, how long, progress, then its result
    (a fit report for fits; the first outputs of a map)."""
    name = f' "{job["name"]}"' if job.get("name") else ""
    lines = [
        f"job {job['id']}{name}: {job['kind']}, {job['status']} "
        f"(user {job['user']}, priority {job['priority']})"
    ]
    tags = {k: v for k, v in job.get("tags", {}).items() if k not in ("user", "name")}
    if tags:
        lines.append("  tags: " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items())))
    timing = f"  submitted {_when(job.get('submitted_at'))}"
    started, finished = job.get("started_at"), job.get("finished_at")
    if started is not None and finished is not None:
        timing += f", ran {_duration(finished - started)} (finished {_when(finished)})"
    elif started is not None:
        timing += f", running for {_duration(time.time() - started)}"
    lines.append(timing)
    progress = job.get("progress", {})
    lines.append(f"  units: {progress.get('done', 0)}/{progress.get('total', 0)} done")
    if job.get("error"):
        lines.append(f"  error: {job['error']}")
    if result is not None:
        if job["kind"] == "fit" and isinstance(result, dict) and "parameters" in result:
            lines.append("")
            lines.append(fit_report(result, job.get("spec")))
        elif isinstance(result, list):
            shown = ", ".join(_g(r) if isinstance(r, float) else repr(r) for r in result[:5])
            more = f", ... ({len(result)} in all)" if len(result) > 5 else ""
            lines.append(f"  result: [{shown}{more}]")
        else:
            lines.append(f"  result: {result!r}"[:500])
    return "\n".join(lines)


def _initial(spec: dict[str, Any] | None, name: str) -> Any:
    if not spec:
        return None
    given = spec.get("parameters", {}).get(name)
    return given.get("value") if isinstance(given, dict) else given


def fit_report(
    result: dict[str, Any],
    spec: dict[str, Any] | None = None,
    *,
    min_correlation: float = MIN_CORRELATION,
) -> str:
    """lmfit's sections: fit statistics, variables (value +/- stderr, % error, initial
    value), correlations above `min_correlation`; and which covariance scaling the
    standard errors use, with the other one beside it."""
    parameters: dict[str, dict[str, Any]] = result["parameters"]
    nvarys = sum(1 for p in parameters.values() if not p.get("fixed"))
    stats = [
        ("fitting method", result.get("method")),
        ("function evals", result.get("nfev")),
        ("data points", result.get("ndata")),
        ("variables", nvarys),
    ]
    rows = [
        ("chi-square", result.get("chisq")),
        ("reduced chi-square", result.get("redchi")),
        ("Akaike info crit", result.get("aic")),
        ("Bayesian info crit", result.get("bic")),
        ("R-squared", result.get("rsquared")),
    ]
    lines = ["[[Fit Statistics]]"]
    lines += [f"    # {label:<17}= {_g(value)}" for label, value in stats]
    lines += [f"    {label:<19}= {_g(value)}" for label, value in rows]
    if result.get("warning"):
        lines.append(f"    warning: {result['warning']}")
    lines.append("[[Variables]]")
    width = max((len(n) for n in parameters), default=0) + 1
    for name, p in parameters.items():
        init = _initial(spec, name)
        label = f"{name + ':':<{width}}"
        if p.get("fixed"):
            lines.append(f"    {label} {_g(p['value'])} (fixed)")
            continue
        value, stderr = p["value"], p.get("stderr")
        text = f"    {label} {_g(value)}"
        if stderr is not None:
            text += f" +/- {_g(stderr, 5)}"
            if value:
                text += f" ({abs(stderr / value):.2%})"
        else:
            text += " +/- (not determined)"
        if init is not None:
            text += f" (init = {_g(init)})"
        lines.append(text)
    scaling = result.get("covariance_scaling")
    if scaling:
        lines.append(f"    standard errors: {scaling}")
    correlation = result.get("correlation")
    if correlation:
        names, matrix = correlation["names"], correlation["matrix"]
        pairs = [
            (names[i], names[j], matrix[i][j])
            for i in range(len(names))
            for j in range(i + 1, len(names))
            if abs(matrix[i][j]) > min_correlation
        ]
        pairs.sort(key=lambda pair: -abs(pair[2]))
        lines.append(f"[[Correlations]] (unreported correlations are < {min_correlation:.3f})")
        for a, b, c in pairs:
            lines.append(f"    C({a}, {b}) = {c:+.4f}")
    return "\n".join(lines)
