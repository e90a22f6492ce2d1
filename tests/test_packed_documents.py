"""Packed documents in training (data.loader=documents): the model attends within the segments the loader's
cu_seqlens names (documents, and cuts at train.seq_len inside a document), the trainer hands them over, and the
config refuses packed documents without document-masked evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from testkit import one_torch_thread, randomized_model
from golf.cli import compose
from golf.config import to_golf_config
from golf.data.documents import DocumentPackingLoader, build_cu_seqlens
from golf.data.shards import write_shard
from golf.data.tokenizer import BOS_ID
from golf.errors import ConfigError
from golf.model.attention import Documents
from golf.model.gpt import ModelConfig
from golf.optim.build import OptimConfig, build_optimizers
from golf.trainer import Trainer
from golf.trainer_config import TrainConfig

V = 64
TINY = dict(num_layers=2, model_dim=32, num_heads=4, num_kv_heads=2, doc_mask=True)
one_thread = pytest.fixture(autouse=True)(one_torch_thread)


def row(length: int, bos_at: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    ids = torch.randint(4, V, (1, length), generator=torch.Generator().manual_seed(seed))
    ids[0, list(bos_at)] = BOS_ID
    return ids


def test_documents_start_where_cu_seqlens_says():
    ids = row(20, (3, 10))
    cu, _ = build_cu_seqlens([3, 10], 20, max_len=4)
    starts = Documents(ids, cu).starts[0].nonzero().flatten().tolist()
    assert starts == [0, 3, 7, 10, 14, 18]
    assert Documents(ids).starts[0].nonzero().flatten().tolist() == [0, 3, 10], "without cu_seqlens: BOS only"


def test_a_segment_cut_inside_a_document_sees_nothing_before_the_cut():
    model = randomized_model(ModelConfig(**TINY), V)
    ids = row(24, (0, 5))  # a document from 5 to 24, cut at 5 + 8 = 13 and 21 with max_len 8
    cu, _ = build_cu_seqlens([0, 5], 24, max_len=8)
    changed = ids.clone()
    changed[0, 6:13] = (changed[0, 6:13] + 1 - 4) % (V - 4) + 4  # the segment before the cut, never a BOS
    with torch.no_grad():
        packed = model(ids, cu_seqlens=cu), model(changed, cu_seqlens=cu)
        by_bos = model(ids), model(changed)
    torch.testing.assert_close(packed[0][0, 13:], packed[1][0, 13:], rtol=0, atol=0)
    assert not torch.allclose(by_bos[0][0, 13:], by_bos[1][0, 13:]), "masked by BOS only, the cut would leak"


def test_the_trainer_hands_the_segments_to_the_model(tmp_path):
    tokens = np.concatenate([[BOS_ID, *range(4, 4 + n)] for n in (9, 30, 3, 17, 25, 12)] * 4)
    write_shard(tmp_path / "train.bin", tokens)
    model = randomized_model(ModelConfig(**TINY), V).train()
    seen = []
    forward = model.forward

    def recording(x, y, **kwargs):
        seen.append(kwargs.get("cu_seqlens"))
        return forward(x, y, **kwargs)

    model.forward = recording
    loader = DocumentPackingLoader([tmp_path / "train.bin"], 0, 1, pin_memory=False)
    trainer = Trainer(model, build_optimizers(model, OptimConfig(muon_ns_dtype="float32")), loader,
                      TrainConfig(iterations=3, batch_tokens=64, seq_len=16, log_every=100, warmdown_steps=1),
                      OptimConfig(), torch.device("cpu"), log=lambda _: None, show_progress=False)
    result = trainer.fit()
    assert result.status == "ok" and np.isfinite(result.last_loss) and len(seen) == 3
    assert all(cu is not None and cu.dtype == torch.int32 and int(cu[0]) == 0 for cu in seen)


def test_packed_documents_need_document_masked_evaluation():
    with pytest.raises(ConfigError, match="model.doc_mask"):
        to_golf_config(compose(["model=tiny", "data.loader=documents"]))
    cfg = to_golf_config(compose(["model=tiny", "data.loader=documents", "ablation=doc_mask"]))
    assert cfg.data.loader == "documents" and cfg.model.doc_mask
    assert to_golf_config(compose(["model=tiny"])).data.loader == "stream", "the default is today's stream"
    with pytest.raises(ConfigError, match="data.loader"):
        to_golf_config(compose(["model=tiny", "data.loader=random"]))
