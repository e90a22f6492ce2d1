"""SentencePiece BPE as the challenge trains it, the per-token byte tables behind bits per byte, and encoding."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
import sentencepiece as spm

from golf.atomic import atomic_write_bytes
from golf.errors import ConfigError, DataError

BOS_ID = 1
# CaseOps' operators TITLE, ALLCAPS, CAPNEXT, ESC (golf/data/caseops.py, whose OPERATORS a test holds equal to this):
# spelled here too because evaluating an artifact needs this file and not the transform (golf/quant/code_size.py)
CASEOPS_PIECES = ("\ue001", "\ue002", "\ue003", "\ue004")
SPACE_SYMBOL = "\u2581"  # SentencePiece's stand-in for a space
# SentencePiece skips training sentences longer than this many bytes, so documents are fed in chunks of whole lines
TRAIN_SENTENCE_BYTES = 1 << 16
ENCODE_BATCH_DOCUMENTS = 1024

CHALLENGE_TRAINER_OPTIONS = dict(
    model_type="bpe",
    character_coverage=0.999,
    byte_fallback=True,
    split_digits=True,
    normalization_rule_name="nmt_nfkc",
    add_dummy_prefix=False,
    pad_id=0,
    bos_id=BOS_ID,
    eos_id=2,
    unk_id=3,
)
# Determinism: the BPE trainer's result depends on its thread count, and sampling/shuffling would add randomness.
DETERMINISM_OPTIONS = dict(num_threads=1, input_sentence_size=0, shuffle_input_sentence=False)


def _training_sentences(documents: Iterable[str]) -> Iterator[str]:
    """Each document as chunks of whole lines under TRAIN_SENTENCE_BYTES (the normalizer turns newlines into spaces)."""
    for text in documents:
        chunk: list[str] = []
        size = 0
        for line in text.split("\n"):  # only newlines: other line breaks stay as the encoder sees them
            encoded = len(line.encode("utf-8")) + 1
            if chunk and size + encoded > TRAIN_SENTENCE_BYTES:
                yield "\n".join(chunk)
                chunk, size = [], 0
            if encoded > TRAIN_SENTENCE_BYTES:  # one enormous line: cut it at character boundaries
                data = line.encode("utf-8")
                for begin in range(0, len(data), TRAIN_SENTENCE_BYTES):
                    yield data[begin: begin + TRAIN_SENTENCE_BYTES].decode("utf-8", errors="ignore")
                continue
            chunk.append(line)
            size += encoded
        if chunk:
            yield "\n".join(chunk)


def train_tokenizer(documents: Iterable[str], vocab_size: int, model_path: str | os.PathLike,
                    user_symbols: Sequence[str] = ()) -> None:
    """Train with the challenge's settings; the same documents always give a byte-identical model file.
    `user_symbols` become SentencePiece user-defined symbols, one piece each at ids 4, 5, ... (CaseOps' operators)."""
    model = io.BytesIO()
    extra = {"user_defined_symbols": list(user_symbols)} if user_symbols else {}
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_training_sentences(documents),
            model_writer=model,
            vocab_size=vocab_size,
            max_sentence_length=TRAIN_SENTENCE_BYTES,
            minloglevel=2,  # SentencePiece's own progress lines stay quiet
            **CHALLENGE_TRAINER_OPTIONS,
            **DETERMINISM_OPTIONS,
            **extra,
        )
    except RuntimeError as err:
        raise ConfigError("data.vocab_size", f"is {vocab_size} but SentencePiece could not train a tokenizer of "
                                             f"that size on these documents ({err}); choose a vocab_size that fits "
                                             f"this corpus") from err
    atomic_write_bytes(model_path, model.getvalue())


