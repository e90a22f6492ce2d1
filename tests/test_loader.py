"""The training stream: the challenge's rank spans, wrap-around, and an exact resume from a saved state."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from golf.data.loader import DistributedTokenLoader, TokenStream
from golf.data.shards import shard_name, write_shard
from golf.errors import DataError

LENGTHS = (50, 0, 70, 13)  # an empty shard and an odd-sized last one


@pytest.fixture
def shards(tmp_path):
    files, start = [], 0
    for index, length in enumerate(LENGTHS):
        files.append(tmp_path / shard_name("train", index))
        write_shard(files[-1], np.arange(start, start + length))
        start += length
    return files


def reference(n: int) -> np.ndarray:
    """The first n tokens of the endless stream: all shards in order, again and again."""
    total = sum(LENGTHS)
    return np.arange(n) % total


def test_stream_wraps_around(shards):
    stream = TokenStream(shards)
    taken = np.concatenate([stream.take(n) for n in (7, 100, 1, 200, 133)])
    assert taken.dtype == np.int64
    np.testing.assert_array_equal(taken, reference(441))


def test_rank_spans_are_disjoint_and_cover_the_world_chunk(shards):
    world, global_tokens, seq_len, accum = 3, 48, 4, 2
    local = global_tokens // (world * accum)  # 8
    loaders = [DistributedTokenLoader(shards, rank=r, world_size=world) for r in range(world)]
    expected = reference(5 * (local + 1) * world)
    for call in range(5):
        spans = []
        for rank, loader in enumerate(loaders):
            x, y = loader.next_batch(global_tokens, seq_len, accum)
            assert x.dtype == y.dtype == torch.int64 and x.device.type == "cpu"
            assert x.shape == y.shape == (local // seq_len, seq_len)
            assert torch.equal(x.flatten()[1:], y.flatten()[:-1]), "targets are the inputs shifted by one"
            spans.append(np.concatenate([x.flatten().numpy(), y.flatten().numpy()[-1:]]))
        chunk = expected[call * (local + 1) * world: (call + 1) * (local + 1) * world]
        np.testing.assert_array_equal(np.concatenate(spans), chunk)


def test_a_restored_loader_continues_the_identical_stream(shards):
    original = DistributedTokenLoader(shards, rank=1, world_size=2)
    for _ in range(9):  # far enough to have wrapped around at least once
        original.next_batch(32, 8, 1)
    state = json.loads(json.dumps(original.state_dict()))  # plain ints survive a checkpoint
    assert all(type(v) is int for v in state.values())
    restored = DistributedTokenLoader(shards, rank=1, world_size=2)
    restored.load_state_dict(state)
    for _ in range(12):
        (x1, y1), (x2, y2) = original.next_batch(32, 8, 1), restored.next_batch(32, 8, 1)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_bad_arguments(shards, tmp_path):
    loader = DistributedTokenLoader(shards, rank=0, world_size=1)
    with pytest.raises(ValueError, match="multiple of the sequence length"):
        loader.next_batch(30, 8, 1)
    with pytest.raises(ValueError):
        loader.load_state_dict({"file_index": 7, "position": 0})
    with pytest.raises(ValueError):
        loader.load_state_dict({"file_index": 0, "position": 51})
    with pytest.raises(ValueError):
        DistributedTokenLoader(shards, rank=2, world_size=2)
    with pytest.raises(DataError):
        TokenStream([])
    write_shard(tmp_path / "empty.bin", [])
    with pytest.raises(DataError, match="no tokens"):
        TokenStream([tmp_path / "empty.bin"])
