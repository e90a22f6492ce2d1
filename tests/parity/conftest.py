"""The parity suite: golf against the challenge's own scripts, which it finds in a checkout of the challenge's
repository: GOLF_REFERENCE_DIR, or by default ../shared/reference/parameter-golf beside golf's repository when that
exists. Every test here carries the `parity` marker; without a reference the suite says so in one line and its
tests are deselected (neither passed nor failed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest

from golf import REPO_ROOT

PARITY_DIR = Path(__file__).resolve().parent
DEFAULT_REFERENCE = REPO_ROOT / ".." / "shared" / "reference" / "parameter-golf"
RECORDS = "records/track_10min_16mb"


def reference_dir() -> Optional[Path]:
    """Where the challenge's repository is, or None. A GOLF_REFERENCE_DIR that is set but holds no train_gpt.py
    counts as absent too (the line printed names it)."""
    given = os.environ.get("GOLF_REFERENCE_DIR")
    path = Path(given) if given else DEFAULT_REFERENCE
    return path.resolve() if (path / "train_gpt.py").is_file() else None


def absent_line() -> str:
    given = os.environ.get("GOLF_REFERENCE_DIR")
    where = f"GOLF_REFERENCE_DIR={given} has no train_gpt.py" if given else \
        f"GOLF_REFERENCE_DIR is unset and {DEFAULT_REFERENCE.resolve()} does not exist"
    return f"parity: no checkout of the challenge's repository ({where}); the parity tests are deselected"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if PARITY_DIR in Path(str(item.path)).resolve().parents]
    for item in mine:
        item.add_marker(pytest.mark.parity)
    if not mine or reference_dir() is not None:
        return
    deselected = [item for item in items if item.get_closest_marker("parity") is not None]
    items[:] = [item for item in items if item.get_closest_marker("parity") is None]
    config.hook.pytest_deselected(items=deselected)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(absent_line())


@pytest.fixture(scope="session")
def reference() -> Path:
    found = reference_dir()
    assert found is not None, absent_line()  # unreachable when collection deselected the suite
    return found


@pytest.fixture(scope="session")
def record_dir(reference: Path):
    """The folder of a record by its date prefix, e.g. record_dir("2026-03-23")."""
    def find(date: str) -> Path:
        found = sorted((reference / RECORDS).glob(f"{date}_*"))
        if not found:
            pytest.fail(f"the reference checkout {reference} has no record {RECORDS}/{date}_*")
        return found[0]
    return find
