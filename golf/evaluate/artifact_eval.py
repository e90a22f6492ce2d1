"""Score an artifact as loaded from disk: the only val_bpb golf reports as a score.

Everything this module imports counts towards code_bytes (golf/quant/code_size.py), so it stays small.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from golf.data.shards import TokenArray
from golf.data.tokenizer import byte_tables, load_tokenizer
from golf.evaluate.bpb import EvalResult
from golf.evaluate.windows import evaluate_standard
from golf.model.gpt import GPT, ModelConfig
from golf.quant.artifact import ArtifactError, LoadedArtifact, load_artifact


@dataclass
class ArtifactScore:
    result: EvalResult
    artifact: LoadedArtifact
    load_time_s: float


def load_model(artifact: LoadedArtifact, device: torch.device) -> GPT:
    """A freshly built model holding the artifact's (dequantized) weights; an artifact whose header and tensors do
    not make a golf model is refused, naming the file."""
    try:
        model = GPT(ModelConfig(**artifact.model), artifact.vocab_size)
        model.load_state_dict(artifact.state_dict, strict=True)
    except (TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArtifactError(f"{artifact.source}: its model config and tensors do not make a golf model "
                            f"({first})") from None
    return model.to(device)


def evaluate_artifact(
    path: str | Path,
    val_files: Sequence[str | Path],
    tokenizer_path: str | Path,
    seq_len: int,
    batch_seqs: int,
    device: torch.device,
    max_tokens: Optional[int] = None,
    save_token_nll: bool = False,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> ArtifactScore:
    start = time.perf_counter()
    artifact = load_artifact(path)
    model = load_model(artifact, device)
    load_time = time.perf_counter() - start
    tables = byte_tables(load_tokenizer(tokenizer_path, expected_vocab_size=artifact.vocab_size), artifact.vocab_size)
    val = TokenArray.from_files(val_files, max_tokens=max_tokens)
    result = evaluate_standard(model, val, tables, seq_len, batch_seqs, device, autocast, save_token_nll)
    return ArtifactScore(result, artifact, load_time)
