"""What reading an event costs: park's decoder before and after upcasting on read, the slow
path an old version takes, and a consumer's check against the published JSON Schema.

The events are the kept log tests/data/logs/main-2026-11-27.sqlite3 (a real run: map and
fit jobs, grants, completions...), repeated up to `--events`. Each way decodes them all;
best of `--repeat`, in events per second of this process's CPU time (not wall time: on a
machine shared with other jobs, the wall clock mostly measures the others):

- `event_from_json before`: the decoder every log used before issue 17, pydantic's
  `validate_json` (the floor);
- `event_from_json, current events`: today's read path (a current event takes the direct
  path: one dictionary lookup more);
- `event_from_json, old unit.completed`: every `unit.completed` stored in a made-up older
  version, upcast on read (json.loads, the step, validate_python);
- `jsonschema, type's definition`: a consumer validating each document with the
  `jsonschema` library against docs/events.schema.json (the definition its `type` picks);
- `jsonschema, whole union`: the same against the schema's root (`oneOf` all types).

    python benchmarks/event_decode.py                    # ~20 s
    python benchmarks/event_decode.py --events 100000 --repeat 9
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from park.events.schema import EVENT_ADAPTER, event_from_json  # noqa: E402
from park.events.upcasting import UPCASTERS  # noqa: E402
from tests.events.contract_schema import check_event, validator  # noqa: E402

LOG = ROOT / "tests" / "data" / "logs" / "main-2026-11-27.sqlite3"


def bodies(count: int) -> list[str]:
    with sqlite3.connect(f"file:{LOG}?mode=ro", uri=True) as db:
        kept = [body for (body,) in db.execute("SELECT body FROM events ORDER BY offset")]
    return (kept * (count // len(kept) + 1))[:count]


def as_old(body: str) -> str:
    """A `unit.completed` as a made-up v0 wrote it: CPU in milliseconds, `credits`."""
    document = json.loads(body)
    if document["type"] != "unit.completed":
        return body
    document["v"] = 0
    document["cpu_ms"] = document.pop("cpu_seconds") * 1000
    document["credits"] = document.pop("charged")
    return json.dumps(document)


def completion_v0_to_v1(document: dict[str, Any]) -> dict[str, Any]:
    document["cpu_seconds"] = document.pop("cpu_ms") / 1000
    document["charged"] = document.pop("credits")
    document["v"] = 1
    return document


def event_from_json_before(data: str) -> object:
    """The decoder of every log before upcasting on read (issue 17)."""
    return EVENT_ADAPTER.validate_json(data)


def best_rates(
    ways: list[tuple[str, Callable[[Any], object], list[Any]]], repeat: int
) -> list[tuple[str, float]]:
    """Events per second of each way, best of `repeat` rounds; the ways take turns within a
    round, so a machine that gets busier part-way slows them alike."""
    best = {name: float("inf") for name, _, _ in ways}
    for _ in range(repeat):
        for name, decode, items in ways:
            start = time.process_time()
            for item in items:
                decode(item)
            best[name] = min(best[name], time.process_time() - start)
    return [(name, len(items) / best[name]) for name, _, items in ways]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--schema-events", type=int, default=500,
                        help="events for the (slower) jsonschema rows")  # fmt: skip
    args = parser.parse_args()
    current = bodies(args.events)
    old = [as_old(b) for b in current]
    documents = [json.loads(b) for b in current[: args.schema_events]]
    old_share = sum(b != o for b, o in zip(current, old, strict=True)) / len(current)

    first_completion = next(i for i, b in enumerate(current) if '"unit.completed"' in b)
    UPCASTERS[("unit.completed", 0)] = completion_v0_to_v1
    try:
        assert event_from_json(old[first_completion]).v == 1
        rows = best_rates(
            [
                ("event_from_json before (validate_json)", event_from_json_before, current),
                ("event_from_json, current events", event_from_json, current),
                ("event_from_json, old unit.completed", event_from_json, old),
                ("jsonschema, type's definition", check_event, documents),
                ("jsonschema, whole union", validator().validate, documents),
            ],
            args.repeat,
        )
    finally:
        del UPCASTERS[("unit.completed", 0)]
    floor = rows[0][1]

    print(f"{len(current):,} events from {LOG.name} ({old_share:.0%} of them unit.completed), "
          f"best of {args.repeat}")  # fmt: skip
    print(f"{'way':<40} {'events/s':>12} {'µs/event':>10} {'vs before':>10}")
    for name, per_second in rows:
        print(f"{name:<40} {per_second:>12,.0f} {1e6 / per_second:>10.1f} "
              f"{per_second / floor:>9.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
