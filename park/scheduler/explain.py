"""Why a job waits: every reason, its rank, its current and target share, a start estimate.

Pure, like the policy it explains: `now` comes from the caller (the service's clock, or
the time of the event a replay stopped at).
"""

from __future__ import annotations

from typing import Any

from park.domain import Priority, WorkerPolicy, function_allowed
from park.projections.pilots import pilot_reasons
from park.projections.state import JobView, ParkState, queue_key
from park.scheduler.backups import straggler_after
from park.scheduler.policy import (
    age_boost,
    allows_job,
    effective_priority,
    fairshare_factor,
    job_weight,
    may_serve,
)


def explain(
    state: ParkState, job_id: str, now: float, *, job: JobView | None = None
) -> dict[str, Any]:
    """`job`: the job itself when it is no longer in `state` (archived, so finished)."""
    job = job if job is not None else state.jobs[job_id]
    reasons: list[str] = []
    answer: dict[str, Any] = {
        "id": job.id,
        "status": job.status.value,
        "offset": state.offset,
        "reasons": reasons,
        "rank": None,
        "runnable_jobs": len(state.runnable),
        "weight": None,
        "current_share": None,
        "target_share": None,
        "estimated_start": None,
    }
    if not job.active:
        reasons.append(f"the job is {job.status.value}; it waits for nothing")
        return answer

    reasons.extend(pilot_reasons(state.pilots, job.id))
    if job.started_at is not None:
        answer.update(running_progress(state, job, now))
        reasons.append(answer["progress_text"])
    retried = [state.units[u] for u in job.unit_ids if u in state.units and state.units[u].failures]
    answer["failed_attempts"] = [
        {
            "unit": unit.id,
            "status": unit.status.value,
            "attempts": unit.attempts,
            "failures": unit.failures,
            "failed_on": unit.failed_on,
            "last_error": unit.last_error,
        }
        for unit in retried[:20]
    ]
    if retried:
        reasons.append(
            f"{len(retried)} unit(s) failed an attempt and are tried again "
            f"(at most {job.max_attempts} failures each)"
        )

    answer["backups"] = backups(state, job, now)
    if answer["backups"]:
        reasons.append(
            f"{len(answer['backups'])} backup attempt(s) of straggling units run on idle "
            "workers; the first report of each unit counts"
        )
        reasons.extend(
            f"unit {b['unit']} runs on {b['worker']} for {b['running_for']:.1f} s and, as a "
            f"backup, on {b['backup_worker']} for {b['backup_running_for']:.1f} s"
            for b in answer["backups"][:5]
        )

    recent = list(state.recent_grants)
    mine = sum(1 for granted, _ in recent if granted == job.id)
    answer["current_share"] = mine / len(recent) if recent else 0.0
    if job.id not in state.runnable:
        leased = sum(1 for u in job.unit_ids if u in state.leased)
        reasons.append(
            f"no unit is waiting: {leased} unit(s) are running on workers"
            if leased
            else "no unit is planned yet"
        )
        return answer

    weights = {j: job_weight(state, state.jobs[j], now) for j in state.runnable}
    weight = weights[job.id]
    rank = state.queue_index.index(queue_key(job)) + 1
    answer.update(
        weight=weight,
        rank=rank,
        target_share=weight / sum(weights.values()),
    )
    if rank > 1:
        reasons.append(f"{rank - 1} runnable job(s) are ahead of it in fair-share order")

    workers = [w for w in state.workers.values() if w.active]
    able = [w for w in workers if may_serve(w, job)]
    owners_only = sorted({w.owner or "?" for w in workers if w.policy is WorkerPolicy.OWN_ONLY})
    if owners_only and not able:
        reasons.append(
            f"owner-only workers serve only their owners' jobs ({', '.join(owners_only)}), "
            f"not {job.user}'s"
        )
    if not workers:
        reasons.append("no worker is connected")
    elif not able and not any(allows_job(w, job) for w in workers):
        refused = sorted(
            {f for w in workers for f in job.functions if not function_allowed(w.allowed or (), f)}
        )
        reasons.append(
            f"none of the {len(workers)} connected worker(s) allows {', '.join(refused)}: "
            "it waits for a worker whose allow list (PARK_ALLOWED_FUNCTIONS) has it"
        )
    elif not able:
        policies = sorted({w.policy.value for w in workers})
        reasons.append(
            f"none of the {len(workers)} connected worker(s) may run it "
            f"(their policies: {', '.join(policies)})"
        )
    elif all(len(w.units) >= w.cpus for w in able):
        reasons.append(f"all {len(able)} worker(s) that may run it are busy")

    priority = effective_priority(state, job)
    if priority is not job.priority:
        reasons.append(
            f"user {job.user} has spent their budget: {job.priority.value} work runs as free"
        )
    top = max(state.policy.weights.values())
    if state.policy.weights[priority] < top:
        reasons.append(
            f"priority {priority.value} weighs {state.policy.weights[priority]:g} "
            f"(the highest weighs {top:g})"
        )
    factor = fairshare_factor(state, job.user, now)
    if factor < 1.0:
        reasons.append(
            f"user {job.user}'s recent usage sets their fair-share factor to {factor:.3g}"
        )
    boost = age_boost(state, job, now)
    if boost > 1.0:
        reasons.append(f"it has waited {now - job.waiting_since:.0f} s: age boost x{boost:.2f}")

    # Grants ahead of it: every job before it in virtual time until their pass reaches its.
    ahead = 0.0
    for key in state.queue_index.islice(0, rank - 1):
        other = state.jobs[key[2]]
        ahead += max(1.0, (job.vpass - other.vpass) * weights[other.id])
    # The pool's recent grant rate, in the share of its cpus that may run this job: an
    # owner-only or single-job worker of someone else's never starts it.
    all_cpus = sum(w.cpus for w in workers)
    able_cpus = sum(w.cpus for w in able)
    waiting = job.started_at is None
    if waiting and able_cpus and len(recent) >= 2 and recent[-1][1] > recent[0][1]:
        rate = (len(recent) - 1) / (recent[-1][1] - recent[0][1]) * able_cpus / all_cpus
        answer["estimated_start"] = now + ahead / rate
    answer["grants_ahead"] = round(ahead)
    return answer


