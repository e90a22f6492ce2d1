"""Helpers shared by the parity tests: build a script's GPT and golf's GPT from one set of dimensions, give both the
same weights, and read the script's logits (its forward returns only the loss)."""

from __future__ import annotations

import dataclasses
import re
import types
from pathlib import Path
from typing import Callable

import torch
import yaml
from torch import Tensor, nn

from golf import CONF_DIR
from golf.model.gpt import GPT, ModelConfig

# small dimensions for CPU fp32: an odd depth (a decoder layer without a skip, as at 9 layers), grouped KV heads
SMALL = dict(num_layers=5, model_dim=64, num_heads=4, num_kv_heads=2)
VOCAB = 256
SEQ, BATCH = 32, 2


def golf_model_config(option: str, **overrides) -> ModelConfig:
    """conf/model/<option>.yaml as golf's ModelConfig, with the given dimensions replaced."""
    values = yaml.safe_load((CONF_DIR / "model" / f"{option}.yaml").read_text(encoding="utf-8"))
    return dataclasses.replace(ModelConfig(**values), **overrides)


def script_env(cfg: ModelConfig, vocab: int, seq_len: int = SEQ, **extra) -> dict[str, object]:
    """The environment variables that give a script golf's dimensions (the scripts read them at import). Only the
    shape: every other setting stays the script's own default, so that a golf default that drifts is caught."""
    env = dict(VOCAB_SIZE=vocab, NUM_LAYERS=cfg.num_layers, MODEL_DIM=cfg.model_dim, NUM_HEADS=cfg.num_heads,
               NUM_KV_HEADS=cfg.num_kv_heads, TRAIN_SEQ_LEN=seq_len)
    env.update(extra)
    return env


def baseline_script_gpt(m: types.ModuleType) -> nn.Module:
    """The baseline script's GPT from its Hyperparameters (what its main() passes)."""
    a = m.Hyperparameters()
    return m.GPT(vocab_size=a.vocab_size, num_layers=a.num_layers, model_dim=a.model_dim, num_heads=a.num_heads,
                 num_kv_heads=a.num_kv_heads, mlp_mult=a.mlp_mult, tie_embeddings=a.tie_embeddings,
                 tied_embed_init_std=a.tied_embed_init_std, logit_softcap=a.logit_softcap, rope_base=a.rope_base,
                 qk_gain_init=a.qk_gain_init)


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0, std: float = 0.05) -> None:
    """Every parameter moved off its init by seeded noise, so that no block hides behind a zero projection and
    no control tensor sits at exactly 1 or 0 (an op that ignores one would still agree at init)."""
    gen = torch.Generator().manual_seed(seed)
    for _, p in sorted(model.named_parameters()):
        p.add_(torch.randn(p.shape, generator=gen) * std)


def same_weights(script: nn.Module, golf: nn.Module, name_map: Callable[[str], dict[str, Tensor]] | None = None,
                 ) -> None:
    """Load the script's weights into golf's model: by equal names (the baseline), or through name_map, which
    turns the script's state dict into golf's names. Every golf parameter must be given, none left over."""
    state = {k: v for k, v in script.state_dict().items()}
    mapped = name_map(state) if name_map is not None else state
    golf_keys = set(golf.state_dict())
    assert set(mapped) == golf_keys, (f"names only in the script: {sorted(set(mapped) - golf_keys)}; "
                                      f"only in golf: {sorted(golf_keys - set(mapped))}")
    golf.load_state_dict(mapped, strict=True)


def script_logits(m: types.ModuleType, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(logits as the script hands them to its cross-entropy, loss): the script's module-level F is swapped for a
    view of torch.nn.functional whose cross_entropy keeps its input."""
    seen: list[Tensor] = []
    real_f = m.F

    def cross_entropy(logits, targets, *args, **kwargs):
        seen.append(logits)
        return real_f.cross_entropy(logits, targets, *args, **kwargs)

    spy = types.SimpleNamespace(**{k: getattr(real_f, k) for k in dir(real_f) if not k.startswith("__")})
    spy.cross_entropy = cross_entropy
    m.F = spy
    try:
        loss = model(x, y)
    finally:
        m.F = real_f
    return seen[0], loss


def batch(vocab: int, seed: int = 1, batch_size: int = BATCH, seq_len: int = SEQ) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (batch_size, seq_len + 1), generator=gen)
    return tokens[:, :-1], tokens[:, 1:]


def logged_parameter_count(record: Path) -> int:
    """model_params:N from a record's training log."""
    for log in sorted(record.glob("*.log")):
        found = re.search(r"model_params:(\d+)", log.read_text(encoding="utf-8", errors="replace"))
        if found:
            return int(found.group(1))
    raise AssertionError(f"no model_params line in the logs of {record}")


def meta_parameter_count(build: Callable[[], nn.Module]) -> int:
    with torch.device("meta"):
        model = build()
    return sum(p.numel() for p in model.parameters())


def relative_difference(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def make_golf(cfg: ModelConfig, vocab: int) -> GPT:
    return GPT(cfg, vocab)
