"""Token shards in the challenge's binary format, and a memory-mapped view over a list of them.

A shard is 256 little-endian int32 (1024 bytes: magic, version, token count N, then zeros) followed by N
little-endian uint16 tokens, so its size is exactly 1024 + 2N bytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from golf.atomic import atomic_open
from golf.errors import DataError

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
SPLITS = ("train", "val")
TOKEN_DTYPE = np.dtype("<u2")
HEADER_DTYPE = np.dtype("<i4")
MAX_TOKEN = 1 << 16  # exclusive: tokens are stored as uint16


def shard_name(split: str, index: int) -> str:
    if split not in SPLITS:
        raise ValueError(f"split is {split!r}; expected one of {', '.join(SPLITS)}")
    return f"fineweb_{split}_{index:06d}.bin"


def _checked_tokens(tokens: np.ndarray | Sequence[int]) -> np.ndarray:
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise ValueError(f"tokens must be a 1-D sequence; got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"tokens must be integers; got dtype {array.dtype}")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= MAX_TOKEN:
        raise ValueError(f"tokens must lie in [0, {MAX_TOKEN}); found values from {low} to {high}")
    return array.astype(TOKEN_DTYPE, copy=False)


def write_shard(path: str | os.PathLike, tokens: np.ndarray | Sequence[int]) -> None:
    """Write atomically: a temporary file in the same folder is renamed over `path` once complete."""
    path = Path(path)
    array = _checked_tokens(tokens)
    header = np.zeros(HEADER_INTS, dtype=HEADER_DTYPE)
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, array.size)
    with atomic_open(path) as f:
        f.write(header.tobytes())
        array.tofile(f)  # streams from the array: no second copy of a 100M-token shard in memory


def read_shard_header(path: str | os.PathLike) -> int:
    """Validate a shard's header and size; return its token count N."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"shard {path} does not exist (expected a file written by `python -m golf.data prepare` "
                        f"or scripts/download_fineweb.py)")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise DataError(f"shard {path} is {size} bytes, shorter than the {HEADER_BYTES}-byte header: "
                        f"truncated or not a Parameter Golf shard")
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(HEADER_BYTES), dtype=HEADER_DTYPE)
    magic, version, n_tokens = (int(v) for v in header[:3])
    if magic != SHARD_MAGIC:
        raise DataError(f"shard {path} has magic {magic}, expected {SHARD_MAGIC}: not a Parameter Golf shard")
    if version != SHARD_VERSION:
        raise DataError(f"shard {path} has version {version}, expected {SHARD_VERSION}")
    if n_tokens < 0:
        raise DataError(f"shard {path} has a negative token count ({n_tokens}) in its header: corrupted")
    expected = HEADER_BYTES + 2 * n_tokens
    if size != expected:
        cause = "truncated or corrupted" if size < expected else "extra bytes at the end"
        raise DataError(f"shard {path} is {size} bytes but its header says {n_tokens} tokens, so it should be "
                        f"{expected} bytes: {cause}")
    return n_tokens


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """The shard's tokens as a read-only uint16 memmap (an empty array for an empty shard: mmap needs a byte)."""
    n_tokens = read_shard_header(path)
    if n_tokens == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(n_tokens,))


def list_shards(directory: str | os.PathLike, split: str) -> list[Path]:
    directory = Path(directory)
    pattern = f"fineweb_{split}_*.bin"
    files = sorted(directory.glob(pattern)) if directory.is_dir() else []
    if not files:
        where = "in" if directory.is_dir() else "in the missing folder"
        raise DataError(f"no shards matching {pattern} {where} {directory}; build them with "
                        f"`python -m golf.data prepare` (or fetch FineWeb with scripts/download_fineweb.py)")
    return files


class TokenArray:
    """Read-only concatenation of shards; each stays memory-mapped, so the set never has to fit in RAM."""

    def __init__(self, parts: list[np.ndarray]):
        self._parts = parts
        self._starts = np.cumsum([0] + [len(p) for p in parts])  # _starts[i] = global index of parts[i][0]

    @classmethod
    def from_files(cls, files: Sequence[str | os.PathLike], max_tokens: Optional[int] = None) -> "TokenArray":
        """Map `files` in order; with max_tokens, keep only the first max_tokens tokens of the whole set."""
        parts: list[np.ndarray] = []
        total = 0
        for file in files:
            if max_tokens is not None and total >= max_tokens:
                break
            tokens = read_shard(file)
            if max_tokens is not None:
                tokens = tokens[: max_tokens - total]
            parts.append(tokens)
            total += len(tokens)
        return cls(parts)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def read(self, start: int, stop: int) -> np.ndarray:
        """Tokens [start, stop) as a new int64 array; the range may span several shards."""
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"range [{start}, {stop}) is outside the token array of length {len(self)}")
        out = np.empty(stop - start, dtype=np.int64)
        part = int(np.searchsorted(self._starts, start, side="right")) - 1
        written = 0
        while written < out.size:
            offset = start + written - int(self._starts[part])
            chunk = self._parts[part][offset: offset + out.size - written]
            out[written: written + len(chunk)] = chunk
            written += len(chunk)
            part += 1
        return out
