"""The `fit` kind as a state machine: reproducible, replayable, order-independent; scans,
weights, fixed parameters, bounds, progress and failures."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest

from park.kinds import KINDS
from tests.kinds.fit_driver import drive, replay
from tests.kinds.nist import NIST_DIR, load

FIT = KINDS["fit"]
RNG = np.random.default_rng(7)
X = np.linspace(0.0, 4.0, 40)
SINE_Y = (2.0 * np.sin(3.7 * X + 0.4) + 0.05 * RNG.standard_normal(X.size)).tolist()


def sine_spec(method: str, **options: Any) -> dict[str, Any]:
    """A fit with many local minima in omega: from omega=1 a local fit goes wrong."""
    return {
        "model": "A*sin(omega*x + phi)",
        "data": {"x": X.tolist(), "y": SINE_Y},
        "parameters": {
            "A": {"value": 1.0, "min": 0.1, "max": 5.0},
            "omega": {"value": 1.0, "min": 0.5, "max": 6.0},
            "phi": {"value": 0.0, "min": -1.5, "max": 1.5},
        },
        "method": method,
        "options": options,
    }


def misra(method: str, **options: Any) -> dict[str, Any]:
    return load(NIST_DIR / "Misra1a.dat").spec(method, options)


def test_bounded_multistart_finds_the_global_minimum() -> None:
    single = drive(sine_spec("multistart", starts=1)).result
    multi = drive(sine_spec("multistart", starts=24, seed=3)).result
    assert multi["chisq"] < 0.2 * single["chisq"]
    assert multi["parameters"]["omega"]["value"] == pytest.approx(3.7, abs=0.01)
    assert len(multi["history"]) == 24 and multi["starts"] == 24


def test_multistart_starts_lie_inside_the_bounds_and_the_first_is_the_given_values() -> None:
    run = drive(sine_spec("multistart", starts=10, per_unit=3))
    planned = [p for what, ps, _ in run.folds if what == "planned" for p in ps]
    assert [len(p["starts"]) for p in planned] == [3, 3, 3, 1]
    starts = [s for p in planned for s in p["starts"]]
    assert starts[0] == [1.0, 1.0, 0.0]
    lo, hi = np.array([0.1, 0.5, -1.5]), np.array([5.0, 6.0, 1.5])
    assert all(np.all((lo <= s) & (s <= hi)) for s in np.array(starts))


def test_bounded_de_finds_the_global_minimum() -> None:
    result = drive(sine_spec("de", seed=2, polish_start=False)).result
    assert result["parameters"]["omega"]["value"] == pytest.approx(3.7, abs=0.01)
    assert result["generations"] >= 1 and result["polished_from"] == "population"


@pytest.mark.parametrize("method", ["multistart", "de", "scan"])
def test_same_seed_same_result_whatever_order_units_finish_in(method: str) -> None:
    spec = sine_spec(method, seed=5, **({"points": 9} if method == "scan" else {}))
    a = drive(spec, shuffle=1, concurrency=4).result
    b = drive(spec, shuffle=2, concurrency=4).result
    c = drive(spec, shuffle=None).result
    assert a == b == c


def test_another_seed_another_search() -> None:
    a = drive(misra("de", seed=1, popsize=12)).result
    b = drive(misra("de", seed=2, popsize=12)).result
    assert a["history"] != b["history"]
    assert a["parameters"]["b1"]["value"] == pytest.approx(b["parameters"]["b1"]["value"])


@pytest.mark.parametrize("method", ["multistart", "de", "scan"])
def test_replaying_the_same_folds_gives_an_equal_state(method: str) -> None:
    spec = sine_spec(method, seed=4, **({"points": 7} if method == "scan" else {}))
    run = drive(spec)
    assert replay(run.spec, run.folds) == run.state
    for cut in (1, len(run.folds) // 3, len(run.folds) // 2, len(run.folds) - 1):
        once, twice = replay(run.spec, run.folds[:cut]), replay(run.spec, run.folds[:cut])
        assert once == twice
        assert pickle.loads(pickle.dumps(once)) == once  # snapshots carry kind state


@pytest.mark.parametrize("method", ["multistart", "de"])
def test_a_restart_mid_fit_ends_with_the_uninterrupted_result(method: str) -> None:
    """Fold a prefix of the calls (what the log held at a crash) into a fresh state and
    carry on: the same result as the run that never stopped."""
    spec = misra(method, seed=3, popsize=10, starts=6, per_unit=2)
    spec["options"] = {k: v for k, v in spec["options"].items()
                       if k in ({"seed", "popsize"} if method == "de"
                                else {"seed", "starts", "per_unit"})}  # fmt: skip
    whole = drive(spec)
    for cut in (len(whole.folds) // 4, len(whole.folds) // 2):
        resumed = drive(spec, resume_from=whole.folds[:cut], shuffle=9)
        assert resumed.result == whole.result


def test_scan_surface_and_polish_match_linear_least_squares() -> None:
    x = np.arange(10.0)
    y = 1.5 + 0.8 * x + np.array([0.1, -0.2, 0.05, 0.0, 0.15, -0.1, 0.02, -0.05, 0.1, -0.07])
    spec = {
        "model": "a + b*x",
        "data": {"x": x.tolist(), "y": y.tolist()},
        "parameters": {
            "a": {"value": 0, "min": 0, "max": 3},
            "b": {"value": 0, "min": 0, "max": 2},
        },
        "method": "scan",
        "options": {"points": {"a": 31, "b": 21}, "per_unit": 100},
    }
    result = drive(spec).result
    surface = np.array(result["surface"]["chisq"], dtype=float)
    axes = result["surface"]["axes"]
    assert surface.shape == (31, 21) and result["surface"]["names"] == ["a", "b"]
    i, j = 7, 13
    direct = np.sum((y - (axes["a"][i] + axes["b"][j] * x)) ** 2)
    assert surface[i, j] == pytest.approx(direct, rel=1e-12)
    assert result["grid_best"]["chisq"] == pytest.approx(surface.min())
    # the polished answer is the linear least-squares one, with its textbook errors
    design = np.column_stack([np.ones_like(x), x])
    coef, rss, *_ = np.linalg.lstsq(design, y, rcond=None)
    cov = np.linalg.inv(design.T @ design) * rss[0] / (x.size - 2)
    assert [result["parameters"][n]["value"] for n in "ab"] == pytest.approx(coef, rel=1e-10)
    stderr = [result["parameters"][n]["stderr"] for n in "ab"]
    assert stderr == pytest.approx(np.sqrt(np.diag(cov)), rel=1e-8)
    assert result["nfev"] >= 31 * 21
    assert len(result["history"]) == math.ceil(31 * 21 / 100)


def test_dy_weights_the_fit_and_leaves_the_covariance_unscaled() -> None:
    x = np.arange(8.0)
    dy = np.array([0.1, 0.2, 0.1, 0.3, 0.1, 0.2, 0.5, 0.1])
    y = 2.0 - 0.5 * x + dy * np.array([1, -1, 0.5, 0.2, -0.7, 1.1, -0.3, 0.4])
    spec = {
        "model": {"builtin": "line"},
        "data": {"x": x.tolist(), "y": y.tolist(), "dy": dy.tolist()},
        "parameters": {"a": 0.0, "b": 0.0},
        "options": {"starts": 1},
    }
    result = drive(spec).result
    design = np.column_stack([np.ones_like(x), x]) / dy[:, None]
    cov = np.linalg.inv(design.T @ design)
    coef = cov @ design.T @ (y / dy)
    assert [result["parameters"][n]["value"] for n in "ab"] == pytest.approx(coef, rel=1e-10)
    np.testing.assert_allclose(result["covariance"]["matrix"], cov, rtol=1e-8)
    assert result["redchi"] == pytest.approx(result["chisq"] / 6)
    scaled = drive({**spec, "options": {"starts": 1, "scale_covar": True}}).result
    assert scaled["covariance"]["matrix"][0][0] == pytest.approx(cov[0, 0] * result["redchi"])


def test_fixed_parameters_keep_their_value() -> None:
    spec = misra("multistart", starts=2)
    spec["parameters"]["b1"] = {"value": 240.0, "fixed": True}
    result = drive(spec).result
    assert result["parameters"]["b1"] == {"value": 240.0, "stderr": 0.0, "fixed": True}
    assert result["covariance"]["names"] == ["b2"] and result["dof"] == 14 - 1


def test_progress_reports_the_best_chisq_so_far() -> None:
    for spec in (misra("multistart", starts=6), misra("de", seed=1, popsize=10)):
        run = drive(spec)
        best = [p["best_chisq"] for p in run.progress if p["best_chisq"] is not None]
        assert best and all(b >= a for a, b in zip(best[1:], best, strict=False))
        assert best[-1] == pytest.approx(run.result["chisq"], rel=1e-9)


def test_a_model_that_is_never_finite_fails_the_job_with_a_reason() -> None:
    spec = {
        "model": "log(-b1*b1 - x) + b2",
        "data": {"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]},
        "parameters": {"b1": 1.0, "b2": 1.0},
    }
    for method, message in (("multistart", "no start point"), ("de", "not finite")):
        run = drive({**spec, "method": method, "options": {"popsize": 5} if method == "de" else {}})
        assert run.finished.error is not None and message in run.finished.error


def test_results_and_payloads_are_plain_json() -> None:
    import json

    run = drive(misra("de", popsize=8, generations=3))
    for _, payload, result in run.folds:
        json.dumps(payload, allow_nan=False)
        json.dumps(result, allow_nan=False)
    json.dumps(run.result, allow_nan=False)
    assert run.result["generations"] <= 3


def test_malformed_worker_results_are_named_not_absorbed() -> None:
    from park.kinds import KINDS

    fit = KINDS["fit"]
    local = {"task": "local", "starts": [[1.0], [2.0]]}
    grid = {"task": "grid", "start": 0, "stop": 3}
    evaluate = {"task": "evaluate", "vectors": [[1.0]]}
    assert fit.check_result(None, local, [1]) == "expected an object"
    assert "2 starts" in (fit.check_result(None, local, {"fits": [{"chisq": 1, "nfev": 1}]}) or "")
    assert fit.check_result(None, local, {"fits": [{"chisq": 1, "nfev": 1}] * 2}) is None
    assert "nfev" in (fit.check_result(None, local, {"fits": [{"chisq": 1}] * 2}) or "")
    assert "3 points" in (fit.check_result(None, grid, {"chisq": [1.0]}) or "")
    assert fit.check_result(None, grid, {"chisq": [1.0, None, 2]}) is None
    assert "number or null" in (fit.check_result(None, evaluate, {"chisq": ["x"]}) or "")
