"""TTT methods are a registry behind one interface: a method defined in this file, and nowhere else, is accepted by
the config, runs through the one score-first loop and passes the audit; the engine never asks a method's name."""

from __future__ import annotations

import ast
import copy
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

from golf import REPO_ROOT
from golf.cli import compose
from golf.config import to_golf_config
from golf.data.shards import TokenArray
from golf.errors import ConfigError
from golf.evaluate.audit_checks import run_audit, verdict_table
from golf.evaluate.audit_config import AuditConfig
from golf.evaluate.config import EvalConfig
from golf.evaluate.ttt import method as registry
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.ttt.method import Method, register
from golf.evaluate.ttt.plan import Piece
from golf.problems import Problems
from golf.quant.code_size import TTT_METHODS_DIR, ttt_code_files

from test_ttt_engine import CPU, TABLES, random_stream, run, tiny_model, ttt


class SignSGD(Method):
    """A toy method: each step moves every adapted tensor by lr times the sign of its gradient (plain SGD on the
    sign), and records the share of gradient entries that were positive."""

    name = "sign_sgd"

    @staticmethod
    def problems(cfg: TTTConfig) -> list:
        p = Problems("ttt.")
        if cfg.method == SignSGD.name:
            p.need(cfg.optimizer == "sgd" and cfg.momentum == 0.0, "optimizer", cfg.optimizer,
                   "sgd with ttt.momentum=0 (sign_sgd steps by the sign alone)")
        return p

    def step(self, stepper, x, y, mask) -> dict[Any, float]:
        stepper.gradients(x, y, mask)
        positive = sum(int((t.grad > 0).sum()) for t in stepper.tensors)
        total = sum(t.numel() for t in stepper.tensors)
        for t in stepper.tensors:
            t.grad = torch.sign(t.grad)
        stepper.apply()
        return {"positive": positive / total}

    def record(self, piece: Piece, step_means: dict[Any, float]) -> dict[str, Any]:
        return {"positive_share": step_means.get("positive")}


@pytest.fixture
def sign_sgd():
    register(SignSGD)
    yield SignSGD
    del registry.REGISTRY[SignSGD.name]


def sign_settings(**overrides) -> TTTConfig:
    return ttt(method="sign_sgd", optimizer="sgd", momentum=0.0, grad_clip=0.0, **overrides)


def test_a_method_registered_here_runs_through_the_engine(sign_sgd):
    model, val = tiny_model(), random_stream(600)
    out = run(model, val, sign_settings(lr=0.01, epochs=1))
    assert out.ledger.seen_by_scorer().sum() == 0  # every piece scored before it was adapted on
    assert all(0.0 < c["positive_share"] < 1.0 for c in out.chunks[:-1])  # its record, from its steps
    assert out.chunks[-1]["positive_share"] is None  # the last piece is never adapted on
    plain = run(tiny_model(), val, ttt(optimizer="sgd", momentum=0.0, grad_clip=0.0, lr=0.01, epochs=1))
    assert out.result.val_bpb != plain.result.val_bpb  # another step, another score
    np.testing.assert_array_equal(out.result.token_nll[:128], plain.result.token_nll[:128])  # same first chunk


def test_a_sign_step_moves_each_entry_by_the_lr(sign_sgd):
    """The toy's arithmetic through the engine: two chunks, the first adapted on in one step of 4 rows of 32."""
    model, val = tiny_model(), random_stream(200)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run(model, val, sign_settings(lr=0.01, epochs=1, batch_seqs=4, chunk_tokens=128))
    deltas = torch.cat([(model.state_dict()[k] - v).flatten() for k, v in before.items()]).abs()
    changed = deltas[deltas > 0]
    assert len(changed) > deltas.numel() // 2
    torch.testing.assert_close(changed, torch.full_like(changed, 0.01), rtol=0, atol=1e-6)


