"""Training sequences in shuffled order, as the T3 record draws them (data.loader=shuffled).

Rank r owns the shards files[r::world_size] and a PCG64 generator seeded with r (the record's seed: the order does
not follow golf's seed). Each shard is cut into train.seq_len + 1 windows at a random phase, in a random permutation;
each sequence of a batch comes from a shard drawn with probability proportional to the windows it has left, and when
every shard is used up all are cut and permuted again.

The state saved in a checkpoint is the number of sequences drawn, the same on every rank: a resumed loader replays
that many draws of its generator (no data is read), so each rank continues its own order exactly.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import torch

from golf.data.shards import read_shard, read_shard_header
from golf.errors import DataError


class ShuffledSequenceLoader:
    def __init__(self, files: Sequence[str | os.PathLike], rank: int, world_size: int, seq_len: int,
                 pin_memory: Optional[bool] = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        files = list(files)
        self.files = files[rank::world_size]
        if not self.files:
            raise DataError(f"data.loader=shuffled gives each rank its own training shards, and {len(files)} "
                            f"shard(s) cannot serve {world_size} ranks; use data.loader=stream, or more shards")
        self.rank, self.world_size, self.seq_len = rank, world_size, seq_len
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self._lengths = [read_shard_header(f) for f in self.files]
        self._maps: dict[int, np.ndarray] = {}
        if all(n <= seq_len for n in self._lengths):
            raise DataError(f"the training shards of rank {rank} ({self.files[0]} ...) hold no window of "
                            f"train.seq_len + 1 = {seq_len + 1} tokens")
        self._restart()

    def _restart(self) -> None:
        self.rng = np.random.Generator(np.random.PCG64(self.rank))
        self.drawn = 0
        self.start_inds: list[list[int]] = [[] for _ in self.files]
        for si in range(len(self.files)):
            self._reset_shard(si)

    def _reset_shard(self, si: int) -> None:
        n = self._lengths[si]
        max_phase = min(self.seq_len - 1, max(0, n - self.seq_len - 1))
        phase = int(self.rng.integers(max_phase + 1)) if max_phase > 0 else 0
        count = max(0, (n - 1 - phase) // self.seq_len)
        self.start_inds[si] = (phase + self.rng.permutation(count) * self.seq_len).tolist()

    def _draw(self) -> tuple[int, int]:
        """The next (shard, start) of this rank's order."""
        remaining = np.array([len(s) for s in self.start_inds], dtype=np.float64)
        total = remaining.sum()
        if total <= 0:
            for si in range(len(self.files)):
                self._reset_shard(si)
            remaining = np.array([len(s) for s in self.start_inds], dtype=np.float64)
            total = remaining.sum()
        si = int(self.rng.choice(len(self.files), p=remaining / total))
        self.drawn += 1
        return si, self.start_inds[si].pop()

    def next_batch(self, global_tokens: int, seq_len: int, grad_accum_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        if seq_len != self.seq_len:
            raise ValueError(f"this loader cuts windows of {self.seq_len} tokens, asked for {seq_len}")
        local_tokens = global_tokens // (self.world_size * grad_accum_steps)
        if local_tokens < seq_len or local_tokens % seq_len:
            raise ValueError(f"{global_tokens} tokens over {self.world_size} rank(s) x {grad_accum_steps} "
                             f"accumulation step(s) give {local_tokens} tokens a rank, not a multiple of the "
                             f"sequence length {seq_len}")
        rows = np.empty((local_tokens // seq_len, seq_len + 1), dtype=np.int64)
        for row in rows:
            si, start = self._draw()
            row[:] = self._shard(si)[start: start + seq_len + 1]
        x, y = torch.from_numpy(rows[:, :-1].copy()), torch.from_numpy(rows[:, 1:].copy())
        if self.pin_memory:
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def _shard(self, si: int) -> np.ndarray:
        if si not in self._maps:  # memory-mapped once: the pages stay with the OS
            self._maps[si] = read_shard(self.files[si])
        return self._maps[si]

    def state_dict(self) -> dict[str, int]:
        return {"sequences_drawn": self.drawn}

    def load_state_dict(self, state: dict[str, int]) -> None:
        drawn = int(state["sequences_drawn"])
        if drawn < 0:
            raise ValueError(f"loader state {state}: a negative number of sequences drawn")
        self._restart()
        for _ in range(drawn):
            self._draw()
