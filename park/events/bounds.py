"""The bounds of what park accepts, chosen inside what every log reader decodes.

Anything a client or worker sends ends up in an event, and every event must come back out
of the log: through the SQLite and Kafka adapters (`event_from_json`, pydantic's JSON
parser, which refuses nesting deeper than `READER_DEPTH`), `park replay`, the HTTP
answers that show it, and a restart after a crash. A value the readers cannot decode
would be accepted once and then break every read, replay and start-up after it. So the
edge refuses, naming the field, any value nested deeper than `MAX_DEPTH`, a string longer
than `MAX_STRING` or holding a lone surrogate (no UTF-8 spelling: the log stores UTF-8),
an array or object with more than `MAX_ITEMS` entries, and NaN or infinity (no JSON
spelling). `ENVELOPE_DEPTH` is how deep the log nests a value the edge took (a unit's
result inside a job's result inside its event); tests/events/test_bounds.py checks the
readers against these numbers.
"""

from __future__ import annotations

import math
from typing import Any

from park.errors import InvalidRequest

MAX_DEPTH = 32
MAX_STRING = 1_000_000
MAX_ITEMS = 1_000_000
READER_DEPTH = 200  # pydantic-core's JSON parser: "recursion limit exceeded" beyond this
ENVELOPE_DEPTH = 8  # event > job result > outputs > a unit's result (kept well above that)
assert MAX_DEPTH + ENVELOPE_DEPTH < READER_DEPTH


class OutOfBounds(InvalidRequest):
    """A value park would not be able to read back. Not a ValueError: raised inside a
    pydantic validator it passes through with its own `field`, the full dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field or 'body'}: {message}", field=field or "body")


def _string_problem(text: str) -> str | None:
    if len(text) > MAX_STRING:
        return f"a string of {len(text):,} characters (the limit is {MAX_STRING:,})"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            return f"a lone surrogate ({text[err.start]!r}) is not valid Unicode"
    return None


def _join(path: str, key: str | int) -> str:
    """`spec.inputs.3`: the dotted path the API names fields by (as pydantic's)."""
    if isinstance(key, int):
        key = str(key)
    elif len(key) > 40:
        key = key[:40] + "..."
    return f"{path}.{key}" if path else key


def check_json(value: Any, field: str) -> None:
    """Raise OutOfBounds naming the first part of `value` (a decoded JSON value at
    `field`) that park could not store and read back. Iterative: depth is what it checks;
    scalars are checked where they sit, so only containers are stacked. Every request
    body passes here (a report of 256 units is ~1,800 values), so the common case is
    checked inline and a field's dotted path is spelled only for an error: a container
    on the stack carries its path as (parent's path, key)."""
    _check_scalar(value, field)
    stack: list[tuple[Any, _Path, int]] = []
    if isinstance(value, dict | list):
        stack.append((value, (None, field), 1))
    while stack:
        item, at, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise OutOfBounds(_spelled(at), f"nested deeper than {MAX_DEPTH} levels")
        if len(item) > MAX_ITEMS:
            raise OutOfBounds(_spelled(at), f"{len(item):,} entries (the limit is {MAX_ITEMS:,})")
        children: Any
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    raise OutOfBounds(_spelled(at), "object keys must be strings")
                if len(key) > MAX_STRING or not key.isascii():
                    problem = _string_problem(key)
                    if problem is not None:
                        raise OutOfBounds(_spelled(at), f"a key holds {problem}")
            children = item.items()
        else:
            children = enumerate(item)
        for key, child in children:
            kind = type(child)
            if kind is int or kind is bool or child is None:
                continue
            if kind is dict or kind is list:
                stack.append((child, (at, key), depth + 1))
            elif kind is str:
                if len(child) > MAX_STRING or not child.isascii():
                    _check_scalar(child, _spelled(at), key)
            elif kind is not float or not math.isfinite(child):
                _check_scalar(child, _spelled(at), key)


# A value's place: (its container's place, its key), or (None, the field) at the top.
_Path = tuple[Any, str | int]


def _spelled(at: _Path) -> str:
    """The dotted path of a place (`spec.inputs.3`)."""
    keys: list[str | int] = []
    while at[0] is not None:
        at, key = at
        keys.append(key)
    path = str(at[1])
    for key in reversed(keys):
        path = _join(path, key)
    return path


def _check_scalar(value: Any, path: str, key: str | int | None = None) -> None:
    if isinstance(value, str):
        problem = _string_problem(value)
        if problem is not None:
            raise OutOfBounds(path if key is None else _join(path, key), problem)
    elif isinstance(value, float) and not math.isfinite(value):
        raise OutOfBounds(
            path if key is None else _join(path, key),
            "NaN and infinity cannot be sent as JSON numbers",
        )
