"""Checks of the prepared data against the config, run before any training: each names the file or key at fault."""

from __future__ import annotations

from typing import Any

from golf.data.shards import TokenArray
from golf.errors import ConfigError


def check_prepared(cfg: Any, val: TokenArray, val_dir: Any) -> None:
    """`cfg` is the GolfConfig; `val` the (possibly capped) validation tokens read from `val_dir`."""
    if len(val) <= cfg.eval.seq_len:
        raise ConfigError("eval.seq_len", f"is {cfg.eval.seq_len} but the validation set {val_dir} "
                          f"has only {len(val)} tokens; use a shorter eval.seq_len or more validation data")
