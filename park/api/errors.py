"""How the API answers what goes wrong: one JSON shape, `{"error": {"code", "message",
"details"}}`, the message starting with the field at fault; bodies over the limit refused
with 413 before anything reads them; never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from park.errors import ParkError

log = logging.getLogger("park.api")


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}},
        status_code=status,
        headers=headers,
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    if parts and parts[0] in ("query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _park_error(request: Request, err: ParkError) -> JSONResponse:
    details = {"field": err.field} if err.field else err.details
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
    return error_response(err.status, err.code, err.message, details, headers)


async def _invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
    problems = [{"field": _field_path(tuple(e["loc"])), "message": e["msg"]} for e in err.errors()]
    first = problems[0] if problems else {"field": "body", "message": "invalid"}
    message = f"{first['field']}: {first['message']}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more)"
    return error_response(422, "invalid", message, problems)


async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    code = "too_large" if err.status_code == 413 else "http_error"
    message = str(err.detail)
    if err.status_code == 400 and not message.startswith("body"):
        # FastAPI could not parse the body (nested too deep, a number too long)
        message = f"body: {message[:1].lower()}{message[1:]}"
    return error_response(err.status_code, code, message)


async def _unexpected(request: Request, err: Exception) -> JSONResponse:
    """A bug, not bad input: still the JSON error shape, never a traceback."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", f"internal error: {type(err).__name__}")


def answer_errors_as_json(app: FastAPI) -> None:
    app.add_exception_handler(ParkError, _park_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


class BodyLimit:
    """Refuse bodies over the limit with 413 before anything reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # (raised while FastAPI reads the body, so it must be its HTTPException)
                raise HTTPException(413, f"body: larger than the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "too_large", f"body: larger than the limit of {self.max_bytes} bytes"
        )
        await response(scope, receive, send)
