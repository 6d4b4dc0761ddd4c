"""Model expressions, compiled safely, and the models a fit can use.

An expression is parsed with `ast` and turned into a tree of numpy calls; nothing is ever
`eval`-ed. Only arithmetic, unary signs, numeric constants, `x`, the parameter names,
`pi`/`e` and calls to a whitelist of numpy functions are accepted, so a hostile spec is
refused at submission (a `SpecError` naming the field), long before a worker sees it.

The same tree evaluates on complex numbers, which gives the Jacobian by the complex step
(exact to rounding): that is what makes standard errors of ill-conditioned problems
trustworthy. Models given as `module:function` fall back to central differences.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from park.kinds.base import SpecError

Array = np.ndarray[Any, Any]
Vector = Sequence[Any] | Array  # a parameter vector, as JSON list or numpy array
Node = Callable[[Mapping[str, Any]], Any]

MAX_EXPRESSION_LENGTH = 10_000
MAX_NODES = 2_000
MAX_DEPTH = 100


def _abs(z: Any) -> Any:
    """|z| that stays analytic for the complex step (np.abs of a complex is its modulus)."""
    if np.iscomplexobj(z):
        return np.where(np.real(z) < 0, -z, z)
    return np.abs(z)


def _erf(x: Any) -> Any:
    from scipy import special  # (imported when first used: seconds saved at start-up)

    return special.erf(x)


def _erfc(x: Any) -> Any:
    from scipy import special

    return special.erfc(x)


FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "exp": (np.exp, 1),
    "expm1": (np.expm1, 1),
    "log": (np.log, 1),
    "log10": (np.log10, 1),
    "log2": (np.log2, 1),
    "log1p": (np.log1p, 1),
    "sqrt": (np.sqrt, 1),
    "square": (np.square, 1),
    "sin": (np.sin, 1),
    "cos": (np.cos, 1),
    "tan": (np.tan, 1),
    "arcsin": (np.arcsin, 1),
    "arccos": (np.arccos, 1),
    "arctan": (np.arctan, 1),
    "sinh": (np.sinh, 1),
    "cosh": (np.cosh, 1),
    "tanh": (np.tanh, 1),
    "arcsinh": (np.arcsinh, 1),
    "arccosh": (np.arccosh, 1),
    "arctanh": (np.arctanh, 1),
    "abs": (_abs, 1),
    "power": (np.power, 2),
    "erf": (_erf, 1),
    "erfc": (_erfc, 1),
}
ALIASES = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "fabs": "abs", "pow": "power"}
CONSTANTS = {"pi": math.pi, "e": math.e}
RESERVED = frozenset({"x", *FUNCTIONS, *ALIASES, *CONSTANTS})

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: np.negative,
    ast.UAdd: np.positive,
}

_REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators",
    ast.IfExp: "conditional expressions",
    ast.NamedExpr: "assignment",
    ast.Starred: "star arguments",
    ast.JoinedStr: "strings",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


@dataclass(frozen=True, slots=True)
class Expression:
    """A checked expression: its source, the names it uses and its evaluation tree."""

    source: str
    names: frozenset[str]
    node: Node

    def __call__(self, env: Mapping[str, Any]) -> Any:
        return self.node(env)


def _fail(field: str, message: str) -> SpecError:
    return SpecError(field, message)


def compile_expression(
    source: Any, allowed: Sequence[str], field: str = "spec.model"
) -> Expression:
    """Check `source` and build its evaluation tree; `allowed` are the variable names."""
    if not isinstance(source, str) or not source.strip():
        raise _fail(field, "must be a non-empty expression string")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise _fail(field, f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    if "__" in source:
        raise _fail(field, "dunder names are not allowed")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as err:
        raise _fail(field, f"not a valid expression: {err.msg}") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise _fail(field, f"expression has more than {MAX_NODES} nodes")
    variables = set(allowed)
    used: set[str] = set()

    def build(node: ast.AST, depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            raise _fail(field, f"expression nested deeper than {MAX_DEPTH}")
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _fail(field, f"only numeric constants are allowed, not {value!r}")
            const = np.float64(value)
            if not np.isfinite(const):
                raise _fail(field, f"constant {value!r} is not finite")
            return lambda env: const
        if isinstance(node, ast.Name):
            name = node.id
            if name.startswith("_"):
                raise _fail(field, f"name {name!r} is not allowed")
            if name in CONSTANTS:
                c = np.float64(CONSTANTS[name])
                return lambda env: c
            if name not in variables:
                if name in FUNCTIONS or name in ALIASES:
                    raise _fail(field, f"function {name!r} must be called")
                known = ", ".join(sorted(variables))
                raise _fail(field, f"unknown name {name!r} (known: {known}, pi, e)")
            used.add(name)
            return lambda env: env[name]
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                raise _fail(field, f"operator {type(node.op).__name__} is not allowed")
            left, right = build(node.left, depth + 1), build(node.right, depth + 1)
            return lambda env: op(left(env), right(env))
        if isinstance(node, ast.UnaryOp):
            uop = _UNARY.get(type(node.op))
            if uop is None:
                raise _fail(field, f"operator {type(node.op).__name__} is not allowed")
            operand = build(node.operand, depth + 1)
            return lambda env: uop(operand(env))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise _fail(field, "only calls of whitelisted functions by name are allowed")
            fname = ALIASES.get(node.func.id, node.func.id)
            if fname not in FUNCTIONS:
                allowed_f = ", ".join(sorted(FUNCTIONS))
                raise _fail(field, f"function {node.func.id!r} is not allowed ({allowed_f})")
            if node.keywords:
                raise _fail(field, f"{fname}() takes no keyword arguments")
            func, arity = FUNCTIONS[fname]
            if len(node.args) != arity:
                raise _fail(field, f"{fname}() takes {arity} argument(s)")
            args = [build(a, depth + 1) for a in node.args]
            if arity == 1:
                (a0,) = args
                return lambda env: func(a0(env))
            a0, a1 = args
            return lambda env: func(a0(env), a1(env))
        what = _REFUSED.get(type(node), type(node).__name__)
        raise _fail(field, f"{what} not allowed in a model expression")

    root = build(tree.body)
    return Expression(source=source, names=frozenset(used), node=root)


# -- the builtin models library ---------------------------------------------------------

BUILTINS: dict[str, tuple[str, tuple[str, ...]]] = {
    "line": ("a + b*x", ("a", "b")),
    "quadratic": ("a + b*x + c*x**2", ("a", "b", "c")),
    "exponential": ("A*exp(-x/tau) + c", ("A", "tau", "c")),
    "gaussian": ("A*exp(-(x-mu)**2/(2*sigma**2)) + c", ("A", "mu", "sigma", "c")),
    "lorentzian": ("A*gamma**2/((x-x0)**2 + gamma**2) + c", ("A", "x0", "gamma", "c")),
    "power_law": ("A*x**k + c", ("A", "k", "c")),
    "logistic": ("A/(1 + exp(-k*(x-x0))) + c", ("A", "k", "x0", "c")),
    "sine": ("A*sin(omega*x + phi) + c", ("A", "omega", "phi", "c")),
    "michaelis_menten": ("vmax*x/(km + x)", ("vmax", "km")),
}


# -- evaluation on the worker -------------------------------------------------------------


class Model:
    """A model ready to evaluate: y(x; parameters) and its Jacobian in the free parameters.

    `spec_model` is the normalised `spec.model` ({"expr": ...} or {"function": ...});
    `names` are all parameter names, `fixed` the values of the fixed ones.
    """

    def __init__(
        self,
        spec_model: Mapping[str, Any],
        names: Sequence[str],
        free: Sequence[str],
        fixed: Mapping[str, float],
        x: Array,
    ) -> None:
        self.names = list(names)
        self.free = list(free)
        self.fixed = {k: float(v) for k, v in fixed.items()}
        self.x = x
        self.expression: Expression | None = None
        self.function: Callable[..., Any] | None = None
        if "expr" in spec_model:
            self.expression = compile_expression(spec_model["expr"], ["x", *self.names])
        else:
            from park.kinds.map import resolve_function

            self.function = resolve_function(spec_model["function"])

    def _env(self, values: Vector) -> dict[str, Any]:
        env: dict[str, Any] = dict(self.fixed)
        env.update(zip(self.free, values, strict=True))
        return env

    def __call__(self, values: Vector) -> Array:
        """y at the free-parameter vector `values`, broadcast against x (parameters given
        as column vectors give one row per parameter set)."""
        env = self._env(values)
        with np.errstate(all="ignore"):
            if self.expression is not None:
                env["x"] = self.x
                y = self.expression(env)
            else:
                assert self.function is not None
                y = self.function(self.x, **env)
        y = np.asarray(y, dtype=float)
        return np.broadcast_to(y, np.broadcast_shapes(y.shape, self.x.shape))

    def jacobian(self, values: Vector) -> Array:
        """d y / d free parameters, shape (n, m): complex step if possible, else central
        differences."""
        p = np.asarray(values, dtype=float)
        m = p.size
        if self.expression is not None and m:
            h = 1e-20
            step = np.eye(m) * (1j * h)
            columns = [(p[k] + step[:, k]).reshape(m, 1) for k in range(m)]
            env: dict[str, Any] = dict(self.fixed)
            env.update(zip(self.free, columns, strict=True))
            env["x"] = self.x
            with np.errstate(all="ignore"):
                y = np.asarray(self.expression(env))
            if np.iscomplexobj(y):
                jac = np.broadcast_to(y.imag, (m, *self.x.shape)).T / h
                if np.all(np.isfinite(jac)):
                    return np.array(jac)
            elif np.all(np.isfinite(y)):
                return np.zeros((self.x.size, m))  # the model does not depend on them
        return self._central_differences(p)

    def _central_differences(self, p: Array) -> Array:
        jac = np.empty((self.x.size, p.size))
        eps = np.finfo(float).eps ** (1 / 3)
        for k in range(p.size):
            h = eps * max(abs(p[k]), 1.0)
            up, down = p.copy(), p.copy()
            up[k] += h
            down[k] -= h
            jac[:, k] = (self(up) - self(down)) / (up[k] - down[k])
        return jac
