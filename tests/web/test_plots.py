"""The plot functions alone: every fit method's history, models the server must not run,
large data, and results with holes (null chi-squared)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from park.api.plots import NoPlot, fit_svg, ledger_svg, map_svg
from park.kinds.fit.spec import parse_spec


def spec_of(model: Any, n: int = 20, dy: bool = True) -> dict[str, Any]:
    x = [float(i) for i in range(1, n + 1)]
    data: dict[str, Any] = {"x": x, "y": [2.0 * v + 1.0 + 0.1 * math.sin(v) for v in x]}
    if dy:
        data["dy"] = [0.1] * n
    params = {"a": {"value": 1.0}, "b": {"value": 0.0}}
    return parse_spec({"model": model, "data": data, "parameters": params})


def result_of(method: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "method": method,
        "parameters": {"a": {"value": 2.0, "stderr": 0.01}, "b": {"value": 1.0, "stderr": 0.02}},
        "chisq": 12.5,
        "redchi": 0.7,
        "dof": 18,
        "history": history,
    }


def text_of(svg: bytes) -> str:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join(t for t in root.itertext() if t.strip())


HISTORIES = {
    "de": [
        {"generation": 0, "best_chisq": 900.0, "mean_chisq": 5e4, "nfev": 20},
        {"generation": 1, "best_chisq": None, "mean_chisq": None, "nfev": 40},
        {"generation": 2, "best_chisq": 15.0, "mean_chisq": 80.0, "nfev": 60},
        {"stage": "polish", "from": "population", "chisq": 12.5, "nfev": 9},
        {"stage": "polish", "from": "population", "chisq": None, "nfev": 9},
    ],
    "multistart": [
        {"start": 0, "chisq": 40.0, "nfev": 10, "best_chisq": 40.0},
        {"start": 1, "chisq": None, "nfev": 10, "best_chisq": 40.0},
        {"start": 2, "chisq": 12.5, "nfev": 10, "best_chisq": 12.5},
    ],
    "scan": [
        {"start": 0, "stop": 1000, "best_chisq": 30.0},
        {"start": 1000, "stop": 2000, "best_chisq": None},
    ],
}


@pytest.mark.parametrize("method", sorted(HISTORIES))
def test_every_method_draws_its_history(method: str) -> None:
    text = text_of(fit_svg(spec_of("a*x + b"), result_of(method, HISTORIES[method])))
    assert "best fit" in text
    assert {"de": "per generation", "multistart": "per start", "scan": "per chunk"}[method] in text


def test_a_log_axis_reads_as_numbers() -> None:
    """A wide χ² range is drawn on a log axis, labelled in plain numbers (math text is
    off, so matplotlib's default labels would read `$\\mathdefault{10^{2}}$`)."""
    text = text_of(fit_svg(spec_of("a*x + b"), result_of("de", HISTORIES["de"])))
    assert "mathdefault" not in text and "$" not in text
    assert "1000" in text.split() or "1e+03" in text.split(), text


def test_a_worker_side_function_is_not_run_on_the_server() -> None:
    spec = spec_of({"function": "not_a_module_anywhere:f"})
    text = text_of(fit_svg(spec, result_of("multistart", HISTORIES["multistart"])))
    assert "no curve drawn" in text and "no residuals" in text


def test_no_error_bars_many_points_and_no_history() -> None:
    spec = spec_of("a*x + b", n=20_000, dy=False)
    svg = fit_svg(spec, result_of("multistart", []))
    assert "no history" in text_of(svg)
    assert len(svg) < 3_000_000  # the data are thinned, not drawn point by point


def test_map_outputs_and_the_ledger() -> None:
    assert "input" in text_of(map_svg([1, 2, 3], [1, 4, 9]))
    assert "input number" in text_of(map_svg(["a", "b"], [1.5, 2.5]))
    many = map_svg(list(range(100_000)), [float(i % 97) for i in range(100_000)])
    assert len(many) < 1_000_000  # thinned
    for bad in ([], ["x"], [1, None], [True], "text"):
        with pytest.raises(NoPlot):
            map_svg([1], bad)
    users = {"ann": {"charged": 2.0, "usage": 1.5, "core_seconds": 30.0}}
    assert "ann" in text_of(ledger_svg(users))
    assert "nothing recorded yet" in text_of(ledger_svg({}))
