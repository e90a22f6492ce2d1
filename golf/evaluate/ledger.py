"""The score ledger: for every scored target, which weight version scored it, and what each version had trained on.

Version 0 is the artifact as loaded. Each adaptation step of TTT (training on a range of targets) makes the next
version, whose trained set is the previous one's plus that range. The audit reads this to check, token by token,
that nothing was scored by weights that had trained on it (C3) and that every target was scored exactly once (C4).

The ledger keeps ranges, not per-token arrays: its memory grows with the number of chunks, not with the validation
set (62M tokens would otherwise cost 8 bytes each). The per-token views are built only when the audit asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ScoreLedger:
    n_tokens: int
    scores: list[tuple[int, int, int]] = field(default_factory=list)  # (first, end, version) of each scoring
    trainings: list[tuple[int, int]] = field(default_factory=list)  # the i-th made version i + 1

    @property
    def version(self) -> int:
        return len(self.trainings)

    @property
    def versions(self) -> int:
        return len(self.trainings) + 1

    def record_scores(self, first_target: int, end_target: int) -> None:
        """Targets [first_target, end_target) were just scored by the current version."""
        self.scores.append((first_target, end_target, self.version))

    def record_training(self, first_target: int, end_target: int) -> None:
        """The weights just adapted on targets [first_target, end_target): a new version."""
        self.trainings.append((first_target, end_target))

    @property
    def times_scored(self) -> np.ndarray:
        """int32 per target index: how many times it was scored."""
        times = np.zeros(self.n_tokens, dtype=np.int32)
        for lo, hi, _ in self.scores:
            times[lo:hi] += 1
        return times

    @property
    def scored_by(self) -> np.ndarray:
        """int32 per target index: the version that last scored it, -1 if none."""
        by = np.full(self.n_tokens, -1, dtype=np.int32)
        for lo, hi, version in self.scores:
            by[lo:hi] = version
        return by

    def seen_by_scorer(self) -> np.ndarray:
        """bool per target: a version that scored it had trained on it (a C3 violation)."""
        seen = np.zeros(self.n_tokens, dtype=bool)
        if not self.trainings:
            return seen
        trained = np.array(self.trainings, dtype=np.int64)
        for lo, hi, version in self.scores:
            before = trained[:version]  # what version `version` had trained on
            for t_lo, t_hi in before[(before[:, 0] < hi) & (before[:, 1] > lo)]:
                seen[max(lo, t_lo):min(hi, t_hi)] = True
        return seen
