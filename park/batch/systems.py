"""Batch systems as small adapters: write a pilot's script, submit, cancel, poll.

Each adapter is the four things psij-python's `BatchSchedulerExecutor` asks of a batch
system (a script, the submit command and how to read its answer, the cancel command, the
status command and how to read it), written out here for Slurm and Torque/PBS; see
docs/pilots.md for why park does not use psij-python itself.

A pilot's script starts one `park worker` per node inside the allocation (`srun`, or
`pbsdsh -u` from the node file), so the workers live in the allocation's own process tree
and end with it. Each worker is told when to leave (`--until`): the script's start plus
the pilot's wall time less a margin, so it leaves, giving its leases back, before the
batch system would kill it.
"""

from __future__ import annotations

import getpass
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from park.scheduler.pilots import PilotRequest, format_walltime

TIMEOUT = 30.0


class BatchError(Exception):
    """The batch system refused or did not answer; the message is its own words."""


@dataclass(frozen=True, slots=True)
class BatchState:
    state: str  # queued, running, ended, failed, cancelled
    reason: str = ""
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    """The `park worker` each node runs: whom to serve, and how."""

    server: str
    pilot_id: str
    cpus: int
    job_id: str | None = None
    python: str = sys.executable

    def argv(self) -> list[str]:
        argv = [self.python, "-m", "park", "worker", "--server", self.server]
        argv += ["--cpus", str(self.cpus), "--pilot", self.pilot_id]
        if self.job_id is not None:
            argv += ["--policy", "job", "--job", self.job_id]
        return argv


