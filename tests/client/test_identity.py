"""`usertag()`: every fallback step, in order."""

from __future__ import annotations

import socket

import pytest

from park import usertag


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"PARKTAG": "tagged", "PARKMAIL": "mail@x.org", "LOGNAME": "log"}, "tagged"),
        ({"PARKMAIL": "ann.lee@lab.example.org", "LOGNAME": "log"}, "ann.lee"),
        ({"PARKTAG": "", "PARKMAIL": "", "LOGNAME": "bob", "USERNAME": "win"}, "bob"),
        ({"LOGNAME": "root", "USERNAME": "carol"}, "carol"),
        ({"USERNAME": "dave"}, "dave"),
        ({"LOGNAME": "root", "USERNAME": "Administrator"}, socket.gethostname()),
        ({}, socket.gethostname()),
    ],
)
def test_usertag_fallbacks(environ: dict[str, str], expected: str) -> None:
    assert usertag(environ) == expected


def test_usertag_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PARKTAG", "PARKMAIL", "LOGNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGNAME", "erin")
    assert usertag() == "erin"
    monkeypatch.setenv("PARKMAIL", "frank@example.org")
    assert usertag() == "frank"
    monkeypatch.setenv("PARKTAG", "grace")
    assert usertag() == "grace"
