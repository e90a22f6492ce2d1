"""Weight averaging before export: EMA maths, SWA snapshots, checkpoint round trips, and the exported state."""

from __future__ import annotations

import io
from typing import Callable

import pytest
import torch

from golf.model.gpt import GPT, ModelConfig
from golf.optim.averaging import EMA, SWA, EMAConfig, SWAConfig, WeightAverager, build_averager
from golf.optim.build import OptimConfig


class OneWeight(torch.nn.Module):
    def __init__(self, value: float = 0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([value]))

    def set(self, value: float) -> None:
        with torch.no_grad():
            self.w.fill_(value)


class WithBuffers(torch.nn.Module):
    """A float buffer is averaged like a parameter; an integer one is copied as it is."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("scale", torch.ones(2))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))


def test_ema_matches_the_closed_form() -> None:
    """After weights w_1..w_n: shadow_n = d^n w_0 + (1 - d) sum_k d^(n-k) w_k."""
    d, w0, ws = 0.9, 2.0, [1.0, -3.0, 0.5, 4.0, 0.0, 7.0]
    model = OneWeight(w0)
    ema = EMA(model, d)
    for step, w in enumerate(ws, start=1):
        model.set(w)
        ema.update(model, step, 0.0)
    n = len(ws)
    expected = d ** n * w0 + (1 - d) * sum(d ** (n - k) * w for k, w in enumerate(ws, start=1))
    averaged = ema.averaged_state_dict()["w"]
    assert averaged.dtype == torch.float32
    assert averaged.item() == pytest.approx(expected, rel=1e-6)
    assert ema.num_updates == n and ema.kind == "ema"


def test_build_averager_picks_what_the_config_asks() -> None:
    model = OneWeight()
    assert build_averager(OptimConfig(), model) is None  # decay 0 and SWA disabled: off
    assert isinstance(build_averager(OptimConfig(ema=EMAConfig(decay=0.997)), model), EMA)
    swa = build_averager(OptimConfig(swa=SWAConfig(enabled=True, start=0.25, every=5)), model)
    assert isinstance(swa, SWA) and (swa.start, swa.every) == (0.25, 5)
    with pytest.raises(ValueError, match="alternatives"):
        build_averager(OptimConfig(ema=EMAConfig(decay=0.9), swa=SWAConfig(enabled=True)), model)


def test_swa_averages_exactly_the_snapshots_taken() -> None:
    """30 steps, the warm-down covering steps 11..30 (progress (step - 10) / 20); start 0.5 means progress >= 0.5,
    i.e. steps >= 20, and every 4 picks 20, 24, 28. The weight at step s is s^2, so the mean is known exactly."""
    model = OneWeight()
    swa = SWA(model, start=0.5, every=4)
    for step in range(1, 31):
        model.set(float(step ** 2))
        swa.update(model, step, max(0.0, (step - 10) / 20))
    assert swa.num_updates == 3
    assert swa.averaged_state_dict()["w"].item() == pytest.approx((20 ** 2 + 24 ** 2 + 28 ** 2) / 3)


def test_swa_without_a_snapshot_gives_the_current_weights() -> None:
    model = OneWeight(1.0)
    swa = SWA(model, start=0.5, every=1)
    model.set(5.0)
    swa.update(model, 1, 0.4)  # before start: no snapshot
    assert swa.num_updates == 0
    assert swa.averaged_state_dict()["w"].item() == 5.0


def _averager_round_trip(make: Callable[[torch.nn.Module], WeightAverager]) -> tuple[WeightAverager, WeightAverager]:
    """Save mid-run, load into a fresh averager, feed both the same weights; returns (original, reloaded)."""
    model = OneWeight()
    first = make(model)
    for step in range(1, 8):
        model.set(float(step))
        first.update(model, step, step / 10)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make(OneWeight(123.0))
    second.load_state_dict(torch.load(buffer))
    for step in range(8, 15):
        model.set(float(step) * 1.5)
        first.update(model, step, step / 14)
        second.update(model, step, step / 14)
    return first, second


def test_ema_state_dict_round_trip() -> None:
    first, second = _averager_round_trip(lambda model: EMA(model, 0.8))
    assert second.num_updates == first.num_updates == 14
    assert torch.equal(first.averaged_state_dict()["w"], second.averaged_state_dict()["w"])


def test_swa_state_dict_round_trip() -> None:
    # snapshots at even steps once warmdown_progress >= 0.3: steps 4, 6 of the first stretch, 8..14 of the second
    first, second = _averager_round_trip(lambda model: SWA(model, start=0.3, every=2))
    assert second.num_updates == first.num_updates == 6
    assert torch.equal(first.averaged_state_dict()["w"], second.averaged_state_dict()["w"])


def test_loading_the_other_kind_fails() -> None:
    model = OneWeight()
    with pytest.raises(ValueError, match="swa"):
        EMA(model, 0.9).load_state_dict(SWA(model, 0.5, 1).state_dict())


@pytest.mark.parametrize("make", [lambda m: EMA(m, 0.5), lambda m: SWA(m, 0.0, 1)], ids=["ema", "swa"])
def test_averaged_state_dict_is_a_copy_with_the_models_keys(make: Callable[[torch.nn.Module], WeightAverager]) -> None:
    model = GPT(ModelConfig(num_layers=2), 32)
    averager: WeightAverager = make(model)
    averager.update(model, 1, 1.0)
    averaged = averager.averaged_state_dict()
    state = model.state_dict()
    assert list(averaged) == list(state)
    assert all(averaged[k].shape == state[k].shape and averaged[k].dtype == torch.float32 for k in state)
    before = {k: t.clone() for k, t in averaged.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert all(torch.equal(averaged[k], before[k]) for k in averaged)
    model.load_state_dict(averaged)  # what the job does before export: strict, so every key must be there
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before)


def test_float_buffers_are_averaged_and_integer_buffers_copied() -> None:
    model = WithBuffers()
    ema = EMA(model, 0.5)
    model.scale.fill_(3.0)
    model.count.fill_(7)
    ema.update(model, 1, 0.0)
    averaged = ema.averaged_state_dict()
    assert torch.equal(averaged["scale"], torch.full((2,), 2.0))  # 0.5 * 1 + 0.5 * 3
    assert averaged["count"].dtype == torch.long and averaged["count"].item() == 7
    model.count.fill_(8)
    assert averaged["count"].item() == 7  # a copy, not the live buffer


def test_bad_settings_raise() -> None:
    model = OneWeight()
    with pytest.raises(ValueError, match="decay"):
        EMA(model, 1.0)
    with pytest.raises(ValueError, match="start"):
        SWA(model, 1.5, 10)
    with pytest.raises(ValueError, match="every"):
        SWA(model, 0.5, 0)
