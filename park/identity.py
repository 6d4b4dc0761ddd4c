"""Who the user is, as far as the client can tell (DESIGN.md section 4)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def usertag(environ: Mapping[str, str] | None = None) -> str:
    """`PARKTAG`, else the user part of `PARKMAIL`, else `LOGNAME` unless it is `root`,
    else `USERNAME` unless it is `Administrator`, else the host name."""
    env = os.environ if environ is None else environ
    if env.get("PARKTAG"):
        return env["PARKTAG"]
    if env.get("PARKMAIL"):
        return env["PARKMAIL"].split("@", 1)[0]
    if env.get("LOGNAME") and env["LOGNAME"] != "root":
        return env["LOGNAME"]
    if env.get("USERNAME") and env["USERNAME"] != "Administrator":
        return env["USERNAME"]
    return socket.gethostname()


class NoAddress(ValueError):
    """Notification was asked for with no address, and PARKMAIL is not set."""


def notify_request(
    notify: object, environ: Mapping[str, str] | None = None
) -> str | dict[str, object] | None:
    """The `notify` of a submission: `True` (or a dict without `email` and `webhook`)
    takes the address from `PARKMAIL`; an address or a full dict goes as given."""
    env = os.environ if environ is None else environ
    if notify is None or notify is False:
        return None
    if notify is True:
        notify = {}
    if isinstance(notify, dict) and not notify.get("email") and not notify.get("webhook"):
        if not env.get("PARKMAIL"):
            raise NoAddress("notify: no e-mail address given and PARKMAIL is not set")
        notify = {**notify, "email": env["PARKMAIL"]}
    if not isinstance(notify, str | dict):
        raise NoAddress("notify: an e-mail address, True (PARKMAIL) or {email, when, webhook}")
    return notify
