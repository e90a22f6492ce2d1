"""Safety: nothing golf loads can run code, names cannot leave paths.root, environment secrets stay out of every
file and of W&B."""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile
import zlib

from golf.errors import ConfigError
from pathlib import Path

import pytest
import torch
import yaml

from golf import REPO_ROOT
from golf.quant.artifact import MAGIC_V1, ArtifactError, artifact_sha256, load_artifact
from golf.logger_config import LoggerConfig
from golf.runs import RunDir
from golf.secrets import redact, secrets_in_environment
from golf.wandb_run import WandbRun

from testkit import golf_command


def bomb(marker: Path) -> bytes:
    """A pickle that creates `marker` when unpickled (Path.touch is the code it runs)."""

    class CreatesMarker:
        def __reduce__(self):
            return (Path.touch, (marker,))

    return pickle.dumps({"tok_emb.weight": CreatesMarker()})


def crafted_files(marker: Path) -> dict[str, bytes]:
    raw = bomb(marker)
    saved = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(2)}}, saved)
    # torch.save's zip format around the bomb: what a "checkpoint given as an artifact" attack looks like
    zipped = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, zipped)  # a real torch file; its data.pkl is replaced below
    zipped_bomb = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zipped.getvalue())) as src, zipfile.ZipFile(zipped_bomb, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, raw if item.filename.endswith("data.pkl") else src.read(item))
    header = {"format": "golf-artifact", "version": 1, "model": {}, "vocab_size": 384, "quant": {},
              "compressor": "zlib", "level": 9, "payload_bytes": len(raw), "payload_sha256": artifact_sha256(raw),
              "tensors": [{"name": "w", "shape": [len(raw)], "dtype": "float32", "category": "other",
                           "encoding": "int", "bits": 8, "per_row": False, "offset": 0, "nbytes": len(raw),
                           "scale_offset": len(raw), "scale_nbytes": 0}]}
    header_bytes = json.dumps(header, sort_keys=True).encode()
    framed = MAGIC_V1 + struct.pack("<Q", len(header_bytes)) + header_bytes + zlib.compress(raw)  # a version-1 frame
    return {"raw-pickle": raw, "torch-zip-with-bomb": zipped_bomb.getvalue(), "framed-pickle": framed,
            "plain-torch-save": saved.getvalue()}


def test_crafted_pickles_are_refused_without_running(tmp_path):
    marker = tmp_path / "code-ran"
    for label, data in crafted_files(marker).items():
        path = tmp_path / f"{label}.golf"
        path.write_bytes(data)
        with pytest.raises(ArtifactError) as info:
            load_artifact(path)
        assert str(path) in str(info.value), (label, str(info.value))
    assert not marker.exists(), "an artifact load ran pickled code"
    # the bomb is real: plain unpickling does create the marker
    pickle.loads(bomb(marker))
    assert marker.exists()


def test_golf_eval_refuses_a_pickle_artifact_in_one_paragraph(tmp_path, text_corpus):
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.golf"
    path.write_bytes(crafted_files(marker)["torch-zip-with-bomb"])
    result = golf_command("golf.eval", f"artifact={path}", "data=text_dir", f"data.path={text_corpus}",
                          "data.vocab_size=384", "logger=none", f"paths.root={tmp_path / 'out'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert f"golf: {path}" in result.stderr and "not a golf artifact" in result.stderr
    assert not marker.exists()


UNSAFE_CALLS = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("marshal", "loads"),
                ("marshal", "load"), ("dill", "load"), ("dill", "loads"), ("joblib", "load"), ("yaml", "load"),
                ("yaml", "unsafe_load"), ("yaml", "full_load")}


def test_golf_never_calls_an_unpickler_on_files():
    """A static guard: no pickle/marshal/yaml.load in golf, torch.load only with weights_only=True, np.load never
    with allow_pickle=True."""
    problems = []
    for path in sorted((REPO_ROOT / "golf").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            call = (owner, node.func.attr)
            keywords = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
            if call in UNSAFE_CALLS:
                problems.append(f"{where} {owner}.{node.func.attr}")
            if call == ("torch", "load"):
                safe = keywords.get("weights_only")
                if not (isinstance(safe, ast.Constant) and safe.value is True):
                    problems.append(f"{where} torch.load without weights_only=True")
            if call in {("np", "load"), ("numpy", "load")}:
                flag = keywords.get("allow_pickle")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where} np.load with allow_pickle")
    assert not problems, problems


