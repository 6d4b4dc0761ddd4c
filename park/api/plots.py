"""Plots for the web page, drawn by matplotlib (Agg, object API) as SVG on the server.

Rendering is CPU work: the routes call these functions in a thread (`run_in_threadpool`),
and a lock keeps two renders from sharing matplotlib's global state (font cache, rc
parameters) at once. matplotlib is imported on first use, so a server that never draws
pays nothing at start-up.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_LOCK = threading.Lock()
MAX_POINTS = 5000  # data points drawn with error bars; more are thinned evenly

_RC: Any = {  # (matplotlib types its rc keys as literals)
    "svg.fonttype": "none",  # text stays text: small files, selectable labels
    "svg.hashsalt": "park",  # stable element ids: the same plot gives the same bytes
    # Text is shown as given: a user named `$\foo{$` is a name, not math text to parse
    # (which would fail, and fail every later drawing of the page showing it).
    "text.parse_math": False,
    "text.usetex": False,
    "font.size": 9.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


class NoPlot(Exception):
    """There is nothing to draw (the message says why)."""


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()


def _render(draw: Any, *args: Any) -> bytes:
    import matplotlib

    with _LOCK, matplotlib.rc_context(_RC):
        figure = draw(*args)
        return _svg(figure)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _log_scale_if_wide(ax: Axes, values: Sequence[float]) -> None:
    from matplotlib.ticker import LogFormatter

    positive = [v for v in values if v > 0]
    if positive and len(positive) == len(values) and max(positive) > 20 * min(positive):
        ax.set_yscale("log")
        # Plain labels (1e+06, 100, 0.5): the default ones are math text, which is off
        # (text.parse_math) and would show as `$\mathdefault{10^{6}}$`.
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


# -- fits -----------------------------------------------------------------------------


def _thin(n: int) -> list[int]:
    if n <= MAX_POINTS:
        return list(range(n))
    step = n / MAX_POINTS
    return [int(k * step) for k in range(MAX_POINTS)]


def _model_values(spec: dict[str, Any], result: dict[str, Any], x: Any) -> Any | None:
    """The best-fit model at `x`, or None where the server must not (a worker-side
    function: its code is not the server's to import) or cannot evaluate it."""
    import numpy as np

    from park.kinds.fit.model import Model

    model = spec["model"]
    if "expr" not in model:
        return None
    names = list(spec["parameters"])
    values = [float(result["parameters"][n]["value"]) for n in names]
    try:
        y = np.asarray(Model(model, names, names, {}, np.asarray(x, dtype=float))(values))
    except Exception:
        return None
    return y if y.shape == np.shape(x) else None


def _history_panel(ax: Axes, result: dict[str, Any]) -> None:
    history: list[dict[str, Any]] = result.get("history") or []
    method = result.get("method")
    drawn: list[float] = []
    if method == "de":
        gens = [h for h in history if "generation" in h and _finite(h.get("best_chisq"))]
        xs = [h["generation"] for h in gens]
        best = [float(h["best_chisq"]) for h in gens]
        ax.plot(xs, best, "-", color="C0", label="best χ² of the population")
        means = [(h["generation"], h["mean_chisq"]) for h in gens if _finite(h.get("mean_chisq"))]
        if means:
            ax.plot(*zip(*means, strict=True), "--", color="C7", lw=0.8, label="mean χ²")
        drawn += best + [m for _, m in means]
        polished = [
            float(h["chisq"])
            for h in history
            if h.get("stage") == "polish" and _finite(h.get("chisq"))
        ]
        if polished:
            ax.axhline(min(polished), color="C3", lw=1, label="after polishing")
            drawn.append(min(polished))
        ax.set_xlabel("generation")
        ax.set_title("best χ² per generation")
    elif method == "multistart":
        starts = [h for h in history if "start" in h]
        each = [(h["start"], float(h["chisq"])) for h in starts if _finite(h.get("chisq"))]
        so_far = [(h["start"], float(h["best_chisq"])) for h in starts if _finite(h["best_chisq"])]
        if each:
            ax.plot(*zip(*each, strict=True), "o", ms=3, color="C7", label="χ² of each start")
        if so_far:
            ax.step(*zip(*so_far, strict=True), where="post", color="C0", label="best so far")
        drawn += [c for _, c in each]
        ax.set_xlabel("start")
        ax.set_title("best χ² per start")
    else:  # scan: per chunk of the grid
        chunks = [
            (k, float(h["best_chisq"]))
            for k, h in enumerate(history)
            if _finite(h.get("best_chisq"))
        ]
        if chunks:
            ax.plot(*zip(*chunks, strict=True), "o-", ms=3, color="C0", label="best χ² of chunk")
        drawn += [c for _, c in chunks]
        ax.set_xlabel("chunk of the grid")
        ax.set_title("best χ² per chunk")
    ax.set_ylabel("χ²")
    if drawn:
        _log_scale_if_wide(ax, drawn)
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no history", ha="center", va="center", transform=ax.transAxes)


def _surface_panel(ax: Axes, result: dict[str, Any]) -> bool:
    """A scan's chi-squared over its grid: a heat map for two parameters, a profile for
    one (more axes: False, and the history is drawn instead)."""
    import numpy as np

    surface = result.get("surface") or {}
    names, axes = surface.get("names") or [], surface.get("axes") or []
    if isinstance(axes, dict):
        axes = [axes.get(n) for n in names]
    if len(names) not in (1, 2) or len(axes) != len(names):
        return False
    chisq = np.array(surface["chisq"], dtype=float)  # None (not finite there) -> nan
    best = {n: p["value"] for n, p in result.get("parameters", {}).items()}
    if len(names) == 1:
        ax.plot(axes[0], chisq, "-", color="C0", label="χ² on the grid")
        if names[0] in best:
            ax.axvline(best[names[0]], color="C3", lw=1, label="best fit")
        ax.set_xlabel(names[0])
        ax.set_ylabel("χ²")
        finite = chisq[np.isfinite(chisq)]
        if finite.size:
            _log_scale_if_wide(ax, finite.tolist())
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"χ² profile over {names[0]}")
        return True
    ax.grid(False)  # (grid lines would cross the cells)
    shown = np.log10(np.where(chisq > 0, chisq, np.nan))
    mesh = ax.pcolormesh(
        axes[1], axes[0], shown, shading="nearest", cmap="viridis", rasterized=True
    )
    ax.figure.colorbar(mesh, ax=ax, label="log10 χ²")
    if names[0] in best and names[1] in best:
        ax.plot([best[names[1]]], [best[names[0]]], "r+", ms=12, mew=2, label="best fit")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel(names[1])
    ax.set_ylabel(names[0])
    ax.set_title(f"χ² surface over {names[0]} and {names[1]}")
    return True


