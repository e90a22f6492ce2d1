"""The one evaluation every entry point runs on an artifact's model: standard or sliding windows, with or without
test-time training. golf.train, golf.eval and golf.audit all call evaluate_model, so the audit checks the very code
path that produces the score."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.evaluate.bpb import EvalResult
from golf.evaluate.config import EvalConfig
from golf.evaluate.ledger import ScoreLedger
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.windows import Window, evaluate_windows, plan_windows


@dataclass
class Evaluation:
    result: EvalResult  # the legal score: TTT's if TTT ran, else the windows' (sliding or standard)
    ledger: ScoreLedger
    ttt: Optional["TTTResult"] = None  # noqa: F821 (golf.evaluate.ttt.engine)


def plan_for(eval_cfg: EvalConfig, n_tokens: int) -> list[Window]:
    return plan_windows(n_tokens, eval_cfg.seq_len, eval_cfg.stride or None)


def evaluate_model(
    model: torch.nn.Module,
    val: TokenArray,
    tables: ByteTables,
    eval_cfg: EvalConfig,
    ttt_cfg: TTTConfig,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    log: Callable[[str], None] = print,
    compile_model: bool = False,
) -> Evaluation:
    """Score `val` with `model` (which TTT adapts in place: pass a fresh copy of the artifact's model). compile_model
    compiles TTT's forward (hardware.compile; once for the whole evaluation, not per chunk)."""
    windows = plan_for(eval_cfg, len(val))
    if ttt_cfg.protocol == "none":
        result = evaluate_windows(model, val, tables, windows, eval_cfg.batch_seqs, device, autocast,
                                  eval_cfg.save_token_nll)
        ledger = ScoreLedger(len(val))
        ledger.record_scores(windows[0].first_target, windows[-1].end_target)
        return Evaluation(result, ledger)
    from golf.evaluate.ttt.engine import run_ttt  # only runs that adapt pay for its imports

    ttt = run_ttt(model, val, tables, windows, ttt_cfg, eval_cfg, device, autocast, log, compile_model=compile_model)
    return Evaluation(ttt.result, ttt.ledger, ttt)
