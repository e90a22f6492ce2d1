"""The score ledger: for every scored target, which weight version scored it, and what each version had trained on.

Version 0 is the artifact as loaded. Each adaptation step of TTT (training on a range of targets) makes the next
version, whose trained set is the previous one's plus that range. The audit reads this to check, token by token,
that nothing was scored by weights that had trained on it (C3) and that every target was scored exactly once (C4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ScoreLedger:
    n_tokens: int
    scored_by: np.ndarray = field(init=False)  # int32 per target index: the version that scored it, -1 if none
    times_scored: np.ndarray = field(init=False)  # int32 per target index
    trained: list[list[tuple[int, int]]] = field(default_factory=lambda: [[]])  # per version: target ranges [lo, hi)

    def __post_init__(self) -> None:
        self.scored_by = np.full(self.n_tokens, -1, dtype=np.int32)
        self.times_scored = np.zeros(self.n_tokens, dtype=np.int32)

    @property
    def version(self) -> int:
        return len(self.trained) - 1

    def record_scores(self, first_target: int, end_target: int) -> None:
        """Targets [first_target, end_target) were just scored by the current version."""
        self.times_scored[first_target:end_target] += 1
        self.scored_by[first_target:end_target] = self.version

    def record_training(self, first_target: int, end_target: int) -> None:
        """The weights just adapted on targets [first_target, end_target): a new version."""
        self.trained.append(self.trained[-1] + [(first_target, end_target)])

    def seen_by_scorer(self) -> np.ndarray:
        """bool per target: the version that scored it had trained on it (a C3 violation)."""
        seen = np.zeros(self.n_tokens, dtype=bool)
        for version, ranges in enumerate(self.trained):
            mine = self.scored_by == version
            for lo, hi in ranges:
                seen[lo:hi] |= mine[lo:hi]
        return seen

    def summary(self) -> dict[str, int]:
        scored = self.times_scored[1:]
        return {"versions": len(self.trained), "targets_scored": int((scored > 0).sum()),
                "scored_more_than_once": int((scored > 1).sum()),
                "scored_by_weights_that_trained_on_them": int(self.seen_by_scorer().sum())}
