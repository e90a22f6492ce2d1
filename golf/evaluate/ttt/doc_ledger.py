"""What one batch of per-document TTT did, as it did it: the ledger run_batch writes into at the moment it keeps a
chunk's scores and after each optimizer step, and the windows it scored with (for the audit's C2).

A batch's ledger starts at version 0 (its own steps only); append_batch puts it after everything the run ledger holds
already, so a score counts as made by weights that had trained on every earlier batch and phase (stricter for C3
than the truth: a document's adapters never saw another document). Ranks run different batches: each keeps its own
logs, and at every phase boundary and at the end all ranks exchange them and append them in batch order, so every
rank's ledger is the whole run's, as it ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from golf.collectives import broadcast_object, rank_world
from golf.evaluate.ledger import ScoreLedger
from golf.evaluate.windows import Window


@dataclass
class BatchLog:
    ledger: ScoreLedger
    windows: Optional[list[Window]] = None  # every scoring's window, in order (when kept: eval.save_token_nll)
    first_windows: Optional[list[Window]] = None  # chunk 0's, scored with the adapters at identity (when kept)

    @property
    def trained_tokens(self) -> int:
        return sum(hi - lo for lo, hi in self.ledger.trainings)


def append_batch(ledger: ScoreLedger, part: ScoreLedger) -> None:
    """part's scorings and trainings, in the order they happened, after what ledger holds (versions shifted)."""
    done = 0
    for lo, hi, version in part.scores:  # recorded in order: versions never decrease
        while done < version:
            ledger.record_training(*part.trainings[done])
            done += 1
        ledger.record_scores(lo, hi)
    for lo, hi in part.trainings[done:]:
        ledger.record_training(lo, hi)


def everyones_logs(mine: dict[int, BatchLog]) -> dict[int, BatchLog]:
    """Every rank's batch logs (keyed by batch index), on every rank; one process: its own."""
    world = rank_world()[1]
    if world == 1:
        return dict(mine)
    merged: dict[int, BatchLog] = {}
    for src in range(world):
        merged.update(broadcast_object(mine, src=src))
    return merged
