"""The house rules of docs/architecture.md, executable: which package may import which, and one module alone talks
to torch.distributed. Each rule is checked on golf/ as it is, and each is shown to fail on a deliberate violation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from golf import REPO_ROOT

GOLF = REPO_ROOT / "golf"
ENTRIES = ("golf.train", "golf.eval", "golf.audit", "golf.bench", "golf.report", "golf.submit")
LAUNCHERS = ("golf.launch", "golf.cli")
COLLECTIVES = "golf.collectives"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str) -> set[str]:
    """Every module `source` imports (at any depth of the file), absolute."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                package = module.split(".")[: len(module.split(".")) - node.level + (module.endswith("__init__"))]
                base = ".".join([*package, base]) if base else ".".join(package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def uses_torch_distributed(source: str) -> bool:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "distributed" and \
                isinstance(node.value, ast.Name) and node.value.id == "torch":
            return True
    return any(name == "torch.distributed" or name.startswith("torch.distributed.")
               for name in imports_of(source, "x"))


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def violations(module: str, source: str) -> list[str]:
    """The rules `module` (with this source) breaks, one line each."""
    found = []
    imported = imports_of(source, module)
    if _within(module, ("golf.model",)):
        for bad in ("golf.evaluate", "golf.optim", "golf.config", "hydra", "omegaconf"):
            if any(_within(name, (bad,)) for name in imported):
                found.append(f"{module} imports {bad} (the model knows nothing of evaluation, optimizers or config)")
    if _within(module, ("golf.data", "golf.quant", "golf.evaluate")) and not module.endswith(".__main__"):
        for bad in (*ENTRIES, *LAUNCHERS):
            if any(_within(name, (bad,)) for name in imported):
                found.append(f"{module} imports {bad} (components never import an entry or the launcher)")
    if _within(module, ENTRIES):
        for other in ENTRIES:
            if not _within(module, (other,)) and any(_within(name, (other,)) for name in imported):
                found.append(f"{module} imports the entry {other}")
    if module != COLLECTIVES and uses_torch_distributed(source):
        found.append(f"{module} uses torch.distributed (only {COLLECTIVES} may)")
    return found


def golf_modules() -> list[tuple[str, str]]:
    return [(module_name(p), p.read_text(encoding="utf-8")) for p in sorted(GOLF.rglob("*.py"))]


def test_golf_keeps_the_house_rules():
    broken = [line for module, source in golf_modules() for line in violations(module, source)]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("module, source, rule", [
    ("golf.model.gpt", "from golf.evaluate.bpb import EvalResult", "the model knows nothing"),
    ("golf.model.mlp", "import hydra", "the model knows nothing"),
    ("golf.model.attention", "def f():\n    from golf.config import GolfConfig", "the model knows nothing"),
    ("golf.quant.artifact", "from golf.train import main", "never import an entry"),
    ("golf.evaluate.windows", "from golf.launch import compose", "never import an entry"),
    ("golf.eval", "from golf.train import checked_config", "imports the entry golf.train"),
    ("golf.trainer", "import torch\nok = torch.distributed.is_initialized()", "only golf.collectives"),
    ("golf.optim.muon", "import torch.distributed as dist", "only golf.collectives"),
])
def test_each_rule_fails_on_a_deliberate_violation(module, source, rule):
    assert any(rule in line for line in violations(module, source)), violations(module, source)


def test_the_collectives_module_itself_may_use_torch_distributed():
    assert violations(COLLECTIVES, "import torch.distributed as dist") == []
