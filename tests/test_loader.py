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


# --- the records' other orders: packed documents and shuffled sequences (golf/data/documents.py, shuffled.py) --------

from golf.data.documents import CU_BUCKET, DocumentPackingLoader, PackedBatch, segment_starts  # noqa: E402
from golf.data.loader import build_loader  # noqa: E402
from golf.data.shuffled import ShuffledSequenceLoader  # noqa: E402
from golf.data.tokenizer import BOS_ID  # noqa: E402


def document_shard(path, rng, docs: int, lead: int = 0) -> np.ndarray:
    """`lead` tokens that belong to no document (a shard may open mid-document), then documents of random lengths,
    each a BOS and tokens that are never BOS."""
    parts = [rng.integers(4, 50, lead)]
    for _ in range(docs):
        parts += [[BOS_ID], rng.integers(4, 50, int(rng.integers(1, 40)))]
    tokens = np.concatenate(parts).astype(np.int64)
    write_shard(path, tokens)
    return tokens


@pytest.fixture
def doc_shards(tmp_path):
    rng = np.random.default_rng(0)
    files = [tmp_path / shard_name("train", i) for i in range(3)]
    tokens = [document_shard(f, rng, docs, lead) for f, docs, lead in zip(files, (30, 12, 25), (5, 0, 3))]
    return files, tokens


def expected_starts(row: np.ndarray, seq_len: int) -> list[int]:
    """Segment starts recomputed the slow way: a new segment at the row start, at every BOS, and after seq_len
    tokens of one document."""
    starts, run = [], 0
    for i, token in enumerate(row):
        if i == 0 or token == BOS_ID or run == seq_len:
            starts.append(i)
            run = 0
        run += 1
    return starts


def test_packed_rows_hold_whole_documents_cut_at_the_sequence_length(doc_shards):
    files, tokens = doc_shards
    world, global_tokens, seq_len = 2, 96, 16
    loaders = [DocumentPackingLoader(files, rank=r, world_size=world, pin_memory=False) for r in range(world)]
    for call in range(12):  # long enough to leave the first shard, skip its tail and wrap around
        for loader in loaders:
            batch = loader.next_batch(global_tokens, seq_len, 1)
            x, y = batch
            assert isinstance(batch, PackedBatch) and x.shape == y.shape == (1, global_tokens // world)
            assert torch.equal(x[0, 1:], y[0, :-1])
            cu = batch.cu_seqlens.tolist()
            assert len(cu) % CU_BUCKET == 0 and batch.cu_seqlens.dtype == torch.int32
            starts = expected_starts(x[0].numpy(), seq_len)
            assert cu[: len(starts)] == starts and set(cu[len(starts):]) == {x.size(1)}
            assert batch.max_seqlen == max(np.diff(starts + [x.size(1)])) <= seq_len
    assert len({loader.cursor for loader in loaders}) == 1, "every rank keeps the same position"


def test_each_shard_is_entered_at_its_first_document(doc_shards):
    files, tokens = doc_shards
    loader = DocumentPackingLoader(files, rank=0, world_size=1, pin_memory=False)
    seen_files = []
    for _ in range(40):
        before = loader.file_index
        x, _ = loader.next_batch(40, 8, 1)
        if loader.file_index != before or not seen_files:
            assert x[0, 0] == BOS_ID, "a shard's first row starts at its first BOS"
            first_bos = int(np.flatnonzero(tokens[loader.file_index] == BOS_ID)[0])
            np.testing.assert_array_equal(x[0].numpy(), tokens[loader.file_index][first_bos: first_bos + 40])
            seen_files.append(loader.file_index)
    assert seen_files[:4] == [0, 1, 2, 0], "shards in order, wrapping around"


def test_segments_by_hand():
    assert segment_starts([3, 10], 20, 4) == [0, 3, 7, 10, 14, 18]
    assert segment_starts([0], 9, 0) == [0]


def test_a_shard_without_documents_is_refused_by_name(tmp_path):
    write_shard(tmp_path / "plain.bin", np.arange(4, 100))
    with pytest.raises(DataError, match="plain.bin.*no BOS"):
        DocumentPackingLoader([tmp_path / "plain.bin"], rank=0, world_size=1)


def test_shuffled_sequences_cover_each_ranks_shards_once_per_epoch(tmp_path):
    seq_len = 8
    files = []
    for index, length in enumerate((81, 57, 100, 33)):
        files.append(tmp_path / shard_name("train", index))
        write_shard(files[-1], np.arange(length) + 1000 * index)  # a token says which shard and where
    loader = ShuffledSequenceLoader(files, rank=1, world_size=2, seq_len=seq_len, pin_memory=False)
    assert loader.files == files[1::2]
    epoch = sum(len(s) for s in loader.start_inds)  # the windows of one pass over this rank's shards
    starts = []
    for _ in range(epoch):
        x, y = loader.next_batch(2 * seq_len, seq_len, 1)  # one sequence a call for this rank
        assert x.shape == (1, seq_len) and torch.equal(x[0, 1:], y[0, :-1])
        assert int(x[0, 0]) // 1000 in (1, 3) and torch.equal(y[0] - x[0], torch.ones(seq_len, dtype=torch.int64))
        starts.append(int(x[0, 0]))
    assert len(set(starts)) == epoch, "no window drawn twice within a pass"
    assert sorted(starts) != starts, "the order is shuffled"


@pytest.mark.parametrize("kind", ["stream", "shuffled", "documents"])
def test_every_order_resumes_with_the_batches_of_an_uninterrupted_run(kind, doc_shards):
    files, _ = doc_shards
    args = (files, 0, 1, 8)
    uninterrupted = build_loader(kind, *args, pin_memory=False)
    batches = [uninterrupted.next_batch(32, 8, 1) for _ in range(25)]
    interrupted = build_loader(kind, *args, pin_memory=False)
    for _ in range(11):
        interrupted.next_batch(32, 8, 1)
    state = json.loads(json.dumps(interrupted.state_dict()))  # what a checkpoint keeps
    resumed = build_loader(kind, *args, pin_memory=False)
    resumed.load_state_dict(state)
    for expected in batches[11:]:
        got = resumed.next_batch(32, 8, 1)
        assert all(torch.equal(a, b) for a, b in zip(expected, got))
        assert torch.equal(getattr(expected, "cu_seqlens", torch.zeros(0)), getattr(got, "cu_seqlens", torch.zeros(0)))


def test_the_stream_is_still_the_default_loader(shards):
    assert isinstance(build_loader("stream", shards, 0, 1, 8), DistributedTokenLoader)
    with pytest.raises(ValueError, match="data.loader"):
        build_loader("random", shards, 0, 1, 8)
