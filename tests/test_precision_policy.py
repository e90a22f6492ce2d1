"""hardware.embed_dtype: the GPU options keep the token tables in bf16 as the challenge's scripts do (every other
weight fp32); the CPU options keep everything fp32; a dtype golf does not know is refused naming the key."""

from __future__ import annotations

import pytest
import torch

from golf.cli import USER_ERRORS, compose
from golf.config import to_golf_config
from golf.hardware import HardwareConfig, apply_precision_policy
from golf.model.gpt import GPT, ModelConfig
from golf.optim.build import OptimConfig, build_optimizers


@pytest.mark.parametrize("option, embed", [("cpu", "float32"), ("cpu2", "float32"), ("1xh100", "bfloat16"),
                                           ("8xh100", "bfloat16"), ("4xh200", "bfloat16"),
                                           ("multinode", "bfloat16")])
def test_each_hardware_option_says_its_embedding_dtype(option: str, embed: str) -> None:
    hw = to_golf_config(compose([f"hardware={option}"])).hardware
    assert hw.embed_dtype == embed
    assert hw.dtype == embed  # bf16 tables go with bf16 autocast, and only with it


def test_bf16_policy_casts_the_token_tables_only() -> None:
    cfg = ModelConfig(num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, bigram_buckets=16, bigram_dim=16,
                      value_embed_layers=[1], value_embed_dim=16)
    model = apply_precision_policy(GPT(cfg, 64), HardwareConfig(embed_dtype="bfloat16"))
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    tables = {"tok_emb.weight", "bigram.table.weight", "value_embed.table.weight"}
    assert {name for name, d in dtypes.items() if d == torch.bfloat16} == tables
    assert all(d == torch.float32 for name, d in dtypes.items() if name not in tables)


def test_bf16_embedding_trains_on_its_own_adam_state() -> None:
    """The embedding's Adam moments take its dtype (as the script's fused Adam on its bf16 tok_emb), and a step
    changes it."""
    model = apply_precision_policy(GPT(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1), 64),
                                   HardwareConfig(embed_dtype="bfloat16"))
    before = model.tok_emb.weight.detach().clone()
    optimizers = build_optimizers(model, OptimConfig())
    x = torch.randint(0, 64, (2, 16))
    model(x, x).backward()
    for opt in optimizers:
        opt.step()
    state = optimizers[0].state[model.tok_emb.weight]
    assert state["exp_avg"].dtype == torch.bfloat16 and model.tok_emb.weight.dtype == torch.bfloat16
    assert not torch.equal(model.tok_emb.weight.detach(), before)


def test_fp32_policy_changes_nothing() -> None:
    model = apply_precision_policy(GPT(ModelConfig(), 64), HardwareConfig())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_an_unknown_embedding_dtype_is_refused_naming_the_key() -> None:
    with pytest.raises(USER_ERRORS) as err:
        to_golf_config(compose(["hardware.embed_dtype=float16"]))
    assert "hardware.embed_dtype" in str(err.value)
