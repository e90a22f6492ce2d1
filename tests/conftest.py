"""Shared fixtures (the helpers tests import by name are in testkit.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testkit import write_text_corpus

os.environ["WANDB_MODE"] = "disabled"  # tests never reach for the network


@pytest.fixture(scope="session")
def text_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_text_corpus(tmp_path_factory.mktemp("corpus") / "texts")