def load_tokenizer(path: str | os.PathLike, expected_vocab_size: Optional[int] = None) -> spm.SentencePieceProcessor:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"tokenizer {path} does not exist; build it with `python -m golf.data prepare` "
                        f"(or fetch FineWeb's with scripts/download_fineweb.py)")
    try:
        model = path.read_bytes()
        if not model:  # SentencePiece would accept an empty model and fail later
            raise RuntimeError("the file is empty")
        sp = spm.SentencePieceProcessor(model_proto=model)
    except (OSError, RuntimeError) as err:
        raise DataError(f"tokenizer {path} could not be read as a SentencePiece model: {err}") from err
    n_pieces = sp.get_piece_size()
    # the shard stream starts each document with BOS_ID, and bits per byte counts byte-fallback pieces as one byte:
    # a tokenizer trained with other settings would give a stream and a score that mean something else
    if sp.bos_id() != BOS_ID:
        raise DataError(f"tokenizer {path} has its BOS at id {sp.bos_id()}, golf's shards put it at {BOS_ID}: not a "
                        f"tokenizer trained with the challenge's settings (golf/data/tokenizer.py)")
    n_bytes = sum(1 for i in range(n_pieces) if sp.is_byte(i))
    if n_bytes != 256:
        raise DataError(f"tokenizer {path} has {n_bytes} byte-fallback pieces, expected 256 (<0x00>..<0xFF>): not a "
                        f"tokenizer trained with the challenge's settings (byte_fallback=true)")
    if expected_vocab_size is not None and expected_vocab_size != n_pieces:
        raise ConfigError("data.vocab_size", f"is {expected_vocab_size} but the tokenizer {path} has {n_pieces} "
                                             f"pieces; set data.vocab_size={n_pieces} or point data.tokenizer at a "
                                             f"matching tokenizer")
    return sp


@dataclass
class ByteTables:
    """Per token id: UTF-8 bytes without the leading space, whether it has one, whether it is a boundary token."""

    base_bytes: np.ndarray  # int32
    has_leading_space: np.ndarray  # bool
    is_boundary: np.ndarray  # bool
    # a CaseOps tokenizer: its pieces spell transformed text, so only a byte sidecar gives the original text's bytes
    needs_sidecar: bool = False


def caseops_operator_ids(sp: spm.SentencePieceProcessor) -> list[int]:
    """Ids of the pieces that are CaseOps operators (none for a tokenizer of untransformed text)."""
    ids = (sp.piece_to_id(operator) for operator in CASEOPS_PIECES)
    return [i for i in ids if i != sp.unk_id()]


def byte_tables(sp: spm.SentencePieceProcessor, vocab_size: int) -> ByteTables:
    """docs/bpb.md's tables; ids past the tokenizer (a model's vocab may be padded) are boundary tokens of 0 bytes."""
    n_pieces = sp.get_piece_size()
    table_size = max(n_pieces, vocab_size)
    base_bytes = np.zeros(table_size, dtype=np.int32)
    has_leading_space = np.zeros(table_size, dtype=bool)
    is_boundary = np.ones(table_size, dtype=bool)
    for token_id in range(n_pieces):
        if sp.is_control(token_id) or sp.is_unknown(token_id) or sp.is_unused(token_id):
            continue
        is_boundary[token_id] = False
        if sp.is_byte(token_id):
            base_bytes[token_id] = 1
            continue
        piece = sp.id_to_piece(token_id)
        if piece.startswith(SPACE_SYMBOL):
            has_leading_space[token_id] = True
            piece = piece[len(SPACE_SYMBOL):]
        base_bytes[token_id] = len(piece.encode("utf-8"))
    return ByteTables(base_bytes, has_leading_space, is_boundary, needs_sidecar=bool(caseops_operator_ids(sp)))


def scored_bytes(tokens: np.ndarray, tables: ByteTables, chunk: int = 1 << 22) -> int:
    """Bytes that bits per byte divides by when every target tokens[1:] is scored after its previous token."""
    total = 0
    for begin in range(1, len(tokens), chunk):
        targets = np.asarray(tokens[begin: begin + chunk], dtype=np.int64)
        previous = np.asarray(tokens[begin - 1: begin - 1 + len(targets)], dtype=np.int64)
        leading = tables.has_leading_space[targets] & ~tables.is_boundary[previous]
        total += int(tables.base_bytes[targets].sum(dtype=np.int64)) + int(leading.sum())
    return total


def encode_documents(sp: spm.SentencePieceProcessor, documents: Iterable[str]) -> np.ndarray:
    """The challenge's stream: each document is BOS followed by its tokens, with no EOS."""
    if sp.get_piece_size() > 1 << 16:
        raise ValueError(f"the tokenizer has {sp.get_piece_size()} pieces; uint16 shards hold at most 65536")
    parts: list[np.ndarray] = []
    batch: list[str] = []

    def flush() -> None:
        for ids in sp.encode(batch):
            parts.append(np.asarray([BOS_ID, *ids], dtype=np.uint16))
        batch.clear()

    for text in documents:
        batch.append(text)
        if len(batch) == ENCODE_BATCH_DOCUMENTS:
            flush()
    flush()
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)
