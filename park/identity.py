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
