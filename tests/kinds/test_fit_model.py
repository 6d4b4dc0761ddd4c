"""The expression compiler and the model's Jacobian."""

from __future__ import annotations

import numpy as np
import pytest

from park.kinds import SpecError
from park.kinds.fit.model import BUILTINS, Model, compile_expression


def evaluate(expr: str, **env: object) -> object:
    return compile_expression(expr, ["x", *env])({"x": np.linspace(0.1, 0.9, 5), **env})


def test_expressions_follow_numpy_semantics() -> None:
    x = np.linspace(0.1, 0.9, 5)
    got = evaluate("a*exp(-b*x) + sqrt(x)**3 - log10(x)/pi + arctan(x)*e + abs(-x)", a=2.0, b=3.0)
    want = 2 * np.exp(-3 * x) + np.sqrt(x) ** 3 - np.log10(x) / np.pi + np.arctan(x) * np.e + x
    np.testing.assert_allclose(got, want, rtol=1e-15)  # type: ignore[arg-type]
    np.testing.assert_allclose(evaluate("power(x, 2) + asin(x)"), x**2 + np.arcsin(x))  # type: ignore[arg-type]


def test_integer_constants_cannot_blow_up_on_a_worker() -> None:
    """Constants are floats, so 10**10**10 overflows to inf instead of computing a huge
    integer for minutes."""
    with np.errstate(over="ignore"):
        assert np.all(np.isinf(evaluate("10**10**10 + x")))  # type: ignore[arg-type]


def test_names_used_are_reported() -> None:
    expr = compile_expression("a*x + pi", ["x", "a", "b"])
    assert expr.names == {"a", "x"}


@pytest.mark.parametrize("bad", ["exp(x", "", "   ", 3, None, "x" * 20_000])
def test_malformed_expressions(bad: object) -> None:
    with pytest.raises(SpecError) as err:
        compile_expression(bad, ["x"])
    assert err.value.field == "spec.model"


@pytest.mark.parametrize(
    ("expr", "params"),
    [
        ("b1 * (b2+x)**(-1/b3)", [-2500.0, 46.0, 0.93]),
        ("(b1/b2) * exp(-0.5*((x-b3)/b2)**2)", [1.5, 4.0, 451.0]),
        ("abs(b1 - x) * b2 + sin(b2*x)", [0.52, 2.0]),
        ("erf(b1*x) + arcsinh(b2*x)", [0.7, 1.3]),
    ],
)
def test_complex_step_jacobian_matches_central_differences(expr: str, params: list[float]) -> None:
    names = [f"b{i + 1}" for i in range(len(params))]
    x = np.linspace(0.05, 0.95, 11) if "b3" not in expr else np.linspace(400, 500, 11)
    model = Model({"expr": expr}, names, names, {}, x)
    exact = model.jacobian(params)
    numeric = model._central_differences(np.asarray(params))
    np.testing.assert_allclose(exact, numeric, rtol=1e-6, atol=1e-9)


def test_fixed_parameters_are_held() -> None:
    x = np.arange(5.0)
    model = Model({"expr": "a + b*x"}, ["a", "b"], ["b"], {"a": 10.0}, x)
    np.testing.assert_allclose(model([2.0]), 10 + 2 * x)
    np.testing.assert_allclose(model.jacobian([2.0]), x[:, None])


def test_every_builtin_compiles_with_its_parameters() -> None:
    for name, (expr, params) in BUILTINS.items():
        compiled = compile_expression(expr, ["x", *params], f"builtin {name}")
        assert compiled.names == {"x", *params}
