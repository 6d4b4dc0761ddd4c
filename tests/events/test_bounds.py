"""The edge's bounds sit inside what the log's readers decode (park.events.bounds)."""

from __future__ import annotations

from typing import Any

import pytest

from park.events.bounds import ENVELOPE_DEPTH, MAX_DEPTH, READER_DEPTH, OutOfBounds, check_json
from park.events.schema import JobCompleted, event_from_json, event_to_json


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def test_the_reader_decodes_up_to_the_depth_bounds_assumes_and_no_further() -> None:
    """If pydantic's JSON parser ever reads less deep, this fails before a log does."""
    # the event is one level, `result` its value: READER_DEPTH levels in all
    fits = JobCompleted(at=1.0, job_id="j", result=nested(READER_DEPTH - 2))
    assert event_from_json(event_to_json(fits)) == fits
    too_deep = JobCompleted(at=1.0, job_id="j", result=nested(READER_DEPTH + 1))
    with pytest.raises(ValueError, match="recursion limit"):
        event_from_json(event_to_json(too_deep))
    assert MAX_DEPTH + ENVELOPE_DEPTH < READER_DEPTH


@pytest.mark.parametrize(
    ("value", "field", "why"),
    [
        ({"spec": nested(MAX_DEPTH)}, "spec" + ".0" * (MAX_DEPTH - 1), "nested deeper"),
        ({"tags": {"a": "x\ud800"}}, "tags.a", "lone surrogate"),
        ({"spec": {"\udc00": 1}}, "spec", "lone surrogate"),
        ({"spec": [1.0, float("nan")]}, "spec.1", "NaN"),
        ({"spec": "x" * 1_000_001}, "spec", "1,000,001 characters"),
    ],
)
def test_out_of_bounds_values_are_refused_naming_the_field(
    value: Any, field: str, why: str
) -> None:
    with pytest.raises(OutOfBounds, match=why) as refused:
        check_json(value, "")
    assert refused.value.field == field
    assert refused.value.message.startswith(f"{field}: ")


def test_a_body_at_the_limits_is_accepted() -> None:
    check_json({"spec": nested(MAX_DEPTH - 2), "s": "é" * 1_000_000, "n": 10**4000}, "")
