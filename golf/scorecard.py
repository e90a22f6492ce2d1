"""The table a person reads at the end of a run, built from metrics.json alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from golf.logs import ensure_terminal, get_logger

SCORECARD_LOG = get_logger("golf.scorecard")  # made at import, so hydra/job_logging=disabled silences it too
COMPRESSOR_LABELS = {"zlib_9": "zlib -9", "zstd_19": "zstd -19", "xz_9": "xz -9"}


def _num(value: Any, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else format(value, fmt) + unit


def ttt_delta_phrase(delta: float) -> str:
    """How TTT moved the bpb, in words that cannot be misread: '0.0180 bpb better than' for a negative delta (TTT
    lowered the bpb), '0.1998 bpb worse than' for a positive one."""
    if delta == 0:
        return "exactly as good as"
    return f"{abs(delta):.4f} bpb {'better' if delta < 0 else 'worse'} than"


def _headline_source(m: dict[str, Any]) -> str:
    if m.get("ttt_val_bpb") is not None:
        return "score-first TTT on the artifact as loaded from disk"
    if m.get("sliding_val_bpb") is not None:
        return "sliding windows on the artifact as loaded from disk"
    return "the artifact as loaded from disk"


def scorecard(m: dict[str, Any], run_dir: Path | None = None) -> str:
    status = str(m.get("status"))
    over = f"   <-- OVER THE {m.get('artifact_limit_bytes', 0):,}-BYTE LIMIT: not a valid entry"
    rows: list[tuple[str, str]] = [("status", status + (over if status == "over_budget" else ""))]
    rows.append(("val_bpb", _num(m.get("val_bpb"), ".4f") + f"   [{_headline_source(m)}]"))
    if m.get("pre_quant_val_bpb") is not None:
        rows.append(("pre-quant val_bpb", f"{m['pre_quant_val_bpb']:.4f}   [trained weights, in memory]"))
    if m.get("quant_val_bpb") is not None:
        rows.append(("quant val_bpb", f"{m['quant_val_bpb']:.4f}   [artifact, standard evaluation]"))
    if m.get("quant_gap_bpb") is not None:
        rows.append(("quantization gap", f"{m['quant_gap_bpb']:+.4f} bpb"))
    if m.get("sliding_val_bpb") is not None:
        rows.append(("sliding val_bpb", f"{m['sliding_val_bpb']:.4f}"))
    if m.get("ttt_val_bpb") is not None:
        rows.append(("TTT val_bpb", f"{m['ttt_val_bpb']:.4f}   ({_num(m.get('ttt_time_s'), '.1f', ' s')} of TTT)"))
        delta = m.get("ttt_delta_bpb", m.get("ttt_gain_bpb"))  # ttt_gain_bpb: its name before this release
        if delta is not None:
            without = f" ({m['no_ttt_val_bpb']:.4f})" if m.get("no_ttt_val_bpb") is not None else ""
            rows.append(("TTT delta", f"{delta:+.4f} bpb   ({ttt_delta_phrase(delta)} the same windows without TTT"
                                      f"{without}; negative = TTT helped)"))
    illegal = (m.get("diagnostics") or {}).get("adapt_first_bpb_ILLEGAL")
    if illegal is not None:
        rows.append(("ILLEGAL TTT bpb", f"{illegal:.4f}   <-- adapted before scoring: NOT a score, never val_bpb"))
    if "compliant" in m:
        rows.append(("audit", "PASS (every check)" if m["compliant"] else "FAIL   <-- see compliance.json"))
        if m.get("audit_time_judged") is False and m.get("audit_time_budget_s") is not None:
            rows.append(("eval time budget", f"{m['audit_time_budget_s']:.0f} s, reported, not judged: the challenge's "
                                             f"budget is for 8xH100 (compliance.json, eval_time)"))
    if m.get("artifact_bytes") is not None:
        rows.append(("artifact", f"{m['artifact_bytes']:,} bytes = {m['model_bytes']:,} model + {m['code_bytes']:,} "
                                 f"code, of {m['artifact_limit_bytes']:,} ({m['artifact_bytes'] / m['artifact_limit_bytes']:.1%})"))
    if m.get("code_bytes_submission") is not None:  # what the challenge counts; artifact (above) decides the status
        rows.append(("submission size", f"{m['model_bytes'] + m['code_bytes_submission']:,} bytes = "
                                        f"{m['model_bytes']:,} model + {m['code_bytes_submission']:,} train_gpt.py "
                                        f"(golf.submit's self-contained script)"))
    if m.get("bits_per_weight") is not None:
        rows.append(("bits per weight", f"{m['bits_per_weight']:.3f}"))
    rows += [
        ("val_loss (nats/token)", _num(m.get("val_loss"), ".4f")),
        ("steps", _num(m.get("steps"), ",")),
        ("train tokens", _num(m.get("train_tokens"), ",")),
        ("train time", _num(m.get("train_time_s"), ".1f", " s")),
        ("train tokens/s", _num(m.get("train_tokens_per_s"), ",.0f")),
        ("eval time", _num(m.get("eval_time_s"), ".1f", " s")
         + (f"   ({m['eval_tokens']:,} tokens, {m['eval_bytes']:,} bytes)" if "eval_tokens" in m else "")),
    ]
    if m.get("model_params") is not None:
        rows.append(("parameters", f"{m['model_params']:,}"))
    compressors = (m.get("diagnostics") or {}).get("compressor_bpb", {})
    val_bpb = m.get("val_bpb")
    for name, bpb in compressors.items():
        margin = f"   (model better by {bpb - val_bpb:.3f})" if val_bpb is not None and val_bpb < bpb else (
            "   (model NOT better)" if val_bpb is not None else "")
        rows.append((f"{COMPRESSOR_LABELS.get(name, name)} on the same bytes", f"{bpb:.4f}{margin}"))
    if m.get("error"):
        rows.append(("error", str(m["error"])))
    width = max(len(k) for k, _ in rows)
    title = "golf scorecard" + (f"  {run_dir}" if run_dir else "")
    lines = [title, "-" * len(title)] + [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def show_scorecard(m: dict[str, Any], run_dir: Path | None = None) -> None:
    """The scorecard on the terminal, through logging like every golf message (a parallel job's lines carry its
    number)."""
    ensure_terminal()
    SCORECARD_LOG.info(scorecard(m, run_dir))
