"""Evaluation settings shared by every evaluation mode."""

from dataclasses import dataclass


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
