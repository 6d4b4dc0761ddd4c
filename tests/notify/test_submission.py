"""Asking for notification at submission: validated (422 naming the field), shown back,
PARKMAIL as the default address, a user's own pending notices listed and cancelled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from park.api.app import ApiSettings, create_app
from park.api.auth import TokenTable
from park.events.sqlite import SqliteEventLog
from park.identity import NoAddress, notify_request
from park.service.engine import ParkService

SPEC = {"function": "park.builtins:sleep", "inputs": [0]}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    tokens = tmp_path / "tokens"
    tokens.write_text("ta alice user\ntb bob user\n")
    service = ParkService(SqliteEventLog.in_data_dir(tmp_path))
    app = create_app(service, ApiSettings(tokens=TokenTable.load(tokens)))
    with TestClient(app) as client:
        yield client


def as_user(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submit(client: TestClient, notify: Any, token: str = "ta") -> Any:
    return client.post(
        "/v1/jobs", json={"kind": "map", "spec": SPEC, "notify": notify}, headers=as_user(token)
    )


@pytest.mark.parametrize(
    ("notify", "field"),
    [
        ("not an address", "notify.email"),
        ("alice@", "notify.email"),
        ("a@b.c, eve@evil.example", "notify.email"),
        ({"email": "alice@lab.example", "when": "weekly"}, "notify.when"),
        ({"email": "alice@lab.example", "webhook": "ftp://x"}, "notify.webhook"),
        ({"email": "alice@lab.example", "cc": "x@y.z"}, "notify.cc"),
        ({"when": "each"}, "notify"),
        (42, "notify"),
    ],
)
def test_bad_notify_is_refused_naming_the_field(
    client: TestClient, notify: Any, field: str
) -> None:
    before = client.get("/healthz").json()["offset"]
    answer = submit(client, notify)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["message"].startswith(f"{field}:"), error
    assert client.get("/healthz").json()["offset"] == before  # nothing appended


def test_what_was_asked_is_shown_and_the_server_says_it_sends_no_mail(
    client: TestClient,
) -> None:
    job = submit(client, "alice@lab.example").json()
    assert job["notify"] == {"email": "alice@lab.example", "when": "digest", "webhook": None}
    hooked = submit(client, {"webhook": "https://hooks.lab.example/park", "when": "each"}).json()
    assert hooked["notify"]["webhook"] == "https://hooks.lab.example/park"
    shown = client.get(f"/v1/jobs/{job['id']}/notifications", headers=as_user("ta")).json()
    assert shown["notify"]["email"] == "alice@lab.example"
    assert shown["mail_note"] == "this server sends no mail (it runs without --smtp)"
    assert client.get(f"/v1/jobs/{job['id']}", headers=as_user("tb")).json().get("notify") is None
    other = client.get(f"/v1/jobs/{job['id']}/notifications", headers=as_user("tb"))
    assert other.status_code == 404


def test_users_list_and_cancel_only_their_own_pending_notifications(
    client: TestClient,
) -> None:
    mine = submit(client, {"email": "alice@lab.example", "when": "each"}).json()["id"]
    daily = submit(client, "alice@lab.example").json()["id"]
    theirs = submit(client, {"email": "bob@lab.example", "when": "each"}, "tb").json()["id"]
    for job, token in ((mine, "ta"), (daily, "ta"), (theirs, "tb")):
        assert client.post(f"/v1/jobs/{job}/cancel", headers=as_user(token)).status_code == 200
    listed = client.get("/v1/notifications", headers=as_user("ta")).json()["notifications"]
    assert sorted((n["kind"], n["jobs"][0], n["status"]) for n in listed) == sorted(
        [("each", mine, "due"), ("digest", daily, "waiting")]
    )
    refused = client.post(
        "/v1/notifications/cancel", json={"job_ids": [theirs]}, headers=as_user("ta")
    )
    assert refused.status_code == 403
    done = client.post(
        "/v1/notifications/cancel", json={"job_ids": [mine, daily]}, headers=as_user("ta")
    )
    assert done.status_code == 200, done.text
    assert client.get("/v1/notifications", headers=as_user("ta")).json()["notifications"] == []
    everything = client.get("/v1/notifications?all=true", headers=as_user("ta")).json()
    assert [n["status"] for n in everything["notifications"]] == ["cancelled"]
    bobs = client.get("/v1/notifications", headers=as_user("tb")).json()["notifications"]
    assert [n["jobs"] for n in bobs] == [[theirs]]
    unknown = client.post(
        "/v1/notifications/cancel", json={"keys": ["each/email/nope"]}, headers=as_user("ta")
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["message"].startswith("keys:")


def test_parkmail_is_the_address_when_none_is_given() -> None:
    env = {"PARKMAIL": "alice@lab.example"}
    assert notify_request(True, env) == {"email": "alice@lab.example"}
    assert notify_request({"when": "each"}, env) == {"email": "alice@lab.example", "when": "each"}
    assert notify_request("bob@lab.example", env) == "bob@lab.example"
    assert notify_request(None, env) is None
    with pytest.raises(NoAddress, match="PARKMAIL"):
        notify_request(True, {})
