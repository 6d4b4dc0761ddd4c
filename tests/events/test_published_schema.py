"""The published event contract stays true to the code: docs/events.schema.json is what
`park schema events` prints, it is a valid draft 2020-12 schema that accepts park's own
events and refuses broken ones, and docs/events.md documents every type and field."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from park.domain import Priority
from park.events.published import event_models, event_types, events_json_schema
from park.events.schema import JobSubmitted, UnitCompleted, WorkRequested, event_to_json
from park.events.upcasting import upcast
from tests.events.contract_schema import check_event, record_validator, validator

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "events.schema.json"
DOCS = ROOT / "docs" / "events.md"
REGENERATE = "park schema events > docs/events.schema.json"


def test_committed_schema_is_what_the_command_prints() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "park", "schema", "events"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert json.loads(printed) == events_json_schema()
    assert SCHEMA_FILE.read_text() == printed, (
        f"docs/events.schema.json is stale: the event models changed. Run `{REGENERATE}` "
        "and document the change in docs/events.md"
    )


def test_schema_is_draft_2020_12_and_names_every_type() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["discriminator"]["mapping"]) == set(event_types())


def test_schema_accepts_written_events_and_refuses_broken_ones() -> None:
    submitted = JobSubmitted(at=1.5, job_id="j1", user="ann", kind="map", spec={"inputs": [1]},
                             priority=Priority.NORMAL)  # fmt: skip
    done = UnitCompleted(at=2.0, unit_id="j1/0", job_id="j1", worker_id="w1", result=[1],
                         cpu_seconds=0.5, charged=0.5)  # fmt: skip
    ask = WorkRequested(at=3.0, worker_id="w1", max_units=2)  # Kafka-only fields left out
    for event in (submitted, done, ask):
        document = json.loads(event_to_json(event))
        validator().validate(document)
        record_validator().validate({"offset": 7, "event": document})

    document = json.loads(event_to_json(done))
    broken = [
        {k: v for k, v in document.items() if k != "charged"},  # a required field missing
        {**document, "cpu_seconds": "0.5"},  # wrong type
        {**document, "extra": 1},  # a field the contract does not have
        {**document, "type": "unit.done"},  # no such type
        {k: v for k, v in document.items() if k != "v"},  # no version
    ]
    for bad in broken:
        assert not validator().is_valid(bad), bad
    assert not record_validator().is_valid({"offset": 0, "event": document})


def _sections() -> dict[str, str]:
    """docs/events.md: each `### \\`type\\`` heading with the text under it."""
    text = DOCS.read_text()
    parts = re.split(r"^### `([a-z_.]+)`\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


@pytest.mark.parametrize("model", event_models(), ids=lambda m: m.model_fields["type"].default)
def test_every_event_type_and_field_is_documented(model: type) -> None:
    event_type = model.model_fields["type"].default  # type: ignore[attr-defined]
    sections = _sections()
    assert event_type in sections, (
        f"docs/events.md has no section for event type {event_type!r}: add a "
        f"'### `{event_type}`' section (when it is written, and a table of its fields with "
        "units), and regenerate the schema: " + REGENERATE
    )
    fields = set(model.model_fields) - {"type", "v", "at"}  # type: ignore[attr-defined]
    missing = sorted(f for f in fields if f"`{f}`" not in sections[event_type])
    assert not missing, f"docs/events.md, section {event_type!r}: document the fields {missing}"


def test_docs_name_no_type_the_code_does_not_have() -> None:
    assert set(_sections()) <= set(event_types())


@pytest.mark.parametrize("recorded", sorted((ROOT / "tests/data/logs").glob("*.sqlite3")),
                         ids=lambda p: p.name)  # fmt: skip
def test_a_log_recorded_by_an_older_park_meets_the_contract(recorded: Path) -> None:
    """Every event of a kept log, upcast as park reads it, is a valid document of today's
    schema; and the log holds the types it is kept for."""
    with sqlite3.connect(f"file:{recorded}?mode=ro", uri=True) as db:
        bodies = [body for (body,) in db.execute("SELECT body FROM events ORDER BY offset")]
    documents = [upcast(json.loads(body)) for body in bodies]
    for document in documents:
        check_event(document)
    assert {"job.submitted", "unit.granted", "unit.completed", "job.completed"} <= {
        d["type"] for d in documents
    }
