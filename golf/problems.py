"""How a component's config says what is wrong with it: a list of (key, value, what is allowed).

Each component's config module (golf/data/config.py, golf/model/config.py, ...) has a `*_problems(cfg)` function
that fills one of these for its own keys; golf/config.py turns the first problem into the one-paragraph error and
adds only the checks that span components. No torch here.
"""

from __future__ import annotations

import math
from typing import Any


class Problems(list):
    """(key, value, allowed) triples; keys are given without the component's prefix, which the list adds."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def need(self, ok: bool, key: str, value: Any, allowed: str) -> None:
        if not ok:
            self.append((f"{self.prefix}{key}", value, allowed))

    def at_least(self, key: str, value: float, low: float) -> None:
        self.need(math.isfinite(value) and value >= low, key, value, f"a number >= {low}")

    def fraction(self, key: str, value: float, low_open: float, high: float) -> None:
        self.need(math.isfinite(value) and low_open < value <= high, key, value, f"a number in ({low_open}, {high}]")

    def choice(self, key: str, value: Any, choices: tuple[str, ...]) -> None:
        self.need(value in choices, key, value, "one of " + ", ".join(choices))
