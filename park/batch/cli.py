"""`park pilot submit|list|cancel`: pilots submitted from where the user is (a cluster's
login node); the server records them and follows their state."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from park.batch.systems import SYSTEMS, BatchError, WorkerCommand, submit_pilot
from park.client.http import ParkHttp
from park.scheduler.pilots import PilotSpecError, pilot_request
from park.service.engine import new_id

console = Console()


def cmd_pilot_submit(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {
        "scheduler": args.scheduler,
        "nodes": args.nodes,
        "cpus_per_node": args.cpus_per_node,
        "walltime": args.walltime,
        "queue": args.queue,
        "account": args.account,
        "extra": args.extra,
    }
    try:
        request = pilot_request(data, "pilot")
    except PilotSpecError as err:
        console.print(f"[red]park pilot submit: {err}[/red]")
        return 2
    client = ParkHttp(args.server, args.token)
    if args.job:
        client.get(f"/v1/jobs/{args.job}")  # a job that does not exist: say so before sbatch
    pilot_id = new_id()
    worker = WorkerCommand(args.pilot_server or args.server, pilot_id, request.cpus_per_node,
                           args.job)  # fmt: skip
    env = {"PARK_TOKEN": args.token} if args.token else None
    try:
        batch_id = submit_pilot(pilot_id, request, worker, Path(args.dir), env)
    except BatchError as err:
        console.print(f"[red]park pilot submit: {err}[/red]")
        return 1
    body = {"id": pilot_id, "batch_id": batch_id, "request": request.model_dump(mode="json"),
            "job": args.job}  # fmt: skip
    pilot = client.post("/v1/pilots", body)
    print(f"{pilot['id']} {request.scheduler} {batch_id}")
    return 0


def cmd_pilot_list(args: argparse.Namespace) -> int:
    answer = ParkHttp(args.server, args.token).get("/v1/pilots", live=args.live or None)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    table = Table("id", "scheduler", "batch id", "state", "reason", "queue", "nodes x cpus",
                  "job", "workers", "submitted")  # fmt: skip
    for p in answer["pilots"]:
        r = p["request"]
        table.add_row(
            p["id"], p["scheduler"], p["batch_id"] or "-", p["state"], p["reason"] or "",
            p["queue"] or "-", f"{r['nodes']} x {r['cpus_per_node']}",
            p["job"] or ("pool" if p["pool"] else "-"), str(len(p["workers"])),
            time.strftime("%H:%M:%S", time.localtime(p["submitted_at"])),
        )  # fmt: skip
    console.print(table)
    return 0


def cmd_pilot_cancel(args: argparse.Namespace) -> int:
    client = ParkHttp(args.server, args.token)
    pilot = client.get(f"/v1/pilots/{args.pilot_id}")
    if pilot["state"] not in ("queued", "running"):
        console.print(f"pilot {pilot['id']} is already {pilot['state']}")
        return 0
    if pilot["batch_id"]:
        try:
            SYSTEMS[pilot["scheduler"]].cancel(pilot["batch_id"])
        except BatchError as err:
            console.print(f"[red]park pilot cancel: {err}[/red]")
            return 1
    body = {"state": "cancelled", "reason": "cancelled with park pilot cancel"}
    pilot = client.post(f"/v1/pilots/{args.pilot_id}/state", body)
    print(f"{pilot['id']} {pilot['state']}")
    return 0


def add_pilot_parser(
    sub: Any, server_args: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    pilot: argparse.ArgumentParser = sub.add_parser(
        "pilot", help="batch pilots: park workers inside Slurm/PBS jobs"
    )
    verbs = pilot.add_subparsers(dest="pilot_command", required=True)

    p = verbs.add_parser("submit", help="submit a pilot to a batch queue")
    server_args(p)
    p.add_argument("--scheduler", choices=sorted(SYSTEMS), default="slurm")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--cpus-per-node", type=int, default=1)
    p.add_argument("--walltime", default="01:00:00", help="HH:MM:SS")
    p.add_argument("--job", help="a private pilot: its workers serve only this job")
    p.add_argument("--queue", help="the partition (Slurm) or queue (PBS)")
    p.add_argument("--account")
    p.add_argument("--extra", action="append", default=[],
                   help="a directive passed through, e.g. '--mem=4G' (repeatable)")  # fmt: skip
    p.add_argument("--dir", default=str(Path.home() / ".park" / "pilots"),
                   help="where the batch script and its output go")  # fmt: skip
    p.add_argument("--pilot-server", help="the URL workers on the nodes reach the server at")
    p.set_defaults(func=cmd_pilot_submit)

    p = verbs.add_parser("list", help="pilots and their states")
    server_args(p)
    p.add_argument("--live", action="store_true", help="only queued and running ones")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pilot_list)

    p = verbs.add_parser("cancel", help="cancel a pilot (scancel / qdel)")
    server_args(p)
    p.add_argument("pilot_id")
    p.set_defaults(func=cmd_pilot_cancel)
    return pilot
