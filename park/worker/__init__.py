"""The worker edge: the agent that pulls units over HTTP and runs them."""

from park.worker.agent import WorkerAgent, WorkerOptions
from park.worker.runner import AllowList

__all__ = ["AllowList", "WorkerAgent", "WorkerOptions"]
