"""The edge: SMTP through aiosmtplib, webhooks through httpx. Nothing here decides what to
send or records anything; a failure is an exception the notifier records and retries."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import httpx


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """`--smtp smtp[s]://[user[:password]@]host[:port][?timeout=SECONDS]`: `smtps` speaks
    TLS from the start (port 465 by default); `smtp` upgrades with STARTTLS whenever the
    server offers it (port 25 by default, 587 for most submission servers). The password
    may come from a file instead (`--smtp-password-file`), to keep it out of `ps`."""

    host: str
    port: int
    tls: bool = False  # smtps: TLS from the start
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, password_file: str | Path | None = None) -> SmtpSettings:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"--smtp: expected smtp[s]://[user:password@]host:port, not {url!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"--smtp: bad port in {url!r}") from None
        tls = parts.scheme == "smtps"
        password = unquote(parts.password) if parts.password else None
        if password_file is not None:
            try:
                password = Path(password_file).read_text().strip()
            except OSError as err:
                raise ValueError(f"--smtp-password-file: {err}") from None
        timeout = 30.0
        for key, values in parse_qs(parts.query).items():
            if key != "timeout":
                raise ValueError(f"--smtp: unknown option {key!r} (known: timeout)")
            try:
                timeout = float(values[-1])
            except ValueError:
                raise ValueError(f"--smtp: timeout must be seconds, not {values[-1]!r}") from None
        return cls(
            host=parts.hostname,
            port=port or (465 if tls else 25),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=password,
            timeout=timeout,
        )

    def describe(self) -> str:
        """For banners and logs: never the password."""
        who = f"{self.username}@" if self.username else ""
        return f"{'smtps' if self.tls else 'smtp'}://{who}{self.host}:{self.port}"


class Mailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        """Accepted when this returns. Once the server has accepted, nothing may fail or
        wait (a failed QUIT would send the message again), and a send cut off (cancelled)
        drops the connection at once: so the connection is closed, not QUIT."""
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.tls,
            start_tls=False if s.tls else None,  # None: STARTTLS when the server offers it
            username=s.username,
            password=s.password,
            timeout=s.timeout,
        )
        try:
            await client.connect()
            await client.send_message(message)
        finally:
            client.close()  # no QUIT: nothing after the acceptance may fail or wait


def signature(secret: bytes, body: bytes) -> str:
    """The `X-Park-Signature` header: `sha256=` and the HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSender:
    """POST the JSON body, signed; any 2xx is delivered, anything else is retried."""

    def __init__(self, secret: bytes, timeout: float = 30.0) -> None:
        self.secret = secret
        self.timeout = timeout

    def body(self, payload: dict[str, Any]) -> bytes:
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()

    async def post(self, url: str, key: str, payload: dict[str, Any]) -> None:
        body = self.body(payload)
        headers = {
            "Content-Type": "application/json",
            "X-Park-Signature": signature(self.secret, body),
            "X-Park-Delivery": key,  # the same on every attempt: a receiver can drop repeats
            "User-Agent": "park-notifier",
        }
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            answer = await client.post(url, content=body, headers=headers)
        if not answer.is_success:
            raise RuntimeError(f"webhook answered {answer.status_code}")
