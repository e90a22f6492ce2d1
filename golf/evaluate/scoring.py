"""Score an artifact file as the challenge would, and say which number is the legal one.

1. standard evaluation of the artifact as loaded: quant_val_bpb (the round trip of the export);
2. sliding windows when eval.stride > 0: sliding_val_bpb;
3. test-time training when ttt.protocol != none, on a fresh copy of the loaded model: ttt_val_bpb, the same windows
   scored without TTT (no_ttt_val_bpb, the reference of every TTT ablation), their signed difference ttt_delta_bpb
   (negative = TTT helped), the per-chunk curve, and the diagnostics (labelled: none of them is a score);
4. the audit when audit.enabled: compliance.json and `compliant`.
The headline val_bpb is the TTT score if TTT ran legally, else sliding if on, else standard (golf/evaluate/headline.py,
which a submission's train_gpt.py shares). The illegal protocol (adapt_first) never becomes val_bpb: its number is
kept under diagnostics with the word ILLEGAL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from golf.atomic import atomic_open, atomic_write_json
from golf.config import GolfConfig
from golf.data.prepare import PreparedData
from golf.data.shards import TokenArray
from golf.data.tokenizer import byte_tables, load_tokenizer
from golf.evaluate.artifact_eval import evaluate_artifact, load_model
from golf.collectives import rank_world
from golf.evaluate.evaluation import evaluate_model, plan_for
from golf.evaluate.headline import choose_headline
from golf.evaluate.windows import evaluate_windows
from golf.scorecard import ttt_delta_phrase

# metrics.json keys kept under an old name for one release, beside their new one; W&B gets only the new names
OLD_METRIC_NAMES = ("ttt_gain_bpb",)  # = ttt_delta_bpb


def score_artifact_file(cfg: GolfConfig, path: Path, data: PreparedData, device: torch.device,
                        autocast: Callable, log: Callable[[str], None],
                        log_record: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Every evaluation the config asks for, of the artifact at `path`; returns metrics.json keys."""
    standard = evaluate_artifact(path, data.val_files, data.tokenizer_path, cfg.eval.seq_len, cfg.eval.batch_seqs,
                                 device, max_tokens=cfg.eval.max_tokens or None,
                                 save_token_nll=cfg.eval.save_token_nll, autocast=autocast)
    result = standard.result
    log(f"artifact val_loss {result.val_loss:.6f} val_bpb {result.val_bpb:.6f} over {result.tokens:,} tokens "
        f"/ {result.bytes:,} bytes ({result.time_s:.1f}s)")
    metrics: dict[str, Any] = {
        "quant_val_bpb": result.val_bpb, "quant_val_loss": result.val_loss,
        "artifact_sha256": standard.artifact.sha256, "load_time_s": standard.load_time_s,
        "diagnostics": {},
    }
    sliding, ttt_result, ttt_illegal = None, None, False
    tokenizer = load_tokenizer(data.tokenizer_path, expected_vocab_size=standard.artifact.vocab_size)
    tables = byte_tables(tokenizer, standard.artifact.vocab_size)
    val = TokenArray.from_files(data.val_files, max_tokens=cfg.eval.max_tokens or None)
    windows = plan_for(cfg.eval, len(val))
    fresh_model = lambda: load_model(standard.artifact, device)  # noqa: E731

    if cfg.eval.stride > 0:
        sliding = evaluate_windows(fresh_model(), val, tables, windows, cfg.eval.batch_seqs, device, autocast,
                                   cfg.eval.save_token_nll)
        log(f"sliding (stride {cfg.eval.stride}) val_bpb {sliding.val_bpb:.6f} over {sliding.tokens:,} tokens "
            f"({sliding.time_s:.1f}s)")
        metrics.update(sliding_val_bpb=sliding.val_bpb, sliding_val_loss=sliding.val_loss)
    no_ttt = choose_headline(result, sliding, None, False)[1]

    if cfg.ttt.protocol != "none":
        model = fresh_model()
        ttt = evaluate_model(model, val, tables, cfg.eval, cfg.ttt, device, autocast, log,
                             compile_model=cfg.hardware.compile).ttt
        for chunk in ttt.chunks:
            log_record({"ttt_chunk": chunk["chunk"], "ttt_chunk_bpb": chunk["bpb"], "ttt_chunk_loss": chunk["loss"],
                        "ttt_chunk_lr": chunk["lr"], "ttt_chunk_tokens": chunk["tokens"]})
        diagnostics = metrics["diagnostics"]
        diagnostics.update(_ttt_diagnostics(model, val, tables, windows, cfg, device, autocast, ttt))
        ttt_result, ttt_illegal = ttt.result, ttt.illegal
        if ttt.illegal:
            diagnostics["adapt_first_bpb_ILLEGAL"] = ttt.result.val_bpb
            log(f"ILLEGAL protocol {cfg.ttt.protocol}: bpb {ttt.result.val_bpb:.6f} is NOT a score; val_bpb stays "
                "the evaluation without TTT")
        else:
            delta = ttt.result.val_bpb - no_ttt.val_bpb
            metrics.update(ttt_val_bpb=ttt.result.val_bpb, ttt_val_loss=ttt.result.val_loss, ttt_delta_bpb=delta,
                           ttt_gain_bpb=delta)  # the old name of ttt_delta_bpb, kept for one release
            log(f"TTT {cfg.ttt.name}: val_bpb {ttt.result.val_bpb:.6f}, {ttt_delta_phrase(delta)} the same windows "
                f"without TTT ({no_ttt.val_bpb:.6f}) in {ttt.time_s:.1f}s")
        metrics.update(no_ttt_val_bpb=no_ttt.val_bpb, no_ttt_val_loss=no_ttt.val_loss)
        metrics.update(ttt_time_s=ttt.time_s, ttt_score_time_s=ttt.score_time_s, ttt_adapt_time_s=ttt.adapt_time_s,
                       ttt_chunks=len(ttt.chunks), ttt_illegal=ttt.illegal)

    _, headline = choose_headline(result, sliding, ttt_result, ttt_illegal)
    token_result = headline  # the per-token losses kept are the headline's
    eval_time = ttt.time_s if ttt_result is not None else headline.time_s  # TTT's time counts even when illegal
    metrics.update(val_bpb=headline.val_bpb, val_loss=headline.val_loss, eval_tokens=headline.tokens,
                   eval_bytes=headline.bytes, eval_time_s=eval_time, eval_budget_s=cfg.eval.budget_s)
    if token_result.token_nll is not None:
        metrics["token_nll"] = (token_result.token_nll, token_result.token_bytes)
        from golf.evaluate.diagnostics import loss_shares  # per-token losses are kept only when asked for

        metrics["diagnostics"]["loss_shares"] = loss_shares(token_result.token_nll)
    if cfg.audit.enabled and rank_world()[1] > 1:
        log(f"audit skipped: it is single-process and this job runs {rank_world()[1]} ranks; run "
            "`python -m golf.audit artifact=RUN_DIR hardware=cpu` (or hardware=1xh100) for compliance.json, which "
            "golf.submit takes with submit.audits=AUDIT_RUN_DIR")
    elif cfg.audit.enabled:
        from golf.evaluate.audit_calibration import read_calibration
        from golf.evaluate.audit_checks import run_audit, verdict_table

        compliance = run_audit(fresh_model, val, tables, cfg.eval, cfg.ttt, cfg.audit, device, autocast,
                               model_bytes=path.stat().st_size, eval_time_s=eval_time, log=log,
                               hardware=cfg.hardware.name, quant=standard.artifact.quant,
                               calibration=read_calibration(path.parent), tokenizer=tokenizer)
        compliance["artifact_sha256"] = standard.artifact.sha256  # golf.submit ties the audit to this artifact
        log(verdict_table(compliance))
        timing = compliance["checks"]["eval_time"]
        metrics.update(compliance=compliance, compliant=compliance["compliant"], audit_time_judged=timing["judged"],
                       audit_time_budget_s=timing["allowed_s"])
    return metrics


def _ttt_diagnostics(model, val, tables, windows, cfg: GolfConfig, device, autocast, ttt) -> dict[str, Any]:
    from golf.evaluate.diagnostics import adaptation_size, memorization_gap

    return {
        "memorization": memorization_gap(model, val, tables, windows, cfg.eval.batch_seqs, device, autocast,
                                         ttt.result.val_bpb),
        "adaptation_size": adaptation_size(ttt.initial_state, model),
        "ttt_chunks": ttt.chunks,
    }


def write_side_files(metrics: dict[str, Any], run_path: Path) -> None:
    """Move what is not a metrics.json value into its own file: token_nll.npy / token_bytes.npy of the headline
    evaluation (eval.save_token_nll) and compliance.json (audit.enabled)."""
    arrays = metrics.pop("token_nll", None)
    if arrays is not None:
        for name, array in (("token_nll.npy", arrays[0]), ("token_bytes.npy", arrays[1])):
            with atomic_open(run_path / name) as f:
                np.save(f, array)
    compliance = metrics.pop("compliance", None)
    if compliance is not None:
        atomic_write_json(run_path / "compliance.json", compliance)
