"""The `map` kind and the worker's allow list."""

from __future__ import annotations

import pytest

from park.domain import UnitReport
from park.kinds import KINDS, SpecError
from park.worker.runner import AllowList, run_unit

MAP = KINDS["map"]


def test_inputs_are_cut_into_chunks_and_results_come_back_in_input_order() -> None:
    spec = MAP.parse_spec(
        {"function": "park.builtins:sleep", "inputs": [0, 1, 2, 3, 4], "chunk": 2}
    )
    state = MAP.start(spec)
    payloads = MAP.next_units(spec, state)
    assert [p["items"] for p in payloads] == [[0, 1], [2, 3], [4]]
    MAP.planned(state, payloads)
    assert MAP.next_units(spec, state) == []
    for payload in reversed(payloads):  # completion order does not matter
        assert MAP.outcome(spec, state) is None
        MAP.absorb(state, payload, [x * 10 for x in payload["items"]])
    finished = MAP.outcome(spec, state)
    assert finished is not None and finished.result == [0, 10, 20, 30, 40]


@pytest.mark.parametrize(("inputs", "chunk"), [(0, 1), (1, 1), (5, 2), (6, 2), (7, 3), (20_000, 1)])
def test_the_count_checked_at_submission_is_the_number_of_units_planned(
    inputs: int, chunk: int
) -> None:
    """A submission checks the size of the plan without building it; the plan built
    afterwards has exactly that many units, and nothing more once planned."""
    spec = MAP.parse_spec(
        {"function": "park.builtins:sleep", "inputs": [0] * inputs, "chunk": chunk}
    )
    state = MAP.start(spec)
    payloads = MAP.next_units(spec, state)
    assert MAP.units_to_plan(spec, state) == len(payloads)
    MAP.planned(state, payloads)
    assert MAP.units_to_plan(spec, state) == 0 == len(MAP.next_units(spec, state))


def test_an_empty_map_completes_with_an_empty_result() -> None:
    spec = MAP.parse_spec({"function": "park.builtins:sleep", "inputs": []})
    state = MAP.start(spec)
    assert MAP.next_units(spec, state) == []
    finished = MAP.outcome(spec, state)
    assert finished is not None and finished.result == []


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"inputs": [1]}, "spec.function"),
        ({"function": "nocolon", "inputs": [1]}, "spec.function"),
        ({"function": "m:f", "inputs": "abc"}, "spec.inputs"),
        ({"function": "m:f", "inputs": [1], "chunk": True}, "spec.chunk"),
    ],
)
def test_bad_specs_name_their_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as err:
        MAP.parse_spec(spec)
    assert err.value.field == field


def unit(function: str, items: list[object]) -> dict[str, object]:
    return {
        "id": "j/0",
        "kind": "map",
        "payload": {"function": function, "start": 0, "items": items},
    }


def test_builtins_are_always_allowed_and_sleep_returns_its_argument() -> None:
    report = run_unit(unit("park.builtins:sleep", [0, 0.01]), AllowList())
    assert report.ok is True
    assert report.result == [0, 0.01]


def test_burn_spins_the_cpu_and_reports_the_cpu_time() -> None:
    report = run_unit(unit("park.builtins:burn", [0.05]), AllowList())
    assert report.ok is True
    assert report.result == [0.05]
    assert report.cpu_seconds >= 0.05


def test_a_function_off_the_allow_list_fails_without_running() -> None:
    report = run_unit(unit("os:_exit", [1]), AllowList(("json:*",)))
    assert report.ok is False
    assert "os:_exit" in report.error and "PARK_ALLOWED_FUNCTIONS" in report.error


def test_patterns_allow_with_wildcards() -> None:
    allow = AllowList.from_env({"PARK_ALLOWED_FUNCTIONS": "json:*, math:sqrt"})
    assert allow.allows("json:dumps") and allow.allows("math:sqrt")
    assert not allow.allows("math:exp")
    report = run_unit(unit("math:sqrt", [4.0]), allow)
    assert report == UnitReport("j/0", True, [2.0], None, report.cpu_seconds, report.wall_seconds)
    assert report.wall_seconds >= 0.0


def test_an_exception_in_the_function_fails_the_unit_with_its_message() -> None:
    report = run_unit(unit("math:sqrt", [-1.0]), AllowList(("math:*",)))
    assert report.ok is False
    assert "ValueError: math domain error" in report.error
