"""A scan's plot shows its chi-squared surface: a heat map over two parameters, a profile
over one (the history per chunk when there are more)."""

from __future__ import annotations

from park.api.plots import fit_svg
from tests.web.test_plots import HISTORIES, result_of, spec_of, text_of


def scan_result(names: list[str], axes: dict[str, list[float]], chisq: object) -> dict[str, object]:
    result = result_of("scan", HISTORIES["scan"])
    result["surface"] = {"names": names, "axes": axes, "chisq": chisq}
    return result


def test_two_parameters_give_a_heat_map() -> None:
    axes = {"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0]}
    chisq = [[50.0, 40.0], [13.0, 12.5], [None, 60.0]]  # None: not finite there
    text = text_of(fit_svg(spec_of("a*x + b"), scan_result(["a", "b"], axes, chisq)))
    assert "χ² surface over a and b" in text and "log10 χ²" in text
    assert "per chunk" not in text


def test_one_parameter_gives_a_profile() -> None:
    result = scan_result(["a"], {"a": [1.0, 2.0, 3.0]}, [50.0, 12.5, 40.0])
    text = text_of(fit_svg(spec_of("a*x + b"), result))
    assert "χ² profile over a" in text and "best fit" in text


def test_three_parameters_keep_the_history() -> None:
    axes = {"a": [1.0], "b": [0.0], "c": [0.0]}
    text = text_of(fit_svg(spec_of("a*x + b"), scan_result(["a", "b", "c"], axes, [[[1.0]]])))
    assert "per chunk" in text


def test_a_fine_grid_stays_a_small_picture() -> None:
    """A 300 x 300 grid (scans go up to 10^6 points) is one embedded image, not a shape per
    cell: a page can load it (drawn cell by cell it was 17 MB of SVG)."""
    n = 300
    axes = {"a": [i / n for i in range(n)], "b": [i / n for i in range(n)]}
    chisq = [[1.0 + (i - 150) ** 2 + (j - 100) ** 2 for j in range(n)] for i in range(n)]
    svg = fit_svg(spec_of("a*x + b"), scan_result(["a", "b"], axes, chisq))
    assert "χ² surface over a and b" in text_of(svg)
    assert len(svg) < 500_000, len(svg)
