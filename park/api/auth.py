"""Who is calling: bearer tokens when the server requires them, trusted names otherwise.

A token file has one token per line: `TOKEN USER [ROLE]`, ROLE being `user` (the
default), `worker` (may register workers and report units) or `admin` (both, and may act
on any job). Blank lines and `#` comments are skipped.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from fastapi import Header

from park.errors import Forbidden, InvalidRequest, Unauthorized


class Role(StrEnum):
    USER = "user"
    WORKER = "worker"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller as the server knows it. `user` is None when nothing proves who it is."""

    user: str | None
    role: Role
    authenticated: bool

    def acting_user(self) -> str | None:
        """The user whose jobs this caller may touch; None means any (admin, or no auth)."""
        if self.role is Role.ADMIN:
            return None
        return self.user

    def require_worker(self) -> None:
        if self.authenticated and self.role not in (Role.WORKER, Role.ADMIN):
            raise Forbidden("this call needs a worker token")


@dataclass(frozen=True, slots=True)
class TokenTable:
    tokens: dict[str, tuple[str, Role]]

    @classmethod
    def load(cls, path: str | Path) -> TokenTable:
        tokens: dict[str, tuple[str, Role]] = {}
        for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) not in (2, 3):
                raise ValueError(f"{path}:{number}: expected 'TOKEN USER [ROLE]'")
            role = Role(parts[2]) if len(parts) == 3 else Role.USER
            tokens[parts[0]] = (parts[1], role)
        return cls(tokens)

    def identify(self, authorization: str | None) -> Caller:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized("a bearer token is required (Authorization: Bearer TOKEN)")
        presented = authorization[7:].strip()
        for token, (user, role) in self.tokens.items():
            if hmac.compare_digest(token, presented):
                return Caller(user=user, role=role, authenticated=True)
        raise Unauthorized("unknown token")


def caller_dependency(tokens: TokenTable | None) -> Callable[..., Caller]:
    """A FastAPI dependency naming the caller: by bearer token when the server has
    tokens, else by the `X-Park-User` header (trusted, loopback)."""

    def caller(
        authorization: str | None = Header(default=None),
        x_park_user: str | None = Header(default=None),
    ) -> Caller:
        if tokens is not None:
            return tokens.identify(authorization)
        return trusted_caller(x_park_user)

    return caller


def trusted_caller(user_header: str | None) -> Caller:
    """Without tokens (loopback, or explicitly insecure) the client names itself."""
    if user_header is not None and not user_header.strip():
        raise InvalidRequest("X-Park-User: must not be empty", field="X-Park-User")
    return Caller(user=user_header, role=Role.USER, authenticated=False)
