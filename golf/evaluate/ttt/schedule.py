"""The test-time-training learning rate over a run (the per-parameter multipliers of params.py apply on top).

- cosine_chunks: the accepted recipe, one value per chunk, lr * 0.5 * (1 + cos(pi * c / (n_chunks - 1))); the last
  chunk (which never adapts under score-first) reaches 0. One chunk: lr.
- cosine_global: one cosine over every adaptation step of the run (the research's "one curve over all epochs"),
  lr * 0.5 * (1 + cos(pi * s / total_steps)) at step s = 0 .. total_steps - 1: the first step takes the full lr and
  the last one a small but non-zero lr, so no step is wasted.
- constant: lr.
"""

from __future__ import annotations

import math

from golf.evaluate.ttt.config import TTT_SCHEDULES


def half_cosine(frac: float) -> float:
    """1 at frac 0, 0 at frac 1."""
    return 0.5 * (1.0 + math.cos(math.pi * frac))


class TTTSchedule:
    def __init__(self, kind: str, lr: float, n_chunks: int, total_steps: int):
        if kind not in TTT_SCHEDULES:
            raise ValueError(f"ttt.schedule must be one of {', '.join(TTT_SCHEDULES)}, got {kind!r}")
        self.kind, self.base_lr, self.n_chunks, self.total_steps = kind, lr, n_chunks, total_steps

    def lr(self, chunk: int, step: int) -> float:
        """The lr of adaptation step `step` (counted over the whole run) taken on chunk `chunk`."""
        if self.kind == "cosine_chunks":
            return self.base_lr if self.n_chunks <= 1 else self.base_lr * half_cosine(chunk / (self.n_chunks - 1))
        if self.kind == "cosine_global":
            return self.base_lr * half_cosine(step / max(self.total_steps, 1))
        return self.base_lr
