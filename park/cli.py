"""The `park` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from park.client.errors import BadRequest, JobCancelled, JobFailed, ParkClientError
from park.client.http import DEFAULT_SERVER, ParkHttp
from park.client.job import FINAL, Job
from park.client.service import RemoteService
from park.identity import NoAddress, notify_request, usertag

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _server_args(p: argparse.ArgumentParser) -> None:
    server = os.environ.get("PARK_SERVER", DEFAULT_SERVER)
    p.add_argument(
        "--server", default=server, help=f"the park server's URL (env PARK_SERVER; now {server})"
    )
    p.add_argument(
        "--token",
        default=os.environ.get("PARK_TOKEN"),
        help="API token, when the server has a token file (env PARK_TOKEN)",
    )


def _log_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log",
        default=os.environ.get("PARK_LOG"),
        help="kafka://HOST:PORT[,HOST:PORT][/topic][?options]: a Kafka topic shared with "
        "other servers (default: env PARK_LOG, else the SQLite file in the data directory)",
    )


def _client(args: argparse.Namespace) -> ParkHttp:
    return ParkHttp(args.server, args.token)


class UsageError(Exception):
    """A mistake on the command line; the message says what to fix."""


def _error(command: str, message: str) -> None:
    """One line on stderr, never a traceback."""
    err_console.print(f"park {command}: {message}", style="red", markup=False, highlight=False)


def _set_log_level(level: str) -> None:
    """park's own loggers at `level`; libraries (httpx logs each request at INFO) only
    from warnings on, unless debugging."""
    logging.getLogger("park").setLevel(level.upper())
    if level == "debug":
        logging.getLogger().setLevel(logging.DEBUG)


def _read_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path}: is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{what} {path}: cannot read it ({err})") from None


def _json_arg(text: str, what: str = "spec") -> Any:
    source = f"{what} (JSON)"
    if text.startswith("@"):
        source = f"{what} file {text[1:]}"
        text = _read_file(text[1:], f"{what} file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(
            f"{source} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
            " (pass JSON text, or @FILE for a file)"
        ) from None


# -- commands ---------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from park.server import ConfigError, serve
    from park.settings import ServeSettings, load

    settings = load(ServeSettings, args)
    _set_log_level(settings.log_level)
    try:
        serve(settings)
    except ConfigError as err:
        _error("serve", str(err))
        return 2
    return 0


def cmd_notifier(args: argparse.Namespace) -> int:
    from park.notify.config import run_notifier
    from park.server import ConfigError
    from park.settings import NotifierSettings, load

    settings = load(NotifierSettings, args)
    _set_log_level(settings.log_level)
    if not settings.log:
        _error("notifier", "--log kafka://HOST:PORT[/topic] (or PARK_LOG) is needed")
        return 2
    try:
        run_notifier(settings)
    except ConfigError as err:
        _error("notifier", str(err))
        return 2
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from park.server import ConfigError, run_scheduler
    from park.settings import SchedulerSettings, load

    settings = load(SchedulerSettings, args)
    _set_log_level(settings.log_level)
    if not settings.log:
        _error("scheduler", "--log kafka://HOST:PORT[/topic] (or PARK_LOG) is needed")
        return 2
    try:
        run_scheduler(settings)
    except ConfigError as err:
        _error("scheduler", str(err))
        return 2
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from park.settings import WorkerSettings, load
    from park.worker.agent import ServerGone, WorkerAgent, WorkerRefused

    settings = load(WorkerSettings, args)
    _set_log_level(settings.log_level)
    policy = (
        "own-only" if settings.own_only else "own-first" if settings.own_first else settings.policy
    )
    owner = settings.owner
    if policy in ("own-only", "own-first") and owner is None and not settings.token:
        owner = usertag()  # with a token, the server takes the owner from it
    settings = settings.model_copy(update={"policy": policy, "owner": owner})

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await WorkerAgent(settings, on_registered=banner).run(stop)

    def banner(worker_id: str) -> None:
        s = settings
        if s.log_level not in ("debug", "info"):
            return
        whose = f"policy {s.policy}" + (f", owner {s.owner}" if s.owner else "")
        whose += f", job {s.job}" if s.job else ""
        print(
            f"park worker: {worker_id} on {s.server}; {s.cpus} cpu{'s' if s.cpus != 1 else ''}; "
            f"{whose}; token {'on' if s.token else 'off'}; log level {s.log_level}\n"
            "  Ctrl-C to stop",
            flush=True,
        )

    try:
        asyncio.run(run())
    except WorkerRefused as err:
        _error("worker", str(err))
        return 2
    except ServerGone as err:
        _error("worker", str(err))
        return 1
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    spec = _json_arg(args.spec)
    if not isinstance(spec, dict):
        raise UsageError("spec: expected a JSON object ({...})")
    if args.data:  # a data file for a fit: sent as text, parsed (and checked) by the server
        old = spec.get("data")
        old = old if isinstance(old, dict) else {}
        kept = {k: v for k, v in old.items() if k in ("format", "columns")}
        spec["data"] = {"text": _read_file(args.data, "--data"), **kept}
    from park.client.api import default_tags

    tags = default_tags(args.server.rstrip("/"))
    for tag in args.tag:
        key, sep, value = tag.partition("=")
        if not key or not sep:
            raise UsageError(f"--tag {tag!r}: expected KEY=VALUE")
        tags[key] = value
    body: dict[str, Any] = {"kind": args.kind, "spec": spec, "priority": args.priority}
    body["tags"] = tags
    if args.name:
        body["name"] = args.name
    if args.pilot:
        from park.scheduler.pilots import PilotSpecError, pilot_request_from_text

        try:
            pilot = pilot_request_from_text(args.pilot)
        except (PilotSpecError, ValueError) as err:
            console.print(f"[red]park submit: --pilot {err}[/red]")
            return 2
        body["resources"] = {"pilot": pilot.model_dump(mode="json")}
    notify = _notify_arg(args)
    if notify is not None:
        body["notify"] = notify
    job = _client(args).post("/v1/jobs", body)
    print(job["id"])
    if args.wait:
        return _wait(args, job["id"], progress=True)
    return 0


def _notify_arg(args: argparse.Namespace) -> str | dict[str, object] | None:
    """--notify [ADDRESS] (PARKMAIL when no address), --notify-when, --webhook."""
    if args.notify is None and args.notify_when is None and args.webhook is None:
        return None
    asked: dict[str, object] = {}
    if isinstance(args.notify, str):
        asked["email"] = args.notify
    if args.notify_when:
        asked["when"] = args.notify_when
    if args.webhook:
        asked["webhook"] = args.webhook
    if args.notify is None and args.notify_when is None:
        return asked  # a webhook only
    request = notify_request(asked)
    return request


def _jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table("id", "name", "user", "kind", "status", "priority", "progress", "submitted")
    for job in jobs:
        p = job["progress"]
        table.add_row(
            job["id"],
            job.get("name") or "",
            job["user"],
            job["kind"],
            job["status"],
            job["priority"],
            f"{p['done']}/{p['total']}",
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job["submitted_at"])),
        )
    return table


def cmd_jobs(args: argparse.Namespace) -> int:
    if args.watch:
        return _watch_jobs(args)
    answer = _client(args).get(
        "/v1/jobs", status=args.status or None, user=args.user, tag=args.tag or None,
        kind=args.kind or None, since=args.since, until=args.until, before=args.before,
        limit=args.limit,
    )  # fmt: skip
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        table = _jobs_table(answer["jobs"])
        if answer.get("next") is not None:  # archived jobs go back further: page on
            table.caption = f"older: park jobs --before {answer['next']} (same filters)"
        console.print(table)
    return 0


def _watch_jobs(args: argparse.Namespace) -> int:
    """A live table of the active jobs, from the job stream, until Ctrl-C."""
    from rich.live import Live

    from park.client.table import JobTable

    tags = dict(t.partition("=")[::2] for t in args.tag)
    table = JobTable(RemoteService(args.server, args.token), user=args.user, tags=tags)
    try:
        with Live(_jobs_table([]), console=console, refresh_per_second=4) as live:
            while True:
                jobs = sorted(table.jobs.values(), key=lambda j: j["submitted_at"], reverse=True)
                if args.status:
                    jobs = [j for j in jobs if j["status"] in args.status]
                view = _jobs_table(jobs)
                view.caption = f"live: {len(jobs)} active, log offset {table.offset}"
                live.update(view)
                time.sleep(0.25)
    except KeyboardInterrupt:
        return 0
    finally:
        table.close()


def cmd_show(args: argparse.Namespace) -> int:
    _show(args, args.job_id)
    return 0


def _show(args: argparse.Namespace, job_id: str) -> None:
    """A human summary (a fit report for fits), or with --json the raw job and result."""
    from park.client.summary import job_summary

    client = _client(args)
    job = client.get(f"/v1/jobs/{job_id}")
    if job["status"] in FINAL and job.get("spec") is not None:
        job["result"] = client.get(f"/v1/jobs/{job_id}/result")["result"]
    if job.get("notify") is not None:
        notices = client.get(f"/v1/jobs/{job_id}/notifications")
        job["notifications"] = notices["notifications"]
        if notices.get("mail_note"):
            job["mail_note"] = notices["mail_note"]
    if getattr(args, "json", False):
        print(json.dumps(job, indent=2))
        return
    print(job_summary(job, job.get("result")))
    for pilot in job.get("pilots", []):  # a job with a batch pilot of its own
        said = f": {pilot['reason']}" if pilot["reason"] else ""
        print(f"  pilot {pilot['batch_id'] or pilot['id']} ({pilot['scheduler']}, queue "
              f"{pilot['queue'] or 'default'}): {pilot['state']}{said}")  # fmt: skip
    if job.get("notifications"):
        print(f"  notifications: {len(job['notifications'])} (park notify list)")


def cmd_notify(args: argparse.Namespace) -> int:
    """`park notify list`: your notifications not yet sent; `park notify cancel`: stop
    them, by job id or by notification key."""
    client = _client(args)
    if args.action == "list":
        answer = client.get("/v1/notifications", user=args.user or usertag(), all=args.all)
        if args.json:
            print(json.dumps(answer, indent=2))
            return 0
        table = Table("key", "kind", "to", "jobs", "status", "attempts", "last error")
        for n in answer["notifications"]:
            table.add_row(
                n["key"] or "(next digest)", n["kind"], n["target"], " ".join(n["jobs"]),
                n["status"], str(n["attempts"]), n["last_error"] or "",
            )  # fmt: skip
        console.print(table)
        if not answer["sends_mail"]:
            console.print("[yellow]this server sends no mail (it runs without --smtp)[/yellow]")
        return 0
    if not args.ids:
        console.print("[red]park notify cancel: name job ids or notification keys[/red]")
        return 2
    keys = [i for i in args.ids if "/" in i]
    job_ids = [i for i in args.ids if "/" not in i]
    client.post("/v1/notifications/cancel", {"keys": keys, "job_ids": job_ids})
    print(f"cancelled: {' '.join(args.ids)}")
    return 0


def _wait(args: argparse.Namespace, job_id: str, *, progress: bool) -> int:
    """Exit 0 when the job completes, 1 when it fails or is cancelled, 3 on timeout."""
    job = Job(job_id, RemoteService(args.server, args.token))
    code = 0
    try:
        job.wait(timeout=getattr(args, "timeout", None), progress=progress)
    except TimeoutError as err:
        console.print(f"[yellow]{err}[/yellow]")
        return 3
    except (JobFailed, JobCancelled) as err:
        console.print(f"[red]{err}[/red]")
        code = 1
    if not getattr(args, "quiet", False):
        _show(args, job_id)
    return code


def cmd_wait(args: argparse.Namespace) -> int:
    return _wait(args, args.job_id, progress=not args.quiet)


def cmd_cancel(args: argparse.Namespace) -> int:
    job = _client(args).post(f"/v1/jobs/{args.job_id}/cancel")
    print(f"{job['id']} {job['status']}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    answer = _client(args).get("/v1/events", after=args.after, limit=args.limit)
    for record in answer["events"]:
        print(json.dumps(record))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    _print_explanation(_client(args).get(f"/v1/jobs/{args.job_id}/explain"))
    return 0


def _print_explanation(answer: dict[str, Any]) -> None:
    console.print(f"[bold]{answer['id']}[/bold] {answer['status']} (log offset {answer['offset']})")
    if answer.get("rank") is not None:
        console.print(
            f"rank {answer['rank']} of {answer['runnable_jobs']} runnable; "
            f"weight {answer['weight']:.3g}; share now {answer['current_share']:.1%}, "
            f"target {answer['target_share']:.1%}"
        )
    if answer.get("expected_finish") is not None:
        left = max(0.0, answer["expected_finish"] - time.time())
        console.print(f"expected to finish in about {left:.0f} s")
    if answer.get("estimated_start") is not None:
        wait = max(0.0, answer["estimated_start"] - time.time())
        console.print(f"estimated start in {wait:.0f} s ({answer['grants_ahead']} grants ahead)")
    for reason in answer["reasons"]:
        console.print(f"  - {reason}")


def cmd_ledger(args: argparse.Namespace) -> int:
    path = f"/v1/ledger/{args.user}" if args.user else "/v1/ledger"
    answer = _client(args).get(path)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    table = Table("user", "charged", "reserved", "refunded", "usage", "budget left",
                  "core-s", "units")  # fmt: skip
    for user, row in answer["users"].items():
        left = row["budget_left"]
        table.add_row(
            user, f"{row['charged']:.2f}", f"{row['reserved']:.2f}", f"{row['refunded']:.2f}",
            f"{row['usage']:.2f}", "-" if left is None else f"{left:.2f}",
            f"{row['core_seconds']:.1f}", str(row["units"]),
        )  # fmt: skip
    console.print(table)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from park.errors import InvalidRequest
    from park.service.retention import compact_data_dir

    data_dir = Path(args.data_dir)
    if not (data_dir / "events.sqlite3").is_file():
        console.print(f"[red]park compact: no event log in {data_dir}[/red]")
        return 2
    try:
        done, snapshot, archived = compact_data_dir(data_dir, args.before)
    except InvalidRequest as err:
        console.print(f"[red]park compact: {err.message}[/red]")
        return 2
    console.print(
        f"moved {done.moved} events (up to offset {max(done.up_to, 0)}) into "
        f"{len(done.segments)} segment file(s); newest snapshot at {snapshot}, archive at "
        f"{archived}; live log {done.live_bytes_before / 2**20:.1f} MiB -> "
        f"{done.live_bytes_after / 2**20:.1f} MiB"
        + ("" if done.vacuumed else " (busy: its free pages are reused by new events)")
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from park.events.log import EventLog
    from park.events.sqlite import SqliteEventLog
    from park.replay import replay
    from park.scheduler.explain import explain

    async def run() -> int:
        log: EventLog
        if args.log and args.log.startswith("kafka://"):
            from park.events.kafka import KafkaEventLog

            log = KafkaEventLog(args.log, create=False)
        else:
            if not (Path(args.data_dir) / "events.sqlite3").is_file():
                console.print(f"[red]park replay: no event log in {args.data_dir}[/red]")
                return 2
            log = SqliteEventLog.in_data_dir(args.data_dir)
        try:
            report = await replay(log, to=args.to, verify=args.verify)
        finally:
            await log.close()
        state = report.state
        console.print(
            f"replayed to offset {state.offset}: {len(state.jobs)} jobs in memory, "
            f"{len(state.active_jobs())} active, {state.outbox.archived_jobs} archived"
        )
        if args.verify:
            console.print(
                f"re-ran the policy on {report.requests} requests ({report.grants} grants): "
                f"{len(report.mismatches)} differ"
            )
            for m in report.mismatches[:20]:
                console.print(f"[red]offset {m.offset} worker {m.worker_id}[/red]")
                console.print(f"  recorded {m.recorded}\n  replayed {m.replayed}")
        failed = _print_fold_problems(state, check=args.verify)
        if args.explain:
            if args.explain not in state.jobs:
                console.print(f"[red]no job {args.explain!r} at offset {state.offset}[/red]")
                return 2
            last_at = max((j.submitted_at for j in state.jobs.values()), default=0.0)
            if state.recent_grants:
                last_at = max(last_at, state.recent_grants[-1][1])
            _print_explanation(explain(state, args.explain, last_at))
        return 1 if report.mismatches or (args.verify and failed) else 0

    return asyncio.run(run())


def cmd_schema(args: argparse.Namespace) -> int:
    from park.events.published import events_json_schema_text

    sys.stdout.write(events_json_schema_text())
    return 0


def _print_fold_problems(state: Any, *, check: bool) -> bool:
    """Events the fold left out, and (with `check`) the state's broken invariants."""
    from rich.markup import escape

    console.print(f"events the fold could not apply: {state.fold_errors}")
    for err in list(state.recent_fold_errors)[-20:]:
        console.print(f"[red]  offset {err.offset} ({err.type}): {escape(err.message)}[/red]")
    problems = state.check() if check else []
    if check:
        console.print(f"invariants checked: {len(problems)} broken")
        for problem in problems[:20]:
            console.print(f"[red]  {escape(problem)}[/red]")
    return bool(state.fold_errors or problems)


