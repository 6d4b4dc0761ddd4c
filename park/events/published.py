"""The event schema as a published contract: one JSON Schema (draft 2020-12) document,
generated from the pydantic models, for consumers that are not park (docs/events.md).

The root validates one event, as a Kafka message value carries it; `$defs/Record` is an
entry of `GET /v1/events` and a `data:` of `GET /v1/events/stream` (`{offset, event}`);
`$defs/Envelope` is what every event of every version has, for a consumer that skips types
it does not know. `docs/events.schema.json` is this document (`park schema events`); a
test keeps the two equal.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from park.events.schema import EVENT_ADAPTER, Event, EventBase

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:park:schema:events"

# Every document park ever wrote carries these, whatever their defaults in the models.
ALWAYS_WRITTEN = ("type", "v", "at")


def event_models() -> list[type[EventBase]]:
    """The event classes of the union, in its order."""
    union = get_args(Event)[0]
    return list(get_args(union))


def event_types() -> list[str]:
    """Every `type` a log may hold."""
    return [model.model_fields["type"].default for model in event_models()]


def _envelope() -> dict[str, Any]:
    return {
        "title": "Envelope",
        "description": "What every park event of every version carries; other fields "
        "depend on `type` (and `v`). Skip types you do not know.",
        "type": "object",
        "properties": {
            "type": {"type": "string", "description": "the event type, e.g. unit.completed"},
            "v": {"type": "integer", "minimum": 1, "description": "its schema version"},
            "at": {"type": "number", "description": "writer's clock, seconds since the epoch"},
        },
        "required": list(ALWAYS_WRITTEN),
    }


def _record() -> dict[str, Any]:
    return {
        "title": "Record",
        "description": "An event with its position on the log: an entry of GET /v1/events "
        "and the data of each `event` of GET /v1/events/stream. On Kafka the offset is the "
        "message's offset + 1.",
        "type": "object",
        "properties": {
            "offset": {"type": "integer", "minimum": 1},
            "event": {"$ref": "#"},
        },
        "required": ["offset", "event"],
        "additionalProperties": False,
    }


def events_json_schema() -> dict[str, Any]:
    """The published schema: the union of every event type at the root."""
    generated = EVENT_ADAPTER.json_schema(mode="validation")
    defs: dict[str, Any] = generated.pop("$defs")
    for model in event_models():
        definition = defs[model.__name__]
        required = definition.setdefault("required", [])
        definition["required"] = [
            *ALWAYS_WRITTEN,
            *(f for f in required if f not in ALWAYS_WRITTEN),
        ]
    defs["Envelope"] = _envelope()
    defs["Record"] = _record()
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "park event",
        "description": "One event of park's log (see docs/events.md). `type` selects the "
        "definition; `v` is its schema version; `at` is the writer's clock in seconds since "
        "the epoch. Money is in credits, work in core-seconds, times in seconds.",
        **generated,
        "$defs": dict(sorted(defs.items())),
    }


def events_json_schema_text() -> str:
    """The schema as committed at docs/events.schema.json."""
    return json.dumps(events_json_schema(), indent=2, ensure_ascii=False) + "\n"
