"""The training-side timing of QAT and weight averaging: when hooks run and what QATSwitch does at each point."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from golf.data.loader import DistributedTokenLoader
from golf.data.shards import write_shard
from golf.model.gpt import GPT, ModelConfig
from golf.optim.build import OptimConfig, build_optimizers
from golf.quant.config import QATConfig, QuantBits, QuantConfig
from golf.quant.qat import FakeQuantizer, qat_active
from golf.quant.qat_switch import QATSwitch
from golf.trainer import Trainer, TrainConfig

VOCAB = 64


def tiny_model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1), VOCAB)


def int6(qat: QATConfig) -> QuantConfig:
    # passthrough 0 so that the tiny model's matrices are quantized at all
    return QuantConfig(name="int6_zstd", bits=QuantBits(6, 6, 6, 6), passthrough_numel=0, qat=qat)


def alphas(model: torch.nn.Module) -> list[float]:
    return [m.weight_transform.alpha for m in model.modules()
            if isinstance(getattr(m, "weight_transform", None), FakeQuantizer)]


def test_qat_switches_on_once_the_start_fraction_of_the_warmdown_has_passed():
    model, switch = tiny_model(), QATSwitch(int6(QATConfig(enabled=True, start=0.5)), log=lambda _: None)
    switch.update(model, step=7, warmdown_progress=0.49)
    assert not qat_active(model) and switch.started_at_step is None
    switch.update(model, step=8, warmdown_progress=0.5)
    assert qat_active(model) and switch.started_at_step == 8
    switch.update(model, step=9, warmdown_progress=0.8)
    assert switch.started_at_step == 8  # attached once
    switch.detach(model)
    assert not qat_active(model)


def test_qat_disabled_never_attaches():
    model, switch = tiny_model(), QATSwitch(int6(QATConfig(enabled=False)), log=lambda _: None)
    switch.update(model, step=10, warmdown_progress=1.0)
    assert not qat_active(model) and switch.started_at_step is None


def test_soft_round_anneals_from_the_start_temperature_to_the_end_one():
    qat = QATConfig(enabled=True, start=0.5, soft_round=True, temperature_start=2.0, temperature_end=32.0)
    model, switch = tiny_model(), QATSwitch(int6(qat), log=lambda _: None)
    switch.update(model, step=1, warmdown_progress=0.5)
    assert alphas(model) == pytest.approx([2.0] * 12)
    switch.update(model, step=2, warmdown_progress=0.75)  # halfway through QAT: the geometric mean
    assert alphas(model) == pytest.approx([8.0] * 12)
    switch.update(model, step=3, warmdown_progress=1.0)
    assert alphas(model) == pytest.approx([32.0] * 12)


class Recorder:
    def __init__(self):
        self.calls: list[tuple[int, float]] = []

    def update(self, model, step, warmdown_progress):
        self.calls.append((step, warmdown_progress))


def test_the_trainer_calls_hooks_after_every_step_with_the_warmdown_progress(tmp_path):
    shard = tmp_path / "fineweb_train_000000.bin"
    write_shard(shard, np.random.default_rng(0).integers(0, VOCAB, size=20_000))
    model, recorder = tiny_model(), Recorder()
    cfg = TrainConfig(iterations=6, warmdown_steps=4, batch_tokens=128, seq_len=32, max_wallclock_s=0, priming_steps=2)
    optim = OptimConfig(muon_ns_dtype="float32")
    trainer = Trainer(model, build_optimizers(model, optim), DistributedTokenLoader([shard], 0, 1), cfg, optim,
                      torch.device("cpu"), contextlib.nullcontext, log=lambda _: None, hooks=(recorder,),
                      show_progress=False)
    trainer.fit()
    # after step s the next lr multiplier is min((6 - s) / 4, 1); priming steps call no hook
    assert recorder.calls == [(1, 0.0), (2, 0.0), (3, 0.25), (4, 0.5), (5, 0.75), (6, 1.0)]
