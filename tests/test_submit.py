"""golf.submit on fake finished runs (no training): the folder's files and numbers, and each refusal (exit 2, one
paragraph naming the run and why); the minifier and the bundle's closure."""

from __future__ import annotations

import ast
import base64
import dataclasses
import json
import lzma
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from golf.cli import compose
from golf.config import to_golf_config, to_plain_dict
from golf.digest import file_sha256
from golf.evaluate.headline import SLIDING, STANDARD, TTT, choose_headline
from golf.runs import git_description
from golf.evaluate.ttt.method import names as ttt_methods
from golf.submit.bundle import REPLACED, bundled_files
from golf.submit import submission_json
from golf.submit.command import main
from golf.submit.minify import minify
from golf.submit.provenance import data_mismatch
from golf.training_build import leave_export_weights

FORBIDDEN = ("hydra", "omegaconf", "wandb", "scipy", "matplotlib", "filelock", "yaml", "golf.cli",
             "golf.launch")


def fake_data(folder: Path) -> Path:
    """A tokenizer file and a validation shard (their bytes only: golf.submit hashes them, reads nothing)."""
    if not folder.is_dir():
        folder.mkdir(parents=True)
        (folder / "tokenizer.model").write_bytes(b"pieces A")
        (folder / "fineweb_val_000000.bin").write_bytes(b"validation tokens")
    return folder


def embedded_run(script: Path) -> dict:
    """The `run` part of a train_gpt.py's payload (golf/submit/bundle.py's HEADER)."""
    text = script.read_text()
    packed = ast.literal_eval(text[text.index("b85decode(") + len("b85decode("):text.index("),format=")])
    return json.loads(lzma.decompress(base64.b85decode(packed), format=lzma.FORMAT_RAW,
                                      filters=[{"id": lzma.FILTER_LZMA2}]))["run"]


def fake_run(path: Path, seed: int, val_bpb: float, overrides: tuple[str, ...] = (), compliant: bool | None = True,
             model_bytes: int = 1_000_000, metrics_seed: int | None = None, audit_dir: Path | None = None,
             audit_overrides: tuple[str, ...] = (), audited_sha256: str | None = None,
             git_text: str | None = None) -> Path:
    """A finished run; its audit (unless compliant is None) in the run directory as golf.train writes it, or in
    `audit_dir` as golf.audit does, of the artifact `audited_sha256` (default: the run's), with `audit_overrides`."""
    path.mkdir(parents=True)
    data = fake_data(path.parent / "_data")
    overrides = (f"data.shards_dir={data}", f"data.tokenizer={data / 'tokenizer.model'}", *overrides)
    if git_text is not None:
        (path / "git.txt").write_text(git_text)
    config = to_golf_config(compose(["model=tiny", "ttt=score_first", f"seed={seed}", *overrides]))
    (path / "config.yaml").write_text(yaml.safe_dump(to_plain_dict(config)))
    sha = f"{seed:064x}"
    metrics = {"status": "ok", "seed": seed if metrics_seed is None else metrics_seed, "val_bpb": val_bpb,
               "val_loss": val_bpb * 2.5, "model_bytes": model_bytes, "steps": 10, "train_time_s": 3.0,
               "eval_time_s": 1.0, "compliant": compliant, "artifact_sha256": sha}
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "train.log").write_text(f"seed {seed}\n")
    if compliant is not None:
        audited = to_golf_config(compose(["model=tiny", "ttt=score_first", f"seed={seed}", *overrides,
                                          *audit_overrides]))
        checks = {name: {"passed": compliant, "reason": "r"} for name in
                  ("C1_causality", "C2_normalization", "C3_score_before_update", "C4_single_pass")}
        record = {"compliant": compliant, "checks": checks, "artifact_sha256": audited_sha256 or sha,
                  "eval": {"seq_len": audited.eval.seq_len, "stride": audited.eval.stride},
                  "ttt": dataclasses.asdict(audited.ttt)}  # as run_audit records them (golf/evaluate/audit_checks.py)
        where = audit_dir or path
        where.mkdir(parents=True, exist_ok=True)
        (where / "compliance.json").write_text(json.dumps(record))
    return path


