"""The baseline trains exactly: golf's Trainer (model=baseline9l, optim=muon_adam) against the training loop of the
challenge's baseline train_gpt.py (tests/parity/training_loops.py), from the same init on the same shards, gives
equal losses at every step and equal weights after the last one, bit for bit on CPU in fp32 (Muon's Newton-Schulz
in bf16, as in the script)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from golf.data.shards import write_shard
from golf.model.gpt import GPT
from reference_scripts import load_script
from script_models import SEQ, SMALL, VOCAB, baseline_script_gpt, golf_model_config, same_weights, script_env
from training_loops import Schedule, golf_optim_config, golf_training, script_env_for, script_training

pytestmark = pytest.mark.parity

# the warm-down and the momentum warm-up both happen; two sequences a micro-batch, two micro-batches a step
SCHEDULE = Schedule(steps=6, warmdown=3, momentum_warmup=4, accum=2, batch_tokens=2 * SEQ * 2, seq_len=SEQ)

# the optimizer settings golf's conf/optim/muon_adam.yaml must share with the script's Hyperparameters defaults
SHARED_OPTIM = ("matrix_lr", "scalar_lr", "tied_embed_lr", "embed_lr", "head_lr", "muon_momentum",
                "muon_momentum_warmup_start", "muon_momentum_warmup_steps", "muon_backend_steps", "beta1", "beta2",
                "adam_eps", "grad_clip_norm")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("fineweb")
    rng = np.random.default_rng(5)
    files = []
    for i in range(2):  # the stream crosses a shard boundary during the run
        files.append(folder / f"fineweb_train_{i:06d}.bin")
        write_shard(files[-1], rng.integers(0, VOCAB, size=500, dtype=np.uint16))
    return files


def test_optimizer_defaults_are_the_scripts(reference) -> None:
    a = load_script(reference / "train_gpt.py", {}).Hyperparameters()
    golf = golf_optim_config()
    differ = {k: (getattr(golf, k), getattr(a, k)) for k in SHARED_OPTIM if getattr(golf, k) != getattr(a, k)}
    assert not differ, f"conf/optim/muon_adam.yaml differs from the script's defaults (golf, script): {differ}"
    assert golf.muon_wd == 0.0 and golf.muon_ns_dtype == "bfloat16"  # the script has no decay, NS in bf16


def test_first_steps_equal_the_scripts(reference, shards) -> None:
    cfg = golf_model_config("baseline9l", **SMALL)
    env = script_env(cfg, VOCAB, **script_env_for(SCHEDULE, shards[0].parent))
    m = load_script(reference / "train_gpt.py", env)
    torch.manual_seed(0)
    script = baseline_script_gpt(m)  # the script's own init, zero output projections included
    golf = GPT(cfg, VOCAB)
    same_weights(script, golf)

    cpu = torch.device("cpu")
    want = script_training(m, script, SCHEDULE, cpu)
    got = golf_training(golf, shards, SCHEDULE, cpu)
    assert got == want, f"losses a step: golf {got}, script {want}"
    script_state = script.state_dict()
    unequal = [name for name, t in golf.state_dict().items() if not torch.equal(t, script_state[name])]
    assert not unequal, f"after {SCHEDULE.steps} steps the weights differ: {unequal}"
    assert len(set(want)) == SCHEDULE.steps  # the weights moved every step (a loop that never stepped would agree too)
