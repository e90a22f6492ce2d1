"""Stage 1, prepare: the device and the data a job reads (rank 0 prepares first), checked against the config, and
the fingerprint of what training reads. What it produces, a `Job`, is what the later stages share."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from golf.collectives import barrier, rank_world
from golf.config import GolfConfig
from golf.data.checks import check_prepared, check_training_tokens
from golf.data.fingerprint import fingerprint
from golf.data.prepare import PreparedData, ensure_prepared
from golf.data.shards import TokenArray
from golf.data.tokenizer import byte_tables, load_tokenizer
from golf.dist import local_rank
from golf.hardware import autocast, setup_device
from golf.runs import RunDir
from golf.wandb_run import WandbRun


@dataclass
class Job:
    """One job's config, where it writes, its device and its prepared data: what every stage after prepare reads."""

    cfg: GolfConfig
    run: RunDir
    tracker: WandbRun
    device: torch.device
    data: PreparedData
    sp: Any  # the tokenizer
    tables: Any  # its byte tables (the bpb denominator)
    val: TokenArray  # the validation tokens, capped at eval.max_tokens

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files, W&B and the scorecard."""
        return rank_world()[0] == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.cfg.hardware, self.device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(cfg: GolfConfig, run: RunDir, tracker: WandbRun) -> Job:
    device = setup_device(cfg.hardware, local_rank())
    data, sp, tables, val = load_data_rank0_first(cfg, run.log)
    return Job(cfg, run, tracker, device, data, sp, tables, val)


def load_data(cfg: GolfConfig, log: Callable[[str], None]) -> tuple[PreparedData, Any, Any, TokenArray]:
    """Prepared shards, tokenizer, byte tables and the (possibly capped) validation tokens, checked against config."""
    data = ensure_prepared(cfg.data, log=log)
    sp = load_tokenizer(data.tokenizer_path, expected_vocab_size=cfg.data.vocab_size)
    tables = byte_tables(sp, cfg.data.vocab_size)
    val = TokenArray.from_files(data.val_files, max_tokens=cfg.eval.max_tokens or None)
    check_prepared(cfg, val, data.val_files[0].parent, train_files=data.train_files)
    return data, sp, tables, val


def load_data_rank0_first(cfg: GolfConfig, log: Callable[[str], None]) -> tuple[PreparedData, Any, Any, TokenArray]:
    """Rank 0 prepares (builds a generated corpus when needed); the others then find it prepared."""
    main = rank_world()[0] == 0
    loaded = load_data(cfg, log) if main else None
    barrier()
    return loaded if loaded is not None else load_data(cfg, lambda _line: None)


def training_data_sha256(cfg: GolfConfig, data: PreparedData, log: Callable[[str], None]) -> str:
    """The fingerprint of the tokenizer and shards (golf/data/fingerprint.py), after checking that no shard
    training reads holds a token id the model has no row for."""
    found = fingerprint(data.tokenizer_path, data.train_files, data.val_files,
                        Path(cfg.paths.root) / "cache" / "fingerprints", log=log)
    check_training_tokens(cfg, found)
    return found.sha256
