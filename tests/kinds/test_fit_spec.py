"""Submission-time checks of `fit` specs: hostile expressions, bad fields, data files."""

from __future__ import annotations

from typing import Any

import pytest

from park.kinds import KINDS, SpecError

FIT = KINDS["fit"]


def spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "b1*(1-exp(-b2*x))",
        "data": {"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 1.8, 2.5, 3.0]},
        "parameters": {"b1": {"value": 5.0}, "b2": {"value": 0.3}},
    }
    base.update(changes)
    return base


def field_of(bad: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as err:
        FIT.parse_spec(bad)
    return err.value.field


HOSTILE = [
    "__import__('os')",
    "__import__('os').system('true')",
    "x.__class__",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "open('f')",
    "eval('1')",
    "exec('1')",
    "getattr(x, 'real')",
    "x.real",
    "b1[0]",
    "lambda: 1",
    "[i for i in x]",
    "b1 if x else b2",
    "x < 1",
    "b1 and b2",
    "'a' + b1",
    "(b1, b2)",
    "np.exp(x)",
    "exp(x, out=x)",
    "exp(*x)",
    "globals()",
    "_secret",
    "b1 @ b2",
    "b1 // b2",
    "b1 % b2",
    "b1 << 2",
    "~b1",
    "not b1",
    "exp",
    "(b1 := 3)",
    "f'{b1}'",
    "b1; import os",
    "1e400 * b1",
    "True * b1",
    "-" * 500 + "b1*x + b2",
]


@pytest.mark.parametrize("expression", HOSTILE)
def test_hostile_expressions_are_rejected_naming_the_model(expression: str) -> None:
    assert field_of(spec(model=expression)) == "spec.model"


def test_hostile_builtin_and_function_models_are_rejected() -> None:
    assert field_of(spec(model={"builtin": "__import__"})) == "spec.model.builtin"
    assert field_of(spec(model={"function": "os.system"})) == "spec.model.function"
    assert field_of(spec(model={"function": "os:system; rm"})) == "spec.model.function"
    assert field_of(spec(model={"eval": "1"})) == "spec.model.eval"


def test_the_api_answers_422_for_a_hostile_model() -> None:
    from park.commands import submit_job
    from park.domain import Priority
    from park.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as err:
        submit_job(
            job_id="j", user="u", kind="fit", spec=spec(model="__import__('os')"),
            priority=Priority.FREE, tags={}, notify=None, now=0.0,
        )  # fmt: skip
    assert "spec.model" in str(err.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"parameters": {"b1": {"value": 1.0}}}, "spec.model"),  # b2 unknown to the model
        ({"parameters": {"b1": 1.0, "b2": 1.0, "b3": 1.0}}, "spec.parameters.b3"),  # unused
        ({"parameters": {"b1": {"value": 1, "min": 2}, "b2": 1}}, "spec.parameters.b1.value"),
        (
            {"parameters": {"b1": {"value": 1, "min": 0, "max": 0}, "b2": 1}},
            "spec.parameters.b1.max",
        ),
        ({"parameters": {"b1": {"value": 1, "min": "a"}, "b2": 1}}, "spec.parameters.b1.min"),
        ({"parameters": {"b1": {"value": float("nan")}, "b2": 1}}, "spec.parameters.b1.value"),
        ({"parameters": {"b1": {}, "b2": 1}}, "spec.parameters.b1.value"),
        ({"parameters": {"b1": {"value": 1, "fixed": "yes"}, "b2": 1}}, "spec.parameters.b1.fixed"),
        ({"parameters": {"b1": {"value": 1, "step": 1}, "b2": 1}}, "spec.parameters.b1.step"),
        ({"parameters": {"x": 1.0, "b2": 1.0}}, "spec.parameters.x"),
        ({"parameters": {"exp": 1.0, "b2": 1.0}}, "spec.parameters.exp"),
        (
            {"parameters": {"b1": {"value": 1, "fixed": True}, "b2": {"value": 1, "fixed": True}}},
            "spec.parameters",
        ),
        ({"data": {"x": [1, 2, 3], "y": [1, 2]}}, "spec.data.y"),
        ({"data": {"x": [1, 2], "y": [1, 2]}}, "spec.data"),  # no degree of freedom left
        ({"data": {"x": [1, 2, 3, "a"], "y": [1, 2, 3, 4]}}, "spec.data.x[3]"),
        ({"data": {"x": [1, 2, 3, 4], "y": [1, 2, 3, 4], "dy": [1, 0, 1, 1]}}, "spec.data.dy"),
        ({"data": {"y": [1, 2, 3]}}, "spec.data.x"),
        ({"data": {"text": "1 2\n3 x\n"}}, "spec.data.text"),
        ({"method": "simplex"}, "spec.method"),
        ({"options": {"starts": 0}}, "spec.options.starts"),
        ({"options": {"popsize": 10}}, "spec.options.popsize"),  # a de option
        ({"method": "de", "options": {"crossover": 2}}, "spec.options.crossover"),
        ({"method": "de", "options": {"mutation": [1.5, 0.5]}}, "spec.options.mutation"),
        ({"method": "scan"}, "spec.parameters.b1.min"),  # a scan needs bounds
        (
            {"options": {"local": "lm"}, "parameters": {"b1": {"value": 1, "min": 0}, "b2": 1}},
            "spec.options.local",
        ),
        ({"colour": "red"}, "spec.colour"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field: str) -> None:
    assert field_of(spec(**changes)) == field


