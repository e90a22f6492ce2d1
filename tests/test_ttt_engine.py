"""The score-first TTT engine: it scores before it adapts, every target once, and only what it is told to adapts."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.evaluate.config import EvalConfig
from golf.evaluate.evaluation import evaluate_model
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.ttt.engine import run_ttt
from golf.evaluate.ttt.params import build_optimizer, layer_lr_multipliers, select_adaptable, set_lr
from golf.evaluate.ttt.plan import adaptation_rows, plan_pieces
from golf.evaluate.ttt.schedule import TTTSchedule
from golf.evaluate.windows import evaluate_windows, plan_windows
from golf.model.gpt import GPT, ModelConfig

VOCAB = 32
TABLES = ByteTables(base_bytes=np.ones(VOCAB, dtype=np.int16), has_leading_space=np.zeros(VOCAB, dtype=bool),
                    is_boundary=np.zeros(VOCAB, dtype=bool))
CPU = torch.device("cpu")
SILENT = lambda _line: None  # noqa: E731


def tiny_model(num_layers: int = 2, seed: int = 0) -> GPT:
    """A tiny GPT nudged off its initialization, so every tensor (zero-initialized projections too) has a gradient."""
    torch.manual_seed(seed)
    model = GPT(ModelConfig(num_layers=num_layers, model_dim=32, num_heads=2, num_kv_heads=1), VOCAB)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def random_stream(n: int, seed: int = 0) -> TokenArray:
    return TokenArray([np.random.default_rng(seed).integers(2, VOCAB, n).astype(np.uint16)])  # no BOS (id 1)


def ttt(**overrides) -> TTTConfig:
    settings = dict(name="test", protocol="score_first", lr=0.05, epochs=2, chunk_tokens=128, batch_seqs=2)
    return TTTConfig(**{**settings, **overrides})


EVAL = EvalConfig(seq_len=32, stride=8, batch_seqs=4, save_token_nll=True)


def run(model, val, cfg, eval_cfg=EVAL):
    windows = plan_windows(len(val), eval_cfg.seq_len, eval_cfg.stride or None)
    return run_ttt(model, val, TABLES, windows, cfg, eval_cfg, CPU, log=SILENT)


def baseline(model, val, eval_cfg=EVAL):
    windows = plan_windows(len(val), eval_cfg.seq_len, eval_cfg.stride or None)
    return evaluate_windows(model, val, TABLES, windows, eval_cfg.batch_seqs, CPU, save_token_nll=True)


@pytest.mark.parametrize("overrides", [dict(lr=0.0), dict(epochs=0), dict(lr=0.0, optimizer="adamw")])
def test_without_updates_the_scores_are_plain_evaluation(overrides):
    model, val = tiny_model(), random_stream(600)
    plain = baseline(model, val)
    out = run(model, val, ttt(**overrides))
    np.testing.assert_array_equal(out.result.token_nll, plain.token_nll)
    np.testing.assert_array_equal(out.result.token_bytes, plain.token_bytes)
    assert out.result.val_bpb == pytest.approx(plain.val_bpb, rel=1e-12)
    assert out.result.tokens == plain.tokens == len(val) - 1 and not out.illegal


def test_the_first_chunk_is_scored_before_any_update_and_later_ones_after():
    model, val = tiny_model(), random_stream(600)
    plain = baseline(model, val)
    out = run(copy.deepcopy(model), val, ttt())
    first = out.chunks[0]
    n0 = first["end_target"] - first["first_target"]
    np.testing.assert_array_equal(out.result.token_nll[:n0], plain.token_nll[:n0])
    for chunk in out.chunks[1:]:
        lo, hi = chunk["first_target"] - 1, chunk["end_target"] - 1
        assert not np.allclose(out.result.token_nll[lo:hi], plain.token_nll[lo:hi])


def test_chunks_follow_their_windows_first_targets():
    windows = plan_windows(1000, 32, 8)
    pieces = plan_pieces(windows, 128)
    assert [w for p in pieces for w in p.windows] == windows
    for p in pieces:
        assert {(w.first_target - 1) // 128 for w in p.windows} == {p.chunk}
    assert all(a.hi == b.lo for a, b in zip(pieces, pieces[1:]))


@pytest.mark.parametrize("lo,hi,seq_len", [(1, 129, 32), (97, 150, 32), (5, 9, 32)])
def test_adaptation_rows_cover_the_chunks_targets_once(lo, hi, seq_len):
    val = random_stream(200, seed=3)
    x, y, mask = adaptation_rows(val, lo, hi, seq_len)
    tokens = val.read(0, len(val))
    assert mask.sum() == hi - lo and x.shape == y.shape == mask.shape and x.shape[1] == seq_len
    np.testing.assert_array_equal(y[mask], tokens[lo:hi])  # the targets, each once, in order
    np.testing.assert_array_equal(x[mask], tokens[lo - 1:hi - 1])  # each with its previous token as input


def test_score_first_ledger_is_clean_and_adapt_first_is_not():
    model, val = tiny_model(), random_stream(600)
    good = run(copy.deepcopy(model), val, ttt())
    assert good.ledger.seen_by_scorer().sum() == 0
    assert np.all(good.ledger.times_scored[1:] == 1) and good.ledger.times_scored[0] == 0
    assert good.ledger.version == len(good.chunks) - 1  # every chunk but the last adapted once
    lines = []
    windows = plan_windows(len(val), EVAL.seq_len, EVAL.stride)
    bad = run_ttt(copy.deepcopy(model), val, TABLES, windows, ttt(protocol="adapt_first"), EVAL, CPU, log=lines.append)
    assert bad.illegal and any("ILLEGAL" in line for line in lines)
    assert bad.ledger.seen_by_scorer().sum() == len(val) - 1  # every target scored by weights trained on it
    assert np.all(bad.ledger.times_scored[1:] == 1)


def test_result_records_and_counts():
    model, val = tiny_model(), random_stream(600)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lines = []
    windows = plan_windows(len(val), EVAL.seq_len, EVAL.stride)
    out = run_ttt(model, val, TABLES, windows, ttt(epochs=3), EVAL, CPU, log=lines.append)
    assert len(lines) == len(out.chunks) + 1 and all("bpb" in line for line in lines)
    assert out.chunks[-1]["adapt_time_s"] == 0 and out.chunks[-1]["lr"] == 0
    adapted = sum(c["end_target"] - c["first_target"] for c in out.chunks[:-1])
    assert out.adapted_tokens == 3 * adapted
    assert sum(c["tokens"] for c in out.chunks) == out.result.tokens
    for c in out.chunks:
        assert c["bpb"] == pytest.approx(c["loss"] * c["tokens"] / (math.log(2) * c["bytes"]))
    assert out.time_s >= out.score_time_s + out.adapt_time_s - 1e-6
    assert all(torch.equal(before[k], v) for k, v in out.initial_state.items())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # adapted in place


def test_evaluate_model_runs_the_engine():
    model, val = tiny_model(), random_stream(400)
    out = evaluate_model(model, val, TABLES, EVAL, ttt(), CPU, log=SILENT)
    assert out.ttt is not None and out.result is out.ttt.result and out.ledger.seen_by_scorer().sum() == 0


def _changed(before: dict, model) -> set[str]:
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def test_freeze_keeps_the_first_blocks_and_the_embedding_bit_identical():
    model, val = tiny_model(num_layers=4), random_stream(400)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run(model, val, ttt(freeze=2, freeze_embeddings=True))
    changed = _changed(before, model)
    assert not {k for k in changed if k.startswith(("blocks.0.", "blocks.1.", "tok_emb"))}
    for b in (2, 3):
        assert {f"blocks.{b}.attn.c_q.weight", f"blocks.{b}.mlp.fc.weight", f"blocks.{b}.attn_scale"} <= changed
    assert all(p.requires_grad for p in model.parameters())  # the flags come back after the run


def test_everything_adapts_by_default():
    model, val = tiny_model(), random_stream(400)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run(model, val, ttt())
    assert _changed(before, model) == set(before)


@pytest.mark.parametrize("kind,marker", [("mlp", ".mlp."), ("attn", ".attn.c_")])
def test_params_picks_one_kind_of_block_tensor(kind, marker):
    model, val = tiny_model(), random_stream(400)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run(model, val, ttt(params=kind))
    changed = _changed(before, model)
    assert changed and all(marker in k or (kind == "attn" and ".attn.proj." in k) for k in changed)
    assert all(k.startswith("blocks.") for k in changed)


def test_params_norms_are_the_blocks_control_tensors():
    names = {a.name for a in select_adaptable(tiny_model(), ttt(params="norms"))}
    assert names == {f"blocks.{b}.{n}" for b in (0, 1) for n in ("attn_scale", "mlp_scale", "resid_mix", "attn.q_gain")}


def test_schedules_follow_their_formulas():
    lr, n = 0.3, 5
    chunks = TTTSchedule("cosine_chunks", lr, n, 40)
    for c in range(n):
        assert chunks.lr(c, 7) == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * c / (n - 1))))
    assert chunks.lr(n - 1, 0) == pytest.approx(0.0, abs=1e-15)
    assert TTTSchedule("cosine_chunks", lr, 1, 4).lr(0, 0) == lr
    steps = 40
    glob = TTTSchedule("cosine_global", lr, n, steps)
    values = [glob.lr(0, s) for s in range(steps)]
    assert values[0] == lr and all(a > b > 0 for a, b in zip(values, values[1:]))
    assert values[10] == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * 10 / steps)))
    assert {TTTSchedule("constant", lr, n, steps).lr(c, s) for c in range(n) for s in (0, 9)} == {lr}


def test_a_run_uses_the_schedule_by_chunk():
    model, val = tiny_model(), random_stream(600)
    out = run(model, val, ttt(lr=0.01))
    n = len(out.chunks)
    assert [c["lr"] for c in out.chunks[:-1]] == pytest.approx(
        [0.01 * 0.5 * (1 + math.cos(math.pi * c / (n - 1))) for c in range(n - 1)])


def test_layer_lr_multipliers_ramp_to_the_last_block():
    assert layer_lr_multipliers(5, 3.0) == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0])
    assert layer_lr_multipliers(4, 1.0) == [1.0] * 4
    adaptables = select_adaptable(tiny_model(num_layers=4), ttt(layer_lr_mult=4.0))
    by_name = {a.name: a.lr_mult for a in adaptables}
    assert [by_name[f"blocks.{b}.mlp.fc.weight"] for b in range(4)] == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert by_name["tok_emb.weight"] == by_name["skip_weights"] == 1.0
    optimizer = build_optimizer(adaptables, ttt(layer_lr_mult=4.0))
    set_lr(optimizer, 0.1)  # the one place the lr is set: each group takes it times its multiplier
    assert sorted(g["lr"] for g in optimizer.param_groups) == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_adaptation_learns_a_repeated_pattern():
    """A random 200-token sequence repeated: adapting on what was scored must make the rest cheaper."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1), VOCAB)
    pattern = np.random.default_rng(0).integers(2, VOCAB, 200)
    val = TokenArray([np.tile(pattern, 6).astype(np.uint16)])
    eval_cfg = EvalConfig(seq_len=64, stride=0, batch_seqs=8)
    plain = baseline(model, val, eval_cfg)
    out = run(model, val, ttt(optimizer="adamw", lr=0.01, chunk_tokens=256, batch_seqs=4, epochs=3,
                              schedule="constant"), eval_cfg)
    assert out.result.val_bpb < plain.val_bpb
    assert out.chunks[-1]["bpb"] < out.chunks[0]["bpb"]


