"""The messages: e-mail text and webhook JSON for one job's end or one digest. Pure: the
same notice renders the same bytes on every attempt and every notifier, so a resent
message is the same message (same Message-ID, same webhook body and signature)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from park.projections.state import JobView, ParkState


@dataclass(frozen=True, slots=True)
class Letterhead:
    mail_from: str = "park@localhost"
    public_url: str = "http://127.0.0.1:8080"


def message_id(key: str, host: str = "park") -> str:
    """The Message-ID of notice `key`: derived from it, so every attempt at one notice
    carries the same one and a receiver can drop a repeat."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{host}>"


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, int | float) and math.isfinite(value) else "?"


def summary(job: JobView, cancelled_by: str | None = None) -> str:
    """One line: what the job came to."""
    if job.status.value == "cancelled":
        return f"cancelled by {cancelled_by}" if cancelled_by else "cancelled"
    if job.status.value == "failed":
        return f"failed: {(job.error or 'no reason recorded').splitlines()[0][:300]}"
    result = job.result
    if job.kind == "fit" and isinstance(result, dict) and "parameters" in result:
        params = []
        for name, p in result["parameters"].items():
            err = p.get("stderr")
            value = _number(p.get("value"))
            params.append(f"{name} = {value} ± {_number(err)}" if err else f"{name} = {value}")
        return f"χ²ᵣ = {_number(result.get('redchi'))}; " + ", ".join(params)
    if isinstance(result, list):
        return f"{len(result)} results"
    text = str(result)
    return text if len(text) <= 120 else text[:117] + "..."


def job_facts(state: ParkState, job_id: str, letterhead: Letterhead) -> dict[str, Any]:
    job = state.jobs[job_id]
    began = job.started_at if job.started_at is not None else job.submitted_at
    run = (job.finished_at - began) if job.finished_at is not None else None
    return {
        "id": job.id,
        "name": job.tags.get("name"),
        "tags": {k: v for k, v in job.tags.items() if k != "user"},
        "user": job.user,
        "kind": job.kind,
        "status": job.status.value,
        "error": job.error,
        "cancelled_by": state.notices.cancelled_by.get(job.id),
        "submitted_at": job.submitted_at,
        "finished_at": job.finished_at,
        "run_seconds": run,
        "credits": job.charged,
        "summary": summary(job, state.notices.cancelled_by.get(job.id)),
        "url": f"{letterhead.public_url.rstrip('/')}/#/jobs/{job.id}",
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _job_text(f: dict[str, Any]) -> str:
    name = f" {f['name']}" if f["name"] else ""
    tags = ", ".join(f"{k}={v}" for k, v in f["tags"].items() if k != "name")
    lines = [
        f"{f['id']}{name} ({f['kind']}): {f['status']}",
        f"  {f['summary']}",
        f"  run time {_duration(f['run_seconds'])}, credits {f['credits']:.4g}",
    ]
    if tags:
        lines.append(f"  tags: {tags}")
    lines.append(f"  {f['url']}")
    return "\n".join(lines)


def email(
    state: ParkState,
    *,
    key: str,
    to: str,
    job_ids: list[str],
    digest: bool,
    at: float,
    letterhead: Letterhead,
) -> EmailMessage:
    """The mail for notice `key`. `at` (when its first attempt was recorded) is its Date,
    so every attempt sends the same message."""
    facts = [job_facts(state, j, letterhead) for j in job_ids if j in state.jobs]
    msg = EmailMessage()
    if digest:
        counts: dict[str, int] = {}
        for f in facts:
            counts[f["status"]] = counts.get(f["status"], 0) + 1
        tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        msg["Subject"] = f"park: {len(facts)} job{'s' if len(facts) != 1 else ''} ended ({tally})"
        intro = f"Jobs that ended since your last park digest ({len(facts)}):\n\n"
    else:
        f = facts[0]
        name = f" {f['name']}" if f["name"] else ""
        msg["Subject"] = f"park: job {f['id']}{name} {f['status']}"
        intro = ""
    msg["From"] = letterhead.mail_from
    msg["To"] = to
    msg["Date"] = formatdate(at, localtime=True)
    msg["Message-ID"] = message_id(key, letterhead.mail_from.rpartition("@")[2] or "park")
    msg["X-Park-Notice"] = key
    body = intro + "\n\n".join(_job_text(f) for f in facts)
    msg.set_content(body + f"\n\n-- \npark, {letterhead.public_url}\n")
    return msg


def webhook_payload(
    state: ParkState, *, key: str, job_ids: list[str], digest: bool, letterhead: Letterhead
) -> dict[str, Any]:
    return {
        "notice": key,
        "kind": "digest" if digest else "job.ended",
        "jobs": [job_facts(state, j, letterhead) for j in job_ids if j in state.jobs],
    }