def _draw_fit(spec: dict[str, Any], result: dict[str, Any]) -> Figure:
    import numpy as np

    data = spec["data"]
    keep = _thin(len(data["x"]))
    x = np.asarray(data["x"], dtype=float)[keep]
    y = np.asarray(data["y"], dtype=float)[keep]
    dy = None if data.get("dy") is None else np.asarray(data["dy"], dtype=float)[keep]

    figure = _figure(7.5, 8.0)
    top, middle, bottom = figure.subplots(
        3, 1, gridspec_kw={"height_ratios": [3.0, 1.2, 2.0]}, squeeze=True
    )
    middle.sharex(top)
    if dy is not None and len(x) <= 500:
        top.errorbar(x, y, yerr=dy, fmt="o", ms=3, color="C0", ecolor="C0", elinewidth=0.8,
                     capsize=1.5, label="data")  # fmt: skip
    elif dy is not None:
        top.errorbar(x, y, yerr=dy, fmt=".", ms=2, color="C0", elinewidth=0.4, label="data")
    else:
        top.plot(x, y, "o", ms=3, color="C0", label="data")

    lo, hi = float(np.min(x)), float(np.max(x))
    grid = np.linspace(lo, hi, 400) if hi > lo else np.array([lo])
    curve = _model_values(spec, result, grid)
    at_data = _model_values(spec, result, x)
    if curve is not None:
        top.plot(grid, curve, "-", color="C3", lw=1.5, label="best fit")
    else:
        top.text(0.02, 0.02, "the model is a worker-side function: no curve drawn here",
                 transform=top.transAxes, fontsize=8, color="C7")  # fmt: skip
    title = f"{result.get('method', 'fit')}: χ² = {result['chisq']:.6g}"
    if _finite(result.get("redchi")):
        title += f", reduced χ² = {result['redchi']:.4g} ({result.get('dof')} dof)"
    top.set_title(title)
    top.set_ylabel("y")
    top.legend(loc="best", fontsize=8)
    top.tick_params(labelbottom=False)

    if at_data is not None:
        residuals = (y - at_data) / dy if dy is not None else y - at_data
        middle.axhline(0.0, color="C7", lw=0.8)
        middle.plot(x, residuals, "o", ms=2.5, color="C0")
        middle.set_ylabel("(y - fit)/dy" if dy is not None else "y - fit")
    else:
        middle.text(0.5, 0.5, "no residuals", ha="center", va="center",
                    transform=middle.transAxes)  # fmt: skip
    middle.set_xlabel("x")
    if result.get("method") != "scan" or not _surface_panel(bottom, result):
        _history_panel(bottom, result)
    return figure


