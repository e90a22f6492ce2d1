"""Every config composes and validates; bad values are refused naming the key (in process, fast)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from golf.cli import USER_ERRORS, compose, describe
from golf.config import GolfConfig, to_golf_config
from golf.model.gpt import expected_parameter_count

from testkit import all_options

# options whose group needs a path given on the command line
NEEDS_PATH = {("data", "text_dir"), ("data", "fineweb_sp1024"), ("data", "fineweb_sp4096"), ("data", "fineweb_sp8192"),
              ("data", "fineweb_sp8192_caseops"), ("experiment", "baseline"),
              ("experiment", "record_0323"), ("experiment", "record_0409"), ("experiment", "record_0427")}


def compose_golf(overrides: list[str]) -> GolfConfig:
    return to_golf_config(compose(overrides))


def test_there_are_options_in_every_group():
    groups = {group for group, _ in all_options()}
    assert {"model", "quant", "ttt", "hardware", "data", "optim", "logger", "eval", "experiment", "sweep", "debug"} <= groups


@pytest.mark.parametrize("group,option", all_options())
def test_every_option_composes_and_validates(group, option):
    overrides = [f"{group}={option}"]
    if (group, option) in NEEDS_PATH:
        overrides.append("data.path=/some/where")
    cfg = compose_golf(overrides)
    assert isinstance(cfg, GolfConfig)
    if group in {"model", "data", "optim", "quant", "ttt", "hardware", "logger", "eval"}:
        assert getattr(cfg, group).name == option


def test_option_files_have_no_yaml_boolean_names():
    reserved = {"on", "off", "yes", "no", "true", "false", "null", "y", "n"}
    assert not [o for _, o in all_options() if o.lower() in reserved]


def test_defaults_are_the_cpu_demo_stack():
    cfg = compose_golf([])
    assert (cfg.model.name, cfg.data.name, cfg.hardware.name, cfg.quant.name, cfg.ttt.name) == (
        "tiny", "shakespeare", "cpu", "none", "none")
    assert cfg.data.shards_dir == "outputs/data/shakespeare_sp1024"
    assert cfg.eval.seq_len == cfg.train.seq_len


def test_interpolated_paths_follow_overrides():
    cfg = compose_golf(["paths.root=/tmp/x", "data.vocab_size=512"])
    assert cfg.data.shards_dir == "/tmp/x/data/shakespeare_sp512"
    assert cfg.data.tokenizer == "/tmp/x/data/shakespeare_sp512/tokenizer.model"


def test_experiment_overrides_groups():
    cfg = compose_golf(["experiment=baseline", "data.path=/d/datasets/fineweb10B_sp1024"])
    assert cfg.model.name == "baseline9l" and cfg.train.batch_tokens == 524288 and cfg.train.seq_len == 1024
    assert cfg.data.tokenizer == "/d/datasets/fineweb10B_sp1024/../../tokenizers/fineweb_1024_bpe.model"


def test_sweep_file_declares_a_multirun_over_seeds():
    raw = compose(["sweep=seeds"])
    assert to_golf_config(raw).seed == 1337  # the job config itself stays valid
    from golf import CONF_DIR

    sweep = OmegaConf.load(CONF_DIR / "sweep" / "seeds.yaml")
    assert sweep.hydra.mode == "MULTIRUN" and str(sweep.hydra.sweeper.params.seed) == "1,2,3"


@pytest.mark.parametrize("group,option", [o for o in all_options() if o[0] == "model"])
def test_every_model_builds_on_meta_with_the_formula_parameter_count(group, option):
    import torch

    from golf.model.gpt import GPT, count_parameters

    cfg = compose_golf([f"model={option}"])
    with torch.device("meta"):
        model = GPT(cfg.model, cfg.data.vocab_size)
    assert count_parameters(model) == expected_parameter_count(cfg.model, cfg.data.vocab_size)


def test_baseline9l_has_the_challenge_parameter_count():
    import torch

    from golf.model.gpt import GPT, count_parameters

    cfg = compose_golf(["model=baseline9l"])
    with torch.device("meta"):
        assert count_parameters(GPT(cfg.model, cfg.data.vocab_size)) == 17_059_912


BAD_OVERRIDES = [
    (["train.iterations=abc"], "train.iterations"),
    (["+train.foo=1"], "train.foo"),
    (["+foo=1"], "foo"),
    (["optim.matrix_lr=-0.1"], "optim.matrix_lr"),
    (["ttt.freeze=5"], "ttt.freeze"),  # the tiny model has 4 blocks
    (["ttt.lr=-1"], "ttt.lr"),
    (["train.batch_tokens=1000"], "train.batch_tokens"),
    (["train.grad_accum_steps=3"], "train.batch_tokens"),
    (["model.num_heads=3"], "model.num_heads"),
    (["model.num_kv_heads=3"], "model.num_kv_heads"),
    (["data.source=web"], "data.source"),
    (["data.vocab_size=70000"], "data.vocab_size"),
    (["data.val_fraction=0.9"], "data.val_fraction"),
    (["logger.mode=sometimes"], "logger.mode"),
    (["hardware.dtype=float16"], "hardware.dtype"),
    (["name=../escape"], "name"),
    (["data=text_dir"], "data.path"),
    (["model=huge"], "model"),
    (["eval.max_tokens=10"], "eval.max_tokens"),
    (["quant=int7"], "quant"),
    (["quant.bits.mlp=9"], "quant.bits.mlp"),
    (["quant.compressor=rar"], "quant.compressor"),
    (["quant=int6_zstd", "quant.level=30"], "quant.level"),
    (["quant.prune_frac=1.0"], "quant.prune_frac"),
    (["quant.clip_percentile=0"], "quant.clip_percentile"),
    (["quant.qat.start=1.5"], "quant.qat.start"),
    (["quant.qat.temperature_start=50"], "quant.qat.temperature_start"),
    (["optim.muon_wd=-0.01"], "optim.muon_wd"),
    (["optim.ema.decay=1.0"], "optim.ema.decay"),
    (["optim.swa.every=0"], "optim.swa.every"),
    (["optim.swa.enabled=true", "optim.ema.decay=0.99"], "optim.swa.enabled"),
]


@pytest.mark.parametrize("overrides,key", BAD_OVERRIDES)
def test_bad_overrides_are_refused_naming_the_key(overrides, key):
    with pytest.raises(USER_ERRORS) as info:
        compose_golf(overrides)
    message = describe(info.value)
    assert key in message, message
    assert "Traceback" not in message


def test_golf_train_refuses_an_artifact_and_leaves_no_empty_run_directory(tmp_path):
    from golf.errors import ConfigError
    from golf.launch import checked_config

    run_dir = tmp_path / "run"
    run_dir.mkdir()  # as Hydra makes it before golf sees the values
    with pytest.raises(ConfigError) as info:
        checked_config(compose(["artifact=/some/file.golf"]), run_dir)
    assert "golf.eval" in describe(info.value)
    assert not run_dir.exists()
    assert checked_config(compose(["artifact=/some/file.golf"]), tmp_path, scores_an_artifact=True).artifact


@pytest.mark.parametrize("overrides,key,value", [
    (["hydra/launcher=joblib"], "hydra.launcher._target_", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    (["hydra/launcher=slurm", "hardware=1xh100"], "hydra.launcher.gpus_per_node", 1),
    (["hydra/sweeper=ttt_lr_optuna"], "hydra.sweeper.direction", "minimize"),
])
def test_launcher_and_sweeper_configs_compose(overrides, key, value):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from golf import CONF_DIR
    from golf.config import register_schema

    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=overrides, return_hydra_config=True)
    assert OmegaConf.select(cfg, key) == value


@pytest.mark.parametrize("sweep,keys", [("ttt_lr", {"ttt.lr"}), ("ttt_freeze_lr", {"ttt.freeze", "ttt.lr"}),
                                        ("ttt_epochs", {"ttt.epochs"}), ("quant_bits", {"quant"})])
def test_sweeps_are_multiruns_over_their_grid(sweep, keys):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from golf import CONF_DIR
    from golf.config import register_schema

    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=[f"sweep={sweep}"], return_hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN" and set(cfg.hydra.sweeper.params) == keys
    assert cfg.name == sweep and cfg.ttt.protocol == ("none" if sweep == "quant_bits" else "score_first")


@pytest.mark.parametrize("option", sorted(o for g, o in all_options() if g == "ablation" and o != "baseline"))
def test_each_ablation_switches_on_one_idea_and_keeps_the_tiny_model(option):
    from dataclasses import asdict

    base, changed = compose_golf(["ablation=baseline"]), compose_golf([f"ablation={option}"])
    differ = [f"{section}.{k}" for section in ("model", "optim", "train", "quant", "ttt")
              for k, v in asdict(getattr(changed, section)).items() if asdict(getattr(base, section))[k] != v]
    assert differ, f"ablation={option} changes nothing"
    assert all(key.startswith(("model.", "optim.")) for key in differ), differ
    assert changed.model.num_layers == base.model.num_layers and changed.model.model_dim == base.model.model_dim
