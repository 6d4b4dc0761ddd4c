"""`de`: differential evolution, one generation at a time, polished by least squares.

The population, its chi-squared values and the generation number live in the kind state,
folded from events: `next_units` draws a generation's trial vectors from a generator
seeded by (seed, generation) and cuts their evaluation into units; `planned` records the
trials from the payloads; `absorb` collects their chi-squared and, when the generation is
complete, does the selection. A replay after a crash therefore rebuilds the same
population and plans the same next generation. When the population has converged (or the
generation budget is spent) the best members are polished with local least squares, which
gives the result its last digits and its covariance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from park.kinds.base import Finished
from park.kinds.fit.local import LocalResults, local_payloads
from park.kinds.fit.problem import finite_or_none
from park.kinds.fit.result import assemble
from park.kinds.fit.sampling import free_layout, generator, sample


@dataclass(slots=True)
class DEState:
    size: int
    generation: int = -1  # the generation planned last; 0 is the initial population
    population: list[list[float]] = field(default_factory=list)
    fitness: list[float] = field(default_factory=list)  # inf where the model failed
    trials: list[list[float]] = field(default_factory=list)
    trial_fitness: list[float] = field(default_factory=list)
    waiting: int = 0  # vectors of the current generation not yet evaluated
    evaluations: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    polish: LocalResults = field(default_factory=LocalResults)


def population_size(spec: dict[str, Any]) -> int:
    opts = spec["options"]
    if opts["popsize"] is not None:
        return int(opts["popsize"])
    n_free = sum(1 for p in spec["parameters"].values() if not p["fixed"])
    return max(15, 10 * n_free)


def start(spec: dict[str, Any]) -> DEState:
    return DEState(size=population_size(spec))


def _per_unit(spec: dict[str, Any], size: int) -> int:
    per_unit = spec["options"]["per_unit"]
    return int(per_unit) if per_unit else max(1, math.ceil(size / 4))


def _evaluate_payloads(
    spec: dict[str, Any], generation: int, vectors: list[list[float]], size: int
) -> list[dict[str, Any]]:
    per_unit = _per_unit(spec, size)
    return [
        {
            "task": "evaluate",
            "stage": "population" if generation == 0 else "generation",
            "generation": generation,
            "offset": i,
            "vectors": vectors[i : i + per_unit],
        }
        for i in range(0, len(vectors), per_unit)
    ]


def initial_population(spec: dict[str, Any], size: int) -> list[list[float]]:
    """The given values, then seeded samples in the bounds or around the values."""
    opts = spec["options"]
    _, value, lower, upper = free_layout(spec)
    first = np.clip(value, lower, upper)[None, :]
    rest = sample(generator(opts["seed"], 0), size - 1, value, lower, upper, opts["spread"])
    return [[float(v) for v in row] for row in np.vstack([first, rest])]


def trial_vectors(spec: dict[str, Any], state: DEState, generation: int) -> list[list[float]]:
    """rand/1/bin or best/1/bin trials; a component pushed out of its bounds is redrawn
    between the parent's value and the bound it crossed."""
    opts = spec["options"]
    _, _, lower, upper = free_layout(spec)
    rng = generator(opts["seed"], generation)
    pop = np.asarray(state.population, dtype=float)
    fit = np.asarray(state.fitness, dtype=float)
    size, m = pop.shape
    mutation = opts["mutation"]
    f = rng.uniform(mutation[0], mutation[1]) if isinstance(mutation, list) else mutation
    best = int(np.argmin(fit))
    trials = np.empty_like(pop)
    for i in range(size):
        choices = [j for j in range(size) if j != i]
        r0, r1, r2 = rng.choice(choices, 3, replace=False)
        base = pop[best] if opts["strategy"] == "best1bin" else pop[r0]
        mutant = base + f * (pop[r1] - pop[r2])
        cross = rng.random(m) < opts["crossover"]
        cross[rng.integers(m)] = True
        trial = np.where(cross, mutant, pop[i])
        u = rng.random(m)
        low, high = trial < lower, trial > upper
        trial = np.where(low, pop[i] + u * (lower - pop[i]), trial)
        trial = np.where(high, pop[i] + u * (upper - pop[i]), trial)
        trials[i] = trial
    return [[float(v) for v in row] for row in trials]


def converged(spec: dict[str, Any], state: DEState) -> bool:
    """scipy's criterion: the spread of the population's chi-squared is small (checked
    from the first generation on: an initial population on a plateau is not converged)."""
    if state.generation < 1:
        return False
    fit = np.asarray(state.fitness, dtype=float)
    if not np.all(np.isfinite(fit)):
        return False
    return bool(np.std(fit) <= spec["options"]["tol"] * abs(np.mean(fit)))


