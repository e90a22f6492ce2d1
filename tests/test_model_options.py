"""The record stack's model options (golf/model/: mlp, embeddings, attention, sharing, reptile): each changes the
forward pass as intended, keeps the parameter count of expected_parameter_count, stays causal, composes with the
optimizer split, quantization categories, QAT and LoRA TTT, and trains; the defaults keep the baseline exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from testkit import one_torch_thread, randomized_model, two_document_stream
import torch.nn.functional as F

from golf.data.tokenizer import BOS_ID
from golf.model.attention import exclusive
from golf.model.embeddings import bigram_hash
from golf.model.gpt import GPT, ModelConfig, apply_rotary, count_parameters, expected_parameter_count
from golf.optim.reptile import Reptile, ReptileConfig, reptile_parameters
from golf.model.sharing import LoopSwitch, layer_order, loop_schedule
from golf.optim.build import OptimConfig, build_optimizers
from golf.optim.muon import Muon
from golf.quant.quantize import category_of

V = 64
CONF = Path(__file__).resolve().parents[1] / "conf"
TINY = dict(num_layers=4, model_dim=32, num_heads=4, num_kv_heads=2)  # head dim 8

# every option, one at a time (on top of the tiny shape)
OPTIONS = {
    "leaky_relu2": dict(mlp_act="leaky_relu2"),
    "swiglu": dict(mlp_act="swiglu", mlp_mult=3),
    "mlp4": dict(mlp_mult=4),
    "bigram": dict(bigram_buckets=37, bigram_dim=8),
    "smear": dict(smear_gate=True),
    "value_embed": dict(value_embed_layers=[1, 3], value_embed_dim=8),
    "xsa": dict(xsa_last=2),
    "partial_rope": dict(rope_dims=4),
    "ln_scale": dict(ln_scale=True),
    "qk_gain": dict(qk_gain_init=3.0),
    "skip_gates": dict(skip_gates=True),
    "ortho_init": dict(ortho_init=True),
    "loop": dict(loop_start=1, loop_end=3, loop_repeats=1),
    "shared": dict(shared_blocks=2),
    "shared_lora": dict(shared_blocks=2, lora_rank=2),
    "shared_lora_swiglu": dict(shared_blocks=1, lora_rank=3, mlp_act="swiglu"),
    "record_stack": dict(num_layers=5, mlp_mult=3, mlp_act="leaky_relu2", bigram_buckets=16, bigram_dim=8,
                         smear_gate=True, value_embed_layers=[3, 4], value_embed_dim=8, xsa_last=2, rope_dims=4,
                         ln_scale=True, skip_gates=True, ortho_init=True, loop_start=1, loop_end=3, loop_repeats=1),
}


one_thread = pytest.fixture(autouse=True)(one_torch_thread)  # tiny models: threads only add synchronization


def cfg_of(**overrides) -> ModelConfig:
    return ModelConfig(**{**TINY, **overrides})


def randomized(cfg: ModelConfig, seed: int = 0) -> GPT:
    return randomized_model(cfg, V, seed)


def stream(batch: int = 2, length: int = 24, seed: int = 1) -> torch.Tensor:
    return two_document_stream(V, batch, length, seed)


# --- defaults: the baseline, exactly -------------------------------------------------------------------------------

def reference_forward(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    """The baseline's forward written out once more (docs/rules.md), from the model's own weights."""
    def norm(t):
        return F.rms_norm(t, (t.size(-1),))

    B, T = ids.shape
    cfg = model.cfg
    hd = cfg.model_dim // cfg.num_heads
    inv = 1.0 / (cfg.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    cos, sin = ang.cos(), ang.sin()

    def rope(t):
        a, b = t[..., : hd // 2], t[..., hd // 2:]
        return torch.cat((a * cos + b * sin, b * cos - a * sin), -1)

    x = x0 = norm(model.tok_emb.weight[ids])
    skips, n_enc = [], cfg.num_layers // 2
    for i, blk in enumerate(model.blocks):
        if i >= n_enc and skips:
            x = x + model.skip_weights[i - n_enc] * skips.pop()
        x = blk.resid_mix[0] * x + blk.resid_mix[1] * x0
        h = norm(x)
        a = blk.attn
        q = (h @ a.c_q.weight.T).view(B, T, cfg.num_heads, hd).transpose(1, 2)
        k = (h @ a.c_k.weight.T).view(B, T, cfg.num_kv_heads, hd).transpose(1, 2)
        v = (h @ a.c_v.weight.T).view(B, T, cfg.num_kv_heads, hd).transpose(1, 2)
        q, k = rope(norm(q)) * a.q_gain[None, :, None, None], rope(norm(k))
        rep = cfg.num_heads // cfg.num_kv_heads
        y = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), is_causal=True)
        x = x + blk.attn_scale * (y.transpose(1, 2).reshape(B, T, -1) @ a.proj.weight.T)
        h = norm(x)
        x = x + blk.mlp_scale * (F.relu(h @ blk.mlp.fc.weight.T).square() @ blk.mlp.proj.weight.T)
        if i < n_enc:
            skips.append(x)
    logits = norm(x) @ model.tok_emb.weight.T
    return 30.0 * torch.tanh(logits / 30.0)


def test_defaults_are_the_baseline() -> None:
    model = randomized(cfg_of(num_layers=5))
    ids = stream()
    with torch.no_grad():
        torch.testing.assert_close(model(ids), reference_forward(model, ids), atol=1e-5, rtol=1e-5)
    # an inactive option (a loop of zero repeats) is the default model bit for bit
    twin = GPT(cfg_of(num_layers=5, loop_start=1, loop_end=3), V).eval()
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(twin(ids), model(ids))


def test_baseline_count_unchanged() -> None:
    with torch.device("meta"):
        model = GPT(ModelConfig(num_layers=9, model_dim=512, num_heads=8, num_kv_heads=4, mlp_mult=2), 1024)
    assert count_parameters(model) == 17_059_912


# --- parameter counts ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_parameter_count_matches_formula(option: str) -> None:
    cfg = cfg_of(**OPTIONS[option])
    for tie in (True, False):
        cfg = dataclasses.replace(cfg, tie_embeddings=tie)
        with torch.device("meta"):
            assert count_parameters(GPT(cfg, V)) == expected_parameter_count(cfg, V)


def test_parameter_counts_by_hand() -> None:
    base = expected_parameter_count(cfg_of(), V)  # dim 32, kv 16, hidden 64
    block_matrices = 2 * 32 * 32 + 2 * 32 * 16
    assert expected_parameter_count(cfg_of(mlp_act="swiglu"), V) == base + 4 * 32 * 64
    assert expected_parameter_count(cfg_of(bigram_buckets=37, bigram_dim=8), V) == base + 37 * 8 + 8 * 32
    assert expected_parameter_count(cfg_of(smear_gate=True), V) == base + 32
    assert expected_parameter_count(cfg_of(value_embed_layers=[1, 3], value_embed_dim=8), V) == base + V * 8 + 8 * 16 + 2
    assert expected_parameter_count(cfg_of(skip_gates=True), V) == base + 2 * 32
    one_block = block_matrices + 4 + 2 * 32 * 64 + 4 * 32
    assert expected_parameter_count(cfg_of(shared_blocks=2), V) == base - 2 * one_block
    lora = 2 * ((32 + 32) + (16 + 32) + (16 + 32) + (32 + 32) + (64 + 32) + (32 + 64)) + 6
    assert expected_parameter_count(cfg_of(shared_blocks=2, lora_rank=2), V) == base - 2 * one_block + 4 * lora
    for cfg in (cfg_of(xsa_last=2), cfg_of(rope_dims=4), cfg_of(ln_scale=True), cfg_of(loop_end=3, loop_repeats=2)):
        assert expected_parameter_count(cfg, V) == base


# --- every option changes the forward pass, as intended, and stays causal ----------------------------------------

@pytest.mark.parametrize("option", sorted(set(OPTIONS) - {"ortho_init", "shared", "mlp4", "qk_gain"}))
def test_option_changes_the_forward(option: str) -> None:
    """Same weights where they exist, option on vs off: different logits."""
    cfg = cfg_of(**OPTIONS[option])
    model = randomized(cfg)
    plain = GPT(cfg_of(num_layers=cfg.num_layers, mlp_mult=cfg.mlp_mult,
                       shared_blocks=cfg.shared_blocks), V).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    ids = stream()
    with torch.no_grad():
        a, b = model(ids), plain(ids)
    assert a.shape == (2, 24, V)
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_option_is_causal(option: str) -> None:
    model = randomized(cfg_of(**OPTIONS[option]))
    ids = stream()
    for k in (0, 8, 9, 15):  # the BOS at 9 starts a document: changing it and what follows must not reach back
        changed = ids.clone()
        changed[:, k + 1:] = (changed[:, k + 1:] + 7) % V
        with torch.no_grad():
            a, b = model(ids), model(changed)
        torch.testing.assert_close(a[:, : k + 1], b[:, : k + 1], atol=1e-5, rtol=1e-5)
        if k + 1 < ids.size(1):
            assert (a[:, k + 1:] - b[:, k + 1:]).abs().max() > 1e-4  # and the check has teeth


@pytest.mark.parametrize("option", ["bigram", "smear"])
def test_token_mixing_stops_at_bos(option: str) -> None:
    """BigramHash and SmearGate: the embedding at a BOS position ignores the previous document's last token;
    elsewhere the previous token matters."""
    model = randomized(cfg_of(**OPTIONS[option]))
    ids = stream()
    changed = ids.clone()
    changed[:, 8] = (changed[:, 8] + 5) % V  # the last token of document one (position 9 is BOS)
    with torch.no_grad():
        a, b = model.embed(ids), model.embed(changed)
    torch.testing.assert_close(a[:, 9], b[:, 9])
    assert (a[:, 10:] - b[:, 10:]).abs().max() == 0
    other = ids.clone()
    other[:, 4] = (other[:, 4] + 5) % V
    with torch.no_grad():
        assert (model.embed(other)[:, 5] - a[:, 5]).abs().max() > 1e-4


def test_bigram_hash_range_and_reserved_bucket() -> None:
    ids = stream(length=64)
    h = bigram_hash(ids, 37)
    assert int(h.min()) >= 0 and int(h.max()) <= 36
    assert (h[ids == BOS_ID] == 36).all() and (h[:, 0] == 36).all()
    assert (h[ids != BOS_ID] < 36).all()


def test_xsa_removes_the_own_value_direction() -> None:
    g = torch.Generator().manual_seed(0)
    y, v = torch.randn(2, 4, 5, 8, generator=g), torch.randn(2, 2, 5, 8, generator=g)
    out = exclusive(y, v)
    own = v.repeat_interleave(2, dim=1)
    assert (out * own).sum(-1).abs().max() < 1e-5
    torch.testing.assert_close(out + (y - out), y)


def test_partial_rope_leaves_the_other_dims() -> None:
    x = torch.randn(1, 2, 6, 8)
    ang = torch.outer(torch.arange(6.0), torch.tensor([1.0, 0.1]))  # 4 rotated dims
    out = apply_rotary(x, ang.cos()[None, None], ang.sin()[None, None])
    assert torch.equal(out[..., 4:], x[..., 4:])
    assert not torch.allclose(out[..., :4], x[..., :4])
    torch.testing.assert_close(out[..., :4].norm(dim=-1), x[..., :4].norm(dim=-1))  # a rotation


# --- depth: looping and shared blocks -----------------------------------------------------------------------------

def test_layer_order() -> None:
    assert layer_order(5, 1, 3, 0) == [0, 1, 2, 3, 4]
    assert layer_order(5, 1, 3, 2) == [0, 1, 2, 1, 2, 1, 2, 3, 4]
    assert layer_order(5, 1, 3, 2, active=False) == [0, 1, 2, 3, 4]


def test_loop_switch() -> None:
    cfg = cfg_of(loop_start=1, loop_end=3, loop_repeats=1, loop_from=0.5)
    model = randomized(cfg)
    ids = stream()
    with torch.no_grad():
        looped = model(ids)
    switch = LoopSwitch(model, loop_schedule(cfg.loop_repeats, cfg.loop_from, []), progress=lambda step: step / 10)
    assert not model.loop_active and model.layer_order() == [0, 1, 2, 3]
    with torch.no_grad():
        unlooped = model(ids)
    assert (looped - unlooped).abs().max() > 1e-3
    switch.update(model, 4, 0.0)
    assert not model.loop_active
    switch.update(model, 5, 0.0)
    assert model.loop_active
    with torch.no_grad():
        assert torch.equal(model(ids), looped)
    assert GPT(cfg, V).loop_active  # a model rebuilt for evaluation loops


def test_shared_blocks_and_gammas() -> None:
    model = randomized(cfg_of(num_layers=6, shared_blocks=2, lora_rank=2))
    assert len(model.blocks) == 2 and len(model.layer_lora) == 6
    gammas = model.lora_gammas()
    assert len(gammas) == 6 * 6 and "layer_lora.5.mlp_proj" in gammas
    before = [m.weight_transform for m in model.blocks.modules() if hasattr(m, "weight_transform")]
    with torch.no_grad():
        a = model(stream())
        for dev in model.layer_lora:  # gamma 0: every virtual layer is its shared block
            dev.lora_gamma.zero_()
        b = model(stream())
    assert (a - b).abs().max() > 1e-3
    assert [m.weight_transform for m in model.blocks.modules() if hasattr(m, "weight_transform")] == before
    plain = GPT(cfg_of(num_layers=6, shared_blocks=2), V).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(plain(stream()), b)


def test_composes_with_qat_and_lora_ttt() -> None:
    from golf.evaluate.ttt.methods.lora import LoRAAdapters
    from golf.quant.config import QuantBits, QuantConfig
    from golf.quant.qat import attach_qat, detach_qat

    cfg = cfg_of(**OPTIONS["record_stack"], shared_blocks=5, lora_rank=2)
    model = randomized(cfg)
    ids = stream()
    with torch.no_grad():
        plain = model(ids)
    quant = QuantConfig(bits=QuantBits(6, 6, 6, 6), passthrough_numel=0)
    assert attach_qat(model, quant)
    adapters = LoRAAdapters(model, ("attn", "mlp"), rank=2)
    for _, _, delta in adapters.layers:
        delta.b.data.normal_()
    loss = model(ids, ids).backward()
    assert all(d.b.grad is not None for _, _, d in adapters.layers)
    with torch.no_grad():
        assert (model(ids) - plain).abs().max() > 1e-3
    adapters.remove()
    detach_qat(model)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), plain)
    del loss


# --- optimizer split, quantization categories, TTT names ----------------------------------------------------------

def test_new_parameters_are_routed() -> None:
    cfg = cfg_of(**{**OPTIONS["record_stack"], "shared_blocks": 5, "lora_rank": 2, "mlp_act": "swiglu"})
    model = GPT(cfg, V)
    placed = {}
    for opt in build_optimizers(model, OptimConfig(muon_ns_dtype="float32")):
        for group in opt.param_groups:
            for p in group["params"]:
                assert id(p) not in placed
                placed[id(p)] = (group["name"], opt)
    names = dict(model.named_parameters())
    assert set(placed) == {id(p) for p in names.values()}
    role = {n: placed[id(p)][0] for n, p in names.items()}
    assert role["bigram.table.weight"] == role["value_embed.table.weight"] == "embed"
    assert role["blocks.0.mlp.gate.weight"] == "matrix" and isinstance(placed[id(names["blocks.0.mlp.gate.weight"])][1], Muon)
    for n in ("bigram.proj.weight", "value_embed.proj.weight", "value_embed.ve_scales", "smear_gate.weight",
              "skip_gates", "layer_lora.3.lora_a.attn_c_q", "layer_lora.3.lora_b.mlp_fc", "layer_lora.0.lora_gamma"):
        assert role[n] == "scalar", n
    assert category_of("bigram.table.weight") == category_of("value_embed.table.weight") == "embed"
    assert category_of("blocks.2.mlp.gate.weight") == "mlp"
    assert category_of("layer_lora.1.lora_a.attn_c_q") == category_of("smear_gate.weight") == "other"


def test_ttt_sees_the_new_names() -> None:
    from golf.model.names import block_of, is_embedding, kind_of
    assert is_embedding("bigram.table.weight") and is_embedding("value_embed.table.weight")
    assert block_of("blocks.3.mlp.gate.weight") == 3 and kind_of("blocks.3.mlp.gate.weight") == "mlp"
    assert kind_of("smear_gate.weight") == "norms" and block_of("layer_lora.2.lora_gamma") is None


# --- a few dozen steps of training lower the loss ----------------------------------------------------------------

def token_stream(n: int = 4096) -> torch.Tensor:
    """Documents of a small repeating grammar: learnable bigrams and a longer-range copy."""
    g = torch.Generator().manual_seed(0)
    out = []
    while sum(len(d) for d in out) < n:
        k = int(torch.randint(4, 12, (1,), generator=g))
        words = torch.randint(4, V, (k,), generator=g)
        out.append(torch.cat((torch.tensor([BOS_ID]), words, (words * 3) % (V - 4) + 4)))
    return torch.cat(out)[:n]


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_short_training_lowers_the_loss(option: str) -> None:
    torch.manual_seed(0)
    model = GPT(cfg_of(**OPTIONS[option]), V)
    optimizers = build_optimizers(model, OptimConfig(muon_ns_dtype="float32", tied_embed_lr=0.02, matrix_lr=0.02,
                                                     scalar_lr=0.02))
    data = token_stream()
    seq = 32
    g = torch.Generator().manual_seed(1)

    def batch():
        starts = torch.randint(0, len(data) - seq - 1, (8,), generator=g)
        x = torch.stack([data[s: s + seq] for s in starts])
        y = torch.stack([data[s + 1: s + seq + 1] for s in starts])
        return x, y

    x_eval, y_eval = batch()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        first = model(x_eval, y_eval).item()
    for _ in range(30):
        x, y = batch()
        loss = model(x, y)
        loss.backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
    with torch.no_grad():
        last = model(x_eval, y_eval).item()
    assert last < first - 0.3, (first, last)
    frozen = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert not frozen, f"never trained: {frozen}"  # every new tensor takes gradient (zero inits included)


# --- Reptile ------------------------------------------------------------------------------------------------------

def test_reptile_moves_only_the_chosen_parameters() -> None:
    model = randomized(cfg_of(), seed=3).train()
    data = token_stream()
    g = torch.Generator().manual_seed(2)

    def batches():
        s = int(torch.randint(0, len(data) - 33, (1,), generator=g))
        return data[s: s + 32][None], data[s + 1: s + 33][None]

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.blocks[0].attn.c_q.weight.grad = torch.ones_like(model.blocks[0].attn.c_q.weight)
    hook = Reptile(ReptileConfig(enabled=True, params="mlp", inner_steps=2, inner_lr=0.1, outer_lr=0.5, every=5), batches)
    hook.update(model, 4, 0.0)  # not due
    assert hook.runs == 0
    hook.update(model, 5, 0.0)
    assert hook.runs == 1
    chosen = {n for n, _ in reptile_parameters(model, "mlp")}
    assert chosen == {f"blocks.{i}.mlp.{m}.weight" for i in range(4) for m in ("fc", "proj")}
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) != (n in chosen), n
    assert torch.equal(model.blocks[0].attn.c_q.weight.grad, torch.ones_like(model.blocks[0].attn.c_q.weight))
    assert all(p.requires_grad for p in model.parameters())
    assert Reptile(ReptileConfig(enabled=True, start=0.5), batches).due(50, 0.4) is False
    with pytest.raises(ValueError, match="optim.reptile.params"):
        Reptile(ReptileConfig(params="head"), batches)


def test_reptile_outer_lr_interpolates() -> None:
    data = token_stream()

    def run(outer: float) -> dict:
        model = randomized(cfg_of(), seed=3).train()
        g = torch.Generator().manual_seed(2)

        def batches():
            s = int(torch.randint(0, len(data) - 33, (1,), generator=g))
            return data[s: s + 32][None], data[s + 1: s + 33][None]

        Reptile(ReptileConfig(params="norms", inner_steps=2, inner_lr=0.1, outer_lr=outer), batches).meta_step(model)
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    p0, half, full = run(0.0), run(0.5), run(1.0)
    for n in p0:
        torch.testing.assert_close(half[n], 0.5 * (p0[n] + full[n]), atol=1e-6, rtol=1e-5)


# --- record11l fits the artifact limit -----------------------------------------------------------------------------

def test_record11l_fits_16mb_with_int6_zstd() -> None:
    """record11l exported with quant=int6_zstd on random weights: every tensor N(0, 0.15^2), a stand-in for trained
    weights (the size grows with the spread; model bytes at zstd level 3: 15.28 MB at 0.15, 15.67 MB at 0.17, 16.32 MB
    at 0.2). Level 3 instead of 22 keeps the test fast: level 22 took 4 minutes here and came out larger on this
    payload (15.74 MB at 0.15), so the margin at level 22 is about 0.18 MB once the code bytes are added."""
    from omegaconf import OmegaConf

    from golf.quant.artifact import export_artifact
    from golf.quant.code_size import code_bytes
    from golf.quant.config import QuantConfig

    model_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig),
                                                    OmegaConf.load(CONF / "model/record11l.yaml")))
    quant = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(QuantConfig),
                                                OmegaConf.load(CONF / "quant/int6_zstd.yaml")))
    quant.level = 3
    with torch.device("meta"):
        model = GPT(model_cfg, 1024)
    assert count_parameters(model) == expected_parameter_count(model_cfg, 1024) == 26_993_754
    g = torch.Generator().manual_seed(0)
    state = {k: 0.15 * torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}
    result = export_artifact(state, dataclasses.asdict(model_cfg), 1024, quant)
    assert result.model_bytes + code_bytes() < 16_000_000


# --- config errors name the key -------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, key", [
    (dict(mlp_act="gelu"), "model.mlp_act"),
    (dict(bigram_buckets=1), "model.bigram_buckets"),
    (dict(value_embed_layers=[4]), "model.value_embed_layers"),
    (dict(value_embed_layers=[1, 1]), "model.value_embed_layers"),
    (dict(xsa_last=5), "model.xsa_last"),
    (dict(rope_dims=3), "model.rope_dims"),
    (dict(rope_dims=10), "model.rope_dims"),
    (dict(loop_start=2, loop_end=2, loop_repeats=1), "model.loop_end"),
    (dict(loop_from=1.0), "model.loop_from"),
    (dict(shared_blocks=3), "model.shared_blocks"),
    (dict(lora_rank=2), "model.lora_rank"),
])
def test_invalid_options_name_the_key(overrides: dict, key: str) -> None:
    from golf.model.config import model_problems as option_problems
    assert [p[0] for p in option_problems(cfg_of(**overrides))] == [key]
    with pytest.raises(ValueError, match=key):
        GPT(cfg_of(**overrides), V)


def test_validate_reports_the_option_key() -> None:
    from golf.config import GolfConfig, validate
    from golf.errors import ConfigError

    cfg = GolfConfig()
    cfg.model = cfg_of(xsa_last=9)
    with pytest.raises(ConfigError, match="model.xsa_last"):
        validate(cfg)


def test_artifact_header_round_trip() -> None:
    """The exporter writes asdict(model config) as JSON and evaluation rebuilds ModelConfig(**it)."""
    import json

    cfg = cfg_of(**OPTIONS["record_stack"])
    again = ModelConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert again == cfg
    model = randomized(cfg)
    twin = GPT(again, V).eval()
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(twin(stream()), model(stream()))
