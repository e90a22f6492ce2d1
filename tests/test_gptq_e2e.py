"""quant=gptq_int6_brotli (and the record presets) end to end: a tiny model trained a few steps, Hessians collected
from training batches by golf's collector, exported, written, loaded fresh and scored from disk (slow: prepares
data and trains)."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict

import pytest
import torch

from golf.cli import compose
from golf.config import to_golf_config
from golf.data.loader import DistributedTokenLoader
from golf.data.prepare import ensure_prepared
from golf.data.shards import TokenArray
from golf.data.tokenizer import byte_tables, load_tokenizer
from golf.evaluate.artifact_eval import evaluate_artifact
from golf.evaluate.windows import evaluate_standard
from golf.model.gpt import GPT, ModelConfig
from golf.quant.artifact import decode_artifact, export_artifact, write_artifact
from golf.quant.calibration import collect_hessians, hessian_targets
from golf.quant.encoders import ExportContext

from testkit import one_torch_thread

pytestmark = pytest.mark.slow
one_thread = pytest.fixture(autouse=True)(one_torch_thread)

VOCAB, SEQ = 384, 64
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained(text_corpus, tmp_path_factory):
    """Prepared data, a tiny model after 30 Adam steps on training batches, and its pre-quantization val_bpb."""
    root = tmp_path_factory.mktemp("gptq")
    cfg = to_golf_config(compose(["data=text_dir", f"data.path={text_corpus}", f"data.vocab_size={VOCAB}",
                                  f"paths.root={root}", "logger=none"]))
    data = ensure_prepared(cfg.data, log=lambda _: None)
    torch.manual_seed(0)
    model_cfg = ModelConfig(name="micro", num_layers=2, model_dim=64, num_heads=2, num_kv_heads=1)
    model = GPT(model_cfg, VOCAB)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = DistributedTokenLoader(data.train_files, 0, 1, pin_memory=False)
    for _ in range(30):
        x, y = loader.next_batch(8 * SEQ, SEQ, 1)
        opt.zero_grad()
        model(x, y).backward()
        opt.step()
    val = TokenArray.from_files(data.val_files, max_tokens=40 * SEQ)
    tables = byte_tables(load_tokenizer(data.tokenizer_path, expected_vocab_size=VOCAB), VOCAB)
    pre = evaluate_standard(model.eval(), val, tables, SEQ, 8, CPU).val_bpb
    return root, data, model, model_cfg, loader, pre


def quant_preset(option: str):
    # the tiny model's matrices are all within the default 65,536-element passthrough: quantize them
    return to_golf_config(compose([f"quant={option}", "quant.passthrough_numel=1024"])).quant


@pytest.mark.parametrize("option", ["gptq_int6_brotli", "record_0409", "record_0427"])
def test_a_gptq_preset_exports_reloads_and_scores(trained, option):
    root, data, model, model_cfg, loader, pre = trained
    quant = quant_preset(option)
    targets = hessian_targets(model, quant)
    calibration = [loader.next_batch(4 * SEQ, SEQ, 1)[0] for _ in range(4)]  # training batches, never validation
    hessians = collect_hessians(model, calibration, targets)
    assert set(hessians) == set(targets) and "tok_emb.weight" in hessians
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result = export_artifact(state, asdict(model_cfg), VOCAB, quant, ExportContext(hessians))
    # every row-encoded matrix had its Hessian (the other notes: LQER's corrections, pergroup's streams)
    assert not [note for note in result.notes if "no calibration Hessian" in note], result.notes
    path = root / f"{option}.golf"
    write_artifact(path, result)
    score = evaluate_artifact(path, data.val_files, data.tokenizer_path, SEQ, 8, CPU, max_tokens=40 * SEQ)
    assert score.artifact.header["compressor"] == quant.compressor and score.artifact.quant["encoder"] == "gptq"
    gap = score.result.val_bpb - pre
    assert 0 < abs(gap) < 0.1, gap  # int6 moves the score a little, never not at all nor much
    if option == "gptq_int6_brotli":
        # GPTQ's codes move the layers' outputs on other training batches less than rounding on the same scales:
        # sum over the matrices of tr(D H' D^T), D = W - W_quantized, H' from 4 fresh batches
        held_out = collect_hessians(model, [loader.next_batch(4 * SEQ, SEQ, 1)[0] for _ in range(4)], targets)
        rounded = decode_artifact(export_artifact(state, asdict(model_cfg), VOCAB,
                                                  dataclasses.replace(quant, encoder="sdclip")).data).state_dict

        def output_error(weights):
            return sum(torch.trace((state[n] - weights[n]) @ held_out[n] @ (state[n] - weights[n]).T) for n in targets)

        assert output_error(score.artifact.state_dict) < output_error(rounded)
