"""The bpb formula of docs/bpb.md, on hand-made cases and on a model whose losses are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from golf.data.shards import TokenArray, write_shard
from golf.data.tokenizer import ByteTables
from golf.evaluate.bpb import ByteCounter, bits_per_byte
from golf.evaluate.windows import evaluate_standard

# ids: 0 pad, 1 BOS (boundary), 2 "▁the" (3 bytes + space), 3 "<0xE2>" byte piece, 4 "ab", 5 unused (boundary)
TABLES = ByteTables(
    base_bytes=np.array([0, 0, 3, 1, 2, 0], dtype=np.int32),
    has_leading_space=np.array([False, False, True, False, False, False]),
    is_boundary=np.array([True, True, False, False, False, True]),
)


def reference_bytes(prev: np.ndarray, target: np.ndarray) -> np.ndarray:
    return TABLES.base_bytes[target] + (TABLES.has_leading_space[target] & ~TABLES.is_boundary[prev])


def test_leading_space_after_bos_counts_no_space():
    count = ByteCounter(TABLES, torch.device("cpu"))
    assert count(torch.tensor([1]), torch.tensor([2])).item() == 3  # "▁the" right after BOS: the space is not text


def test_leading_space_after_a_word_counts_the_space():
    count = ByteCounter(TABLES, torch.device("cpu"))
    assert count(torch.tensor([4]), torch.tensor([2])).item() == 4


def test_byte_fallback_piece_is_one_byte_and_boundaries_are_zero():
    count = ByteCounter(TABLES, torch.device("cpu"))
    assert count(torch.tensor([2, 2, 4]), torch.tensor([3, 1, 5])).tolist() == [1, 0, 0]


def test_bits_per_byte_is_nats_over_ln2_bytes():
    assert bits_per_byte(math.log(2.0) * 10, 5) == pytest.approx(2.0, rel=1e-15)


class ConstantLossModel(torch.nn.Module):
    """Scores every token with the same NLL, so the expected sums are known in closed form."""

    def __init__(self, nll: float):
        super().__init__()
        self.nll = nll

    def forward(self, x, y, reduction="mean"):
        assert reduction == "none"
        return torch.full(y.shape, self.nll, dtype=torch.float32)


@pytest.fixture
def val_array(tmp_path) -> TokenArray:
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 6, size=1000).astype(np.uint16)
    tokens[::37] = 1  # documents start with BOS
    write_shard(tmp_path / "fineweb_val_000000.bin", tokens[:600])
    write_shard(tmp_path / "fineweb_val_000001.bin", tokens[600:])
    return TokenArray.from_files([tmp_path / "fineweb_val_000000.bin", tmp_path / "fineweb_val_000001.bin"])


@pytest.mark.parametrize("batch_seqs", [1, 4, 100])
def test_standard_eval_scores_whole_sequences_and_drops_the_tail(val_array, batch_seqs):
    seq_len, nll = 64, 1.25
    result = evaluate_standard(ConstantLossModel(nll), val_array, TABLES, seq_len, batch_seqs, torch.device("cpu"))
    n_scored = (len(val_array) - 1) // seq_len * seq_len  # 999 // 64 * 64 = 960
    all_tokens = val_array.read(0, len(val_array))
    expected_bytes = int(reference_bytes(all_tokens[:n_scored], all_tokens[1:n_scored + 1]).sum())
    assert result.tokens == n_scored == 960
    assert result.bytes == expected_bytes
    assert result.val_loss == pytest.approx(nll, rel=1e-12)
    assert result.val_bpb == pytest.approx(nll * n_scored / (math.log(2) * expected_bytes), rel=1e-12)


def test_saved_token_nll_is_in_validation_order_and_sums_to_the_score(val_array):
    seq_len = 50
    result = evaluate_standard(ConstantLossModel(0.5), val_array, TABLES, seq_len, 3, torch.device("cpu"),
                               save_token_nll=True)
    all_tokens = val_array.read(0, len(val_array))
    n = result.tokens
    assert result.token_nll.dtype == np.float64 and result.token_nll.shape == (n,)
    np.testing.assert_array_equal(result.token_bytes, reference_bytes(all_tokens[:n], all_tokens[1:n + 1]))
    assert result.token_nll.sum() / (math.log(2) * result.token_bytes.sum()) == pytest.approx(result.val_bpb, rel=1e-12)
