"""Upcasting on read: events written by an older park, brought to today's schema.

The log is never rewritten. When a change to an event type cannot be read as the old
documents stand (a field renamed, removed, retyped or given another unit; see
docs/events.md, "Evolution"), the type's `v` goes up and an upcaster is registered here
for the old `(type, v)`: a pure function from the old JSON object to the next version's.
Every reader decodes through `park.events.schema.event_from_json`, which applies the chain
(v1 -> v2 -> v3 ...), so the SQLite, Kafka and in-memory logs, the API and replay only
ever see current events. No upcaster is needed yet: every type is at version 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Document = dict[str, Any]
Upcaster = Callable[[Document], Document]

# (type, version written) -> the step to the next version.
UPCASTERS: dict[tuple[Any, Any], Upcaster] = {}


def upcaster(event_type: str, version: int) -> Callable[[Upcaster], Upcaster]:
    """Register the step from `version` of `event_type` to the next version."""

    def register(step: Upcaster) -> Upcaster:
        if (event_type, version) in UPCASTERS:
            raise ValueError(f"two upcasters for {event_type} v{version}")
        UPCASTERS[(event_type, version)] = step
        return step

    return register


def is_old(event_type: object, version: object) -> bool:
    """Whether a document of this type and version has an upcaster to run."""
    return (event_type, version) in UPCASTERS


def upcast(document: Document) -> Document:
    """The document at its type's current version (itself when it already is)."""
    while (step := UPCASTERS.get((document.get("type"), document.get("v", 1)))) is not None:
        before = (document.get("type"), document.get("v", 1))
        document = step(dict(document))
        after = (document.get("type"), document.get("v", 1))
        if after[0] == before[0] and not (isinstance(after[1], int) and after[1] > before[1]):
            raise ValueError(f"the upcaster of {before[0]} v{before[1]} did not raise `v`")
    return document
