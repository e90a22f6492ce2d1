"""The baseline GPT: parameter count, causality, the loss reductions, the zero-initialized output projections."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from golf.model.gpt import GPT, ModelConfig, count_parameters, expected_parameter_count
from golf.model.names import CONTROL_PARAM_PATTERNS

BASELINE = ModelConfig(name="baseline9l", num_layers=9, model_dim=512, num_heads=8, num_kv_heads=4, mlp_mult=2)


def meta_model(cfg: ModelConfig, vocab_size: int) -> GPT:
    with torch.device("meta"):  # no memory, no init cost: only the shapes
        return GPT(cfg, vocab_size)


def test_baseline_parameter_count() -> None:
    model = meta_model(BASELINE, 1024)
    assert count_parameters(model) == 17_059_912
    assert expected_parameter_count(BASELINE, 1024) == 17_059_912


@pytest.mark.parametrize("overrides", [
    dict(tie_embeddings=False),
    dict(num_layers=1),
    dict(num_layers=5),
    dict(num_layers=7, num_heads=8, num_kv_heads=8),  # plain multi-head attention
    dict(num_heads=8, num_kv_heads=1),  # multi-query attention
    dict(model_dim=96, num_heads=6, num_kv_heads=3, mlp_mult=3, tie_embeddings=False),
])
def test_parameter_count_matches_formula(overrides: dict) -> None:
    cfg = ModelConfig(**overrides)
    assert count_parameters(meta_model(cfg, 100)) == expected_parameter_count(cfg, 100)


def test_parameter_names() -> None:
    names = {name for name, _ in meta_model(ModelConfig(num_layers=3, tie_embeddings=False), 32).named_parameters()}
    for i in range(3):
        for part in ("attn.c_q.weight", "attn.c_k.weight", "attn.c_v.weight", "attn.proj.weight", "attn.q_gain",
                     "mlp.fc.weight", "mlp.proj.weight", "attn_scale", "mlp_scale", "resid_mix"):
            assert f"blocks.{i}.{part}" in names
    assert {"tok_emb.weight", "skip_weights", "lm_head.weight"} <= names
    assert all(any(pattern in name for name in names) for pattern in CONTROL_PARAM_PATTERNS[:5])
    tied = {name for name, _ in meta_model(ModelConfig(), 32).named_parameters()}
    assert "lm_head.weight" not in tied


@pytest.mark.parametrize("overrides, message", [
    (dict(model_dim=100, num_heads=3), "model.num_heads = 3 .* divisor of model.model_dim"),
    (dict(num_heads=4, num_kv_heads=3), "model.num_kv_heads = 3 .* divisor of model.num_heads"),
    (dict(model_dim=12, num_heads=4, num_kv_heads=2), "head dim .* is even"),
    (dict(num_layers=0), "num_layers"),
])
def test_invalid_shapes_raise(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GPT(ModelConfig(**overrides), 64)


def randomized_tiny_model(vocab_size: int = 64) -> GPT:
    """A tiny model with every parameter perturbed: at init the output projections are zero, so attention would
    not mix positions at all and a causality test would pass trivially."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(), vocab_size)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def test_causal() -> None:
    model = randomized_tiny_model()
    ids = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(1))
    k = 10
    changed = ids.clone()
    changed[:, k + 1:] = (changed[:, k + 1:] + 7) % 64
    with torch.no_grad():
        a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, : k + 1], b[:, : k + 1], atol=1e-5, rtol=1e-5)
    # and the test has teeth: earlier tokens do reach later positions through attention
    first_changed = ids.clone()
    first_changed[:, 0] = (first_changed[:, 0] + 7) % 64
    with torch.no_grad():
        assert (model(first_changed)[:, k] - a[:, k]).abs().max() > 1e-3


def test_logits_shape_dtype_and_softcap() -> None:
    model = randomized_tiny_model()
    with torch.no_grad():
        logits = model(torch.randint(0, 64, (3, 16)))
    assert logits.shape == (3, 16, 64) and logits.dtype == torch.float32
    assert logits.abs().max() <= model.cfg.logit_softcap


def test_reductions_agree() -> None:
    model = randomized_tiny_model()
    gen = torch.Generator().manual_seed(2)
    ids, targets = torch.randint(0, 64, (2, 16), generator=gen), torch.randint(0, 64, (2, 16), generator=gen)
    with torch.no_grad():
        per_token = model(ids, targets, reduction="none")
        mean = model(ids, targets)
    assert per_token.shape == (2, 16) and mean.ndim == 0
    torch.testing.assert_close(per_token.mean(), mean)
    with pytest.raises(ValueError):
        model(ids, targets, reduction="sum")


def test_fresh_model_is_embedding_only() -> None:
    """Zero output projections make every block the identity on x0 (resid_mix starts at (1, 0)); the U-Net skips
    only multiply x0, which the final RMSNorm undoes. So the logits are those of the embedding alone."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(), 64)
    ids = torch.randint(0, 64, (2, 16))
    x0 = F.rms_norm(model.tok_emb(ids), (128,))
    expected = 30.0 * torch.tanh(F.linear(F.rms_norm(x0, (128,)), model.tok_emb.weight) / 30.0)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), expected, atol=1e-5, rtol=1e-5)


def test_loss_at_init_is_near_uniform() -> None:
    """Tied embedding rows have std 0.005, so a logit x0 . e_y (|x0| = sqrt(128)) has std 0.005*sqrt(128) = 0.057:
    the distribution is nearly uniform. The largest deviation is the input token's own logit, about
    128 * 0.005 = 0.64, which raises the log-sum-exp by ln(1 + (e^0.64 - 1) / 64) = 0.014. So within 0.05 of ln 64."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(), 64)
    gen = torch.Generator().manual_seed(3)
    ids, targets = torch.randint(0, 64, (8, 32), generator=gen), torch.randint(0, 64, (8, 32), generator=gen)
    with torch.no_grad():
        loss = model(ids, targets).item()
    assert abs(loss - math.log(64)) < 0.05


def test_untied_head_starts_at_zero() -> None:
    model = GPT(ModelConfig(tie_embeddings=False), 64)
    with torch.no_grad():
        logits = model(torch.randint(0, 64, (1, 8)))
    assert torch.count_nonzero(logits) == 0  # uniform: loss exactly ln(vocab)


def test_meta_build_then_materialize() -> None:
    """A model built on the meta device can be materialized with to_empty() and initialized with reset_parameters."""
    model = meta_model(ModelConfig(), 64)
    model.to_empty(device="cpu")
    model.reset_parameters()
    assert torch.count_nonzero(model.blocks[0].attn.proj.weight) == 0
    assert torch.equal(model.blocks[1].resid_mix[1], torch.zeros(128))
    with torch.no_grad():
        assert torch.isfinite(model(torch.randint(0, 64, (1, 8)))).all()


def test_bf16_input_path() -> None:
    """fp32 master weights are cast at matmul time, so a bf16 residual stream runs and the logits stay fp32."""
    model = randomized_tiny_model()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randint(0, 64, (1, 8)))
    assert logits.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
