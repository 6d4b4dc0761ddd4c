"""Validation and normalisation of a `fit` spec.

Everything a worker will need is checked here, at submission, and the spec is rewritten in
one canonical form (defaults filled in, data as number lists, builtin models expanded), so
the folds and the workers never have to guess and a bad spec is a 422, not a failed job.
"""

from __future__ import annotations

import math
import re
from typing import Any

from park.kinds.base import SpecError
from park.kinds.fit.data import parse_data
from park.kinds.fit.model import BUILTINS, RESERVED, compile_expression
from park.kinds.map import check_function_name

METHODS = ("multistart", "de", "scan")
LOCAL_METHODS = ("trf", "lm", "dogbox")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MAX_STARTS = 100_000
MAX_GRID = 2_000_000

# name -> (default, check) per method; a check returns the normalised value or raises.
_COMMON: dict[str, Any] = {
    "seed": 0,
    "local": "trf",
    "xtol": 1e-15,
    "ftol": 1e-15,
    "gtol": 1e-15,
    "max_nfev": None,
    "scale_covar": None,
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "multistart": {**_COMMON, "starts": 16, "per_unit": None, "spread": 1.0},
    "de": {
        **_COMMON,
        "popsize": None,
        "generations": 200,
        "per_unit": None,
        "mutation": [0.5, 1.0],
        "crossover": 0.7,
        "strategy": "best1bin",
        "tol": 0.01,
        "spread": 1.0,
        "polish": 3,
        "polish_start": True,
    },
    "scan": {**_COMMON, "points": None, "per_unit": 1000, "log": [], "polish": True},
}


def _int(field: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SpecError(field, f"must be an integer from {lo} to {hi}")
    return value


def _float(field: str, value: Any, lo: float = -math.inf, hi: float = math.inf) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not lo <= value <= hi
    ):
        raise SpecError(field, f"must be a finite number from {lo} to {hi}")
    return float(value)


def parse_model(model: Any) -> dict[str, Any]:
    """`spec.model` as {"expr": ...} (builtins expanded) or {"function": "module:fn"}."""
    if isinstance(model, str):
        return {"expr": model}
    normalised = isinstance(model, dict) and set(model) == {"expr", "builtin"}
    if normalised and BUILTINS.get(model["builtin"], ("",))[0] == model["expr"]:
        return dict(model)
    if not isinstance(model, dict) or len(model) != 1:
        raise SpecError(
            "spec.model", "must be an expression, {'builtin': name} or {'function': 'mod:fn'}"
        )
    ((key, value),) = model.items()
    if key == "expr":
        return {"expr": value}
    if key == "builtin":
        if value not in BUILTINS:
            known = ", ".join(sorted(BUILTINS))
            raise SpecError("spec.model.builtin", f"unknown builtin model (known: {known})")
        return {"expr": BUILTINS[value][0], "builtin": value}
    if key == "function":
        return {"function": check_function_name("spec.model.function", value)}
    raise SpecError(f"spec.model.{key}", "unknown model form (expr, builtin, function)")


