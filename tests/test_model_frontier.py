"""The frontier's model options (the 2026-03-23, 04-09 and 04-27 records; README "Model options"): parallel
residuals, the records' depth recurrence (U-Net over the virtual layers, switch-on, phases, priming), lerp skip
gates, T3's SmearGate, head gates, QK gain per head, XSA everywhere, T1's BigramHash and value-embedding scales, the
BOS-mask switch, and document-masked attention. Each keeps the parameter count of expected_parameter_count, stays
causal, changes the forward pass as intended, is routed by name, and trains; the presets have the records' counts."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
import torch.nn.functional as F

from testkit import one_torch_thread, randomized_model, two_document_stream
from golf.data.tokenizer import BOS_ID
from golf.model.attention import Documents, _attend_varlen, attend
from golf.model.config import model_problems
from golf.model.gpt import GPT, ModelConfig, count_parameters, expected_parameter_count
from golf.model.names import is_control
from golf.model.sharing import LoopSwitch, loop_schedule, skip_count, unet_plan
from golf.optim.build import OptimConfig, build_optimizers

V = 64
TINY = dict(num_layers=6, model_dim=32, num_heads=4, num_kv_heads=2)  # head dim 8; 3 encoder, 3 decoder layers
LOOP = dict(loop_start=1, loop_end=3, loop_repeats=2)

OPTIONS = {
    "gptj": dict(parallel_residual="gptj", parallel_from=3),
    "two_lane": dict(parallel_residual="two_lane", parallel_from=4),
    "recurrence": dict(**LOOP, loop_skips="virtual"),
    "skip_lerp": dict(skip_gates=True, skip_gate_form="lerp"),
    "smear_input": dict(smear_gate=True, smear_gate_window=12),
    "attn_output_gate": dict(attn_gate="output"),
    "attn_output_gate_q": dict(attn_gate="output", attn_gate_source="q"),
    "gated_attn": dict(attn_gate="dense", attn_gate_init_std=0.01),
    "sparse_attn_gate": dict(attn_gate="sparse", attn_gate_scale=0.5),
    "qk_gain5": dict(qk_gain_init=5.0),
    "xsa_all": dict(xsa_last=6),
    "bigram_scaled": dict(bigram_buckets=37, bigram_dim=8, bigram_scale=0.05),
    "bigram_no_bos_mask": dict(bigram_buckets=37, bigram_dim=8, bos_mask=False),
    "value_embed_scaled": dict(value_embed_layers=[4, 5], value_embed_dim=8, value_embed_scale=0.1),
    "doc_mask": dict(doc_mask=True),
    "t3_like": dict(**LOOP, loop_skips="virtual", parallel_residual="two_lane", parallel_from=4, skip_gates=True,
                    skip_gate_form="lerp", smear_gate=True, smear_gate_window=12, attn_gate="sparse",
                    attn_gate_scale=0.5, xsa_last=6, qk_gain_init=5.0, doc_mask=True, rope_dims=4, ln_scale=True,
                    mlp_act="leaky_relu2", ortho_init=True),
}
NO_FORWARD_CHANGE = {"qk_gain5"}  # a different init, not a different function of the same weights

one_thread = pytest.fixture(autouse=True)(one_torch_thread)


def cfg_of(**overrides) -> ModelConfig:
    return ModelConfig(**{**TINY, **overrides})


def randomized(cfg: ModelConfig, seed: int = 0) -> GPT:
    return randomized_model(cfg, V, seed)


def stream(batch: int = 2, length: int = 24, seed: int = 1) -> torch.Tensor:
    return two_document_stream(V, batch, length, seed)


# --- counts, causality, forward ---------------------------------------------------------------------------------

@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_parameter_count_matches_formula(option: str) -> None:
    for tie in (True, False):
        cfg = dataclasses.replace(cfg_of(**OPTIONS[option]), tie_embeddings=tie)
        with torch.device("meta"):
            assert count_parameters(GPT(cfg, V)) == expected_parameter_count(cfg, V)


def test_parameter_counts_by_hand() -> None:
    base = expected_parameter_count(cfg_of(), V)  # dim 32, 4 heads, 6 layers, 3 skips
    assert expected_parameter_count(cfg_of(**OPTIONS["two_lane"]), V) == base + 6 * (2 + 4)
    assert expected_parameter_count(cfg_of(**OPTIONS["gptj"]), V) == base
    assert expected_parameter_count(cfg_of(**OPTIONS["smear_input"]), V) == base + 12 + 1
    assert expected_parameter_count(cfg_of(**OPTIONS["sparse_attn_gate"]), V) == base + 6 * 4 * 12
    assert expected_parameter_count(cfg_of(**OPTIONS["attn_output_gate"]), V) == base + 6 * 4 * 12
    assert expected_parameter_count(cfg_of(**OPTIONS["gated_attn"]), V) == base + 6 * 4 * 32
    # 10 virtual layers: 5 skips instead of 3
    assert expected_parameter_count(cfg_of(**OPTIONS["recurrence"]), V) == base + 2 * 32
    assert expected_parameter_count(cfg_of(**LOOP), V) == base  # golf's first loop keeps the plain U-Net
    assert expected_parameter_count(cfg_of(**OPTIONS["bigram_scaled"]), V) == \
        expected_parameter_count(cfg_of(bigram_buckets=37, bigram_dim=8), V) + 1


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_option_is_causal(option: str) -> None:
    model = randomized(cfg_of(**OPTIONS[option]))
    ids = stream()
    for k in (0, 8, 9, 15):
        changed = ids.clone()
        changed[:, k + 1:] = (changed[:, k + 1:] + 7) % V
        changed[:, k + 1:][changed[:, k + 1:] == BOS_ID] = BOS_ID + 1
        with torch.no_grad():
            a, b = model(ids), model(changed)
        torch.testing.assert_close(a[:, : k + 1], b[:, : k + 1], atol=1e-5, rtol=1e-5)
        assert (a[:, k + 1:] - b[:, k + 1:]).abs().max() > 1e-4


@pytest.mark.parametrize("option", sorted(set(OPTIONS) - NO_FORWARD_CHANGE))
def test_option_changes_the_forward(option: str) -> None:
    """Same weights where they exist, option on vs off: different logits."""
    model = randomized(cfg_of(**OPTIONS[option]))
    plain = GPT(cfg_of(), V).eval()
    state = model.state_dict()
    plain.load_state_dict({k: state[k][tuple(slice(0, n) for n in v.shape)] for k, v in plain.state_dict().items()})
    ids = stream()
    with torch.no_grad():
        assert (model(ids) - plain(ids)).abs().max() > 1e-3


def test_defaults_are_unchanged_by_the_new_keys() -> None:
    """Every new key at its default is golf's model before them: the same parameters and the same function."""
    cfg = cfg_of()
    assert (cfg.parallel_residual, cfg.attn_gate, cfg.loop_skips, cfg.skip_gate_form, cfg.doc_mask, cfg.bos_mask,
            cfg.smear_gate_window, cfg.bigram_scale, cfg.value_embed_scale, cfg.loop_phases,
            cfg.loop_priming_steps) == ("none", "none", "first_pass", "scale", False, True, 0, 0.0, 0.0, [], 0)
    names = {n for n, _ in GPT(cfg, V).named_parameters()}
    assert not any(k in n for n in names for k in ("lanes", "attn_gate", "scale."))


