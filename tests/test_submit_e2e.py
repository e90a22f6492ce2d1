"""Issue 20's verification: a tiny audited CPU run made into a records folder by golf.submit, whose train_gpt.py, run
from an empty folder by a Python that has the challenge's packages and not golf, trains the same model, writes the
same artifact byte for byte and prints the same val_bpb bit for bit."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from testkit import golf_command

pytestmark = pytest.mark.slow

CHALLENGE_PACKAGES = ("torch", "numpy", "sentencepiece", "brotli", "zstandard")
TINY_AUDITED = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.iterations=6", "train.batch_tokens=2048",
                "train.seq_len=64", "eval.seq_len=64", "eval.max_tokens=8193", "eval.compressor_baselines=false",
                "ttt=score_first", "ttt.chunk_tokens=4096", "ttt.epochs=1", "audit.enabled=true", "audit.tokens=8193",
                "hardware.threads=1", "logger=none", "seed=5",
                # GPTQ: the script calibrates on the run's training batches as golf.train does, then LQER and brotli
                "quant=gptq_int6_brotli", "quant.passthrough_numel=1024", "quant.gptq.calibration_batches=2",
                "quant.lqer.enabled=true"]


def distributions_needed(names: tuple[str, ...]) -> set[str]:
    """`names` and everything they require (extras left out), as installed here."""
    found: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        dist = metadata.distribution(name)
        if dist.metadata["Name"].lower() in found:
            continue
        found.add(dist.metadata["Name"].lower())
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return found


def challenge_python(root: Path) -> Path:
    """A fresh venv whose only packages are symlinks to the challenge's packages (and their dependencies) in golf's
    environment: no network, and no golf."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    packages = root / "packages"
    packages.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in distributions_needed(CHALLENGE_PACKAGES):
        tops = {Path(str(f)).parts[0] for f in metadata.distribution(name).files or []}
        for top in tops - {"..", "__pycache__"}:
            if (site / top).exists() and not (packages / top).exists() and not top.endswith(".pth"):
                (packages / top).symlink_to(site / top)
    venv_site = next((root / "venv" / "lib").glob("python*/site-packages"))
    (venv_site / "challenge.pth").write_text(f"{packages}\n")
    return root / "venv" / "bin" / "python"


def test_the_submission_reproduces_the_run_without_golf(text_corpus, tmp_path):
    run = tmp_path / "run"
    trained = golf_command("golf.train", *TINY_AUDITED, f"data.path={text_corpus}", f"paths.root={tmp_path}",
                           f"hydra.run.dir={run}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["compliant"] is True

    submitted = golf_command("golf.submit", str(run), f"submit.root={tmp_path / 'out'}", "submit.name=tiny_check",
                             "submit.date=2026-01-02")
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    folder = tmp_path / "out" / "records" / "track_10min_16mb" / "2026-01-02_tiny_check"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["train_gpt.py", "submission.json", "README.md", "requirements.txt", "train_seed5.log",
         "compliance_seed5.json"])
    script_bytes = (folder / "train_gpt.py").stat().st_size
    assert metrics["code_bytes_submission"] == script_bytes  # the run already knew its submission's code size
    doc = json.loads((folder / "submission.json").read_text())
    assert doc["val_bpb"] == metrics["val_bpb"] and doc["seeds"] == [5]
    assert doc["bytes_total"] == metrics["model_bytes"] + script_bytes

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(folder / "train_gpt.py", alone / "train_gpt.py")
    python = challenge_python(tmp_path / "env")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONNOUSERSITE": "1"}
    no_golf = subprocess.run([str(python), "-c", "import golf"], cwd=alone, env=env, capture_output=True, text=True)
    assert no_golf.returncode != 0 and "No module named 'golf'" in no_golf.stderr

    config = yaml.safe_load((run / "config.yaml").read_text())
    standalone = subprocess.run(
        [str(python), "train_gpt.py"], cwd=alone, capture_output=True, text=True, timeout=300,
        env={**env, "DATA_PATH": config["data"]["shards_dir"], "TOKENIZER_PATH": config["data"]["tokenizer"]})
    assert standalone.returncode == 0, standalone.stderr[-3000:]
    lines = standalone.stdout.strip().splitlines()
    exact = re.search(r"^quantized_ttt_exact val_loss:(\S+) val_bpb:(\S+)$", standalone.stdout, re.M)
    assert exact is not None, standalone.stdout[-2000:]
    assert float(exact.group(2)) == metrics["val_bpb"] and float(exact.group(1)) == metrics["val_loss"]
    assert lines[-1] == f"quantized_ttt val_loss:{metrics['val_loss']:.8f} val_bpb:{metrics['val_bpb']:.8f}"
    assert (alone / "artifact.golf").read_bytes() == (run / "artifact.golf").read_bytes()

    other = tmp_path / "other_tokenizer.model"  # the run's tokenizer, one byte changed: refused before any reading
    changed = bytearray(Path(config["data"]["tokenizer"]).read_bytes())
    changed[-1] ^= 1
    other.write_bytes(bytes(changed))
    refused = subprocess.run(
        [str(python), "train_gpt.py"], cwd=alone, capture_output=True, text=True, timeout=300,
        env={**env, "DATA_PATH": config["data"]["shards_dir"], "TOKENIZER_PATH": str(other)})
    assert refused.returncode != 0 and "TOKENIZER_PATH" in refused.stderr and "Traceback" not in refused.stderr
