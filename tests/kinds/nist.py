"""Read NIST StRD nonlinear-regression files as they are: data, start values, certified
values and the model formula all come from the file text."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

# NIST's files, unchanged, in tests/data/nist-strd/ (PARK_NIST_DIR may point elsewhere).
NIST_DIR = Path(
    os.environ.get("PARK_NIST_DIR") or Path(__file__).resolve().parents[1] / "data" / "nist-strd"
)

_PARAM = re.compile(r"^\s*(b\d+)\s*=\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


@dataclass(frozen=True)
class NistProblem:
    name: str
    model: str
    names: list[str]
    start1: list[float]
    start2: list[float]
    certified: list[float]
    certified_sd: list[float]
    residual_ss: float
    dof: int
    x: list[float]
    y: list[float]
    data_text: str
    columns: dict[str, int]

    def spec(self, method: str, options: dict[str, object] | None = None) -> dict[str, object]:
        """A `fit` spec from Start 1, no bounds, no dy (as NIST fits them)."""
        return {
            "model": self.model,
            "data": {"x": self.x, "y": self.y},
            "parameters": {n: {"value": v} for n, v in zip(self.names, self.start1, strict=True)},
            "method": method,
            "options": dict(options or {}),
        }


def _model_formula(lines: list[str]) -> str:
    """The `y = ... + e` formula after the `Model:` heading, in park's expression syntax."""
    start = next(i for i, line in enumerate(lines) if line.startswith("Model:"))
    text = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped.startswith("y") and "=" in stripped:
            text.append(stripped.split("=", 1)[1])
        elif text:
            text.append(stripped)
        if text and re.search(r"\+\s*e\s*$", text[-1]):
            break
    formula = " ".join(text)
    formula = re.sub(r"\+\s*e\s*$", "", formula).strip()
    return formula.replace("[", "(").replace("]", ")")


def load(path: Path) -> NistProblem:
    lines = path.read_text().splitlines()
    names, s1, s2, cert, sd = [], [], [], [], []
    for line in lines:
        m = _PARAM.match(line)
        if m:
            names.append(m.group(1))
            s1.append(float(m.group(2)))
            s2.append(float(m.group(3)))
            cert.append(float(m.group(4)))
            sd.append(float(m.group(5)))
    rss = next(float(x.split()[-1]) for x in lines if x.startswith("Residual Sum of Squares"))
    dof = next(int(x.split()[-1]) for x in lines if x.startswith("Degrees of Freedom"))
    head = next(i for i, x in enumerate(lines) if re.match(r"^Data:\s+y\s+x\s*$", x))
    columns = {c: i for i, c in enumerate(lines[head].split()[1:])}
    rows = [[float(v) for v in x.split()] for x in lines[head + 1 :] if x.strip()]
    return NistProblem(
        name=path.stem,
        model=_model_formula(lines),
        names=names,
        start1=s1,
        start2=s2,
        certified=cert,
        certified_sd=sd,
        residual_ss=rss,
        dof=dof,
        x=[r[columns["x"]] for r in rows],
        y=[r[columns["y"]] for r in rows],
        data_text="\n".join(lines[head + 1 :]),
        columns=columns,
    )


def all_problems() -> list[NistProblem]:
    return [load(p) for p in sorted(NIST_DIR.glob("*.dat"))]


def digits(value: float, certified: float) -> float:
    """Log relative error: the number of significant digits `value` shares with
    `certified` (NIST's LRE), capped at 15."""
    if value == certified:
        return 15.0
    if certified == 0:
        return -math.log10(abs(value))
    return min(15.0, -math.log10(abs(value - certified) / abs(certified)))