def polish_starts(spec: dict[str, Any], state: DEState) -> list[list[float]]:
    """The best `polish` distinct members, best first, after the given values (unless
    `polish_start` is off): where minima tie, the given values pick the labelling."""
    starts: list[list[float]] = []
    if spec["options"]["polish_start"]:
        _, value, lower, upper = free_layout(spec)
        starts.append([float(v) for v in np.clip(value, lower, upper)])
    count = len(starts) + max(1, spec["options"]["polish"])
    order = sorted(range(state.size), key=lambda i: (state.fitness[i], i))
    for i in order:
        if len(starts) >= count:
            break
        if math.isfinite(state.fitness[i]) and state.population[i] not in starts:
            starts.append(state.population[i])
    return starts


def next_units(spec: dict[str, Any], state: DEState) -> list[dict[str, Any]]:
    if state.waiting or state.polish.planned:
        return []
    if state.generation < 0:
        return _evaluate_payloads(spec, 0, initial_population(spec, state.size), state.size)
    if not any(math.isfinite(v) for v in state.fitness):
        return []  # nothing to evolve from: outcome reports it
    done = state.generation >= spec["options"]["generations"] or converged(spec, state)
    if done:
        refine = spec["options"]["polish"] > 0
        return local_payloads(spec, polish_starts(spec, state), 1, stage="polish", refine=refine)
    generation = state.generation + 1
    return _evaluate_payloads(spec, generation, trial_vectors(spec, state, generation), state.size)


def planned(state: DEState, payload: dict[str, Any]) -> None:
    if payload["task"] == "local":
        state.polish.plan(payload)
        return
    generation = payload["generation"]
    if generation != state.generation:
        state.generation = generation
        if generation == 0:
            state.population = [[] for _ in range(state.size)]
            state.fitness = [math.inf] * state.size
        else:
            state.trials = [[] for _ in range(state.size)]
            state.trial_fitness = [math.inf] * state.size
    target = state.population if generation == 0 else state.trials
    for k, vector in enumerate(payload["vectors"]):
        target[payload["offset"] + k] = list(vector)
    state.waiting += len(payload["vectors"])


def absorb(state: DEState, payload: dict[str, Any], result: Any) -> None:
    if payload["task"] == "local":
        state.polish.absorb(payload, result)
        return
    generation = payload["generation"]
    if generation != state.generation:
        return  # cannot happen: a generation is planned only when the last one is done
    values = state.fitness if generation == 0 else state.trial_fitness
    for k, chisq in enumerate(result["chisq"]):
        values[payload["offset"] + k] = math.inf if chisq is None else float(chisq)
    state.waiting -= len(result["chisq"])
    state.evaluations += len(result["chisq"])
    if state.waiting == 0:
        if generation > 0:
            for i in range(state.size):
                if state.trial_fitness[i] <= state.fitness[i]:
                    state.population[i] = state.trials[i]
                    state.fitness[i] = state.trial_fitness[i]
            state.trials, state.trial_fitness = [], []
        finite = [v for v in state.fitness if math.isfinite(v)]
        state.history.append(
            {
                "generation": generation,
                "best_chisq": min(finite) if finite else None,
                "mean_chisq": sum(finite) / len(finite) if finite else None,
                "nfev": state.evaluations,
            }
        )


def outcome(spec: dict[str, Any], state: DEState) -> Finished | None:
    idle = state.generation >= 0 and not state.waiting and not state.polish.planned
    if idle and not any(math.isfinite(v) for v in state.fitness):
        return Finished(error="the model is not finite anywhere in the population")
    polish = state.polish
    if not polish.complete:
        return None
    best = polish.best
    if best is None:
        return Finished(error="polishing the best members gave no finite chi-squared")
    with_values = spec["options"]["polish_start"]
    history = [
        *state.history,
        *(
            {
                "stage": "polish",
                "from": "start values" if with_values and k == 0 else "population",
                "chisq": c,
                "nfev": polish.nfev[k],
            }
            for k, c in enumerate(polish.chisq)
        ),
    ]
    return Finished(
        result=assemble(
            spec,
            best[2],
            nfev=state.evaluations + polish.total_nfev,
            njev=polish.total_njev,
            history=history,
            generations=state.generation,
            population=state.size,
            de_best_chisq=finite_or_none(min(state.fitness)),
            polished_from="start values"
            if spec["options"]["polish_start"] and best[1] == 0
            else "population",
        )
    )


def progress(state: DEState) -> dict[str, Any]:
    finite = [v for v in (*state.fitness, *state.trial_fitness) if math.isfinite(v)]
    best = min(finite) if finite else None
    if state.polish.planned:
        if state.polish.done and math.isfinite(state.polish.best_chisq):
            best = min(math.inf if best is None else best, state.polish.best_chisq)
        return {"stage": "polish", "generation": state.generation, "best_chisq": best}
    return {"stage": "evolve", "generation": state.generation, "best_chisq": best}
