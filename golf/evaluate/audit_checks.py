"""The behavioural compliance audit: rerun the evaluation on a validation slice and check C1-C4 and the budgets.

The checks watch what the evaluation does rather than what it says it does. C1 changes the future and requires the
past's scores not to move, which catches adapt-before-score, batch leaks and any other look-ahead whatever the ledger
claims; C2 recomputes the distribution over the whole vocabulary; C3 and C4 read the score ledger the evaluation kept.
Every run goes through evaluate_model, the path that produces golf's scores, on a fresh copy of the model, with the
same eval and ttt settings as the scored run.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.errors import ConfigError
from golf.evaluate.audit_calibration import check_calibration
from golf.evaluate.audit_config import AuditConfig
from golf.evaluate.config import EvalConfig
from golf.evaluate.diagnostics import adaptation_size, loss_shares, memorization_gap
from golf.evaluate.evaluation import Evaluation, evaluate_model, plan_for
from golf.evaluate.ledger import ScoreLedger
from golf.evaluate.audit_result import CheckResult
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.windows import Window
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES, size_accounting

SUM_TOLERANCE = 1e-5  # C2: |sum of probabilities - 1|
NLL_TOLERANCE = 1e-4  # C2: |scorer NLL - recomputed NLL| in nats (fp32 logits; batches of another shape may differ)
C2_BATCHES = 3  # C2: batches of the plan sampled (first, middle, last)


@dataclass
class AuditRun:
    evaluation: Evaluation
    model: nn.Module  # after the run: adapted in place when TTT ran
    time_s: float  # wall time of evaluate_model, TTT included


def slice_array(tokens: np.ndarray, byte_counts: Optional[np.ndarray]) -> TokenArray:
    """The audit's slice as the evaluation reads it: with its byte sidecar's counts (CaseOps data), if it has one."""
    return TokenArray([tokens], byte_counts=None if byte_counts is None else TokenArray([byte_counts]))


def run_once(make_model: Callable[[], nn.Module], tokens: np.ndarray, tables: ByteTables, eval_cfg: EvalConfig,
             ttt_cfg: TTTConfig, device: torch.device, autocast, log: Callable[[str], None],
             byte_counts: Optional[np.ndarray] = None) -> AuditRun:
    """One full evaluation of `tokens` on a fresh model, with the RNG pinned so that runs differ only by input."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        model = make_model()
        start = time.perf_counter()
        evaluation = evaluate_model(model, slice_array(tokens, byte_counts), tables, eval_cfg, ttt_cfg, device,
                                    autocast, log)
        return AuditRun(evaluation, model, time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------------------
# C1: causality by perturbation


def chunk_edges(windows: Sequence[Window], ttt_cfg: TTTConfig, ttt_chunks: Sequence[dict] = ()) -> list[int]:
    """Targets where the scorer starts a new unit of work: without TTT each window; with TTT each chunk (targets
    1 + k * chunk_tokens), where the first window it owns starts scoring, and where the engine's own chunk records
    (TTTResult.chunks, "first_target") say a chunk began."""
    if ttt_cfg.protocol == "none":
        return [w.first_target for w in windows[1:]]
    first, end = windows[0].first_target, windows[-1].end_target
    firsts = [w.first_target for w in windows]
    edges = {int(c["first_target"]) for c in ttt_chunks if isinstance(c, dict) and "first_target" in c}
    for edge in range(1 + ttt_cfg.chunk_tokens, end, ttt_cfg.chunk_tokens):
        i = bisect.bisect_left(firsts, edge)
        edges.update((edge, firsts[i] if i < len(firsts) else end))
    return sorted(e for e in edges if first < e < end)


def cut_points(edges: Sequence[int], first: int, end: int, count: int) -> list[int]:
    """`count` values of t spread over the targets [first, end - 1): a chunk's first target (the rest of that chunk
    changes), a target inside a chunk, the last target before an edge (the whole next chunk changes), in turn."""
    spans = list(zip([first, *edges], [*edges, end]))
    kinds = [[lo for lo, _ in spans[1:]], [(lo + hi) // 2 for lo, hi in spans if hi - lo > 2],
             [hi - 1 for _, hi in spans[:-1]]]
    kinds = [k for k in kinds if k]
    picks: set[int] = set()
    for i, kind in enumerate(kinds):
        share = count // len(kinds) + (i < count % len(kinds))
        picks.update(kind[int((j + 0.5) * len(kind) / share)] for j in range(share))  # centred quantiles
    for t in np.linspace(first, end - 2, count).round().astype(int):  # few edges: fill with evenly spread targets
        if len(picks) >= count:
            break
        picks.add(int(t))
    valid = sorted(t for t in picks if first <= t <= end - 2)
    idx = np.linspace(0, len(valid) - 1, min(count, len(valid))).round().astype(int)
    return sorted({valid[i] for i in idx})


def perturbed(tokens: np.ndarray, t: int, vocab_size: int) -> np.ndarray:
    """A copy with every token after position t replaced by a different one (a fixed shift of the vocabulary)."""
    out = tokens.copy()
    out[t + 1:] = (out[t + 1:] + max(1, vocab_size // 2)) % vocab_size
    return out


def check_causality(reference: AuditRun, rerun: Callable[[np.ndarray], AuditRun], tokens: np.ndarray,
                    windows: Sequence[Window], ttt_cfg: TTTConfig, positions: int, tolerance: float,
                    vocab_size: int) -> CheckResult:
    """C1: the NLL of every target <= t is the same (within tolerance) whatever tokens come after t."""
    first, end = windows[0].first_target, windows[-1].end_target
    ref = reference.evaluation.result.token_nll
    cuts = []
    offender: Optional[tuple[int, int, float]] = None
    ttt_chunks = getattr(reference.evaluation.ttt, "chunks", None)
    ttt_chunks = ttt_chunks if isinstance(ttt_chunks, (list, tuple)) else ()
    for t in cut_points(chunk_edges(windows, ttt_cfg, ttt_chunks), first, end, positions):
        nll = rerun(perturbed(tokens, t, vocab_size)).evaluation.result.token_nll
        if len(nll) != len(ref):  # the plan depends only on the length: a different count is itself a violation
            nll = np.full(len(ref), np.nan)
        k = t - first + 1
        change = np.abs(nll[:k] - ref[:k])
        bad = np.flatnonzero(~(change <= tolerance))  # NaN counts as a change
        after = np.abs(nll[k:] - ref[k:])
        cuts.append({"t": t, "max_change": float(np.max(change)), "first_offending_target":
                     int(first + bad[0]) if bad.size else None,
                     "max_change_after_t": float(np.max(after)) if after.size else 0.0})
        if bad.size and offender is None:
            offender = (t, int(first + bad[0]), float(change[bad[0]]))
    worst = max((c["max_change"] for c in cuts), default=0.0)
    if offender:
        t, target, delta = offender
        reason = (f"changing the tokens after t={t} moved the score of target {target} by {delta:.3g} nats "
                  f"(tolerance {tolerance:g})")
    else:
        reason = f"{len(cuts)} cut points t: no score of a target <= t moved (max |dNLL| {worst:.3g})"
    return CheckResult("C1_causality", offender is None and bool(cuts),
                       {"reason": reason, "tolerance": tolerance, "max_change": worst, "cuts": cuts})


# ---------------------------------------------------------------------------------------------------------------
# C2: a normalized distribution over the whole vocabulary


@torch.no_grad()
def check_normalization(model: nn.Module, tokens: np.ndarray, tables: ByteTables, windows: Sequence[Window],
                        evaluation: Evaluation, batch_seqs: int, device: torch.device, autocast,
                        path_tolerance: float = NLL_TOLERANCE) -> CheckResult:
    """C2 on sampled batches of the plan: softmax of the logits sums to 1 over every token id; the model's scoring
    call and the evaluation's recorded NLL (where the unadapted weights scored) equal -log_softmax(logits)[target]."""
    model.eval()
    first = windows[0].first_target
    n_ids = len(tables.base_bytes)
    token_nll, scored_by = evaluation.result.token_nll, evaluation.ledger.scored_by
    if token_nll is not None and len(token_nll) != windows[-1].end_target - first:
        token_nll = None  # not aligned with the plan: C4 reports it
    worst_sum = worst_call = worst_path = 0.0
    compared = 0
    own_windows = getattr(evaluation.ttt, "scoring_windows", None)
    base_windows = getattr(evaluation.ttt, "base_windows", None)
    if own_windows is not None and base_windows:  # per-document TTT: each document's chunk 0, scored by the
        # artifact's weights (adapters at identity, before any phase), spread over the run; a false claim fails C2
        pick = np.linspace(0, len(base_windows) - 1, min(len(base_windows), 3 * batch_seqs)).round().astype(int)
        own_windows = [base_windows[k] for k in sorted(set(pick))]
    elif own_windows is not None:  # only those the unadapted weights scored, a few of them
        own_windows = [w for w in own_windows if (scored_by[w.first_target:w.end_target] == 0).any()][:3 * batch_seqs]
        base_windows = None
    n_batches = math.ceil(len(windows) / batch_seqs)
    for b in sorted(set(np.linspace(0, n_batches - 1, min(C2_BATCHES, n_batches)).round().astype(int))):
        group = windows[b * batch_seqs:(b + 1) * batch_seqs]
        rows = torch.from_numpy(np.stack([tokens[w.start:w.start + w.length + 1] for w in group])).to(device)
        x, y = rows[:, :-1], rows[:, 1:]
        with autocast():
            logits = model(x).float()
            scorer = model(x, y, reduction="none").double()
        if logits.shape[-1] < n_ids or not torch.isfinite(logits).all():
            return CheckResult("C2_normalization", False, {
                "reason": f"logits cover {logits.shape[-1]} of the {n_ids} token ids or are not finite",
                "logit_ids": int(logits.shape[-1]), "token_ids": n_ids})
        logp = torch.log_softmax(logits.double(), dim=-1)
        worst_sum = max(worst_sum, float((logp.exp().sum(-1) - 1).abs().max()))
        exact = -logp.gather(-1, y[..., None]).squeeze(-1)
        worst_call = max(worst_call, float(torch.nan_to_num((scorer - exact).abs(), nan=math.inf).max()))
        if own_windows is not None:  # the method scored with windows of its own: those are compared below
            continue
        for row, w in enumerate(group):
            lo = w.first_target - first
            mine = scored_by[w.first_target:w.end_target] == 0  # the evaluation scored these with these weights
            if token_nll is None or not mine.any():
                continue
            diff = np.abs(token_nll[lo:lo + w.scored] - exact[row, w.score_from:].cpu().numpy())[mine]
            worst_path = max(worst_path, float(np.nan_to_num(diff, nan=np.inf).max()))
            compared += int(mine.sum())
    for w in own_windows or []:  # per-document TTT (TTTResult.scoring_windows): each window alone, as it scored
        mine = np.ones(w.scored, dtype=bool) if base_windows else scored_by[w.first_target:w.end_target] == 0
        if token_nll is None or not mine.any():
            continue
        row = torch.from_numpy(tokens[w.start:w.start + w.length + 1].astype(np.int64)).to(device)[None]
        with autocast():
            exact = -torch.log_softmax(model(row[:, :-1]).double(), dim=-1)[0].gather(-1, row[0, 1:, None])[:, 0]
        lo = w.first_target - first
        diff = np.abs(token_nll[lo:lo + w.scored] - exact[w.score_from:].cpu().numpy())[mine]
        worst_path = max(worst_path, float(np.nan_to_num(diff, nan=np.inf).max()))
        compared += int(mine.sum())
    passed = worst_sum <= SUM_TOLERANCE and worst_call <= NLL_TOLERANCE and worst_path <= path_tolerance
    if passed:
        reason = (f"sums to 1 over all {n_ids} ids (max error {worst_sum:.2g}); scores match the recomputed "
                  f"-log p (max {max(worst_call, worst_path):.2g} nats)")
    elif worst_sum > SUM_TOLERANCE:
        reason = f"probabilities sum to 1 +/- {worst_sum:.3g}, beyond {SUM_TOLERANCE:g}"
    else:
        reason = (f"the scorer's NLL differs from -log_softmax over the whole vocabulary by "
                  f"{max(worst_call, worst_path):.3g} nats")
    return CheckResult("C2_normalization", passed, {
        "reason": reason, "max_sum_error": worst_sum, "max_scorer_call_error": worst_call,
        "max_evaluation_error": worst_path, "evaluation_targets_compared": compared, "token_ids": n_ids})


# ---------------------------------------------------------------------------------------------------------------
# C3, C4: from the ledger


def check_score_before_update(ledger: ScoreLedger) -> CheckResult:
    """C3: no target was scored by weights that had trained on it."""
    bad = np.flatnonzero(ledger.seen_by_scorer())
    first_bad = int(bad[0]) if bad.size else None
    versions = ledger.versions
    reason = (f"{bad.size} targets scored by weights that had trained on them (first: target {first_bad})"
              if bad.size else f"every target scored before any update that saw it (weight versions: {versions})")
    return CheckResult("C3_score_before_update", not bad.size, {
        "reason": reason, "offending_targets": int(bad.size), "first_offending_target": first_bad,
        "versions": versions})


def check_single_pass(evaluation: Evaluation, windows: Sequence[Window]) -> CheckResult:
    """C4: every target of the plan scored exactly once, none outside it, and the score counts exactly those."""
    first, end = windows[0].first_target, windows[-1].end_target
    times = evaluation.ledger.times_scored
    never = np.flatnonzero(times[first:end] == 0) + first
    again = np.flatnonzero(times[first:end] > 1) + first
    outside = np.concatenate([np.flatnonzero(times[:first]), np.flatnonzero(times[end:]) + end])
    result = evaluation.result
    counted = result.tokens == end - first and (result.token_nll is None or len(result.token_nll) == end - first)
    passed = not (never.size or again.size or outside.size) and counted
    if passed:
        reason = f"each of the {end - first:,} targets scored exactly once"
    elif again.size:
        reason = f"{again.size} targets scored more than once (first: target {int(again[0])})"
    elif never.size:
        reason = f"{never.size} targets never scored (first: target {int(never[0])})"
    elif outside.size:
        reason = f"{outside.size} targets outside the plan scored (first: target {int(outside[0])})"
    else:
        reason = f"the score counts {result.tokens} targets, the plan has {end - first}"
    return CheckResult("C4_single_pass", passed, {
        "reason": reason, "plan_targets": end - first, "score_targets": result.tokens, "never_scored": int(never.size),
        "scored_more_than_once": int(again.size), "scored_outside_plan": int(outside.size)})


# ---------------------------------------------------------------------------------------------------------------
# Protocol and budgets


def check_protocol(ttt_cfg: TTTConfig, evaluation: Evaluation) -> CheckResult:
    """An evaluation run under a protocol known to be illegal is never compliant, whatever else passes."""
    illegal = ttt_cfg.protocol == "adapt_first" or bool(getattr(evaluation.ttt, "illegal", False))
    reason = f"ttt.protocol={ttt_cfg.protocol} is " + ("ILLEGAL (adapts before scoring)" if illegal else "legal")
    return CheckResult("protocol", not illegal, {"reason": reason, "protocol": ttt_cfg.protocol})


def check_artifact_size(model_bytes: Optional[int], ttt: Optional[TTTConfig] = None) -> Optional[CheckResult]:
    if model_bytes is None:
        return None
    size = size_accounting(model_bytes, ttt)
    ok = size["artifact_bytes"] <= ARTIFACT_LIMIT_BYTES
    reason = (f"{size['artifact_bytes']:,} bytes ({model_bytes:,} model + {size['code_bytes']:,} code) "
              f"{'<=' if ok else '>'} {ARTIFACT_LIMIT_BYTES:,}")
    return CheckResult("artifact_bytes", ok, {"reason": reason, **{k: size[k] for k in (
        "artifact_bytes", "model_bytes", "code_bytes", "artifact_limit_bytes")}})


CHALLENGE_HARDWARE = "8xh100"  # the machine the challenge's evaluation budget (eval.budget_s, 600 s) is set for


def check_eval_time(eval_time_s: Optional[float], slice_time_s: float, slice_tokens: int, eval_cfg: EvalConfig,
                    audit_cfg: AuditConfig, hardware: str = CHALLENGE_HARDWARE) -> CheckResult:
    """The evaluation time against a budget. Judged (PASS/FAIL) only on the challenge's machine, against
    eval.budget_s * audit.time_factor. On any other hardware the challenge's budget says nothing about the method, so
    the time is reported against a declared budget (audit.time_budget_s) or else the scaled one, marked as such, and
    never fails the audit ("judged": false)."""
    if eval_time_s is not None:
        seconds, source = eval_time_s, "the scored run's evaluation time"
    else:
        seconds, source = slice_time_s, f"the audit's own run on its {slice_tokens:,}-token slice only"
    judged = hardware == CHALLENGE_HARDWARE
    if judged or audit_cfg.time_budget_s <= 0:
        allowed, kind = eval_cfg.budget_s * audit_cfg.time_factor, "eval.budget_s x audit.time_factor"
    else:
        allowed, kind = audit_cfg.time_budget_s, "audit.time_budget_s, declared for this hardware"
    within = seconds <= allowed
    reason = f"{seconds:.1f} s {'<=' if within else '>'} {allowed:.1f} s allowed ({source})"
    if not judged:
        reason = (f"not judged on hardware={hardware}: {seconds:.1f} s {'within' if within else 'over'} a budget of "
                  f"{allowed:.1f} s ({kind}; the challenge's {eval_cfg.budget_s:.0f} s is for hardware="
                  f"{CHALLENGE_HARDWARE}) ({source})")
    return CheckResult("eval_time", within or not judged, {
        "reason": reason, "seconds": seconds, "allowed_s": allowed, "source": source,
        "time_factor": audit_cfg.time_factor, "judged": judged, "within_budget": within, "hardware": hardware,
        "budget_kind": "challenge" if judged else ("declared" if kind.startswith("audit.time_budget_s") else "scaled")})


# ---------------------------------------------------------------------------------------------------------------


def run_audit(
    make_model: Callable[[], nn.Module],
    val: TokenArray,
    tables: ByteTables,
    eval_cfg: EvalConfig,
    ttt_cfg: TTTConfig,
    audit_cfg: AuditConfig,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    model_bytes: Optional[int] = None,
    eval_time_s: Optional[float] = None,
    log: Callable[[str], None] = print,
    hardware: str = CHALLENGE_HARDWARE,
    quant: Optional[dict] = None,
    calibration: Optional[dict] = None,
    tokenizer: Optional[object] = None,
) -> dict:
    """The compliance record (compliance.json): every check run on the first audit.tokens validation tokens with
    the scored run's eval and ttt settings; compliant only when every check that ran passed. `quant` (the artifact
    header's) and `calibration` (calibration.json beside it) judge GPTQ calibration against the training clock.
    The frontier's checks follow (golf/evaluate/audit_documents.py): documents kept apart, the window plan, CaseOps
    bytes (compared with the decoded text when `tokenizer`, the SentencePiece model, is given)."""
    start = time.perf_counter()
    eval_cfg = dataclasses.replace(eval_cfg, save_token_nll=True)
    tokens = val.read(0, min(audit_cfg.tokens, len(val)))
    sidecar = getattr(val, "byte_counts", None)  # a perturbed slice keeps the original text's byte counts
    counts = sidecar.read(0, len(tokens)) if sidecar is not None else None
    if len(tokens) <= eval_cfg.seq_len:
        raise ConfigError("audit.tokens", f"the audit slice has {len(tokens)} tokens, not more than one window of "
                          f"eval.seq_len={eval_cfg.seq_len}; raise audit.tokens (validation has {len(val)})")
    windows = plan_for(eval_cfg, len(tokens))
    log(f"audit: {len(tokens):,}-token slice, {len(windows)} windows (seq_len {eval_cfg.seq_len}, stride "
        f"{eval_cfg.stride or eval_cfg.seq_len}), ttt.protocol={ttt_cfg.protocol}")

    def rerun(perturbed_tokens: np.ndarray) -> AuditRun:
        return run_once(make_model, perturbed_tokens, tables, eval_cfg, ttt_cfg, device, autocast, lambda _: None,
                        counts)

    reference = run_once(make_model, tokens, tables, eval_cfg, ttt_cfg, device, autocast, log, counts)
    evaluation = reference.evaluation
    vocab_size = min(getattr(reference.model, "vocab_size", len(tables.base_bytes)), len(tables.base_bytes))
    checks = [
        check_protocol(ttt_cfg, evaluation),
        check_causality(reference, rerun, tokens, windows, ttt_cfg, audit_cfg.positions, audit_cfg.tolerance,
                        vocab_size),
        check_normalization(make_model(), tokens, tables, windows, evaluation, eval_cfg.batch_seqs, device, autocast,
                            max(NLL_TOLERANCE, audit_cfg.tolerance)),
        check_score_before_update(evaluation.ledger),
        check_single_pass(evaluation, windows),
        check_artifact_size(model_bytes, ttt_cfg),
        check_eval_time(eval_time_s, reference.time_s, len(tokens), eval_cfg, audit_cfg, hardware),
        check_calibration(quant, calibration) if quant is not None else None,
        *document_checks(reference, rerun, tokens, counts, windows, eval_cfg, ttt_cfg, audit_cfg, vocab_size, device,
                         make_model, tokenizer),
    ]
    checks = [c for c in checks if c is not None]
    warnings = slice_warnings(len(tokens), ttt_cfg)
    for warning in warnings:
        log(f"audit: WARNING: {warning}")
    compliant = all(c.passed for c in checks)
    log(f"audit: {'COMPLIANT' if compliant else 'NOT COMPLIANT'} ({sum(c.passed for c in checks)} of {len(checks)} "
        f"checks passed)")
    return {
        "compliant": compliant,
        "illegal_protocol": not checks[0].passed,
        "checks": {c.name: c.as_dict() for c in checks},
        "warnings": warnings,
        "slice_tokens": len(tokens),
        "slice_bpb": evaluation.result.val_bpb,  # of the slice only: not a score of the validation set
        "eval": {k: getattr(eval_cfg, k) for k in ("name", "seq_len", "stride", "batch_seqs", "budget_s")},
        "ttt": dataclasses.asdict(ttt_cfg),
        "audit": dataclasses.asdict(audit_cfg),
        "diagnostics": slice_diagnostics(reference, slice_array(tokens, counts), tables, windows, eval_cfg.batch_seqs,
                                         device, autocast),
        "time_s": time.perf_counter() - start,
    }


def slice_warnings(slice_tokens: int, ttt_cfg: TTTConfig) -> list[str]:
    """What the slice cannot show: with a single TTT chunk nothing is adapted before the last scoring."""
    if ttt_cfg.protocol != "none" and slice_tokens - 1 <= ttt_cfg.chunk_tokens:
        chunk = ttt_cfg.chunk_tokens
        return [f"the {slice_tokens:,}-token slice holds one TTT chunk (ttt.chunk_tokens={chunk:,}), so scoring "
                f"after adaptation is not exercised; set audit.tokens to at least {2 * chunk + 1:,}"]
    return []


def slice_diagnostics(reference: AuditRun, slice_: TokenArray, tables: ByteTables, windows: Sequence[Window],
                      batch_seqs: int, device: torch.device, autocast) -> dict:
    """Diagnostics of the audit's reference run (on the slice; none of them is a score)."""
    result, ttt = reference.evaluation.result, reference.evaluation.ttt
    out = {"loss_shares": loss_shares(result.token_nll)}
    if ttt is not None:
        if getattr(ttt, "initial_state", None) is not None:
            out["adaptation_size"] = adaptation_size(ttt.initial_state, reference.model)
        out["memorization_gap"] = memorization_gap(reference.model, slice_, tables, windows, batch_seqs,
                                                   device, autocast, result.val_bpb)
    return out


def verdict_table(record: dict) -> str:
    """One line per check, PASS/FAIL and the reason, then the verdict."""
    checks = record["checks"]
    width = max(len(name) for name in checks)
    lines = ["golf audit", "-" * 10]
    lines += [f"{name:<{width}}  {_mark(c)}  {c['reason']}" for name, c in checks.items()]
    verdict = "COMPLIANT" if record["compliant"] else "NOT COMPLIANT"
    lines.append(f"{'verdict':<{width}}  {verdict}" + ("   (illegal protocol)" if record["illegal_protocol"] else ""))
    lines += [f"WARNING: {w}" for w in record.get("warnings", [])]
    return "\n".join(lines)


def _mark(check: dict) -> str:
    """PASS / FAIL, or INFO for a check reported but not judged (the evaluation time off the challenge's hardware)."""
    if check.get("judged") is False:
        return "INFO"
    return "PASS" if check["passed"] else "FAIL"


def document_checks(reference: AuditRun, rerun: Callable[[np.ndarray], AuditRun], tokens: np.ndarray,
                    counts: Optional[np.ndarray], windows: Sequence[Window], eval_cfg: EvalConfig, ttt_cfg: TTTConfig,
                    audit_cfg: AuditConfig, vocab_size: int, device: torch.device,
                    make_model: Callable[[], nn.Module], tokenizer: Optional[object]) -> list[Optional[CheckResult]]:
    """The checks of issue 19's rules, each None where it does not apply (imported here: they build on this
    module's CheckResult and AuditRun)."""
    from golf.evaluate import audit_documents as docs

    return [
        docs.check_document_independence(reference, rerun, tokens, windows, ttt_cfg, audit_cfg.positions,
                                         audit_cfg.tolerance, vocab_size),
        docs.check_bos_isolation(make_model(), tokens, eval_cfg.seq_len, vocab_size, device),
        docs.check_window_plan(eval_cfg, len(tokens)),
        docs.check_caseops_bytes(tokens, counts, reference.evaluation, windows, tokenizer),
    ]