def test_the_config_accepts_a_registered_method_and_checks_its_knobs(sign_sgd):
    cfg = to_golf_config(compose(["ttt=score_first", "ttt.method=sign_sgd", "ttt.momentum=0"]))
    assert cfg.ttt.method == "sign_sgd"
    with pytest.raises(ConfigError) as info:  # the method's own check, through golf/config.py
        to_golf_config(compose(["ttt=score_first", "ttt.method=sign_sgd"]))
    assert info.value.key == "ttt.optimizer" and "sign_sgd steps by the sign alone" in str(info.value)


def test_an_unregistered_method_is_refused_with_the_registered_names():
    with pytest.raises(ConfigError) as info:
        to_golf_config(compose(["ttt=score_first", "ttt.method=sign_sgd"]))
    assert info.value.key == "ttt.method"
    assert str(info.value) == ("ttt.method: 'sign_sgd' is not allowed; allowed: one of "
                               + ", ".join(registry.names()))
    assert registry.names()[0] == "full"


def test_a_registered_method_passes_the_audit(sign_sgd):
    tokens = np.random.default_rng(0).integers(2, 32, 400).astype(np.uint16)
    base = tiny_model()
    record = run_audit(lambda: copy.deepcopy(base), TokenArray([tokens]), TABLES,
                       EvalConfig(seq_len=32, stride=8, batch_seqs=4),
                       sign_settings(lr=0.01, epochs=1, chunk_tokens=64, batch_seqs=2),
                       AuditConfig(tokens=300, positions=4), CPU, log=lambda _: None)
    assert record["compliant"], verdict_table(record)
    assert record["checks"]["C3_score_before_update"]["versions"] > 1  # it did adapt inside the slice


@pytest.mark.parametrize("overrides, key, allowed", [
    (["ttt.method=nope"], "ttt.method", "one of full, "),
    (["ttt.eb_microbatches=1"], "ttt.eb_microbatches", "a number >= 2"),
    (["ttt.eb_prior=0"], "ttt.eb_prior", "a number > 0"),
    (["ttt.lora_rank=0"], "ttt.lora_rank", "a number >= 1"),
    (["ttt.lora_targets=[attn,norms]"], "ttt.lora_targets", "one of attn, mlp"),
    (["ttt.error_top_frac=0"], "ttt.error_top_frac", "a number in (0.0, 1.0]"),
    (["ttt.momentum=1.0"], "ttt.momentum", "a number in [0, 1)"),
    (["ttt.schedule=linear"], "ttt.schedule", "one of cosine_chunks, cosine_global, constant"),
])
def test_each_methods_knobs_are_checked_whatever_the_method(overrides, key, allowed):
    """Each method checks its own knobs (and the schema its common ones), with the wording golf always used."""
    with pytest.raises(ConfigError) as info:
        to_golf_config(compose(["ttt=score_first", *overrides]))
    assert info.value.key == key and f"allowed: {allowed}" in str(info.value), str(info.value)


def test_every_shipped_method_lives_in_its_own_module_which_code_bytes_counts():
    methods_dir = REPO_ROOT / TTT_METHODS_DIR
    modules = sorted(p.stem for p in methods_dir.glob("*.py") if p.stem != "__init__")
    assert sorted(registry.names()) == modules
    for name in registry.names():
        cls = registry.get(name)
        assert cls.__module__ == f"golf.evaluate.ttt.methods.{name}"
        files = ttt_code_files(name)
        assert f"{TTT_METHODS_DIR}/{name}.py" in files and "golf/evaluate/ttt/engine.py" in files
        assert not [m for m in modules if m != name and f"{TTT_METHODS_DIR}/{m}.py" in files]


def test_the_engine_never_names_a_method():
    source = (REPO_ROOT / "golf/evaluate/ttt/engine.py").read_text(encoding="utf-8")
    strings = {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not strings & set(registry.names())
    assert ".method ==" not in source and ".method !=" not in source


def test_the_ttt_schema_imports_no_torch():
    code = "import sys, golf.evaluate.ttt.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
