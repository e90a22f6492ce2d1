"""scripts/quant_table.py on a tiny run trained with quant=none: every scheme exported, reloaded and scored, GPTQ with
Hessians from the run's training batches (slow: trains and scores)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest

from golf import REPO_ROOT
from golf.job import ARTIFACT_NAME
from golf.quant.artifact import export_artifact, load_artifact, write_artifact
from golf.quant.config import QuantBits, QuantConfig

from testkit import golf_command

pytestmark = pytest.mark.slow

TINY = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.batch_tokens=2048", "train.seq_len=64",
        "train.iterations=8", "eval.batch_seqs=16", "eval.max_tokens=4097", "eval.compressor_baselines=false",
        "logger=none"]


def quant_table(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "quant_table.py"), *args],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def none_run(text_corpus, tmp_path_factory):
    """A tiny run trained with quant=none: its artifact holds the full-precision weights the table re-exports."""
    root = tmp_path_factory.mktemp("quant_table")
    trained = golf_command("golf.train", *TINY, "quant=none", f"data.path={text_corpus}", f"paths.root={root}",
                           f"hydra.run.dir={root / 'run'}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    return root / "run"


def test_the_table_measures_every_scheme_and_calibrates_gptq(none_run):
    run = none_run
    result = quant_table(str(run), "--schemes", "none,int8_zlib,gptq_int6_brotli",
                         "--set", "quant.passthrough_numel=1024", "--set", "quant.gptq.calibration_batches=2")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["scheme"]: row for row in json.loads((run / "quant_table.json").read_text())}
    assert set(rows) == {"none", "int8_zlib", "gptq_int6_brotli"}
    assert rows["none"]["quant_gap_bpb"] == 0.0 and rows["none"]["calibration_s"] == 0.0
    assert rows["gptq_int6_brotli"]["calibration_s"] > 0  # its Hessians were collected, not missing
    # fewer bits per weight than fp32, and a finite, small cost in bpb on a model this size
    for scheme in ("int8_zlib", "gptq_int6_brotli"):
        assert rows[scheme]["model_bytes"] < rows["none"]["model_bytes"]
        assert math.isfinite(rows[scheme]["quant_gap_bpb"]) and abs(rows[scheme]["quant_gap_bpb"]) < 0.1
    assert "| gptq_int6_brotli |" in result.stdout


def test_a_run_with_quantized_weights_is_refused(none_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(none_run, run)
    source = load_artifact(run / ARTIFACT_NAME)  # the same weights, exported again with int8 codes
    int8 = QuantConfig(bits=QuantBits(8, 8, 8, 8), passthrough_numel=1024)
    write_artifact(run / ARTIFACT_NAME, export_artifact(source.state_dict, source.model, source.vocab_size, int8))
    result = quant_table(str(run))
    assert result.returncode == 2 and "double quantization" in result.stderr
