"""T2, the 2026-04-09 record (SP8192, 3-layer recurrence, parallel residuals, QK 5.25, legal TTT; 1.0810), against
golf's model=record_0409: the script's parameter count equals its log and golf's; at small dimensions, with the
script's weights, golf's logits and loss equal the script's with the layer loop on and off (the U-Net over the
virtual layers, GPT-J parallel residuals, lerp skip gates, XSA on every layer, partial RoPE, LN scale)."""

from __future__ import annotations

import pytest
import torch

from golf.model.gpt import GPT, expected_parameter_count
from record_models import build, record_model
from script_models import VOCAB, batch, golf_model_config, logged_parameter_count, meta_parameter_count, randomize_, \
    relative_difference, same_weights

pytestmark = pytest.mark.parity

T2 = "2026-04-09"
PRESET = "record_0409"
RUN_ENV = dict(QK_GAIN_INIT=5.25)  # the model setting of the README's run command (the rest are the defaults)
# small: 6 layers with layers 1-2 looped twice more (10 virtual layers: 5 encoder, 5 decoder), GPT-J from layer 4
SMALL_T2 = dict(VOCAB_SIZE=VOCAB, NUM_LAYERS=6, MODEL_DIM=64, EMBEDDING_DIM=64, NUM_HEADS=4, NUM_KV_HEADS=2,
                LOOP_START=1, LOOP_END=2, NUM_LOOPS=2, PARALLEL_RESIDUAL_START=4, XSA_LAST_N=6, ROPE_DIMS=8,
                TRAIN_SEQ_LEN=32, QK_GAIN_INIT=5.25)
SMALL_GOLF = dict(num_layers=6, model_dim=64, num_heads=4, num_kv_heads=2, loop_start=1, loop_end=3, loop_repeats=2,
                  parallel_from=4, xsa_last=6, rope_dims=8)


def test_t2_parameter_counts_equal_its_log(record_dir) -> None:
    record = record_dir(T2)
    m = record_model(record, RUN_ENV)
    h = m.Hyperparameters()
    cfg = golf_model_config(PRESET)
    assert cfg.qk_gain_init == h.qk_gain_init and cfg.parallel_from == h.parallel_residual_start
    want = logged_parameter_count(record)
    assert meta_parameter_count(lambda: m.GPT(h)) == want
    assert meta_parameter_count(lambda: GPT(cfg, h.vocab_size)) == expected_parameter_count(cfg, h.vocab_size) == want


@pytest.fixture(scope="module")
def small(record_dir):
    m = record_model(record_dir(T2), SMALL_T2)
    torch.manual_seed(0)
    script = build(m)
    randomize_(script)
    golf = GPT(golf_model_config(PRESET, **SMALL_GOLF), VOCAB)
    same_weights(script, golf)  # T2 keeps the baseline's names: the map is the identity
    return m, script, golf


@pytest.mark.parametrize("looping", [True, False])
def test_t2_logits_and_loss_equal_golfs(small, looping: bool) -> None:
    m, script, golf = small
    script.looping_active = looping
    golf.set_loop_active(looping)
    x, y = batch(VOCAB)
    try:
        with torch.no_grad():
            want, want_loss = script.forward_logits(x), script(x, y)
            got, got_loss = golf(x).reshape(want.shape), golf(x, y)
    finally:
        golf.set_loop_active(True)
    assert torch.equal(got, want)
    assert torch.equal(got_loss, want_loss)


def test_t2_gradients_agree_with_golfs(small) -> None:
    """Within 1e-4 relative (in norm, per parameter), not bitwise: the backward pass sums the same terms in another
    order (golf's GPT-J block norms its input once for both branches, the script twice; the attention's layouts
    differ), so the gradients agree to fp32 rounding while the forward pass is bitwise equal. The loosest are the
    q gains', whose gradient is a sum over every position and channel of a head with much cancellation."""
    m, script, golf = small
    script.looping_active = True
    x, y = batch(VOCAB, seed=2)
    script.zero_grad(set_to_none=True)
    golf.zero_grad(set_to_none=True)
    script(x, y).backward()
    golf(x, y).backward()
    want = dict(script.named_parameters())
    worst = max((relative_difference(p.grad, want[n].grad), n) for n, p in golf.named_parameters())
    assert worst[0] < 1e-4, worst


@pytest.mark.parametrize("perturbed", [dict(loop_skips="first_pass"), dict(parallel_residual="none"),
                                       dict(skip_gate_form="scale"), dict(parallel_from=5)])
def test_t2_parity_fails_when_an_option_is_perturbed(small, perturbed) -> None:
    m, script, golf = small
    other = GPT(golf_model_config(PRESET, **{**SMALL_GOLF, **perturbed}), VOCAB)
    state = golf.state_dict()
    if other.skip_weights.shape != golf.skip_weights.shape:  # first_pass has fewer skip weights: the first ones
        state = {**state, **{k: state[k][: other.state_dict()[k].size(0)] for k in ("skip_weights", "skip_gates")}}
    other.load_state_dict(state)
    script.looping_active = True
    x, y = batch(VOCAB)
    with torch.no_grad():
        want = script.forward_logits(x)
        assert not torch.equal(other(x), want)