def test_freezing_every_block_is_warned_and_says_what_still_adapts():
    val = random_stream(600)
    lines: list[str] = []
    windows = plan_windows(len(val), EVAL.seq_len, EVAL.stride)
    run_ttt(tiny_model(), val, TABLES, windows, ttt(freeze=2), EVAL, CPU, log=lines.append)
    (warning,) = [line for line in lines if line.startswith("WARNING")]
    assert "ttt.freeze=2 freezes every one of the model's 2 blocks" in warning and "outside them adapt" in warning
    lines.clear()
    run_ttt(tiny_model(), val, TABLES, windows, ttt(freeze=5, params="mlp"), EVAL, CPU, log=lines.append)
    assert any("nothing outside them adapts" in line for line in lines)
    lines.clear()
    run_ttt(tiny_model(), val, TABLES, windows, ttt(freeze=1), EVAL, CPU, log=lines.append)
    assert not any(line.startswith("WARNING") for line in lines)


@pytest.mark.parametrize("terminal, setting", [(True, "1"), (False, "1"), (True, "0")])
def test_evaluation_and_ttt_draw_progress_bars_only_at_a_terminal(monkeypatch, terminal, setting):
    """tqdm bars over windows (evaluation) and chunks (TTT) when stderr is a terminal; nothing in a log or pipe, nor
    with GOLF_PROGRESS=0 (what a parallel job sets)."""
    import io
    import sys

    import golf.evaluate.windows as windows_module

    drawn = []
    real = windows_module.progress_bar

    def watched(total, desc, unit):
        bar = real(total, desc, unit)
        drawn.append((desc, total, bar.disable))
        return bar

    monkeypatch.setattr(windows_module, "progress_bar", watched)
    monkeypatch.setattr("golf.evaluate.ttt.engine.progress_bar", watched)
    fake_stderr = io.StringIO()
    fake_stderr.isatty = lambda: terminal  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", fake_stderr)
    monkeypatch.setenv("GOLF_PROGRESS", setting)
    shown = terminal and setting == "1"
    val = random_stream(600)
    baseline(tiny_model(), val)
    result = run(tiny_model(), val, ttt())
    assert {(desc, disabled) for desc, _, disabled in drawn} == {("eval", not shown), ("ttt", not shown)}
    assert [total for desc, total, _ in drawn if desc == "ttt"] == [len(result.chunks)]
    assert ("ttt" in fake_stderr.getvalue()) == shown
