"""Documents of the validation stream for per-document TTT, and the order the records process them in.

A document starts at a BOS token (golf.data.tokenizer.BOS_ID). As in the records (T3's _find_docs), a document's
targets are the tokens after its BOS up to and including the next document's BOS (predicting where a document ends
is part of the document), and its context starts at its own BOS: nothing of another document is ever read. Here the
documents cover exactly the evaluation plan's targets [first, end): the first one starts at token first - 1 even when
that is not a BOS (a slice that begins mid-document), the last one stops at end - 1.

Orders (ttt.doc_order):
- length: the records' (T3, 2026-04-14): documents sorted by length (stable), cut into batches of ttt.doc_batch in
  that order, the batches run longest first. Fast on a GPU (little padding), but which documents share a batch, and
  so which ones come before a phase boundary, depends on the lengths of later documents.
- stream: validation order, batches of ttt.doc_batch consecutive documents: a document's batch and everything that
  ran before it depend only on earlier tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golf.data.tokenizer import BOS_ID

DOC_ORDERS = ("length", "stream")


@dataclass(frozen=True)
class Document:
    """Targets start + 1 .. start + targets, read from tokens start .. start + targets - 1."""

    index: int  # in validation order
    start: int  # its first context token (its BOS, or the plan's first input token)
    targets: int

    @property
    def first_target(self) -> int:
        return self.start + 1

    @property
    def end_target(self) -> int:
        return self.start + 1 + self.targets

    @property
    def length(self) -> int:
        """Tokens, as the records count a document (_find_docs' doc_len: its targets + 1)."""
        return self.targets + 1


def split_documents(tokens: np.ndarray, first: int, end: int) -> list[Document]:
    """The documents covering targets [first, end) of the stream `tokens` (whole, or at least tokens[:end])."""
    if not 1 <= first < end <= len(tokens):
        raise ValueError(f"targets [{first}, {end}) do not fit a stream of {len(tokens)} tokens")
    inner = np.flatnonzero(tokens[first:end - 1] == BOS_ID) + first  # BOS tokens that start a document inside
    starts = [first - 1, *(int(p) for p in inner)]
    ends = [*starts[1:], end - 1]  # the last token each one predicts
    return [Document(i, s, e - s) for i, (s, e) in enumerate(zip(starts, ends))]


def batches(documents: list[Document], size: int, order: str) -> list[list[Document]]:
    """The documents in the batches they run in, in running order (see the module's docstring)."""
    if order == "stream":
        return [documents[i:i + size] for i in range(0, len(documents), size)]
    if order != "length":
        raise ValueError(f"ttt.doc_order must be one of {', '.join(DOC_ORDERS)}, got {order!r}")
    by_length = sorted(documents, key=lambda d: d.length)  # stable: ties stay in validation order
    groups = [by_length[i:i + size] for i in range(0, len(by_length), size)]
    ranked = sorted(enumerate(groups), key=lambda ig: -max(d.length for d in ig[1]))  # stable, longest first
    return [group for _, group in ranked]


def rank_in_order(documents: list[Document], size: int, order: str) -> dict[int, int]:
    """document index -> its position in the order the phases' training set is taken in: the records sort the
    scored documents by (batch of the ascending-length cut, position in it), i.e. ascending length; stream order is
    validation order."""
    if order == "stream":
        return {d.index: d.index for d in documents}
    return {d.index: r for r, d in enumerate(sorted(documents, key=lambda d: d.length))}


def phase_training_set(scored: list[Document], boundary: int, rank: dict[int, int]) -> list[Document]:
    """The documents a phase's global SGD trains on: the first `boundary` of those scored so far, in `rank` order
    (the records' scored_docs_for_global[:current_phase_boundary])."""
    return sorted(scored, key=lambda d: rank[d.index])[:boundary]


def concatenated(tokens: np.ndarray, documents: list[Document]) -> np.ndarray:
    """The documents' tokens one after the other, each with its context and targets (its BOS .. the next BOS), as
    the records concatenate them for the global SGD."""
    parts = [tokens[d.start:d.end_target] for d in documents]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class ChunkWindow:
    """One document's window for chunk ci (T3's _compute_chunk_window): tokens start .. start + length - 1 of the
    stream are read, and positions offset .. offset + scored - 1 of the window are the chunk's targets."""

    start: int
    length: int
    offset: int
    scored: int


def chunk_count(document: Document, chunk: int) -> int:
    return -(-document.targets // chunk)


LAST_WINDOWS = ("chunk", "end")


def chunk_window(document: Document, ci: int, chunk: int, context: int, last: str = "chunk") -> ChunkWindow:
    """Chunk ci's window: it ends at the chunk's last target, holds at most `context` tokens, never reads before
    the document's start. A document's last (short) chunk starts its window where a full chunk ci would (last
    "chunk": a target's context depends only on its position in the document) or, as the records do (last "end"),
    `context` tokens before the document's end: more context, but how much depends on where the document ends,
    a later token (it changes only documents longer than the context)."""
    n = chunk_count(document, chunk)
    chunk_end = document.targets if ci == n - 1 else (ci + 1) * chunk
    win_start = max(0, (chunk_end if last == "end" else (ci + 1) * chunk) - context)
    return ChunkWindow(document.start + win_start, chunk_end - win_start, ci * chunk - win_start,
                       chunk_end - ci * chunk)