def submit(directory: Path, tmp_path: Path, *settings: str) -> Path:
    assert main([str(directory), f"submit.root={tmp_path / 'out'}", "submit.date=2026-01-02", *settings]) == 0
    return next((tmp_path / "out" / "records").glob("track_*/*"))


def refused(capsys, directory: Path, tmp_path: Path, *settings: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([str(directory), f"submit.root={tmp_path / 'out'}", *settings])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("golf: ") and "Traceback" not in err
    return err


def test_a_sweep_of_seeds_becomes_one_records_folder(tmp_path):
    sweep = tmp_path / "sweep"
    bpbs = {1: 1.2, 2: 1.21, 3: 1.19}
    for seed, bpb in bpbs.items():
        fake_run(sweep / str(seed), seed, bpb)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"val_bpb": 1.3, "seed_results": {"1": {"val_bpb": 1.3}, "2": {"val_bpb": 1.31},
                                                                      "3": {"val_bpb": 1.29}}}))
    folder = submit(sweep, tmp_path, "submit.name=three", f"submit.baseline={baseline}")
    assert folder.name == "2026-01-02_three" and folder.parent.name == "track_10min_16mb"
    doc = json.loads((folder / "submission.json").read_text())
    code = (folder / "train_gpt.py").stat().st_size
    assert doc["seeds"] == [1, 2, 3] and doc["val_bpb"] == pytest.approx(statistics.fmean(bpbs.values()))
    assert doc["val_bpb_std"] == pytest.approx(statistics.stdev(bpbs.values()))
    assert doc["code_bytes"] == code and doc["bytes_total"] == 1_000_000 + code
    assert doc["compliance"]["audit_compliant"] and doc["compliance"]["three_seeds"]
    assert not doc["compliance"]["train_under_600s"]  # not on 8xh100: no claim about the track's budget
    assert doc["delta_vs_baseline_bpb"] == pytest.approx(1.2 - 1.3) and doc["p_value"] < 0.01
    assert "model.num_layers=4" in doc["technique_summary"]  # tiny vs the baseline's 9 layers
    text = (folder / "README.md").read_text()
    for section in ("## Results", "## Recipe", "## Artifact size", "## Timing", "## Compliance audit",
                    "## Legality (Issue #1017's four conditions)", "## Reproducing"):
        assert section in text
    assert "| `model.num_layers` | `4` |" in text and "C3, score before update" in text
    for seed in bpbs:
        assert (folder / f"train_seed{seed}.log").read_text() == f"seed {seed}\n"
        assert json.loads((folder / f"compliance_seed{seed}.json").read_text())["compliant"] is True


def test_a_non_compliant_run_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path / "run", 1, 1.2, compliant=False)
    err = refused(capsys, run, tmp_path)
    assert str(run) in err and "not compliant" in err and "C1_causality" in err


def test_a_run_without_an_audit_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path / "run", 1, 1.2, compliant=None)
    assert "audit.enabled=true" in refused(capsys, run, tmp_path)


def test_an_audit_of_another_artifact_is_refused(tmp_path, capsys):
    """A compliance.json copied from another run (another artifact) says nothing of this one."""
    run = fake_run(tmp_path / "run", 1, 1.2, audited_sha256="f" * 64)
    err = refused(capsys, run, tmp_path)
    assert str(run) in err and "no compliance audit of its artifact" in err and "submit.audits=" in err


def test_an_audit_with_other_evaluation_settings_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path / "run", 1, 1.2, audit_overrides=("ttt.lr=0.5",))
    err = refused(capsys, run, tmp_path)
    assert str(run) in err and "ttt.lr" in err and "evaluation settings" in err


def test_audits_made_by_golf_audit_elsewhere_are_matched_by_artifact(tmp_path):
    """The multi-GPU way: golf.audit wrote each seed's compliance.json in its own run directory; submit.audits names
    the folder of those directories, and each run takes the audit of its own artifact."""
    for seed in (1, 2):
        fake_run(tmp_path / "sweep" / str(seed), seed, 1.2, audit_dir=tmp_path / "audits" / f"audit{seed}")
    folder = submit(tmp_path / "sweep", tmp_path, f"submit.audits={tmp_path / 'audits'}")
    for seed in (1, 2):
        copied = json.loads((folder / f"compliance_seed{seed}.json").read_text())
        assert copied["artifact_sha256"] == f"{seed:064x}"


