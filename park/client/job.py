"""`Job`: a handle on one job of one service; holds its id, asks the service each time."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from park.client.errors import JobCancelled, JobFailed
from park.domain import JobStatus

if TYPE_CHECKING:
    from park.client.service import RemoteService

FINAL = frozenset(status.value for status in JobStatus if status.is_final)
PROGRESS_SECONDS = 1.0  # the longest a waiting progress bar goes without news


class Job:
    def __init__(self, job_id: str, service: RemoteService) -> None:
        self.id = job_id
        self.service = service

    def __repr__(self) -> str:
        return f"Job({self.id!r}, service={self.service.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and (other.id, other.service) == (self.id, self.service)

    def __hash__(self) -> int:
        return hash(self.id)

    def info(self) -> dict[str, Any]:
        """Everything the service says of the job (status, progress, tags, ...)."""
        return self.service.get_job(self.id)

    def status(self) -> str:
        return str(self.info()["status"])

    def progress(self) -> dict[str, Any]:
        return dict(self.info()["progress"])

    def wait(self, timeout: float | None = None, progress: bool = True) -> Any:
        """Block until the job finishes and return its result (raising if it failed or was
        cancelled); with `progress`, show a progress bar (terminal or notebook)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        columns = (
            TextColumn(f"[bold]{self.id}"),
            TextColumn("{task.fields[status]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task(self.id, total=None, status="pending")
            info = self.info()
            while True:
                progress_now = info["progress"]
                status = info["status"]
                if progress_now.get("best_chisq") is not None:  # a fit: best chi-squared yet
                    status = f"{status} chi2={progress_now['best_chisq']:.6g}"
                bar.update(
                    task,
                    completed=progress_now["done"],
                    total=progress_now["total"] or None,
                    status=status,
                )
                if info["status"] in FINAL:
                    break
                left = PROGRESS_SECONDS
                if deadline is not None:
                    left = min(left, deadline - time.monotonic())
                    if left <= 0:
                        raise TimeoutError(f"job {self.id} still {info['status']} after {timeout}s")
                # The server answers as the job ends, else after `left` (the bar moves).
                info = self.service.get_job(self.id, wait=left)
        return self.result()

    def result(self) -> Any:
        """The result of a finished job; JobFailed / JobCancelled if it did not complete."""
        answer = self.service.result(self.id)
        if answer["status"] == "failed":
            raise JobFailed(f"job {self.id} failed: {answer['error']}")
        if answer["status"] == "cancelled":
            raise JobCancelled(f"job {self.id} was cancelled")
        return answer["result"]

    def cancel(self) -> None:
        self.service.cancel(self.id)

    def explain(self) -> dict[str, Any]:
        """Why the job waits: its reasons, rank, share and estimated start."""
        return self.service.explain(self.id)

    def set_priority(self, priority: str) -> None:
        self.service.set_priority(self.id, priority)

    def after(self, callback: Callable[[Job], object]) -> threading.Thread:
        """Call `callback(job)` from a background thread once the job has finished."""

        def watch() -> None:
            with contextlib.suppress(JobFailed, JobCancelled):
                self.wait(progress=False)
            callback(self)

        thread = threading.Thread(target=watch, name=f"park-after-{self.id}", daemon=True)
        thread.start()
        return thread
