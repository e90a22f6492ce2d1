"""TTT variants: the empirical-Bayes shrinkage estimator, per-document LoRA, error-guided loss."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from golf.data.shards import TokenArray
from golf.data.tokenizer import BOS_ID
from golf.evaluate.config import EvalConfig
from golf.evaluate.ttt.methods.eb_adaptive import eb_scale, micro_batch_masks
from golf.evaluate.ttt.methods.error_guided import top_fraction_loss
from golf.evaluate.ttt.methods.lora import LoRAAdapters, attached
from golf.evaluate.ttt.plan import document_starts, plan_pieces
from golf.evaluate.windows import plan_windows
from golf.model.gpt import CastedLinear

from test_ttt_engine import baseline, random_stream, run, tiny_model, ttt


def test_eb_scale_is_near_one_for_a_consistent_gradient_and_small_for_noise():
    gen = torch.Generator().manual_seed(0)
    direction = torch.randn(500, generator=gen)
    consistent = direction + 0.05 * torch.randn(4, 500, generator=gen)
    noise = torch.randn(4, 500, generator=gen)
    assert eb_scale(consistent, prior=1.0) > 0.95
    assert eb_scale(noise, prior=1.0) < 0.1
    assert eb_scale(direction.repeat(4, 1), prior=1.0) == 1.0  # no spread at all: nothing to shrink
    assert eb_scale(torch.zeros(4, 10), prior=1.0) == 0.0
    # a weaker signal is shrunk more, and a stronger prior shrinks more
    weak = 0.3 * direction + torch.randn(4, 500, generator=gen)
    assert eb_scale(noise, 1.0) < eb_scale(weak, 1.0) < eb_scale(consistent, 1.0)
    assert eb_scale(weak, 10.0) < eb_scale(weak, 1.0)


@pytest.mark.parametrize("seed", range(20))
def test_eb_scale_stays_in_the_unit_interval(seed):
    gen = torch.Generator().manual_seed(seed)
    k = 2 + seed % 5
    spread = torch.rand(1, generator=gen)
    grads = torch.randn(k, 50, generator=gen) * spread + torch.randn(50, generator=gen) * seed / 10
    assert 0.0 <= eb_scale(grads, prior=0.1 + seed / 4) <= 1.0


@pytest.mark.parametrize("rows,k", [(8, 4), (3, 4), (1, 4), (5, 2)])
def test_micro_batches_split_the_batch_disjointly(rows, k):
    mask = np.ones((rows, 16), dtype=bool)
    mask[-1, 9:] = False
    parts = micro_batch_masks(mask, k)
    assert len(parts) == k and all(p.any() for p in parts)
    np.testing.assert_array_equal(np.sum(parts, axis=0), mask.astype(int))


def test_eb_adaptive_run_records_scales_per_block():
    model, val = tiny_model(), random_stream(600)
    out = run(model, val, ttt(method="eb_adaptive", eb_microbatches=4, batch_seqs=4, freeze_embeddings=True))
    assert out.ledger.seen_by_scorer().sum() == 0
    for chunk in out.chunks[:-1]:
        scales = chunk["eb_scales"]
        assert set(scales) == {-1, 0, 1}  # blocks 0 and 1, and the skip weights outside them
        assert all(0.0 <= s <= 1.0 for s in scales.values())
    assert out.chunks[-1]["eb_scales"] == {}


def test_error_guided_loss_is_the_mean_of_the_top_losses():
    gen = torch.Generator().manual_seed(0)
    nll = torch.rand(3, 20, generator=gen) * 5
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[2, 12:] = False
    valid = nll[mask]
    k = int(np.ceil(0.1 * valid.numel()))
    assert top_fraction_loss(nll, mask, 0.1).item() == pytest.approx(torch.topk(valid, k).values.mean().item())
    assert top_fraction_loss(nll, mask, 1.0).item() == pytest.approx(valid.mean().item())
    masked_out = nll.clone()
    masked_out[~mask] = 100.0  # padding never counts, however large its loss
    assert top_fraction_loss(masked_out, mask, 0.1).item() == pytest.approx(torch.topk(valid, k).values.mean().item())


def test_error_guided_trains_differently_from_the_plain_loss():
    model, val = tiny_model(), random_stream(400)
    plain = run(copy.deepcopy(model), val, ttt())
    guided = run(copy.deepcopy(model), val, ttt(method="error_guided", error_top_frac=0.1))
    assert guided.ledger.seen_by_scorer().sum() == 0
    assert guided.result.val_bpb != plain.result.val_bpb


def two_documents(n_first: int, n_second: int, seed: int = 0) -> TokenArray:
    rng = np.random.default_rng(seed)
    docs = [np.concatenate(([BOS_ID], rng.integers(2, 32, n - 1))) for n in (n_first, n_second)]
    return TokenArray([np.concatenate(docs).astype(np.uint16)])


def test_lora_pieces_split_at_documents_decided_by_the_context():
    val = two_documents(300, 200)
    starts = document_starts(val)
    assert list(starts) == [0, 300]
    windows = plan_windows(len(val), 20)  # first targets 1, 21, ..., 281, 301, ...
    pieces = plan_pieces(windows, 128, starts)
    assert [(p.chunk, p.document) for p in pieces] == [(0, 1), (1, 1), (2, 1), (2, 2), (3, 2)]
    assert pieces[2].hi == 301 and pieces[3].lo == 301  # the window predicting the BOS at 300 stays with document 1
    assert [w for p in pieces for w in p.windows] == windows


LORA_EVAL = EvalConfig(seq_len=32, stride=0, batch_seqs=4, save_token_nll=True)


def test_lora_leaves_the_base_untouched_and_resets_at_each_document():
    model = tiny_model()
    val = two_documents(300, 200)  # the second document starts at target 300
    plain = baseline(model, val, LORA_EVAL)
    out = run(model, val, ttt(method="lora", optimizer="adamw", lr=0.01, lora_rank=4, chunk_tokens=64,
                              schedule="constant"), LORA_EVAL)
    assert all(torch.equal(out.initial_state[k], v) for k, v in model.state_dict().items())
    assert not attached(model) and all(m.weight_transform is None for m in model.modules()
                                       if isinstance(m, CastedLinear))
    assert out.ledger.seen_by_scorer().sum() == 0
    documents = [c["document"] for c in out.chunks]
    assert documents == sorted(documents) and len(set(documents)) == 2
    nll, ref = out.result.token_nll, plain.token_nll
    for c, chunk in enumerate(out.chunks):
        lo, hi = chunk["first_target"] - 1, chunk["end_target"] - 1
        starts_document = c == 0 or documents[c - 1] != documents[c]
        if starts_document:  # fresh adapters (zero delta): exactly the base model's scores
            np.testing.assert_array_equal(nll[lo:hi], ref[lo:hi])
        else:  # adapted on this document's earlier chunks
            assert not np.allclose(nll[lo:hi], ref[lo:hi])


def test_lora_adapters_start_at_zero_delta_and_reset_there():
    model = tiny_model()
    x = torch.randint(2, 32, (2, 16))
    with torch.no_grad():
        before = model(x)
    adapters = LoRAAdapters(model, ["attn", "mlp"], rank=4, freeze=1)
    names = {name for name, _, _ in adapters.layers}
    assert names == {f"blocks.1.{n}" for n in ("attn.c_q", "attn.c_k", "attn.c_v", "attn.proj", "mlp.fc", "mlp.proj")}
    with torch.no_grad():
        assert torch.equal(model(x), before)
        for a in adapters.adaptables:
            a.tensor.add_(0.1)
        assert not torch.equal(model(x), before)
        adapters.reset()
        assert torch.equal(model(x), before)
    adapters.remove()
    assert not attached(model) and "lora" not in " ".join(model.state_dict())
