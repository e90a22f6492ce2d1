"""Window plans score every target exactly once; the scorer's numbers are the model's own per-token losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.evaluate.bpb import ByteCounter
from golf.evaluate.windows import evaluate_standard, evaluate_windows, plan_windows, score_windows
from golf.model.gpt import GPT, ModelConfig

VOCAB = 32
TABLES = ByteTables(base_bytes=np.ones(VOCAB, dtype=np.int16), has_leading_space=np.zeros(VOCAB, dtype=bool),
                    is_boundary=np.zeros(VOCAB, dtype=bool))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 400), seq_len=st.integers(1, 64), stride=st.integers(1, 64))
def test_sliding_scores_every_target_once_with_enough_context(n, seq_len, stride):
    if n - 1 < seq_len:
        with pytest.raises(ValueError):
            plan_windows(n, seq_len, min(stride, seq_len))
        return
    stride = min(stride, seq_len)
    windows = plan_windows(n, seq_len, stride)
    counts = np.zeros(n, dtype=int)
    for w in windows:
        assert w.length == seq_len and 0 <= w.score_from < seq_len and w.start + w.length <= n - 1
        counts[w.first_target:w.end_target] += 1
        if w.start > 0 and stride < seq_len:  # context before the first scored target
            assert w.score_from >= seq_len - stride or w is windows[-1]
    assert counts[0] == 0
    if stride == seq_len:  # standard: whole windows only, the tail dropped
        assert counts.sum() == (n - 1) // seq_len * seq_len and set(counts[1:]) <= {0, 1}
    else:
        assert np.all(counts[1:] == 1)
    assert all(a.end_target == b.first_target for a, b in zip(windows, windows[1:]))


def tiny_model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1), VOCAB)


def test_scores_are_the_models_per_token_losses_at_each_window():
    model, val = tiny_model(), TokenArray([np.random.default_rng(1).integers(0, VOCAB, 300).astype(np.uint16)])
    windows = plan_windows(len(val), 64, 16)
    scores = score_windows(model, val, windows, ByteCounter(TABLES, torch.device("cpu")), 3, torch.device("cpu"))
    w = windows[4]
    tokens = torch.from_numpy(val.read(w.start, w.start + w.length + 1).astype(np.int64))[None]
    with torch.no_grad():
        expected = model(tokens[:, :-1], tokens[:, 1:], reduction="none")[0, w.score_from:].double().numpy()
    offset = w.first_target - scores.first_target
    np.testing.assert_array_equal(scores.nll[offset:offset + w.scored], expected)
    assert scores.first_target == 1 and scores.end_target == len(val)


def test_batching_does_not_move_a_score():
    model, val = tiny_model(), TokenArray([np.random.default_rng(2).integers(0, VOCAB, 500).astype(np.uint16)])
    plan = plan_windows(len(val), 32, 8)
    one = evaluate_windows(model, val, TABLES, plan, 1, torch.device("cpu"), save_token_nll=True)
    many = evaluate_windows(model, val, TABLES, plan, 7, torch.device("cpu"), save_token_nll=True)
    np.testing.assert_allclose(one.token_nll, many.token_nll, rtol=1e-6, atol=1e-7)
    assert one.tokens == len(val) - 1
    standard = evaluate_standard(model, val, TABLES, 32, 4, torch.device("cpu"))
    assert standard.tokens == (len(val) - 1) // 32 * 32
