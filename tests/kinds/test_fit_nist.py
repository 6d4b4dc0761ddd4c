"""NIST StRD nonlinear regression: from Start 1, `multistart` and `de` reach the certified
parameters to >= 6 significant digits and the certified standard deviations to >= 3.

Every number (data, start values, certified values) is read from the files in
`tests/data/nist-strd/` (copied unchanged from NIST); the model formula too (see
`tests/kinds/nist.py`).
"""

from __future__ import annotations

import pytest

from tests.kinds.fit_driver import drive
from tests.kinds.nist import NIST_DIR, NistProblem, all_problems, digits

PROBLEMS = all_problems() if NIST_DIR.is_dir() else []


def test_the_nist_datasets_are_there() -> None:
    """Thirteen datasets: a missing directory fails here instead of skipping silently."""
    assert len(PROBLEMS) == 13, f"expected NIST's 13 files in {NIST_DIR}"


METHODS = {
    "multistart": {"starts": 4, "seed": 1},
    "de": {"seed": 1},
}


def check(problem: NistProblem, result: dict[str, object]) -> tuple[float, float]:
    params = result["parameters"]
    assert isinstance(params, dict)
    values = [params[n]["value"] for n in problem.names]
    errors = [params[n]["stderr"] for n in problem.names]
    assert all(e is not None for e in errors), result.get("warning")
    value_digits = min(digits(v, c) for v, c in zip(values, problem.certified, strict=True))
    error_digits = min(digits(e, c) for e, c in zip(errors, problem.certified_sd, strict=True))
    assert value_digits >= 6, (problem.name, values, problem.certified)
    assert error_digits >= 3, (problem.name, errors, problem.certified_sd)
    assert digits(result["chisq"], problem.residual_ss) >= 6  # type: ignore[arg-type]
    assert result["dof"] == problem.dof
    return value_digits, error_digits


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("problem", PROBLEMS, ids=[p.name for p in PROBLEMS])
def test_certified_values_from_start_1(problem: NistProblem, method: str) -> None:
    run = drive(problem.spec(method, METHODS[method]))
    check(problem, run.result)
    cov = run.result["covariance"]
    assert cov["names"] == problem.names
    corr = run.result["correlation"]["matrix"]
    assert all(abs(corr[i][i] - 1) < 1e-12 for i in range(len(problem.names)))


def test_data_read_from_the_file_text() -> None:
    """The same fit with the data given as the file's own columns (y before x)."""
    problem = next(p for p in PROBLEMS if p.name == "Misra1a")
    spec = problem.spec("multistart", {"starts": 1})
    columns = [None] * len(problem.columns)
    for role, i in problem.columns.items():
        columns[i] = role
    spec["data"] = {"text": problem.data_text, "columns": columns}
    check(problem, drive(spec).result)