def leave_margin(walltime: int) -> int:
    """Seconds before the wall time a pilot's workers leave: time to give leases back and
    exit, a twentieth of the wall time, between 2 s and a minute."""
    return min(60, max(2, walltime // 20))


def _run(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=None if env is None else {**os.environ, **env},
            check=False,
        )
    except FileNotFoundError as err:
        raise BatchError(f"{argv[0]}: not found on this machine") from err
    except subprocess.TimeoutExpired as err:
        raise BatchError(f"{argv[0]}: no answer within {TIMEOUT:g} s") from err
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().replace("\n", " ")
        raise BatchError(f"{argv[0]} failed ({done.returncode}): {said[:500]}")
    return done.stdout


class BatchSystem:
    name = ""

    def script(self, pilot_id: str, request: PilotRequest, worker: WorkerCommand, out: Path) -> str:
        raise NotImplementedError

    def submit(self, script: Path, out: Path, env: Mapping[str, str] | None = None) -> str:
        raise NotImplementedError

    def cancel(self, batch_id: str) -> None:
        raise NotImplementedError

    def states(self, batch_ids: Sequence[str]) -> dict[str, BatchState]:
        """What the batch system says of these jobs; a job it no longer lists has ended."""
        raise NotImplementedError

    @staticmethod
    def _body(request: PilotRequest, worker: WorkerCommand, launch: str) -> str:
        margin = leave_margin(request.walltime)
        command = shlex.join(worker.argv())
        return (
            f"# park pilot {worker.pilot_id}: one park worker per node, inside this allocation;\n"
            f"# each leaves {margin} s before the pilot's wall time, giving its leases back.\n"
            "start=$(date +%s)\n"
            f"until=$((start + {request.walltime} - {margin}))\n"
            f"{launch} {command} --until $until\n"
        )


class Slurm(BatchSystem):
    name = "slurm"

    def script(self, pilot_id: str, request: PilotRequest, worker: WorkerCommand, out: Path) -> str:
        lines = [
            "#!/bin/bash",
            f"#SBATCH --job-name=park-pilot-{pilot_id}",
            f"#SBATCH --nodes={request.nodes}",
            "#SBATCH --ntasks-per-node=1",
            f"#SBATCH --cpus-per-task={request.cpus_per_node}",
            f"#SBATCH --time={math.ceil(request.walltime / 60)}",
            f"#SBATCH --output={out}",
        ]
        if request.queue:
            lines.append(f"#SBATCH --partition={request.queue}")
        if request.account:
            lines.append(f"#SBATCH --account={request.account}")
        lines += [f"#SBATCH {d}" for d in request.extra]
        launch = f"exec srun --ntasks-per-node=1 --cpus-per-task={request.cpus_per_node}"
        return "\n".join(lines) + "\n" + self._body(request, worker, launch)

    def submit(self, script: Path, out: Path, env: Mapping[str, str] | None = None) -> str:
        answer = _run(["sbatch", "--parsable", str(script)], env).strip()
        return answer.split(";")[0]

    def cancel(self, batch_id: str) -> None:
        _run(["scancel", batch_id])

    def states(self, batch_ids: Sequence[str]) -> dict[str, BatchState]:
        wanted = set(batch_ids)
        if not wanted:
            return {}
        listing = _run(["squeue", "-h", "--states=all", "-u", getpass.getuser(),
                        "-o", "%i|%T|%r|%P"])  # fmt: skip
        seen: dict[str, BatchState] = {}
        for line in listing.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 4 and parts[0] in wanted:
                seen[parts[0]] = _slurm_state(*parts[1:])
        return {b: seen.get(b, BatchState("ended", "no longer in the queue")) for b in wanted}


def _slurm_state(state: str, reason: str, partition: str) -> BatchState:
    reason = "" if reason in ("None", "(null)") else reason
    if state in ("PENDING", "REQUEUED", "SUSPENDED", "RESV_DEL_HOLD", "REQUEUE_HOLD"):
        return BatchState("queued", reason, partition)
    if state in ("RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING"):
        return BatchState("running", "", partition)
    if state == "COMPLETED":
        return BatchState("ended", "", partition)
    if state == "CANCELLED":
        return BatchState("cancelled", reason, partition)
    return BatchState("failed", state.lower() + (f": {reason}" if reason else ""), partition)


class Pbs(BatchSystem):
    """Torque/PBS: `qsub`, `qstat`, `qdel`. Tested against Slurm's Torque-compatible
    wrappers (slurm-wlm-torque), under which jobs see SLURM_* but no PBS_* variables: the
    script then starts its workers with `srun`."""

    name = "pbs"

    def script(self, pilot_id: str, request: PilotRequest, worker: WorkerCommand, out: Path) -> str:
        lines = [
            "#!/bin/bash",
            f"#PBS -N park-pilot-{pilot_id}",
            f"#PBS -l nodes={request.nodes}:ppn={request.cpus_per_node}",
            f"#PBS -l walltime={format_walltime(request.walltime)}",
        ]
        if request.queue:
            lines.append(f"#PBS -q {request.queue}")
        if request.account:
            lines.append(f"#PBS -A {request.account}")
        lines += [f"#PBS {d}" for d in request.extra]
        # One worker per node: pbsdsh -u from the node file under Torque; srun under Slurm's
        # wrappers; a single node's own shell otherwise.
        launch = (
            'if [ -r "${PBS_NODEFILE:-}" ] && command -v pbsdsh >/dev/null; then\n'
            "  launch='pbsdsh -u'\n"
            'elif [ -n "${SLURM_JOB_ID:-}" ]; then  # (ppn became tasks there: one per node)\n'
            '  n="${SLURM_JOB_NUM_NODES:-1}"\n'
            f'  launch="srun --nodes=$n --ntasks=$n --ntasks-per-node=1'
            f' --cpus-per-task={request.cpus_per_node}"\n'
            "else\n"
            "  launch=''\n"
            "fi\n"
            "exec $launch"
        )
        return "\n".join(lines) + "\n" + self._body(request, worker, launch)

    def submit(self, script: Path, out: Path, env: Mapping[str, str] | None = None) -> str:
        # -o only on the command line: Slurm's wrapper ignores it in the script.
        return _run(["qsub", "-V", "-j", "oe", "-o", str(out), str(script)], env).strip()

    def cancel(self, batch_id: str) -> None:
        _run(["qdel", batch_id])

    def states(self, batch_ids: Sequence[str]) -> dict[str, BatchState]:
        wanted = set(batch_ids)
        if not wanted:
            return {}
        seen: dict[str, BatchState] = {}
        for line in _run(["qstat"]).splitlines():
            parts = line.split()
            # Job id, Name, User, Time Use, S, Queue
            if len(parts) >= 6 and parts[0] in wanted:
                seen[parts[0]] = _pbs_state(parts[4], parts[5])
        return {b: seen.get(b, BatchState("ended", "no longer in the queue")) for b in wanted}


def _pbs_state(letter: str, queue: str) -> BatchState:
    if letter in ("Q", "H", "W", "T", "S"):
        return BatchState("queued", "held" if letter == "H" else "", queue)
    if letter in ("R", "E", "B"):
        return BatchState("running", "", queue)
    return BatchState("ended", "", queue)


SYSTEMS: dict[str, BatchSystem] = {"slurm": Slurm(), "pbs": Pbs()}


def submit_pilot(
    pilot_id: str,
    request: PilotRequest,
    worker: WorkerCommand,
    directory: Path,
    env: Mapping[str, str] | None = None,
) -> str:
    """Write the pilot's script under `directory` and submit it; its batch job id."""
    system = SYSTEMS[request.scheduler]
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{pilot_id}.out"
    script = directory / f"{pilot_id}.{'sbatch' if system.name == 'slurm' else 'pbs'}"
    script.write_text(system.script(pilot_id, request, worker, out))
    return system.submit(script, out, env)
