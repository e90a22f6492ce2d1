"""What the tests share (imported by name: `from testkit import golf_command`). Not in conftest.py: tests/parity has
a conftest.py of its own, and two modules named conftest cannot both be imported by name."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from golf import CONF_DIR, REPO_ROOT
from golf.quant.artifact import ArtifactError, load_artifact

WORDS = (
    "the of and to in a is that for it as was with be by on not he i this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no what up out them into more some time could "
    "king queen lord night day love death blood crown sword heart speak know think thou thee thy hath doth"
).split()


def write_text_corpus(root: Path, n_files: int = 60, words_per_file: int = 900, seed: int = 0) -> Path:
    """A folder of English-like text files whose word statistics a small model can learn."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        words, prev = [], rng.choice(WORDS)
        for _ in range(words_per_file):
            # a first-order chain: each word strongly prefers a few successors, so there is something to learn
            prev = WORDS[(WORDS.index(prev) * 7 + rng.choice((1, 1, 2, 3))) % len(WORDS)] if rng.random() < 0.8 \
                else rng.choice(WORDS)
            words.append(prev)
        lines = [" ".join(words[j:j + 12]).capitalize() + "." for j in range(0, len(words), 12)]
        (root / f"doc_{i:03d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def golf_command(module: str, *args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def all_options() -> list[tuple[str, str]]:
    return sorted((p.parent.name, p.stem) for p in CONF_DIR.glob("*/*.yaml") if p.parent.name != "local")


def one_torch_thread():
    """Tiny models run faster on one thread: more only adds synchronization (on a busy 2-core machine, a lot of it).
    Test modules turn it into an autouse fixture."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def randomized_model(cfg, vocab: int, seed: int = 0):
    """A GPT with every parameter perturbed: zero-initialized projections would hide what a model option does."""
    from golf.model.gpt import GPT

    torch.manual_seed(seed)
    model = GPT(cfg, vocab)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def two_document_stream(vocab: int, batch: int = 2, length: int = 24, seed: int = 1) -> torch.Tensor:
    """Token ids with a BOS at position 0 and a second document starting at position 9."""
    from golf.data.tokenizer import BOS_ID

    ids = torch.randint(4, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = BOS_ID
    ids[:, 9] = BOS_ID
    return ids


def refusal(tmp_path: Path, data: bytes) -> str:
    """The ArtifactError message of loading `data` from tmp_path/bad.golf (the test fails if it loads)."""
    path = tmp_path / "bad.golf"
    path.write_bytes(data)
    with pytest.raises(ArtifactError) as info:
        load_artifact(path)
    return str(info.value)


def names_file_and_reason(message: str, tmp_path: Path, reason: str) -> bool:
    return str(tmp_path / "bad.golf") in message and re.search(reason, message) is not None
