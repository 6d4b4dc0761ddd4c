"""Services a client talks to. Both speak the same HTTP contract, so a script behaves the
same against either; the local one just starts its own server first."""

from __future__ import annotations

from typing import Any

from park.client.http import ParkHttp


class RemoteService:
    """A park server reached over HTTP (`with park.remote(url):`)."""

    def __init__(self, url: str, token: str | None = None, *, name: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.name = name or self.url
        self._http: ParkHttp | None = None

    @property
    def http(self) -> ParkHttp:
        if self._http is None:
            self._http = ParkHttp(self.url, self.token)
        return self._http

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.http.post("/v1/jobs", body))

    def get_job(self, job_id: str, wait: float = 0.0) -> dict[str, Any]:
        """The job; with `wait`, once it has ended or after that many seconds."""
        return dict(self.http.get(f"/v1/jobs/{job_id}", wait=wait or None))

    def result(self, job_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/jobs/{job_id}/result"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(self.http.post(f"/v1/jobs/{job_id}/cancel"))

    def set_priority(self, job_id: str, priority: str) -> dict[str, Any]:
        return dict(self.http.patch(f"/v1/jobs/{job_id}", {"priority": priority}))

    def explain(self, job_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/jobs/{job_id}/explain"))

    def list_jobs(
        self,
        *,
        status: list[str] | None = None,
        tags: list[str] | None = None,
        limit: int | None = 1000,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """Jobs newest first, in memory or archived, page by page up to `limit` (None: all);
        `filters`: user, kind, since, until."""
        found: list[dict[str, Any]] = []
        before = None
        while limit is None or len(found) < limit:
            page = 1000 if limit is None else min(1000, limit - len(found))
            answer = self.http.get(
                "/v1/jobs", status=status or None, tag=tags or None, limit=page, before=before,
                **filters,
            )  # fmt: skip
            found += answer["jobs"]
            before = answer.get("next")
            if before is None:
                break
        return found

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
