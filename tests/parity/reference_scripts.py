"""Load the challenge's train_gpt.py scripts (the baseline's, the records') as modules on a CPU, as test oracles.

The scripts are executed as they are (nothing of theirs is copied into golf): under a module name that is not
"__main__", so main() never runs; with the given environment variables visible while their Hyperparameters class
body runs (the scripts read their settings from the environment at import); with torch.compile as the identity
while they import (some compile at module level); and with stand-ins for the CUDA-only modules some records import
(flash_attn_interface: its flash_attn_func on top of SDPA). Everything is restored afterwards.

Self-extracting scripts (`import lzma as L, base64 as B` then `exec(L.decompress(B.b85decode("...")))`) are decoded
first: only their import lines of known decompressors run and the exec argument is evaluated; nothing else of the
wrapper is executed.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import itertools
import os
import sys
import types
from pathlib import Path
from typing import Iterator, Mapping

import torch
import torch.nn.functional as F

DECOMPRESSORS = ("lzma", "zlib", "bz2", "base64", "brotli", "gzip")
_COUNTER = itertools.count()


# --- decoding -----------------------------------------------------------------------------------------------------

def _exec_argument(tree: ast.Module) -> ast.expr | None:
    """The argument of a top-level exec(...) call, or None when the script is plain source."""
    for node in tree.body:
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "exec"
                and len(node.value.args) == 1):
            return node.value.args[0]
    return None


def decode_source(text: str, name: str = "<script>") -> str:
    """The Python source a script runs: the text itself, or what a self-extracting wrapper would exec."""
    tree = ast.parse(text, filename=name)
    arg = _exec_argument(tree)
    if arg is None:
        return text
    namespace: dict[str, object] = {"__builtins__": {}}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in DECOMPRESSORS:
                    raise ValueError(f"{name}: the self-extracting wrapper imports {alias.name!r}, "
                                     f"not one of the known decompressors {DECOMPRESSORS}")
                namespace[alias.asname or alias.name] = importlib.import_module(alias.name)
    decoded = eval(compile(ast.Expression(arg), name, "eval"), namespace)  # calls of the decompressors only
    return decoded.decode("utf-8") if isinstance(decoded, bytes) else str(decoded)


def script_path(path: Path) -> Path:
    """A record folder's script (a decoded copy beside it preferred), or the file itself."""
    if path.is_file():
        return path
    for candidate in ("train_gpt.decoded.py", "decoded_train_gpt.py", "train_gpt.py"):
        if (path / candidate).is_file():
            return path / candidate
    raise FileNotFoundError(f"no train_gpt.py in {path}")


# --- the stand-ins while a script imports ---------------------------------------------------------------------------

def flash_attn_func(q, k, v, softmax_scale=None, causal=False, **_unused):
    """FlashAttention's (B, T, H, D) interface on top of SDPA (equal sequence lengths: plain causal mask)."""
    heads, kv_heads = q.size(-2), k.size(-2)
    y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal,
                                       scale=softmax_scale, enable_gqa=heads != kv_heads)
    return y.transpose(1, 2)


def _flash_attn_varlen_func(*_args, **_kwargs):
    raise NotImplementedError("flash_attn_varlen_func has no CPU stand-in in golf's parity loader yet")


def _stub_modules() -> dict[str, types.ModuleType]:
    fa = types.ModuleType("flash_attn_interface")
    fa.flash_attn_func = flash_attn_func
    fa.flash_attn_varlen_func = _flash_attn_varlen_func
    return {"flash_attn_interface": fa}


def _identity_compile(fn=None, **_kwargs):
    return (lambda f: f) if fn is None else fn


@contextlib.contextmanager
def _import_environment(env: Mapping[str, object]) -> Iterator[None]:
    saved_env = dict(os.environ)
    saved_compile = torch.compile
    stubs = _stub_modules()
    saved_modules = {name: sys.modules.get(name) for name in stubs}
    try:
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            os.environ.pop(key, None)
        os.environ.update({k: str(v) for k, v in env.items()})
        torch.compile = _identity_compile
        for name, module in stubs.items():
            sys.modules.setdefault(name, module)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        torch.compile = saved_compile
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def load_script(path: Path, env: Mapping[str, object] | None = None) -> types.ModuleType:
    """Import a challenge script (file or record folder) as a fresh module; env holds its hyperparameters."""
    path = script_path(Path(path))
    source = decode_source(path.read_text(encoding="utf-8"), str(path))
    name = f"golf_parity_script_{next(_COUNTER)}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # classes and dataclasses look their module up by name
    with _import_environment(env or {}):
        exec(compile(source, str(path), "exec"), module.__dict__)
    return module
