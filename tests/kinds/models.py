"""Model functions for `{"function": "module:function"}` fits in the tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def exponential_decay(x: Any, amplitude: float, rate: float) -> Any:
    return amplitude * np.exp(-rate * np.asarray(x))
