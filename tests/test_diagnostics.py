"""Diagnostics (never scores): loss shares of the hardest tokens, adaptation size per block, the memorization gap."""

from __future__ import annotations

import contextlib
import copy
import math

import numpy as np
import pytest
import torch

from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.evaluate.diagnostics import LABEL, adaptation_size, loss_shares, memorization_gap
from golf.evaluate.windows import evaluate_windows, plan_windows
from golf.model.gpt import GPT, ModelConfig

V = 32


def tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1), V)


def test_loss_shares_of_hand_made_losses():
    nll = np.ones(100)
    nll[37] = 10.0  # total 109
    shares = loss_shares(nll)
    assert shares["tokens"] == 100 and shares["label"] == LABEL
    assert shares["hardest_1%"] == pytest.approx(10 / 109)  # 1 token
    assert shares["hardest_2.7%"] == pytest.approx(12 / 109)  # 3 tokens
    assert shares["hardest_10%"] == pytest.approx(19 / 109)  # 10 tokens


def test_loss_shares_take_at_least_one_token_and_survive_zero_loss():
    assert loss_shares(np.array([1.0, 3.0]), fractions=(0.01,))["hardest_1%"] == pytest.approx(0.75)
    assert loss_shares(np.zeros(10))["hardest_10%"] == 0.0


def test_adaptation_size_is_zero_for_unchanged_weights():
    model = tiny_gpt()
    size = adaptation_size({k: v.clone() for k, v in model.state_dict().items()}, model)
    assert size["blocks"] == {"0": 0.0, "1": 0.0} and "embedding" not in size and size["label"] == LABEL


def test_adaptation_size_of_a_known_change():
    model = tiny_gpt()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    delta = torch.randn_like(model.blocks[1].mlp.fc.weight) * 0.01
    with torch.no_grad():
        model.blocks[1].mlp.fc.weight.add_(delta)
        model.tok_emb.weight.mul_(1.5)
    size = adaptation_size(initial, model)
    block1 = math.sqrt(sum(float(v.double().square().sum()) for k, v in initial.items() if k.startswith("blocks.1.")))
    assert size["blocks"]["0"] == 0.0
    assert size["blocks"]["1"] == pytest.approx(float(delta.double().norm()) / block1, rel=1e-6)
    assert size["embedding"] == pytest.approx(0.5, rel=1e-6)


def test_memorization_gap_is_negative_after_training_on_the_scored_tokens():
    model = tiny_gpt()
    tokens = np.random.default_rng(1).integers(0, V, 257)
    val = TokenArray([tokens])
    tables = ByteTables(np.ones(V, np.int32), np.zeros(V, bool), np.zeros(V, bool))
    windows = plan_windows(len(tokens), 64)
    cpu = torch.device("cpu")
    score_first = evaluate_windows(model, val, tables, windows, 4, cpu).val_bpb
    adapted = copy.deepcopy(model)
    opt = torch.optim.Adam(adapted.parameters(), lr=1e-2)
    x = torch.from_numpy(tokens[:-1].reshape(4, 64))
    y = torch.from_numpy(tokens[1:].reshape(4, 64))
    for _ in range(20):  # memorize the very tokens that were scored
        adapted(x, y).backward()
        opt.step()
        opt.zero_grad()
    gap = memorization_gap(adapted, val, tables, windows, 4, cpu, contextlib.nullcontext, score_first)
    assert gap["label"] == LABEL and gap["score_first_bpb"] == score_first
    assert gap["rescored_bpb"] == evaluate_windows(adapted, val, tables, windows, 4, cpu).val_bpb
    assert gap["gap_bpb"] == gap["rescored_bpb"] - score_first and gap["gap_bpb"] < -0.1
