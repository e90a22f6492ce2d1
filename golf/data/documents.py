"""Training batches of whole documents for VarLen attention, as the T3 record packs them (data.loader=documents).

Every rank reads the same shards in order, as the stream does, but a shard is entered at its first BOS and left when
the next global span would run past its end (the rest of the shard is skipped: the next shard starts at a document
too). Each call takes (local_tokens + 1) x world_size tokens; rank r keeps span r as ONE row of local_tokens inputs,
with cu_seqlens: the offsets where a segment starts, a segment being a document (from one BOS to the next, or the row
start) cut every train.seq_len tokens, padded with the row length to a multiple of 64 entries (a few shapes only, for
compiled kernels). The model masks attention to segments (golf/model/attention.py Documents): FlashAttention's varlen
kernel on CUDA, SDPA with a block-diagonal mask elsewhere (a (T, T) mask per row: on the CPU keep the rows short).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import torch

from golf.data.shards import read_shard, read_shard_header
from golf.data.tokenizer import BOS_ID
from golf.errors import DataError

CU_BUCKET = 64  # cu_seqlens is padded to a multiple of this many entries (T3's cu_bucket_size)


class PackedBatch(tuple):
    """(x, y) of one rank, each (1, local_tokens), that unpacks like any loader's batch, with the segments riding
    along: cu_seqlens (int32, padded with the row length) and max_seqlen (the longest segment)."""

    cu_seqlens: torch.Tensor
    max_seqlen: int

    def __new__(cls, x: torch.Tensor, y: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int):
        batch = super().__new__(cls, (x, y))
        batch.cu_seqlens, batch.max_seqlen = cu_seqlens, max_seqlen
        return batch


def segment_starts(doc_starts: Sequence[int], total_len: int, max_len: int) -> list[int]:
    """Where segments start in a row of total_len tokens whose documents start at doc_starts (row-relative): the row
    start and every document start, each document cut every max_len tokens (0 = never cut)."""
    starts = list(doc_starts)
    if not starts or starts[0] != 0:
        starts = [0] + starts
    ends = starts[1:] + [total_len]
    out: list[int] = []
    for start, end in zip(starts, ends):
        out.extend(range(start, end, max_len) if max_len > 0 else [start])
    return out


def build_cu_seqlens(doc_starts: Sequence[int], total_len: int, max_len: int,
                     bucket: int = CU_BUCKET) -> tuple[torch.Tensor, int]:
    """(cu_seqlens, max_seqlen) of a row: segment boundaries then the row length, padded with the row length to a
    multiple of `bucket` entries (T3's _build_cu_seqlens)."""
    seg = segment_starts(doc_starts, total_len, max_len)
    boundaries = seg + [total_len]
    padded = -(-len(boundaries) // bucket) * bucket
    cu = torch.full((padded,), total_len, dtype=torch.int32)
    cu[: len(boundaries)] = torch.tensor(boundaries, dtype=torch.int32)
    max_seqlen = max(end - start for start, end in zip(seg, seg[1:] + [total_len]))
    return cu, max_seqlen


class DocumentPackingLoader:
    """One row of whole documents per rank and call (see the module's docstring). Its state, the shard and the
    cursor in it, is the same on every rank."""

    def __init__(self, files: Sequence[str | os.PathLike], rank: int, world_size: int,
                 pin_memory: Optional[bool] = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.files = list(files)
        if not self.files:
            raise DataError("data.loader=documents was given no shard files; expected at least one training shard")
        self._lengths = [read_shard_header(f) for f in self.files]  # validates every header up front
        self.rank, self.world_size = rank, world_size
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self._open(0)

    def _open(self, file_index: int, cursor: Optional[int] = None) -> None:
        """Load a shard; the cursor starts at its first BOS unless given."""
        self.file_index = file_index
        self._tokens = read_shard(self.files[file_index])
        self._bos = np.flatnonzero(np.asarray(self._tokens) == BOS_ID).astype(np.int64)
        if cursor is None:
            if len(self._bos) == 0:
                raise DataError(f"the training shard {self.files[file_index]} holds no BOS token ({BOS_ID}): "
                                "data.loader=documents needs documents; use data.loader=stream for this data")
            cursor = int(self._bos[0])
        self.cursor = cursor

    def _advance(self) -> None:
        self._open((self.file_index + 1) % len(self.files))

    def next_batch(self, global_tokens: int, seq_len: int, grad_accum_steps: int) -> PackedBatch:
        local_tokens = global_tokens // (self.world_size * grad_accum_steps)
        if local_tokens < 1:
            raise ValueError(f"{global_tokens} tokens over {self.world_size} rank(s) x {grad_accum_steps} "
                             "accumulation step(s) leave no token for a rank")
        span = local_tokens + 1
        global_span = span * self.world_size
        for _ in range(len(self.files) + 1):
            if self.cursor + global_span <= len(self._tokens):
                break
            self._advance()
        else:
            raise DataError(f"no training shard ({self.files[0]} ...) holds {global_span} tokens after its first "
                            "BOS: a global batch of data.loader=documents must fit in one shard")
        start = self.cursor + self.rank * span
        local = torch.from_numpy(np.asarray(self._tokens[start: start + span], dtype=np.int64))
        lo, hi = np.searchsorted(self._bos, [start, start + local_tokens], side="left")
        cu, max_seqlen = build_cu_seqlens((self._bos[lo:hi] - start).tolist(), local_tokens, seq_len)
        self.cursor += global_span
        if self.pin_memory:
            local, cu = local.pin_memory(), cu.pin_memory()
        return PackedBatch(local[None, :-1], local[None, 1:], cu, max_seqlen)

    def state_dict(self) -> dict[str, int]:
        return {"file_index": self.file_index, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, int]) -> None:
        file_index, cursor = int(state["file_index"]), int(state["cursor"])
        if not 0 <= file_index < len(self.files) or not 0 <= cursor <= self._lengths[file_index]:
            raise ValueError(f"loader state {state} does not fit these {len(self.files)} shard file(s)")
        self._open(file_index, cursor)
