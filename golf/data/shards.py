"""Token shards in the challenge's binary format, and a memory-mapped view over a list of them.

A shard is 256 little-endian int32 (1024 bytes: magic, version, token count N, then zeros) followed by N
little-endian uint16 tokens, so its size is exactly 1024 + 2N bytes.
"""

from __future__ import annotations

import os
import re
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
SIDECAR = "val_bytes"  # fineweb_val_bytes_<i>.bin: the byte sidecar of fineweb_val_<i>.bin (golf/data/sidecar.py)
KINDS = (*SPLITS, SIDECAR)
# The whole name, so that fineweb_val_*.bin, which also matches the sidecars, is never what decides a file's kind
SHARD_NAME = re.compile(r"fineweb_(train|val|val_bytes)_(\d{6})\.bin")
TOKEN_DTYPE = np.dtype("<u2")
HEADER_DTYPE = np.dtype("<i4")
MAX_TOKEN = 1 << 16  # exclusive: tokens are stored as uint16


def shard_name(split: str, index: int) -> str:
    if split not in KINDS:
        raise ValueError(f"split is {split!r}; expected one of {', '.join(KINDS)}")
    return f"fineweb_{split}_{index:06d}.bin"


def parse_shard_name(name: str) -> Optional[tuple[str, int]]:
    """(kind, index) of a shard's file name, or None for a name golf does not write."""
    match = SHARD_NAME.fullmatch(name)
    return (match.group(1), int(match.group(2))) if match else None


def sidecar_path(shard: str | os.PathLike) -> Optional[Path]:
    """Where the byte sidecar of a validation shard lies (beside it); None for any other file."""
    shard = Path(shard)
    parsed = parse_shard_name(shard.name)
    if parsed is None or parsed[0] != "val":
        return None
    return shard.with_name(shard_name(SIDECAR, parsed[1]))


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
    """The shards of one kind (train, val or val_bytes), sorted; the whole name is matched (see SHARD_NAME)."""
    directory = Path(directory)
    pattern = f"fineweb_{split}_*.bin"
    found = directory.glob(pattern) if directory.is_dir() else []
    files = sorted(f for f in found if (parse_shard_name(f.name) or ("",))[0] == split)
    if not files:
        where = "in" if directory.is_dir() else "in the missing folder"
        raise DataError(f"no shards matching {pattern} {where} {directory}; build them with "
                        f"`python -m golf.data prepare` (or fetch FineWeb with scripts/download_fineweb.py)")
    return files


class TokenArray:
    """Read-only concatenation of shards; each stays memory-mapped, so the set never has to fit in RAM.

    `byte_counts`, when present, is a TokenArray of the same length: per token, the bytes of original text it stands
    for (CaseOps data's byte sidecars, golf/data/sidecar.py). Evaluation counts bytes from it instead of the
    tokenizer's tables (golf/evaluate/windows.py)."""

    def __init__(self, parts: list[np.ndarray], byte_counts: Optional["TokenArray"] = None):
        self._parts = parts
        self._starts = np.cumsum([0] + [len(p) for p in parts])  # _starts[i] = global index of parts[i][0]
        if byte_counts is not None and len(byte_counts) != len(self):
            raise ValueError(f"byte counts cover {len(byte_counts)} tokens, the token array has {len(self)}")
        self.byte_counts = byte_counts

    @classmethod
    def from_files(cls, files: Sequence[str | os.PathLike], max_tokens: Optional[int] = None) -> "TokenArray":
        """Map `files` in order; with max_tokens, keep only the first max_tokens tokens of the whole set. Validation
        shards with byte sidecars beside them (fineweb_val_bytes_<i>.bin) bring those along as byte_counts, cut the
        same way; the shard folder's check (golf/data/layout.py) has made sure they are there exactly when the
        config expects them."""
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
        used = list(files)[:len(parts)]
        sidecars = [sidecar_path(f) for f in used]
        present = [s for s in sidecars if s is not None and s.is_file()]
        if not present:
            return cls(parts)
        if len(present) != len(used):
            lacking = [str(f) for f, s in zip(used, sidecars) if s is None or not s.is_file()]
            raise DataError(f"only some validation shards have byte sidecars: {', '.join(lacking[:5])} lack theirs; "
                            f"the bytes of the whole set must come from one source")
        counts = []
        for shard, sidecar, part in zip(used, present, parts):
            full = read_shard(sidecar)
            if len(full) != read_shard_header(shard):
                raise DataError(f"byte sidecar {sidecar} holds {len(full):,} entries but {shard} holds "
                                f"{read_shard_header(shard):,} tokens: a sidecar has one entry per token")
            counts.append(full[:len(part)])
        return cls(parts, byte_counts=cls(counts))

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