def fit_svg(spec: dict[str, Any], result: dict[str, Any]) -> bytes:
    """Data with error bars and the best-fit curve, the residuals, and the best χ² per
    generation (`de`), per start (`multistart`) or per chunk (`scan`)."""
    return _render(_draw_fit, spec, result)


# -- map jobs -------------------------------------------------------------------------


def _draw_outputs(inputs: list[Any], outputs: list[float]) -> Figure:
    figure = _figure(7.5, 4.0)
    ax = figure.subplots()
    keep = _thin(len(outputs))
    style = "o-" if len(keep) <= 200 else "-"
    if len(inputs) == len(outputs) and all(_finite(v) for v in inputs):
        ax.plot([inputs[i] for i in keep], [outputs[i] for i in keep], style, ms=3, lw=0.8)
        ax.set_xlabel("input")
    else:
        ax.plot(keep, [outputs[i] for i in keep], style, ms=3, lw=0.8)
        ax.set_xlabel("input number")
    ax.set_ylabel("output")
    ax.set_title(f"outputs of {len(outputs)} input(s)")
    return figure


def map_svg(inputs: list[Any], outputs: Any) -> bytes:
    if not isinstance(outputs, list) or not outputs or not all(_finite(v) for v in outputs):
        raise NoPlot("its outputs are not all numbers")
    return _render(_draw_outputs, inputs, [float(v) for v in outputs])


# -- the ledger -----------------------------------------------------------------------


def _draw_ledger(users: dict[str, dict[str, Any]]) -> Figure:
    import numpy as np

    names = list(users)
    figure = _figure(8.0, max(3.0, 1.4 + 0.35 * len(names)))
    credits, work = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    if not names:
        figure.clear()
        figure.text(0.5, 0.5, "nothing recorded yet", ha="center", va="center")
        return figure
    rows = np.arange(len(names))
    charged = [float(users[n]["charged"]) for n in names]
    usage = [float(users[n]["usage"]) for n in names]
    credits.barh(rows - 0.2, charged, height=0.4, color="C0", label="charged (total)")
    credits.barh(rows + 0.2, usage, height=0.4, color="C1", label="usage (decayed)")
    credits.set_yticks(rows, names)
    credits.invert_yaxis()
    credits.set_xlabel("credits")
    credits.set_title("credit per user")
    credits.legend(loc="lower right", fontsize=8)
    if not any(charged) and not any(usage):
        credits.set_xlim(0.0, 1.0)
        credits.text(0.5, 0.5, "no credit charged yet\n(free work costs none)", ha="center",
                     va="center", transform=credits.transAxes, color="C7")  # fmt: skip
    work.barh(rows, [float(users[n]["core_seconds"]) for n in names], height=0.5, color="C2")
    work.set_xlabel("core seconds")
    work.set_title("work done per user")
    return figure


def ledger_svg(users: dict[str, dict[str, Any]]) -> bytes:
    """Charged credit and decayed usage per user, and the core seconds of their work, as
    horizontal bars."""
    return _render(_draw_ledger, users)


def _draw_days(days: list[dict[str, Any]]) -> Figure:
    import numpy as np

    figure = _figure(8.0, 3.6)
    ax = figure.subplots()
    if not days:
        ax.text(0.5, 0.5, "no usage in these days", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return figure
    dates = sorted({d["day"] for d in days})
    users = sorted({d["user"] for d in days})
    where = {day: i for i, day in enumerate(dates)}
    bottom = np.zeros(len(dates))
    for user in users[:12]:  # the rest in one bar: a legend of hundreds says nothing
        values = np.zeros(len(dates))
        for d in days:
            if d["user"] == user:
                values[where[d["day"]]] += float(d["core_seconds"])
        ax.bar(range(len(dates)), values, bottom=bottom, label=user)
        bottom += values
    rest = np.zeros(len(dates))
    for d in days:
        if d["user"] not in users[:12]:
            rest[where[d["day"]]] += float(d["core_seconds"])
    if rest.any():
        ax.bar(range(len(dates)), rest, bottom=bottom, label="others", color="C7")
    step = max(1, len(dates) // 10)
    ax.set_xticks(range(0, len(dates), step), dates[::step], rotation=30, ha="right")
    ax.set_ylabel("core seconds")
    ax.set_title("work done per day (UTC)")
    ax.legend(fontsize=8, loc="upper left")
    return figure


def days_svg(days: list[dict[str, Any]]) -> bytes:
    """Core seconds of completed units per day, stacked by user."""
    return _render(_draw_days, days)


__all__ = ["NoPlot", "days_svg", "fit_svg", "ledger_svg", "map_svg"]
