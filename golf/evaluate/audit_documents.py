"""The audit's checks of the frontier's rules (issue 19): documents stay apart, the window plan scores every target
once, and CaseOps data bills the original text's bytes.

- document_independence: where the TTT method claims it (Method.document_independent: per-document adapters on a
  frozen base), changing every earlier document leaves a later document's scores unchanged. Earlier documents are
  rewritten token for token (BOS kept where it is, so the plan and the document boundaries do not move) and the whole
  evaluation is rerun.
- bos_isolation: on a model with SmearGate or BigramHash, the embedding stage at a BOS and after it does not depend
  on the previous document (the records' BOS fix: a SmearGate that mixes the last token of one document into the
  next one's BOS leaks across documents).
- window_plan: every target the evaluation promises is scored exactly once by the plan, the last partial window
  included (the records' sliding-window bug scored tail targets twice), on the audit slice's length and on the
  lengths around one stride past a full window, where tails are cut.
- caseops_bytes: on data with a byte sidecar, BOS and the CaseOps operators bill 0 bytes (an escaped operator is
  literal text), the evaluation billed
  exactly the sidecar's bytes of its targets, and (given the tokenizer) each whole document of the slice bills the
  UTF-8 length of the text its tokens decode to (CaseOps undone). Text the tokenizer's normalizer changes (runs of
  whitespace it folds, NFKC) cannot be rebuilt from tokens: such a document is reported as differing.
Each returns None where it does not apply.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from golf.data import caseops
from golf.data.tokenizer import BOS_ID, caseops_operator_ids
from golf.evaluate.audit_checks import AuditRun
from golf.evaluate.audit_result import CheckResult
from golf.evaluate.config import EvalConfig
from golf.evaluate.evaluation import Evaluation, plan_for
from golf.evaluate.ttt import method as ttt_methods
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.windows import Window

FIRST_TEXT_ID = 4  # ids below are pad, BOS, EOS, unk: a rewritten token never becomes one of them
CASEOPS_TEXT_TOLERANCE = 0.01  # caseops_bytes: |billed - decoded text| over whole documents, relative


def claims_document_independence(ttt_cfg: TTTConfig) -> bool:
    if ttt_cfg.protocol == "none":
        return False
    try:
        method = ttt_methods.get(ttt_cfg.method)
    except ValueError:
        return False
    claims = getattr(method, "claims_independence", None)  # a claim that depends on the settings (doc_lora's warm A)
    return bool(claims(ttt_cfg)) if callable(claims) else bool(getattr(method, "document_independent", False))


def rewrite_before(tokens: np.ndarray, b: int, vocab_size: int) -> np.ndarray:
    """A copy with every token before position b that is not a BOS replaced by another text token; BOS stay put."""
    out = np.array(tokens, copy=True)
    head = out[:b]
    text = head != BOS_ID
    span = max(1, vocab_size - FIRST_TEXT_ID)
    head[text] = FIRST_TEXT_ID + (np.maximum(head[text], FIRST_TEXT_ID) - FIRST_TEXT_ID + 1) % span
    return out


def document_boundaries(tokens: np.ndarray, first: int, end: int, count: int) -> list[int]:
    """Up to `count` BOS positions b, spread over the slice, with text before them and scored targets after."""
    bos = [int(b) for b in np.flatnonzero(np.asarray(tokens) == BOS_ID) if first <= b and b + 1 < end - 1 and b > 0]
    if not bos:
        return []
    idx = np.linspace(0, len(bos) - 1, min(count, len(bos))).round().astype(int)
    return sorted({bos[i] for i in idx})


def check_document_independence(reference: AuditRun, rerun: Callable[[np.ndarray], AuditRun], tokens: np.ndarray,
                                windows: Sequence[Window], ttt_cfg: TTTConfig, positions: int, tolerance: float,
                                vocab_size: int) -> Optional[CheckResult]:
    """Where the method claims document independence: rewrite every document before a BOS b, and no target after b
    may move."""
    if not claims_document_independence(ttt_cfg):
        return None
    first, end = windows[0].first_target, windows[-1].end_target
    ref = reference.evaluation.result.token_nll
    boundaries = document_boundaries(tokens, first, end, positions)
    if not boundaries:
        return CheckResult("document_independence", False, {
            "reason": f"ttt.method={ttt_cfg.method} claims document independence, but the slice holds no document "
                      "boundary to test it on; raise audit.tokens", "method": ttt_cfg.method})
    cuts, offender = [], None
    for b in boundaries:
        nll = rerun(rewrite_before(tokens, b, vocab_size)).evaluation.result.token_nll
        if nll is None or len(nll) != len(ref):
            nll = np.full(len(ref), np.nan)
        later = slice(b + 1 - first, None)  # targets after the BOS: the later documents' own tokens
        change = np.abs(nll[later] - ref[later])
        bad = np.flatnonzero(~(change <= tolerance))
        cuts.append({"bos": b, "max_change": float(np.nanmax(change)) if change.size and not np.isnan(change).all()
                     else float("nan"), "first_offending_target": int(b + 1 + bad[0]) if bad.size else None})
        if bad.size and offender is None:
            offender = (b, int(b + 1 + bad[0]), float(change[bad[0]]))
    if offender:
        b, target, delta = offender
        reason = (f"ttt.method={ttt_cfg.method} claims document independence, but rewriting the documents before the "
                  f"BOS at {b} moved the score of target {target} by {delta:.3g} nats (tolerance {tolerance:g})")
    else:
        reason = f"{len(cuts)} document boundaries: rewriting earlier documents moved no later score"
    return CheckResult("document_independence", offender is None,
                       {"reason": reason, "method": ttt_cfg.method, "tolerance": tolerance, "cuts": cuts})


@torch.no_grad()
def check_bos_isolation(model: nn.Module, tokens: np.ndarray, seq_len: int, vocab_size: int,
                        device: torch.device, count: int = 4, tolerance: float = 1e-6) -> Optional[CheckResult]:
    """On a model with SmearGate or BigramHash: the embedding stage from a BOS on is the same whatever the previous
    document holds."""
    mixers = [name for name in ("smear_gate", "bigram") if getattr(model, name, None) is not None]
    if not mixers or not callable(getattr(model, "embed", None)):
        return None
    bos = [int(b) for b in np.flatnonzero(np.asarray(tokens) == BOS_ID) if 0 < b < len(tokens) - 1][:count]
    if not bos:
        return CheckResult("bos_isolation", False, {
            "reason": f"the model mixes neighbouring tokens ({', '.join(mixers)}) and the slice holds no BOS after "
                      "its first token to test it on; raise audit.tokens", "mixers": mixers})
    model.eval()
    worst, offender = 0.0, None
    for b in bos:
        start = max(0, b - seq_len // 2)
        row = np.asarray(tokens[start: start + seq_len], dtype=np.int64)
        k = b - start
        changed = rewrite_before(row, k, vocab_size)
        x = torch.from_numpy(np.stack([row, changed])).to(device)
        emb = model.embed(x).float()
        delta = float((emb[0, k:] - emb[1, k:]).abs().max())
        worst = max(worst, delta)
        if delta > tolerance and offender is None:
            offender = (b, delta)
    if offender:
        reason = (f"{' and '.join(mixers)} carry the previous document into the BOS at {offender[0]}: its embedding "
                  f"moved by {offender[1]:.3g} when only earlier tokens changed")
    else:
        reason = f"{' and '.join(mixers)}: {len(bos)} BOS positions see nothing of the previous document"
    return CheckResult("bos_isolation", offender is None,
                       {"reason": reason, "mixers": mixers, "max_change": worst, "tolerance": tolerance})


def promised_targets(eval_cfg: EvalConfig, n_tokens: int) -> tuple[int, int]:
    """[first, end) of the targets an evaluation of n_tokens scores: all of 1 .. n-1 with a sliding stride; whole
    windows only in the standard evaluation (its tail is dropped by definition)."""
    L = eval_cfg.seq_len
    if eval_cfg.stride and eval_cfg.stride < L:
        return 1, n_tokens
    return 1, 1 + ((n_tokens - 1) // L) * L


def plan_problem(windows: Sequence[Window], n_tokens: int, first: int, end: int) -> Optional[str]:
    """What is wrong with a plan over n_tokens that must score targets [first, end) once each, or None."""
    times = np.zeros(n_tokens + 1, dtype=np.int64)
    for w in windows:
        if w.start < 0 or w.end_target > n_tokens:
            return f"a window reads past the stream (start {w.start}, last target {w.end_target - 1})"
        times[w.first_target: w.end_target] += 1
    again = np.flatnonzero(times > 1)
    if again.size:
        return f"{again.size} targets scored more than once (first: target {int(again[0])})"
    never = np.flatnonzero(times[first:end] == 0) + first
    if never.size:
        return f"{never.size} targets never scored (first: target {int(never[0])})"
    outside = np.concatenate([np.flatnonzero(times[:first]), np.flatnonzero(times[end:]) + end])
    if outside.size:
        return f"{outside.size} targets outside [{first}, {end}) scored (first: target {int(outside[0])})"
    return None


def check_window_plan(eval_cfg: EvalConfig, n_tokens: int,
                      planner: Callable[[EvalConfig, int], list[Window]] = plan_for) -> CheckResult:
    """Every promised target scored exactly once, on the slice's length and on every length from one window to one
    window and two strides (where the last partial window falls at each offset)."""
    L = eval_cfg.seq_len
    stride = eval_cfg.stride if eval_cfg.stride and eval_cfg.stride < L else L
    lengths = sorted({n_tokens, *range(L + 1, L + 2 * stride + 2)})
    for n in lengths:
        first, end = promised_targets(eval_cfg, n)
        problem = plan_problem(planner(eval_cfg, n), n, first, end)
        if problem:
            return CheckResult("window_plan", False, {
                "reason": f"the plan over {n:,} tokens (seq_len {L}, stride {stride}): {problem}",
                "tokens": n, "lengths_checked": len(lengths)})
    return CheckResult("window_plan", True, {
        "reason": f"{len(lengths)} stream lengths: every target scored exactly once, the tail included",
        "lengths_checked": len(lengths)})


def check_caseops_bytes(tokens: np.ndarray, counts: Optional[np.ndarray], evaluation: Evaluation,
                        windows: Sequence[Window], tokenizer: Any = None) -> Optional[CheckResult]:
    """On data with a byte sidecar: operators and BOS bill 0, the evaluation billed the sidecar, and each whole
    document bills its decoded original text's UTF-8 bytes (with the tokenizer)."""
    if counts is None:
        return None
    tokens = np.asarray(tokens, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    first, end = windows[0].first_target, windows[-1].end_target
    problems = []
    operators = caseops_operator_ids(tokenizer) if tokenizer is not None else []
    special = np.isin(tokens, [BOS_ID, *operators])
    if len(operators) == len(caseops.OPERATORS):  # an operator right after ESC is literal text: it bills its bytes
        escape = operators[caseops.OPERATORS.index(caseops.ESC)]
        special[1:] &= tokens[:-1] != escape
    billed_specials = int(counts[special].sum())
    if billed_specials:
        problems.append(f"BOS and the CaseOps operators bill {billed_specials} bytes (they stand for none)")
    sidecar_bytes = int(counts[first:end].sum())
    billed = int(evaluation.result.bytes)
    if billed != sidecar_bytes:
        problems.append(f"the evaluation billed {billed:,} bytes, the sidecar holds {sidecar_bytes:,} for its targets")
    documents = differing = 0
    billed_docs = text_docs = 0
    if tokenizer is not None:
        bos = np.flatnonzero(tokens == BOS_ID)
        for a, b in zip(bos[:-1], bos[1:]):  # whole documents only: the slice may cut the last one
            documents += 1
            try:
                expected = len(caseops.decode(tokenizer.decode(tokens[a + 1:b].tolist())).encode("utf-8"))
            except (caseops.CaseOpsError, ValueError):
                expected = 0
            got = int(counts[a:b].sum())
            differing += got != expected
            billed_docs, text_docs = billed_docs + got, text_docs + expected
        # The text decoded from tokens is the tokenizer-normalized one (nmt_nfkc folds whitespace runs), so a
        # document may honestly bill a few bytes more than it decodes to; judged is the total, within
        # CASEOPS_TEXT_TOLERANCE (an estimate: FineWeb's whitespace runs are well under 1% of its bytes).
        drift = abs(billed_docs - text_docs) / max(text_docs, 1)
        if drift > CASEOPS_TEXT_TOLERANCE:
            problems.append(f"whole documents bill {billed_docs:,} bytes, their decoded text holds {text_docs:,} "
                            f"({drift:.1%} apart, more than the {CASEOPS_TEXT_TOLERANCE:.0%} normalization allows)")
    passed = not problems
    reason = problems[0] if problems else (
        f"{billed:,} bytes billed, as the sidecar says; BOS and operators 0"
        + (" (no tokenizer given: documents not compared with their text)" if tokenizer is None else
           " (no whole document in the slice: none compared with its text; raise audit.tokens)" if documents == 0 else
           f"; {documents} whole documents bill {billed_docs:,} bytes, their decoded text {text_docs:,} "
           f"({documents - differing} exactly)"))
    return CheckResult("caseops_bytes", passed, {
        "reason": reason, "billed_bytes": billed, "sidecar_bytes": sidecar_bytes, "special_bytes": billed_specials,
        "documents_compared": documents, "documents_differing": differing, "documents_billed_bytes": billed_docs,
        "documents_text_bytes": text_docs})
