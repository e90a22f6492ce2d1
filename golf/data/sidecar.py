"""Byte sidecars: per validation token, how many bytes of the original text it stands for.

A tokenizer trained on CaseOps text (golf/data/caseops.py) encodes a transformed text, so its byte table would count
operators as text and could not see the capitals they stand for. The records bill the original text instead: beside
each validation shard fineweb_val_<i>.bin lies fineweb_val_bytes_<i>.bin, the same shard format holding one uint16
per token, the UTF-8 bytes of original text that token covers; BOS and the operators count 0. Bits per byte divide
by the sum of these over the scored targets (docs/bpb.md).

A token covers the span of the encoded text SentencePiece aligns it with (its surface). The whitespace the
normalizer removes inside a document belongs to the next token's span; whitespace it removes at the very start or
end of a document is covered by no token and counts nowhere, exactly as the byte tables do not count it.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from golf.data import caseops
from golf.data.tokenizer import BOS_ID, encode_documents
from golf.errors import DataError

MAX_COUNT = (1 << 16) - 1  # stored as uint16


def _document_counts(sp, text: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    encoded = caseops.encode(text)
    pieces = sp.encode(encoded, out_type="proto").pieces
    # cumulative original bytes before each byte offset of the encoding: a token's count is a difference of two
    before = np.concatenate(([0], np.cumsum(caseops.original_byte_weights(encoded.encode("utf-8")))))
    ids = np.fromiter((p.id for p in pieces), dtype=np.int64, count=len(pieces))
    begins = np.fromiter((p.begin for p in pieces), dtype=np.int64, count=len(pieces))
    ends = np.fromiter((p.end for p in pieces), dtype=np.int64, count=len(pieces))
    counts = before[ends] - before[begins]
    if counts.size and counts.max() > MAX_COUNT:
        raise DataError(f"validation document {index} has a token standing for {int(counts.max()):,} bytes of text "
                        f"(a run of whitespace the tokenizer folds into one piece); a byte sidecar stores at most "
                        f"{MAX_COUNT:,} per token: shorten that run in the source text")
    return np.concatenate(([BOS_ID], ids)), np.concatenate(([0], counts))


def encode_with_byte_counts(sp, documents: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """The stream of each document's CaseOps encoding (BOS, then its tokens) and, token for token, the bytes of the
    original document each one stands for, both uint16."""
    if sp.get_piece_size() > 1 << 16:
        raise ValueError(f"the tokenizer has {sp.get_piece_size()} pieces; uint16 shards hold at most 65536")
    tokens, counts = [], []
    for index, text in enumerate(documents):
        ids, nbytes = _document_counts(sp, text, index)
        tokens.append(ids.astype(np.uint16))
        counts.append(nbytes.astype(np.uint16))
    if not tokens:
        return np.zeros(0, dtype=np.uint16), np.zeros(0, dtype=np.uint16)
    return np.concatenate(tokens), np.concatenate(counts)


def encode_caseops_documents(sp, documents: Iterable[str]) -> np.ndarray:
    """The training stream: each document's CaseOps encoding as BOS + tokens (training reads no bytes: no sidecar)."""
    return encode_documents(sp, (caseops.encode(text) for text in documents))
