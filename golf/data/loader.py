"""Training batches in the challenge's order: every rank reads the same shards in sequence and takes its own slice.

No shuffling: each call takes the next (local_tokens + 1) * world_size tokens of the stream; rank r keeps span r,
one token longer than it needs so that targets are the inputs shifted by one. The records' other orders (data.loader:
shuffled sequences, packed documents) live beside it; build_loader picks one.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np
import torch

from golf.data.documents import DocumentPackingLoader
from golf.data.shards import read_shard, read_shard_header
from golf.data.shuffled import ShuffledSequenceLoader
from golf.errors import DataError


class TokenStream:
    """The shards' tokens in order, forever (wrapping around); only the current shard is memory-mapped."""

    def __init__(self, files: Sequence[str | os.PathLike]):
        self.files = list(files)
        if not self.files:
            raise DataError("the token stream was given no shard files; expected at least one training shard")
        self._lengths = [read_shard_header(f) for f in self.files]  # validates every header up front
        if sum(self._lengths) == 0:
            raise DataError(f"the training shards ({self.files[0]} ...) hold no tokens")
        self._open(0, 0)

    def _open(self, file_index: int, position: int) -> None:
        self.file_index = file_index
        self.position = position
        self._tokens = read_shard(self.files[file_index])

    def take(self, n: int) -> np.ndarray:
        """The next n tokens as int64, continuing into the next shard (and back to the first) as needed."""
        out = np.empty(n, dtype=np.int64)
        filled = 0
        while filled < n:
            if self.position >= len(self._tokens):
                self._open((self.file_index + 1) % len(self.files), 0)
                continue
            chunk = self._tokens[self.position: self.position + n - filled]
            out[filled: filled + len(chunk)] = chunk
            filled += len(chunk)
            self.position += len(chunk)
        return out

    def state_dict(self) -> dict[str, int]:
        return {"file_index": self.file_index, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        file_index, position = int(state["file_index"]), int(state["position"])
        if not 0 <= file_index < len(self.files) or not 0 <= position <= self._lengths[file_index]:
            raise ValueError(f"loader state {state} does not fit these {len(self.files)} shard file(s)")
        self._open(file_index, position)


class DistributedTokenLoader:
    """(x, y) batches of one rank: x the span without its last token, y the span without its first.

    With pin_memory (the default where CUDA is available) the span is copied into page-locked memory, so that
    `.to(device, non_blocking=True)` is a true asynchronous copy: the host queues it and goes on, instead of waiting
    for the GPU to drain the kernels queued before it. torch's pinned-memory cache keeps a block until the copies
    that read it are done, so a later batch never overwrites one in flight."""

    def __init__(self, files: Sequence[str | os.PathLike], rank: int, world_size: int,
                 pin_memory: Optional[bool] = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.rank = rank
        self.world_size = world_size
        self.stream = TokenStream(files)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory

    def next_batch(self, global_tokens: int, seq_len: int, grad_accum_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        local_tokens = global_tokens // (self.world_size * grad_accum_steps)
        if local_tokens < seq_len or local_tokens % seq_len:
            raise ValueError(f"{global_tokens} tokens over {self.world_size} rank(s) x {grad_accum_steps} "
                             f"accumulation step(s) give {local_tokens} tokens a rank, not a multiple of the "
                             f"sequence length {seq_len}")
        span = local_tokens + 1
        chunk = self.stream.take(span * self.world_size)
        local = torch.from_numpy(chunk[self.rank * span: (self.rank + 1) * span])
        if self.pin_memory:
            local = local.pin_memory()
        return local[:-1].reshape(-1, seq_len), local[1:].reshape(-1, seq_len)

    def state_dict(self) -> dict[str, int]:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.stream.load_state_dict(state)


TrainingLoader = Union[DistributedTokenLoader, ShuffledSequenceLoader, DocumentPackingLoader]


def build_loader(kind: str, files: Sequence[str | os.PathLike], rank: int, world_size: int, seq_len: int,
                 pin_memory: Optional[bool] = None) -> TrainingLoader:
    """The training loader data.loader names: stream (DistributedTokenLoader, the default), shuffled
    (golf/data/shuffled.py) or documents (golf/data/documents.py). All take next_batch(global_tokens, seq_len,
    grad_accum_steps) -> (x, y) and save their position with state_dict()."""
    if kind == "stream":
        return DistributedTokenLoader(files, rank, world_size, pin_memory)
    if kind == "shuffled":
        return ShuffledSequenceLoader(files, rank, world_size, seq_len, pin_memory)
    if kind == "documents":
        return DocumentPackingLoader(files, rank, world_size, pin_memory)
    raise ValueError(f"unknown data.loader {kind!r}: one of stream, shuffled, documents")
