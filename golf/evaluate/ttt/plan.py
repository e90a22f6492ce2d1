"""How test-time training cuts the validation windows into pieces, and a piece into adaptation rows.

Chunk c covers targets [1 + c * chunk_tokens, 1 + (c + 1) * chunk_tokens); a window belongs to the chunk holding its
first scored target, and a piece's scored range is [its first window's first_target, its last window's end_target).
A method that follows documents (lora) also starts a new piece wherever the document of a window's first scored
target changes (documents begin at BOS, so documents are resolved at window granularity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from golf.data.shards import TokenArray
from golf.data.tokenizer import BOS_ID
from golf.evaluate.windows import Window


@dataclass
class Piece:
    """The windows scored together, then adapted on: one chunk (for lora: one chunk of one document)."""

    chunk: int
    document: int
    windows: list[Window]

    @property
    def lo(self) -> int:
        return self.windows[0].first_target

    @property
    def hi(self) -> int:
        return self.windows[-1].end_target


def document_starts(val: TokenArray, block: int = 1 << 22) -> np.ndarray:
    """Positions of BOS tokens, i.e. the targets at which a new document begins (read in blocks: never all at once)."""
    found = [np.flatnonzero(val.read(a, min(a + block, len(val))) == BOS_ID) + a for a in range(0, len(val), block)]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def plan_pieces(windows: Sequence[Window], chunk_tokens: int, doc_starts: Optional[np.ndarray] = None) -> list[Piece]:
    """Group the plan's windows by chunk (and by document when doc_starts is given), keeping their order. A window
    whose first target is a BOS still belongs to the document before it (it predicts that document's end)."""
    pieces: list[Piece] = []
    for w in windows:
        chunk = (w.first_target - 1) // chunk_tokens
        # the document is decided by the BOS tokens before the window's first target (its context), never by it
        document = 0 if doc_starts is None else int(np.searchsorted(doc_starts, w.first_target, side="left"))
        if pieces and (pieces[-1].chunk, pieces[-1].document) == (chunk, document):
            pieces[-1].windows.append(w)
        else:
            pieces.append(Piece(chunk, document, [w]))
    return pieces


def adaptation_rows(val: TokenArray, lo: int, hi: int, seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, targets and a valid-target mask, each (rows, seq_len), covering targets [lo, hi) exactly once."""
    n_targets = hi - lo
    rows = math.ceil(n_targets / seq_len)
    padded = np.zeros(rows * seq_len + 1, dtype=np.int64)
    padded[:n_targets + 1] = val.read(lo - 1, hi)
    mask = (np.arange(rows * seq_len) < n_targets).reshape(rows, seq_len)
    return padded[:-1].reshape(rows, seq_len), padded[1:].reshape(rows, seq_len), mask


def adaptation_steps(piece: Piece, epochs: int, batch_seqs: int, seq_len: int) -> int:
    """The optimizer steps adapting on `piece` takes: epochs passes over its rows in batches of batch_seqs."""
    return epochs * math.ceil(math.ceil((piece.hi - piece.lo) / seq_len) / batch_seqs)