# --- parallel residuals -------------------------------------------------------------------------------------------

def test_gptj_block_reads_one_normed_input() -> None:
    model = randomized(cfg_of(parallel_residual="gptj", parallel_from=0))
    blk = model.blocks[0]
    g = torch.Generator().manual_seed(3)
    x, x0 = torch.randn(2, 5, 32, generator=g), torch.randn(2, 5, 32, generator=g)
    cos, sin = model.rotary(5, x.device)
    with torch.no_grad():
        got = blk(x, x0, cos, sin, parallel=True)
        x_in = blk.resid_mix[0] * x + blk.resid_mix[1] * x0
        h = F.rms_norm(x_in, (32,))
        want = x_in + blk.attn_scale * blk.attn(h, cos, sin) + blk.mlp_scale * blk.mlp(h)
        serial = blk(x, x0, cos, sin, parallel=False)
    torch.testing.assert_close(got, want)
    assert (got - serial).abs().max() > 1e-3


def test_two_lanes_with_unit_lambdas_and_no_mix_are_gptj() -> None:
    """With lane_resid = 1, lane_post = 1, resid_mix = (1, 0) and no skip into the lanes, both lanes stay equal and
    each lane layer is a GPT-J block: the two forms agree."""
    lanes = randomized(cfg_of(parallel_residual="two_lane", parallel_from=4))
    gptj = GPT(cfg_of(parallel_residual="gptj", parallel_from=4), V).eval()
    with torch.no_grad():
        lanes.lanes.lane_resid.fill_(1.0)
        lanes.lanes.lane_post.fill_(1.0)
        for i in (4, 5):
            lanes.blocks[i].resid_mix[0].fill_(1.0)
            lanes.blocks[i].resid_mix[1].fill_(0.0)
        lanes.skip_weights[1:].zero_()  # the skips of layers 4 and 5
        gptj.load_state_dict({k: v for k, v in lanes.state_dict().items() if not k.startswith("lanes.")})
        ids = stream()
        torch.testing.assert_close(lanes(ids), gptj(ids), atol=1e-5, rtol=1e-5)
        lanes.lanes.lane_resid.fill_(1.1)  # T3's init: now they differ
        assert (lanes(ids) - gptj(ids)).abs().max() > 1e-3


