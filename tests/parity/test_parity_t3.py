"""T3, the 2026-04-27 record (SP8192, LQER, SparseAttnGate, BOS-fixed SmearGate; 1.0611), against golf's
model=record_0427: the script's parameter count equals its log and golf's; at small dimensions, with the script's
(banked) weights under golf's names, golf's logits and loss equal the script's with the loop on and off (two-lane
parallel residuals, T3's SmearGate, SparseAttnGate, the U-Net over the virtual layers); and with documents packed in
one row, golf's document-masked attention agrees with the script's varlen path."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from golf.data.tokenizer import BOS_ID
from golf.model.gpt import GPT, expected_parameter_count
from record_models import build, record_model, unbank
from script_models import VOCAB, batch, golf_model_config, logged_parameter_count, meta_parameter_count, randomize_, \
    relative_difference, same_weights

pytestmark = pytest.mark.parity

T3 = "2026-04-27"
PRESET = "record_0427"
# the model settings of the README's run command (the others are the script's defaults)
RUN_ENV = dict(SPARSE_ATTN_GATE_ENABLED=1, SPARSE_ATTN_GATE_SCALE=0.5, GATE_WINDOW=12, SMEAR_GATE_ENABLED=1,
               FUSED_CE_ENABLED=0)
# small: 6 layers, layers 1-2 looped twice more (10 virtual layers), two lanes from layer 4
SMALL_T3 = dict(RUN_ENV, VOCAB_SIZE=VOCAB, NUM_LAYERS=6, MODEL_DIM=64, NUM_HEADS=4, NUM_KV_HEADS=2, LOOP_START=1,
                LOOP_END=2, NUM_LOOPS=2, PARALLEL_START_LAYER=4, XSA_LAST_N=6, ROPE_DIMS=8, TRAIN_SEQ_LEN=32)
SMALL_GOLF = dict(num_layers=6, model_dim=64, num_heads=4, num_kv_heads=2, loop_start=1, loop_end=3, loop_repeats=2,
                  parallel_from=4, xsa_last=6, rope_dims=8)


def t3_to_golf(state: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    """T3's banks by layer (qo_bank[i] Q, qo_bank[n + i] the output projection, kv_bank[i] K, kv_bank[n + i] V, the
    MLP banks by layer) and its other names under golf's."""
    n, out = num_layers, {}
    renamed = {"parallel_post_lambdas": "lanes.lane_post", "parallel_resid_lambdas": "lanes.lane_resid",
               "smear_lambda": "smear_gate.scale"}
    for name, t in state.items():
        if unbank(name, t, n, out):
            continue
        if name.endswith(".attn.attn_gate_w"):
            out[name.replace("attn_gate_w", "attn_gate.weight")] = t
        else:
            out[renamed.get(name, name)] = t
    return out


def test_t3_parameter_counts_equal_its_log(record_dir) -> None:
    record = record_dir(T3)
    m = record_model(record, RUN_ENV)
    h = m.Hyperparameters()
    cfg = golf_model_config(PRESET)
    assert (cfg.qk_gain_init, cfg.parallel_from, cfg.attn_gate_scale, cfg.smear_gate_window) == \
        (h.qk_gain_init, h.parallel_start_layer, h.sparse_attn_gate_scale, h.gate_window)
    want = logged_parameter_count(record)
    assert meta_parameter_count(lambda: m.GPT(h)) == want
    assert meta_parameter_count(lambda: GPT(cfg, h.vocab_size)) == expected_parameter_count(cfg, h.vocab_size) == want


def small_pair(record_dir, **golf_overrides):
    m = record_model(record_dir(T3), SMALL_T3)
    torch.manual_seed(0)
    script = build(m).eval()
    randomize_(script)
    golf = GPT(golf_model_config(PRESET, **{**SMALL_GOLF, **golf_overrides}), VOCAB).eval()
    same_weights(script, golf, lambda state: t3_to_golf(state, SMALL_GOLF["num_layers"]))
    return script, golf


