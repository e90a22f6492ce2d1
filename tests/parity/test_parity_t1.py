"""T1, the 2026-03-23 record (LeakyReLU^2, legal TTT, parallel Muon; 1.1194), against golf's model=record_0323
(record11l with T1's BigramHash and value-embedding scales, model.bigram_scale and model.value_embed_scale, and its
cross-document BigramHash and SmearGate, model.bos_mask=false).

The script's model is built with the settings of the record's run command (its README); its parameter count equals
the record's log and golf's. At small dimensions with the script's weights the logits and the loss are bitwise equal,
across a BOS inside the sequence too.
"""

from __future__ import annotations

import re
import types

import pytest
import torch
from torch import Tensor

from golf.model.gpt import GPT
from record_models import unbank
from reference_scripts import load_script
from script_models import (VOCAB, batch, golf_model_config, logged_parameter_count, meta_parameter_count,
                           randomize_, same_weights, script_logits)

pytestmark = pytest.mark.parity

T1 = "2026-03-23"
SMALL_T1 = dict(NUM_LAYERS=5, MODEL_DIM=64, NUM_HEADS=4, NUM_KV_HEADS=2, VOCAB_SIZE=VOCAB, BIGRAM_VOCAB_SIZE=64,
                BIGRAM_DIM=16, VE_DIM=16, VE_LAYERS="3,4", XSA_LAST_N=2, ROPE_DIMS=8, TRAIN_SEQ_LEN=32)
SMALL_GOLF = dict(num_layers=5, model_dim=64, num_heads=4, num_kv_heads=2, bigram_buckets=64, bigram_dim=16,
                  value_embed_dim=16, value_embed_layers=[3, 4], xsa_last=2, rope_dims=8)
PRESET = "record_0323"


def run_command_env(record) -> dict[str, str]:
    """The KEY=VALUE settings of the record's run command (its README's torchrun block)."""
    text = (record / "README.md").read_text(encoding="utf-8")
    block = text[text.index("## Run Command"):].split("```")[1]
    return dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", block))


def t1_gpt(m: types.ModuleType) -> torch.nn.Module:
    """T1's GPT as its main() builds it, from its Hyperparameters."""
    a = m.Hyperparameters()
    return m.GPT(vocab_size=a.vocab_size, num_layers=a.num_layers, model_dim=a.model_dim, num_heads=a.num_heads,
                 num_kv_heads=a.num_kv_heads, mlp_mult=a.mlp_mult, tie_embeddings=a.tie_embeddings,
                 tied_embed_init_std=a.tied_embed_init_std, logit_softcap=a.logit_softcap, rope_base=a.rope_base,
                 qk_gain_init=a.qk_gain_init, mtp_num_heads=a.mtp_num_heads, mtp_loss_weight=a.mtp_loss_weight,
                 bigram_vocab_size=a.bigram_vocab_size, bigram_dim=a.bigram_dim, xsa_last_n=a.xsa_last_n,
                 rope_dims=a.rope_dims, ln_scale=a.ln_scale, dtg=a.dtg_enabled, ve_enabled=a.ve_enabled,
                 ve_dim=a.ve_dim, ve_layers=a.ve_layers, gated_attention=a.gated_attention,
                 value_residual=a.value_residual)


def t1_to_golf(state: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    """T1's banked weights under golf's names: qo_bank[i] is layer i's Q and qo_bank[n + i] its output projection,
    kv_bank[i] its K and kv_bank[n + i] its V, the MLP banks by layer. Names golf has no place for are kept as they
    are (same_weights then lists them)."""
    n, out = num_layers, {}
    for name, t in state.items():
        if unbank(name, t, n, out):
            continue
        if name.startswith("ve_layer_scales."):
            out.setdefault("value_embed.ve_scales", torch.empty(0))
            out["value_embed.ve_scales"] = torch.cat((out["value_embed.ve_scales"], t.reshape(1)))
        else:
            renamed = {"smear.gate": "smear_gate.weight", "bigram.embed.weight": "bigram.table.weight",
                       "ve_shared.embed.weight": "value_embed.table.weight",
                       "ve_shared.proj.weight": "value_embed.proj.weight", "ve_shared.scale": "value_embed.scale"}
            out[renamed.get(name, name)] = t
    return out


def test_t1_script_parameter_count_equals_its_log(record_dir) -> None:
    record = record_dir(T1)
    m = load_script(record, run_command_env(record))
    assert meta_parameter_count(lambda: t1_gpt(m)) == logged_parameter_count(record)


def test_golf_record_0323_parameter_count_equals_t1s_log(record_dir) -> None:
    record = record_dir(T1)
    env = run_command_env(record)
    cfg = golf_model_config(PRESET)
    assert cfg.bigram_buckets == int(env["BIGRAM_VOCAB_SIZE"]) and cfg.xsa_last == int(env["XSA_LAST_N"])
    m = load_script(record, env)
    assert meta_parameter_count(lambda: GPT(cfg, m.Hyperparameters().vocab_size)) == logged_parameter_count(record)


@pytest.fixture(scope="module")
def small(record_dir):
    record = record_dir(T1)
    m = load_script(record, SMALL_T1)
    torch.manual_seed(0)
    script = t1_gpt(m)
    randomize_(script)
    golf = GPT(golf_model_config(PRESET, **SMALL_GOLF), VOCAB)
    same_weights(script, golf, lambda state: t1_to_golf(state, SMALL_GOLF["num_layers"]))
    return m, script, golf


def test_t1_logits_and_loss_equal_golfs_at_small_size(small) -> None:
    m, script, golf = small
    x, y = batch(VOCAB)
    x[:, 9] = 1  # a document boundary mid-sequence: T1 hashes and smears across it, as golf with bos_mask=false
    with torch.no_grad():
        want, want_loss = script_logits(m, script, x, y)
        got = golf(x).reshape(want.shape)
        got_loss = golf(x, y)
    assert torch.equal(got, want.float())
    assert torch.equal(got_loss, want_loss)


@pytest.mark.parametrize("perturbed", [dict(bos_mask=True), dict(bigram_scale=0.0), dict(value_embed_scale=0.0)])
def test_t1_parity_fails_without_each_new_key(small, perturbed) -> None:
    """Each of the three keys T1 needed matters: with it at golf's other setting the logits differ (a missing
    scale parameter is dropped from the state dict, as an old golf would have had it)."""
    m, script, golf = small
    other = GPT(golf_model_config(PRESET, **SMALL_GOLF, **perturbed), VOCAB)
    state = {k: v for k, v in golf.state_dict().items() if k in other.state_dict()}
    other.load_state_dict(state, strict=True)
    x, y = batch(VOCAB)
    x[:, 9] = 1
    with torch.no_grad():
        want, _ = script_logits(m, script, x, y)
        assert not torch.equal(other(x).reshape(want.shape), want.float())
