"""The baseline trains exactly: golf's Trainer (model=baseline9l, optim=muon_adam) against the training loop of the
challenge's baseline train_gpt.py, from the same init on the same shards, gives equal losses at every step and equal
weights after the last one, bit for bit on CPU in fp32 (Muon's Newton-Schulz in bf16, as in the script).

The script's main() needs CUDA, so its loop is written out here step for step from main() (the optimizer split,
gradient accumulation with loss * grad_scale, the momentum warm-up, lr_mul's warm-down by steps), driving the
script's own GPT, Muon and DistributedTokenLoader. One deliberate difference: the script's Adams are fused
(fused=True). golf fuses them on CUDA as well, but on a CPU torch's fused Adam rounds differently from its foreach
Adam (by an ulp), and golf on CPU uses the foreach one, so here both sides use the foreach Adam.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from golf import CONF_DIR
from golf.data.loader import DistributedTokenLoader
from golf.data.shards import write_shard
from golf.model.gpt import GPT
from golf.optim.build import OptimConfig, build_optimizers
from golf.trainer import TrainConfig, Trainer
from reference_scripts import load_script
from script_models import SEQ, SMALL, VOCAB, baseline_script_gpt, golf_model_config, same_weights, script_env

pytestmark = pytest.mark.parity

STEPS, WARMDOWN, MOMENTUM_WARMUP, ACCUM = 6, 3, 4, 2  # the warm-down and the momentum warm-up both happen
BATCH_TOKENS = 2 * SEQ * ACCUM  # two sequences a micro-batch
# the optimizer settings golf's conf/optim/muon_adam.yaml must share with the script's Hyperparameters defaults
SHARED_OPTIM = {"matrix_lr": "matrix_lr", "scalar_lr": "scalar_lr", "tied_embed_lr": "tied_embed_lr",
                "embed_lr": "embed_lr", "head_lr": "head_lr", "muon_momentum": "muon_momentum",
                "muon_momentum_warmup_start": "muon_momentum_warmup_start",
                "muon_momentum_warmup_steps": "muon_momentum_warmup_steps", "muon_backend_steps": "muon_backend_steps",
                "beta1": "beta1", "beta2": "beta2", "adam_eps": "adam_eps", "grad_clip_norm": "grad_clip_norm"}


def golf_optim_config(**overrides) -> OptimConfig:
    values = yaml.safe_load((CONF_DIR / "optim" / "muon_adam.yaml").read_text(encoding="utf-8"))
    nested = {k: values.pop(k) for k in ("ema", "swa", "reptile") if k in values}
    cfg = dataclasses.replace(OptimConfig(**values), **overrides)
    assert not any(v.get("decay") or v.get("enabled") for v in nested.values()), "the baseline averages nothing"
    return cfg


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("fineweb")
    rng = np.random.default_rng(5)
    files = []
    for i in range(2):  # the stream crosses a shard boundary during the run
        files.append(folder / f"fineweb_train_{i:06d}.bin")
        write_shard(files[-1], rng.integers(0, VOCAB, size=500, dtype=np.uint16))
    return files


def script_training(m, model: torch.nn.Module) -> list[float]:
    """The baseline script's main() loop on a CPU (no autocast, no compile, one process): the losses a step."""
    a = m.Hyperparameters()
    grad_scale = 1.0 / ACCUM
    block_params = list(model.blocks.named_parameters())
    control = m.CONTROL_TENSOR_NAME_PATTERNS
    matrices = [p for n, p in block_params if p.ndim == 2 and not any(c in n for c in control)]
    scalars = [p for n, p in block_params if p.ndim < 2 or any(c in n for c in control)]
    scalars.append(model.skip_weights)

    def adam(params, lr):  # the script's Adam, foreach rather than fused (module docstring)
        return torch.optim.Adam([{"params": params, "lr": lr, "base_lr": lr}], betas=(a.beta1, a.beta2),
                                eps=a.adam_eps)

    muon = m.Muon(matrices, lr=a.matrix_lr, momentum=a.muon_momentum, backend_steps=a.muon_backend_steps)
    for group in muon.param_groups:
        group["base_lr"] = a.matrix_lr
    optimizers = [adam([model.tok_emb.weight], a.tied_embed_lr), muon, adam(scalars, a.scalar_lr)]
    loader = m.DistributedTokenLoader(a.train_files, 0, 1, torch.device("cpu"))

    def lr_mul(step: int) -> float:  # max_wallclock_seconds = 0: the warm-down by steps
        start = max(a.iterations - a.warmdown_iters, 0)
        return max((a.iterations - step) / max(a.warmdown_iters, 1), 0.0) if start <= step < a.iterations else 1.0

    losses = []
    model.train()
    for step in range(a.iterations):
        scale = lr_mul(step)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        train_loss = torch.zeros(())
        for _ in range(ACCUM):
            x, y = loader.next_batch(a.train_batch_tokens, a.train_seq_len, ACCUM)
            loss = model(x, y)
            train_loss += loss.detach()
            (loss * grad_scale).backward()
        train_loss /= ACCUM
        frac = min(step / a.muon_momentum_warmup_steps, 1.0)
        for group in muon.param_groups:
            group["momentum"] = (1 - frac) * a.muon_momentum_warmup_start + frac * a.muon_momentum
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * scale
        for opt in optimizers:
            opt.step()
        losses.append(float(train_loss))
    return losses