def parse_parameters(parameters: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(parameters, dict) or not parameters:
        raise SpecError("spec.parameters", "must be a non-empty object name -> {value, ...}")
    out: dict[str, dict[str, Any]] = {}
    for name, p in parameters.items():
        field = f"spec.parameters.{name}"
        if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED:
            raise SpecError(
                field,
                "parameter names are identifiers other than x and the function and constant names",
            )
        if not isinstance(p, dict):
            p = {"value": p}
        unknown = set(p) - {"value", "min", "max", "fixed"}
        if unknown:
            raise SpecError(f"{field}.{sorted(unknown)[0]}", "unknown field")
        if "value" not in p:
            raise SpecError(f"{field}.value", "field required")
        value = _float(f"{field}.value", p["value"])
        lo = None if p.get("min") is None else _float(f"{field}.min", p["min"])
        hi = None if p.get("max") is None else _float(f"{field}.max", p["max"])
        if lo is not None and hi is not None and not lo < hi:
            raise SpecError(f"{field}.max", "must be greater than min")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise SpecError(f"{field}.value", "must lie within [min, max]")
        fixed = p.get("fixed", False)
        if not isinstance(fixed, bool):
            raise SpecError(f"{field}.fixed", "must be true or false")
        out[name] = {"value": value, "min": lo, "max": hi, "fixed": fixed}
    return out


def _check_option(method: str, key: str, value: Any) -> Any:
    field = f"spec.options.{key}"
    if key == "seed":
        return _int(field, value, 0, 2**63 - 1)
    if key == "local":
        if value not in LOCAL_METHODS:
            raise SpecError(field, f"must be one of {', '.join(LOCAL_METHODS)}")
        return value
    if key in ("xtol", "ftol", "gtol"):
        return _float(field, value, 0.0, 1.0)
    if key == "max_nfev":
        return None if value is None else _int(field, value, 1, 10_000_000)
    if key == "scale_covar":
        if value is not None and not isinstance(value, bool):
            raise SpecError(field, "must be true, false or null (automatic)")
        return value
    if key == "starts":
        return _int(field, value, 1, MAX_STARTS)
    if key == "per_unit":
        if value is None and method != "scan":
            return None  # automatic
        return _int(field, value, 1, MAX_GRID)
    if key == "spread":
        return _float(field, value, 0.0, 10.0)
    if key == "popsize":
        return None if value is None else _int(field, value, 4, 10_000)
    if key == "generations":
        return _int(field, value, 0, 100_000)
    if key == "mutation":
        if isinstance(value, list):
            if len(value) != 2:
                raise SpecError(field, "must be a number or a [low, high] dither range")
            lo = _float(field, value[0], 0.0, 2.0)
            hi = _float(field, value[1], lo, 2.0)
            return [lo, hi]
        return _float(field, value, 0.0, 2.0)
    if key == "crossover":
        return _float(field, value, 0.0, 1.0)
    if key == "strategy":
        if value not in ("best1bin", "rand1bin"):
            raise SpecError(field, "must be 'best1bin' or 'rand1bin'")
        return value
    if key == "tol":
        return _float(field, value, 0.0)
    if key == "polish":
        if method == "scan":
            if not isinstance(value, bool):
                raise SpecError(field, "must be true or false")
            return value
        return _int(field, value, 0, 100)
    if key == "polish_start":
        if not isinstance(value, bool):
            raise SpecError(field, "must be true or false")
        return value
    if key == "points":
        if value is None:
            return None
        if isinstance(value, dict):
            return {k: _int(f"{field}.{k}", v, 1, MAX_GRID) for k, v in value.items()}
        return _int(field, value, 1, MAX_GRID)
    if key == "log":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SpecError(field, "must be a list of parameter names")
        return value
    raise SpecError(field, f"unknown option for method {method!r}")  # pragma: no cover


def parse_options(
    method: str, options: Any, parameters: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise SpecError("spec.options", "must be an object")
    defaults = DEFAULTS[method]
    unknown = set(options) - set(defaults)
    if unknown:
        key = sorted(unknown)[0]
        raise SpecError(f"spec.options.{key}", f"unknown option for method {method!r}")
    free = [n for n, p in parameters.items() if not p["fixed"]]
    out = {
        k: _check_option(method, k, options[k]) if k in options else d for k, d in defaults.items()
    }
    if out["local"] == "lm" and any(
        parameters[n]["min"] is not None or parameters[n]["max"] is not None for n in free
    ):
        raise SpecError("spec.options.local", "'lm' cannot honour bounds; use 'trf' or 'dogbox'")
    if method == "scan":
        for name in free:
            p = parameters[name]
            if p["min"] is None or p["max"] is None:
                raise SpecError(f"spec.parameters.{name}.min", "a scan needs min and max")
        points = out["points"]
        if points is None:  # about 10^4 points in all, at most 101 per axis
            per_axis = min(101, max(2, round(10_000 ** (1 / len(free)))))
            points = dict.fromkeys(free, per_axis)
        elif isinstance(points, int):
            points = dict.fromkeys(free, points)
        else:
            for name in points:
                if name not in free:
                    raise SpecError(f"spec.options.points.{name}", "not a free parameter")
            points = {n: points.get(n, 11) for n in free}
        total = math.prod(points.values())
        if total > MAX_GRID:
            raise SpecError("spec.options.points", f"grid of {total} points (max {MAX_GRID})")
        out["points"] = points
        for name in out["log"]:
            if name not in free:
                raise SpecError("spec.options.log", f"{name!r} is not a free parameter")
            if parameters[name]["min"] <= 0:
                raise SpecError(f"spec.parameters.{name}.min", "a log axis needs min > 0")
    return out


def parse_spec(spec: Any) -> dict[str, Any]:
    """Check a `fit` spec and return its canonical form."""
    if not isinstance(spec, dict):
        raise SpecError("spec", "must be an object")
    unknown = set(spec) - {"model", "data", "parameters", "method", "options"}
    if unknown:
        raise SpecError(f"spec.{sorted(unknown)[0]}", "unknown field for kind 'fit'")
    for required in ("model", "data", "parameters"):
        if required not in spec:
            raise SpecError(f"spec.{required}", "field required")
    model = parse_model(spec["model"])
    parameters = parse_parameters(spec["parameters"])
    names = list(parameters)
    if "builtin" in model:
        wanted = BUILTINS[model["builtin"]][1]
        if set(names) != set(wanted):
            raise SpecError(
                "spec.parameters",
                f"builtin {model['builtin']!r} has parameters {', '.join(wanted)}",
            )
    if "expr" in model:
        field = "spec.model.builtin" if "builtin" in model else "spec.model"
        expression = compile_expression(model["expr"], ["x", *names], field)
        for name in names:
            if name not in expression.names:
                raise SpecError(f"spec.parameters.{name}", "not used by the model")
    data = parse_data(spec["data"])
    method = spec.get("method", "multistart")
    if method not in METHODS:
        raise SpecError("spec.method", f"must be one of {', '.join(METHODS)}")
    free = [n for n in names if not parameters[n]["fixed"]]
    if not free:
        raise SpecError("spec.parameters", "at least one parameter must be free")
    if len(data["x"]) <= len(free):
        raise SpecError(
            "spec.data",
            f"{len(data['x'])} points cannot fit {len(free)} free "
            "parameters with a degree of freedom left",
        )
    options = parse_options(method, spec.get("options"), parameters)
    return {
        "model": model,
        "data": data,
        "parameters": parameters,
        "method": method,
        "options": options,
    }
