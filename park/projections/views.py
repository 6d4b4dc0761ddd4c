"""JSON views of the read models: what clients see of a job or a worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from park.kinds import KINDS
from park.projections.archive import units_summary
from park.projections.notices import Notice
from park.projections.pilots import pilot_json
from park.projections.state import JobView, ParkState, WorkerView


def job_json(job: JobView, *, private: bool = True) -> dict[str, Any]:
    """A job as clients see it. `private=False` hides the spec and error text (another
    user's job)."""
    progress: dict[str, Any] = {"done": job.units_done, "total": job.units_total}
    if job.kind_state is not None:
        progress.update(KINDS[job.kind].progress(job.kind_state))
    view: dict[str, Any] = {
        "id": job.id,
        "user": job.user,
        "kind": job.kind,
        "status": job.status.value,
        "priority": job.priority.value,
        "tags": job.tags,
        "submitted_at": job.submitted_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "progress": progress,
        "max_attempts": job.max_attempts,
        "max_unit_seconds": job.max_unit_seconds,
    }
    if "name" in job.tags:  # the job's name, kept as a tag
        view["name"] = job.tags["name"]
    if not job.active:  # its units are dropped: what they did, in sum
        view["units_summary"] = units_summary(job)
    if private:
        view["spec"] = job.spec
        view["error"] = job.error
        view["notify"] = job.notify.model_dump() if job.notify is not None else None
    if job.resources:
        view["resources"] = job.resources
    return view


def with_pilots(view: dict[str, Any], state: ParkState) -> dict[str, Any]:
    """A job's view with its own batch pilots, oldest first (when it asked for any)."""
    if "resources" in view:
        mine = [p for p in state.pilots.values() if p.job_id == view["id"]]
        view["pilots"] = [pilot_json(p) for p in sorted(mine, key=lambda p: p.submitted_at)]
    return view


def notice_json(notice: Notice) -> dict[str, Any]:
    """A notification as its user sees it (`park notify list`, the job page)."""
    return {
        "key": notice.key,
        "channel": notice.channel,
        "target": notice.target,
        "user": notice.user,
        "kind": "digest" if notice.digest else "each",
        "jobs": notice.job_ids,
        "status": notice.status,
        "attempts": notice.attempts,
        "holder": notice.holder,  # the attempt under way: notifier host-pid-random/attempt
        "last_error": notice.last_error,
        "retry_at": notice.retry_at,
        "sent_at": notice.sent_at,
    }


def worker_activity(state: ParkState, worker: WorkerView, now: float) -> dict[str, Any]:
    """What a worker is doing, for the pool's page: the jobs of the units it holds, and
    its units done per minute since it joined (over at least a minute, so a worker that
    just joined does not show a burst)."""
    jobs = sorted({state.units[u].job_id for u in worker.units if u in state.units})
    minutes = max((worker.left_at or now) - worker.joined_at, 60.0) / 60.0
    return {"current_jobs": jobs, "units_per_minute": worker.units_done / minutes}


def worker_json(worker: WorkerView) -> dict[str, Any]:
    return {
        "id": worker.id,
        "name": worker.name,
        "cpus": worker.cpus,
        "owner": worker.owner,
        "policy": worker.policy.value,
        "job": worker.job_id,
        "joined_at": worker.joined_at,
        "last_seen": worker.last_seen,
        "left_at": worker.left_at,
        "units_leased": len(worker.units),
        "units_done": worker.units_done,
        "pilot": worker.pilot_id,
        "until": worker.until,
        "expired": worker.expired,
        "allowed": list(worker.allowed) if worker.allowed is not None else None,
    }


def job_matcher(user: str | None, tags: list[str]) -> Callable[[str, dict[str, str]], bool]:
    """The listing and stream filter: `user`, and tags given as `key` or `key=value`."""
    wanted = [t.split("=", 1) for t in tags]

    def matches(job_user: str, job_tags: dict[str, str]) -> bool:
        if user is not None and job_user != user:
            return False
        return all(w[0] in job_tags and (len(w) == 1 or job_tags[w[0]] == w[1]) for w in wanted)

    return matches


def waiting_json(channel: str, target: str, user: str, job_ids: list[str]) -> dict[str, Any]:
    return {
        "key": None,
        "channel": channel,
        "target": target,
        "user": user,
        "kind": "digest",
        "jobs": job_ids,
        "status": "waiting",  # for the next digest
        "attempts": 0,
        "holder": None,
        "last_error": None,
        "retry_at": None,
        "sent_at": None,
    }


def job_notifications(state: ParkState, job: JobView, *, sends_mail: bool) -> dict[str, Any]:
    """What the job's submitter asked to hear, and what became of it: for the job page."""
    book = state.notices
    items = [notice_json(n) for n in book.of_job(job.id)]
    for (channel, target), queue in book.waiting.items():
        if any(w.job_id == job.id for w in queue):
            items.append(waiting_json(channel, target, job.user, [job.id]))
    note = None
    if job.notify is not None and job.notify.email and not sends_mail:
        note = "this server sends no mail (it runs without --smtp)"
    return {
        "notify": job.notify.model_dump() if job.notify else None,
        "notifications": items,
        "mail_note": note,
    }