# -- wiring -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="park", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    from park.settings import (
        NotifierSettings,
        SchedulerSettings,
        ServeSettings,
        WorkerSettings,
        add_arguments,
    )

    p = sub.add_parser(
        "serve",
        help="run the service on the embedded log",
        description=ServeSettings.__doc__,
    )
    add_arguments(p, ServeSettings)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "scheduler",
        help="with a Kafka log: a scheduler candidate (leader or standby) alone",
        description=SchedulerSettings.__doc__,
    )
    add_arguments(p, SchedulerSettings)
    p.set_defaults(func=cmd_scheduler)

    p = sub.add_parser(
        "notifier",
        help="with a Kafka log: a notifier of finished jobs (leader or standby) alone",
        description=NotifierSettings.__doc__,
    )
    add_arguments(p, NotifierSettings)
    p.set_defaults(func=cmd_notifier)

    p = sub.add_parser("worker", help="run units for a server", description=WorkerSettings.__doc__)
    add_arguments(p, WorkerSettings)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("submit", help="submit a job; prints its id")
    _server_args(p)
    p.add_argument("kind")
    p.add_argument("spec", help="the job spec as JSON, or @FILE")
    p.add_argument(
        "--priority", default="free", choices=["free", "low", "normal", "high", "urgent"]
    )
    p.add_argument("--name", help="a name for the job (kept as the tag name)")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        help="KEY=VALUE (repeatable); user, service and submitted are set for you",
    )
    p.add_argument(
        "--notify",
        nargs="?",
        const=True,
        metavar="ADDRESS",
        help="e-mail notice of the job's end (a daily digest unless --notify-when each); "
        "without ADDRESS, the address in PARKMAIL",
    )
    p.add_argument(
        "--notify-when",
        choices=["digest", "each", "never"],
        help="digest (default: one mail a day), each (one mail per job), never",
    )
    p.add_argument("--webhook", help="URL to POST the job's end to (JSON, HMAC-signed)")
    p.add_argument(
        "--wait", action="store_true", help="wait for it (progress bar), then print a summary"
    )
    p.add_argument("--json", action="store_true", help="with --wait: the raw job and result")
    p.add_argument(
        "--data", help="kind fit: a CSV or whitespace-column file (x, y[, dy]) for spec.data"
    )
    p.add_argument(
        "--pilot",
        metavar="SCHEDULER:OPTIONS",
        help="a batch pilot of its own, e.g. slurm:nodes=2,walltime=1:00:00,queue=debug",
    )
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("jobs", help="list jobs")
    _server_args(p)
    p.add_argument("--status", action="append", default=[])
    p.add_argument("--user")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--kind", action="append", default=[])
    p.add_argument("--since", help="submitted at or after (ISO date/time, or epoch seconds)")
    p.add_argument("--until", help="submitted before (ISO date/time, or epoch seconds)")
    p.add_argument("--limit", type=int, default=100, help="jobs per page (default 100)")
    p.add_argument("--before", type=int, help="the page after this cursor (shown under a page)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true", help="a live table of the active jobs")
    p.set_defaults(func=cmd_jobs)

    for name, func, text in (
        ("show", cmd_show, "a job's details (and result, once finished)"),
        ("cancel", cmd_cancel, "cancel a job"),
    ):
        p = sub.add_parser(name, help=text)
        _server_args(p)
        p.add_argument("job_id")
        if name == "show":
            p.add_argument("--json", action="store_true", help="the raw job and result")
        p.set_defaults(func=func)

    p = sub.add_parser("wait", help="wait for a job to finish, with a progress bar")
    _server_args(p)
    p.add_argument("job_id")
    p.add_argument("--timeout", type=float, help="give up after this many seconds (exit 3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.add_argument("--json", action="store_true", help="the raw job and result at the end")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("explain", help="why a job waits: reasons, rank, share, start")
    _server_args(p)
    p.add_argument("job_id")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("ledger", help="credit and usage per user")
    _server_args(p)
    p.add_argument("user", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ledger)

    p = sub.add_parser("replay", help="rebuild state from the log; verify every decision")
    p.add_argument("--data-dir", default="./park-data")
    p.add_argument("--to", type=int, help="stop at this offset")
    p.add_argument("--verify", action="store_true", help="re-run the policy on each request")
    p.add_argument("--explain", metavar="JOB", help="explain this job as of --to")
    _log_arg(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("notify", help="your pending notifications: list, or cancel them")
    _server_args(p)
    p.add_argument("action", choices=["list", "cancel"])
    p.add_argument("ids", nargs="*", help="cancel: job ids or notification keys")
    p.add_argument("--user", help="list: whose (default: you; a token names you anyway)")
    p.add_argument("--all", action="store_true", help="list: sent and cancelled ones too")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_notify)

    p = sub.add_parser(
        "compact", help="move old events of the embedded log into compressed segment files"
    )
    p.add_argument("--data-dir", default="./park-data")
    p.add_argument(
        "--before",
        required=True,
        help="an offset or a date (ISO): events before it that the newest snapshot and the "
        "archive already hold",
    )
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser("events", help="print the raw event log as JSON lines")
    _server_args(p)
    p.add_argument("--after", type=int, default=0)
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(func=cmd_events)

    p = sub.add_parser(
        "schema", help="print the JSON Schema of the event log (docs/events.schema.json)"
    )
    p.add_argument("what", choices=["events"])
    p.set_defaults(func=cmd_schema)

    from park.batch.cli import add_pilot_parser

    add_pilot_parser(sub, _server_args)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    from park.settings import SettingsError

    try:
        code = args.func(args)
    except (UsageError, SettingsError, NoAddress) as err:
        _error(args.command, str(err))
        code = 2
    except BadRequest as err:
        _error(args.command, f"{err} ({err.status})")
        code = 2
    except ParkClientError as err:
        _error(args.command, str(err))
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
