"""The cyclic garbage collector in a long-running server.

CPython collects its youngest objects every 700 allocations (less deallocations). A
server allocates in bursts: a lease or a report of 256 units makes some 10,000 objects,
and planning a 20,000-unit map job some 150,000 that then live on; every young
collection walks what is still alive, and each tenth moves on to the older generations,
up to the full collection that walks the whole heap (modules, pydantic's and FastAPI's
schemas, the projections). `park serve` and `park scheduler` collect young objects every
`YOUNG_THRESHOLD` allocations instead: ~6 % fewer instructions per no-op unit in-process
with a server's imports, and half a large submission's CPU (benchmarks/service_cost.py).
The events and read models form no reference cycles, so what waits longer to be collected
is little (asyncio's tasks and futures, exceptions' tracebacks).
"""

from __future__ import annotations

import gc

# Allocations (less deallocations) between two young collections; CPython's default 700.
YOUNG_THRESHOLD = 10_000


def collect_less_often() -> None:
    """For a server process only (not an application running the local service)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
