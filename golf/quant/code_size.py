"""code_bytes, defined once: the UTF-8 size of the golf source files that loading and evaluating an artifact needs.

The challenge counts the code of a submission towards its 16,000,000 bytes. For golf that is the files imported by
`golf.evaluate.artifact_eval.evaluate_artifact` (the same function every run scores its artifact with): the model,
the artifact reader and dequantizer, the bpb evaluation and the shard and tokenizer readers. A test copies exactly
these files into an empty folder and scores an artifact from there, so the list cannot silently miss one.
"""

from __future__ import annotations

from pathlib import Path

from golf import REPO_ROOT

ARTIFACT_CODE_FILES = (
    "golf/__init__.py",
    "golf/errors.py",
    "golf/atomic.py",
    "golf/problems.py",  # the config modules' checks
    "golf/collectives.py",  # ranks and reductions: evaluation splits windows among them
    "golf/model/__init__.py",
    "golf/model/config.py",
    "golf/model/gpt.py",
    "golf/model/names.py",
    "golf/model/attention.py",  # the record stack's options, imported by gpt.py
    "golf/model/embeddings.py",
    "golf/model/mlp.py",
    "golf/model/sharing.py",
    "golf/quant/__init__.py",
    "golf/quant/config.py",
    "golf/quant/quantize.py",
    "golf/quant/compressors.py",
    "golf/quant/encoders.py",
    "golf/quant/artifact.py",
    "golf/data/__init__.py",
    "golf/data/shards.py",
    "golf/data/tokenizer.py",
    "golf/evaluate/__init__.py",
    "golf/evaluate/bpb.py",
    "golf/evaluate/windows.py",
    "golf/evaluate/artifact_eval.py",
)


# With test-time training the evaluation also needs the TTT engine (golf.evaluate.evaluation.evaluate_model).
TTT_CODE_FILES = (
    "golf/evaluate/config.py",
    "golf/evaluate/ledger.py",
    "golf/evaluate/evaluation.py",
    "golf/evaluate/ttt/__init__.py",
    "golf/evaluate/ttt/config.py",
    "golf/evaluate/ttt/engine.py",
    "golf/evaluate/ttt/params.py",
    "golf/evaluate/ttt/schedule.py",
    "golf/evaluate/ttt/eb_adaptive.py",
    "golf/evaluate/ttt/error_guided.py",
    "golf/evaluate/ttt/lora.py",
)


def code_files(ttt: bool = False) -> tuple[str, ...]:
    return ARTIFACT_CODE_FILES + (TTT_CODE_FILES if ttt else ())


def code_bytes(files: tuple[str, ...] = ARTIFACT_CODE_FILES, root: Path = REPO_ROOT) -> int:
    return sum(len((root / f).read_text(encoding="utf-8").encode("utf-8")) for f in files)


ARTIFACT_LIMIT_BYTES = 16_000_000


def size_accounting(model_bytes: int, ttt: bool = False) -> dict:
    """The metrics.json size keys: artifact_bytes = model_bytes + code_bytes against the 16,000,000-byte limit;
    the TTT engine's files count when the evaluation adapts (ttt.protocol != none)."""
    files = code_files(ttt)
    code = code_bytes(files)
    return {
        "artifact_bytes": model_bytes + code,
        "model_bytes": model_bytes,
        "code_bytes": code,
        "code_files": list(files),
        "artifact_limit_bytes": ARTIFACT_LIMIT_BYTES,
    }
