"""The data of a fit: x, y and optional dy, as JSON lists or as the text of a file.

Text (an uploaded CSV or whitespace-column file) is parsed at submission, so the stored
spec and every unit carry plain number lists and workers never see the file's quirks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from park.kinds.base import SpecError

MAX_POINTS = 1_000_000
ROLES = ("x", "y", "dy")


def _numbers(field: str, value: Any) -> list[float]:
    if not isinstance(value, list) or not value:
        raise SpecError(field, "must be a non-empty list of numbers")
    out: list[float] = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise SpecError(f"{field}[{i}]", "must be a finite number")
        out.append(float(v))
    return out


def _split(line: str, fmt: str) -> list[str]:
    if fmt == "csv":
        return [c.strip().strip('"').strip("'") for c in re.split(r"[,;]", line)]
    return line.split()


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def parse_text(
    text: str, fmt: str = "auto", columns: Sequence[str | None] | Mapping[str, int] | None = None
) -> dict[str, list[float]]:
    """Columns of a CSV or whitespace file. `columns` names them in order (None skips
    one) or maps role -> index; without it a header line naming x, y, dy is used, else
    the order x, y, dy. Blank lines and `#` comments are skipped."""
    field = "spec.data.text"
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise SpecError(field, "no data lines")
    if fmt == "auto":
        fmt = "csv" if ("," in lines[0] or ";" in lines[0]) else "whitespace"
    if fmt not in ("csv", "whitespace"):
        raise SpecError("spec.data.format", "must be 'csv', 'whitespace' or 'auto'")
    header: list[str] | None = None
    first = _split(lines[0], fmt)
    if not all(_is_number(t) for t in first):
        header = [t.lower() for t in first]
        lines = lines[1:]
    index: dict[str, int]
    if columns is None:
        if header is not None:
            index = {role: header.index(role) for role in ROLES if role in header}
        else:
            index = {role: i for i, role in enumerate(ROLES) if i < len(first)}
    elif isinstance(columns, Mapping):
        index = {}
        for role, i in columns.items():
            if role not in ROLES:
                raise SpecError(f"spec.data.columns.{role}", "must be one of x, y, dy")
            if isinstance(i, bool) or not isinstance(i, int) or i < 0:
                raise SpecError(f"spec.data.columns.{role}", "must be a column index >= 0")
            index[role] = i
    elif isinstance(columns, list):
        index = {}
        for i, role in enumerate(columns):
            if role is None or role in ("", "_", "-"):
                continue
            if role not in ROLES:
                raise SpecError(f"spec.data.columns[{i}]", "must be x, y, dy or null")
            index[role] = i
    else:
        raise SpecError("spec.data.columns", "must be a list of column names or an object")
    if "x" not in index or "y" not in index:
        raise SpecError("spec.data.columns", "need an x and a y column")
    out: dict[str, list[float]] = {role: [] for role in index}
    for lineno, line in enumerate(lines, start=1):
        tokens = _split(line, fmt)
        for role, i in index.items():
            if i >= len(tokens):
                raise SpecError(field, f"data line {lineno} has no column {i}")
            try:
                value = float(tokens[i])
            except ValueError:
                raise SpecError(
                    field, f"data line {lineno}: {tokens[i]!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise SpecError(field, f"data line {lineno}: {tokens[i]!r} is not finite")
            out[role].append(value)
    return out


def parse_data(data: Any) -> dict[str, Any]:
    """Normalise `spec.data` to {"x": [...], "y": [...], "dy": [...] or None}."""
    if isinstance(data, str):
        data = {"text": data}
    if not isinstance(data, dict):
        raise SpecError("spec.data", "must be an object with x and y, or with text")
    if "text" in data:
        unknown = set(data) - {"text", "format", "columns"}
        if unknown:
            raise SpecError(f"spec.data.{sorted(unknown)[0]}", "unknown field")
        if not isinstance(data["text"], str):
            raise SpecError("spec.data.text", "must be the text of a CSV or whitespace file")
        fmt = data.get("format", "auto")
        if not isinstance(fmt, str):
            raise SpecError("spec.data.format", "must be 'csv', 'whitespace' or 'auto'")
        columns = parse_text(data["text"], fmt, data.get("columns"))
        x, y, dy = columns["x"], columns["y"], columns.get("dy")
    else:
        unknown = set(data) - set(ROLES)
        if unknown:
            raise SpecError(f"spec.data.{sorted(unknown)[0]}", "unknown field (x, y, dy, text)")
        if "x" not in data:
            raise SpecError("spec.data.x", "field required")
        if "y" not in data:
            raise SpecError("spec.data.y", "field required")
        x = _numbers("spec.data.x", data["x"])
        y = _numbers("spec.data.y", data["y"])
        dy = _numbers("spec.data.dy", data["dy"]) if data.get("dy") is not None else None
    if len(y) != len(x):
        raise SpecError("spec.data.y", f"has {len(y)} values but x has {len(x)}")
    if len(x) > MAX_POINTS:
        raise SpecError("spec.data.x", f"more than {MAX_POINTS} points")
    if dy is not None:
        if len(dy) != len(x):
            raise SpecError("spec.data.dy", f"has {len(dy)} values but x has {len(x)}")
        if any(v <= 0 for v in dy):
            raise SpecError("spec.data.dy", "uncertainties must be positive")
    return {"x": x, "y": y, "dy": dy}