def golf_training(model: GPT, files: list) -> list[float]:
    losses: list[float] = []
    train = TrainConfig(iterations=STEPS, max_wallclock_s=0.0, batch_tokens=BATCH_TOKENS, seq_len=SEQ,
                        grad_accum_steps=ACCUM, warmdown_steps=WARMDOWN, priming_steps=0, log_every=1)
    optim = golf_optim_config(muon_momentum_warmup_steps=MOMENTUM_WARMUP)
    trainer = Trainer(model, build_optimizers(model, optim, "cpu"),
                      DistributedTokenLoader(files, 0, 1, pin_memory=False), train, optim, torch.device("cpu"),
                      log=lambda line: None, show_progress=False,
                      log_metrics=lambda r: losses.append(r["train_loss"]) if "train_loss" in r else None)
    result = trainer.fit()
    assert result.status == "ok" and result.steps == STEPS
    return losses


def test_optimizer_defaults_are_the_scripts(reference) -> None:
    a = load_script(reference / "train_gpt.py", {}).Hyperparameters()
    golf = golf_optim_config()
    differ = {k: (getattr(golf, k), getattr(a, v)) for k, v in SHARED_OPTIM.items() if getattr(golf, k) != getattr(a, v)}
    assert not differ, f"conf/optim/muon_adam.yaml differs from the script's defaults (golf, script): {differ}"
    assert golf.muon_wd == 0.0 and golf.muon_ns_dtype == "bfloat16"  # the script has no decay, NS in bf16


def test_first_steps_equal_the_scripts(reference, shards) -> None:
    cfg = golf_model_config("baseline9l", **SMALL)
    env = script_env(cfg, VOCAB, ITERATIONS=STEPS, WARMDOWN_ITERS=WARMDOWN, MUON_MOMENTUM_WARMUP_STEPS=MOMENTUM_WARMUP,
                     TRAIN_BATCH_TOKENS=BATCH_TOKENS, MAX_WALLCLOCK_SECONDS=0, DATA_PATH=shards[0].parent)
    m = load_script(reference / "train_gpt.py", env)
    torch.manual_seed(0)
    script = baseline_script_gpt(m)  # the script's own init, zero output projections included
    golf = GPT(cfg, VOCAB)
    same_weights(script, golf)

    want = script_training(m, script)
    got = golf_training(golf, shards)
    assert got == want, f"losses a step: golf {got}, script {want}"
    script_state = script.state_dict()
    unequal = [name for name, t in golf.state_dict().items() if not torch.equal(t, script_state[name])]
    assert not unequal, f"after {STEPS} steps the weights differ: {unequal}"
    assert len(set(want)) == STEPS  # the weights moved every step (a loop that never stepped would agree too)
