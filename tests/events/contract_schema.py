"""Validators for the committed event schema (docs/events.schema.json), with the
`jsonschema` library, as a consumer outside park would use it."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "events.schema.json"


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())  # type: ignore[no-any-return]


@functools.cache
def validator() -> jsonschema.Draft202012Validator:
    """One event (a Kafka message value)."""
    return jsonschema.Draft202012Validator(schema())


@functools.cache
def record_validator() -> jsonschema.Draft202012Validator:
    """One `{offset, event}` record (GET /v1/events, GET /v1/events/stream)."""
    registry: Registry[Any] = Registry().with_resource(
        schema()["$id"], Resource.from_contents(schema())
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"{schema()['$id']}#/$defs/Record"}, registry=registry
    )


def check_event(document: dict[str, Any]) -> None:
    """Validate against the type's own definition first, for a readable error."""
    name = schema()["discriminator"]["mapping"].get(document.get("type"))
    assert name is not None, f"event of unknown type: {document}"
    registry: Registry[Any] = Registry().with_resource(
        schema()["$id"], Resource.from_contents(schema())
    )
    jsonschema.Draft202012Validator(
        {"$ref": f"{schema()['$id']}{name}"}, registry=registry
    ).validate(document)
    validator().validate(document)