def test_builtin_models_need_their_parameters() -> None:
    ok = FIT.parse_spec(spec(model={"builtin": "line"}, parameters={"a": 0.0, "b": 1.0}))
    assert ok["model"] == {"expr": "a + b*x", "builtin": "line"}
    assert FIT.parse_spec(ok) == ok
    assert field_of(spec(model={"builtin": "line"}, parameters={"a": 0.0})) == "spec.parameters"
    assert field_of(spec(model={"builtin": "nope"})) == "spec.model.builtin"


def test_normalised_spec_fills_defaults() -> None:
    out = FIT.parse_spec(spec())
    assert out["method"] == "multistart"
    assert out["parameters"]["b1"] == {"value": 5.0, "min": None, "max": None, "fixed": False}
    assert out["options"]["seed"] == 0 and out["options"]["starts"] >= 1
    assert out["data"]["dy"] is None
    assert FIT.parse_spec(out) == out  # canonical: normalising again changes nothing


def test_data_from_whitespace_text_with_comments() -> None:
    text = "# a comment\n\n1 10 0.5\n2 20 0.5   # trailing comment\n3 30 0.5\n4 40 1\n"
    out = FIT.parse_spec(spec(data={"text": text}))
    assert out["data"] == {
        "x": [1.0, 2.0, 3.0, 4.0], "y": [10.0, 20.0, 30.0, 40.0], "dy": [0.5, 0.5, 0.5, 1.0]
    }  # fmt: skip


def test_data_from_csv_with_header_in_any_column_order() -> None:
    text = "y,x,dy\n10,1,1\n20,2,1\n30,3,2\n40,4,2\n"
    out = FIT.parse_spec(spec(data=text))
    assert out["data"]["x"] == [1.0, 2.0, 3.0, 4.0]
    assert out["data"]["y"] == [10.0, 20.0, 30.0, 40.0]
    assert out["data"]["dy"] == [1.0, 1.0, 2.0, 2.0]


def test_data_columns_by_name_or_index() -> None:
    text = "10 1 7\n20 2 7\n30 3 7\n40 4 7\n"
    by_name = FIT.parse_spec(spec(data={"text": text, "columns": ["y", "x", None]}))
    by_index = FIT.parse_spec(spec(data={"text": text, "columns": {"x": 1, "y": 0}}))
    assert by_name["data"] == by_index["data"]
    assert by_name["data"]["x"] == [1.0, 2.0, 3.0, 4.0] and by_name["data"]["dy"] is None
    assert field_of(spec(data={"text": text, "columns": {"z": 1}})) == "spec.data.columns.z"


def test_function_models_go_through_the_allow_list() -> None:
    from park.worker.runner import AllowList, run_unit

    fit = FIT.parse_spec(
        spec(
            model={"function": "tests.kinds.models:exponential_decay"},
            parameters={"amplitude": 1.0, "rate": 0.1},
        )
    )
    state = FIT.start(fit)
    payloads = FIT.next_units(fit, state)
    assert payloads
    merged = {**FIT.unit_context(fit), **payloads[0]}  # what a worker runs
    assert FIT.functions_of(merged) == ["tests.kinds.models:exponential_decay"]
    unit = {"id": "u1", "kind": "fit", "payload": merged}
    refused = run_unit(unit, AllowList())
    assert not refused.ok and "not allowed" in (refused.error or "")
    allowed = run_unit(unit, AllowList(("tests.kinds.models:*",)))
    assert allowed.ok, allowed.error
    # Expression models call no function: nothing for the allow list to check.
    plain = FIT.parse_spec(spec())
    assert (
        FIT.functions_of({**FIT.unit_context(plain), **FIT.next_units(plain, FIT.start(plain))[0]})
        == []
    )
