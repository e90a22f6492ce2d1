"""Test-time training settings. Only `ttt=none` runs so far; the score-first engine fills in the rest."""

from dataclasses import dataclass

TTT_PROTOCOLS = ("none",)
TTT_OPTIMIZERS = ("sgd", "adamw")


@dataclass
class TTTConfig:
    name: str = "none"
    protocol: str = "none"
    optimizer: str = "sgd"
    lr: float = 0.002
    momentum: float = 0.9
    epochs: int = 3
    chunk_tokens: int = 32768
    batch_seqs: int = 32
    grad_clip: float = 1.0
    freeze: int = 0  # the first `freeze` blocks stay fixed during adaptation
