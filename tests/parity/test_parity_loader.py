"""golf's own loader of the challenge's scripts: it decodes self-extracting scripts, and leaves the process as it
found it."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from reference_scripts import decode_source, load_script

pytestmark = pytest.mark.parity


def test_a_self_extracting_script_decodes_to_the_copy_beside_it(record_dir) -> None:
    record = record_dir("2026-04-09")  # its train_gpt.py is an LZMA wrapper, decoded beside it by the challenge
    wrapper = (record / "train_gpt.py").read_text(encoding="utf-8")
    assert "exec(" in wrapper and len(wrapper.splitlines()) < 5
    assert decode_source(wrapper).strip() == (record / "train_gpt.decoded.py").read_text(encoding="utf-8").strip()


def test_plain_source_is_left_as_it_is(reference) -> None:
    text = (reference / "train_gpt.py").read_text(encoding="utf-8")
    assert decode_source(text) is text


def test_a_wrapper_importing_anything_else_is_refused() -> None:
    with pytest.raises(ValueError, match="os"):
        decode_source('import os\nexec(os.getcwd())\n')


def test_loading_is_hermetic(record_dir) -> None:
    before_compile, before_env = torch.compile, dict(os.environ)
    m = load_script(record_dir("2026-03-23"), {"NUM_LAYERS": 3})
    assert m.Hyperparameters.num_layers == 3 and m.__name__ != "__main__"
    assert torch.compile is before_compile and dict(os.environ) == before_env
    assert "flash_attn_interface" not in sys.modules