@pytest.mark.parametrize("source, within", [("train", False), ("generated", True)])
def test_gptq_calibration_on_training_data_counts_as_training_time(tmp_path, source, within):
    """On 8xH100, a run whose training stopped inside 600 s but whose GPTQ calibration on training data ended past
    it is not under 600 s (the rules count that calibration as training); generated calibration reads no data."""
    run = fake_run(tmp_path / "run", 1, 1.2, overrides=("hardware=8xh100",))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["train_time_s"] = submission_json.TRAIN_BUDGET_S - 5
    metrics["gptq_calibration"] = {"source": source, "training_clock_s": submission_json.TRAIN_BUDGET_S + 5}
    (run / "metrics.json").write_text(json.dumps(metrics))
    doc = json.loads((submit(run, tmp_path) / "submission.json").read_text())
    assert doc["compliance"]["train_under_600s"] is within


def test_the_script_carries_the_runs_data_digests_and_commit(tmp_path):
    run = fake_run(tmp_path / "run", 1, 1.2, git_text=git_description())
    embedded = embedded_run(submit(run, tmp_path) / "train_gpt.py")
    data = tmp_path / "_data"
    assert embedded["data"]["tokenizer_sha256"] == file_sha256(data / "tokenizer.model")
    assert embedded["data"]["val_sha256"] == {"fineweb_val_000000.bin": file_sha256(data / "fineweb_val_000000.bin")}
    assert embedded["golf"]["commit"] in git_description()


def test_the_script_refuses_another_tokenizer_or_other_validation_shards(tmp_path):
    data = fake_data(tmp_path / "data")
    expected = embedded_run(submit(fake_run(tmp_path / "run", 1, 1.2), tmp_path) / "train_gpt.py")["data"]
    assert data_mismatch(expected, tmp_path / "_data" / "tokenizer.model", tmp_path / "_data") is None
    (data / "tokenizer.model").write_bytes(b"pieces B")  # the same size, other pieces
    assert "TOKENIZER_PATH" in data_mismatch(expected, data / "tokenizer.model", data)
    (data / "tokenizer.model").write_bytes(b"pieces A")
    (data / "fineweb_val_000001.bin").write_bytes(b"more")
    message = data_mismatch(expected, data / "tokenizer.model", data)
    assert "DATA_PATH" in message and "fineweb_val_000001.bin" in message


def test_a_run_made_with_another_golf_commit_is_refused_unless_unknowable(tmp_path, capsys):
    other = "a" * 40
    clean = fake_run(tmp_path / "clean", 1, 1.2, git_text=f"commit: {other}\nstate: clean\n")
    err = refused(capsys, clean, tmp_path)
    assert str(clean) in err and f"git checkout {other}" in err
    dirty = fake_run(tmp_path / "dirty", 1, 1.2, git_text=f"commit: {other}\nstate: dirty\n")
    text = (submit(dirty, tmp_path) / "README.md").read_text()
    assert other in text and "could not check" in text


def test_a_run_whose_seed_disagrees_with_its_config_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path / "run", 1, 1.2, metrics_seed=2)
    err = refused(capsys, run, tmp_path)
    assert "seed 2" in err and "seed 1" in err


def test_a_run_over_the_budget_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path / "run", 1, 1.2, model_bytes=15_990_000)
    err = refused(capsys, run, tmp_path)
    assert "over the budget" in err and "16,000,000" in err


def test_a_sweep_mixing_configs_is_refused(tmp_path, capsys):
    fake_run(tmp_path / "sweep" / "0", 1, 1.2)
    fake_run(tmp_path / "sweep" / "1", 2, 1.2, overrides=("ttt.lr=0.5",))
    err = refused(capsys, tmp_path / "sweep", tmp_path)
    assert "differ in more than the seed" in err and "ttt.lr" in err


