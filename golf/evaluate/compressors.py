"""For scale: the bits per byte that general-purpose compressors reach on the same validation text.

The validation tokens are decoded document by document (a document starts at each BOS) back to UTF-8, the bytes
the model is scored on, and compressed whole. Measured in the run that reports them.
"""

from __future__ import annotations

import lzma
import zlib

import numpy as np
import sentencepiece as spm
import zstandard

from golf.data.shards import TokenArray

BOS_ID = 1
COMPRESSORS = {
    "zlib_9": lambda data: zlib.compress(data, 9),
    "zstd_19": lambda data: zstandard.ZstdCompressor(level=19).compress(data),
    "xz_9": lambda data: lzma.compress(data, preset=9),
}


def validation_text_bytes(val: TokenArray, sp: spm.SentencePieceProcessor) -> bytes:
    tokens = val.read(0, len(val))
    starts = np.flatnonzero(tokens == BOS_ID).tolist()
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    bounds = [*starts, len(tokens)]
    docs = []
    for begin, end in zip(bounds[:-1], bounds[1:]):
        ids = [int(t) for t in tokens[begin:end] if t != BOS_ID]
        docs.append(sp.decode(ids).encode("utf-8"))
    return b"".join(docs)


def compressor_bpb(val: TokenArray, sp: spm.SentencePieceProcessor) -> dict[str, float]:
    data = validation_text_bytes(val, sp)
    return {name: 8.0 * len(compress(data)) / len(data) for name, compress in COMPRESSORS.items()}
