"""Test-time training settings: one schema for every option of the `ttt` group (conf/ttt/*.yaml)."""

from dataclasses import dataclass, field

TTT_PROTOCOLS = ("none", "score_first", "adapt_first")  # adapt_first is ILLEGAL: it exists to show the audit failing
TTT_METHODS = ("full", "eb_adaptive", "lora", "error_guided")
TTT_OPTIMIZERS = ("sgd", "adamw")
TTT_SCHEDULES = ("cosine_chunks", "cosine_global", "constant")
TTT_PARAMS = ("all", "mlp", "attn", "norms")
LORA_TARGETS = ("attn", "mlp")


@dataclass
class TTTConfig:
    name: str = "none"
    protocol: str = "none"  # score_first: score chunk c with weights adapted on chunks < c, then adapt on c
    method: str = "full"  # full | eb_adaptive | lora | error_guided
    optimizer: str = "sgd"
    lr: float = 0.002
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    weight_decay: float = 0.0
    epochs: int = 3  # passes over each chunk
    chunk_tokens: int = 32768
    batch_seqs: int = 32  # sequences of eval.seq_len per adaptation step
    grad_clip: float = 1.0  # 0 = off
    schedule: str = "cosine_chunks"  # cosine_chunks: lr * 0.5 * (1 + cos(pi * c / (n - 1))) by chunk
    freeze: int = 0  # the first `freeze` blocks stay fixed
    freeze_embeddings: bool = False  # token embedding (and tied head), untied head, bigram table stay fixed
    layer_lr_mult: float = 1.0  # lr multiplier of the last block, ramping linearly from 1.0 at the first block
    params: str = "all"  # all | mlp | attn | norms: which block tensors adapt
    eb_microbatches: int = 4  # eb_adaptive: micro-batches per step whose gradients estimate each block's SNR
    eb_prior: float = 1.0  # eb_adaptive: prior strength; scale_b = snr_b / (snr_b + eb_prior)
    lora_rank: int = 8
    lora_targets: list[str] = field(default_factory=lambda: ["attn", "mlp"])
    error_top_frac: float = 0.1  # error_guided: the share of highest-loss tokens of a batch that the loss is put on
