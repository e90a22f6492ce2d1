"""Single definitions out of a challenge script, as oracles for golf's optimizer and schedule.

Some records cannot be imported on a CPU as a whole (the 04-27 one needs triton), and the schedules live as closures
inside their training functions. So this module takes only the named top-level definitions (functions, classes,
assignments), or the named functions nested in one top-level function, out of the script's source (self-extracting
scripts decoded by reference_scripts.decode_source) and runs just those, in a namespace with the modules they use.
Decorators are dropped (the records wrap Newton-Schulz in torch.compile). Nothing of the scripts is copied into golf.
"""

from __future__ import annotations

import ast
import functools
import math
import os
import re
import types
from pathlib import Path
from typing import Iterable, Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from reference_scripts import _import_environment, decode_source, script_path


@functools.lru_cache(maxsize=8)
def script_tree(path: Path) -> ast.Module:
    """The script's statements. A script this Python cannot parse whole (the 04-09 record uses Python 3.12's nested
    f-string quotes) is cut into its top-level statements, and those that parse are kept."""
    path = script_path(path)
    text = path.read_text(encoding="utf-8")
    try:
        source = decode_source(text, str(path))
    except SyntaxError:  # not parseable here, so not a self-extracting wrapper either (those are a few lines)
        source = text
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError:
        body = []
        for chunk in _top_level_chunks(source):
            try:
                body.extend(ast.parse(chunk, filename=str(path)).body)
            except SyntaxError:
                continue
        return ast.Module(body=body, type_ignores=[])


def _top_level_chunks(source: str) -> list[str]:
    """The source cut before every line that starts a top-level statement: no indentation, not a closing bracket,
    not right after a decorator."""
    chunks: list[list[str]] = [[]]
    for line in source.splitlines(keepends=True):
        starts = line[:1] not in ("", " ", "\t", "\n", ")", "]", "}", "#")
        after_decorator = bool(chunks[-1]) and chunks[-1][-1].startswith("@")
        if starts and not after_decorator and chunks[-1]:
            chunks.append([])
        chunks[-1].append(line)
    return ["".join(chunk) for chunk in chunks]


def _defines(node: ast.stmt, names: set[str]) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return node.name in names
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id in names for t in node.targets)
    return False


def _run(nodes: list[ast.stmt], path: Path, namespace: dict) -> None:
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            node.decorator_list = []
    module = ast.Module(body=nodes, type_ignores=[])
    exec(compile(ast.fix_missing_locations(module), str(path), "exec"), namespace)


def _namespace(extra: Mapping[str, object] | None) -> dict:
    base = dict(torch=torch, dist=dist, F=F, Tensor=Tensor, nn=nn, math=math, os=os)
    return {**base, **(extra or {})}


def load_parts(path: Path, names: Iterable[str], env: Mapping[str, object] | None = None,
               extra: Mapping[str, object] | None = None) -> types.SimpleNamespace:
    """The script's top-level definitions named in `names` (in the script's order), run with the environment
    variables `env` visible (a Hyperparameters class body reads them)."""
    wanted = set(names)
    nodes = [node for node in script_tree(Path(path)).body if _defines(node, wanted)]
    namespace = _namespace(extra)
    with _import_environment(env or {}):
        _run(nodes, Path(path), namespace)
    missing = wanted - set(namespace)
    assert not missing, f"{path}: no top-level definition of {sorted(missing)}"
    return types.SimpleNamespace(**{name: namespace[name] for name in wanted})


def load_nested(path: Path, outer: str, names: Iterable[str], closure: Mapping[str, object]) -> types.SimpleNamespace:
    """Functions defined inside the script's top-level function `outer` (e.g. lr_mul inside train_model), with
    the variables they close over given in `closure` (e.g. h, max_wallclock_ms)."""
    wanted = set(names)
    found = [node for node in script_tree(Path(path)).body
             if isinstance(node, ast.FunctionDef) and node.name == outer]
    assert found, f"{path}: no top-level function {outer}"
    nodes = [node for node in ast.walk(found[0]) if isinstance(node, ast.FunctionDef) and node.name in wanted]
    namespace = _namespace(closure)
    _run(nodes, Path(path), namespace)
    missing = wanted - set(namespace)
    assert not missing, f"{path}: {outer} defines no {sorted(missing)}"
    return types.SimpleNamespace(**{name: namespace[name] for name in wanted})


def run_command_env(record: Path, heading: str) -> dict[str, str]:
    """The KEY=VALUE settings of the record's run command: the first code block after `heading` in its README."""
    text = (Path(record) / "README.md").read_text(encoding="utf-8")
    block = text[text.index(heading):].split("```")[1]
    return dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", block))
