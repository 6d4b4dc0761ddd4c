"""Events: the schema of every fact park records, and the log that orders them."""

from park.events.log import EventLog, Recorded
from park.events.schema import *  # noqa: F403
from park.events.schema import Event, event_from_json, event_to_json

__all__ = ["Event", "EventLog", "Recorded", "event_from_json", "event_to_json"]