@pytest.fixture(scope="module")
def small(record_dir):
    """Without document masking: the script's path without cu_seqlens is plain causal attention."""
    return small_pair(record_dir, doc_mask=False)


def with_bos(x: Tensor) -> Tensor:
    x = x.clone()
    x[:, 0] = BOS_ID
    x[:, 13] = BOS_ID  # a second document: T3's SmearGate must not smear across it, nor golf's
    return x


@pytest.mark.parametrize("looping", [True, False])
def test_t3_logits_and_loss_equal_golfs(small, looping: bool) -> None:
    script, golf = small
    script.looping_active = looping
    golf.set_loop_active(looping)
    x, y = batch(VOCAB)
    x = with_bos(x)
    try:
        with torch.no_grad():
            want, want_loss = script.forward_logits(x), script(x, y)
            got, got_loss = golf(x), golf(x, y)
    finally:
        golf.set_loop_active(True)
    assert torch.equal(got, want)
    assert torch.equal(got_loss, want_loss)


def test_t3_gradients_agree_with_golfs(small) -> None:
    """To fp32 rounding (1e-4 relative in norm per parameter): the backward sums in another order (see T2's)."""
    script, golf = small
    script.looping_active = True
    x, y = batch(VOCAB, seed=2)
    x = with_bos(x)
    script.zero_grad(set_to_none=True)
    golf.zero_grad(set_to_none=True)
    script(x, y).backward()
    golf(x, y).backward()
    want = t3_to_golf({n: p.grad for n, p in script.named_parameters()}, SMALL_GOLF["num_layers"])
    got = {n: p.grad for n, p in golf.named_parameters()}
    assert set(got) == set(want) and all(g is not None for g in got.values())
    worst = max((relative_difference(g, want[n]), n) for n, g in got.items())
    assert worst[0] < 1e-4, worst


def test_t3_document_masking_agrees_with_its_varlen_path(record_dir) -> None:
    """Documents packed in one row: the script attends each [cu[i], cu[i+1]) segment alone (its varlen kernel,
    here the CPU stand-in), golf masks the attention block-diagonally. Within 1e-5 relative, not bitwise: the
    softmax runs over T keys with the masked ones at -inf in golf's SDPA, over the document's keys in the stand-in."""
    script, golf = small_pair(record_dir, doc_mask=True)
    script.looping_active = True
    x, y = batch(VOCAB, batch_size=1, seq_len=64)
    x[x == BOS_ID] = BOS_ID + 1  # the documents are exactly the three below
    x[0, [0, 13, 40]] = BOS_ID
    cu = torch.tensor([0, 13, 40, 64], dtype=torch.int32)
    with torch.no_grad():
        want, want_loss = script.forward_logits(x, cu_seqlens=cu, max_seqlen=64), script(x, y, cu, 64)
        got, got_loss = golf(x), golf(x, y)
        plain = script.forward_logits(x)
    assert relative_difference(got, want) < 1e-5
    assert abs(float(got_loss) - float(want_loss)) < 1e-5 * abs(float(want_loss))
    assert relative_difference(plain, want) > 1e-3  # the masking has teeth: without it the logits differ


@pytest.mark.parametrize("perturbed", [dict(parallel_residual="gptj"), dict(parallel_from=5),
                                       dict(smear_gate_window=6), dict(attn_gate_scale=1.0),
                                       dict(attn_gate="output"), dict(bos_mask=False)])
def test_t3_parity_fails_when_an_option_is_perturbed(record_dir, small, perturbed) -> None:
    script, golf = small
    cfg = {**SMALL_GOLF, "doc_mask": False, **perturbed}
    other = GPT(golf_model_config(PRESET, **cfg), VOCAB).eval()
    mine, theirs = golf.state_dict(), other.state_dict()
    other.load_state_dict({k: (mine[k][..., : v.size(-1)] if k in mine else v) for k, v in theirs.items()})
    script.looping_active = True
    x, _ = batch(VOCAB)
    x = with_bos(x)
    with torch.no_grad():
        assert not torch.equal(other(x), script.forward_logits(x))
