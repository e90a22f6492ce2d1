"""W&B run names say what distinguishes a sweep's job, and the sweep's summary run carries what all its jobs share."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from golf import CONF_DIR
from golf.config import register_schema
from golf.hydra_callbacks import sweep_config, sweep_tags, swept_overrides
from golf.wandb_names import MAX_OVERRIDES_CHARS, override_key, read_swept_keys, run_name, write_swept_keys


def test_a_sweep_job_is_named_by_its_swept_overrides_then_its_sweep_and_job(tmp_path):
    sweep = tmp_path / "2026-01-02_03-04-05-000006_tiny"
    write_swept_keys(sweep, ["ttt.lr", "ttt.freeze", "seed"])
    assert read_swept_keys(sweep) == ["seed", "ttt.freeze", "ttt.lr"]
    name = run_name(sweep / "4", ["ttt.freeze=2", "ttt.lr=0.5", "model=tiny", "train.iterations=8", "seed=1"])
    assert name == f"ttt.freeze=2,ttt.lr=0.5,seed=1 @ {sweep.name}/4"


def test_without_swept_keys_a_job_keeps_all_its_overrides_and_a_single_run_its_directory(tmp_path):
    write_swept_keys(tmp_path / "sweep", [])  # `-m seed=1`: a multirun that varies nothing
    assert run_name(tmp_path / "sweep" / "0", ["seed=1", "+x=2"]) == "seed=1,+x=2 @ sweep/0"
    assert run_name(tmp_path / "sweep" / "1", []) == "sweep/1"
    assert run_name(tmp_path / "runs" / "2026-01-02_tiny", ["seed=1"]) == "2026-01-02_tiny"


def test_long_override_lists_are_cut_with_a_hash_that_keeps_them_apart(tmp_path):
    write_swept_keys(tmp_path / "s", [f"model.option_{i}" for i in range(12)])
    a = [f"model.option_{i}=value_{i}" for i in range(12)]
    b = a[:-1] + ["model.option_11=other"]  # differs only past the cut
    name_a, name_b = run_name(tmp_path / "s" / "0", a), run_name(tmp_path / "s" / "0", b)
    assert name_a != name_b
    assert len(name_a.split(" @ ")[0]) == MAX_OVERRIDES_CHARS and name_a.startswith("model.option_0=value_0,")


def test_override_keys():
    assert [override_key(o) for o in ("ttt.lr=0.5", "+x.y=1", "++z=2", "~w", "model@foo=tiny", "seed=1,2")] == [
        "ttt.lr", "x.y", "z", "w", "model", "seed"]


def composed_sweep(*command_line: str):
    """The multirun-level config as the sweep callback gets it: sweep=ttt_freeze_lr plus `command_line`."""
    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose("train", overrides=["model=tiny", "ttt=score_first", "sweep=ttt_freeze_lr"],
                         return_hydra_config=True)
    with open_dict(config):
        config.hydra.overrides.task = [*config.hydra.overrides.task, *command_line]
        config.hydra.sweep.dir = "outputs/sweeps/s1"
    return config


def test_swept_keys_come_from_the_sweeper_params_and_the_command_line_which_wins():
    config = composed_sweep("seed=1,2", "ttt.lr=0.5", "quant=none,int8_zlib")
    assert swept_overrides(config) == {"ttt.freeze": "0,2,4", "seed": "1,2", "quant": "none,int8_zlib"}


def test_the_summary_run_gets_the_shared_config_and_tags_without_the_swept_ones():
    config = composed_sweep("seed=1,2", "quant=none,int8_zlib")
    swept = swept_overrides(config)
    shared = sweep_config(config, swept)
    assert shared["swept"] == swept and shared["sweep_dir"] == "outputs/sweeps/s1"
    assert "seed" not in shared and "quant" not in shared
    assert "freeze" not in shared["ttt"] and "lr" not in shared["ttt"]
    assert shared["ttt"]["protocol"] == "score_first" and shared["model"]["name"] == "tiny"
    tags = sweep_tags(config, swept)
    assert {"model:tiny", "ttt:score_first", "sweep:ttt_freeze_lr"} <= set(tags)
    assert not any(tag.startswith("quant:") for tag in tags)
