"""Events (and planned units) the core builds, once per unit, from its own values.

Validating an event costs ~3 µs (pydantic, from a dict), and a no-op unit makes two on
the server's hot path, its grant and its completion, and a planned unit when its job is
planned (benchmarks/service_cost.py). Every value in them is the core's own: ids and
prices from the state, times it computed, a result the API already validated as a
`UnitReport`, a payload its job's kind planned. `trusted` makes the frozen model from
such values directly (~1.4 µs), as validation would have made it; the caller gives every
field in the model's order (so the JSON is the same, field for field), floats as floats
and enums as members. tests/events/test_trusted.py checks each caller's models against
the same values validated. What comes from a request or from the log is validated as
before.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__
_FIELDS: dict[type[BaseModel], int] = {}  # (`cls.model_fields` is a slow property)


def trusted(cls: type[M], fields: dict[str, Any]) -> M:
    """`cls.model_validate(fields)` for fields already valid and complete, in order."""
    count = _FIELDS.get(cls)
    if count is None:
        count = _FIELDS[cls] = len(cls.model_fields)
    if len(fields) != count:  # a field added to the model, not here
        raise TypeError(f"{cls.__name__}: fields {sorted(set(cls.model_fields) ^ set(fields))}")
    model = cls.__new__(cls)
    _set(model, "__dict__", fields)
    _set(model, "__pydantic_fields_set__", set(fields))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model
