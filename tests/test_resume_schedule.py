"""The frontier's optimizer and schedule survive a checkpoint resume: a training with the warm-down by fraction and
its floor, MuonEq-R, Polar Express and the banked arithmetic (bf16 momentum buffers), AdamW decay and beta2 per
group, interrupted after a checkpoint and resumed in a fresh Trainer, ends with the same weights, bit for bit, as one
that never stopped. Slow: it trains (a tiny model, a few steps)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from golf.checkpoint import Checkpointer, resume_training
from golf.data.loader import DistributedTokenLoader
from golf.data.shards import write_shard
from golf.model.gpt import GPT, ModelConfig
from golf.optim.build import OptimConfig, build_optimizers
from golf.optim.muon import Muon
from golf.trainer import Trainer, TrainConfig

pytestmark = pytest.mark.slow

VOCAB = 64
TRAIN = TrainConfig(iterations=12, warmdown_steps=1, warmdown_frac=0.6, batch_tokens=128, seq_len=32,
                    max_wallclock_s=0, priming_steps=1, checkpoint_every=6, keep_checkpoints=2)
OPTIM = OptimConfig(muon_row_normalize=True, muon_ns_coefficients="polar_express", muon_arithmetic="banked",
                    muon_momentum=0.97, muon_momentum_warmup_start=0.92, muon_momentum_warmup_steps=8, min_lr=0.1,
                    muon_wd=0.095, embed_wd=0.085, scalar_wd=0.02, beta2=0.99, embed_beta2=0.95, grad_clip_norm=0.3)


class Interrupted(BaseException):
    """Stands in for a kill right after a checkpoint was written."""


def trainer(shard: Path, checkpoints: Path | None) -> Trainer:
    torch.manual_seed(0)
    model = GPT(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1), VOCAB)
    checkpointer = Checkpointer(checkpoints, TRAIN.checkpoint_every, TRAIN.keep_checkpoints, log=lambda _: None) \
        if checkpoints is not None else None
    return Trainer(model, build_optimizers(model, OPTIM), DistributedTokenLoader([shard], 0, 1), TRAIN, OPTIM,
                   torch.device("cpu"), contextlib.nullcontext, log=lambda _: None, show_progress=False,
                   checkpointer=checkpointer)


def momentum_dtypes(t: Trainer) -> set[torch.dtype]:
    muon = next(opt for opt in t.optimizers if isinstance(opt, Muon))
    return {state["momentum_buffer"].dtype for state in muon.state.values()}


def test_the_frontier_schedule_resumes_to_the_same_weights(tmp_path, monkeypatch):
    shard = tmp_path / "fineweb_train_000000.bin"
    write_shard(shard, np.random.default_rng(0).integers(0, VOCAB, size=20_000))
    whole = trainer(shard, None)
    whole.fit()
    assert momentum_dtypes(whole) == {torch.bfloat16}

    save = Trainer.save_checkpoint

    def save_then_die(self: Trainer, step: int) -> None:
        save(self, step)
        if step == 6:
            raise Interrupted

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        trainer(shard, tmp_path / "ckpt").fit()
    monkeypatch.setattr(Trainer, "save_checkpoint", save)

    resumed = trainer(shard, tmp_path / "ckpt")
    assert resume_training(resumed, resumed.checkpointer, lambda _: None)["step"] == 6
    result = resumed.fit()
    assert result.steps == TRAIN.iterations
    assert momentum_dtypes(resumed) == {torch.bfloat16}  # not widened by torch's load_state_dict
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for opt_a, opt_b in zip(whole.optimizers, resumed.optimizers):
        assert [g["lr"] for g in opt_a.param_groups] == [g["lr"] for g in opt_b.param_groups]