# -- names ------------------------------------------------------------------------------------------------------

def test_data_prepare_refuses_a_data_name_that_leaves_paths_root(tmp_path):
    root = tmp_path / "out"
    result = golf_command("golf.data", "prepare", "data.name=../../escaped", f"paths.root={root}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "data.name" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "escaped_sp1024").exists() and not root.exists()


# -- secrets ----------------------------------------------------------------------------------------------------

API_KEY = "wandb-key-0123456789abcdef0123456789abcdef"  # the shape of a W&B key, unique to this test
OTHER_SECRET = "golf-test-secret-7f3a9c"


def test_secrets_are_found_by_name_and_redacted_everywhere():
    env = {"WANDB_API_KEY": API_KEY, "GOLF_TEST_SECRET": OTHER_SECRET, "HOME": "/root-home-path",
           "PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_TOKEN": "1", "PWD": "/x"}
    secrets = secrets_in_environment(env)
    assert secrets == {"WANDB_API_KEY": API_KEY, "GOLF_TEST_SECRET": OTHER_SECRET}  # not secret by name, or a flag
    record = {"logger": {"group": f"x{API_KEY}y", "tags": [OTHER_SECRET, "model:tiny"]}, API_KEY: 3, "n": 1.5}
    cleaned = redact(record, secrets)
    assert API_KEY not in json.dumps(cleaned) and OTHER_SECRET not in json.dumps(cleaned)
    assert cleaned["logger"]["group"] == "x<redacted $WANDB_API_KEY>y" and cleaned["n"] == 1.5
    assert cleaned["logger"]["tags"][1] == "model:tiny"


def test_run_directory_and_wandb_config_hold_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", API_KEY)
    monkeypatch.setenv("GOLF_TEST_SECRET", OTHER_SECRET)
    config = {"logger": {"group": API_KEY}, "data": {"path": f"/data/{OTHER_SECRET}"}}
    run = RunDir(tmp_path / "run")
    run.start(config, [f"logger.group={API_KEY}"])
    run.log(f"an error message quoting {OTHER_SECRET}")
    run.log_metrics({"step": 1, "note": API_KEY})
    run.finish({"status": "failed", "error": f"KeyError: {API_KEY}"})
    for file in (tmp_path / "run").iterdir():
        text = file.read_text()
        assert API_KEY not in text and OTHER_SECRET not in text, file.name
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["logger"]["group"] == \
        "<redacted $WANDB_API_KEY>"

    calls = []
    fake_run = types.SimpleNamespace(define_metric=lambda *args, **kwargs: None)
    module = types.SimpleNamespace(init=lambda **kwargs: calls.append(kwargs) or fake_run,
                                   Settings=lambda **kwargs: kwargs)
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    WandbRun(LoggerConfig(group=API_KEY, tags=[OTHER_SECRET]), tmp_path, f"run-{API_KEY}", config)
    (call,) = calls
    assert API_KEY not in repr(call) and OTHER_SECRET not in repr(call)


@pytest.mark.slow
def test_a_training_run_writes_no_secret_anywhere(tmp_path, text_corpus):
    """A real (tiny) run with W&B offline, the key in the environment, and the secret pulled into the config both by
    an ${oc.env:...} interpolation and by a shell-expanded override: no file of the run directory holds it."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_API_KEY": API_KEY, "GOLF_TEST_SECRET": OTHER_SECRET,
           "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
    run_dir = tmp_path / "run"
    args = ["model=tiny", "data=text_dir", f"data.path={text_corpus}", "data.vocab_size=384",
            "train.batch_tokens=2048", "train.seq_len=64", "train.iterations=2", "eval.max_tokens=2048",
            "eval.compressor_baselines=false", "train.reuse=false", "logger=wandb", "logger.mode=offline",
            "logger.group=${oc.env:GOLF_TEST_SECRET}", f"logger.tags=[{API_KEY}]",
            f"paths.root={tmp_path / 'out'}", f"hydra.run.dir={run_dir}"]
    import subprocess

    result = subprocess.run([sys.executable, "-m", "golf.train", *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "metrics.json").is_file() and (run_dir / "wandb").is_dir(), sorted(os.listdir(run_dir))
    checked = 0
    for file in run_dir.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            checked += 1
            assert API_KEY.encode() not in data and OTHER_SECRET.encode() not in data, file
    assert checked >= 6
    assert API_KEY not in result.stdout + result.stderr and OTHER_SECRET not in result.stdout + result.stderr
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["logger"]["group"] == "<redacted $GOLF_TEST_SECRET>"


def test_short_secrets_are_redacted_too_where_they_stand_alone():
    secrets = secrets_in_environment({"HF_TOKEN": "q7Zk", "DB_PASSWORD": "x9", "GOLF_AUTH": "ab_c"})
    assert set(secrets) == {"HF_TOKEN", "DB_PASSWORD", "GOLF_AUTH"}  # whatever their length
    text = redact("token q7Zk, pass x9 in /data/x9/run, tag ab_c; 1x99 and 3.14 stay", secrets)
    assert "q7Zk" not in text and "ab_c" not in text and " x9 " not in text and "/x9/" not in text, text
    assert "1x99 and 3.14 stay" in text  # a short value inside another word or number is not a secret there


def test_the_command_line_carries_references_not_secrets(monkeypatch):
    from golf.cli import protect_secrets

    monkeypatch.setenv("GOLF_TEST_SECRET", OTHER_SECRET)
    monkeypatch.setenv("GOLF_PIN_TOKEN", "x7k")  # short: replaced where it stands alone
    args = protect_secrets(["-m", f"logger.group={OTHER_SECRET}", f"logger.tags=[a,pin-x7k,{OTHER_SECRET}x]",
                            "seed=1,2", "logger.project=ax7kb"])
    assert args == ["-m", "logger.group=${oc.env:GOLF_TEST_SECRET}",
                    "logger.tags=[a,pin-${oc.env:GOLF_PIN_TOKEN},${oc.env:GOLF_TEST_SECRET}x]", "seed=1,2",
                    "logger.project=ax7kb"]
    for arg in (f"name=run-{OTHER_SECRET}", "name=${oc.env:GOLF_TEST_SECRET}", f"hydra.run.dir=/tmp/{OTHER_SECRET}",
                "hydra.sweep.dir=/tmp/${oc.env:GOLF_PIN_TOKEN}", "paths.root=/tmp/x7k"):
        with pytest.raises(ConfigError) as refused:
            protect_secrets([arg])
        assert OTHER_SECRET not in str(refused.value) and "x7k" not in str(refused.value)
        assert "(a secret)" in str(refused.value)


@pytest.mark.slow
def test_a_sweep_writes_no_secret_anywhere_and_a_secret_name_is_refused(tmp_path, text_corpus):
    """A 2-job multirun with the secret shell-expanded into an override: Hydra's multirun.yaml and every job's files
    (W&B's included) hold no trace of it; a run name that would carry it is refused with exit 2 before any folder."""
    import subprocess

    env = {**os.environ, "WANDB_MODE": "offline", "GOLF_TEST_SECRET": OTHER_SECRET, "GOLF_PIN_TOKEN": "x7k",
           "WANDB_SILENT": "true"}
    sweep = tmp_path / "sweep"
    args = ["-m", "model=tiny", "data=text_dir", f"data.path={text_corpus}", "data.vocab_size=384",
            "train.batch_tokens=2048", "train.seq_len=64", "train.iterations=1", "eval.max_tokens=2048",
            "eval.compressor_baselines=false", "logger=wandb", "logger.mode=offline", "seed=1,2",
            f"logger.group={OTHER_SECRET}", "logger.tags=[pin-x7k]", f"paths.root={tmp_path / 'out'}",
            f"hydra.sweep.dir={sweep}"]
    result = subprocess.run([sys.executable, "-m", "golf.train", *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    files = [f for f in sweep.rglob("*") if f.is_file()]
    assert any(f.name == "multirun.yaml" for f in files) and len(list(sweep.glob("*/metrics.json"))) == 2
    for file in files:
        data = file.read_bytes()
        assert OTHER_SECRET.encode() not in data and b"pin-x7k" not in data, file
    assert OTHER_SECRET not in result.stdout + result.stderr

    refused = subprocess.run([sys.executable, "-m", "golf.train", "model=tiny", "name=${oc.env:GOLF_TEST_SECRET}",
                              f"paths.root={tmp_path / 'out2'}"], cwd=REPO_ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 2 and "(a secret)" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "out2").exists() and OTHER_SECRET not in refused.stderr
