"""code_bytes, defined once: the UTF-8 size of the golf source files that loading and evaluating an artifact needs.

The challenge counts the code of a submission towards its 16,000,000 bytes. For golf that is the files imported by
`golf.evaluate.artifact_eval.evaluate_artifact` (the same function every run scores its artifact with): the model,
the artifact reader and dequantizer, the bpb evaluation and the shard and tokenizer readers. A test copies exactly
these files into an empty folder and scores an artifact from there, so the list cannot silently miss one.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from golf import REPO_ROOT

if TYPE_CHECKING:
    from golf.evaluate.ttt.config import TTTConfig

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
    "golf/model/parallel.py",
    "golf/model/attention.py",  # the record stack's options, imported by gpt.py
    "golf/model/embeddings.py",
    "golf/model/mlp.py",
    "golf/model/sharing.py",
    "golf/quant/__init__.py",
    "golf/quant/config.py",
    "golf/quant/quantize.py",
    "golf/quant/compressors.py",
    "golf/quant/lrzip.py",  # pergroup's lrzip streams
    "golf/quant/grouping.py",  # where the payload puts each tensor; pergroup's transposes and row orders
    "golf/quant/lqer.py",  # LQER's factors, which the loader adds to the matrices that have them
    "golf/quant/lqer_layout.py",
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


# With test-time training the evaluation also needs the TTT engine and the chosen method: the golf modules that
# evaluate_model's module and the method's module import, followed import by import (an import inside a function
# counts too: that is how evaluate_model reaches the engine), beyond the files above. The registry finds a method by
# importing the modules of golf/evaluate/ttt/methods/, so only the chosen one needs to be there.
TTT_ENTRY = "golf/evaluate/evaluation.py"
TTT_METHODS_DIR = "golf/evaluate/ttt/methods"


def _golf_imports(source: str, package: str) -> set[str]:
    """The golf modules `source` imports (`package`: the package its relative imports start from), with
    `from X import Y` as both X and X.Y (Y may be a submodule); imports under `if TYPE_CHECKING:` never run and are
    left out."""
    found: set[str] = set()
    tree = ast.parse(source)
    skip = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
            for inner in ast.walk(node)}
    parts = package.split(".")
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package of `module`
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "golf" or name.startswith("golf.")}


def _module_file(name: str, root: Path) -> Optional[str]:
    path = name.replace(".", "/")
    for candidate in (f"{path}.py", f"{path}/__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None  # a name inside a module (from X import function)


def imported_files(starts: tuple[str, ...], root: Path = REPO_ROOT) -> list[str]:
    """`starts` and every golf source file they import, directly or not, with the __init__.py of each package on
    the way, in the order found."""
    files: list[str] = []
    todo = list(starts)
    while todo:
        file = todo.pop(0)
        if file in files:
            continue
        files.append(file)
        parts = Path(file).with_suffix("").parts[:-1]  # the package holding this file
        names = _golf_imports((root / file).read_text(encoding="utf-8"), ".".join(parts))
        names |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}  # it and the packages above it
        todo += sorted(f for f in (_module_file(n, root) for n in names) if f is not None and f not in files)
    return files


def ttt_code_files(method: str, root: Path = REPO_ROOT) -> tuple[str, ...]:
    """The files TTT with `method` adds to ARTIFACT_CODE_FILES: the engine's and the method's, as imported."""
    module = f"{TTT_METHODS_DIR}/{method}.py"
    starts = (TTT_ENTRY, module) if (root / module).is_file() else (TTT_ENTRY,)
    return tuple(f for f in imported_files(starts, root) if f not in ARTIFACT_CODE_FILES)


def code_files(ttt_method: Optional[str] = None) -> tuple[str, ...]:
    """The files counted in code_bytes; with ttt_method (the run adapts: ttt.protocol != none), TTT's too."""
    return ARTIFACT_CODE_FILES + (ttt_code_files(ttt_method) if ttt_method is not None else ())


def code_bytes(files: tuple[str, ...] = ARTIFACT_CODE_FILES, root: Path = REPO_ROOT) -> int:
    return sum(len((root / f).read_text(encoding="utf-8").encode("utf-8")) for f in files)


ARTIFACT_LIMIT_BYTES = 16_000_000


def size_accounting(model_bytes: int, ttt: Optional["TTTConfig"] = None) -> dict:
    """The metrics.json size keys: artifact_bytes = model_bytes + code_bytes against the 16,000,000-byte limit;
    ttt: the run's TTT settings, whose engine and method count when the evaluation adapts (ttt.protocol != none)."""
    if isinstance(ttt, bool):  # the old spelling said only whether TTT ran, not which method's files count
        raise TypeError("size_accounting takes the run's TTT settings (cfg.ttt), not a bool")
    files = code_files(None if ttt is None or ttt.protocol == "none" else ttt.method)
    code = code_bytes(files)
    return {
        "artifact_bytes": model_bytes + code,
        "model_bytes": model_bytes,
        "code_bytes": code,
        "code_files": list(files),
        "artifact_limit_bytes": ARTIFACT_LIMIT_BYTES,
    }