def backups(state: ParkState, job: JobView, now: float) -> list[dict[str, Any]]:
    """The job's units running twice: a straggler and its backup attempt (by unit id)."""
    twice = [u for u in (state.units.get(i) for i in job.unit_ids) if u and u.backup_worker_id]
    return [
        {
            "unit": unit.id,
            "worker": unit.worker_id,
            "running_for": now - (unit.granted_at or now),
            "backup_worker": unit.backup_worker_id,
            "backup_running_for": now - (unit.backup_granted_at or now),
            "straggler_after": straggler_after(state, job),
        }
        for unit in sorted(twice, key=lambda u: u.id)
    ]


def running_progress(state: ParkState, job: JobView, now: float) -> dict[str, Any]:
    """A started job: how far it is, and when it finishes at its rate so far (for the
    units planned so far; a fit may plan more)."""
    done, total = job.units_done, job.units_total
    running = sum(1 for u in job.unit_ids if u in state.leased)
    elapsed = max(0.0, now - (job.started_at or now))
    text = f"running for {elapsed:.0f} s: {done}/{total} units done, {running} running"
    finish = None
    if done and elapsed > 0 and total > done:
        finish = now + (total - done) / (done / elapsed)
        text += f"; expected to finish in about {finish - now:.0f} s at its rate so far"
    return {
        "progress": {"done": done, "total": total, "running": running},
        "expected_finish": finish,
        "progress_text": text,
    }


def price_table(state: ParkState) -> dict[str, dict[str, float]]:
    policy = state.policy
    return {p.value: {"weight": policy.weights[p], "price": policy.prices[p]} for p in Priority}


__all__ = ["explain", "price_table"]
