"""The sha256 of a file, read in blocks: what the cache, checkpoints, the corpus wheel and W&B artifacts check."""

from __future__ import annotations

import hashlib
import os

BLOCK_BYTES = 1 << 24


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()