def test_two_lane_lambdas_start_as_t3s() -> None:
    model = GPT(cfg_of(parallel_residual="two_lane", parallel_from=4), V)
    assert torch.equal(model.lanes.lane_resid, torch.full((6, 2), 1.1))
    assert torch.equal(model.lanes.lane_post, torch.ones(6, 2, 2))


# --- depth recurrence ---------------------------------------------------------------------------------------------

def test_t2s_virtual_layers_and_skips() -> None:
    order = [0, 1, 2, 3, 4, 5, 3, 4, 5, 3, 4, 5, 6, 7, 8, 9, 10]
    plan = unet_plan(order, 11, "virtual")
    assert [layer for layer, *_ in plan] == order
    assert sum(push for _, push, _, _ in plan) == 8 and [pop for *_, pop, _ in plan][8:] == list(range(9))
    assert skip_count(11, 3, 6, 2, "virtual") == 8 and skip_count(11, 3, 6, 2, "first_pass") == 5
    first = unet_plan(order, 11, "first_pass")  # golf's first loop: a repeated layer neither pushes nor pops
    assert sum(push for _, push, _, _ in first) == 5 and sorted(p for *_, p, _ in first if p >= 0) == list(range(6))


def test_recurrence_off_uses_the_first_skip_weights() -> None:
    """With the loop off, the virtual form is the plain U-Net over the first num_layers // 2 skip weights."""
    model = randomized(cfg_of(**OPTIONS["recurrence"]))
    model.set_loop_active(False)
    plain = GPT(cfg_of(), V).eval()
    state = model.state_dict()
    plain.load_state_dict({k: state[k][: v.size(0)] if k == "skip_weights" else state[k]
                           for k, v in plain.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(model(stream()), plain(stream()))


def test_loop_phases_add_repeats_in_order() -> None:
    cfg = cfg_of(**OPTIONS["recurrence"], loop_phases=[0.25, 0.5])
    cfg = dataclasses.replace(cfg, loop_from=0.0)
    assert model_problems(cfg) == []
    model = randomized(cfg)
    switch = LoopSwitch(model, loop_schedule(2, 0.0, [0.25, 0.5]), progress=lambda step: step / 100)
    seen = []
    for step in (1, 24, 25, 49, 50, 99):
        switch.update(model, step, 0.0)
        seen.append(len(model.layer_order()))
    assert seen == [6, 6, 8, 8, 10, 10]
    assert switch.state_dict() == {"repeats": 2}
    other = LoopSwitch(randomized(cfg), loop_schedule(2, 0.0, [0.25, 0.5]), progress=lambda step: 0.0)
    other.restore(other.model, {"active": True})  # a checkpoint written before phases: the whole loop
    assert len(other.model.layer_order()) == 10


def test_loop_priming_runs_the_looped_model_then_restores() -> None:
    """The trainer's priming runs train.priming_steps steps, then the switch's own with the loop on, then undoes
    them all: weights as before, the loop off again."""
    from golf.trainer import Trainer
    from golf.trainer_config import TrainConfig

    cfg = cfg_of(**OPTIONS["recurrence"], loop_from=0.35, loop_priming_steps=3)
    model = GPT(cfg, V)
    orders: list[int] = []
    model.register_forward_pre_hook(lambda module, args: orders.append(len(module.layer_order())))

    class Batches:
        def __init__(self):
            self.calls = 0

        def next_batch(self, tokens, seq, accum):
            self.calls += 1
            ids = stream(batch=2, length=17, seed=self.calls)
            return ids[:, :-1], ids[:, 1:]

        def state_dict(self):
            return {"calls": self.calls}

        def load_state_dict(self, state):
            self.calls = state["calls"]

    switch = LoopSwitch(model, loop_schedule(2, 0.35, []), progress=lambda step: step / 10, priming_steps=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, build_optimizers(model, OptimConfig(muon_ns_dtype="float32")), Batches(),
                      TrainConfig(iterations=10, batch_tokens=32, seq_len=16, priming_steps=2), OptimConfig(),
                      torch.device("cpu"), log=lambda line: None, hooks=(switch,), show_progress=False)
    trainer.prime()
    assert orders == [6, 6, 10, 10, 10]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert len(model.layer_order()) == 6 and trainer.loader.calls == 0


def test_loop_priming_needs_a_switch() -> None:
    assert [p[0] for p in model_problems(cfg_of(**LOOP, loop_priming_steps=5))] == ["model.loop_priming_steps"]


# --- skip gates, gates, QK gain -----------------------------------------------------------------------------------

def test_lerp_skip_gate_is_the_records_formula() -> None:
    model = randomized(cfg_of(**OPTIONS["skip_lerp"]))
    g = torch.Generator().manual_seed(4)
    x, skip = torch.randn(2, 3, 32, generator=g), torch.randn(2, 3, 32, generator=g)
    gate = torch.sigmoid(model.skip_gates[1])
    want = model.skip_weights[1] * skip + gate * (x - model.skip_weights[1] * skip)
    torch.testing.assert_close(model.add_skip(x, 1, skip), want)


@pytest.mark.parametrize("kind", ["output", "sparse", "dense"])
def test_head_gates_at_init(kind: str) -> None:
    """output: g = 1 (the identity); sparse with a zero weight and dense with std 0: g = 1/2 (half the output)."""
    cfg = cfg_of(attn_gate=kind)
    model = randomized(cfg)
    for blk in model.blocks:
        blk.attn.attn_gate.reset_parameters()
    plain = GPT(cfg_of(), V).eval()
    state = {k: v for k, v in model.state_dict().items() if "attn_gate" not in k}
    if kind != "output":
        state = {k: v * 0.5 if k.endswith("attn.proj.weight") else v for k, v in state.items()}
    plain.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(model(stream()), plain(stream()), atol=1e-5, rtol=1e-5)


def test_sparse_gate_reads_only_its_window() -> None:
    model = randomized(cfg_of(attn_gate="sparse", attn_gate_window=5, attn_gate_scale=0.5))
    gate = model.blocks[0].attn.attn_gate
    x = torch.randn(1, 3, 32)
    moved = x.clone()
    moved[..., 5:] += 1.0
    assert torch.equal(gate(x, x), gate(moved, moved))
    want = torch.sigmoid(0.5 * x[..., :5] @ gate.weight.T)
    torch.testing.assert_close(gate(x, x), want)


def test_qk_gain_is_per_head() -> None:
    model = randomized(cfg_of(qk_gain_init=5.25))
    fresh = GPT(cfg_of(qk_gain_init=5.25), V)
    assert torch.equal(fresh.blocks[0].attn.q_gain, torch.full((4,), 5.25))
    ids = stream()
    with torch.no_grad():
        a = model(ids)
        model.blocks[2].attn.q_gain[1] += 1.0  # one head of one layer
        assert (model(ids) - a).abs().max() > 1e-4


# --- embeddings: T1's scales, T3's SmearGate, the BOS mask -------------------------------------------------------

def test_t1_bigram_and_value_embed_init() -> None:
    model = GPT(cfg_of(**OPTIONS["bigram_scaled"], value_embed_layers=[4, 5], value_embed_dim=8,
                       value_embed_scale=0.1, ortho_init=True), V)
    assert torch.equal(model.bigram.table.weight, torch.zeros(37, 8))
    assert float(model.bigram.scale.detach()) == pytest.approx(0.05)
    assert float(model.value_embed.scale.detach()) == pytest.approx(0.1)
    p = model.bigram.proj.weight
    torch.testing.assert_close(p.T @ p, torch.eye(8), atol=1e-5, rtol=0)  # orthogonal under ortho_init
    assert float(model.value_embed.table.weight.detach().std()) == pytest.approx(0.01, rel=0.2)


@pytest.mark.parametrize("option, leaks", [("smear_input", False), ("bigram_scaled", False),
                                           ("bigram_no_bos_mask", True)])
def test_bos_mask(option: str, leaks: bool) -> None:
    """With bos_mask the embedding at a BOS ignores the previous document's last token; without (T1), it does not."""
    cfg = cfg_of(**OPTIONS[option])
    model = randomized(cfg)
    ids = stream()
    changed = ids.clone()
    changed[:, 8] = (changed[:, 8] + 5) % V  # the last token of document one (position 9 is BOS)
    with torch.no_grad():
        diff = (model.embed(ids)[:, 9] - model.embed(changed)[:, 9]).abs().max()
    assert (diff > 1e-4) == leaks


def test_input_smear_gate_is_the_identity_at_init_and_t3s_formula() -> None:
    cfg = cfg_of(**OPTIONS["smear_input"])
    fresh = GPT(cfg, V)
    smear = fresh.smear_gate
    x = torch.randn(2, 24, 32)
    ids = stream()
    assert torch.equal(smear(x, ids), x)
    with torch.no_grad():
        smear.weight.normal_()
        smear.scale.fill_(0.7)
    out = smear(x, ids)
    t = 5
    want = x[:, t] + 0.7 * torch.sigmoid(x[:, t, :12] @ smear.weight[0]).unsqueeze(-1) * x[:, t - 1]
    torch.testing.assert_close(out[:, t], want)
    assert torch.equal(out[:, 9], x[:, 9]) and torch.equal(out[:, 0], x[:, 0])  # BOS and position 0


# --- document masking ---------------------------------------------------------------------------------------------

def test_a_tokens_logits_do_not_change_when_the_previous_document_changes() -> None:
    model = randomized(cfg_of(doc_mask=True, xsa_last=6))
    ids = stream()
    changed = ids.clone()
    changed[:, 1:9] = (changed[:, 1:9] + 11) % V  # the whole first document, BOS at 9 kept
    changed[:, 1:9][changed[:, 1:9] == BOS_ID] = BOS_ID + 1
    plain = randomized(cfg_of(xsa_last=6))
    with torch.no_grad():
        a, b = model(ids), model(changed)
        assert torch.equal(a[:, 9:], b[:, 9:])
        assert (a[:, :9] - b[:, :9]).abs().max() > 1e-3
        c, d = plain(ids), plain(changed)
        assert (c[:, 9:] - d[:, 9:]).abs().max() > 1e-4  # without the mask the first document is seen


def test_document_masked_model_equals_documents_run_alone() -> None:
    model = randomized(cfg_of(doc_mask=True))
    ids = stream(batch=1)
    with torch.no_grad():
        whole = model(ids)
        parts = torch.cat((model(ids[:, :9]), model(ids[:, 9:])), dim=1)
    torch.testing.assert_close(whole, parts, atol=1e-5, rtol=1e-5)


def test_varlen_packing_matches_the_masked_path() -> None:
    """The varlen path's packing (cu_seqlens over the flattened batch, a row start a document start) with a kernel
    that attends each segment alone gives the block-diagonal SDPA's result."""
    g = torch.Generator().manual_seed(5)
    q, k, v = torch.randn(2, 4, 12, 8, generator=g), torch.randn(2, 2, 12, 8, generator=g), \
        torch.randn(2, 2, 12, 8, generator=g)
    ids = torch.full((2, 12), 7)
    ids[0, 5] = ids[1, 0] = ids[1, 8] = BOS_ID
    docs = Documents(ids)
    assert docs.cu_seqlens().tolist() == [0, 5, 12, 20, 24]

    def kernel(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal):
        out = torch.empty_like(q)
        for s, e in zip(cu_seqlens_q.tolist()[:-1], cu_seqlens_q.tolist()[1:]):
            seg = [t[s:e].transpose(0, 1) for t in (q, k, v)]
            out[s:e] = F.scaled_dot_product_attention(*seg, is_causal=causal, enable_gqa=True).transpose(0, 1)
        return out, None

    torch.testing.assert_close(_attend_varlen(kernel, q, k, v, docs), attend(q, k, v, docs), atol=1e-6, rtol=1e-5)


def test_no_warning_on_cpu() -> None:
    """On CPU the block-diagonal SDPA is the intended path, not a fallback: no warning, and finite logits."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logits = randomized(cfg_of(doc_mask=True))(stream())
    assert [str(w.message) for w in caught] == []
    assert logits.shape == (2, 24, V) and torch.isfinite(logits).all()


# --- names, routing, training ------------------------------------------------------------------------------------

def test_new_tensors_are_control_tensors_on_adam() -> None:
    model = GPT(cfg_of(**OPTIONS["t3_like"], bigram_buckets=37, bigram_dim=8, bigram_scale=0.05,
                       value_embed_layers=[4], value_embed_dim=8, value_embed_scale=0.1), V)
    names = dict(model.named_parameters())
    new = ["blocks.0.attn.attn_gate.weight", "lanes.lane_resid", "lanes.lane_post", "smear_gate.weight",
           "smear_gate.scale", "bigram.scale", "value_embed.scale"]
    assert all(is_control(n) for n in new)
    role = {}
    for opt in build_optimizers(model, OptimConfig(muon_ns_dtype="float32")):
        for group in opt.param_groups:
            role.update({id(p): group["name"] for p in group["params"]})
    assert {role[id(names[n])] for n in new} == {"scalar"}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_short_training_lowers_the_loss(option: str) -> None:
    from test_model_options import token_stream  # documents of a small grammar, with BOS

    torch.manual_seed(0)
    model = GPT(cfg_of(**OPTIONS[option]), V)
    optimizers = build_optimizers(model, OptimConfig(muon_ns_dtype="float32", tied_embed_lr=0.02, matrix_lr=0.02,
                                                     scalar_lr=0.02))
    data = token_stream()
    seq, g = 32, torch.Generator().manual_seed(1)

    def batch():
        starts = torch.randint(0, len(data) - seq - 1, (8,), generator=g)
        return torch.stack([data[s: s + seq] for s in starts]), torch.stack([data[s + 1: s + seq + 1] for s in starts])

    x_eval, y_eval = batch()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        first = model(x_eval, y_eval).item()
    for _ in range(30):
        x, y = batch()
        model(x, y).backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
    with torch.no_grad():
        last = model(x_eval, y_eval).item()
    assert last < first - 0.3, (first, last)
    frozen = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert not frozen, f"never trained: {frozen}"  # zero-initialized gates and zero tables included


# --- config errors name the key -----------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, key", [
    (dict(parallel_residual="both"), "model.parallel_residual"),
    (dict(parallel_residual="gptj", parallel_from=6), "model.parallel_from"),
    (dict(**LOOP, parallel_residual="two_lane", parallel_from=2), "model.parallel_from"),
    (dict(attn_gate="sigmoid"), "model.attn_gate"),
    (dict(attn_gate="sparse", attn_gate_window=40), "model.attn_gate_window"),
    (dict(attn_gate_source="k"), "model.attn_gate_source"),
    (dict(attn_gate_init_std=-1.0), "model.attn_gate_init_std"),
    (dict(skip_gate_form="add"), "model.skip_gate_form"),
    (dict(loop_skips="all"), "model.loop_skips"),
    (dict(**LOOP, loop_phases=[0.5]), "model.loop_phases"),
    (dict(**LOOP, loop_phases=[0.5, 0.4]), "model.loop_phases"),
    (dict(**LOOP, loop_phases=[0.2, 0.4], loop_from=0.1), "model.loop_phases"),
    (dict(smear_gate_window=4), "model.smear_gate_window"),
    (dict(bigram_scale=-0.1), "model.bigram_scale"),
    (dict(value_embed_scale=float("nan")), "model.value_embed_scale"),
])
def test_invalid_options_name_the_key(overrides: dict, key: str) -> None:
    assert [p[0] for p in model_problems(cfg_of(**overrides))] == [key]
    with pytest.raises(ValueError, match=key):
        GPT(cfg_of(**overrides), V)


def test_composes_with_qat_and_lora_ttt() -> None:
    from golf.evaluate.ttt.methods.lora import LoRAAdapters
    from golf.quant.config import QuantBits, QuantConfig
    from golf.quant.qat import attach_qat, detach_qat

    model = randomized(cfg_of(**OPTIONS["t3_like"]))
    ids = stream()
    with torch.no_grad():
        plain = model(ids)
    assert attach_qat(model, QuantConfig(bits=QuantBits(6, 6, 6, 6), passthrough_numel=0))
    adapters = LoRAAdapters(model, ("attn", "mlp"), rank=2)
    for _, _, delta in adapters.layers:
        delta.b.data.normal_()
    model(ids, ids).backward()
    assert all(d.b.grad is not None for _, _, d in adapters.layers)
    adapters.remove()
    detach_qat(model)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), plain)
