"""The core imports no I/O library: events schema, projections, scheduler, kinds, commands,
the step/fold core and the ask bookkeeping of the Kafka mode."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PARK = Path(__file__).resolve().parent.parent / "park"
CORE = [
    PARK / "events" / "schema.py",
    PARK / "events" / "log.py",
    PARK / "events" / "upcasting.py",
    PARK / "events" / "published.py",
    PARK / "events" / "trusted.py",
    PARK / "commands.py",
    PARK / "core.py",
    PARK / "protocol.py",
    PARK / "service" / "asks.py",
    PARK / "domain.py",
    PARK / "errors.py",
    *sorted((PARK / "projections").rglob("*.py")),
    *sorted((PARK / "scheduler").rglob("*.py")),
    *sorted((PARK / "kinds").rglob("*.py")),
]
IO_LIBRARIES = {
    "sqlite3", "httpx", "fastapi", "starlette", "uvicorn", "aiokafka", "faust", "socket",
    "requests", "aiosmtplib", "smtplib", "asyncio", "subprocess", "park.api", "park.client",
    "park.service", "park.worker", "park.events.sqlite", "park.events.kafka",
}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PARK)))
def test_core_module_imports_no_io_library(path: Path) -> None:
    bad = {
        name
        for name in imported_modules(path)
        if any(name == lib or name.startswith(lib + ".") for lib in IO_LIBRARIES)
    }
    assert not bad, f"{path.relative_to(PARK)} imports {sorted(bad)}"
