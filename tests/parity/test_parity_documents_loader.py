"""golf's record loaders against T3's own (2026-04-27 train_gpt.py): DocumentPackingLoader (whole documents packed
into one row per rank with cu_seqlens, documents cut at train_seq_len) and ShuffledSequenceLoader (each rank's
shards in a shuffled order) give the same batches, call after call, past shard ends and wrap-arounds, on every rank."""

from __future__ import annotations

import glob
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from golf.data.documents import DocumentPackingLoader
from golf.data.shards import shard_name, write_shard
from golf.data.shuffled import ShuffledSequenceLoader
from golf.data.tokenizer import BOS_ID
from script_parts import load_parts

LOADER_PARTS = ("load_data_shard", "_SHARD_HEADER_BYTES", "_SHARD_NTOKENS_CACHE", "_MMAP_CACHE", "_read_num_tokens",
                "_get_shard_memmap", "BOS_ID", "get_next_multiple_of_n", "_build_cu_seqlens", "DocumentPackingLoader",
                "ShuffledSequenceLoader")


class _CpuTorch:
    """torch for the record's loaders on a machine without CUDA: pinned buffers become plain ones."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def empty(*args, pin_memory=False, **kwargs):
        return torch.empty(*args, **kwargs)


@pytest.fixture
def t3(record_dir, monkeypatch):
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a, **k: self)
    return load_parts(record_dir("2026-04-27"), LOADER_PARTS,
                      extra=dict(np=np, glob=glob, Path=Path, ThreadPoolExecutor=ThreadPoolExecutor,
                                 torch=_CpuTorch()))


@pytest.fixture
def shards(tmp_path) -> list[Path]:
    """Four shards of documents of random lengths (some longer than train_seq_len), two of them opening mid-document."""
    rng = np.random.default_rng(3)
    files = []
    for index, (docs, lead) in enumerate(((40, 7), (25, 0), (60, 0), (18, 11))):
        parts = [rng.integers(4, 1000, lead)]
        for _ in range(docs):
            parts += [[BOS_ID], rng.integers(4, 1000, int(rng.integers(1, 90)))]
        files.append(tmp_path / shard_name("train", index))
        write_shard(files[-1], np.concatenate(parts))
    return files


def hparams(files: list[Path], rank: int, world: int, seq_len: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(rank=rank, world_size=world, train_seq_len=seq_len,
                                 train_files=str(files[0].parent / "fineweb_train_*.bin"))


@pytest.mark.parametrize("world,accum", [(1, 1), (2, 2), (3, 1)])
def test_packed_documents_are_t3s(t3, shards, world, accum):
    seq_len, global_tokens = 32, 480 * accum
    for rank in range(world):
        theirs = t3.DocumentPackingLoader(hparams(shards, rank, world, seq_len), torch.device("cpu"))
        ours = DocumentPackingLoader(shards, rank, world, pin_memory=False)
        for _ in range(40):  # several passes over the four shards
            x, y, cu, max_seqlen = theirs.next_batch(global_tokens, accum)
            batch = ours.next_batch(global_tokens, seq_len, accum)
            assert torch.equal(batch[0], x) and torch.equal(batch[1], y)
            assert torch.equal(batch.cu_seqlens, cu) and batch.max_seqlen == max_seqlen


@pytest.mark.parametrize("world", [1, 2])
def test_shuffled_sequences_are_t3s(t3, shards, world):
    seq_len, global_tokens = 16, 64 * world
    for rank in range(world):
        theirs = t3.ShuffledSequenceLoader(hparams(shards, rank, world, seq_len), torch.device("cpu"))
        ours = ShuffledSequenceLoader(shards, rank, world, seq_len, pin_memory=False)
        epoch = sum(len(s) for s in ours.start_inds)
        for _ in range(epoch // 4 + 5):  # past the end of a pass, where every shard is cut anew
            x, y = theirs.next_batch(global_tokens, 1)
            ours_x, ours_y = ours.next_batch(global_tokens, seq_len, 1)
            assert torch.equal(ours_x, x) and torch.equal(ours_y, y)
