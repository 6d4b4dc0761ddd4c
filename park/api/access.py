"""Who may do what through the API: every authorization rule in one place, and the
dependencies that hand a route its service, its caller and these rules.

The caller is named by `park.api.auth` (a bearer token, or a trusted header on loopback).
Here: the raw log and budgets need an admin; a job's private parts (spec, error, result,
units, plot) are its owner's (and an admin's); a worker token acts only for the workers it
registered. Without tokens every caller is trusted, as `Caller.acting_user` says.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from park.api.auth import Caller, Role, TokenTable, trusted_caller
from park.errors import Conflict, Forbidden, NotFound
from park.projections.state import JobView
from park.service.engine import ParkService
from park.service.history import find_job


class Access:
    def __init__(self, service: ParkService, tokens: TokenTable | None) -> None:
        self.service = service
        self.tokens = tokens

    def identify(self, authorization: str | None, user_header: str | None) -> Caller:
        """By bearer token when the server has tokens, else by the `X-Park-User` header
        (trusted: loopback, or explicitly insecure)."""
        if self.tokens is not None:
            return self.tokens.identify(authorization)
        return trusted_caller(user_header)

    @staticmethod
    def require_admin(who: Caller, what: str) -> None:
        """`what` needs an admin token (when the server has tokens)."""
        if who.authenticated and who.role is not Role.ADMIN:
            raise Forbidden(f"{what} needs an admin token")

    @staticmethod
    def sees_private(job: JobView, who: Caller) -> bool:
        """Whether the caller may see the job's spec, error and result."""
        acting = who.acting_user()
        return acting is None or acting == job.user

    def job(self, job_id: str, who: Caller) -> tuple[JobView, bool]:
        """The job, in memory or archived (anyone may see its public view), and whether
        the caller may see its private parts too."""
        job = self.service.job(job_id)
        return job, self.sees_private(job, who)

    async def changeable_job(self, job_id: str, who: Caller) -> JobView:
        """The job a command is about, as soon as this server has folded what another
        recorded (read-your-writes). An archived job has finished long ago: nothing
        about it changes any more."""
        job, _ = await self.service.read_your_writes(lambda: self.job(job_id, who))
        if job.id not in self.service.state.jobs:
            raise Conflict(f"job {job_id!r} is {job.status.value} and archived; it cannot change")
        return job

    def own_job(self, job_id: str, who: Caller) -> JobView:
        """The job, if the caller may see its private parts; to anyone else it is not found."""
        job = find_job(self.service.state, self.service.archive, job_id)  # in memory or archived
        if job is None or not self.sees_private(job, who):
            mine = "" if job is None else " of yours"
            raise NotFound(f"job_id: no job {job_id!r}{mine}", field="job_id")
        return job

    def act_as_worker(self, worker_id: str, who: Caller) -> None:
        """A worker token may act only for the workers it registered (admins for any)."""
        who.require_worker()
        worker = self.service.state.workers.get(worker_id)
        if (
            who.authenticated
            and who.role is not Role.ADMIN
            and worker is not None
            and worker.registered_by != who.user
        ):
            raise Forbidden(f"worker {worker_id!r} was registered with another token")


# -- what a route may ask for (create_app puts the service and an Access on app.state) ---
# Coroutines, though they never wait: FastAPI runs a plain function dependency in a thread
# pool, three thread hops per request, which under a thousand workers' polls queued behind
# the pool's 40 threads and left the server's event loop idle (benchmarks/many_workers.py).


def _access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


async def access_of(request: Request) -> Access:
    return _access(request)


async def service_of(request: Request) -> ParkService:
    return _access(request).service


async def caller_of(
    request: Request,
    authorization: str | None = Header(default=None),
    x_park_user: str | None = Header(default=None),
) -> Caller:
    return _access(request).identify(authorization, x_park_user)


Rules = Annotated[Access, Depends(access_of)]
Service = Annotated[ParkService, Depends(service_of)]
Who = Annotated[Caller, Depends(caller_of)]
