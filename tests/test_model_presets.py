"""The record presets of conf/model/ build, on the meta device, models with the parameter counts of the records'
logs (model_params), without the reference checkout the parity suite needs (tests/parity/ compares them with the
scripts themselves)."""

from __future__ import annotations

import pytest
import torch
import yaml

from golf import CONF_DIR
from golf.model.gpt import GPT, ModelConfig, count_parameters, expected_parameter_count

# (preset, vocabulary of the record's data, model_params of the record's log)
RECORDS = [
    ("record_0323", 1024, 26_928_220),  # 2026-03-23, train_seed1337.log
    ("record_0409", 8192, 35_944_536),  # 2026-04-09, train_seed42.log
    ("record_0427", 8192, 35_945_671),  # 2026-04-27, train_seed42.log
]


def preset(name: str) -> ModelConfig:
    return ModelConfig(**yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text(encoding="utf-8")))


@pytest.mark.parametrize("name, vocab, logged", RECORDS)
def test_preset_parameter_count_equals_the_records_log(name: str, vocab: int, logged: int) -> None:
    cfg = preset(name)
    with torch.device("meta"):
        model = GPT(cfg, vocab)
    assert count_parameters(model) == expected_parameter_count(cfg, vocab) == logged


def test_the_records_virtual_layers() -> None:
    """T2 and T3: 17 virtual layers with the loop on (8 skip weights), 11 with it off (what training starts with)."""
    for name in ("record_0409", "record_0427"):
        with torch.device("meta"):
            model = GPT(preset(name), 8192)
        assert model.layer_order() == [0, 1, 2, 3, 4, 5, 3, 4, 5, 3, 4, 5, 6, 7, 8, 9, 10]
        assert model.skip_weights.shape[0] == 8
        model.set_loop_active(False)
        assert model.layer_order() == list(range(11))


def test_presets_compose_through_hydra() -> None:
    from golf.cli import compose
    from golf.config import to_golf_config

    for name, _, _ in RECORDS:
        cfg = to_golf_config(compose([f"model={name}"]))
        assert cfg.model == preset(name)
