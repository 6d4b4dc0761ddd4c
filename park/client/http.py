"""A thin synchronous HTTP client for the park API, raising park's client exceptions."""

from __future__ import annotations

from typing import Any

import httpx

from park.client.errors import BadRequest, ServiceUnavailable

DEFAULT_SERVER = "http://127.0.0.1:8080"


class ParkHttp:
    def __init__(self, server: str = DEFAULT_SERVER, token: str | None = None) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=60.0)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise ServiceUnavailable(f"park server at {self.server} unreachable: {err}") from err
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message, code = error["message"], error["code"]
            except Exception:
                message, code = response.text or response.reason_phrase, "http_error"
            if response.status_code >= 500:
                raise ServiceUnavailable(f"{response.status_code}: {message}")
            raise BadRequest(message, status=response.status_code, code=code)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def close(self) -> None:
        self._http.close()
