"""Validators for the committed event schema (docs/events.schema.json), with the
`jsonschema` library, as a consumer outside park would use it."""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import ValidationError
from referencing import Registry, Resource

from park.events.schema import event_from_json
from park.events.upcasting import upcast

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "events.schema.json"


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())  # type: ignore[no-any-return]


@functools.cache
def _registry() -> Registry[Any]:
    return Registry().with_resource(schema()["$id"], Resource.from_contents(schema()))


@functools.cache
def _validator_of(pointer: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"$ref": f"{schema()['$id']}{pointer}"}, registry=_registry()
    )


def validator() -> jsonschema.Draft202012Validator:
    """One event (a Kafka message value): the whole union at the root."""
    return _validator_of("#")


def record_validator() -> jsonschema.Draft202012Validator:
    """One `{offset, event}` record (GET /v1/events, GET /v1/events/stream)."""
    return _validator_of("#/$defs/Record")


def check_event(document: dict[str, Any]) -> None:
    """Validate one event against its type's definition (what the root's `oneOf` picks
    by `type`), with that definition's readable errors."""
    pointer = schema()["discriminator"]["mapping"].get(document.get("type"))
    assert pointer is not None, f"an event of a type the schema does not have: {document}"
    _validator_of(pointer).validate(document)


def check_record(record: dict[str, Any]) -> None:
    """Validate one `{offset, event}` record: its shape, then its event."""
    assert set(record) == {"offset", "event"}, record
    assert isinstance(record["offset"], int) and record["offset"] >= 1, record
    check_event(record["event"])


def check_stored_logs(directory: Path, per_shape: int = 3) -> set[str]:
    """Validate what the SQLite event logs under `directory` hold: of each shape of
    document (type and field names), the first few that park itself reads, upcast as park
    reads them. Documents park cannot read (a test's deliberate junk, an old version whose
    test-only upcaster is gone) are not park's to vouch for. Returns the types checked."""
    checked: set[str] = set()
    for path in sorted(directory.rglob("events.sqlite3")):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                bodies = [body for (body,) in db.execute("SELECT body FROM events")]
        except sqlite3.Error:
            continue  # not (or no longer) a log
        shapes: Counter[tuple[Any, ...]] = Counter()
        for body in bodies:
            try:
                document = json.loads(body)
                shape = (document.get("type"), *sorted(document))
            except (ValueError, AttributeError):
                continue
            if shapes[shape] >= per_shape:
                continue
            try:
                event_from_json(body)
            except (ValidationError, ValueError):
                continue
            shapes[shape] += 1
            document = upcast(document)
            try:
                check_event(document)
            except (jsonschema.ValidationError, AssertionError) as err:
                raise AssertionError(
                    f"{path}: park wrote a document the published schema refuses. If the "
                    "event models changed: `park schema events > docs/events.schema.json` "
                    f"and document the change in docs/events.md.\n{err}"
                ) from None
            checked.add(document["type"])
    return checked
