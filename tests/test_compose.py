"""docker-compose.yml and the Dockerfile, checked offline (no Docker engine runs here): every
park service's command parses with the `park` CLI as it is, every module it runs exists,
and every environment variable it sets is one the code reads."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from park.cli import build_parser
from park.settings import ENV_PREFIX, SETTINGS_CLASSES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PARK_SERVICES = {name: s for name, s in SERVICES.items() if s.get("build") == "."}
SOURCE = "\n".join(p.read_text() for p in sorted((ROOT / "park").rglob("*.py")))


def test_the_layout_the_issue_asks_for() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")  # the official image, KRaft mode
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    roles = [tuple(s["command"][:2]) for s in PARK_SERVICES.values()]
    assert roles.count(("park", "serve")) == 2
    assert roles.count(("park", "scheduler")) == 2
    assert roles.count(("park", "worker")) >= 2
    assert ("python", "-m") in roles  # the faust app


@pytest.mark.parametrize("name", sorted(PARK_SERVICES))
def test_each_command_parses_with_the_park_cli(name: str) -> None:
    command = PARK_SERVICES[name]["command"]
    if command[:2] == ["python", "-m"]:
        module = command[2]
        assert module.startswith("park.")
        assert importlib.util.find_spec(module) is not None, module
        return
    assert command[0] == "park"
    args = build_parser().parse_args(command[1:])  # exits (fails) on an unknown option
    assert args.command == command[1]
    if command[1] in ("serve", "scheduler"):
        # The log comes from PARK_LOG in the environment: a Kafka URL.
        assert PARK_SERVICES[name]["environment"]["PARK_LOG"].startswith("kafka://kafka:9092/")


SETTINGS = {f"{ENV_PREFIX}{f.upper()}" for c in SETTINGS_CLASSES for f in c.model_fields}


@pytest.mark.parametrize("name", sorted(PARK_SERVICES))
def test_each_environment_variable_is_read_by_the_code(name: str) -> None:
    for variable in PARK_SERVICES[name].get("environment", {}):
        read = variable in SETTINGS or re.search(rf"[\"']{variable}[\"']", SOURCE)
        assert read, f"{name}: nothing reads {variable}"


def api_servers() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in PARK_SERVICES.items() if s["command"][:2] == ["park", "serve"]}


def test_api_servers_have_a_health_check_and_workers_wait_for_it() -> None:
    for name, service in api_servers().items():
        check = " ".join(service["healthcheck"]["test"])
        assert "/healthz" in check and ":8080" in check, name
        assert service["healthcheck"]["retries"] >= 3
    workers = [s for s in PARK_SERVICES.values() if s["command"][:2] == ["park", "worker"]]
    assert workers
    for worker in workers:
        waits_for = worker["depends_on"]
        assert isinstance(waits_for, dict)
        healthy = [n for n, c in waits_for.items() if c.get("condition") == "service_healthy"]
        assert set(healthy) & set(api_servers()), worker["command"]


def test_ports_are_published_on_loopback_unless_tokens_are_configured() -> None:
    for name, service in SERVICES.items():
        tokens = "--tokens" in service.get("command", []) or "PARK_TOKENS" in service.get(
            "environment", {}
        )
        for port in service.get("ports", []):
            if not tokens:
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to all"


def test_api_servers_publish_distinct_ports_and_workers_point_at_them() -> None:
    published = [p for s in PARK_SERVICES.values() for p in s.get("ports", [])]
    assert len(published) == len(set(published)) == 2
    apis = {n for n, s in PARK_SERVICES.items() if s["command"][:2] == ["park", "serve"]}
    for s in PARK_SERVICES.values():
        if s["command"][:2] == ["park", "worker"]:
            host = s["environment"]["PARK_SERVER"].split("//")[1].split(":")[0]
            assert host in apis


def test_the_dockerfile_installs_park_with_the_faust_extra() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", dockerfile, re.M)
    assert "pip install" in dockerfile and ".[faust]" in dockerfile
    assert re.search(r"^USER ", dockerfile, re.M)  # not root
