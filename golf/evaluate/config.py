"""Evaluation settings shared by every evaluation mode, and their checks. No torch here."""

from dataclasses import dataclass
from typing import Any

from golf.problems import Problems


@dataclass
class EvalConfig:
    name: str = "standard"
    seq_len: int = "${train.seq_len}"  # type: ignore[assignment]  # resolved by OmegaConf
    stride: int = 0  # 0: standard (windows side by side); 1..seq_len-1: sliding windows, each scoring its last `stride`
    batch_seqs: int = 32  # sequences per forward pass; memory grows with this, never with the validation set
    max_tokens: int = 0  # cap the validation tokens for quick looks; 0 = the whole set (the only legal score)
    save_token_nll: bool = False  # write token_nll.npy and token_bytes.npy (float64, validation order)
    compressor_baselines: bool = True  # measure zlib -9, zstd -19 and xz -9 on the same validation bytes
    diverge_bpb: float = 10.0  # a headline bpb above this (or not finite) gives status "diverged" (a TTT lr too high)
    budget_s: float = 600.0  # the challenge's evaluation budget (on 8xH100); the time spent is reported against it


def eval_problems(ev: EvalConfig) -> list[tuple[str, Any, str]]:
    p = Problems("eval.")
    p.at_least("seq_len", ev.seq_len, 1)
    p.at_least("batch_seqs", ev.batch_seqs, 1)
    p.need(0 <= ev.stride < ev.seq_len, "stride", ev.stride,
           f"0 (standard) or 1..{ev.seq_len - 1} (sliding; below eval.seq_len={ev.seq_len})")
    p.at_least("budget_s", ev.budget_s, 0.0)
    p.need(ev.diverge_bpb > 0, "diverge_bpb", ev.diverge_bpb, "a number > 0 (inf never calls a run diverged)")
    p.at_least("max_tokens", ev.max_tokens, 0)
    p.need(ev.max_tokens == 0 or ev.max_tokens > ev.seq_len, "max_tokens", ev.max_tokens,
           f"0 (the whole validation set) or more than eval.seq_len={ev.seq_len}")
    return p
