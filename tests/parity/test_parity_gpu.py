"""bf16 parity on a GPU: golf (hardware=1xh100's precision policy, bf16 autocast, Muon's Newton-Schulz compiled)
against the baseline script's loop (its dtypes, bf16 autocast, its Newton-Schulz compiled as its main() does) at the
baseline's full size, from the same init on the same batches. Skipped without CUDA (scripts/gpu_check.sh runs it and
puts what it measured, GOLF_PARITY_OUT, into its results).

Not bitwise: the two models differ in one bf16 op (golf applies the logit soft-cap to fp32 logits, the script to
its bf16 logits before .float()), so the losses are compared within a tolerance and the differences are recorded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from golf.cli import compose
from golf.config import to_golf_config
from golf.data.shards import write_shard
from golf.hardware import apply_precision_policy, autocast
from golf.model.gpt import GPT
from reference_scripts import load_script
from script_models import baseline_script_gpt, golf_model_config, relative_difference, same_weights
from training_loops import Schedule, golf_training, script_env_for, script_training

pytestmark = [pytest.mark.parity,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 parity needs a CUDA device")]

SCHEDULE = Schedule(steps=8, warmdown=4, momentum_warmup=500, accum=2, batch_tokens=16 * 1024, seq_len=1024)
VOCAB = 1024


def test_bf16_training_tracks_the_script(reference, tmp_path) -> None:
    device = torch.device("cuda")
    rng = np.random.default_rng(3)
    shard = tmp_path / "fineweb_train_000000.bin"
    write_shard(shard, rng.integers(0, VOCAB, size=SCHEDULE.steps * SCHEDULE.batch_tokens + 64, dtype=np.uint16))
    m = load_script(reference / "train_gpt.py", script_env_for(SCHEDULE, tmp_path))
    m.zeropower_via_newtonschulz5 = torch.compile(m.zeropower_via_newtonschulz5)  # as the script's main() does
    torch.manual_seed(1337)
    script = baseline_script_gpt(m).to(device).bfloat16()  # the script's main(): dtypes
    for module in script.modules():
        if isinstance(module, m.CastedLinear):
            module.float()
    m.restore_low_dim_params_to_fp32(script)
    hw = to_golf_config(compose(["hardware=1xh100"])).hardware
    golf = apply_precision_policy(GPT(golf_model_config("baseline9l"), VOCAB).to(device), hw)
    same_weights(script, golf)

    amp = lambda: autocast(hw, device)  # noqa: E731
    want = script_training(m, script, SCHEDULE, device, amp)
    got = golf_training(golf, [shard], SCHEDULE, device, amp)
    script_state = script.state_dict()
    weights = {name: relative_difference(t, script_state[name]) for name, t in golf.state_dict().items()}
    rel = [abs(g - w) / abs(w) for g, w in zip(got, want)]
    found = {"steps": SCHEDULE.steps, "script_losses": want, "golf_losses": got, "loss_rel_diff": rel,
             "max_loss_rel_diff": max(rel), "max_weight_rel_diff": max(weights.values()),
             "worst_weight": max(weights, key=weights.get), "bitwise_equal_losses": got == want}
    if os.environ.get("GOLF_PARITY_OUT"):
        Path(os.environ["GOLF_PARITY_OUT"]).write_text(json.dumps(found, indent=1), encoding="utf-8")
    assert all(np.isfinite(got)) and all(np.isfinite(want))
    assert rel[0] < 1e-2, f"the first loss (same weights, same batch) differs by {rel[0]:.2e} relative"
    assert max(rel) < 5e-2, f"bf16 losses drift apart: {found}"
