"""A lease's batch goes to one child process in one message, yet each unit can still be
stopped alone: out of time, or because the server said so. Real child processes, no server
(the agent's batch runner is called directly)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from park.worker.agent import WorkerAgent, WorkerOptions
from park.worker.child import Child
from park.worker.runner import AllowList

pytestmark = pytest.mark.anyio

SLEEP = "park.builtins:sleep"


def unit(unit_id: str, seconds: float, limit: float | None = 30.0) -> dict[str, Any]:
    payload = {"function": SLEEP, "items": [seconds], "start": 0}
    return {"id": unit_id, "job_id": "j", "kind": "map", "payload": payload, "time_limit": limit}


async def agent_with_child() -> tuple[WorkerAgent, Child]:
    """An agent that never reaches a server (none is needed here), and a started child."""
    agent = WorkerAgent(WorkerOptions(server="http://127.0.0.1:9", cpus=1), AllowList())
    agent.report_every = 3600.0  # every report comes back from the batch, none sent early
    agent._spare = asyncio.create_task(Child().start())
    return agent, await Child().start()


async def test_a_batch_runs_in_one_child_and_only_the_unit_out_of_time_fails() -> None:
    agent, child = await agent_with_child()
    first_pid = child.proc.pid
    try:
        batch = [unit("a", 0), unit("b", 0), unit("slow", 60, limit=1.0), unit("c", 0)]
        agent.in_flight.update(u["id"] for u in batch)
        reports, child = await asyncio.wait_for(agent._run_units(child, batch), 30)
        by_id = {r["unit_id"]: r for r in reports}
        assert [r["unit_id"] for r in reports] == ["a", "b", "slow", "c"]
        assert by_id["a"]["ok"] and by_id["b"]["ok"] and by_id["c"]["ok"]
        assert not by_id["slow"]["ok"]
        assert "ran out of time (max_unit_seconds)" in by_id["slow"]["error"]
        assert 1.0 <= by_id["slow"]["wall_seconds"] < 10.0
        # The child that ran the slow unit was killed; the rest ran in its replacement.
        assert child.proc.pid != first_pid
        assert not alive(first_pid)
    finally:
        await agent._stop_children()
        await child.close()


async def test_stopping_a_running_unit_kills_it_and_the_rest_of_the_batch_still_runs() -> None:
    agent, child = await agent_with_child()
    first_pid = child.proc.pid
    try:
        batch = [unit("a", 0), unit("cancelled", 60), unit("later", 60), unit("c", 0)]
        agent.in_flight.update(u["id"] for u in batch)
        running = asyncio.create_task(agent._run_units(child, batch))
        for _ in range(200):  # until the long unit is the one running
            if "cancelled" in agent._running:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        agent._stop(["later", "cancelled"])  # one running, one not begun
        reports, child = await asyncio.wait_for(running, 30)
        assert [(r["unit_id"], r["ok"]) for r in reports] == [("a", True), ("c", True)]
        assert child.proc.pid != first_pid and not alive(first_pid)
    finally:
        await agent._stop_children()
        await child.close()


async def test_a_child_that_dies_fails_its_unit_and_a_fresh_child_runs_the_rest() -> None:
    agent, child = await agent_with_child()
    try:
        crash = {**unit("crash", 0), "payload": {"function": "os:_exit", "items": [3], "start": 0}}
        batch = [unit("a", 0), crash, unit("b", 0)]
        agent.allow = AllowList(("os:_exit",))
        reports, child = await asyncio.wait_for(agent._run_units(child, batch), 30)
        assert [(r["unit_id"], r["ok"]) for r in reports] == [
            ("a", True), ("crash", False), ("b", True),
        ]  # fmt: skip
        assert "died (exit code 3)" in reports[1]["error"]
    finally:
        await agent._stop_children()
        await child.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