def test_a_seed_twice_and_a_bad_setting_are_refused(tmp_path, capsys):
    fake_run(tmp_path / "sweep" / "0", 1, 1.2)
    fake_run(tmp_path / "sweep" / "1", 1, 1.3)
    assert "both ran seed 1" in refused(capsys, tmp_path / "sweep", tmp_path)
    assert "submit.track" in refused(capsys, tmp_path / "sweep", tmp_path, "submit.track=fast")
    assert "not a golf.submit setting" in refused(capsys, tmp_path / "sweep", tmp_path, "track=x")


def test_an_existing_folder_is_never_written_over(tmp_path, capsys):
    run = fake_run(tmp_path / "run", 1, 1.2)
    submit(run, tmp_path)
    assert "already holds files" in refused(capsys, run, tmp_path, "submit.date=2026-01-02")


def test_minify_keeps_behaviour_and_dataclass_fields():
    source = '''
"""Module docstring."""
from dataclasses import dataclass


@dataclass
class Point:
    """A point."""
    x: int = 1  # a comment
    y: float = 2.0


def scaled(p: Point, k: float = 2.0) -> float:
    """Docstring only?"""
    total: float = (p.x + p.y) * k  # local annotation
    label: str
    return total


def empty():
    """Nothing else."""
'''
    small = minify(source)
    assert not any(text in small for text in ("Module docstring", "A point.", "Nothing else.", "#"))
    assert "-> float" not in small and "label" not in small
    assert len(small) < len(source) / 2
    namespace: dict = {}
    exec(compile(small, "<small>", "exec"), namespace)
    assert [f.name for f in dataclasses.fields(namespace["Point"])] == ["x", "y"]
    assert namespace["scaled"](namespace["Point"](3, 1.5), 2.0) == 9.0 and namespace["empty"]() is None


@pytest.mark.parametrize("method", [None, *ttt_methods()])
def test_the_bundle_imports_nothing_the_challenges_environment_lacks(method):
    """Every embedded module, with every TTT method: no Hydra, omegaconf, W&B, SciPy, ... (golf.config is replaced
    by the plain config module)."""
    files = bundled_files(method)
    assert "golf/submit/standalone_main.py" in files and not set(REPLACED) & set(files)
    for file in files:
        tree = ast.parse(Path(file).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bad = [n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
            assert not bad, f"{file} imports {bad}"


def test_the_headline_is_one_choice_and_an_illegal_ttt_score_never_is_it():
    """golf.train and train_gpt.py share choose_headline (before, the script headlined adapt_first's TTT number)."""
    standard, sliding, ttt = object(), object(), object()
    assert choose_headline(standard, sliding, ttt, ttt_illegal=False) == (TTT, ttt)
    assert choose_headline(standard, sliding, ttt, ttt_illegal=True) == (SLIDING, sliding)
    assert choose_headline(standard, None, ttt, ttt_illegal=True) == (STANDARD, standard)
    for file in ("golf/evaluate/scoring.py", "golf/submit/standalone_main.py"):
        assert "choose_headline(" in Path(file).read_text()


def test_the_weights_the_artifact_stores_are_left_by_one_function():
    """QAT detached, the whole layer plan on, the averaged weights loaded: what golf.train and train_gpt.py share."""
    calls = []
    model = SimpleNamespace(set_loop_active=lambda on: calls.append(("loop", on)),
                            load_state_dict=lambda state: calls.append(("load", state)))
    averager = SimpleNamespace(averaged_state_dict=lambda: "averaged")
    hooks = SimpleNamespace(qat=SimpleNamespace(detach=lambda m: calls.append(("detach", m is model))),
                            averager=averager)
    assert leave_export_weights(model, hooks) is averager
    assert calls == [("detach", True), ("loop", True), ("load", "averaged")]
    calls.clear()
    assert leave_export_weights(model, SimpleNamespace(qat=hooks.qat, averager=None)) is None
    assert ("load", "averaged") not in calls and ("loop", True) in calls
    for file in ("golf/job/train.py", "golf/submit/standalone_main.py"):
        text = Path(file).read_text()
        assert "leave_export_weights(" in text and ".qat.detach(" not in text
