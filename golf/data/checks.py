"""Checks of the prepared data against the config, run before any training: each names the file or key at fault."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from golf.data.shards import TokenArray, read_shard_header
from golf.errors import ConfigError, DataError

SCAN_CHUNK = 1 << 22  # tokens read at a time when scanning for the largest id


def check_prepared(cfg: Any, val: TokenArray, val_dir: Any, train_files: Sequence[str | os.PathLike]) -> None:
    """`cfg` is the GolfConfig; `val` the (possibly capped) validation tokens read from `val_dir`; `train_files` the
    training shards."""
    if len(val) == 0:
        raise DataError(f"the validation set in {val_dir} is empty (0 tokens in its fineweb_val_*.bin shards); "
                        "nothing could be scored: prepare the data again (a larger data.val_fraction, more documents) "
                        "or use shards with validation tokens")
    if len(val) <= cfg.eval.seq_len:
        raise ConfigError("eval.seq_len", f"is {cfg.eval.seq_len} but the validation set {val_dir} "
                          f"has only {len(val)} tokens; use a shorter eval.seq_len or more validation data")
    if not train_files:
        raise DataError(f"there are no training shards for the validation set in {val_dir}")
    train_tokens = sum(read_shard_header(f) for f in train_files)
    if train_tokens <= cfg.train.seq_len:  # a training sequence takes seq_len + 1 tokens (inputs and targets)
        raise ConfigError("train.seq_len", f"is {cfg.train.seq_len} but the training data ({len(train_files)} "
                          f"shard(s) in {Path(train_files[0]).parent}) has only "
                          f"{train_tokens} tokens; use a shorter train.seq_len or more training data")
    largest = _largest(val)
    if largest >= cfg.data.vocab_size:
        _refuse_token(cfg.data.vocab_size, f"validation set {val_dir}", largest)


def check_training_tokens(cfg: Any, fingerprint: Any) -> None:
    """Every shard training will read (all of them, and the validation shards) against data.vocab_size, from the
    largest ids the data fingerprint recorded (golf/data/fingerprint.py: one pass when a file is first hashed)."""
    for split in ("train", "val"):
        for shard in getattr(fingerprint, split):
            if shard.max_token >= cfg.data.vocab_size:
                folder = Path(cfg.data.shards_dir)
                _refuse_token(cfg.data.vocab_size, f"{split} shard {folder / shard.name}", shard.max_token)


def _refuse_token(vocab: int, what: str, largest: int) -> None:
    raise ConfigError("data.vocab_size", f"is {vocab} but the {what} holds token id {largest}; the model's "
                      f"embedding has data.vocab_size rows, so these shards were made with another tokenizer: "
                      f"set data.vocab_size and data.tokenizer to the ones the shards were made with")


def _largest(tokens: TokenArray) -> int:
    largest = -1
    for begin in range(0, len(tokens), SCAN_CHUNK):
        chunk = tokens.read(begin, min(begin + SCAN_CHUNK, len(tokens)))
        largest = max(largest, int(chunk.max()))
    return largest
